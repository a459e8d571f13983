"""Generator-level samples of the prompt backgrounds of the pseudo-analysis, and the registry of
all background processes (the nonprompt one is in :mod:`.nonprompt`).

Synthetic, and honest about it: every process is a small analytic event generator
(vectorised numpy, float64), not a matrix element plus parton shower. What it gets right is
what matters for the W-mass fit: the cross sections times branching fractions, the muon
(eta, pT, charge) spectra, and the transverse momentum the hadronic recoil balances, so that
after the detector model's mT > 40 GeV cut the fractions and shapes are CMS-like.

Processes (13 TeV; cross sections in pb, "mu" includes W -> tau -> mu):

``Zmumu``   Z/gamma* -> mu mu, m_ll > 50 GeV, sigma x BR = 1950 pb. Selected when one muon is
            lost: outside the muon acceptance |eta| > 2.4, below the veto threshold
            pT < 15 GeV, or not tracked (0.5%) or failing the loose veto identification (0.5%).
            A lost muon outside the tracker (|eta| > 2.5) or not tracked is invisible and goes
            into the missing pT; one with a track is still a particle-flow candidate and is
            part of the hadronic recoil (so such events are mostly removed by mT > 40 GeV, as
            in CMS where this background is "mainly with one out-of-acceptance muon").
``Wtaunu``  W -> tau nu, tau -> mu nu nu; sigma x BR(W -> l nu) = 11.8 (W+) + 8.8 (W-) nb,
            x BR(tau -> mu nu nu) = 0.1739: 3582 pb.
``Ztautau`` Z/gamma* -> tau tau (m > 50 GeV, 1950 pb) with at least one tau -> mu nu nu
            (BR 0.3175): 619 pb; the other tau decays to e, hadrons (visible part in the
            recoil) or mu (then the lost-muon logic of ``Zmumu`` applies).
``Top``     ttbar (831.8 pb) and single top (t-channel 217 pb, s-channel 10.3 pb, tW 71.7 pb)
            with at least one W -> mu (direct or via tau, BR 0.1259 per W): 196.3 + 45.5 =
            241.8 pb.
``Diboson`` WW (118.7 pb), WZ (47.13 pb), ZZ (16.52 pb) with a muon from a W or a Z:
            28.0 + 7.32 + 1.09 = 36.4 pb (the inclusive NNLO/NLO cross sections CMS
            normalises its 2016 samples to, times the muon branching fractions).
``Nonprompt``
            multijet: see :mod:`.nonprompt` (an effective 20 nb for pT > 15 GeV, |eta| < 2.5).

Fractions of the selected sample (default :class:`~.detector.DetectorModel`, signal from
:mod:`.signal`'s analytic W model, 100k events per background): Zmumu 3.4%, Wtaunu 1.9%,
Ztautau 0.23%, Top 0.65%, Diboson 0.09%, Nonprompt 1.9% (tuned): 8.1% in all. After a
truth-level selection (truth mT from the invisible momentum) the prompt ones are the same
within 0.1% and the nonprompt is ~0.6%.

Models (all documented approximations):

* vector bosons: relativistic Breit-Wigner line shapes (Z: 91.1876, 2.4952 GeV; W: 80.360,
  2.085 GeV), plus a 4% gamma* continuum ~ 1/m^3 for m_ll in [50, 150] GeV; rapidity
  ~ exp(-(|y|/y0)^p) (W+ broader than W-, see :data:`W_PLUS_Y`); pT from
  dsigma/dpT ~ pT (1 + pT^2/p0^2)^(-k) (peak ~ 4 GeV, mean ~ 8 GeV, pT^-4 tail);
* decays in the Collins-Soper frame (z axis along the boson's longitudinal direction) with
  1 + cos^2 + A0/2 (1 - 3 cos^2) + A4 cos, A0 = pT^2/(pT^2 + m^2), A4 = -q 2 D(y) (1 - A0) for
  W -> l nu (V-A, diluted by D(y) = 0.5 tanh(0.6 |y|), the probability-weighted sign of the
  quark direction along the boson), A4 = 0.08 D(y) (1 - A0) for Z -> l- (the small Z
  forward-backward asymmetry);
* tau decays in the collinear approximation (tau momentum >> m_tau): the muon carries a
  fraction x of the tau momentum, with the polarised V-A spectrum
  dGamma/dx = (1/3) [(5 - 9x^2 + 4x^3) + P (1 - 9x^2 + 8x^3)]: P = -1 for taus from W
  decays (left-handed tau-, right-handed tau+: <x> = 0.40, harder than unpolarised 0.35),
  P = -0.144 in Z decays (LEP A_tau); tau-tau spin correlations are neglected, the rest
  (1 - x) of the tau momentum is invisible; hadronic taus keep a uniform visible fraction;
* top: m_tt threshold + Gamma spectrum, t -> b W with W helicity fractions F0 = 0.687,
  FL = 0.311 (the charged lepton follows (3/4) F0 sin^2 + (3/8) FL (1 - cos)^2), no top spin
  correlations; single top as one top with a harder pT spectrum (tW's second W not
  decayed, its muon counted in the cross section);
* dibosons: pair mass from threshold with a Gamma tail, isotropic decays (no spin
  correlations).

Each returned event carries one candidate muon (the one that can be selected) and
``boson_px/py`` = candidate muon + everything invisible (neutrinos, muons outside the tracker):
the transverse momentum the hadronic recoil balances. The truth missing pT is
``boson - muon``.

Normalisation: :func:`generate` returns exactly ``n_events`` events of a process in a
generator filter (:class:`GeneratorFilter`: muon pT and |eta| loose enough that nothing the
detector model can select is cut) and in the process's own phase space (one muon selectable,
the other lost). Events are thrown from the inclusive process until ``n_events`` pass; the
weights are sigma x BR x (n - 1) / (n (N - 1)) for N thrown (the unbiased estimator for this
stopping rule), so the sum of weights is the cross section in the generated phase space, and
equals the inclusive sigma x BR exactly when nothing is filtered out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .nonprompt import NONPROMPT_NUISANCE_GROUP, NONPROMPT_XSEC_PB, throw_nonprompt
from .truth import TruthMuons

# ------------------------------------------------------------------------------ constants
MZ_GEV = 91.1876
GAMMA_Z_GEV = 2.4952
MW_GEV = 80.360
GAMMA_W_GEV = 2.085
MTOP_GEV = 172.5
MB_GEV = 4.8

#: tau -> mu nu nu and tau -> e nu nu branching fractions (PDG)
BR_TAU_MU = 0.1739
BR_TAU_E = 0.1782
#: W branching fractions (PDG), normalised to sum to one: e, mu, tau, hadrons
_BR_W_RAW = np.array([0.1071, 0.1063, 0.1138, 0.6741])
BR_W_E, BR_W_MU, BR_W_TAU, BR_W_HAD = (_BR_W_RAW / _BR_W_RAW.sum()).tolist()
#: probability that a W gives a muon, directly or through a leptonic tau decay
BR_W_TO_MU_INCL = BR_W_MU + BR_W_TAU * BR_TAU_MU
#: Z branching fractions (PDG): e e, mu mu, tau tau, nu nu (3 flavours), hadrons
BR_Z_EE, BR_Z_MUMU, BR_Z_TAUTAU, BR_Z_NUNU = 0.03363, 0.03366, 0.03370, 0.2000
BR_Z_HAD = 1.0 - BR_Z_EE - BR_Z_MUMU - BR_Z_TAUTAU - BR_Z_NUNU

#: tau polarisation (helicity of the tau-; the tau+ has the opposite, which gives the same muon
#: spectrum by CP) in W and Z decays
TAU_POL_W = -1.0
TAU_POL_Z = -0.144

#: W -> l nu cross sections per lepton flavour, 13 TeV (pb)
XSEC_W_PLUS_LNU_PB = 11800.0
XSEC_W_MINUS_LNU_PB = 8800.0
#: Z/gamma* -> l l, m_ll > 50 GeV, per lepton flavour (pb)
XSEC_Z_LL_PB = 1950.0
#: ttbar, NNLO+NNLL, mt = 172.5 GeV (pb)
XSEC_TTBAR_PB = 831.8
#: single top: t-channel (t + tbar), s-channel, tW (pb)
XSEC_T_TCHAN_PB = 217.0
XSEC_T_TCHAN_TOP_FRACTION = 136.0 / 217.0
XSEC_T_SCHAN_PB = 10.3
XSEC_TW_PB = 71.7
#: dibosons, inclusive (pb)
XSEC_WW_PB = 118.7
XSEC_WZ_PB = 47.13
XSEC_ZZ_PB = 16.52

#: the second-muon veto: muons with |eta| < 2.4 and pT > 15 GeV that are tracked (efficiency
#: 0.995) and pass a loose identification (0.995) reject the event
VETO_ABS_ETA = 2.4
VETO_PT_GEV = 15.0
VETO_TRACKING_EFFICIENCY = 0.995
VETO_ID_EFFICIENCY = 0.995
#: muons beyond the tracker (|eta| > 2.5) or not tracked leave no particle-flow candidate:
#: invisible (in the missing pT); an untagged muon with a track is part of the recoil
TRACKER_ABS_ETA = 2.5

_P_AT_LEAST_ONE_MU_TT = 1.0 - (1.0 - BR_W_TO_MU_INCL) ** 2

#: sigma x BR (pb) of each prompt background's generated process (before any kinematic filter)
XSEC_PB: dict[str, float] = {
    "Zmumu": XSEC_Z_LL_PB,
    "Wtaunu": (XSEC_W_PLUS_LNU_PB + XSEC_W_MINUS_LNU_PB) * BR_TAU_MU,
    "Ztautau": XSEC_Z_LL_PB * (1.0 - (1.0 - BR_TAU_MU) ** 2),
    "Top": XSEC_TTBAR_PB * _P_AT_LEAST_ONE_MU_TT
    + (XSEC_T_TCHAN_PB + XSEC_T_SCHAN_PB) * BR_W_TO_MU_INCL
    + XSEC_TW_PB * _P_AT_LEAST_ONE_MU_TT,
    "Diboson": XSEC_WW_PB * _P_AT_LEAST_ONE_MU_TT
    + XSEC_WZ_PB * (1.0 - (1.0 - BR_W_TO_MU_INCL) * (1.0 - BR_Z_MUMU))
    + XSEC_ZZ_PB * (1.0 - (1.0 - BR_Z_MUMU) ** 2),
    "Nonprompt": NONPROMPT_XSEC_PB,
}


class GeneratorFilter(BaseModel):
    """Generator-level cut on the candidate muon, loose enough that the detector model cannot
    select anything it removes (resolution at 26 GeV is ~1-3%): it only saves processing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pt_min: float = Field(20.0, ge=0.0, description="GeV")
    pt_max: float = Field(100.0, gt=0.0, description="GeV")
    abs_eta_max: float = Field(2.5, gt=0.0)

    @classmethod
    def none(cls) -> GeneratorFilter:
        """No cut at all: the sample is the whole generated process."""
        return cls(pt_min=0.0, pt_max=math.inf, abs_eta_max=math.inf)


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


#: rapidity shapes exp(-(|y|/y0)^p), (y0, p), at 13 TeV: W+ flat to |y| ~ 2.5 (u valence),
#: W- falling from y = 0 (the W+/W- ratio grows with |y|; with the V-A decay this gives a muon
#: charge asymmetry rising from 0.13 at eta = 0 to 0.16 at |eta| = 2.4 for 26 < pT < 56 GeV),
#: Z flat to |y| ~ 2.5 and zero by ~4.5
W_PLUS_Y: tuple[float, float] = (4.2, 3.5)
W_MINUS_Y: tuple[float, float] = (3.3, 2.0)
Z_Y: tuple[float, float] = (3.65, 5.0)


#: large-|y| limit of the probability-weighted sign of the quark direction (sea-sea and
#: sea-valence collisions dilute it)
DILUTION_MAX = 0.5


def _dilution(y: np.ndarray) -> np.ndarray:
    """Probability-weighted sign that the quark moves along the boson (n,), 0 at y = 0."""
    return DILUTION_MAX * np.tanh(0.6 * np.abs(y))


def _vector_boson(
    rng: np.random.Generator,
    mass: np.ndarray,
    y0: float,
    ypow: float,
    pt0: float,
    ptk: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Boson four-vectors (n, 4) with the given masses, y ~ exp(-(|y|/y0)^ypow) and
    pT ~ pT (1 + pT^2/pt0^2)^-ptk; also returns the rapidities (n,)."""
    n = mass.size
    y = _sample_abs_power(rng, n, y0, ypow)
    pt = _sample_pt(rng, n, pt0, ptk)
    return _p4_from(mass, y, pt, rng.uniform(0, 2 * np.pi, n)), y


def _z_line_shape(rng: np.random.Generator, n: int) -> np.ndarray:
    """Dilepton masses (n,): Z Breit-Wigner in [50, 150] GeV plus a 4% gamma* continuum
    ~ 1/m^3 (the m_ll > 50 GeV Drell-Yan spectrum)."""
    m = _sample_bw(rng, n, MZ_GEV, GAMMA_Z_GEV, 50.0, 150.0)
    cont = rng.uniform(size=n) < 0.04
    u = rng.uniform(size=int(cont.sum()))
    lo, hi = 50.0**-2, 150.0**-2  # 1/m^3 in m: uniform in m^-2
    m[cont] = (lo + u * (hi - lo)) ** -0.5
    return m


def _cs_decay(
    rng: np.random.Generator, q: np.ndarray, mass: np.ndarray, a0: np.ndarray, a4: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Decay of bosons ``q`` (n, 4) into two massless leptons in the Collins-Soper frame; the
    first follows 1 + c^2 + A0/2 (1 - 3c^2) + A4 c. Lab four-vectors (n, 4) each."""
    cos = _sample_cos_theta(rng, a0, a4)
    phi = rng.uniform(0, 2 * np.pi, mass.size)
    return _decay(q, mass, 0.0, 0.0, cos, phi, _collins_soper_axes(q))


def _a0(q: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """LO-like A0 = pT^2 / (pT^2 + m^2) of bosons (n, 4)."""
    pt2 = q[:, 1] ** 2 + q[:, 2] ** 2
    return pt2 / (pt2 + mass * mass)


# -------------------------------------------------------------------- decay-mode helpers
# W decay modes (per W): what reaches the final state
_MU, _TAU_MU, _E, _TAU_E, _TAU_HAD, _HAD = range(6)


def _w_modes(rng: np.random.Generator, n: int, force_mu: np.ndarray) -> np.ndarray:
    """Decay modes (n,) of W bosons: where ``force_mu`` is true a muon mode (direct or via a
    tau, in proportion), elsewhere a mode without a muon (in proportion)."""
    u = rng.uniform(size=n)
    p_mu = BR_W_MU / BR_W_TO_MU_INCL
    mu_modes = np.where(u < p_mu, _MU, _TAU_MU)
    other = np.array([BR_W_E, BR_W_TAU * BR_TAU_E, BR_W_TAU * (1 - BR_TAU_MU - BR_TAU_E), BR_W_HAD])
    cdf = np.cumsum(other / other.sum())
    idx = np.minimum(np.searchsorted(cdf, rng.uniform(size=n), side="right"), 3)
    non_mu = np.array([_E, _TAU_E, _TAU_HAD, _HAD])[idx]
    return np.where(force_mu, mu_modes, non_mu)


def _w_final_state(
    rng: np.random.Generator, lep: np.ndarray, nu: np.ndarray, mode: np.ndarray, pol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Given a W's charged-lepton (or quark) and neutrino (or antiquark) four-vectors (n, 4)
    and its decay mode (n,), returns (muon four-vector (n, 4), has_muon (n,), invisible
    four-vector (n, 4)). Taus decay collinearly (see module docstring)."""
    n = mode.size
    tau = np.isin(mode, [_TAU_MU, _TAU_E, _TAU_HAD])
    x = np.ones(n)
    lept = np.isin(mode, [_TAU_MU, _TAU_E])
    x[lept] = _sample_tau_lepton_fraction(rng, int(lept.sum()), pol)
    had = mode == _TAU_HAD
    x[had] = rng.uniform(size=int(had.sum()))
    has_mu = np.isin(mode, [_MU, _TAU_MU])
    mu = np.where(has_mu[:, None], lep * x[:, None], 0.0)
    inv = np.where((mode == _HAD)[:, None], 0.0, nu)
    inv = inv + np.where(tau[:, None], lep * (1.0 - x)[:, None], 0.0)
    return mu, has_mu, inv


def _eta(p: np.ndarray) -> np.ndarray:
    """Pseudorapidity (n,) of four-vectors (n, 4); +-inf along the beam or for null vectors."""
    pt = np.hypot(p[:, 1], p[:, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(p[:, 3] / pt)
    return np.where(pt > 0, eta, np.inf)


class _Thrown(NamedTuple):
    """Final state of n thrown events, before choosing the candidate muon."""

    mu_a: np.ndarray  #: (n, 4) first muon
    q_a: np.ndarray  #: (n,) its charge
    has_a: np.ndarray  #: (n,) bool
    mu_b: np.ndarray  #: (n, 4) second muon (zeros where absent)
    q_b: np.ndarray
    has_b: np.ndarray
    inv: np.ndarray  #: (n, 4) invisible momentum other than muons


def _select_single_muon(
    ev: _Thrown, rng: np.random.Generator, pt_range: tuple[float, float], abs_eta_max: float
) -> tuple[TruthMuons, np.ndarray]:
    """The events where one muon passes the generator filter while the other is absent or
    lost (out of the veto acceptance, below the veto threshold, or failing the loose veto
    identification). Returns the candidate muons with unit weights and the indices of the
    kept events among the thrown ones. boson = candidate + invisible (+ the lost muon if it
    is outside the tracker)."""
    n = ev.q_a.size

    def muon_info(p: np.ndarray, has: np.ndarray):
        pt = np.hypot(p[:, 1], p[:, 2])
        eta = _eta(p)
        filt = has & (pt >= pt_range[0]) & (pt < pt_range[1]) & (np.abs(eta) < abs_eta_max)
        tracked = rng.uniform(size=n) < VETO_TRACKING_EFFICIENCY
        identified = rng.uniform(size=n) < VETO_ID_EFFICIENCY
        vetoes = has & (np.abs(eta) < VETO_ABS_ETA) & (pt > VETO_PT_GEV) & tracked & identified
        invisible = has & ((np.abs(eta) > TRACKER_ABS_ETA) | ~tracked)
        return pt, eta, filt, vetoes, invisible

    pt_a, eta_a, filt_a, veto_a, inv_a = muon_info(ev.mu_a, ev.has_a)
    pt_b, eta_b, filt_b, veto_b, inv_b = muon_info(ev.mu_b, ev.has_b)
    cand_a = filt_a & ~veto_b
    cand_b = filt_b & ~veto_a
    take_b = cand_b & ~(cand_a & (pt_a >= pt_b))
    keep = cand_a | cand_b
    idx = np.flatnonzero(keep)
    tb = take_b[idx][:, None]
    mu = np.where(tb, ev.mu_b[idx], ev.mu_a[idx])
    other = np.where(tb, ev.mu_a[idx], ev.mu_b[idx])
    other_invisible = np.where(take_b, inv_a, inv_b)[idx]
    boson = mu + ev.inv[idx] + np.where(other_invisible[:, None], other, 0.0)
    out = TruthMuons(
        pt=np.hypot(mu[:, 1], mu[:, 2]),
        eta=_eta(mu),
        phi=np.arctan2(mu[:, 2], mu[:, 1]),
        charge=np.where(take_b, ev.q_b, ev.q_a)[idx].astype(np.int8),
        weight=np.ones(idx.size),
        boson_px=boson[:, 1],
        boson_py=boson[:, 2],
    )
    return out, idx


def _none4(n: int) -> np.ndarray:
    return np.zeros((n, 4))


# --------------------------------------------------------------------------- processes
Thrower = Callable[
    [int, np.random.Generator, tuple[float, float], float], tuple[TruthMuons, np.ndarray]
]


def _throw_zmumu(
    n: int, rng: np.random.Generator, pt_range: tuple[float, float], abs_eta_max: float
) -> tuple[TruthMuons, np.ndarray]:
    """Z/gamma* -> mu mu, m > 50 GeV; one muon selectable, the other lost."""
    m = _z_line_shape(rng, n)
    q, y = _vector_boson(rng, m, *Z_Y, pt0=8.5, ptk=2.5)
    a0 = _a0(q, m)
    mu_minus, mu_plus = _cs_decay(rng, q, m, a0, 0.08 * _dilution(y) * (1 - a0))
    ones = np.ones(n, dtype=bool)
    ev = _Thrown(mu_minus, -np.ones(n), ones, mu_plus, np.ones(n), ones, _none4(n))
    return _select_single_muon(ev, rng, pt_range, abs_eta_max)


def _w_bosons(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W bosons at 13 TeV: four-vectors (n, 4), rapidity (n,), charge (n,) in proportion to
    the W+ and W- cross sections (W+ slightly wider in rapidity)."""
    charge = np.where(
        rng.uniform(size=n) < XSEC_W_PLUS_LNU_PB / (XSEC_W_PLUS_LNU_PB + XSEC_W_MINUS_LNU_PB),
        1.0,
        -1.0,
    )
    m = _sample_bw(rng, n, MW_GEV, GAMMA_W_GEV, 50.0, 150.0)
    q, y = _vector_boson(rng, m, *W_PLUS_Y, pt0=8.0, ptk=2.5)
    minus = charge < 0
    q_m, y_m = _vector_boson(rng, m[minus], *W_MINUS_Y, pt0=8.0, ptk=2.5)
    q[minus], y[minus] = q_m, y_m
    return q, y, charge


def _throw_wtaunu(
    n: int, rng: np.random.Generator, pt_range: tuple[float, float], abs_eta_max: float
) -> tuple[TruthMuons, np.ndarray]:
    """W -> tau nu, tau -> mu nu nu (collinear, tau polarisation P = -1)."""
    q, y, charge = _w_bosons(rng, n)
    m = _mass(q)
    a0 = _a0(q, m)
    tau, nu = _cs_decay(rng, q, m, a0, -charge * 2.0 * _dilution(y) * (1 - a0))
    mu, has, inv = _w_final_state(rng, tau, nu, np.full(n, _TAU_MU), TAU_POL_W)
    ev = _Thrown(mu, charge, has, _none4(n), np.zeros(n), np.zeros(n, bool), inv)
    return _select_single_muon(ev, rng, pt_range, abs_eta_max)


def _throw_ztautau(
    n: int, rng: np.random.Generator, pt_range: tuple[float, float], abs_eta_max: float
) -> tuple[TruthMuons, np.ndarray]:
    """Z/gamma* -> tau tau with at least one tau -> mu nu nu."""
    m = _z_line_shape(rng, n)
    q, y = _vector_boson(rng, m, *Z_Y, pt0=8.5, ptk=2.5)
    a0 = _a0(q, m)
    tau_m, tau_p = _cs_decay(rng, q, m, a0, 0.08 * _dilution(y) * (1 - a0))
    # decay modes given >= 1 muon: both muonic, or one (either tau) muonic
    p_both = BR_TAU_MU**2 / (1.0 - (1.0 - BR_TAU_MU) ** 2)
    u = rng.uniform(size=n)
    both = u < p_both
    first_mu = both | (rng.uniform(size=n) < 0.5)
    second_mu = both | ~first_mu
    p_e = BR_TAU_E / (1.0 - BR_TAU_MU)

    def tau_decay(tau: np.ndarray, is_mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        is_e = ~is_mu & (rng.uniform(size=n) < p_e)
        x = np.empty(n)
        lep = is_mu | is_e
        x[lep] = _sample_tau_lepton_fraction(rng, int(lep.sum()), TAU_POL_Z)
        x[~lep] = rng.uniform(size=int((~lep).sum()))
        return np.where(is_mu[:, None], tau * x[:, None], 0.0), tau * (1.0 - x)[:, None]

    mu_1, inv_1 = tau_decay(tau_m, first_mu)
    mu_2, inv_2 = tau_decay(tau_p, second_mu)
    ev = _Thrown(mu_1, -np.ones(n), first_mu, mu_2, np.ones(n), second_mu, inv_1 + inv_2)
    return _select_single_muon(ev, rng, pt_range, abs_eta_max)


def _top_decay(
    rng: np.random.Generator, top: np.ndarray, mode: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """t -> b W, W -> (mode); top four-vectors (n, 4) in the lab. Returns (muon (n, 4),
    has_muon (n,), invisible (n, 4)) in the lab. The charged lepton's helicity angle follows
    the W helicity fractions F0 = 0.687, FL = 0.311; the top decays isotropically."""
    n = top.shape[0]
    mw = _sample_bw(rng, n, MW_GEV, GAMMA_W_GEV, 50.0, MTOP_GEV - MB_GEV - 1.0)
    # the W in the top rest frame (its mass varies per event)
    w_rest = _pair_in_rest_frame(rng, np.full(n, MTOP_GEV), mw, np.full(n, MB_GEV))[0]
    wdir = _unit(w_rest[:, 1:])
    f0, fl = 0.687, 0.311

    def hel(c: np.ndarray, _i: np.ndarray) -> np.ndarray:
        return 0.75 * f0 * (1 - c * c) + 0.375 * fl * (1 - c) ** 2

    cos_l = _accept_reject(rng, n, hel, -1.0, 1.0, 0.8)
    xw, yw = _orthonormal(wdir)
    lep, nu = _decay(w_rest, mw, 0.0, 0.0, cos_l, rng.uniform(0, 2 * np.pi, n), (xw, yw, wdir))
    beta_t = _beta(top)
    return _w_final_state(rng, _boost(lep, beta_t), _boost(nu, beta_t), mode, TAU_POL_W)


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


def _throw_top(
    n: int, rng: np.random.Generator, pt_range: tuple[float, float], abs_eta_max: float
) -> tuple[TruthMuons, np.ndarray]:
    """ttbar and single top with at least one W -> mu (direct or via tau)."""
    s_tt = XSEC_TTBAR_PB * _P_AT_LEAST_ONE_MU_TT
    is_tt = rng.uniform(size=n) < s_tt / XSEC_PB["Top"]
    # ttbar: pair mass from threshold, y and pT of the pair, isotropic t tbar
    m_tt = 2 * MTOP_GEV + rng.gamma(1.8, 65.0, n)
    tt, _ = _vector_boson(rng, m_tt, y0=1.6, ypow=2.0, pt0=40.0, ptk=2.5)
    top, antitop = _decay_isotropic(tt, m_tt, MTOP_GEV, MTOP_GEV, rng)
    # single top: one (anti)top with a harder pT spectrum
    st, _ = _vector_boson(rng, np.full(n, MTOP_GEV), y0=2.0, ypow=2.0, pt0=70.0, ptk=3.0)
    p_st_top = (
        XSEC_T_TCHAN_PB * XSEC_T_TCHAN_TOP_FRACTION + 0.5 * (XSEC_T_SCHAN_PB + XSEC_TW_PB)
    ) / (XSEC_T_TCHAN_PB + XSEC_T_SCHAN_PB + XSEC_TW_PB)
    st_is_top = rng.uniform(size=n) < p_st_top
    # muon modes: ttbar -> at least one of the two W's; single top -> the top's W
    both = is_tt & (rng.uniform(size=n) < BR_W_TO_MU_INCL**2 / _P_AT_LEAST_ONE_MU_TT)
    first = both | ~is_tt | (rng.uniform(size=n) < 0.5)
    second = is_tt & (both | ~first)
    t1 = np.where(is_tt[:, None], top, st)
    q1 = np.where(is_tt | st_is_top, 1.0, -1.0)
    mu_1, has_1, inv_1 = _top_decay(rng, t1, _w_modes(rng, n, first))
    mu_2, has_2, inv_2 = _top_decay(rng, antitop, _w_modes(rng, n, second))
    inv = inv_1 + np.where(is_tt[:, None], inv_2, 0.0)
    ev = _Thrown(mu_1, q1, has_1, mu_2, -np.ones(n), has_2 & is_tt, inv)
    return _select_single_muon(ev, rng, pt_range, abs_eta_max)


def _throw_diboson(
    n: int, rng: np.random.Generator, pt_range: tuple[float, float], abs_eta_max: float
) -> tuple[TruthMuons, np.ndarray]:
    """WW, WZ, ZZ with at least one muon (from a W, directly or via tau, or from Z -> mu mu).
    Boson 1 is a W (WW, WZ) or the non-muonic Z (ZZ); boson 2 a W (WW) or a Z (WZ; in ZZ the
    one decaying to mu mu). WZ events with three muons are dropped (the veto rejects them);
    a Z not decaying to muons is invisible (nu nu) in proportion, else visible."""
    pw, pz = BR_W_TO_MU_INCL, BR_Z_MUMU
    s = np.array(
        [
            XSEC_WW_PB * _P_AT_LEAST_ONE_MU_TT,
            XSEC_WZ_PB * (1.0 - (1.0 - pw) * (1.0 - pz)),
            XSEC_ZZ_PB * (1.0 - (1.0 - pz) ** 2),
        ]
    )
    proc = np.minimum(np.searchsorted(np.cumsum(s / s.sum()), rng.uniform(size=n), "right"), 2)
    ww, wz, zz = proc == 0, proc == 1, proc == 2
    m_w1 = _sample_bw(rng, n, MW_GEV, GAMMA_W_GEV, 60.0, 100.0)
    m_w2 = _sample_bw(rng, n, MW_GEV, GAMMA_W_GEV, 60.0, 100.0)
    m_z1 = _sample_bw(rng, n, MZ_GEV, GAMMA_Z_GEV, 60.0, 120.0)
    m_z2 = _sample_bw(rng, n, MZ_GEV, GAMMA_Z_GEV, 60.0, 120.0)
    m1 = np.where(zz, m_z1, m_w1)
    m2 = np.where(ww, m_w2, m_z2)
    m_vv = m1 + m2 + rng.gamma(1.5, 60.0, n)
    vv, _ = _vector_boson(rng, m_vv, y0=2.2, ypow=2.5, pt0=25.0, ptk=2.5)
    r1, r2 = _pair_in_rest_frame(rng, m_vv, m1, m2)
    beta = _beta(vv)
    v1, v2 = _boost(r1, beta), _boost(r2, beta)
    # decay modes
    u = rng.uniform(size=n)
    ww_both = ww & (u < pw * pw / _P_AT_LEAST_ONE_MU_TT)
    ww_first = ww & (ww_both | (rng.uniform(size=n) < 0.5))
    ww_second = ww & (ww_both | ~ww_first)
    p_wz = 1.0 - (1.0 - pw) * (1.0 - pz)
    wz_w = wz & (u < pw * (1 - pz) / p_wz)  # W -> mu, Z -> not mu mu
    wz_3mu = wz & (u >= 1.0 - pw * pz / p_wz)  # both
    wz_z = wz & ~wz_w & ~wz_3mu  # W -> no mu, Z -> mu mu
    z_nunu = rng.uniform(size=n) < BR_Z_NUNU / (1.0 - pz)
    # charge of W 1 (W 2: opposite); W+Z : W-Z = 28.5 : 18.6 pb, WW symmetric
    q1 = np.where(rng.uniform(size=n) < np.where(wz, 0.605, 0.5), 1.0, -1.0)
    l1, n1 = _decay_isotropic(v1, m1, 0.0, 0.0, rng)
    l2, n2 = _decay_isotropic(v2, m2, 0.0, 0.0, rng)
    w1_mu = ww_first | wz_w | wz_3mu
    mu_w1, has_w1, inv_w1 = _w_final_state(rng, l1, n1, _w_modes(rng, n, w1_mu), TAU_POL_W)
    mu_w2, has_w2, inv_w2 = _w_final_state(rng, l2, n2, _w_modes(rng, n, ww_second), TAU_POL_W)
    # muon slots: a Z -> mu mu pair (boson 2) or the W muons
    zpair = wz_z | zz
    mu_a = np.where(zpair[:, None], l2, mu_w1)
    qa = np.where(zpair, -1.0, q1)
    has_a = np.where(zpair, True, has_w1 & ~zz) & ~wz_3mu
    mu_b = np.where(zpair[:, None], n2, mu_w2)
    qb = np.where(zpair, 1.0, -q1)
    has_b = np.where(zpair, True, has_w2 & ww) & ~wz_3mu
    inv = np.where((ww | wz)[:, None], inv_w1, 0.0) + np.where(ww[:, None], inv_w2, 0.0)
    inv = inv + np.where((wz_w & z_nunu)[:, None], v2, 0.0)
    inv = inv + np.where((zz & z_nunu)[:, None], v1, 0.0)
    ev = _Thrown(mu_a, qa, has_a, mu_b, qb, has_b, inv)
    return _select_single_muon(ev, rng, pt_range, abs_eta_max)


_THROWERS: dict[str, Thrower] = {
    "Zmumu": _throw_zmumu,
    "Wtaunu": _throw_wtaunu,
    "Ztautau": _throw_ztautau,
    "Top": _throw_top,
    "Diboson": _throw_diboson,
    "Nonprompt": throw_nonprompt,
}


# ------------------------------------------------------------------------------ public API
def generate(
    name: str,
    n_events: int,
    rng: np.random.Generator,
    gen_filter: GeneratorFilter | None = None,
    *,
    max_chunk: int = 500_000,
) -> TruthMuons:
    """``n_events`` generator-level events of background ``name`` (a key of
    :data:`BACKGROUNDS`) passing ``gen_filter`` (default :class:`GeneratorFilter`) and the
    process's single-muon phase space. Weights in pb per event; their sum is the process's
    sigma x BR in that phase space (an unbiased estimate; exact when nothing is filtered).
    Deterministic for a given ``rng`` state. Arrays have shape (n_events,)."""
    if name not in _THROWERS:
        raise KeyError(f"unknown background {name!r}; known: {sorted(_THROWERS)}")
    if n_events < 0:
        raise ValueError("n_events must be >= 0")
    filt = gen_filter if gen_filter is not None else GeneratorFilter()
    thrower = _THROWERS[name]
    if n_events == 0:
        empty = np.zeros(0)
        return TruthMuons(empty, empty, empty, np.zeros(0, np.int8), empty, empty, empty)
    parts: list[TruthMuons] = []
    n_kept, n_thrown, n_total = 0, 0, 0
    eff = 0.5
    while n_kept < n_events:
        chunk = int(min(max_chunk, max(10_000, 1.2 * (n_events - n_kept) / max(eff, 1e-4))))
        muons, idx = thrower(chunk, rng, (filt.pt_min, filt.pt_max), filt.abs_eta_max)
        need = n_events - n_kept
        if len(muons) >= need:
            n_thrown = n_total + int(idx[need - 1]) + 1
            parts.append(muons.select(np.arange(len(muons)) < need))
            n_kept = n_events
            break
        parts.append(muons)
        n_kept += len(muons)
        n_total += chunk
        eff = max(n_kept / n_total, 1e-4)
    out = TruthMuons.concatenate(parts)
    xsec = XSEC_PB[name]
    if n_events > 1 and n_thrown > 1:
        w = xsec * (n_events - 1) / (n_events * (n_thrown - 1))
    else:
        w = xsec / n_thrown
    out.weight = out.weight * w
    return out


class BackgroundProcess(NamedTuple):
    """One background process of the pseudo-analysis."""

    label: str  #: human-readable label
    generator: Callable[..., TruthMuons]  #: (n_events, rng, gen_filter=None) -> TruthMuons
    group: str  #: nuisance group of its normalisation uncertainty
    kappa: float | None  #: lnN kappa of the normalisation nuisance (None: no lnN)
    nuisance: str | None  #: name of the normalisation nuisance (shared names are correlated)
    xsec_pb: float  #: sigma x BR of the generated process before the generator filter (pb)
    note: str  #: where the values come from


#: name -> process. Normalisation nuisances follow CMS (WRemnants): top 6%, dibosons 16%
#: (``CMS_Top``, ``CMS_VV`` there); the Z (Zmumu and Ztautau, one correlated ``norm_Z``) 3%
#: for the inclusive Drell-Yan cross section; W -> tau nu moves with the W signal
#: (``norm_W``, 3%; in CMS it shares the signal's theory model: the lead should apply the
#: signal's theory/normalisation nuisances to it, or drop this lnN if it does). The
#: nonprompt normalisation is carried by the ``Fake`` shape nuisances of
#: :func:`.nonprompt.nonprompt_variations` (per eta region and charge), hence no lnN.
BACKGROUNDS: dict[str, BackgroundProcess] = {
    "Zmumu": BackgroundProcess(
        "Z/#gamma* #rightarrow #mu#mu",
        partial(generate, "Zmumu"),
        "CMS_background",
        1.03,
        "norm_Z",
        XSEC_PB["Zmumu"],
        "Drell-Yan m_ll > 50 GeV, 1950 pb; one muon lost",
    ),
    "Wtaunu": BackgroundProcess(
        "W #rightarrow #tau#nu",
        partial(generate, "Wtaunu"),
        "CMS_background",
        1.03,
        "norm_W",
        XSEC_PB["Wtaunu"],
        "(11.8 + 8.8) nb x BR(tau -> mu nu nu) 0.1739; correlated with the W signal",
    ),
    "Ztautau": BackgroundProcess(
        "Z/#gamma* #rightarrow #tau#tau",
        partial(generate, "Ztautau"),
        "CMS_background",
        1.03,
        "norm_Z",
        XSEC_PB["Ztautau"],
        "1950 pb x BR(at least one tau -> mu) 0.3175",
    ),
    "Top": BackgroundProcess(
        "t#bar{t}, single t",
        partial(generate, "Top"),
        "CMS_background",
        1.06,
        "norm_Top",
        XSEC_PB["Top"],
        "ttbar 831.8 pb, single top 299 pb, with >= 1 W -> mu",
    ),
    "Diboson": BackgroundProcess(
        "WW, WZ, ZZ",
        partial(generate, "Diboson"),
        "CMS_background",
        1.16,
        "norm_Diboson",
        XSEC_PB["Diboson"],
        "WW 118.7, WZ 47.13, ZZ 16.52 pb with a muon",
    ),
    "Nonprompt": BackgroundProcess(
        "Nonprompt",
        partial(generate, "Nonprompt"),
        NONPROMPT_NUISANCE_GROUP,
        None,
        None,
        XSEC_PB["Nonprompt"],
        "effective multijet cross section (pT > 15 GeV, |eta| < 2.5), tuned to the CMS-like "
        "fraction; data-driven in CMS (extended ABCD)",
    ),
}
