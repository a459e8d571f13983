"""The kinematics toolkit of the pseudo-analysis's event generators: four-vectors, Lorentz
boosts, two-body decays (isotropic or in given axes), the Collins-Soper frame, invariant mass
and pseudorapidity, and the samplers of the analytic spectra (accept-reject, Breit-Wigner
masses, rapidity and pT shapes, decay angles, tau-decay momentum fractions).

Vectorised numpy, float64; used by :mod:`.vector_bosons` and :mod:`.backgrounds`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# ---------------------------------------------------------------------- kinematics helpers
# Four-vectors are float64 arrays of shape (n, 4): (E, px, py, pz) in GeV.


def _unit(v: np.ndarray) -> np.ndarray:
    """Rows of ``v`` (n, 3) normalised to unit length."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _p4_from(m: np.ndarray, y: np.ndarray, pt: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Four-vectors (n, 4) of mass m, rapidity y, transverse momentum pt, azimuth phi."""
    mt = np.sqrt(m * m + pt * pt)
    return np.stack([mt * np.cosh(y), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)], -1)


def _boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Lorentz boost of four-vectors ``p`` (n, 4) by velocities ``beta`` (n, 3): the frame in
    which ``p`` is given moves with -beta in the result (boost by +beta = to the lab from the
    rest frame of a particle of velocity beta)."""
    b2 = np.sum(beta * beta, axis=-1)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.sum(beta * p[:, 1:], axis=-1)
    g2 = gamma * gamma / (1.0 + gamma)  # (gamma - 1) / beta^2, stable at beta -> 0
    vec = p[:, 1:] + (g2 * bp + gamma * p[:, 0])[:, None] * beta
    return np.concatenate([(gamma * (p[:, 0] + bp))[:, None], vec], axis=-1)


def _beta(p: np.ndarray) -> np.ndarray:
    """Velocity (n, 3) of four-vectors (n, 4)."""
    return p[:, 1:] / p[:, :1]


def _two_body_p(m: np.ndarray, m1: float, m2: float) -> np.ndarray:
    """Daughter momentum (n,) in the rest frame of a parent of mass m decaying to m1, m2."""
    m = np.asarray(m, dtype=np.float64)
    s = (m * m - (m1 + m2) ** 2) * (m * m - (m1 - m2) ** 2)
    return np.sqrt(np.clip(s, 0.0, None)) / (2.0 * m)


def _orthonormal(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (x, y) completing unit vectors ``z`` (n, 3) to right-handed bases."""
    ref = np.where(np.abs(z[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    x = _unit(ref - np.sum(ref * z, -1, keepdims=True) * z)
    return x, np.cross(z, x)


def _decay(
    parent: np.ndarray,
    mass: np.ndarray,
    m1: float,
    m2: float,
    cos: np.ndarray,
    phi: np.ndarray,
    axes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-body decay of ``parent`` (n, 4) of invariant mass ``mass`` (n,) into masses m1, m2.
    Daughter 1 has polar angle ``cos`` and azimuth ``phi`` in the parent rest frame with
    respect to ``axes`` = (x, y, z) unit vectors (n, 3) given in that rest frame (default:
    lab-aligned axes). Returns the two daughters in the frame of ``parent``, (n, 4) each."""
    n = parent.shape[0]
    if axes is None:
        eye = np.eye(3)
        axes = (np.tile(eye[0], (n, 1)), np.tile(eye[1], (n, 1)), np.tile(eye[2], (n, 1)))
    x, y, z = axes
    sin = np.sqrt(np.clip(1.0 - cos * cos, 0.0, None))
    d = (sin * np.cos(phi))[:, None] * x + (sin * np.sin(phi))[:, None] * y + cos[:, None] * z
    p = _two_body_p(mass, m1, m2)[:, None]
    d1 = np.concatenate([np.sqrt(m1 * m1 + p * p), p * d], axis=-1)
    d2 = np.concatenate([np.sqrt(m2 * m2 + p * p), -p * d], axis=-1)
    beta = _beta(parent)
    return _boost(d1, beta), _boost(d2, beta)


def _decay_isotropic(
    parent: np.ndarray, mass: np.ndarray, m1: float, m2: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic two-body decay of ``parent`` (n, 4); daughters in the parent's frame."""
    n = parent.shape[0]
    return _decay(parent, mass, m1, m2, rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n))


def _collins_soper_axes(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collins-Soper axes (x, y, z), unit vectors (n, 3) in the rest frame of ``q`` (n, 4), with
    z oriented along the sign of q's longitudinal momentum (the likely quark direction)."""
    n = q.shape[0]
    beta = -_beta(q)
    a = _unit(_boost(np.tile([1.0, 0.0, 0.0, 1.0], (n, 1)), beta)[:, 1:])
    b = _unit(_boost(np.tile([1.0, 0.0, 0.0, -1.0], (n, 1)), beta)[:, 1:])
    z = _unit(a - b)
    s = a + b
    ns = np.linalg.norm(s, axis=-1, keepdims=True)
    x_fallback, _ = _orthonormal(z)
    x = np.where(ns > 1e-12, -s / np.where(ns > 1e-12, ns, 1.0), x_fallback)
    sign = np.where(q[:, 3] < 0, -1.0, 1.0)[:, None]
    z = z * sign
    return x, np.cross(z, x), z


def _mass(p: np.ndarray) -> np.ndarray:
    """Invariant mass (n,) of four-vectors (n, 4)."""
    return np.sqrt(np.clip(p[:, 0] ** 2 - np.sum(p[:, 1:] ** 2, axis=-1), 0.0, None))


def _accept_reject(
    rng: np.random.Generator,
    n: int,
    density: Callable[[np.ndarray, np.ndarray], np.ndarray],
    lo: float,
    hi: float,
    bound: float,
) -> np.ndarray:
    """n draws in [lo, hi] from ``density(x, idx)`` (unnormalised, <= ``bound``), where ``idx``
    are the indices (into 0..n-1) of the draws, for per-event parameters."""
    out = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        x = rng.uniform(lo, hi, todo.size)
        ok = rng.uniform(0.0, bound, todo.size) < density(x, todo)
        out[todo[ok]] = x[ok]
        todo = todo[~ok]
    return out


def _sample_cos_theta(rng: np.random.Generator, a0: np.ndarray, a4: np.ndarray) -> np.ndarray:
    """cos theta (n,) from 1 + c^2 + A0/2 (1 - 3c^2) + A4 c, per-event A0, A4 (n,)."""

    def dens(c: np.ndarray, i: np.ndarray) -> np.ndarray:
        return 1.0 + c * c + 0.5 * a0[i] * (1.0 - 3.0 * c * c) + a4[i] * c

    return _accept_reject(rng, a0.size, dens, -1.0, 1.0, 2.0 + float(np.max(np.abs(a4), initial=0)))


def _sample_tau_lepton_fraction(rng: np.random.Generator, n: int, pol: float) -> np.ndarray:
    """Momentum fraction x (n,) of the charged lepton in tau -> l nu nu (collinear limit) for a
    tau of helicity-polarisation ``pol`` (tau- convention)."""

    def dens(x: np.ndarray, _i: np.ndarray) -> np.ndarray:
        return (5 - 9 * x**2 + 4 * x**3 + pol * (1 - 9 * x**2 + 8 * x**3)) / 3.0

    return _accept_reject(rng, n, dens, 0.0, 1.0, 2.01)


def _sample_abs_power(rng: np.random.Generator, n: int, y0: float, p: float) -> np.ndarray:
    """Signed values (n,) from exp(-(|y|/y0)^p) (a flat-topped rapidity shape)."""
    a = y0 * rng.gamma(1.0 / p, 1.0, n) ** (1.0 / p)
    return np.where(rng.uniform(size=n) < 0.5, -a, a)


def _sample_pt(rng: np.random.Generator, n: int, p0: float, k: float) -> np.ndarray:
    """pT (n,) from dsigma/dpT ~ pT (1 + pT^2/p0^2)^-k (peak p0/sqrt(2k - 1), tail pT^(1-2k))."""
    u = rng.uniform(size=n)
    return p0 * np.sqrt(np.clip((1.0 - u) ** (1.0 / (1.0 - k)) - 1.0, 0.0, None))


def _sample_bw(
    rng: np.random.Generator, n: int, m0: float, width: float, lo: float, hi: float
) -> np.ndarray:
    """Masses (n,) from a relativistic Breit-Wigner 1/((s - M^2)^2 + M^2 G^2) in s, in [lo, hi]."""
    mg = m0 * width
    t = rng.uniform(np.arctan((lo**2 - m0**2) / mg), np.arctan((hi**2 - m0**2) / mg), n)
    return np.sqrt(m0**2 + mg * np.tan(t))


def _eta(p: np.ndarray) -> np.ndarray:
    """Pseudorapidity (n,) of four-vectors (n, 4); +-inf along the beam or for null vectors."""
    pt = np.hypot(p[:, 1], p[:, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(p[:, 3] / pt)
    return np.where(pt > 0, eta, np.inf)


def _pair_in_rest_frame(
    rng: np.random.Generator, m: np.ndarray, m1: np.ndarray, m2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic two-body decay at rest of masses m (n,) into per-event masses m1, m2 (n,):
    the daughters' four-vectors (n, 4) in the parent rest frame."""
    n = m.size
    p = np.sqrt(np.clip((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0, None)) / (2 * m)
    c = rng.uniform(-1, 1, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    sn = np.sqrt(1 - c * c)
    d = p[:, None] * np.stack([sn * np.cos(ph), sn * np.sin(ph), c], -1)
    return (
        np.concatenate([np.sqrt(m1**2 + p**2)[:, None], d], -1),
        np.concatenate([np.sqrt(m2**2 + p**2)[:, None], -d], -1),
    )
