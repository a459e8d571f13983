"""The theorist's entry point: :func:`refit` an archive with another PDF set or theory
prediction and get a :class:`~wmass_archive.refit.schema.RefitResult`.

    >>> from wmass_archive.refit import refit
    >>> r = refit("likelihoods/default.h5", pdf="NNPDF31")
    >>> print(r.summary()); r.to_json("refit.json")

:func:`refit` is one :class:`~wmass_archive.refit.refitter.Refitter` used once; a script that
refits many times (PDF sets, theory grids) keeps a refitter and reuses its model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

from ..archive.reader import Archive
from ..hypotests import TEST_STATS
from ..model.budget import memory_bound
from ..theory.pdfnames import PathsLike
from ..theory.usergrid import TheoryLike
from .errors import RefitError
from .options import BBArg, ImpactsArg, check_fit_options, clip, needs_theory
from .refitter import Refitter
from .schema import RefitResult, TimingOut
from .tasks import TaskExecutor


def refit(
    archive: str | os.PathLike[str] | Archive | None = None,
    *,
    pdf: str | None = None,
    theory: TheoryLike | None = None,
    poi: str | None = None,
    impacts: ImpactsArg = "both",
    pdf_scale: float | None = None,
    pdf_path: PathsLike = None,
    asimov: bool = False,
    freeze: Sequence[str] | str | None = None,
    scan: int | None = None,
    minos: bool = False,
    toys: int = 0,
    seed: int = 0,
    pdf_sweep: bool = False,
    pdf_bias: bool = False,
    unblind: bool = False,
    validate: bool = False,
    bb: BBArg | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    cache: bool = True,
    command: str | None = None,
    bounds: Mapping[str, Sequence] | Sequence[str] | None = None,
    scan_values: Sequence[float] | None = None,
    cls: Sequence[float] | float | None = None,
    test_stat: str = "qtilde",
    upper_limit: float | None = None,
    toys_cls: int = 0,
    max_memory: float | None = None,
) -> RefitResult:
    """Refit an archive and return the :class:`RefitResult`.

    * ``archive``: a path or an open :class:`Archive`; None: the default archive
      (:func:`~wmass_archive.refit.paths.default_archive_path`);
    * ``pdf``: the PDF set (forgiving name: archive name, LHAPDF name or alias, ``NNPDF4.0``);
      a set the archive lacks is computed from LHAPDF (``pdf_path`` folders, then
      ``LHAPDF_DATA_PATH``) and cached; ``pdf_scale``: factor of its one-sigma uncertainty
      (default the archive's factor, 1 for an external set);
    * ``theory``: a user central grid replacing the signal's (TheoryGrid file/object, hist, or
      array in pb per generator bin; see :mod:`~wmass_archive.theory.usergrid`);
    * ``poi``: ``mw``, ``mw-charge``, ``mw-eta`` or ``mw-barrel-endcap``, or the name of a POI
      of the archive (e.g. ``r`` or ``mu`` of an imported archive: its scan and toys);
      default ``mw``, or an archive without a mass POI's first POI;
      ``impacts``: ``nominal``, ``global``, ``both`` or ``none``;
    * ``asimov``: fit the expected data (theta = 0) instead of the observed;
      ``freeze``: parameter/group names or globs held at 0;
    * ``scan``: number of points of a likelihood scan of each POI (of the named one) over +-3
      sigma; ``minos``: profile-likelihood 68% intervals;
    * ``toys``/``seed``: pseudo-experiments at the fitted point; ``pdf_sweep``, ``pdf_bias``:
      see :mod:`~wmass_archive.refit.sweep`; their fits run on a local dask cluster of
      ``workers`` processes (default one per CPU core; 1: in this process) or on the dask
      ``scheduler`` given (``"none"``: in this process);
    * ``bb``: Barlow-Beeston-lite mode (default: the archive's ``mc_stat``, else gamma);
    * ``bounds``: {name: (low, high)} or ``["NAME=LO,HI", ...]`` replacing the archive's
      ranges (a POI's in its physical unit, any other parameter's in theta), respected by
      the fit, scans, intervals, toys and hypothesis tests;
    * ``scan_values``: physical values of the POI (of ``poi``, else each POI) to scan at,
      instead of ``scan``'s +-3 sigma grid;
    * ``cls``: POI values (physical) to test (CLs with ``test_stat`` "qtilde", "q" or "q0",
      asymptotic; with ``toys_cls`` N also from N toys per hypothesis, on the dask executor);
      ``upper_limit``: the confidence level of a CLs upper limit (e.g. 0.95);
    * ``unblind``: report the absolute mW (otherwise a blinded archive's values carry its
      hidden offset and ``shift_mev`` is what to quote); ``validate``: run the full validator on
      the archive first (every read is SHA-256 checked in any case);
    * ``max_memory``: the bound (GB) on the model's estimated memory (parameters x bins,
      dense blocks, covariance: :mod:`~wmass_archive.model.budget`), checked before the
      model is built; default the archive's ``ReadLimits.max_model_bytes`` (2 GiB). Over it:
      :class:`~wmass_archive.errors.ResourceLimitError`.
    """
    t_start = time.perf_counter()
    if toys < 0:
        raise RefitError(f"the number of toys must be >= 0, got {toys}")
    if test_stat not in TEST_STATS:
        raise RefitError(f"unknown test statistic '{clip(test_stat)}' ({', '.join(TEST_STATS)})")
    if upper_limit is not None and not 0.0 < upper_limit < 1.0:
        raise RefitError(f"the upper limit's confidence level must be in (0, 1), got {upper_limit}")
    if toys_cls < 0:
        raise RefitError(f"the number of CLs toys must be >= 0, got {toys_cls}")
    cls_values = [float(cls)] if isinstance(cls, int | float) else [float(x) for x in cls or ()]
    if toys_cls and not cls_values:
        raise RefitError("--toys-cls needs --cls (the values to test with toys)")
    check_fit_options(impacts, scan, scan_values)  # before anything is opened
    executor = TaskExecutor(scheduler, workers, progress)  # checks the options, starts nothing
    n_steps = 4 + bool(scan or scan_values) + bool(pdf_sweep) + bool(pdf_bias) + bool(toys)
    n_steps += bool(cls_values or upper_limit)
    step = _Steps(progress, n_steps)
    step("opening the archive")
    with Refitter(
        archive,
        poi=poi,
        bb=bb,
        bounds=bounds,
        pdf_path=pdf_path,
        cache=cache,
        max_memory=max_memory,
        validate=validate,
        progress=progress,
    ) as rf:
        needs_theory(
            rf.metadata,
            rf.archive.path.name,
            pdf=pdf,
            pdf_scale=pdf_scale,
            theory_grid=theory,
            pdf_sweep=pdf_sweep,
            pdf_bias=pdf_bias,
        )
        timing = TimingOut(open=rf.t_open)
        result = rf.fit(
            pdf,
            grid=theory,
            pdf_scale=pdf_scale,
            asimov=asimov,
            freeze=freeze,
            impacts=impacts,
            minos=minos,
            scan=scan,
            scan_values=scan_values,
            unblind=unblind,
            command=command,
            step=step,
            timing=timing,
        )
        if (cls_values or upper_limit) and not result.fit.converged:
            result.notes.append("no hypothesis test or limit: the fit did not converge")
        # ---- studies of many fits, on one executor (a local cluster is started once)
        with executor, memory_bound(rf.bound):
            if (cls_values or upper_limit) and result.fit.converged:
                step("hypothesis tests and limits")
                t0 = time.perf_counter()
                result.hypotests, result.upper_limits = rf.hypotests(
                    result,
                    cls_values,
                    test_stat=test_stat,
                    upper_limit=upper_limit,
                    toys=toys_cls,
                    seed=seed,
                    executor=executor,
                )
                timing.hypotests = time.perf_counter() - t0
            used = result._theory
            if pdf_sweep and used is not None:
                step("PDF sweep")
                t0 = time.perf_counter()
                result.sweep = rf.pdf_sweep(
                    result,
                    freeze=result.fit.frozen,
                    asimov=asimov,
                    unblind=unblind,
                    executor=executor,
                )
                timing.sweep = time.perf_counter() - t0
            if pdf_bias and used is not None:
                step("PDF bias study")
                t0 = time.perf_counter()
                model_set = used if used.grid_source == "archive" else rf.theory(used.name)
                result.bias = rf.pdf_bias(model_set, freeze=result.fit.frozen, executor=executor)
                timing.bias = time.perf_counter() - t0
            if toys:
                step(f"{toys} toys")
                t0 = time.perf_counter()
                result.toys = rf.toys(
                    toys, result=result, seed=seed, freeze=result.fit.frozen, executor=executor
                )
                timing.toys = time.perf_counter() - t0
            if executor.used is not None:
                result.notes.append(f"the fits of the studies ran on a {executor.used}")
    step.close()
    timing.total = time.perf_counter() - t_start
    result.timing_s = timing
    return result


class _Steps:
    """The steps of a refit as a tqdm line on stderr (``progress``): 'wmass-refit 3/6: building
    the model [00:01]'; the fits of sweeps, bias studies and toys have bars of their own."""

    def __init__(self, progress: bool, total: int):
        from tqdm import tqdm

        self.total = total
        self.n = 0
        self.bar = tqdm(
            total=total, disable=not progress, leave=False, bar_format="{desc} [{elapsed}]"
        )

    def __call__(self, what: str) -> None:
        self.n += 1
        self.bar.set_description_str(f"wmass-refit {self.n}/{self.total}: {what}")

    def close(self) -> None:
        self.bar.close()
