"""Impacts of groups of uncertainties on the POIs, in the two definitions CMS quotes.

**Nominal** ("traditional") impact of a group G on POI p: sqrt(C_pG C_GG^-1 C_Gp), computed as
sqrt(C_pp - C'_pp) with C' the covariance when G is fixed (the inverse of H restricted to the
other free parameters: the same structured solve with G frozen). Per nuisance: C_pk /
sqrt(C_kk). ``stat`` and ``binByBinStat`` (MC statistics) are defined as rabbit defines them
(``Fitter.impacts_parms``; CMS's W-mass measurement), on the block of the POIs and the
unconstrained nuisances (the constrained nuisances fixed, as Combine's
``allConstrainedNuisances``): ``stat`` is the POI's uncertainty there with the Barlow-Beeston
factors frozen at their postfit values (:func:`frozen_bb`, as Combine freezes its
``autoMCStats`` group), ``binByBinStat`` the quadrature difference between that block's
uncertainty with the factors profiled and frozen. Both come from one more Hessian at the
minimum (no refit: with the factors frozen the minimum stays where it is). Combine's own
Barlow-Beeston lite (``bb="combine"``, whose variable enters through the width e(theta)) keeps
the older definition, a **refit without Barlow-Beeston** (:func:`variance_without_bb`).

**Global** impacts (arXiv:2307.04007, rabbit's likelihood-based definition): the shift of the POI
per one-sigma shift of a source's global observable, in the linear (Hessian) approximation:

* a gaussian-constrained nuisance k (constraint centre theta0_k): C_pk;
* the simulated-sample count of bin b (Barlow-Beeston global observable beta0_b):
  s_b (dbeta_b/dnu_b) (J C_p.)_b, with s_b = sqrt(d2 c/dbeta2) (gamma: sqrt(k beta0)/beta,
  normal: sqrt(k)) and J = dnu/dtheta;
* the observed counts (``stat``): the remainder, sqrt(C_pp - sum of the squares above).

Group impacts add their members in quadrature, so the squares of all sources add up to the
total variance C_pp by construction; on Asimov data the ``stat`` remainder equals the direct sum
over bins of the observed-count shifts (tested).
"""

from __future__ import annotations

import copy

import numpy as np

from ..jax_config import jnp
from ..model.build import Model
from . import engine
from .likelihood import Observation
from .linalg import unit_columns
from .minimize import minimize_newton
from .result import ImpactTable

DATA_STAT = "stat"
MC_STAT = "binByBinStat"

#: the nominal table's definition line (index: the model uses Combine's Barlow-Beeston lite)
NOMINAL_DEFINITION = (
    "sqrt(C_pG C_GG^-1 C_Gp); stat: constrained nuisances fixed, BB factors frozen at "
    "postfit; binByBinStat: sqrt of that block's variance with BB profiled minus frozen "
    "(rabbit, Combine's frozen autoMCStats)",
    "sqrt(C_pG C_GG^-1 C_Gp); stat: constrained nuisances fixed, no BB; "
    "binByBinStat: sqrt(C_pp - C_pp of a refit without BB)",
)


def _unit_scale(model: Model, poi: int) -> tuple[float, str]:
    info = model.info.pois[poi]
    return info.scale, info.unit


def without_bb(model: Model, obs: Observation) -> tuple[Model, Observation]:
    """The model and observation with Barlow-Beeston switched off in every bin (the likelihood
    of ``bb="none"``: beta = beta0 = 1), sharing the model's static description and so its
    compiled kernels."""
    m = copy.copy(model)
    m.arrays = {**model.arrays, "bb_on": jnp.zeros_like(model.arrays["bb_on"])}
    return m, obs._replace(beta0=jnp.ones_like(obs.beta0))


def frozen_bb(model: Model, theta: np.ndarray, obs: Observation) -> tuple[Model, Observation]:
    """The likelihood with every Barlow-Beeston factor held at its profiled value at ``theta``
    (rabbit's ``profile=False``, Combine's frozen ``autoMCStats`` group): a bin with
    ``bb_on`` False has beta = beta0 and no constraint term, so beta0 = beta(theta). At the
    minimum its gradient equals the profiled one (the envelope theorem): theta stays the
    minimum, and its Hessian lacks only the profiling's curvature. Shares the compiled
    kernels. ``bb="gamma"`` and ``"normal"`` only."""
    st = model.static
    if st.bb not in ("gamma", "normal"):
        raise ValueError(f"frozen Barlow-Beeston factors need bb gamma or normal, not {st.bb!r}")
    beta = engine.beta_at(st, model.arrays, jnp.asarray(theta), obs)
    m, o = without_bb(model, obs)
    return m, o._replace(beta0=beta)


def variance_without_bb(
    model: Model, theta: np.ndarray, obs: Observation, free: np.ndarray, pois: list[int]
) -> np.ndarray:
    """Variance of each POI in ``pois`` (theta units^2, shape (len(pois),)) from a refit of
    ``obs`` without Barlow-Beeston, started at ``theta`` with the same free parameters; nan
    where that fit does not converge."""
    m, o = without_bb(model, obs)
    out = minimize_newton(m, o, np.asarray(theta), free)
    if out.fac is None or not out.info.converged:
        return np.full(len(pois), np.nan)
    rhs = jnp.asarray(unit_columns(model.n_params, pois))
    x = np.asarray(engine.solve(m.static, m.arrays, out.fac, rhs))
    return np.array([x[p, r] for r, p in enumerate(pois)])


def mc_stat_impacts(
    model: Model, theta: np.ndarray, obs: Observation, c_rows: np.ndarray
) -> np.ndarray:
    """Global impacts (theta units) of the Barlow-Beeston global observables: (n_rows, n_bins)
    for rows of the covariance ``c_rows`` (n_rows, n_params); zeros without Barlow-Beeston."""
    st, ar = model.static, model.arrays
    if st.bb == "none":
        return np.zeros((c_rows.shape[0], st.n_bins))
    jv, factor = engine.mc_stat_inputs(st, ar, jnp.asarray(theta), obs, jnp.asarray(c_rows))
    return np.asarray(factor)[None, :] * np.asarray(jv)


#: the impact group of the nuisances that the archive puts in no group
UNGROUPED = "ungrouped"


def impact_groups(model: Model) -> dict[str, list[int]]:
    """The model's nuisance groups, and the nuisances in none of them (e.g. of an imported
    card without ``group`` lines) as the group :data:`UNGROUPED` (``ungrouped_`` ... if the
    archive has a group of that name), so that every source appears in an impact table."""
    groups = model.groups()
    loose = [i for i, p in enumerate(model.info.parameters) if p.kind != "poi" and not p.groups]
    if loose:
        name = UNGROUPED
        while name in groups:
            name += "_"
        groups[name] = loose
    return groups


def global_impacts(
    model: Model,
    theta: np.ndarray,
    obs: Observation,
    cov: np.ndarray,
    free: np.ndarray,
    pois: list[int] | None = None,
) -> list[ImpactTable]:
    """Global impacts on each POI (default all), per group and per nuisance."""
    pois = list(range(model.n_pois)) if pois is None else pois
    names = model.parameter_names
    constrained = model.constrained & free
    c_rows = np.asarray(cov)[pois]
    mc = mc_stat_impacts(model, theta, obs, c_rows)
    groups = impact_groups(model)
    out = []
    for r, p in enumerate(pois):
        scale, unit = _unit_scale(model, p)
        total_var = float(cov[p, p])
        src = np.where(constrained, c_rows[r], 0.0)
        var_src = float(np.sum(src**2))
        var_mc = float(np.sum(mc[r] ** 2))
        var_data = max(total_var - var_src - var_mc, 0.0)
        table = {
            g: scale * float(np.sqrt(np.sum(src[idx] ** 2))) for g, idx in groups.items() if idx
        }
        table[DATA_STAT] = scale * float(np.sqrt(var_data))
        if model.static.bb != "none":
            table[MC_STAT] = scale * float(np.sqrt(var_mc))
        per = {names[k]: scale * float(src[k]) for k in np.flatnonzero(constrained)}
        out.append(
            ImpactTable(
                kind="global",
                poi=names[p],
                unit=unit,
                total=scale * float(np.sqrt(total_var)),
                groups=table,
                nuisances=per,
                sum_in_quadrature=scale * float(np.sqrt(var_src + var_mc + var_data)),
                definition="arXiv:2307.04007 (likelihood-based, linearised); stat = remainder",
            )
        )
    return out


def nominal_impacts(
    model: Model,
    theta: np.ndarray,
    obs: Observation,
    hs,
    cov: np.ndarray,
    free: np.ndarray,
    pois: list[int] | None = None,
    small_group: int = 400,
    cov_diag: np.ndarray | None = None,
) -> list[ImpactTable]:
    """Nominal impacts on each POI (default all), per group and per nuisance. Groups of at most
    ``small_group`` free parameters use the covariance formula, larger ones a structured solve
    with the group fixed (both give sqrt(C_pG C_GG^-1 C_Gp)). Without the full covariance
    (``covariance="pois"``): ``cov`` holds the POIs' rows, ``cov_diag`` the diagonal and
    ``small_group=0``."""
    st, ar = model.static, model.arrays
    pois = list(range(model.n_pois)) if pois is None else pois
    names = model.parameter_names
    groups = impact_groups(model)
    poi_mask = np.zeros(model.n_params, dtype=bool)
    poi_mask[: model.n_pois] = True

    def conditional_var(hs_, free_: np.ndarray) -> np.ndarray:
        """[(H restricted to free_)^-1]_pp for each POI p (the same kernel as a Newton step:
        p = -(H^-1)(g * free) with g = -e_p)."""
        out = np.full(len(pois), np.nan)
        fr = jnp.asarray(free_)
        for r, p in enumerate(pois):
            e = np.zeros(model.n_params)
            e[p] = -1.0
            fac, x = engine.step(st, ar, hs_, jnp.asarray(e), 0.0, fr)
            if bool(fac.ok):
                out[r] = float(x[p])
        return out

    var = np.array([cov[p, p] for p in pois])
    cond = {}
    for g, idx in groups.items():
        idx = [i for i in idx if free[i]]
        if not idx:
            continue
        if len(idx) <= small_group:  # from the covariance: C_pp - C_pG C_GG^-1 C_Gp
            c_pg = cov[np.ix_(pois, idx)]
            sol = np.linalg.solve(cov[np.ix_(idx, idx)], c_pg.T)
            cond[g] = var - np.einsum("pg,gp->p", c_pg, sol)
        else:  # the inverse of H restricted to the other parameters (structured solve)
            f = free.copy()
            f[idx] = False
            cond[g] = conditional_var(hs, f)
    # the data statistics: the constrained nuisances fixed (the POIs and the unconstrained
    # nuisances free, as Combine's allConstrainedNuisances and rabbit), Barlow-Beeston factors
    # frozen at their postfit values; MC statistics: the quadrature difference of that block's
    # variance with the factors profiled and frozen (rabbit's impacts_parms, Combine's frozen
    # autoMCStats group). Both from one more Hessian at the minimum, no refit.
    stat_mask = free & (poi_mask | ~np.asarray(model.constrained))
    hs_stat = hs  # bb="none": the Hessian at the minimum has no Barlow-Beeston part
    if st.bb != "none":  # combine: x enters through the width e(theta), so without BB
        m_s, obs_s = without_bb(model, obs) if st.bb == "combine" else frozen_bb(model, theta, obs)
        _, _, hs_stat, _ = engine.value_grad_hess(st, m_s.arrays, jnp.asarray(theta), obs_s)
    stat = conditional_var(hs_stat, stat_mask)
    var_mc = None
    if st.bb == "combine":  # the quadrature difference with a refit without Barlow-Beeston
        var_mc = var - variance_without_bb(model, theta, obs, free, pois)
    elif st.bb != "none":
        var_mc = conditional_var(hs, stat_mask) - stat
    out = []
    for r, p in enumerate(pois):
        scale, unit = _unit_scale(model, p)
        table = {g: scale * float(np.sqrt(max(var[r] - v[r], 0.0))) for g, v in cond.items()}
        table[DATA_STAT] = scale * float(np.sqrt(max(stat[r], 0.0)))
        if var_mc is not None:
            d = var_mc[r]  # nan when a factorisation or the refit failed: shown as n/a
            table[MC_STAT] = scale * float(np.sqrt(max(d, 0.0))) if np.isfinite(d) else np.nan
        diag = np.diag(cov) if cov_diag is None else np.asarray(cov_diag)
        per = {
            names[k]: scale * float(cov[p, k] / np.sqrt(diag[k]))
            for k in range(model.n_params)
            if free[k] and not poi_mask[k] and diag[k] > 0
        }
        out.append(
            ImpactTable(
                kind="nominal",
                poi=names[p],
                unit=unit,
                total=scale * float(np.sqrt(var[r])),
                groups=table,
                nuisances=per,
                definition=NOMINAL_DEFINITION[st.bb == "combine"],
            )
        )
    return out
