"""Generator-level samples of the prompt backgrounds of the pseudo-analysis, and the registry of
all background processes (the nonprompt one is in :mod:`.nonprompt`). The generators are built
from the kinematics toolkit of :mod:`.kinematics` and the W and Z boson models of
:mod:`.vector_bosons`.

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

from .kinematics import (
    _accept_reject,
    _beta,
    _boost,
    _decay,
    _decay_isotropic,
    _eta,
    _mass,
    _orthonormal,
    _pair_in_rest_frame,
    _sample_bw,
    _sample_tau_lepton_fraction,
    _unit,
)
from .nonprompt import NONPROMPT_NUISANCE_GROUP, NONPROMPT_XSEC_PB, throw_nonprompt
from .truth import TruthMuons
from .vector_bosons import (  # noqa: F401  (public constants, importable from here as before)
    _TAU_MU,
    BR_TAU_E,
    BR_TAU_MU,
    BR_W_E,
    BR_W_HAD,
    BR_W_MU,
    BR_W_TAU,
    BR_W_TO_MU_INCL,
    BR_Z_EE,
    BR_Z_HAD,
    BR_Z_MUMU,
    BR_Z_NUNU,
    BR_Z_TAUTAU,
    DILUTION_MAX,
    GAMMA_W_GEV,
    GAMMA_Z_GEV,
    MW_GEV,
    MZ_GEV,
    TAU_POL_W,
    TAU_POL_Z,
    W_MINUS_Y,
    W_PLUS_Y,
    Z_Y,
    _a0,
    _cs_decay,
    _dilution,
    _vector_boson,
    _w_final_state,
    _w_modes,
    _z_line_shape,
)

# ------------------------------------------------------------------------------ constants
MTOP_GEV = 172.5
MB_GEV = 4.8

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
