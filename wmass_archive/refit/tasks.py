"""Independent fits as tasks: the PDF sweep, the bias study and toys are lists of
:class:`FitTask`, run one after the other in this process (sharing compiled kernels) or on a dask
cluster (``scheduler="local"``: a :class:`distributed.LocalCluster` on this machine;
``"tcp://host:8786"``: an existing cluster whose workers see the archive's path and have
wmass-archive installed).

A task carries only paths, names and small arrays (an external set's grid, a user grid), so it
pickles; the worker opens the archive and builds the model itself (kept in a small per-process
cache, so that the fits of a bias study or of toy chunks reuse one model).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import RefitError
from .pdfswap import ExternalPDF, PDFChoice, derived_archive

_MODEL_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_MODEL_CACHE_SIZE = 2


@dataclass
class ModelSpec:
    """What a model is built from: archive path, PDF set (``pdf`` its archive name, ``external``
    an LHAPDF set's grid, ``scale`` its uncertainty factor), user central grid, POI definition,
    Barlow-Beeston mode."""

    archive: str
    pdf: str | None = None
    external: ExternalPDF | None = None
    scale: float | None = None
    theory: np.ndarray | None = None
    poi: str = "mw"
    bb: str = "gamma"

    def key(self) -> tuple:
        th = None if self.theory is None else hashlib.sha1(self.theory.tobytes()).hexdigest()
        ext = None if self.external is None else self.external.pdf.model_dump_json()
        return (self.archive, self.pdf, ext, self.scale, th, self.poi, self.bb)


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


def build_spec_model(spec: ModelSpec):
    """The :class:`~wmass_archive.model.Model` of a spec (cached per process)."""
    from ..archive.reader import open_archive
    from ..model.build import build_model

    key = spec.key()
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    with open_archive(spec.archive) as arc:
        th = arc.metadata.theory
        if spec.external is not None:
            ext = spec.external
            pdf = (
                ext.pdf if spec.scale is None else ext.pdf.model_copy(update={"scale": spec.scale})
            )
            choice = PDFChoice(pdf.name, "lhapdf", pdf, False, ext)
        elif th is not None:
            from ..archive.reader import find_pdf_set

            s = find_pdf_set(th.pdf_sets, spec.pdf or th.nominal_pdf)
            if s is None:
                raise RefitError(f"no PDF set '{spec.pdf}' in {arc.path.name}")
            if spec.scale is not None:
                s = s.model_copy(update={"scale": float(spec.scale)})
            choice = PDFChoice(s.name, "archive", s, s.name == th.nominal_pdf)
        else:
            choice = None
        src = derived_archive(arc, choice) if choice is not None else arc
        try:
            model = build_model(
                src,
                pdf=choice.name if choice is not None else None,
                theory_grid=spec.theory,
                poi=spec.poi,
                bb=spec.bb,  # type: ignore[arg-type]
            )
        finally:
            if src is not arc:
                src.close()
    _MODEL_CACHE[key] = model
    while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
        _MODEL_CACHE.popitem(last=False)
    return model


def clear_model_cache() -> None:
    """Forget the models kept by :func:`build_spec_model`."""
    _MODEL_CACHE.clear()


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


def run_tasks(
    tasks: Sequence[FitTask],
    *,
    scheduler: str | None = None,
    progress: bool = False,
    desc: str = "fits",
    runner: Callable[[FitTask], dict[str, Any]] = run_task,
) -> list[dict[str, Any]]:
    """Run ``tasks`` and return their outputs in order: in this process when ``scheduler`` is
    None (or ``"none"``) or there is one task; else on dask (``"local"``, ``"local:N"`` for N
    worker processes, or a scheduler address). A tqdm bar on stderr when ``progress``."""
    from tqdm import tqdm

    if not tasks:
        return []
    if scheduler in (None, "", "none") or len(tasks) == 1:
        outs = []
        with tqdm(total=len(tasks), desc=desc, unit="fit", disable=not progress) as bar:
            for t in tasks:
                outs.append(runner(t))
                bar.update(1)
        return outs
    return _run_dask(tasks, scheduler, progress, desc, runner)


def _run_dask(tasks, scheduler: str, progress: bool, desc: str, runner) -> list[dict[str, Any]]:
    from tqdm import tqdm

    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise RefitError("--scheduler needs the 'distributed' package") from None
    cluster = None
    if scheduler.startswith("local"):
        n = scheduler.partition(":")[2]
        try:
            n_workers = int(n) if n else min(len(tasks), os.cpu_count() or 1)
        except ValueError:
            raise RefitError(f"--scheduler {scheduler}: expected local or local:N") from None
        cluster = LocalCluster(
            n_workers=max(1, n_workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        address: Any = cluster
    else:
        address = scheduler
    try:
        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise RefitError(f"cannot reach the dask scheduler {scheduler}: {exc}") from None
        try:
            futures = [client.submit(runner, t, pure=False) for t in tasks]
            index = {f.key: i for i, f in enumerate(futures)}
            outs: list[dict[str, Any] | None] = [None] * len(tasks)
            with tqdm(
                total=len(tasks), desc=f"{desc} (dask)", unit="fit", disable=not progress
            ) as bar:
                for fut in as_completed(futures):
                    outs[index[fut.key]] = fut.result()
                    bar.update(1)
            return outs  # type: ignore[return-value]
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
