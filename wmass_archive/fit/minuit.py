"""The validation path: iminuit's MIGRAD with the JAX gradient, HESSE from the exact JAX Hessian
and MINOS for chosen parameters. Slower than the Newton path at thousands of parameters (MIGRAD
updates a dense approximate inverse Hessian), it is an independent minimiser to check it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..jax_config import jnp
from ..model.build import Model
from . import engine
from .likelihood import Observation
from .minimize import MinimizeInfo


def minimize_minuit(
    model: Model,
    obs: Observation,
    theta_start: np.ndarray | None = None,
    free: np.ndarray | None = None,
    *,
    tol: float = 1e-4,
    strategy: int = 2,
    minos: Sequence[int] = (),
) -> tuple[np.ndarray, MinimizeInfo, np.ndarray, dict[int, tuple[float, float]]]:
    """(theta, info, covariance, MINOS intervals {index: (lower, upper) theta}) with iminuit.
    ``tol``: Minuit's tolerance (EDM goal 0.002 * tol * errordef)."""
    from iminuit import Minuit

    st, ar = model.static, model.arrays
    n = model.n_params
    x0 = np.zeros(n) if theta_start is None else np.asarray(theta_start, dtype=np.float64)
    free = np.ones(n, dtype=bool) if free is None else np.asarray(free, dtype=bool)

    def fcn(x: np.ndarray) -> float:
        return float(engine.nll(st, ar, jnp.asarray(x), obs))

    def grad(x: np.ndarray) -> np.ndarray:
        return np.asarray(engine.nll_grad(st, ar, jnp.asarray(x), obs)[1])

    def hess(x: np.ndarray) -> np.ndarray:
        _, _, hs, _ = engine.value_grad_hess(st, ar, jnp.asarray(x), obs)
        return np.asarray(engine.dense_hessian(st, ar, hs))

    names = [f"p{i}" for i in range(n)]  # Minuit names must be identifiers-like and unique
    # no hessian= for MIGRAD: iminuit (2.33, strategy 2) fails with a TypeError when the
    # exact Hessian is not positive definite at the start; the covariance below is its inverse
    m = Minuit(fcn, x0, grad=grad, name=names)
    m.errordef = Minuit.LIKELIHOOD
    m.tol = tol
    m.strategy = strategy
    m.print_level = 0
    for i in np.flatnonzero(~free):
        m.fixed[i] = True
    bounds = model.bounds
    for i in np.flatnonzero(free & np.any(np.isfinite(bounds), axis=1)):
        m.limits[i] = (float(bounds[i, 0]), float(bounds[i, 1]))
        m.values[i] = float(np.clip(x0[i], bounds[i, 0], bounds[i, 1]))
    for _ in range(3):  # MIGRAD may stop above the EDM goal; call it again from there
        m.migrad()
        if m.valid:
            break
    intervals = {}
    for i in minos if m.valid else ():
        m.minos(names[i])
        me = m.merrors[names[i]]
        intervals[i] = (m.values[i] + me.lower, m.values[i] + me.upper)
    theta = np.array(m.values)
    cov = np.zeros((n, n))
    try:  # HESSE with the exact Hessian: its inverse on the free parameters
        h_free = hess(theta)[np.ix_(free, free)]
        np.linalg.cholesky(h_free)
        cov[np.ix_(free, free)] = np.linalg.inv(h_free)
    except np.linalg.LinAlgError:  # not positive definite: MINUIT's own HESSE says more
        m.hesse()
        if m.covariance is not None:
            cov = np.array(m.covariance)
            cov[~free, :] = 0.0
            cov[:, ~free] = 0.0
    g = grad(theta)
    h = np.diag(hess(theta))
    z = np.where(free, np.abs(g) / np.sqrt(np.where(h > 0, h, 1.0)), 0.0)
    worst = np.argsort(-z)[:5]
    pn = model.parameter_names
    fmin = m.fmin
    ok = bool(m.valid)
    info = MinimizeInfo(
        status="converged" if ok else "no_progress",
        converged=ok,
        edm=float(fmin.edm) if fmin is not None else math.nan,
        nll=float(m.fval),
        max_scaled_gradient=float(z.max(initial=0.0)),
        n_iterations=int(m.nfcn),
        n_evaluations=int(m.nfcn + m.ngrad),
        worst_gradients=[(pn[i], float(z[i])) for i in worst],
        message="" if ok else f"MIGRAD did not converge: {fmin}",
        at_bound=[
            pn[i]
            for i in np.flatnonzero(free)
            if np.isclose(theta[i], bounds[i, 0], atol=1e-6)
            or np.isclose(theta[i], bounds[i, 1], atol=1e-6)
        ],
    )
    return theta, info, cov, intervals
