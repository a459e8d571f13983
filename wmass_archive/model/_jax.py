"""JAX in float64: every module of the model and the fitter imports ``jax``/``jnp`` from here,
so that double precision is switched on before any array is built.

JIT compilation of a model's kernels takes a few seconds; :func:`enable_compilation_cache`
(or the environment variable ``WMASS_JAX_CACHE`` = a folder) keeps the compiled kernels on disk
so that later processes fitting a model of the same structure skip it.
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


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Use JAX's persistent compilation cache in ``path`` (default ``$WMASS_JAX_CACHE``, else
    ``~/.cache/wmass_archive/jax``); returns the folder."""
    folder = Path(
        path or os.environ.get("WMASS_JAX_CACHE") or Path.home() / ".cache/wmass_archive/jax"
    )
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


if os.environ.get("WMASS_JAX_CACHE"):
    enable_compilation_cache()

__all__ = ["enable_compilation_cache", "jax", "jnp"]
