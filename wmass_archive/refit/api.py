"""The theorist's entry point: :func:`refit` an archive with another PDF set or theory
prediction and get a :class:`~wmass_archive.refit.schema.RefitResult`.

    >>> from wmass_archive.refit import refit
    >>> r = refit("likelihoods/default.h5", pdf="NNPDF31")
    >>> print(r.summary()); r.to_json("refit.json")
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from ..archive.reader import Archive, open_archive
from ..archive.validate import validate_archive
from ..hypotests import TEST_STATS
from ..model.budget import check_model_bytes, effective_bound, estimate_model_bytes, memory_bound
from .assemble import assemble
from .errors import RefitError
from .pdfswap import PathsLike, PDFChoice, resolve_pdf
from .schema import RefitResult, ScanOut, TimingOut
from .tasks import ModelSpec, TaskExecutor, build_spec_model
from .usergrid import TheoryLike, load_user_grid

ImpactsArg = Literal["nominal", "global", "both", "none"] | Sequence[str]
POIS = ("mw", "mw-charge", "mw-eta", "mw-barrel-endcap")
BBArg = Literal["gamma", "normal", "none", "combine"]


def _impact_kinds(impacts: ImpactsArg) -> tuple[str, ...]:
    if isinstance(impacts, str):
        table = {
            "both": ("nominal", "global"),
            "none": (),
            "nominal": ("nominal",),
            "global": ("global",),
        }
        if impacts not in table:
            raise RefitError(f"impacts must be nominal, global, both or none, got '{impacts}'")
        return table[impacts]
    kinds = tuple(impacts)
    bad = [k for k in kinds if k not in ("nominal", "global")]
    if bad:
        raise RefitError(f"unknown impact definition(s) {bad} (nominal, global)")
    return kinds


def resolve_poi(meta, poi: str | None) -> tuple[str, str | None]:
    """(POI definition of the model, the POI chosen by name or None) for ``poi``: one of
    :data:`POIS`, an archive POI's name, the name of any nuisance (made a POI, like Combine's
    ``--redefineSignalPOIs``), or None (``mw``, which on an archive without a mass POI means
    its own POIs, named after the first)."""
    names = [p.name for p in meta.pois]
    if poi is None:
        if any(p.kind == "mass" for p in meta.pois) or not names:
            return "mw", None
        return "mw", names[0]
    if poi in POIS:
        return poi, None
    if poi in names:
        return "mw", poi
    if any(n.name == poi for n in meta.nuisances):
        return poi, poi
    raise RefitError(
        f"unknown POI '{_clip(poi)}': choose {', '.join(POIS)}, a POI of the archive "
        f"({', '.join(names) or 'none'}) or one of its {len(meta.nuisances)} nuisances"
    )


def _clip(text: str, n: int = 80) -> str:
    """A user- or archive-given name for a message: printable, at most ``n`` characters."""
    safe = "".join(c if c.isprintable() else "?" for c in text)
    return safe if len(safe) <= n else safe[: n - 3] + "..."


def parse_bounds(items: Sequence[str] | Mapping[str, Sequence]) -> dict:
    """{name: (low, high)} from ``NAME=LO,HI`` strings (an empty side is unbounded) or a
    mapping; one clear error for anything else."""
    if isinstance(items, Mapping):
        return {str(k): tuple(v) for k, v in items.items()}
    out: dict[str, tuple[float | None, float | None]] = {}
    for item in items:
        name, eq, rng = item.rpartition("=")
        parts = rng.split(",")
        if not eq or not name or len(parts) != 2:
            raise RefitError(f"--bounds '{_clip(item)}': expected NAME=LO,HI (e.g. mu=0,10)")
        try:
            lo, hi = (float(x) if x.strip() else None for x in parts)
        except ValueError:
            raise RefitError(f"--bounds '{_clip(item)}': LO and HI must be numbers") from None
        out[name] = (lo, hi)
    return out


def _needs_theory(meta, name: str, **given: object) -> None:
    """One-line error when an option that changes the theory is given for an archive without
    one (e.g. imported from pyhf or Combine)."""
    if meta.theory is not None and any(p.folded for p in meta.processes):
        return
    used = [k for k, v in given.items() if v is not None and v is not False]
    if used:
        opts = ", ".join("--" + k.replace("_", "-") for k in used)
        raise RefitError(
            f"{name} has no theory (no folded process, no PDF set): {opts} do(es) not apply"
        )


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
      array in pb per generator bin; see :mod:`~wmass_archive.refit.usergrid`);
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
    kinds = _impact_kinds(impacts)
    if scan is not None and scan < 2:
        raise RefitError(f"a scan needs at least 2 points, got {scan}")
    if toys < 0:
        raise RefitError(f"the number of toys must be >= 0, got {toys}")
    if test_stat not in TEST_STATS:
        raise RefitError(f"unknown test statistic '{_clip(test_stat)}' ({', '.join(TEST_STATS)})")
    if upper_limit is not None and not 0.0 < upper_limit < 1.0:
        raise RefitError(f"the upper limit's confidence level must be in (0, 1), got {upper_limit}")
    if toys_cls < 0:
        raise RefitError(f"the number of CLs toys must be >= 0, got {toys_cls}")
    cls_values = [float(cls)] if isinstance(cls, int | float) else [float(x) for x in cls or ()]
    if toys_cls and not cls_values:
        raise RefitError("--toys-cls needs --cls (the values to test with toys)")
    if scan_values is not None and len(scan_values) < 1:
        raise RefitError("--scan-values needs at least one value")
    if max_memory is not None and not (max_memory > 0 and np.isfinite(max_memory)):
        raise RefitError(f"the memory bound must be a positive number of GB, got {max_memory}")
    max_bytes = None if max_memory is None else int(max_memory * 1e9)
    bounds_d = parse_bounds(bounds) if bounds else {}
    if isinstance(freeze, str):
        freeze = [freeze]
    freeze_t = tuple(freeze or ())
    executor = TaskExecutor(scheduler, workers, progress)  # checks the options, starts nothing
    timing = TimingOut()
    notes: list[str] = []
    n_steps = 4 + bool(scan or scan_values) + bool(pdf_sweep) + bool(pdf_bias) + bool(toys)
    n_steps += bool(cls_values or upper_limit)
    step = _Steps(progress, n_steps)

    # ---- archive
    step("opening the archive")
    t0 = time.perf_counter()
    own = not isinstance(archive, Archive)
    if archive is None:
        from .paths import default_archive_path

        archive = default_archive_path()
    if validate:
        validate_archive(archive.path if isinstance(archive, Archive) else archive)
    arc = open_archive(archive) if own else archive  # type: ignore[arg-type]
    try:
        path = str(arc.path.resolve())
        meta = arc.metadata
        timing.open = time.perf_counter() - t0
        poi_def, chosen = resolve_poi(meta, poi)
        _needs_theory(
            meta,
            arc.path.name,
            pdf=pdf,
            pdf_scale=pdf_scale,
            theory_grid=theory,
            pdf_sweep=pdf_sweep,
            pdf_bias=pdf_bias,
        )
        bb = bb or getattr(meta, "mc_stat", None) or "gamma"
        bound = effective_bound(max_bytes, arc.limits)
        n_pois = len(meta.pois) + (poi_def in POIS[1:])  # a split mass POI: two parts
        budget = dict(n_pois=n_pois, bb=bb)
        _check_memory(meta, pdf, budget, bound, arc.path.name)  # before any grid is read

        # ---- PDF set and theory grid
        step("PDF set and theory grid")
        t0 = time.perf_counter()
        choice = None
        if meta.theory is not None:
            choice = resolve_pdf(
                arc, pdf, paths=pdf_path, scale=pdf_scale, cache=cache, progress=progress
            )
        timing.pdf_grid = time.perf_counter() - t0
        if choice is not None:  # the set in use, maybe an external one, with its nuisances
            _check_memory(meta, choice.pdf, budget, bound, arc.path.name)
        user = load_user_grid(arc, theory) if theory is not None else None
        if choice is not None and choice.external is not None:
            notes += choice.external.notes
            if choice.external.parameters_note.startswith("WARNING"):
                notes.append(choice.external.parameters_note)
        sweep_sets: list[PDFChoice] = []
        if (pdf_sweep or pdf_bias) and choice is not None:
            sweep_sets = [
                choice if s.name == choice.name else resolve_pdf(arc, s.name) for s in arc.pdf_sets
            ]
            if choice.source == "lhapdf":
                sweep_sets.append(choice)
    finally:
        if own:
            arc.close()

    # ---- model and fit
    from ..fit.api import fit as run_fit
    from ..fit.likelihood import observation
    from ..fit.toys import asimov as asimov_obs
    from .paths import enable_compilation_cache

    if cache:
        enable_compilation_cache()
    spec = ModelSpec(
        path,
        pdf=choice.name if choice else None,
        external=choice.external if choice else None,
        scale=choice.scale if choice else None,
        theory=user.central if user is not None else None,
        poi=poi_def,
        bb=bb,
        bounds=tuple((k, *v) for k, v in bounds_d.items()),
        max_model_bytes=bound,
    )
    step("building the model")
    t0 = time.perf_counter()
    with memory_bound(bound):
        model = build_spec_model(spec)
    timing.build = time.perf_counter() - t0
    step("fitting: JIT compilation, minimum, covariance, impacts")
    res = run_fit(
        model,
        asimov=asimov,
        freeze=freeze_t or None,
        impacts=kinds,
        intervals=bool(minos),
        strict=False,
    )
    for k in type(res.timing).model_fields:  # the fit's own steps, by name
        if k not in ("build", "total"):
            setattr(timing, k, getattr(res.timing, k))
    if not res.converged:
        notes.append(f"the fit did not converge ({res.status}): {res.minimize.message}")
    if res.minimize.at_bound:
        names = res.minimize.at_bound
        notes.append(
            f"on a bound of its range at the minimum: {', '.join(map(_clip, names[:8]))}"
            + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        )
    blinded = (not unblind) and any(p.blinding_offset != 0 for p in model.info.pois)

    # ---- scans
    scans: list[ScanOut] = []
    obs = asimov_obs(model) if asimov else observation(model.data, model.n_params)
    if (scan or scan_values) and res.converged:
        step(f"likelihood scan ({len(scan_values) if scan_values else scan} points)")
        t0 = time.perf_counter()
        scans = _scans(
            model, obs, res, scan or 0, freeze_t, blinded, only=chosen, physical=scan_values
        )
        timing.scan = time.perf_counter() - t0

    # ---- hypothesis tests and limits
    hypotests, limits = [], []
    if (cls_values or upper_limit) and not res.converged:
        notes.append("no hypothesis test or limit: the fit did not converge")
    elif cls_values or upper_limit:
        step("hypothesis tests and limits")
        t0 = time.perf_counter()
        hypotests, limits = _hypotests(
            model,
            obs,
            spec,
            chosen,
            freeze_t,
            cls_values,
            test_stat,
            upper_limit,
            toys_cls,
            seed,
            executor,
        )
        timing.hypotests = time.perf_counter() - t0

    result = assemble(
        meta,
        path,
        choice,
        user,
        model,
        res,
        blinded=blinded,
        poi=chosen or poi_def,
        freeze=freeze_t,
        asimov=asimov,
        bb=bb,
        scans=scans,
        notes=notes,
        timing=timing,
        command=command,
    )
    result._fit, result._model = res, model
    result.hypotests, result.upper_limits = hypotests, limits

    # ---- studies of many fits, on one executor (a local cluster is started once)
    with executor, memory_bound(bound):
        if pdf_sweep and sweep_sets:
            from .sweep import pdf_sweep as run_sweep
            from .tasks import fit_summary

            step("PDF sweep")
            t0 = time.perf_counter()
            done, start = {}, None
            if poi_def == "mw" and res.converged and choice is not None and user is None:
                tag = "orig" if choice.scale == 1.0 else "scaled"
                done[f"{choice.name}:{tag}"] = fit_summary(model, res)
                start = {p.name: p.value for p in res.parameters if p.kind != "pdf"}
            result.sweep = run_sweep(
                path,
                sweep_sets,
                reference=choice.name if choice else None,
                freeze=freeze_t,
                asimov=asimov,
                blinded=blinded,
                bb=bb,
                start=start,
                done=done,
                executor=executor,
            )
            timing.sweep = time.perf_counter() - t0
        if pdf_bias and sweep_sets and choice is not None:
            from .sweep import pdf_bias as run_bias

            step("PDF bias study")
            t0 = time.perf_counter()
            result.bias = run_bias(
                path, choice, sweep_sets, freeze=freeze_t, bb=bb, executor=executor
            )
            timing.bias = time.perf_counter() - t0
        if toys:
            from .sweep import toys as run_toys

            step(f"{toys} toys")
            t0 = time.perf_counter()
            theta_gen = np.array([p.value for p in res.parameters]) if res.converged else None
            result.toys = run_toys(
                spec,
                toys,
                seed=seed,
                theta_gen=theta_gen,
                freeze=freeze_t,
                poi=chosen,
                executor=executor,
            )
            timing.toys = time.perf_counter() - t0
        if executor.used is not None:
            result.notes.append(f"the fits of the studies ran on a {executor.used}")
    step.close()
    timing.total = time.perf_counter() - t_start
    return result


def _check_memory(meta, pdf, budget: dict, bound: int, name: str) -> None:
    """Refuse (ResourceLimitError, one line) a model whose estimated memory is over
    ``bound`` bytes, from the metadata only (module ``wmass_archive.model.budget``)."""
    from ..archive.reader import find_pdf_set

    if isinstance(pdf, str) and meta.theory is not None:
        pdf = find_pdf_set(meta.theory.pdf_sets, pdf)  # None (no PDF nuisances) if external
    check_model_bytes(estimate_model_bytes(meta, pdf=pdf, **budget), bound, archive=name)


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


def _hypotests(
    model, obs, spec, poi, freeze, values, test_stat, cl, n_toys, seed, executor
) -> tuple[list, list]:
    """The hypothesis tests at ``values`` (asymptotic, and from ``n_toys`` toys per
    hypothesis when given, run on ``executor``) and the upper limit at ``cl``."""
    from ..fit.hypotest import AsymptoticCalculator
    from .tasks import FitTask, run_cls_toys

    calc = AsymptoticCalculator(model, obs, poi=poi, test_stat=test_stat, freeze=freeze or None)
    tests = [calc.hypotest(v) for v in values]
    if n_toys:
        chunk = 25
        for v in values:
            tasks = []
            for which, theta in zip(("sb", "b"), calc.toy_generation_points(v), strict=True):
                for k in range(0, n_toys, chunk):
                    tasks.append(
                        FitTask(
                            label=f"{which} {v:g} {k}",
                            spec=spec,
                            kind="cls_toys",
                            freeze=tuple(freeze),
                            n_toys=min(chunk, n_toys - k),
                            seed=seed + k + (0 if which == "sb" else 10_000_019),
                            theta_gen=theta,
                            extra={
                                "mu": v,
                                "poi": calc.poi_info.name,
                                "test_stat": test_stat,
                                "which": which,
                            },
                        )
                    )
            outs = executor.run(tasks, desc=f"CLs toys at {v:g}", fn=run_cls_toys)
            q = {w: [x for o in outs if o["which"] == w for x in o["q"]] for w in ("sb", "b")}
            tests.append(calc.toy_result(v, np.array(q["sb"]), np.array(q["b"])))
    limits = [calc.upper_limit(cl)] if cl else []
    return tests, limits


def _scans(
    model,
    obs,
    res,
    n: int,
    freeze: tuple[str, ...],
    blinded: bool,
    only: str | None = None,
    physical: Sequence[float] | None = None,
) -> list[ScanOut]:
    """Scans of every POI (of ``only`` when given) over +-3 sigma, ``n`` points, or at the
    ``physical`` values of the POI (as the result shows them: with the blinding offset when
    blinded)."""
    from ..fit.scan import scan as run_scan

    theta = res.values
    cov = np.asarray(res.covariance)
    free = model.free_mask(freeze or None)
    out = []
    for i, p in enumerate(model.info.pois):
        if only is not None and p.name != only:
            continue
        sig = float(np.sqrt(cov[i, i]))
        if physical is not None:
            off = p.blinding_offset if blinded else 0.0
            values = (np.asarray(physical, dtype=np.float64) - p.central - off) / p.scale
        else:
            values = theta[i] + sig * np.linspace(-3.0, 3.0, n)
        q, ok = run_scan(model, obs, i, values, theta, res.nll, cov, free)
        shift = [float(p.scale * v + (p.blinding_offset if blinded else 0.0)) for v in values]
        out.append(
            ScanOut(
                poi=p.name,
                unit=p.unit,
                shift_mev=shift,
                physical_values=(
                    [float(x) for x in physical]
                    if physical is not None
                    else [p.central + x for x in shift]
                ),
                two_delta_nll=[float(x) for x in q],
                converged=[bool(x) for x in ok],
            )
        )
    return out
