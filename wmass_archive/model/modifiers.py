"""The interpolations of the extended modifiers and the poisson constraint of format 1.1
(docs/format.md sections 15.2 and 15.4), as pure JAX functions (float64).

``t`` is the effective parameter value (prior_scale * theta). The code of an interpolation is a
Python int (static): each function evaluates one branch set, so that no unused branch can put
a NaN into a gradient.

* :func:`additive_delta` ``Delta(t)``: the shift of a yield (events) from the shifts ``up`` and
  ``down`` at t = +1 and t = -1 (codes 0, 2, 4 = pyhf code0, code2 with ROOT's continuous
  extrapolation, code4p);
* :func:`multiplicative_factor` ``F(t)``: the factor on a yield from the ratios ``hi`` and
  ``lo`` at t = +1 and t = -1 (pyhf codes 0, 1, 2, 4);
* :func:`linear_factor`: ``max(0, 1 + coeff * t)``;
* :func:`additive_delta_coded`, :func:`factor_coded`: the same for entries of mixed codes, one
  vectorised evaluation selected by a per-entry code array (the generic model's tables), so
  that the traced program does not grow with the number of entries or codes;
* :func:`poisson_constraint`: ``tau (gamma - gamma0 - gamma0 ln(gamma / gamma0))`` with
  gamma = 1 + theta / sqrt(tau) and the global observable gamma0 (1 nominally).
"""

from __future__ import annotations

import numpy as np

from ..jax_config import jnp

Array = jnp.ndarray


def _code4_inverse() -> np.ndarray:
    """Inverse of the 6 x 6 matrix taking the coefficients a_1..a_6 of 1 + sum a_i t^i to its
    value - 1, first and second derivative at t = +1 and t = -1."""
    i = np.arange(1, 7, dtype=np.float64)
    sign = (-1.0) ** i
    m = np.stack(
        [
            np.ones(6),  # p(1) - 1
            sign,  # p(-1) - 1
            i,  # p'(1)
            -i * sign,  # p'(-1): i (-1)^(i-1)
            i * (i - 1),  # p''(1)
            i * (i - 1) * sign,  # p''(-1): i (i-1) (-1)^(i-2)
        ]
    )
    return np.linalg.inv(m)


_CODE4_INV = _code4_inverse()


def code4_coefficients(hi: Array, lo: Array) -> Array:
    """Coefficients a_1..a_6, shape hi.shape + (6,), of the polynomial 1 + sum a_i t^i that
    matches hi^t (t = +1) and lo^-t (t = -1) in value, first and second derivative."""
    lh, ll = jnp.log(hi), jnp.log(lo)
    rhs = jnp.stack([hi - 1.0, lo - 1.0, hi * lh, -lo * ll, hi * lh * lh, lo * ll * ll], axis=-1)
    return rhs @ jnp.asarray(_CODE4_INV).T


def _quadratic(t: Array, up: Array, down: Array) -> Array:
    """Code 2: a t^2 + b t inside |t| <= 1, continued linearly (value and slope) outside."""
    a, b = 0.5 * (up + down), 0.5 * (up - down)
    inside = a * t * t + b * t
    above = up + (b + 2.0 * a) * (t - 1.0)
    below = down + (b - 2.0 * a) * (t + 1.0)
    return jnp.where(t > 1.0, above, jnp.where(t < -1.0, below, inside))


def additive_delta(code: int, t: Array, up: Array, down: Array) -> Array:
    """Delta(t), the shift of the yield in events, for the shifts ``up`` (t = +1) and ``down``
    (t = -1); ``code`` 0 (piecewise linear), 2 (quadratic inside, linear outside) or 4 (pyhf
    code4p: a sixth-order polynomial inside |t| < 1, linear outside)."""
    if code == 0:
        return jnp.where(t >= 0.0, t * up, -t * down)
    if code == 2:
        return _quadratic(t, up, down)
    if code == 4:
        t2 = t * t
        inside = 0.5 * t * (up - down) + t2 * (t2 * (3.0 * t2 - 10.0) + 15.0) * (up + down) / 16.0
        return jnp.where(t >= 1.0, t * up, jnp.where(t <= -1.0, -t * down, inside))
    raise ValueError(f"additive interpolation code {code} is not 0, 2 or 4")


def multiplicative_factor(code: int, t: Array, hi: Array, lo: Array) -> Array:
    """F(t), the factor on the yield, for the ratios ``hi`` (t = +1) and ``lo`` (t = -1);
    ``code`` 0 (piecewise linear), 1 (piecewise exponential), 2 (quadratic inside, linear
    outside) or 4 (a sixth-order polynomial inside |t| < 1, exponential outside). Codes 1 and 4
    need hi, lo > 0."""
    if code == 0:
        return 1.0 + jnp.where(t >= 0.0, t * (hi - 1.0), t * (1.0 - lo))
    if code == 1:
        return jnp.where(t >= 0.0, jnp.exp(t * jnp.log(hi)), jnp.exp(-t * jnp.log(lo)))
    if code == 2:
        return 1.0 + _quadratic(t, hi - 1.0, lo - 1.0)
    if code == 4:
        a = code4_coefficients(hi, lo)
        poly = a[..., 5]
        for i in range(4, -1, -1):  # Horner: t (a_1 + t (a_2 + ... + t a_6))
            poly = a[..., i] + t * poly
        poly = t * poly
        outside = jnp.where(t >= 1.0, jnp.exp(t * jnp.log(hi)), jnp.exp(-t * jnp.log(lo)))
        return jnp.where(jnp.abs(t) >= 1.0, outside, 1.0 + poly)
    raise ValueError(f"multiplicative interpolation code {code} is not 0, 1, 2 or 4")


def linear_factor(t: Array, coeff: Array) -> Array:
    """max(0, 1 + coeff * t), with a zero gradient where it is clipped."""
    f = 1.0 + coeff * t
    return jnp.where(f > 0.0, f, 0.0)


#: the per-entry code of a linear factor in :func:`factor_coded`
LINEAR = -1
ADDITIVE_CODES = (0, 2, 4)
FACTOR_CODES = (0, 1, 2, 4, LINEAR)


def additive_table(code: np.ndarray, up: np.ndarray, down: np.ndarray) -> dict[str, np.ndarray]:
    """Build-time (numpy) columns of additive entries of mixed codes for
    :func:`additive_delta_coded`: ``code``, ``up``, ``down`` and, for code 4, the half
    difference ``h`` = (up - down) / 2 and ``s`` = (up + down) / 16."""
    code = np.asarray(code, np.int64)
    up, down = np.asarray(up, np.float64), np.asarray(down, np.float64)
    out = {"code": code, "up": up, "down": down}
    if np.any(code == 4):
        out["h"] = 0.5 * (up - down)
        out["s"] = (up + down) / 16.0
    return out


def additive_delta_coded(t: Array, tab: dict, present: tuple[int, ...]) -> Array:
    """Delta(t) of :func:`additive_delta` for entries of mixed interpolation codes, one
    vectorised evaluation: ``tab`` the columns of :func:`additive_table` (as arrays like ``t``),
    ``present`` the codes that occur (static: only those branches are traced, each on every
    entry, and selected per entry by ``code``). Every branch is finite for any entry, so no
    unselected branch puts a NaN into a gradient."""
    code, up, down = tab["code"], tab["up"], tab["down"]
    out = jnp.zeros_like(t)
    for c in present:
        if c == 0:
            d = t * jnp.where(t >= 0.0, up, -down)
        elif c == 2:
            d = _quadratic(t, up, down)
        elif c == 4:
            t2 = t * t
            inside = t * tab["h"] + t2 * (t2 * (3.0 * t2 - 10.0) + 15.0) * tab["s"]
            d = jnp.where(jnp.abs(t) >= 1.0, t * jnp.where(t >= 0.0, up, -down), inside)
        else:
            raise ValueError(f"additive interpolation code {c} is not 0, 2 or 4")
        out = d if len(present) == 1 else jnp.where(code == c, d, out)
    return out


def factor_table(code: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> dict[str, np.ndarray]:
    """Build-time (numpy) columns of factor entries of mixed kinds for :func:`factor_coded`:
    ``code``, ``hi``, ``lo`` and, where codes 1 or 4 occur, ``lhi`` = ln hi and ``mllo`` =
    -ln lo (0 for entries of other codes, whose hi and lo may be any number), and for code 4
    the coefficients ``a`` (n, 6) of :func:`code4_coefficients` (0 for other entries)."""
    code = np.asarray(code, np.int64)
    hi, lo = np.asarray(hi, np.float64), np.asarray(lo, np.float64)
    out = {"code": code, "hi": hi, "lo": lo}
    uses_log = (code == 1) | (code == 4)
    if np.any(uses_log):
        hl, ll = np.where(uses_log, hi, 1.0), np.where(uses_log, lo, 1.0)
        out["lhi"], out["mllo"] = np.log(hl), -np.log(ll)
    if np.any(code == 4):
        k4 = code == 4
        h4, l4 = np.where(k4, hi, 1.0), np.where(k4, lo, 1.0)
        lh, ll = np.log(h4), np.log(l4)
        rhs = np.stack([h4 - 1.0, l4 - 1.0, h4 * lh, -l4 * ll, h4 * lh * lh, l4 * ll * ll], -1)
        out["a"] = np.where(k4[:, None], rhs @ _CODE4_INV.T, 0.0)
    return out


def factor_coded(t: Array, tab: dict, present: tuple[int, ...]) -> Array:
    """The factor of each entry for entries of mixed kinds, one vectorised evaluation: a
    multiplicative modifier of code 0, 1, 2 or 4 (:func:`multiplicative_factor` of ``hi``,
    ``lo``) or a linear one (code :data:`LINEAR`, :func:`linear_factor` with coefficient
    ``hi``). ``tab``: the columns of :func:`factor_table`; ``present``: the codes that occur
    (static). The exponentials of codes 1 and 4 use ln hi, -ln lo taken at build time (0 for
    entries of other codes), so that no branch is NaN (which would reach the gradient
    through the unselected side of a ``where``)."""
    code, hi, lo = tab["code"], tab["hi"], tab["lo"]
    out = jnp.ones_like(t)
    if 1 in present or 4 in present:
        expo = jnp.exp(t * jnp.where(t >= 0.0, tab["lhi"], tab["mllo"]))
    for c in present:
        if c == 0:
            f = 1.0 + t * jnp.where(t >= 0.0, hi - 1.0, 1.0 - lo)
        elif c == 1:
            f = expo
        elif c == 2:
            f = 1.0 + _quadratic(t, hi - 1.0, lo - 1.0)
        elif c == 4:
            a = tab["a"]
            poly = a[:, 5]
            for i in range(4, -1, -1):  # Horner: t (a_1 + t (a_2 + ... + t a_6))
                poly = a[:, i] + t * poly
            f = jnp.where(jnp.abs(t) >= 1.0, expo, 1.0 + t * poly)
        elif c == LINEAR:
            f = linear_factor(t, hi)
        else:
            raise ValueError(f"multiplicative interpolation code {c} is not 0, 1, 2 or 4")
        out = f if len(present) == 1 else jnp.where(code == c, f, out)
    return out


def poisson_constraint(theta: Array, theta0: Array, tau: Array, on: Array) -> Array:
    """Sum over the parameters with ``on`` of tau (gamma - gamma0 - gamma0 ln(gamma/gamma0)),
    gamma = 1 + theta / sqrt(tau), gamma0 = max(0, 1 + theta0 / sqrt(tau)): the negative log
    of Poisson(tau gamma0 | tau gamma) relative to its minimum (tau gamma0 the auxiliary count);
    +inf where gamma <= 0. All arrays (n_params,)."""
    s = jnp.sqrt(jnp.where(on, tau, 1.0))
    x, x0 = theta / s, jnp.maximum(theta0 / s, -1.0)
    ok = x > -1.0
    g0 = 1.0 + x0
    lg = jnp.log1p(jnp.where(ok, x, 0.0))
    lg0 = jnp.log1p(jnp.where(g0 > 0.0, x0, 0.0))
    val = tau * (x - x0 - jnp.where(g0 > 0.0, g0 * (lg - lg0), 0.0))
    val = jnp.where(ok, val, jnp.inf)
    return jnp.sum(jnp.where(on, val, 0.0))


def poisson_constraint_d2(theta: Array, theta0: Array, tau: Array, on: Array) -> Array:
    """Second derivative of each parameter's poisson term, gamma0 / gamma^2, (n_params,)
    (0 where ``on`` is False or gamma <= 0)."""
    s = jnp.sqrt(jnp.where(on, tau, 1.0))
    g = 1.0 + theta / s
    g0 = jnp.maximum(1.0 + theta0 / s, 0.0)
    ok = on & (g > 0.0)
    return jnp.where(ok, g0 / jnp.where(ok, g, 1.0) ** 2, 0.0)


__all__ = [
    "ADDITIVE_CODES",
    "FACTOR_CODES",
    "LINEAR",
    "additive_delta",
    "additive_delta_coded",
    "additive_table",
    "factor_coded",
    "factor_table",
    "code4_coefficients",
    "linear_factor",
    "multiplicative_factor",
    "poisson_constraint",
    "poisson_constraint_d2",
]
