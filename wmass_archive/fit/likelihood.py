"""The likelihood, as pure per-bin functions with closed-form derivatives.

Per bin b, with expected yield nu, observed count n and the Barlow-Beeston-lite factor beta
(one per bin, multiplying the total yield, profiled analytically):

    phi_b(nu) = min_beta [ beta nu - n + n ln(n / (beta nu)) + c(beta) ]

* Poisson with the saturated offset: phi = 0 at beta nu = n, beta = beta0;
* ``bb="none"``:   beta = 1, c = 0;
* ``bb="gamma"``:  c(beta) = k (beta - beta0) - k beta0 ln(beta / beta0) (a Poisson term for
  the k = N^2 / sum w^2 effective simulated events, rabbit's default), beta = (n + k beta0) /
  (nu + k);
* ``bb="normal"``: c(beta) = k (beta - beta0)^2 / 2 (a gaussian of relative width
  1/sqrt(k), as pyhf's ``staterror`` and Combine), beta the positive root of
  k beta^2 + (nu - k beta0) beta - n = 0.

``bb="combine"`` is CMS Combine's own Barlow-Beeston lite (``CMSHistErrorPropagator`` with its
analytic minimisation, Combine's default): the bin's yield is ``nu + x e`` with one parameter x
of unit Gaussian constraint centred at its global observable g,

    phi_b = min_{x in [-7, 7]} [ P(n | nu + x e) + (x - g)^2 / 2 ],
    e^2 = sum_p sumw2_p c_p(theta)^2,

where ``c_p`` is the normalisation of process p relative to the nominal (rate POIs, log-normal,
linear and multiplicative factors; not the additive template morphing, whose MC errors Combine
keeps at the nominal template's), so that the width follows the processes' normalisations
(:func:`combine_bin_terms`; the model computes e at theta, module ``hessian``). x is the larger
root of x^2 + (e + nu/e - g) x + (nu - n - g nu/e) = 0, clipped to [-7, 7] (the range of
Combine's variable). As a global observable the model's ``beta0`` stands for
``g = (beta0 - 1) sqrt(k)`` with the nominal ``k`` (so that the toys' ``beta0 ~ N(1,
1/sqrt(k))`` give Combine's ``g ~ N(0, 1)``, and beta0 = 1 is g = 0).

The negative log-likelihood is ``sum_b phi_b(nu_b(theta)) + 1/2 sum_constrained (theta -
theta0)^2``; it is 0 for the saturated model, so that ``2 nll`` at the minimum is the saturated
goodness-of-fit chi2. ``phi'`` and ``phi''`` (total derivatives, beta profiled) are what the
Hessian assembly needs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..jax_config import jnp


class Observation(NamedTuple):
    """The data and global observables of a fit: observed counts ``n`` (n_bins,), constraint
    centres ``theta0`` (n_params,) and Barlow-Beeston global observables ``beta0`` (n_bins,)."""

    n: jnp.ndarray
    theta0: jnp.ndarray
    beta0: jnp.ndarray


def observation(n: np.ndarray, n_params: int, theta0=None, beta0=None) -> Observation:
    """An :class:`Observation` with default centres theta0 = 0 and beta0 = 1."""
    n = jnp.asarray(n, dtype=jnp.float64)
    t0 = jnp.zeros(n_params) if theta0 is None else jnp.asarray(theta0, dtype=jnp.float64)
    b0 = jnp.ones(n.shape[0]) if beta0 is None else jnp.asarray(beta0, dtype=jnp.float64)
    return Observation(n, t0, b0)


def xlogx_over(n: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """n ln(n / x), 0 where n = 0."""
    pos = n > 0
    return jnp.where(
        pos, n * (jnp.log(jnp.where(pos, n, 1.0)) - jnp.log(jnp.where(pos, x, 1.0))), 0.0
    )


def poisson_saturated(nu: jnp.ndarray, n: jnp.ndarray) -> jnp.ndarray:
    """nu - n + n ln(n / nu): the Poisson -ln L relative to the saturated model, per bin."""
    return nu - n + xlogx_over(n, nu)


def beta_gamma(nu: jnp.ndarray, n: jnp.ndarray, k: jnp.ndarray, beta0: jnp.ndarray) -> jnp.ndarray:
    """Profiled beta of the gamma constraint: (n + k beta0) / (nu + k)."""
    return (n + k * beta0) / (nu + k)


def beta_normal(nu: jnp.ndarray, n: jnp.ndarray, k: jnp.ndarray, beta0: jnp.ndarray) -> jnp.ndarray:
    """Profiled beta of the normal constraint: positive root of k b^2 + (nu - k beta0) b - n = 0,
    in the form free of cancellation."""
    b = nu - k * beta0
    disc = jnp.sqrt(b * b + 4.0 * k * n)
    return jnp.where(
        b > 0, 2.0 * n / jnp.where(b + disc > 0, b + disc, 1.0), (disc - b) / (2.0 * k)
    )


def bin_terms(
    nu: jnp.ndarray,
    n: jnp.ndarray,
    k: jnp.ndarray,
    beta0: jnp.ndarray,
    bb_on: jnp.ndarray,
    mode: str,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(phi, phi', phi'', beta) per bin for the Barlow-Beeston ``mode``; bins with ``bb_on``
    False (no simulated-sample variance) have beta = beta0 fixed. ``mode="combine"`` is
    evaluated here as ``"normal"`` with the ``k`` given (exact for k = nu^2 / e^2 at the point,
    without the clipping of x; the nominal k is an approximation): the fit uses
    :func:`combine_bin_terms`."""
    nus = jnp.where(nu > 0, nu, 1.0)
    if mode == "none":
        beta = jnp.ones_like(nu)
        return poisson_saturated(nu, n), 1.0 - n / nus, n / nus**2, beta
    if mode == "gamma":
        beta = beta_gamma(nu, n, k, beta0)
        dbeta = -beta / (nu + k)
        cons = k * (beta - beta0) - k * beta0 * (jnp.log(beta) - jnp.log(beta0))
    elif mode in ("normal", "combine"):
        beta = beta_normal(nu, n, k, beta0)
        den = n + k * beta * beta
        dbeta = -beta * beta / jnp.where(den > 0, den, 1.0)
        cons = 0.5 * k * (beta - beta0) ** 2
    else:
        raise ValueError(f"unknown Barlow-Beeston mode {mode!r}")
    beta = jnp.where(bb_on, beta, beta0)
    cons = jnp.where(bb_on, cons, 0.0)
    dbeta = jnp.where(bb_on, dbeta, 0.0)
    phi = poisson_saturated(beta * nu, n) + cons
    d1 = beta - n / nus
    d2 = dbeta + n / nus**2
    return phi, d1, d2, beta


#: the range of Combine's Barlow-Beeston-lite variable (CMSHistErrorPropagator::setupBinPars)
COMBINE_X_RANGE = 7.0


def combine_global(beta0: jnp.ndarray, k: jnp.ndarray) -> jnp.ndarray:
    """Combine's global observable g of each bin from the model's ``beta0`` and nominal k."""
    return (beta0 - 1.0) * jnp.sqrt(k)


def combine_x(nu: jnp.ndarray, e: jnp.ndarray, n: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
    """Combine's analytic Barlow-Beeston-lite parameter (``runBarlowBeeston``): the larger root
    of x^2 + b x + c = 0 with b = e + nu/e - g, c = nu - n - g nu/e, clipped to [-7, 7]; e > 0.
    The discriminant b^2 - 4c is written as (nu/e - e + g)^2 + 4n (>= 0), and the root in the
    form free of cancellation."""
    r = nu / e
    b = e + r - g
    c = nu - n - g * r
    sq = jnp.sqrt((r - e + g) ** 2 + 4.0 * n)
    den = b + sq
    x = jnp.where(b > 0, -2.0 * c / jnp.where(den > 0, den, 1.0), 0.5 * (sq - b))
    return jnp.clip(x, -COMBINE_X_RANGE, COMBINE_X_RANGE)


def combine_bin_terms(
    nu: jnp.ndarray, e2: jnp.ndarray, n: jnp.ndarray, g: jnp.ndarray, bb_on: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(phi, phi', phi'', x) per bin of ``bb="combine"``: ``e2`` the squared width e^2 at the
    point, ``g`` the global observable; phi' and phi'' are derivatives with respect to nu at
    fixed e (x profiled: phi'' = n / (y^2 + e^2 n), y = nu + x e, or n / y^2 where x is at its
    bound). Bins with ``bb_on`` False or e = 0 have x = g and no constraint term."""
    on = bb_on & (e2 > 0)
    e = jnp.sqrt(jnp.where(on, e2, 1.0))
    x = jnp.where(on, combine_x(nu, e, n, g), g)
    y = jnp.where(on, nu + x * e, nu)
    phi = poisson_saturated(y, n) + jnp.where(on, 0.5 * (x - g) ** 2, 0.0)
    ys = jnp.where(y > 0, y, 1.0)
    d1 = 1.0 - n / ys
    inside = on & (jnp.abs(x) < COMBINE_X_RANGE)
    d2 = jnp.where(inside, n / (ys * ys + e2 * n), n / (ys * ys))
    return phi, d1, d2, x


def constraint_nll(
    theta: jnp.ndarray, theta0: jnp.ndarray, constrained: jnp.ndarray
) -> jnp.ndarray:
    """1/2 sum over constrained parameters of (theta - theta0)^2."""
    return 0.5 * jnp.sum(constrained * (theta - theta0) ** 2)
