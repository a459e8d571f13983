"""Independent fits as tasks: the PDF sweep, the bias study and toys are lists of
:class:`FitTask` that a :class:`TaskExecutor` runs on a dask cluster (by default a local one,
:class:`distributed.LocalCluster`, with one single-threaded worker process per CPU core, when a
list has more than one task; ``scheduler="tcp://host:8786"``: an existing cluster whose workers
see the archive's path and have wmass-archive installed) or one after the other in this process
(``workers=1``, ``scheduler="none"``, or a single task).

A task carries only paths, names and small arrays (an external set's grid, a user grid), so it
pickles; the worker opens the archive and builds the model itself (kept in a small per-process
cache, so that the fits of a bias study or of toy chunks reuse one model). A task's output does
not depend on where it ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._optional import available, require
from ..theory.resolve import ResolvedTheory
from .errors import RefitError

_MODEL_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_MODEL_CACHE_SIZE = 4
#: the last model built per (archive, POI definition, BB mode, bounds, memory bound): a spec
#: with another theory of the same structure swaps its theory in (Model.with_theory) instead
#: of reading the archive and compiling again
_BASE_MODELS: OrderedDict[tuple, Any] = OrderedDict()
_BASE_MODELS_SIZE = 2


@dataclass
class ModelSpec:
    """What a model is built from: archive path, the theory in use (resolved once,
    :class:`~wmass_archive.theory.resolve.ResolvedTheory`; None for an archive without a folded
    process), POI definition, Barlow-Beeston mode, bounds replacing the archive's ((name, low,
    high): a POI's physical, another parameter's theta)."""

    archive: str
    theory: ResolvedTheory | None = None
    poi: str = "mw"
    bb: str = "gamma"
    bounds: tuple[tuple[str, float | None, float | None], ...] = ()
    #: the bound on the model's estimated memory, bytes (None: the default, module budget);
    #: carried so that workers in other processes apply the caller's bound
    max_model_bytes: int | None = None

    def base_key(self) -> tuple:
        """What the model's structure depends on, apart from the theory."""
        try:  # an archive replaced at the same path (atomic rename) is another archive
            st = os.stat(self.archive)
            ident: tuple | None = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            ident = None
        return (self.archive, ident, self.poi, self.bb, self.bounds, self.max_model_bytes)

    def key(self) -> tuple:
        th = None if self.theory is None else self.theory.key()
        return (*self.base_key(), th)


@dataclass
class FitTask:
    """One fit (``kind="fit"``) or a chunk of toys (``kind="toys"``).

    Data: the archive's (default), ``asimov=True``, or ``pseudo`` = the expected yields of
    another :class:`ModelSpec` at theta = 0 (the bias study: a PDF set's central prediction)."""

    label: str
    spec: ModelSpec
    kind: str = "fit"
    freeze: tuple[str, ...] = ()
    asimov: bool = False
    pseudo: ModelSpec | None = None
    n_toys: int = 0
    seed: int = 0
    theta_gen: np.ndarray | None = None
    start: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _remember(cache: OrderedDict, key: tuple, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def cached_model(spec: ModelSpec):
    """The model of ``spec`` kept in this process, or the last model of its archive and
    options with the spec's theory swapped in (no archive read, no compilation), or None."""
    key = spec.key()
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    base = _BASE_MODELS.get(spec.base_key())
    if base is None or spec.theory is None:
        return None
    model = base.with_theory(spec.theory)
    if model is not None:
        _remember(_MODEL_CACHE, key, model, _MODEL_CACHE_SIZE)
    return model


def build_spec_model(spec: ModelSpec):
    """The :class:`~wmass_archive.model.Model` of a spec, cached per process
    (:func:`cached_model`), else built from the archive at its path."""
    from ..archive.reader import open_archive
    from ..model.build import build_model

    model = cached_model(spec)
    if model is None:
        with open_archive(spec.archive) as arc:
            model = build_model(
                arc,
                theory=spec.theory,
                poi=spec.poi,
                bb=spec.bb,  # type: ignore[arg-type]
                max_model_bytes=spec.max_model_bytes,
            )
        model = model.with_bounds({name: (lo, hi) for name, lo, hi in spec.bounds})
        remember_model(spec, model)
    return model


def remember_model(spec: ModelSpec, model) -> None:
    """Keep ``model`` (built by the caller for ``spec``) for :func:`build_spec_model`."""
    _remember(_BASE_MODELS, spec.base_key(), model, _BASE_MODELS_SIZE)
    _remember(_MODEL_CACHE, spec.key(), model, _MODEL_CACHE_SIZE)


def clear_model_cache() -> None:
    """Forget the models kept by :func:`build_spec_model`."""
    _MODEL_CACHE.clear()
    _BASE_MODELS.clear()


def pdf_group_indices(model) -> np.ndarray:
    """Indices of the PDF nuisances of the set in use."""
    return np.array(
        [i for i, p in enumerate(model.info.parameters) if p.kind == "pdf"], dtype=np.int64
    )


def run_task(task: FitTask) -> dict[str, Any]:
    """Run one task; returns a small dict (theta units unless said): ``label``, ``converged``,
    ``pois`` (name -> value, error, pdf_unc), ``central``/``scale``/``offset`` of each POI, and
    for toys the :class:`~wmass_archive.fit.ToysResult` as a dict. Used in-process and on dask
    workers."""
    from .paths import enable_compilation_cache

    enable_compilation_cache()
    t0 = time.perf_counter()
    model = build_spec_model(task.spec)
    t_build = time.perf_counter() - t0
    out: dict[str, Any] = {"label": task.label, "extra": task.extra, "build_s": t_build}
    out["poi_info"] = poi_info(model)
    if task.kind == "toys":
        from ..fit.toys import run_toys

        free = model.free_mask(task.freeze or None)
        th = task.theta_gen if task.theta_gen is not None else np.zeros(model.n_params)
        res = run_toys(model, task.n_toys, seed=task.seed, theta=th, free=free)
        out["toys"] = res.model_dump()
        out["time_s"] = time.perf_counter() - t0
        return out
    from ..fit.api import fit

    data = None
    if task.pseudo is not None:
        data = build_spec_model(task.pseudo).expected()
        model = build_spec_model(task.spec)
    start = None
    if task.start:
        names = set(model.parameter_names)
        start = {k: v for k, v in task.start.items() if k in names}
    res = fit(
        model,
        data=data,
        asimov=task.asimov,
        freeze=task.freeze or None,
        start=start,
        impacts=(),
        gof=False,
        strict=False,
    )
    out.update(fit_summary(model, res), time_s=time.perf_counter() - t0)
    return out


def run_cls_toys(task: FitTask) -> dict[str, Any]:
    """A chunk of toys of a toy-based CLs: the test statistic at ``task.extra["mu"]`` on
    ``task.n_toys`` toys generated at ``task.theta_gen`` (seeds ``task.seed + i``); returns
    ``{"label", "which": task.extra["which"], "q": [...]}`` (NaN where a toy's fit failed).
    In-process and on dask workers."""
    from ..fit.hypotest import toy_test_statistics
    from .paths import enable_compilation_cache

    enable_compilation_cache()
    model = build_spec_model(task.spec)
    q = toy_test_statistics(
        model,
        np.asarray(task.theta_gen),
        float(task.extra["mu"]),
        task.n_toys,
        task.seed,
        poi=task.extra.get("poi"),
        test_stat=task.extra.get("test_stat", "qtilde"),
        free=model.free_mask(task.freeze or None),
    )
    return {"label": task.label, "which": task.extra.get("which"), "q": q.tolist()}


def fit_summary(model, res) -> dict[str, Any]:
    """The part of a task's output that describes a fit: ``pois`` (name -> theta value, error
    and the nominal impact of the PDF group), ``poi_info``, status, compile seconds."""
    from .groups import group_impact

    pdf_idx = pdf_group_indices(model)
    pois = {}
    for i, p in enumerate(res.pois):
        pu = group_impact(res.covariance, i, pdf_idx) if res.converged else float("nan")
        pois[p.name] = dict(value=p.value, error=p.error, pdf_unc=pu)
    return dict(
        converged=res.converged,
        status=res.status,
        pois=pois,
        poi_info=poi_info(model),
        compile_s=res.timing.compile,
    )


def poi_info(model) -> dict[str, dict[str, Any]]:
    """POI name -> central, scale, blinding offset, unit, kind."""
    return {
        p.name: dict(
            central=p.central, scale=p.scale, offset=p.blinding_offset, unit=p.unit, kind=p.kind
        )
        for p in model.info.pois
    }


def n_cores() -> int:
    """CPU cores this process may use (its affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


class TaskExecutor:
    """Runs lists of :class:`FitTask` (:meth:`run`), in this process or on dask.

    * ``scheduler``: None (default): a local cluster when a list has more than one task, else
      this process; ``"none"``: always this process; ``"local"`` or ``"local:N"``: a local
      cluster (N workers); else the address of an existing dask scheduler;
    * ``workers``: worker processes of the local cluster (default: one per CPU core, at most
      one per task of the first list); 1 runs every task in this process.

    The local cluster (:class:`distributed.LocalCluster`: processes of one thread each, JAX and
    BLAS limited to one thread, SIGINT ignored so that Ctrl-C reaches this process only) is
    started on first use and kept for the next lists (its workers keep their models), until
    :meth:`close` (or the end of a ``with`` block), which also ends it after Ctrl-C."""

    def __init__(
        self, scheduler: str | None = None, workers: int | None = None, progress: bool = False
    ):
        if workers is not None and workers < 1:
            raise RefitError(f"--workers must be >= 1, got {workers}")
        self.scheduler = scheduler or None
        self.workers = workers
        self.progress = progress
        if self.scheduler not in (None, "none") and not self.scheduler.startswith("local"):
            if workers is not None:
                raise RefitError(
                    f"--workers sets the size of a local cluster; the cluster at {scheduler} "
                    "has its own workers"
                )
            # a cluster the user named cannot be replaced by this process: say so before any fit
            require("distributed", "dask", f"--scheduler {scheduler}")
        elif self.scheduler is not None and self.scheduler.startswith("local:"):
            n = self.scheduler.partition(":")[2]
            if not n.isdigit() or int(n) < 1:
                raise RefitError(f"--scheduler {scheduler}: expected local or local:N (N >= 1)")
            if workers is not None and workers != int(n):
                raise RefitError(f"--scheduler {scheduler} and --workers {workers} disagree")
            self.workers = int(n)
        self._cluster: Any = None
        self._client: Any = None
        self.used: str | None = None  # how the last distributed list ran, for the notes
        self._noted_no_dask = False

    def __enter__(self) -> TaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def in_process(self, n_tasks: int) -> bool:
        """Whether a list of ``n_tasks`` tasks runs in this process."""
        if self._client is not None:
            return False
        if self.scheduler == "none" or n_tasks <= 1:
            return True
        local = self.scheduler is None or self.scheduler.startswith("local")
        return local and ((self.workers or n_cores()) <= 1 or not self._local_dask())

    def _local_dask(self) -> bool:
        """Whether dask can run a local cluster; without it (the ``dask`` extra) a local
        cluster's fits run one after the other in this process: a task's output does not
        depend on where it ran, only the time does (one warning says so)."""
        return available("distributed")

    def _note_in_process(self, n_tasks: int, desc: str) -> None:
        if self._noted_no_dask or self.scheduler == "none" or n_tasks <= 1:
            return
        if (self.workers or n_cores()) <= 1 or self._local_dask():
            return
        self._noted_no_dask = True
        warnings.warn(
            f"dask is not installed: the {n_tasks} tasks ({desc}) run one after the other in "
            'this process (pip install "wmass-archive[dask]" runs them in parallel)',
            stacklevel=3,
        )

    def run(
        self,
        tasks: Sequence[FitTask],
        desc: str = "fits",
        fn: Callable[[FitTask], dict[str, Any]] = run_task,
    ) -> list[dict[str, Any]]:
        """The outputs of ``fn`` (default :func:`run_task`) for ``tasks``, in order; a tqdm bar
        on stderr when ``progress``."""
        from tqdm import tqdm

        if not tasks:
            return []
        if self.in_process(len(tasks)):
            self._note_in_process(len(tasks), desc)
            outs = []
            with tqdm(total=len(tasks), desc=desc, unit="fit", disable=not self.progress) as bar:
                for t in tasks:
                    outs.append(fn(t))
                    bar.update(1)
            return outs
        client = self._connect(len(tasks))
        futures = [client.submit(fn, t, pure=False) for t in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        outs_d: list[dict[str, Any] | None] = [None] * len(tasks)
        try:
            from distributed import as_completed

            with tqdm(
                total=len(tasks),
                desc=f"{desc} ({self.used})",
                unit="fit",
                disable=not self.progress,
            ) as bar:
                for fut in as_completed(futures):
                    outs_d[index[fut.key]] = fut.result()
                    bar.update(1)
        except BaseException:
            client.cancel(futures)
            raise
        return outs_d  # type: ignore[return-value]

    def _connect(self, n_tasks: int):
        if self._client is not None:
            return self._client
        Client = require("distributed", "dask", "fits on a dask cluster").Client
        if self.scheduler is None or self.scheduler.startswith("local"):
            n = self.workers or min(n_cores(), n_tasks)
            # a Ctrl-C meanwhile is raised once every worker has joined (then the cluster
            # closes cleanly); the workers never see it
            with sigint_deferred():
                try:
                    self._cluster = start_local_cluster(n)
                    self._client = Client(self._cluster, timeout="60s")
                    self._client.wait_for_workers(n, timeout=120)
                except (OSError, RuntimeError, TimeoutError) as exc:
                    self.close()
                    msg = " ".join(str(exc).split()) or type(exc).__name__
                    raise RefitError(
                        f"cannot start a local dask cluster of {n} workers ({msg}); "
                        "--workers 1 runs the fits in this process"
                    ) from None
            self.used = f"local dask cluster, {n} worker{'s' if n > 1 else ''}"
            return self._client
        self.used = f"dask scheduler {self.scheduler}"
        try:
            self._client = Client(self.scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            self.close()
            raise RefitError(f"cannot reach the dask scheduler {self.scheduler}: {exc}") from None
        return self._client

    def close(self) -> None:
        """Disconnect, and end the local cluster if one was started."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        with contextlib.suppress(Exception):
            if client is not None:
                client.close(timeout=10)
        with contextlib.suppress(Exception):
            if cluster is not None:
                cluster.close(timeout=10)


#: environment of the local cluster's workers: one thread for XLA, BLAS and OpenMP
WORKER_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigint_deferred():
    """Ctrl-C (SIGINT) recorded meanwhile and raised as KeyboardInterrupt at the end, so that
    what is being set up (a cluster, its client) is complete and can be closed cleanly."""
    if not _main_thread():
        yield
        return
    hits: list[int] = []
    old = signal.signal(signal.SIGINT, lambda sig, frame: hits.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if hits:
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_ignored():
    """SIGINT ignored meanwhile: processes started now inherit that (a Ctrl-C sent to the
    whole process group never reaches a dask worker, even as it starts). A SIGINT that comes
    meanwhile is lost: this lasts only while the worker processes are spawned."""
    if not _main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def start_local_cluster(n_workers: int):
    """A :class:`distributed.LocalCluster` of ``n_workers`` processes with one thread each
    (:data:`WORKER_ENV`), no dashboard, quiet logs. Its worker processes ignore SIGINT
    (:mod:`._dask_worker`; started within :func:`sigint_ignored`, they never see it), and they
    do not import the calling script's ``__main__`` (a script without an ``if __name__ ==
    "__main__"`` guard would otherwise run again in each of them)."""
    import logging
    import sys

    from distributed import LocalCluster

    env = dict(WORKER_ENV)
    if os.environ.get("XLA_FLAGS"):
        env["XLA_FLAGS"] = os.environ["XLA_FLAGS"] + " " + env["XLA_FLAGS"]
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main and k in main.__dict__}
    try:
        if "__spec__" in saved:
            main.__spec__ = None  # type: ignore[union-attr]
        if "__file__" in saved:
            del main.__file__  # type: ignore[union-attr]
        cluster = LocalCluster(
            n_workers=0,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,  # no dashboard; its HTTP server on a free local port:
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
            env=env,
            preload=[f"{__package__}._dask_worker"],
        )
        before = _spawned()
        with sigint_ignored():  # only until the worker processes exist (milliseconds)
            cluster.scale(n_workers)
            t0 = time.monotonic()
            while len(_spawned() - before) < n_workers and time.monotonic() - t0 < 30:
                time.sleep(0.005)
        return cluster
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def _spawned() -> set[int]:
    """Process ids of this process's children started by multiprocessing's spawn."""
    import psutil

    out = set()
    for c in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(c.cmdline()):
                out.add(c.pid)
    return out


def _with_bound(task: FitTask, bound: int) -> FitTask:
    """``task`` with ``bound`` (bytes) on its model specs that carry none."""

    def fix(spec: ModelSpec | None) -> ModelSpec | None:
        if spec is None or spec.max_model_bytes is not None:
            return spec
        return dataclasses.replace(spec, max_model_bytes=bound)

    return dataclasses.replace(task, spec=fix(task.spec), pseudo=fix(task.pseudo))


def run_tasks(
    tasks: Sequence[FitTask],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    desc: str = "fits",
    runner: Callable[[FitTask], dict[str, Any]] = run_task,
    executor: TaskExecutor | None = None,
) -> list[dict[str, Any]]:
    """Run ``tasks`` and return their outputs in order, with ``executor`` or else a
    :class:`TaskExecutor` (``scheduler``, ``workers``, ``progress``) made for this list. A
    spec without a memory bound gets the one in force here (``budget.memory_bound``), which
    workers in other processes would not see."""
    from ..model.budget import bound_in_force

    bound = bound_in_force()
    if bound is not None:
        tasks = [_with_bound(t, bound) for t in tasks]
    if executor is not None:
        return executor.run(tasks, desc, runner)
    with TaskExecutor(scheduler, workers, progress) as ex:
        return ex.run(tasks, desc, runner)
