"""Asimov data sets and pseudo-experiments (toys).

An Asimov observation at theta_A has n = nu(theta_A), constraint centres theta0 = theta_A on the
constrained parameters and beta0 = 1, so that a fit returns theta_A exactly. A toy draws
n ~ Poisson(nu(theta_gen)) and, by default, randomises the global observables: theta0 ~
N(theta_gen, 1) on the constrained parameters and the Barlow-Beeston ones (gamma: k beta0 ~
Poisson(k); normal: beta0 ~ N(1, 1/sqrt(k))). Each toy uses its own seed, ``seed + i``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, Field

from ..jax_config import jnp
from ..model.build import Model
from .likelihood import Observation
from .linalg import unit_columns


def asimov(model: Model, theta: np.ndarray | None = None) -> Observation:
    """The Asimov observation at ``theta`` (default all 0)."""
    th = np.zeros(model.n_params) if theta is None else np.asarray(theta, dtype=np.float64)
    nu = model.expected(th)
    theta0 = np.where(model.constrained, th, 0.0)
    return Observation(jnp.asarray(nu), jnp.asarray(theta0), jnp.ones(model.n_bins))


def toy(
    model: Model,
    seed: int,
    theta: np.ndarray | None = None,
    randomize: Iterable[str] = ("data", "constraints", "mcstat"),
) -> Observation:
    """One pseudo-experiment generated at ``theta`` (default all 0) with ``numpy``'s
    ``default_rng(seed)``; ``randomize`` picks what is drawn: "data", "constraints",
    "mcstat"."""
    rnd = set(randomize)
    unknown = rnd - {"data", "constraints", "mcstat"}
    if unknown:
        raise ValueError(f"unknown randomisation {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    th = np.zeros(model.n_params) if theta is None else np.asarray(theta, dtype=np.float64)
    nu = model.expected(th)
    n = rng.poisson(nu).astype(np.float64) if "data" in rnd else nu
    cons = model.constrained
    theta0 = np.where(cons, th, 0.0)
    if "constraints" in rnd:
        theta0 = np.where(cons, th + rng.normal(size=th.size), 0.0)
        tau = model.poisson_tau  # poisson constraints: auxiliary count ~ Poisson(tau gamma)
        if np.any(tau > 0):
            p, s = tau > 0, np.sqrt(tau[tau > 0])
            aux = rng.poisson(tau[p] * np.maximum(1.0 + th[p] / s, 0.0))
            theta0[p] = s * (aux / tau[p] - 1.0)
    beta0 = np.ones(model.n_bins)
    if "mcstat" in rnd and model.static.bb != "none":
        k = np.asarray(model.arrays["bb_k"])
        on = np.asarray(model.arrays["bb_on"])
        if model.static.bb == "gamma":
            draw = rng.poisson(np.where(on, k, 1.0)) / np.where(on, k, 1.0)
            draw = np.where(draw > 0, draw, 0.5 / np.where(on, k, 1.0))  # beta0 = 0: log undefined
        else:
            draw = 1.0 + rng.normal(size=k.size) / np.sqrt(np.where(on, k, 1.0))
        beta0 = np.where(on, draw, 1.0)
    return Observation(jnp.asarray(n), jnp.asarray(theta0), jnp.asarray(beta0))


class ToysResult(BaseModel):
    """Fits of pseudo-experiments: per toy the POI values and Hessian errors (theta units), the
    status, and the pull summary (pull = (value - generated) / error) of each POI."""

    seed: int
    n_toys: int
    pois: list[str]
    generated: list[float]
    values: list[list[float]] = Field(description="(n_toys, n_pois)")
    errors: list[list[float]]
    converged: list[bool]
    pull_mean: list[float]
    pull_std: list[float]


def run_toys(
    model: Model,
    n_toys: int,
    seed: int = 0,
    theta: np.ndarray | None = None,
    randomize: Iterable[str] = ("data", "constraints", "mcstat"),
    free: np.ndarray | None = None,
    **opts,
) -> ToysResult:
    """Generate and fit ``n_toys`` pseudo-experiments (toy i uses seed ``seed + i``), starting
    each fit at the generating point."""
    from . import engine
    from .minimize import minimize_newton

    th = np.zeros(model.n_params) if theta is None else np.asarray(theta, dtype=np.float64)
    npoi = model.n_pois
    values, errors, ok = [], [], []
    for i in range(n_toys):
        obs = toy(model, seed + i, th, randomize)
        out = minimize_newton(model, obs, th, free, **opts)
        if out.fac is not None:
            e = np.asarray(
                engine.solve(
                    model.static,
                    model.arrays,
                    out.fac,
                    jnp.asarray(unit_columns(model.n_params, npoi)),
                )
            )
            err = np.sqrt(np.diag(e[:npoi]))
        else:
            err = np.full(npoi, np.nan)
        values.append(out.theta[:npoi].tolist())
        errors.append(err.tolist())
        ok.append(out.info.converged)
    v, e, c = np.array(values), np.array(errors), np.array(ok)
    pulls = (v[c] - th[:npoi]) / e[c]
    return ToysResult(
        seed=seed,
        n_toys=n_toys,
        pois=model.poi_names,
        generated=th[:npoi].tolist(),
        values=values,
        errors=errors,
        converged=ok,
        pull_mean=pulls.mean(axis=0).tolist() if len(pulls) else [],
        pull_std=pulls.std(axis=0, ddof=1).tolist() if len(pulls) > 1 else [],
    )
