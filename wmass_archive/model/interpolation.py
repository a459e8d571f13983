"""Interpolations of the archive format (docs/format.md sections 7.3, 9.2, 9.3 and 10), as pure
JAX functions with their first and second derivatives in closed form.

* the smooth step ``alpha(t)`` and the asymmetric log-normal exponent
  ``f(t) = t * avg + t * alpha(t) * halfdiff`` (CMS Combine ``AsymPow``, rabbit): the factor on a
  yield is ``exp(f(t))``;
* the weights ``w_j(theta)`` of the mass interpolation between stored mass points, such that
  ``ln nu(theta) = sum_j w_j(theta) ln nu_j`` (section 9.2);
* ``z(CL)``, the number of standard deviations of a two-sided confidence level (section 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import erf, sqrt

import numpy as np
from scipy.special import erfinv

from ..jax_config import jnp

Array = jnp.ndarray


# --------------------------------------------------------------------------- smooth step
def smooth_step(t: Array) -> Array:
    """alpha(t) = h(2t) for |t| < 1/2, sign(t) beyond; h(x) = x (3x^4 - 10x^2 + 15) / 8."""
    x = jnp.clip(2.0 * t, -1.0, 1.0)
    return x * (3.0 * x**4 - 10.0 * x**2 + 15.0) / 8.0


def smooth_step_d1(t: Array) -> Array:
    """d alpha / dt = 2 h'(2t) = 2 * 15 (x^2 - 1)^2 / 8 inside |t| < 1/2, 0 outside."""
    x = 2.0 * t
    inside = jnp.abs(x) < 1.0
    return jnp.where(inside, 2.0 * 15.0 * (x**2 - 1.0) ** 2 / 8.0, 0.0)


def smooth_step_d2(t: Array) -> Array:
    """d^2 alpha / dt^2 = 4 h''(2t) = 4 * 7.5 x (x^2 - 1) inside |t| < 1/2, 0 outside."""
    x = 2.0 * t
    inside = jnp.abs(x) < 1.0
    return jnp.where(inside, 4.0 * 7.5 * x * (x**2 - 1.0), 0.0)


# --------------------------------------------------------------------------- log-normal
def logk_exponent(t: Array, avg: Array, halfdiff: Array) -> Array:
    """f(t) = t * avg + t * alpha(t) * halfdiff: ln(yield / nominal) for one parameter."""
    return t * (avg + smooth_step(t) * halfdiff)


def logk_exponent_d1(t: Array, avg: Array, halfdiff: Array) -> Array:
    """df/dt = avg + halfdiff * (alpha(t) + t alpha'(t))."""
    return avg + halfdiff * (smooth_step(t) + t * smooth_step_d1(t))


def logk_exponent_d2(t: Array, avg: Array, halfdiff: Array) -> Array:
    """d^2f/dt^2 = halfdiff * (2 alpha'(t) + t alpha''(t)); ``avg`` does not enter."""
    del avg
    return halfdiff * (2.0 * smooth_step_d1(t) + t * smooth_step_d2(t))


def logk_from_updown(
    up: np.ndarray, down: np.ndarray, ref: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(avg, halfdiff) of the log-normal variation ``up``/``down`` around ``ref`` (numpy, build
    time): logk = ln(x / ref), 0 where a ratio is not positive or ``ref`` is 0 (section 9.3)."""
    lu = _safe_log_ratio(up, ref)
    ld = _safe_log_ratio(down, ref)
    return 0.5 * (lu - ld), 0.5 * (lu + ld)


def _safe_log_ratio(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    ok = (ref != 0) & (x / np.where(ref != 0, ref, 1.0) > 0)
    out = np.zeros(np.broadcast_shapes(x.shape, ref.shape))
    np.log(np.abs(x) / np.where(ref != 0, np.abs(ref), 1.0), out=out, where=ok)
    return np.where(ok, out, 0.0)


# --------------------------------------------------------------------------- mass points
def is_smooth_three_point(points: Sequence[float]) -> bool:
    """Section 9.2 uses the smooth asymmetric interpolation for points exactly [-1, 0, 1]."""
    return [float(p) for p in points] == [-1.0, 0.0, 1.0]


def mass_weights(theta: Array, points: Sequence[float]) -> Array:
    """Weights w_j(theta), shape theta.shape + (n_points,), with ln nu(theta) = sum_j w_j ln nu_j
    and sum_j w_j = 1.

    Points [-1, 0, 1]: w = ((alpha t - t)/2, 1 - t alpha, (t + t alpha)/2) (the asymmetric
    log-normal of section 7.3 with up = nu_2, down = nu_0). Other points: piecewise log-linear,
    the first and last segments extended. A single point: w = 1."""
    pts = [float(p) for p in points]
    t = jnp.asarray(theta)
    if len(pts) == 1:
        return jnp.ones(t.shape + (1,))
    if is_smooth_three_point(pts):
        ta = t * smooth_step(t)
        return jnp.stack([0.5 * (ta - t), 1.0 - ta, 0.5 * (t + ta)], axis=-1)
    return _piecewise_weights(t, pts)


def mass_weights_d1(theta: Array, points: Sequence[float]) -> Array:
    """d w_j / d theta, same shape as :func:`mass_weights`."""
    pts = [float(p) for p in points]
    t = jnp.asarray(theta)
    if len(pts) == 1:
        return jnp.zeros(t.shape + (1,))
    if is_smooth_three_point(pts):
        dta = smooth_step(t) + t * smooth_step_d1(t)
        return jnp.stack([0.5 * (dta - 1.0), -dta, 0.5 * (1.0 + dta)], axis=-1)
    return _piecewise_weights_d1(t, pts)


def mass_weights_d2(theta: Array, points: Sequence[float]) -> Array:
    """d^2 w_j / d theta^2 (zero for the piecewise log-linear interpolation)."""
    pts = [float(p) for p in points]
    t = jnp.asarray(theta)
    if len(pts) == 1 or not is_smooth_three_point(pts):
        return jnp.zeros(t.shape + (len(pts),))
    d2 = 2.0 * smooth_step_d1(t) + t * smooth_step_d2(t)
    return jnp.stack([0.5 * d2, -d2, 0.5 * d2], axis=-1)


def _segment(t: Array, pts: list[float]) -> tuple[Array, Array, Array]:
    """Index of the segment [t_i, t_i+1] holding t (first/last extended), and its ends."""
    p = jnp.asarray(pts)
    i = jnp.clip(jnp.searchsorted(p, t, side="right") - 1, 0, len(pts) - 2)
    return i, p[i], p[i + 1]


def _piecewise_weights(t: Array, pts: list[float]) -> Array:
    i, lo, hi = _segment(t, pts)
    u = (t - lo) / (hi - lo)
    n = len(pts)
    onehot_lo = jnp.arange(n) == i[..., None]
    onehot_hi = jnp.arange(n) == (i + 1)[..., None]
    return onehot_lo * (1.0 - u)[..., None] + onehot_hi * u[..., None]


def _piecewise_weights_d1(t: Array, pts: list[float]) -> Array:
    i, lo, hi = _segment(t, pts)
    du = 1.0 / (hi - lo)
    n = len(pts)
    onehot_lo = jnp.arange(n) == i[..., None]
    onehot_hi = jnp.arange(n) == (i + 1)[..., None]
    return (onehot_hi.astype(float) - onehot_lo.astype(float)) * du[..., None]


# --------------------------------------------------------------------------- PDF scaling
def z_of_cl(cl_percent: float) -> float:
    """Standard deviations of a two-sided confidence level: z(CL) = sqrt(2) erfinv(CL / 100);
    z(68.268949) = 1, z(90) = 1.6449."""
    if not 0.0 < cl_percent < 100.0:
        raise ValueError(f"confidence level must be in (0, 100) percent, got {cl_percent}")
    return float(sqrt(2.0) * erfinv(cl_percent / 100.0))


def cl_of_z(z: float) -> float:
    """Inverse of :func:`z_of_cl`, in percent."""
    return 100.0 * erf(z / sqrt(2.0))
