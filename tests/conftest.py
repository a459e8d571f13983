"""Shared fixtures: archives built by the tests themselves (nothing downloaded)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# JAX's persistent compilation cache is on by default (wmass_archive/jax_config.py, from the
# package's import on): the test session keeps it in a temporary folder of its own, shared
# with its subprocesses and removed at exit, never in the user's ~/.cache, unless the caller
# chose a folder (WMASS_JAX_CACHE) or switched the cache off (WMASS_ARCHIVE_JAX_CACHE=0).
if not os.environ.get("WMASS_JAX_CACHE") and not os.environ.get("WMASS_ARCHIVE_JAX_CACHE"):
    _jax_cache = tempfile.mkdtemp(prefix="wmass-tests-jax-")
    os.environ["WMASS_JAX_CACHE"] = _jax_cache
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)

from wmass_archive.producers.demo import DemoConfig, build_demo_archive  # noqa: E402


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
