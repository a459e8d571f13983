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


@pytest.fixture(scope="session")
def arcs(tmp_path_factory):
    """The small refit archives of tests/refit_archives.py (name -> path), built once, with a
    private cache folder (XDG_CACHE_HOME) for the session; the variable is restored after."""
    import os

    from refit_archives import session_archives

    old = os.environ.get("XDG_CACHE_HOME")
    yield session_archives(tmp_path_factory)
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
