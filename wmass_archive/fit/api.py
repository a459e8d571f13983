"""The fitter's entry point: :func:`fit` an archive (or a built model) and get a
:class:`~wmass_archive.fit.result.FitResult`.

    >>> from wmass_archive.fit import fit
    >>> r = fit("demo.h5", pdf="DemoReplicas", impacts=("nominal", "global"))
    >>> print(r.summary()); r.to_json("fit.json")
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy.special import chdtrc  # the chi2 survival function; scipy.stats costs 0.4 s of import

from ..archive.reader import Archive
from ..errors import ArchiveError
from ..jax_config import jax, jnp
from ..model.build import BBMode, Model, build_model
from ..model.poi import POISplit
from . import diagnostics, engine
from .impacts import global_impacts, nominal_impacts
from .likelihood import Observation
from .likelihood import observation as make_observation
from .linalg import unit_columns
from .minimize import MinimizeInfo, minimize_newton
from .result import (
    FitResult,
    GoodnessOfFit,
    ParameterResult,
    POIResult,
    ScanResult,
    Timing,
    current_versions,
)
from .scan import profile_interval, scan
from .toys import asimov as asimov_observation


class FitError(ArchiveError):
    """A fit did not converge (with ``strict=True``); ``info`` holds the diagnostics."""

    def __init__(self, message: str, info: MinimizeInfo | None = None):
        super().__init__(message)
        self.info = info


def theta_vector(model: Model, values: Any, default: float = 0.0) -> np.ndarray:
    """theta (n_params,) from an array, or a {name: theta} mapping over ``default``."""
    if values is None:
        return np.full(model.n_params, default)
    if isinstance(values, Mapping):
        out = np.full(model.n_params, default)
        for k, v in values.items():
            out[model.index(k)] = float(v)
        return out
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (model.n_params,):
        raise ArchiveError(f"theta must have shape ({model.n_params},), got {out.shape}")
    return out


def _resolve_model(archive_or_model, pdf, theory_grid, poi, bb) -> tuple[Model, float]:
    t0 = time.perf_counter()
    if isinstance(archive_or_model, Model):
        m = archive_or_model
        if bb is not None and bb != m.static.bb:
            m = m.with_options(bb=bb)
        if pdf is not None or theory_grid is not None or poi not in (None, "mw"):
            raise ArchiveError("pdf=, theory_grid= and poi= apply when building: pass an archive")
        return m, 0.0
    if not isinstance(archive_or_model, Archive | str) and not hasattr(
        archive_or_model, "__fspath__"
    ):
        raise ArchiveError(f"cannot fit a {type(archive_or_model).__name__}")
    m = build_model(archive_or_model, pdf=pdf, theory_grid=theory_grid, poi=poi or "mw", bb=bb)
    return m, time.perf_counter() - t0


#: the (static structure, array shapes, covariance mode) whose kernels this process compiled
_WARMED: set[tuple] = set()


def _shape_key(model: Model, obs: Observation, covariance: str) -> tuple:
    shapes = tuple(
        (tuple(leaf.shape), str(leaf.dtype))
        for leaf in jax.tree_util.tree_leaves((model.arrays, obs))
        if hasattr(leaf, "shape")
    )
    return (model.static, shapes, covariance)


def _warmup(
    model: Model, obs: Observation, theta: np.ndarray, free: np.ndarray, covariance: str
) -> float:
    """Compile (and run once) every kernel of a fit; seconds taken (0 when this process has
    compiled them for a model of the same structure and shapes: a refit with another theory
    does not pay again). For the full covariance that is the kernel of its factors (no
    n_params^2 array: the matrix itself is assembled on the host, engine.covariance_numpy)."""
    key = _shape_key(model, obs, covariance)
    if key in _WARMED:
        return 0.0
    t0 = time.perf_counter()
    st, ar = model.static, model.arrays
    th, fr = jnp.asarray(theta), jnp.asarray(free)
    _, g, hs, _ = engine.value_grad_hess(st, ar, th, obs)
    fac, p = engine.step(st, ar, hs, g, 0.0, fr)
    out = [p, engine.nll(st, ar, th, obs)]
    if covariance == "full":
        out.append(engine.covariance_factors(st, ar, fac))
    else:
        out += [
            engine.solve(st, ar, fac, jnp.asarray(unit_columns(model.n_params, model.n_pois))),
            diagnostics.covariance_diagonal(st, ar, fac),
        ]
    jax.block_until_ready(out)
    _WARMED.add(key)
    return time.perf_counter() - t0


class _Covariance:
    """What the fit keeps of the covariance C = H^-1: the full matrix (``full``, or None with
    covariance="pois"), the POIs' columns ``cols`` (n_params, n_pois) and the diagonal
    ``diag`` (n_params,); ``rows(idx)`` gives rows of C (solved on demand without ``full``)."""

    def __init__(self, model: Model, full=None, cols=None, diag=None, fac=None):
        n, k = model.n_params, model.n_pois
        self.model, self.fac, self.full = model, fac, full
        if full is not None:
            cols, diag = full[:, :k], np.diag(full)
        self.cols = np.full((n, k), np.nan) if cols is None else cols
        self.diag = np.full(n, np.nan) if diag is None else diag

    def rows(self, idx: np.ndarray) -> np.ndarray:
        if self.full is not None:
            return self.full[np.asarray(idx)]
        st, ar = self.model.static, self.model.arrays
        idx = np.asarray(idx)
        # pad the right-hand sides to a power of two: few distinct shapes, few compilations
        width = max(8, 1 << int(np.ceil(np.log2(max(idx.size, 1)))))
        e = np.zeros((self.model.n_params, width))
        e[idx, np.arange(idx.size)] = 1.0
        return np.asarray(engine.solve(st, ar, self.fac, jnp.asarray(e))).T[: idx.size]


def _covariance(model: Model, fac, mode: str) -> _Covariance:
    """The covariance from the factorisation at the minimum (None: not positive definite)."""
    st, ar = model.static, model.arrays
    n = model.n_params
    if fac is None:
        return _Covariance(model, full=np.full((n, n), np.nan) if mode == "full" else None)
    if mode == "full":
        return _Covariance(model, full=engine.covariance_numpy(st, ar, fac), fac=fac)
    e = jnp.asarray(unit_columns(n, model.n_pois))
    cols = np.asarray(engine.solve(st, ar, fac, e))
    diag = np.asarray(diagnostics.covariance_diagonal(st, ar, fac))
    return _Covariance(model, cols=cols, diag=diag, fac=fac)


def fit(
    archive_or_model: Archive | Model | str,
    *,
    poi: str | POISplit | None = "mw",
    pdf: str | None = None,
    theory_grid: np.ndarray | None = None,
    bb: BBMode | None = None,
    data: np.ndarray | None = None,
    observation: Observation | None = None,
    observation_: Observation | None = None,
    asimov: bool | Mapping[str, float] | np.ndarray = False,
    freeze: Iterable[str] | str | None = None,
    start: Mapping[str, float] | np.ndarray | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    minimizer: Literal["newton", "minuit"] = "newton",
    impacts: Sequence[str] = ("nominal", "global"),
    intervals: Sequence[str] | bool = False,
    scan_points: Mapping[str, Sequence[float]] | None = None,
    gof: bool = True,
    covariance: Literal["full", "pois"] = "full",
    edm_tol: float = 1e-8,
    max_iter: int = 100,
    strict: bool = True,
    verbose: bool = False,
) -> FitResult:
    """Fit and return a :class:`FitResult`.

    * ``archive_or_model``: a path, an open :class:`Archive` (the model is built with ``poi``,
      ``pdf``, ``theory_grid``, ``bb``; see :func:`~wmass_archive.model.build_model`) or a
      :class:`Model`;
    * data: the archive's observed counts, or ``data`` (n_bins,), or a full ``observation``
      (counts and global observables, e.g. a toy; ``observation_`` is an alias), or
      ``asimov`` (True: expected at theta = 0; a {name: theta} mapping or a theta array);
    * ``freeze``: parameter names, group names or glob patterns held at their start values;
    * ``bounds``: {name: (low, high)} ranges replacing the archive's (format 1.2): a POI's in
      its physical units, any other parameter's in theta; the minimum, scans, intervals and
      toys stay within them, and ``result.minimize.at_bound`` names the parameters that end on
      one;
    * ``minimizer``: ``"newton"`` (fast, structured exact Hessian) or ``"minuit"`` (MIGRAD with
      the JAX gradient, HESSE from the JAX Hessian, MINOS for ``intervals``);
    * ``impacts``: any of "nominal", "global"; ``intervals``: POI names (or True for all) whose
      2 dNLL = 1 interval is computed; ``scan_points``: {POI name: theta values} to scan;
    * ``covariance``: ``"full"`` (the n_params^2 matrix, ``result.covariance``) or ``"pois"``
      (only the POIs' columns and the diagonal, solved with the structured factorisation: for
      models whose full covariance does not fit in memory, e.g. 8 n_params^2 bytes = 3.2 GB at
      20 000 parameters; every result field is still filled, ``result.correlation()`` is not
      available; ``minimizer="newton"`` only);
    * ``strict``: raise :class:`FitError` when the fit does not converge, or when a number of
      the result is not finite (naming it). With ``strict=False`` such numbers are NaN and
      listed in ``result.warnings``. Invalid inputs (non-finite or negative counts, counts in a
      bin without expected yield, non-finite start values) and a likelihood that stops being
      finite during the fit raise :class:`FitError` naming the bins or parameters either way."""
    if covariance not in ("full", "pois"):
        raise ArchiveError(f"unknown covariance mode {covariance!r} (full or pois)")
    if minimizer == "minuit" and covariance == "pois":
        raise ArchiveError("covariance='pois' needs minimizer='newton' (HESSE inverts the full H)")
    t_start = time.perf_counter()
    model, t_build = _resolve_model(archive_or_model, pdf, theory_grid, poi, bb)
    model = model.with_bounds(bounds)
    n = model.n_params
    free = model.free_mask(freeze)
    theta_start = theta_vector(model, start)
    is_asimov = asimov is not False and asimov is not None
    observation = observation if observation is not None else observation_
    if observation is not None:
        obs = observation
    elif is_asimov:
        th_a = np.zeros(n) if asimov is True else theta_vector(model, asimov)
        obs = asimov_observation(model, th_a)
    else:
        obs = make_observation(model.data if data is None else data, n)
    problems = diagnostics.check_inputs(model, obs, theta_start)
    if problems:
        raise FitError(f"cannot fit {model.info.archive}: {'; '.join(problems)}")
    timing = Timing(build=t_build)
    timing.compile = _warmup(model, obs, theta_start, free, covariance)

    # ---- minimum and covariance
    t0 = time.perf_counter()
    if intervals is True:
        interval_names = model.poi_names
    else:
        interval_names = list(intervals or [])
    interval_idx = [model.index(x) for x in interval_names]
    minos: dict[int, tuple[float, float]] = {}
    if minimizer == "newton":
        out = minimize_newton(
            model, obs, theta_start, free, edm_tol=edm_tol, max_iter=max_iter, verbose=verbose
        )
        theta, info, hs = out.theta, out.info, out.hs
        timing.fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        cv = _covariance(model, out.fac, covariance)
    elif minimizer == "minuit":
        from .minuit import minimize_minuit

        theta, info, cov_m, minos = minimize_minuit(
            model, obs, theta_start, free, minos=interval_idx
        )
        _, _, hs, _ = engine.value_grad_hess(model.static, model.arrays, jnp.asarray(theta), obs)
        cv = _Covariance(model, full=cov_m)
        timing.fit = time.perf_counter() - t0
        t0 = time.perf_counter()
    else:
        raise ArchiveError(f"unknown minimizer {minimizer!r} (newton or minuit)")
    timing.covariance = time.perf_counter() - t0
    if info.status == "invalid":
        raise FitError(f"fit of {model.info.archive} failed: {info.message}", info)
    if not info.converged and strict:
        raise FitError(f"fit did not converge ({info.status}): {info.message}", info)

    # ---- conditioning: near-degenerate parameters
    warnings: list[str] = []
    usable = info.converged and bool(np.all(np.isfinite(cv.diag[free])))
    if usable:
        warnings += diagnostics.conditioning(model, hs, cv.diag, cv.rows, free)

    # ---- intervals, scans
    t0 = time.perf_counter()
    opts = dict(edm_tol=edm_tol, max_iter=max_iter)
    if minimizer == "newton" and usable:
        for i in interval_idx:
            try:
                minos[i] = profile_interval(model, obs, i, theta, info.nll, cv.cols, free, **opts)
            except RuntimeError as exc:  # no crossing of 2 dNLL = 1 within the search range
                text = f"no profile interval for {model.parameter_names[i]}: {exc}"
                if strict:
                    raise FitError(f"fit of {model.info.archive}: {text}", info) from exc
                warnings.append(text)
    scans = []
    for name, values in (scan_points or {}).items() if usable else ():
        i = model.index(name)
        q, ok = scan(model, obs, i, values, theta, info.nll, cv.cols, free, **opts)
        pinfo = model.info.pois[i] if i < model.n_pois else None
        phys = [
            (pinfo.central + pinfo.scale * v + pinfo.blinding_offset) if pinfo else v
            for v in values
        ]
        scans.append(
            ScanResult(
                poi=name,
                values=[float(v) for v in values],
                physical_values=[float(x) for x in phys],
                two_delta_nll=[float(x) for x in q],
                converged=[bool(x) for x in ok],
            )
        )
    timing.intervals = time.perf_counter() - t0

    # ---- impacts (global ones need only the POIs' rows of C; nominal ones per group are
    # structured solves with the group fixed when the full C is not kept)
    t0 = time.perf_counter()
    tables = []
    if usable:
        c_imp = cv.full if cv.full is not None else cv.cols.T
        if "nominal" in impacts:
            if cv.full is not None:
                tables += nominal_impacts(model, theta, obs, hs, c_imp, free)
            else:
                tables += nominal_impacts(
                    model, theta, obs, hs, c_imp, free, small_group=0, cov_diag=cv.diag
                )
        if "global" in impacts:
            tables += global_impacts(model, theta, obs, c_imp, free)
    timing.impacts = time.perf_counter() - t0

    # ---- goodness of fit
    gof_result = None
    if gof:
        n_active = int(np.sum(np.asarray(model.arrays["bin_active"])))
        unconstrained_free = int(np.sum(free & ~model.constrained))
        ndof = n_active - unconstrained_free
        chi2 = 2.0 * info.nll
        gof_result = GoodnessOfFit(
            chi2=chi2,
            ndof=ndof,
            # a chi2 rounded below 0 (Asimov data): p = 1, as chi2.sf gives, not chdtrc's NaN
            p_value=float(chdtrc(max(ndof, 1), max(chi2, 0.0))),
            nll=info.nll,
        )

    result = FitResult(
        model=model.info,
        minimizer=minimizer,
        asimov=is_asimov,
        status=info.status,
        converged=info.converged,
        edm=info.edm,
        nll=info.nll,
        minimize=info,
        pois=_poi_results(model, theta, cv, minos, set(info.at_bound)),
        parameters=_parameter_results(model, theta, cv, free, np.asarray(obs.theta0)),
        impacts=tables,
        gof=gof_result,
        scans=scans,
        timing=timing,
        versions=current_versions(with_iminuit=minimizer == "minuit"),
        covariance=cv.full,
        covariance_mode=covariance,
        covariance_pois=cv.cols,
        warnings=warnings,
    )
    if info.converged:  # "converged" must never come with a meaningless POI uncertainty
        for i, (p, pr) in enumerate(zip(model.info.pois, result.pois, strict=True)):
            if not free[i] or pr.at_bound:
                continue
            problem = diagnostics.poi_error_problem(p.name, p.central, p.scale, pr.value, pr.error)
            if problem is not None:
                raise FitError(
                    f"fit of {model.info.archive}: {problem}; the archive's numbers cannot "
                    "give a measurement (check it with wmass-archive validate)",
                    info,
                )
    bad = _nonfinite_fields(result)
    if bad:
        where = diagnostics.name_list(bad, limit=8)
        if strict:
            raise FitError(f"fit of {model.info.archive}: not finite in the result: {where}", info)
        reason = "" if info.converged else f" (the fit did not converge: {info.status})"
        result.warnings.append(f"not computed (NaN){reason}: {where}")
    result.timing.total = time.perf_counter() - t_start
    return result


def _nonfinite_fields(result: FitResult) -> list[str]:
    """Paths of the non-finite numbers of a result, list items named by their name, POI or
    kind: e.g. ``pois[mW].error``, ``impacts[nominal mW].groups.binByBinStat``."""
    out: list[str] = []

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, float):
            if not math.isfinite(obj):
                out.append(path)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                key = i
                if isinstance(v, dict):
                    key = (
                        v.get("name") or " ".join(str(v[k]) for k in ("kind", "poi") if k in v) or i
                    )
                walk(v, f"{path}[{key}]")

    walk(result.model_dump(mode="python", exclude={"model", "versions", "timing"}), "")
    return out


def _poi_results(model: Model, theta, cv: _Covariance, minos, at_bound=()) -> list[POIResult]:
    out = []
    bounds = model.bounds
    for i, p in enumerate(model.info.pois):
        lo, hi = bounds[i]
        phys_bounds = None
        if np.isfinite(lo) or np.isfinite(hi):
            phys_bounds = tuple(p.physical(float(x)) if np.isfinite(x) else None for x in (lo, hi))
        err = float(np.sqrt(cv.diag[i])) if cv.diag[i] >= 0 else float("nan")
        iv = minos.get(i)
        out.append(
            POIResult(
                name=p.name,
                kind=p.kind,
                unit=p.unit,
                value=float(theta[i]),
                error=err,
                physical_value=p.central + p.scale * float(theta[i]) + p.blinding_offset,
                physical_error=p.scale * err,
                scale=p.scale,
                blinding_offset=p.blinding_offset,
                interval=(float(iv[0]), float(iv[1])) if iv else None,
                physical_interval=(
                    (
                        p.central + p.scale * float(iv[0]) + p.blinding_offset,
                        p.central + p.scale * float(iv[1]) + p.blinding_offset,
                    )
                    if iv
                    else None
                ),
                at_bound=p.name in at_bound,
                bounds=phys_bounds,
            )
        )
    return out


def _parameter_results(model: Model, theta, cv: _Covariance, free, theta0) -> list[ParameterResult]:
    out = []
    cons = model.constrained
    diag = cv.diag
    for i, p in enumerate(model.info.parameters):
        err = float(np.sqrt(diag[i])) if diag[i] >= 0 else float("nan")
        c = bool(cons[i])
        out.append(
            ParameterResult(
                name=p.name,
                kind=p.kind,
                value=float(theta[i]),
                error=err,
                prefit=float(theta0[i]),
                constrained=c,
                frozen=not bool(free[i]),
                pull=float(theta[i] - theta0[i]) if c else None,
                constraint=err if c else None,
            )
        )
    return out
