"""The nonprompt (multijet) background: a generator-level sample and the ABCD-like uncertainty
model of its template.

In CMS the nonprompt background (QCD multijet events with a muon from a heavy-flavour hadron
decay in a jet, or from a decay in flight) is estimated from data with an extended ABCD method
in (isolation, mT): 5 control regions plus the signal region, correcting for the correlation of
the two variables, with smoothing in pT, and the prompt contamination of the control regions
subtracted with its full uncertainty. Its uncertainty is 3.2 MeV (nominal impact) on mW.

Here the template comes from a synthetic generator-level sample (:func:`throw_nonprompt`):

* muon pT falling as pT^-4.5 from 15 GeV (a factor ~30 between 26 and 56 GeV), |eta| < 2.5
  flat with a mild central excess, 51% mu+ (charge-symmetric-ish: heavy-flavour pairs);
* the neutrino of the same semileptonic decay, nearly collinear with the muon (pT fraction
  ~ Gamma(2, 0.2) of the muon's, Delta phi ~ N(0, 0.15)): it adds little to mT;
* with probability 0.4 a neutrino from the away-side heavy-flavour jet, back to back
  (Delta phi = pi + N(0, 0.3)), with pT fraction ~ Beta(1.5, 6) of the away jet, whose pT
  balances the muon's jet (muon carrying z ~ U(0.6, 1) of it);
* ``boson_px/py`` = muon + neutrinos: the jets' recoil balances it, so the truth missing pT is
  small and mT mostly low; the detector model's recoil smearing and response then generate
  the fake missing pT that lets some events pass mT > 40 GeV.

Its normalisation :data:`NONPROMPT_XSEC_PB` (an effective cross section for pT > 15 GeV,
|eta| < 2.5, isolated muon candidates) is tuned so that nonprompt is ~2% of the sample after
the detector model's selection (|eta| < 2.4, 26 < pT < 56 GeV, mT > 40 GeV). Most of these
events pass mT > 40 GeV through the missing-pT resolution, so the fraction after a truth-level
selection is lower (~0.6%), and it moves with the detector's recoil model: since the estimate
is data-driven in CMS anyway, :func:`scale_to_fraction` gives the factor that sets it to a
chosen fraction after the full selection.

The uncertainty model (:func:`nonprompt_variations`, group ``Fake``) has, by default,
8 eta regions of 0.6 (6 reco bins each) and

====================================  ===  =============================================
``fakeNorm_etaReg{k}_{minus|plus}``    16  normalisation per (eta region, charge), +-5%:
                                           the statistical and prompt-subtraction
                                           uncertainty of the ABCD estimate in that region
``fakeSlope_etaReg{k}``                 8  linear pT slope per eta region, +-10% at the pT
                                           edges, both charges (the smoothing in pT)
``fakeMtCorr_{minus|plus}``             2  the extended-ABCD correction for the isolation-
                                           mT correlation: quadratic in pT (Chebyshev T2),
                                           +-5%, all eta, per charge
``fakePromptSubtraction``               1  the prompt (W) contamination of the control
                                           regions, peaked at the Jacobian pT ~ 40 GeV:
                                           -5% x exp(-(pT - 40)^2 / (2 x 5^2)) (more prompt
                                           subtracted, fewer fakes), all eta and charges
====================================  ===  =============================================

27 nuisances, all log-normal: up = exp(+delta f), down = exp(-delta f) with f the shape above
(f = 1 inside the region for a normalisation), so up x down = 1. With a nominal template the
shape-only ones (slope, mT correlation, prompt subtraction) are renormalised to keep the
yield of each (charge, eta region) unchanged, leaving normalisation to ``fakeNorm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .truth import TruthMuons

#: nuisance group of every nonprompt-template nuisance
NONPROMPT_NUISANCE_GROUP = "Fake"
#: generated phase space of the nonprompt sample
NONPROMPT_PT_MIN_GEV = 15.0
NONPROMPT_ABS_ETA_MAX = 2.5
#: power of the falling muon pT spectrum, pT^-n
NONPROMPT_PT_POWER = 4.5
#: fraction of mu+ (heavy-flavour pairs are charge symmetric; decays in flight of K+/pi+ add a
#: little)
NONPROMPT_PLUS_FRACTION = 0.51
#: probability of a semileptonic decay in the away-side jet (a neutrino opposite the muon)
NONPROMPT_AWAY_NU_PROB = 0.4
#: effective cross section of isolated nonprompt muon candidates with pT > 15 GeV and
#: |eta| < 2.5 (pb), tuned so that nonprompt is ~2% of the sample selected by the detector
#: model (default :class:`~.detector.DetectorModel`: its missing-pT resolution lets ~3 times
#: more multijet events pass mT > 40 GeV than at truth level, where the fraction is ~0.6%)
NONPROMPT_XSEC_PB = 20000.0
#: the target fraction of the selected sample
NONPROMPT_TARGET_FRACTION = 0.02

#: default reco binning (same as the detector model)
ETA_EDGES = np.linspace(-2.4, 2.4, 49)
PT_EDGES = np.linspace(26.0, 56.0, 31)
CHARGE_LABELS = ("minus", "plus")


def throw_nonprompt(
    n: int, rng: np.random.Generator, pt_range: tuple[float, float], abs_eta_max: float
) -> tuple[TruthMuons, np.ndarray]:
    """Throw ``n`` nonprompt events in the generated phase space (pT > 15 GeV, |eta| < 2.5) and
    keep those whose muon has pT in ``pt_range`` (GeV) and |eta| < ``abs_eta_max``. Returns
    the kept muons (unit weights) and their indices among the thrown events (shape (k,))."""
    pt = NONPROMPT_PT_MIN_GEV * rng.uniform(size=n) ** (-1.0 / (NONPROMPT_PT_POWER - 1.0))
    # |eta| flat with a mild central excess: density 1 - 0.1 (eta/2.5)^2 (accept-reject)
    eta = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        e = rng.uniform(-NONPROMPT_ABS_ETA_MAX, NONPROMPT_ABS_ETA_MAX, todo.size)
        ok = rng.uniform(size=todo.size) < 1.0 - 0.1 * (e / NONPROMPT_ABS_ETA_MAX) ** 2
        eta[todo[ok]] = e[ok]
        todo = todo[~ok]
    phi = rng.uniform(-np.pi, np.pi, n)
    charge = np.where(rng.uniform(size=n) < NONPROMPT_PLUS_FRACTION, 1, -1).astype(np.int8)
    # same-jet neutrino, nearly collinear
    r1 = rng.gamma(2.0, 0.2, n)
    phi1 = phi + rng.normal(0.0, 0.15, n)
    # away-side neutrino
    away = rng.uniform(size=n) < NONPROMPT_AWAY_NU_PROB
    jet_pt = pt / rng.uniform(0.6, 1.0, n) * np.clip(rng.normal(1.0, 0.2, n), 0.3, None)
    nu2 = np.where(away, rng.beta(1.5, 6.0, n) * jet_pt, 0.0)
    phi2 = phi + np.pi + rng.normal(0.0, 0.3, n)
    bx = pt * np.cos(phi) + r1 * pt * np.cos(phi1) + nu2 * np.cos(phi2)
    by = pt * np.sin(phi) + r1 * pt * np.sin(phi1) + nu2 * np.sin(phi2)
    keep = (pt >= pt_range[0]) & (pt < pt_range[1]) & (np.abs(eta) < abs_eta_max)
    idx = np.flatnonzero(keep)
    out = TruthMuons(
        pt=pt[idx],
        eta=eta[idx],
        phi=phi[idx],
        charge=charge[idx],
        weight=np.ones(idx.size),
        boson_px=bx[idx],
        boson_py=by[idx],
    )
    return out, idx


def scale_to_fraction(
    nonprompt_selected: float, others_selected: float, fraction: float = NONPROMPT_TARGET_FRACTION
) -> float:
    """Factor by which to scale the nonprompt weights so that nonprompt makes up ``fraction``
    of the selected sample, given the selected yields (any common unit) of the nonprompt
    sample and of everything else (signal and prompt backgrounds)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be in (0, 1)")
    if nonprompt_selected <= 0.0 or others_selected <= 0.0:
        raise ValueError("selected yields must be positive")
    return fraction / (1.0 - fraction) * others_selected / nonprompt_selected


# ------------------------------------------------------------------- uncertainty model
class FakeUncertaintyConfig(BaseModel):
    """Sizes and granularity of the nonprompt ("Fake") template uncertainties."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    eta_region_edges: tuple[float, ...] = Field(
        (-2.4, -1.8, -1.2, -0.6, 0.0, 0.6, 1.2, 1.8, 2.4),
        description="eta regions of the normalisation and slope nuisances",
    )
    norm: float = Field(0.05, ge=0.0, description="log-size of fakeNorm per (region, charge)")
    slope: float = Field(0.10, ge=0.0, description="log-size of fakeSlope at the pT edges")
    mt_correlation: float = Field(0.05, ge=0.0, description="log-size of fakeMtCorr (T2 in pT)")
    prompt_subtraction: float = Field(0.05, ge=0.0, description="peak of fakePromptSubtraction")
    prompt_peak_gev: float = Field(40.0, description="pT of the prompt contamination's peak")
    prompt_width_gev: float = Field(5.0, gt=0.0, description="its Gaussian width")

    @field_validator("eta_region_edges")
    @classmethod
    def _increasing(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) < 2 or np.any(np.diff(v) <= 0):
            raise ValueError("eta_region_edges must be increasing, at least two edges")
        return v


@dataclass(frozen=True)
class FakeVariation:
    """One nuisance of the nonprompt template: multiplicative factors per reco bin."""

    name: str  #: nuisance name (a valid identifier)
    group: str  #: nuisance group, ``Fake``
    up: np.ndarray  #: (2, n_eta, n_pt) factor at +1 sigma (charge order: minus, plus)
    down: np.ndarray  #: (2, n_eta, n_pt) factor at -1 sigma


def fake_nuisance_names(config: FakeUncertaintyConfig | None = None) -> list[str]:
    """Names of the nonprompt nuisances in the order :func:`nonprompt_variations` returns them."""
    c = config or FakeUncertaintyConfig()
    n_reg = len(c.eta_region_edges) - 1
    names = [f"fakeNorm_etaReg{k}_{q}" for k in range(n_reg) for q in CHARGE_LABELS]
    names += [f"fakeSlope_etaReg{k}" for k in range(n_reg)]
    names += [f"fakeMtCorr_{q}" for q in CHARGE_LABELS]
    names.append("fakePromptSubtraction")
    return names


def nonprompt_variations(
    nominal: np.ndarray | None = None,
    config: FakeUncertaintyConfig | None = None,
    eta_edges: np.ndarray = ETA_EDGES,
    pt_edges: np.ndarray = PT_EDGES,
) -> list[FakeVariation]:
    """The ABCD-like uncertainty model of the nonprompt template (see the module docstring):
    one :class:`FakeVariation` per nuisance, with up/down factor arrays of shape
    (2, n_eta, n_pt) (charge minus first, then eta, then pT, as the reco templates). With
    ``nominal`` (same shape, the nonprompt template) the shape-only variations conserve the
    yield of each (charge, eta region)."""
    c = config or FakeUncertaintyConfig()
    eta_c = 0.5 * (np.asarray(eta_edges)[1:] + np.asarray(eta_edges)[:-1])
    pt_c = 0.5 * (np.asarray(pt_edges)[1:] + np.asarray(pt_edges)[:-1])
    shape = (2, eta_c.size, pt_c.size)
    if nominal is not None:
        nominal = np.asarray(nominal, dtype=np.float64)
        if nominal.shape != shape:
            raise ValueError(f"nominal has shape {nominal.shape}, expected {shape}")
    reg_edges = np.asarray(c.eta_region_edges)
    n_reg = reg_edges.size - 1
    region = np.clip(np.searchsorted(reg_edges, eta_c, side="right") - 1, 0, n_reg - 1)
    outside = (eta_c < reg_edges[0]) | (eta_c > reg_edges[-1])
    region = np.where(outside, -1, region)
    lo, hi = float(pt_edges[0]), float(pt_edges[-1])
    t = (2.0 * pt_c - lo - hi) / (hi - lo)  # -1 .. 1 across the pT range
    names = iter(fake_nuisance_names(c))
    out: list[FakeVariation] = []

    def add(logf: np.ndarray, shape_only: bool) -> None:
        logf = np.broadcast_to(np.asarray(logf, dtype=np.float64), shape)
        up, down = np.exp(logf), np.exp(-logf)
        if shape_only and nominal is not None:
            up, down = _conserve(up, nominal, region), _conserve(down, nominal, region)
        out.append(FakeVariation(next(names), NONPROMPT_NUISANCE_GROUP, up, down))

    in_reg = [(region == k)[None, :, None] for k in range(n_reg)]
    charge_mask = [np.arange(2)[:, None, None] == i for i in range(2)]
    for k in range(n_reg):
        for i in range(2):
            add(c.norm * (in_reg[k] & charge_mask[i]), False)
    for k in range(n_reg):
        add(c.slope * in_reg[k] * t[None, None, :], True)
    t2 = 2.0 * t * t - 1.0
    for i in range(2):
        add(c.mt_correlation * charge_mask[i] * t2[None, None, :], True)
    bump = np.exp(-0.5 * ((pt_c - c.prompt_peak_gev) / c.prompt_width_gev) ** 2)
    add(-c.prompt_subtraction * bump[None, None, :], True)
    return out


def _conserve(factor: np.ndarray, nominal: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``factor`` rescaled per (charge, eta region) so that sum(nominal * factor) is unchanged."""
    out = factor.copy()
    for k in np.unique(region[region >= 0]):
        cols = region == k
        for i in range(2):
            nom = nominal[i][cols].sum()
            var = (nominal[i][cols] * factor[i][cols]).sum()
            if nom > 0 and var > 0:
                out[i][cols] = factor[i][cols] * (nom / var)
    return out
