"""Numerical diagnostics of a fit, for messages that say precisely what went wrong and where.

* :func:`locate_nonfinite`: where a NaN or an infinity comes from (a parameter value, an
  observed count, a global observable, an expected yield, a bin's likelihood term, a gradient
  component), named;
* :func:`hessian_eigen`: the smallest eigenvalues of the Hessian scaled to a unit diagonal,
  H_ij / sqrt(H_ii H_jj), and their directions named by their largest components. A value near
  0 means that a combination of parameters is (nearly) undetermined, a negative one that the
  point is not a minimum along that direction; the scaling makes the numbers independent of
  the parameters' units. Dense ``eigh`` for small models, otherwise shift-invert Lanczos (ARPACK)
  with the structured factorisation of H + lambda D (the smallest lambda >= 0 that factorises);
* :func:`conditioning`: after a fit, the pairs of parameters correlated beyond +-0.99 (found
  through MINUIT's global correlation coefficient rho_i = sqrt(1 - 1 / (C_ii H_ii)), which
  bounds every pair correlation of parameter i), and a nearly singular Hessian
  (C_ii H_ii > 1e8), as warnings naming the parameters. A global correlation near 1 alone is
  common and harmless (a nuisance constrained by its prior along a direction the data do not
  see) and is not reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..jax_config import jax, jnp
from ..model.build import Model
from ..model.expected import ModelStatic
from . import engine, linalg
from .likelihood import Observation, bin_terms

#: |correlation| above which a pair of parameters is reported as near-degenerate
DEGENERACY_THRESHOLD = 0.99
#: C_ii H_ii above which the Hessian is reported as nearly singular (and its smallest
#: eigenvalues are computed): the condition number of the unit-diagonal Hessian is at least this
SINGULAR_THRESHOLD = 1e8


# ----------------------------------------------------------------------------- kernels
@partial(jax.jit, static_argnums=0)
def covariance_diagonal(st: ModelStatic, ar: dict, fac: linalg.Factor) -> jnp.ndarray:
    """diag(H^-1) on the free parameters from a factorisation, (n_params,)."""
    return linalg.covariance_diagonal(st, ar, fac)


@partial(jax.jit, static_argnums=0)
def _scaled_factor(st: ModelStatic, ar: dict, hs, s, lam, free):
    hs_s = linalg.scale_hessian(st, ar, hs, s)
    return hs_s, linalg.factorize(st, ar, hs_s, lam, free)


@partial(jax.jit, static_argnums=0)
def _matvec(st: ModelStatic, ar: dict, hs, v):
    return linalg.matvec(st, ar, hs, v)


# ----------------------------------------------------------------------------- names
def bin_label(model: Model, b: int) -> str:
    """``channel[index]`` of a bin of the concatenated channels (index C-ordered)."""
    offs = np.asarray(model.channel_offsets)
    c = int(np.searchsorted(offs, b, side="right") - 1)
    c = min(max(c, 0), len(model.info.channels) - 1)
    return f"{model.info.channels[c]}[{int(b - offs[c])}]"


def name_list(names: list[str], limit: int = 6) -> str:
    """'a, b, c' or 'a, b, c and 12 more'."""
    head = ", ".join(names[:limit])
    return head + (f" and {len(names) - limit} more" if len(names) > limit else "")


def direction(names: list[str], idx: np.ndarray, vec: np.ndarray, n_terms: int = 4) -> str:
    """A unit vector over the parameters ``idx`` as '+0.707 a -0.707 b' (largest terms)."""
    order = np.argsort(-np.abs(vec))[:n_terms]
    big = float(np.abs(vec[order[0]])) if order.size else 0.0
    terms = [f"{vec[j]:+.3f} {names[idx[j]]}" for j in order if abs(vec[j]) >= 0.1 * big]
    rest = int(np.sum(np.abs(vec) >= 0.1 * big)) - len(terms)
    return " ".join(terms) + (f" (+{rest} smaller terms)" if rest > 0 else "")


# ----------------------------------------------------------------------------- non-finite
def check_inputs(model: Model, obs: Observation, theta: np.ndarray) -> list[str]:
    """What is wrong with the inputs of a fit, named: parameter values that are not finite,
    observed counts that are not finite or negative or that fall in a bin without any expected
    yield (which the likelihood would otherwise ignore), constraint centres and Barlow-Beeston
    global observables that are not finite (or beta0 <= 0). Empty when all is well."""
    names = model.parameter_names
    th = np.asarray(theta, dtype=np.float64)
    n = np.asarray(obs.n)
    if n.shape != (model.n_bins,):
        return [f"the observed counts have shape {n.shape}, expected ({model.n_bins},)"]
    parts = []
    bad = np.flatnonzero(~np.isfinite(th))
    if bad.size:
        parts.append(f"parameter value not finite: {name_list([names[i] for i in bad])}")
    bad = np.flatnonzero(~np.isfinite(n) | (n < 0))
    if bad.size:
        parts.append(
            "observed count not finite or negative in bins "
            + name_list([f"{bin_label(model, b)} ({n[b]:g})" for b in bad])
        )
    t0 = np.asarray(obs.theta0)
    bad = np.flatnonzero(~np.isfinite(t0))
    if bad.size:
        parts.append(f"constraint centre theta0 not finite: {name_list([names[i] for i in bad])}")
    b0 = np.asarray(obs.beta0)
    bad = np.flatnonzero(~np.isfinite(b0) | (b0 <= 0))
    if bad.size:
        parts.append(
            "Barlow-Beeston global observable beta0 not finite or <= 0 in bins "
            + name_list([bin_label(model, b) for b in bad])
        )
    empty = np.flatnonzero(~np.asarray(model.arrays["bin_active"]) & (n > 0))
    if empty.size:
        parts.append(
            "observed events in bins without any expected yield: "
            + name_list([f"{bin_label(model, b)} ({n[b]:g})" for b in empty])
        )
    return parts


def locate_nonfinite(model: Model, obs: Observation, theta: np.ndarray) -> str:
    """A sentence naming where the nll or its gradient at ``theta`` stops being finite, or ""
    when both are finite: the inputs (:func:`check_inputs`), then the expected yields per
    process, the bins' likelihood terms and the gradient."""
    parts = check_inputs(model, obs, theta)
    if parts:
        return "; ".join(parts)
    names = model.parameter_names
    th = np.asarray(theta, dtype=np.float64)
    n = np.asarray(obs.n)
    ar = model.arrays
    nu_p = model.expected_by_process(th)
    bad = np.flatnonzero(~np.all(np.isfinite(nu_p), axis=0))
    if bad.size:
        procs = model.info.processes

        def which(b: int) -> str:
            return ", ".join(procs[p] for p in np.flatnonzero(~np.isfinite(nu_p[:, b])))

        what = [f"{bin_label(model, b)} ({which(b)})" for b in bad]
        parts.append(f"expected yield not finite in bins {name_list(what)}")
        return "; ".join(parts)
    nu = nu_p.sum(axis=0)
    active = np.asarray(ar["bin_active"])
    phi = np.asarray(
        bin_terms(jnp.asarray(nu), obs.n, ar["bb_k"], obs.beta0, ar["bb_on"], model.static.bb)[0]
    )
    bad = np.flatnonzero(active & ~np.isfinite(phi))
    if bad.size:
        parts.append(
            "likelihood term not finite in bins "
            + name_list(
                [f"{bin_label(model, b)} (expected {nu[b]:.6g}, observed {n[b]:g})" for b in bad]
            )
        )
        return "; ".join(parts)
    _, g = engine.nll_grad(model.static, ar, jnp.asarray(th), obs)
    bad = np.flatnonzero(~np.isfinite(np.asarray(g)))
    if bad.size:
        parts.append(f"gradient not finite for {name_list([names[i] for i in bad])}")
    return "; ".join(parts)


def nonfinite_hessian(model: Model, hs) -> list[str]:
    """Names of the parameters whose Hessian row holds a NaN or an infinity."""
    st, ar = model.static, model.arrays
    bad = np.zeros(st.n_params, dtype=bool)
    dp, sp = np.asarray(ar["D_params"]), np.asarray(ar["S_params"])
    dd, sd = np.asarray(hs.dd), np.asarray(hs.sd)
    bad[dp] |= ~np.all(np.isfinite(dd), axis=1)
    if sd.size:
        bad[dp] |= ~np.all(np.isfinite(sd), axis=0)
        bad[sp] |= ~np.all(np.isfinite(sd), axis=1)
    for cols, blk in zip(ar["bucket_cols"], hs.blocks, strict=True):
        c = np.asarray(cols)
        row_bad = ~np.all(np.isfinite(np.asarray(blk)), axis=2)  # (n_blocks, size)
        ok = c < sp.size
        bad[sp[c[ok & row_bad]]] = True
    names = model.parameter_names
    return [names[i] for i in np.flatnonzero(bad)]


# ----------------------------------------------------------------------------- eigenvalues
@dataclass
class EigenInfo:
    """The smallest eigenvalues (ascending) of the unit-diagonal Hessian on the free parameters
    with curvature, their directions as text, and the free parameters without curvature
    (H_ii <= 0: no effect on the likelihood, or a concave direction)."""

    values: list[float] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)
    no_curvature: list[str] = field(default_factory=list)
    note: str = ""

    def describe(self) -> str:
        out = []
        if self.no_curvature:
            out.append(f"no positive curvature (H_ii <= 0) for {name_list(self.no_curvature)}")
        if self.values:
            out.append(
                "smallest eigenvalues of the unit-diagonal Hessian: "
                + "; ".join(
                    f"{v:.3g} along {d}" for v, d in zip(self.values, self.directions, strict=True)
                )
            )
        if self.note:
            out.append(self.note)
        return "; ".join(out)


def hessian_eigen(
    model: Model,
    hs,
    free: np.ndarray,
    k: int = 2,
    dense_below: int = 600,
) -> EigenInfo:
    """The ``k`` smallest eigenvalues of D^-1/2 H D^-1/2 (D = diag(H)) on the free parameters
    with H_ii > 0, with their directions; see the module docstring."""
    st, ar = model.static, model.arrays
    names = model.parameter_names
    diag = engine.hess_diagonal(st, ar, hs)
    free = np.asarray(free, dtype=bool)
    scale = float(np.max(np.abs(np.where(free & np.isfinite(diag), diag, 0.0)), initial=0.0))
    curved = free & np.isfinite(diag) & (diag > 1e-14 * max(scale, 1e-300))
    info = EigenInfo(no_curvature=[names[i] for i in np.flatnonzero(free & ~curved)])
    idx = np.flatnonzero(curved)
    if idx.size == 0:
        return info
    s = np.where(curved, 1.0 / np.sqrt(np.where(curved, diag, 1.0)), 0.0)
    k = max(1, min(k, idx.size))
    if idx.size <= dense_below and st.n_params <= 4 * dense_below:
        h = np.asarray(engine.dense_hessian(st, ar, hs))[np.ix_(idx, idx)]
        h = h * s[idx][:, None] * s[idx][None, :]
        if not np.all(np.isfinite(h)):
            info.note = "the Hessian is not finite"
            return info
        w, v = np.linalg.eigh(0.5 * (h + h.T))
        vals, vecs = w[:k], v[:, :k]
    else:
        out = _lanczos_smallest(st, ar, hs, s, curved, idx, k)
        if out is None:
            info.note = "no shift of the Hessian could be factorised"
            return info
        vals, vecs = out
    info.values = [float(x) for x in vals]
    info.directions = [direction(names, idx, vecs[:, j]) for j in range(vals.size)]
    return info


def _lanczos_smallest(st, ar, hs, s, curved, idx, k):
    """Shift-invert ARPACK on the unit-diagonal Hessian restricted to ``idx``: the shift is the
    smallest lambda in a ladder for which H_s + lambda I factorises (0 when H is positive
    definite), so the eigenvalues nearest -lambda are the smallest."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    fr = jnp.asarray(curved)
    sj = jnp.asarray(s)
    for lam in (0.0, 1e-10, 1e-7, 1e-4, 1e-2, 0.1, 1.0, 10.0, 1e2, 1e3, 1e4, 1e5):
        hs_s, fac = _scaled_factor(st, ar, hs, sj, lam, fr)
        if bool(fac.ok):
            break
    else:
        return None
    n, m = st.n_params, idx.size

    def embed(x: np.ndarray) -> jnp.ndarray:
        full = np.zeros(n)
        full[idx] = np.ravel(x)
        return jnp.asarray(full)

    def op_inv(x: np.ndarray) -> np.ndarray:
        return np.asarray(engine.solve(st, ar, fac, embed(x)))[idx]

    def op(x: np.ndarray) -> np.ndarray:
        return np.asarray(_matvec(st, ar, hs_s, embed(x)))[idx]

    a = LinearOperator((m, m), matvec=op, dtype=np.float64)
    inv = LinearOperator((m, m), matvec=op_inv, dtype=np.float64)
    v0 = np.random.default_rng(0).normal(size=m)
    try:
        w, v = eigsh(a, k=k, sigma=-lam, which="LM", OPinv=inv, v0=v0, tol=1e-8, maxiter=300)
    except ArpackNoConvergence as exc:  # keep what converged
        w, v = exc.eigenvalues, exc.eigenvectors
        if w.size == 0:
            return None
    order = np.argsort(w)
    return w[order], v[:, order]


# ----------------------------------------------------------------------------- conditioning
#: a POI uncertainty below this many float64 ulps of its physical value means nothing
POI_ERROR_MIN_ULPS = 1000.0


def poi_error_problem(
    name: str, central: float, scale: float, theta: float, error: float
) -> str | None:
    """Why the Hessian uncertainty ``error`` (theta units) of a free POI cannot be a result,
    or None: it must be finite, positive, and above POI_ERROR_MIN_ULPS float64 ulps of the
    physical value ``central + scale * theta`` (below that it is rounding, not information,
    e.g. from a response tensor of 1e300)."""
    if not np.isfinite(error):
        return f"the uncertainty of {name} is not finite ({error})"
    if error <= 0:
        return f"the uncertainty of {name} is {error:g}"
    value = central + scale * theta
    floor = POI_ERROR_MIN_ULPS * np.finfo(np.float64).eps * max(abs(value), abs(central), scale)
    if scale * error < floor:
        return (
            f"the uncertainty of {name}, {scale * error:.3g}, is below the float64 precision "
            f"of its value {value:.17g} ({floor:.3g})"
        )
    return None


def global_correlations(cov_diag: np.ndarray, hess_diag: np.ndarray) -> np.ndarray:
    """MINUIT's global correlation coefficients sqrt(1 - 1 / (C_ii H_ii)), 0 where undefined."""
    r = np.asarray(cov_diag) * np.asarray(hess_diag)
    ok = np.isfinite(r) & (r > 1.0)
    return np.where(ok, np.sqrt(1.0 - 1.0 / np.where(ok, r, 1.0)), 0.0)


def conditioning(
    model: Model,
    hs,
    cov_diag: np.ndarray,
    rows: Callable[[np.ndarray], np.ndarray],
    free: np.ndarray,
    threshold: float = DEGENERACY_THRESHOLD,
    max_candidates: int = 256,
    limit: int = 8,
) -> list[str]:
    """Warnings about near-degenerate parameters at a minimum: the pairs whose correlation is
    beyond +-``threshold`` (candidates: the parameters whose global correlation, an upper bound
    of their pair correlations, exceeds it; ``rows(idx)`` gives rows of the covariance,
    (len(idx), n_params)); and, where some C_ii H_ii exceeds ``SINGULAR_THRESHOLD``, the
    smallest eigenvalues of the unit-diagonal Hessian with their directions."""
    st, ar = model.static, model.arrays
    names = model.parameter_names
    free = np.asarray(free, dtype=bool)
    hdiag = engine.hess_diagonal(st, ar, hs)
    gc = np.where(free, global_correlations(cov_diag, hdiag), 0.0)
    cand = np.flatnonzero(gc > threshold)
    cand = cand[np.argsort(-gc[cand], kind="stable")[:max_candidates]]
    warnings = []
    if cand.size:
        c = np.asarray(rows(cand))
        sd = np.sqrt(np.where(free & (cov_diag > 0), cov_diag, np.inf))
        rho = c / (sd[cand][:, None] * sd[None, :])
        rho[np.arange(cand.size), cand] = 0.0
        rho = np.where(free[None, :] & np.isfinite(rho), rho, 0.0)
        pairs: dict[tuple[int, int], float] = {}
        for r, i in enumerate(cand):
            for j in np.flatnonzero(np.abs(rho[r]) > threshold):
                pairs[(min(i, j), max(i, j))] = float(rho[r, j])
        if pairs:
            top = sorted(pairs.items(), key=lambda kv: -abs(kv[1]))
            items = [f"{names[i]} & {names[j]} {v:+.6f}" for (i, j), v in top[:limit]]
            more = f" and {len(top) - limit} more pairs" if len(top) > limit else ""
            warnings.append(
                f"near-degenerate parameters (correlation beyond +-{threshold:g}; the likelihood "
                f"is nearly flat along their difference or sum): {'; '.join(items)}{more}"
            )
    r = cov_diag[free] * hdiag[free]
    r_max = float(np.max(np.where(np.isfinite(r), r, np.inf), initial=0.0))
    if r_max > SINGULAR_THRESHOLD:
        eig = hessian_eigen(model, hs, free)
        warnings.append(
            f"nearly singular Hessian: the condition number of the unit-diagonal Hessian is at "
            f"least {r_max:.3g}; {eig.describe()}"
        )
    return warnings
