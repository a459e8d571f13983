"""How the package configures JAX; every module of the model and the fitter imports
``jax``/``jnp`` from here, so that the configuration is in place before any array is built.

* **float64**: ``jax_enable_x64`` is switched on at import (JAX's default is float32, too coarse
  for a likelihood's Hessian).
* **The device: CPU by default.** Nothing here chooses one: JAX runs on its default backend,
  which with the ``jax`` package this project depends on is the CPU. **To use a GPU**, install a
  CUDA build of JAX in the same environment (``pip install -U "jax[cuda12]"``, or the extra that
  JAX's installation guide names for your CUDA version); JAX then picks the GPU by itself.
  Select the backend explicitly with the environment variable ``JAX_PLATFORMS`` set before the
  first import (``JAX_PLATFORMS=cpu`` keeps a GPU machine on the CPU, ``JAX_PLATFORMS=cuda``
  fails rather than falling back); ``jax.devices()`` shows what was chosen.
* **XLA:CPU threads**: XLA's multi-threaded Eigen pool is switched off
  (``--xla_cpu_multi_thread_eigen=false`` in ``XLA_FLAGS``; ``WMASS_XLA_MULTITHREAD_EIGEN=1``
  keeps XLA's default), see below.
* **The persistent compilation cache.** JIT compilation of a model's kernels takes a few
  seconds; JAX's persistent compilation cache keeps the compiled kernels on disk so that later
  processes fitting a model of the same structure skip it. It is **on by default** from the
  import of this module on (every ``fit()``, ``wmass-refit`` and ``wmass-archive`` run), in
  ``$WMASS_JAX_CACHE`` when set, else ``$XDG_CACHE_HOME/wmass-archive/jax``
  (``~/.cache/wmass-archive/jax``; deleting it is always safe); ``WMASS_ARCHIVE_JAX_CACHE=0``
  switches it off, :func:`enable_compilation_cache` moves it to another folder.

Importing this module imports JAX (a second or more): the commands import it only when they
fit or build a model.
"""

from __future__ import annotations

import os
from pathlib import Path

# XLA:CPU's multi-threaded Eigen pool can wedge (every worker idle, block_until_ready waiting
# forever; seen once here on a 10k-parameter fit, reported upstream by others). Single-threaded
# Eigen costs nothing measurable for these kernels; set WMASS_XLA_MULTITHREAD_EIGEN=1 to keep
# XLA's default. Takes effect only if no JAX computation ran before this import.
if os.environ.get("WMASS_XLA_MULTITHREAD_EIGEN") != "1" and "xla_cpu_multi_thread_eigen" not in (
    os.environ.get("XLA_FLAGS", "")
):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    ).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

#: environment variable that switches the persistent compilation cache off ("0", "false",
#: "no", "off")
CACHE_SWITCH_ENV = "WMASS_ARCHIVE_JAX_CACHE"
#: environment variable naming the cache folder
CACHE_DIR_ENV = "WMASS_JAX_CACHE"


def cache_enabled_by_env() -> bool:
    """False when ``WMASS_ARCHIVE_JAX_CACHE`` switches the default cache off."""
    return os.environ.get(CACHE_SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def default_cache_folder() -> Path:
    """``$WMASS_JAX_CACHE``, else ``$XDG_CACHE_HOME/wmass-archive/jax`` (``~/.cache/...``);
    the same folder as :func:`wmass_archive.refit.paths.cache_dir` / ``jax``."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "wmass-archive" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Use JAX's persistent compilation cache in ``path`` (default
    :func:`default_cache_folder`); returns the folder. Every compiled kernel is kept (no
    minimum compilation time; the folder has no size limit: delete it at will). Moving the
    cache to another folder after kernels were compiled takes effect for the next
    compilation."""
    folder = Path(path) if path else default_cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    if jax.config.jax_compilation_cache_dir not in (None, str(folder)):
        from jax.experimental.compilation_cache import compilation_cache as _cc

        _cc.reset_cache()  # JAX opens its cache once; reopen it in the new folder
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


def enable_default_cache() -> Path | None:
    """Switch the cache on in :func:`default_cache_folder` unless ``WMASS_ARCHIVE_JAX_CACHE``
    is off; None when off or when the folder cannot be created (the kernels are then only
    compiled, as without a cache)."""
    if not cache_enabled_by_env():
        return None
    try:
        return enable_compilation_cache()
    except OSError:
        return None


enable_default_cache()

__all__ = [
    "CACHE_DIR_ENV",
    "CACHE_SWITCH_ENV",
    "cache_enabled_by_env",
    "default_cache_folder",
    "enable_compilation_cache",
    "enable_default_cache",
    "jax",
    "jnp",
]
