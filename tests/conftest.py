"""Shared fixtures: archives built by the tests themselves (nothing downloaded)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wmass_archive.producers.demo import DemoConfig, build_demo_archive


@pytest.fixture(scope="session")
def demo_archive_master(tmp_path_factory) -> Path:
    """The small demonstration archive, built once per session. Do not modify it: copy it with
    the ``demo_archive`` fixture first."""
    path = tmp_path_factory.mktemp("master") / "demo.h5"
    build_demo_archive(path, DemoConfig())
    return path


@pytest.fixture
def demo_archive(demo_archive_master, tmp_path) -> Path:
    """A private copy of the demonstration archive that a test may damage."""
    dst = tmp_path / "demo.h5"
    shutil.copyfile(demo_archive_master, dst)
    return dst
