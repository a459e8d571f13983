"""Likelihood scans and profile-likelihood intervals of a POI (the MINOS-like interval where
2 (nll_profiled - nll_min) = level, 1 for 68.3%), with the fast minimiser.

Each profiled point fixes the POI and minimises the others, starting from the linear response
theta_hat + C[:, p] / C_pp * (x - theta_hat_p), which is where the profile passes to first order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import brentq

from ..model.build import Model
from .likelihood import Observation
from .minimize import minimize_newton


def profile_nll(
    model: Model,
    obs: Observation,
    poi: int,
    value: float,
    theta_hat: np.ndarray,
    cov: np.ndarray,
    free: np.ndarray,
    **opts,
) -> tuple[float, bool, np.ndarray]:
    """(nll, converged, theta) minimised with the POI fixed at ``value``."""
    start = theta_hat + cov[:, poi] / cov[poi, poi] * (value - theta_hat[poi])
    start[poi] = value
    f = free.copy()
    f[poi] = False
    start = np.where(free | (np.arange(start.size) == poi), start, theta_hat)
    out = minimize_newton(model, obs, start, f, **opts)
    return out.info.nll, out.info.converged, out.theta


def scan(
    model: Model,
    obs: Observation,
    poi: int,
    values: Sequence[float],
    theta_hat: np.ndarray,
    nll_min: float,
    cov: np.ndarray,
    free: np.ndarray,
    **opts,
) -> tuple[np.ndarray, np.ndarray]:
    """2 dNLL and convergence flags at each POI value (theta units)."""
    q, ok = [], []
    for v in values:
        f, c, _ = profile_nll(model, obs, poi, float(v), theta_hat, cov, free, **opts)
        q.append(2.0 * (f - nll_min))
        ok.append(c)
    return np.array(q), np.array(ok)


def profile_interval(
    model: Model,
    obs: Observation,
    poi: int,
    theta_hat: np.ndarray,
    nll_min: float,
    cov: np.ndarray,
    free: np.ndarray,
    level: float = 1.0,
    xtol: float = 1e-6,
    **opts,
) -> tuple[float, float]:
    """(lower, upper) values of the POI (theta units) where 2 dNLL = ``level``, by root finding
    on the profiled likelihood. The search stays within the POI's bounds
    (``model.bounds`` or ``opts["bounds"]``): where the profile does not reach ``level``
    before a bound, that end of the interval is the bound."""
    x0 = float(theta_hat[poi])
    sig = float(np.sqrt(cov[poi, poi]))
    bounds = opts.get("bounds")
    lo, hi = (model.bounds if bounds is None else np.asarray(bounds))[poi]

    def q(x: float) -> float:
        f, _, _ = profile_nll(model, obs, poi, x, theta_hat, cov, free, **opts)
        return 2.0 * (f - nll_min) - level

    ends = []
    for sign, limit in ((-1.0, float(lo)), (1.0, float(hi))):
        clip = min if sign > 0 else max
        step = sig * np.sqrt(level)
        far = clip(x0 + sign * 1.5 * step, limit)
        end = None
        for _ in range(10):
            if far == x0:  # the minimum is on this bound
                end = limit
                break
            if q(far) > 0:
                break
            if far == limit:  # the profile stays below the level up to the bound
                end = limit
                break
            far = clip(x0 + sign * (abs(far - x0) * 2.0), limit)
        else:
            raise RuntimeError(f"no crossing of 2 dNLL = {level} found for parameter {poi}")
        if end is None:
            near = clip(x0 + sign * 0.5 * step, limit)
            if near == far or q(near) > 0:
                near = x0
            a, b = (far, near) if sign < 0 else (near, far)
            end = brentq(q, a, b, xtol=xtol * max(sig, 1e-12))
        ends.append(end)
    return ends[0], ends[1]
