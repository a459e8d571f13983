"""Where ``wmass-refit`` finds the default archive and keeps its caches.

* The **default archive**: ``$WMASS_ARCHIVE_DEFAULT`` when set, otherwise
  ``likelihoods/default.h5`` of the repository the package lives in, otherwise
  ``likelihoods/default.h5`` under the current folder.
* The **cache folder**: ``$XDG_CACHE_HOME/wmass-archive`` (``~/.cache/wmass-archive`` when
  ``XDG_CACHE_HOME`` is not set). It holds the theory grids computed for PDF sets that an archive
  does not carry (``theory-grids/``, :mod:`wmass_archive.theory.cache`: keyed by content, every
  entry verified on load) and JAX's persistent compilation cache (``jax/``). Deleting it is
  always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import RefitError

DEFAULT_ENV = "WMASS_ARCHIVE_DEFAULT"
JAX_CACHE_ENV = "WMASS_ARCHIVE_JAX_CACHE"
DEFAULT_RELATIVE = Path("likelihoods") / "default.h5"
BUILD_HINT = (
    "build it with `wmass-archive build-demo` (writes likelihoods/default.h5; "
    "LHAPDF_DATA_PATH must hold CT10nlo, NNPDF23_lo_as_0119_qed and NNPDF31_nnlo_as_0118_mc), "
    f"or pass --archive PATH, or set {DEFAULT_ENV}"
)


def repository_root() -> Path:
    """The folder holding the ``wmass_archive`` package (the repository in a source checkout)."""
    return Path(__file__).resolve().parents[2]


def default_archive_candidates() -> list[Path]:
    """The paths tried for the default archive, in order (see the module docstring)."""
    env = os.environ.get(DEFAULT_ENV)
    if env:
        return [Path(env).expanduser()]
    out = [repository_root() / DEFAULT_RELATIVE, Path.cwd() / DEFAULT_RELATIVE]
    return list(dict.fromkeys(p.resolve() for p in out))


def default_archive_path() -> Path:
    """The default archive; :class:`RefitError` with a one-line hint on how to build it when it
    does not exist."""
    cands = default_archive_candidates()
    for p in cands:
        if p.is_file():
            return p
    if os.environ.get(DEFAULT_ENV):
        raise RefitError(f"{DEFAULT_ENV}={cands[0]}: no such archive; {BUILD_HINT}")
    raise RefitError(f"no default archive: {cands[0]} does not exist yet; {BUILD_HINT}")


def cache_dir(create: bool = True) -> Path:
    """``$XDG_CACHE_HOME/wmass-archive`` (or ``~/.cache/wmass-archive``), created on demand
    (:func:`wmass_archive.theory.cache.default_cache_dir`)."""
    from ..theory.cache import default_cache_dir

    return default_cache_dir(create)


def enable_compilation_cache(folder: str | os.PathLike[str] | None = None) -> Path | None:
    """Switch on JAX's persistent compilation cache (through
    :func:`wmass_archive.fit.enable_compilation_cache`) in ``folder``, default
    ``$WMASS_JAX_CACHE`` when set, else ``<cache_dir>/jax``; a second ``wmass-refit`` on an
    archive of the same shapes then loads its compiled kernels instead of compiling them.
    The cache is on in that default folder from the package's import already
    (``wmass_archive/jax_config.py``). Returns the folder, or None when
    ``WMASS_ARCHIVE_JAX_CACHE=0`` or the folder cannot be created."""
    from ..jax_config import cache_enabled_by_env
    from ..jax_config import enable_compilation_cache as enable

    if not cache_enabled_by_env():
        return None
    try:
        path = Path(folder or os.environ.get("WMASS_JAX_CACHE") or cache_dir() / "jax")
        return enable(path)
    except OSError:
        return None
