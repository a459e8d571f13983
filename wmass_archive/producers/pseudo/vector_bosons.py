"""The W and Z bosons of the pseudo-analysis's background generators: their masses, widths and
branching fractions, line shapes, rapidity and pT spectra, decays in the Collins-Soper frame
with LO-like angular coefficients, and what a W's decay mode (direct muon, tau, electron,
hadrons) leaves in the final state (the models are described in :mod:`.backgrounds`).
"""

from __future__ import annotations

import numpy as np

from .kinematics import (
    _collins_soper_axes,
    _decay,
    _p4_from,
    _sample_abs_power,
    _sample_bw,
    _sample_cos_theta,
    _sample_pt,
    _sample_tau_lepton_fraction,
)

MZ_GEV = 91.1876
GAMMA_Z_GEV = 2.4952
MW_GEV = 80.360
GAMMA_W_GEV = 2.085

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
