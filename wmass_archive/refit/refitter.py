"""Build once, refit many times: the :class:`Refitter`.

A refitter opens an archive once, checks the options once, and keeps the model it builds
(its structure and its compiled kernels). Refitting with another PDF set, another scale factor
or another central theory grid swaps the new theory into that model
(:meth:`wmass_archive.model.Model.with_theory`) and starts the fit from the last minimum, so
that after the first fit a refit costs a few Newton steps, without reading the archive or
compiling again (a set with another number of nuisances builds and compiles its own model
once)::

    from wmass_archive.refit import Refitter

    with Refitter("likelihoods/default.h5") as rf:
        first = rf.fit()                           # builds, compiles, fits
        for path in my_grids:                      # a theorist's loop over predictions
            r = rf.fit(grid=path, impacts="none")  # well under a second each
            print(path, r.mw.shift_mev, r.mw.unc_mev)

:func:`~wmass_archive.refit.refit` and ``wmass-refit`` are made of one refitter.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..archive.reader import Archive, open_archive
from ..archive.validate import validate_archive
from ..model.budget import effective_bound, memory_bound
from ..theory.pdfnames import PathsLike
from ..theory.resolve import ResolvedTheory, as_theory, has_theory, resolve_theory
from ..theory.usergrid import TheoryLike
from .assemble import assemble
from .errors import RefitError
from .options import (
    POIS,
    BBArg,
    ImpactsArg,
    check_fit_options,
    check_memory,
    clip,
    needs_theory,
    parse_bounds,
    resolve_poi,
)
from .schema import BiasRow, RefitResult, ScanOut, SweepRow, TimingOut, ToysOut
from .tasks import ModelSpec, TaskExecutor, cached_model, remember_model

__all__ = ["Refitter"]


class Refitter:
    """An archive opened once with its refit options (``poi``, ``bb``, ``bounds``,
    ``max_memory``, LHAPDF ``pdf_path``, grid ``cache``: as for
    :func:`~wmass_archive.refit.refit`); :meth:`fit` refits it with any PDF set, scale factor
    or theory grid, reusing the model and its compiled kernels. ``archive``: a path, an open
    :class:`Archive` (not closed by the refitter) or None (the default archive). Use it as a
    context manager, or call :meth:`close`."""

    def __init__(
        self,
        archive: str | os.PathLike[str] | Archive | None = None,
        *,
        poi: str | None = None,
        bb: BBArg | None = None,
        bounds: Mapping[str, Sequence] | Sequence[str] | None = None,
        pdf_path: PathsLike = None,
        cache: bool = True,
        max_memory: float | None = None,
        validate: bool = False,
        progress: bool = False,
    ):
        t0 = time.perf_counter()
        if max_memory is not None and not (max_memory > 0 and np.isfinite(max_memory)):
            raise RefitError(f"the memory bound must be a positive number of GB, got {max_memory}")
        bounds_d = parse_bounds(bounds) if bounds else {}
        if archive is None:
            from .paths import default_archive_path

            archive = default_archive_path()
        if validate:
            validate_archive(archive.path if isinstance(archive, Archive) else archive)
        self._own = not isinstance(archive, Archive)
        self.archive: Archive = open_archive(archive) if self._own else archive  # type: ignore[arg-type]
        try:
            meta = self.archive.metadata
            self.path = str(self.archive.path.resolve())
            self.poi_definition, self.chosen_poi = resolve_poi(meta, poi)
            self.bb: str = bb or getattr(meta, "mc_stat", None) or "gamma"
            max_bytes = None if max_memory is None else int(max_memory * 1e9)
            self.bound = effective_bound(max_bytes, self.archive.limits)
            self.bounds = bounds_d
            self.pdf_path, self.cache, self.progress = pdf_path, cache, progress
            n_pois = len(meta.pois) + (self.poi_definition in POIS[1:])  # a split: two parts
            self._budget = dict(n_pois=n_pois, bb=self.bb)
            check_memory(meta, None, self._budget, self.bound, self.archive.path.name)
        except BaseException:
            self.close()
            raise
        self._last: dict[str, float] | None = None  # the last converged minimum, by name
        self._nominal: ResolvedTheory | None = None
        self._compile_cache = False
        self.t_open = time.perf_counter() - t0

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the archive when the refitter opened it."""
        if self._own and getattr(self, "archive", None) is not None:
            self.archive.close()

    def __enter__(self) -> Refitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Refitter {self.archive.path.name}: POI {self.poi_definition}, BB {self.bb}, "
            f"{'fitted' if self._last is not None else 'not fitted yet'}>"
        )

    @property
    def metadata(self):
        return self.archive.metadata

    # ------------------------------------------------------------------ theory and model
    def theory(
        self,
        pdf: str | ResolvedTheory | None = None,
        *,
        grid: TheoryLike | None = None,
        scale: float | None = None,
    ) -> ResolvedTheory | None:
        """The theory for a PDF set (a forgiving name, an LHAPDF set, or an already resolved
        theory; default the archive's nominal set), a user central ``grid`` and a ``scale``
        factor of the set's uncertainty; None for an archive without a folded process."""
        meta = self.metadata
        needs_theory(meta, self.archive.path.name, pdf=pdf, pdf_scale=scale, theory_grid=grid)
        if not has_theory(meta):
            return None
        if isinstance(pdf, ResolvedTheory):
            return as_theory(self.archive, pdf, grid=grid, scale=scale)
        if pdf is None and grid is None and scale is None:
            if self._nominal is None:
                self._nominal = self._resolve(None, None, None)
            return self._nominal
        return self._resolve(pdf, grid, scale)

    def _resolve(self, pdf, grid, scale) -> ResolvedTheory:
        meta = self.metadata
        check_memory(meta, pdf, self._budget, self.bound, self.archive.path.name)
        th = resolve_theory(
            self.archive,
            pdf,
            grid=grid,
            scale=scale,
            paths=self.pdf_path,
            cache=self.cache,
            progress=self.progress,
        )
        check_memory(meta, th.pdf, self._budget, self.bound, self.archive.path.name)
        return th

    def spec(self, theory: ResolvedTheory | None) -> ModelSpec:
        """The :class:`ModelSpec` of this refitter's model with ``theory`` (for fits on other
        processes: sweeps, bias studies, toys)."""
        return ModelSpec(
            self.path,
            theory=theory,
            poi=self.poi_definition,
            bb=self.bb,
            bounds=tuple((k, *v) for k, v in self.bounds.items()),
            max_model_bytes=self.bound,
        )

    def _study_spec(self) -> ModelSpec:
        """The spec of the PDF studies' fits: the single-mW POI, this refitter's bounds and
        memory bound (its model is reused when the POI definition is mw)."""
        return dataclasses.replace(self.spec(None), poi="mw")

    def model(self, theory: ResolvedTheory | None = None):
        """The :class:`~wmass_archive.model.Model` with ``theory`` (default the nominal one):
        kept from an earlier call, the last model with the theory swapped in, or built (and
        kept) from the open archive."""
        if theory is None:
            theory = self.theory()
        spec = self.spec(theory)
        model = cached_model(spec)
        if model is None:
            from ..model.build import build_model

            with memory_bound(self.bound):
                model = build_model(
                    self.archive,
                    theory=theory,
                    poi=self.poi_definition,
                    bb=self.bb,  # type: ignore[arg-type]
                    max_model_bytes=self.bound,
                )
            model = model.with_bounds(self.bounds)
            remember_model(spec, model)
        return model

    def sets(self, include: ResolvedTheory | None = None) -> list[ResolvedTheory]:
        """Every PDF set of the archive resolved (at its own scale), with ``include`` in place
        of the set of its name or, an external set, at the end."""
        th = self.metadata.theory
        if th is None:
            return []
        out = [
            include
            if include is not None and include.name == s.name and include.grid_source == "archive"
            else self._resolve(s.name, None, None)
            for s in th.pdf_sets
        ]
        if include is not None and include.source == "lhapdf":
            out.append(include)
        return out

    # ------------------------------------------------------------------ fits
    def fit(
        self,
        pdf: str | ResolvedTheory | None = None,
        *,
        grid: TheoryLike | None = None,
        pdf_scale: float | None = None,
        asimov: bool = False,
        freeze: Sequence[str] | str | None = None,
        impacts: ImpactsArg = "both",
        minos: bool = False,
        scan: int | None = None,
        scan_values: Sequence[float] | None = None,
        unblind: bool = False,
        warm_start: bool = True,
        command: str | None = None,
        step: Callable[[str], None] | None = None,
        timing: TimingOut | None = None,
    ) -> RefitResult:
        """Refit with the PDF set ``pdf`` (or a resolved theory), a user central ``grid`` and
        ``pdf_scale`` (see :meth:`theory`); ``asimov``, ``freeze``, ``impacts``, ``minos``,
        ``scan``/``scan_values`` and ``unblind`` as for :func:`~wmass_archive.refit.refit`.
        ``warm_start``: start from the last converged minimum of this refitter (parameters
        by name; a new set's PDF nuisances at 0). Returns the :class:`RefitResult`."""
        from ..fit.api import fit as run_fit
        from ..fit.likelihood import observation
        from ..fit.toys import asimov as asimov_obs

        step = step or (lambda what: None)
        timing = timing if timing is not None else TimingOut(open=self.t_open)
        self.t_open = 0.0
        kinds = check_fit_options(impacts, scan, scan_values)
        freeze_t = (freeze,) if isinstance(freeze, str) else tuple(freeze or ())
        step("PDF set and theory grid")
        t0 = time.perf_counter()
        theory = self.theory(pdf, grid=grid, scale=pdf_scale)
        timing.pdf_grid = time.perf_counter() - t0
        notes = list(theory.notes) if theory is not None else []
        self._enable_compilation_cache()
        step("building the model")
        t0 = time.perf_counter()
        model = self.model(theory)
        timing.build = time.perf_counter() - t0
        step("fitting: JIT compilation, minimum, covariance, impacts")
        start = None
        if warm_start and self._last is not None:
            names = set(model.parameter_names)
            start = {k: v for k, v in self._last.items() if k in names}
        res = run_fit(
            model,
            asimov=asimov,
            freeze=freeze_t or None,
            impacts=kinds,
            intervals=bool(minos),
            start=start,
            strict=False,
        )
        for k in type(res.timing).model_fields:  # the fit's own steps, by name
            if k not in ("build", "total"):
                setattr(timing, k, getattr(res.timing, k))
        if res.converged and not asimov:
            self._last = {p.name: p.value for p in res.parameters}
        if not res.converged:
            notes.append(f"the fit did not converge ({res.status}): {res.minimize.message}")
        if res.minimize.at_bound:
            names_b = res.minimize.at_bound
            notes.append(
                f"on a bound of its range at the minimum: {', '.join(map(clip, names_b[:8]))}"
                + (f" and {len(names_b) - 8} more" if len(names_b) > 8 else "")
            )
        # Asimov data are not data: their minimum is the reference by construction, and adding
        # the offset would print the offset itself; they are shown unblinded
        blinded = (
            (not unblind) and not asimov and any(p.blinding_offset != 0 for p in model.info.pois)
        )
        scans: list[ScanOut] = []
        if (scan or scan_values) and res.converged:
            step(f"likelihood scan ({len(scan_values) if scan_values else scan} points)")
            t0 = time.perf_counter()
            obs = asimov_obs(model) if asimov else observation(model.data, model.n_params)
            scans = _scans(
                model,
                obs,
                res,
                scan or 0,
                freeze_t,
                blinded,
                only=self.chosen_poi,
                physical=scan_values,
            )
            timing.scan = time.perf_counter() - t0
        result = assemble(
            self.metadata,
            self.path,
            theory,
            model,
            res,
            blinded=blinded,
            poi=self.chosen_poi or self.poi_definition,
            freeze=freeze_t,
            asimov=asimov,
            bb=self.bb,
            scans=scans,
            notes=notes,
            timing=timing,
            command=command,
        )
        result._fit, result._model = res, model
        result._theory = theory
        return result

    def _enable_compilation_cache(self) -> None:
        if self.cache and not self._compile_cache:
            from .paths import enable_compilation_cache

            enable_compilation_cache()
            self._compile_cache = True

    # ------------------------------------------------------------------ studies
    def hypotests(
        self,
        result: RefitResult,
        values: Sequence[float],
        *,
        test_stat: str = "qtilde",
        upper_limit: float | None = None,
        toys: int = 0,
        seed: int = 0,
        executor: TaskExecutor | None = None,
    ) -> tuple[list, list]:
        """CLs tests at the POI ``values`` (physical) and an upper limit at ``upper_limit``
        (a confidence level) for the fit of ``result``; with ``toys`` also from toys per
        hypothesis, on ``executor``."""
        from ..fit.likelihood import observation
        from ..fit.toys import asimov as asimov_obs

        model = result._model
        asimov = result.fit.asimov
        obs = asimov_obs(model) if asimov else observation(model.data, model.n_params)
        spec = self.spec(getattr(result, "_theory", None))
        with TaskExecutor(None, 1, False) if executor is None else _borrowed(executor) as ex:
            return _hypotests(
                model,
                obs,
                spec,
                self.chosen_poi,
                tuple(result.fit.frozen),
                list(values),
                test_stat,
                upper_limit,
                toys,
                seed,
                ex,
            )

    def pdf_sweep(
        self,
        result: RefitResult | None = None,
        *,
        freeze: Sequence[str] = (),
        asimov: bool = False,
        unblind: bool = False,
        executor: TaskExecutor | None = None,
    ) -> list[SweepRow]:
        """mW with each PDF set of the archive (and the set of ``result`` when external), at
        scale 1 and at the set's factor; ``result``: the main fit, reused for its own set and
        as the starting point of the others."""
        from .sweep import pdf_sweep as run_sweep
        from .tasks import fit_summary

        used = getattr(result, "_theory", None) if result is not None else None
        sets = self.sets(used)
        done, start = {}, None
        ok = result is not None and result.fit.converged
        if ok and self.poi_definition == "mw" and used is not None and used.grid_source != "user":
            tag = "orig" if used.scale == 1.0 else "scaled"
            done[f"{used.name}:{tag}"] = fit_summary(result._model, result._fit)
            start = {p.name: p.value for p in result._fit.parameters if p.kind != "pdf"}
        blinded = (
            not unblind and not asimov and any(p.blinding_offset != 0 for p in self.metadata.pois)
        )
        with TaskExecutor(None, 1, False) if executor is None else _borrowed(executor) as ex:
            return run_sweep(
                self.path,
                sets,
                reference=used.name if used is not None else None,
                freeze=tuple(freeze),
                asimov=asimov,
                blinded=blinded,
                bb=self.bb,
                start=start,
                done=done,
                executor=ex,
                base=self._study_spec(),
            )

    def pdf_bias(
        self,
        model_set: ResolvedTheory | None = None,
        *,
        freeze: Sequence[str] = (),
        executor: TaskExecutor | None = None,
    ) -> list[BiasRow]:
        """The PDF bias study of ``model_set`` (default the nominal set) against every set of
        the archive (module :mod:`~wmass_archive.refit.sweep`)."""
        from .sweep import pdf_bias as run_bias

        model_set = model_set or self.theory()
        if model_set is None:
            return []
        sets = self.sets(model_set)
        with TaskExecutor(None, 1, False) if executor is None else _borrowed(executor) as ex:
            return run_bias(
                self.path,
                model_set,
                sets,
                freeze=freeze,
                bb=self.bb,
                executor=ex,
                base=self._study_spec(),
            )

    def toys(
        self,
        n_toys: int,
        *,
        result: RefitResult | None = None,
        seed: int = 0,
        freeze: Sequence[str] = (),
        executor: TaskExecutor | None = None,
    ) -> ToysOut:
        """``n_toys`` pseudo-experiments generated at the fitted point of ``result`` (default
        theta = 0 of the nominal theory) and fitted with this refitter's model."""
        from .sweep import toys as run_toys

        if n_toys < 1:
            raise RefitError(f"the number of toys must be >= 1, got {n_toys}")
        theory = getattr(result, "_theory", None) if result is not None else self.theory()
        theta_gen = None
        if result is not None and result.fit.converged:
            theta_gen = np.array([p.value for p in result._fit.parameters])
        with TaskExecutor(None, 1, False) if executor is None else _borrowed(executor) as ex:
            return run_toys(
                self.spec(theory),
                n_toys,
                seed=seed,
                theta_gen=theta_gen,
                freeze=freeze,
                poi=self.chosen_poi,
                executor=ex,
            )


class _borrowed:
    """An executor owned by the caller, used in a ``with`` without being closed."""

    def __init__(self, executor: TaskExecutor):
        self.executor = executor

    def __enter__(self) -> TaskExecutor:
        return self.executor

    def __exit__(self, *exc: object) -> None:
        pass


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
