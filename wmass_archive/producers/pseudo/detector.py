"""The pseudo-analysis' detector model: muon momentum smearing and calibration, efficiencies,
hadronic recoil, transverse mass, selection and reco binning.

Synthetic, CMS-like where it matters for the W-mass fit:

* **Curvature.** k = 1/pT (GeV^-1, unsigned; the charge q is kept separately) is smeared with
  a Gaussian relative resolution, k_reco = k_true (1 + sigma_k/k * z), z ~ N(0, 1), with
  (sigma_k/k)^2 = a(eta) + b(eta) u + c(eta) u^2, u = pT_true / 40 GeV:
  ``a`` is the multiple-scattering term, ``c`` the hit-resolution term, ``b`` a cross term
  (0 in the nominal). sigma_k/k at 40 GeV is ``res_barrel`` (~1%) for |eta| < 0.9 rising
  to ``res_endcap`` (~2.3%) at |eta| = 2.4. The same z is kept per event, so a resolution
  variation re-smears with the same random numbers (a deterministic map, no extra noise).
  Muon eta and phi are not smeared (the tracker's angular resolution is negligible here),
  so a momentum variation never moves an event across eta bins.
* **Calibration.** Per reco eta bin, delta k / k = A + q M / k - e k (A: magnetic field,
  M: alignment, e: energy loss; A dimensionless, M in GeV^-1, e in GeV). The nominal is the
  perfect calibration (all zero); the systematic variations shift A, e, M by their
  uncertainties (config values below).
* **Efficiency** eps(eta, pT, q) = product of the steps tracking, idip (identification and
  impact parameter), trigger (plateau times an erf turn-on around 24 GeV) and isolation; it
  is an event weight of the nominal. The efficiency *nuisances* are per reco bin
  (:mod:`.efficiency`), applied analytically by the archive builder.
* **Recoil.** The hadronic recoil u = -(boson pT) is scaled by a response < 1 and smeared
  by a Gaussian of ``recoil_sigma0 + recoil_sigma_slope * pT^W`` per transverse component;
  MET = -(reco muon pT + reco recoil); mT = sqrt(2 pT MET (1 - cos dphi)). An FSR photon is
  not added back: it goes to MET.
* **Selection** |eta| < 2.4, 26 <= pT < 56 GeV (reco, the bin range), mT > 40 GeV.

Reco binning: 48 eta bins in [-2.4, 2.4], 30 pT bins in [26, 56] GeV, charge (-1, +1);
templates have shape :data:`RECO_SHAPE` = (2, 48, 30) in C order (charge, eta, pt), and a
flat reco index is (iq * 48 + ieta) * 30 + ipt.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import erf

from .truth import TruthMuons

N_ETA_RECO = 48
N_PT_RECO = 30
#: reco template shape (charge, eta, pt), charge -1 first
RECO_SHAPE: tuple[int, int, int] = (2, N_ETA_RECO, N_PT_RECO)
N_RECO = int(np.prod(RECO_SHAPE))
ETA_EDGES = np.linspace(-2.4, 2.4, N_ETA_RECO + 1)
PT_EDGES_RECO = np.linspace(26.0, 56.0, N_PT_RECO + 1)
#: pT at which the resolution parameters a, b, c are normalised (u = pT / PT_REF)
PT_REF = 40.0
#: events per block of the vectorised computations (numpy temporaries stay in cache)
BLOCK = 65_536


class DetectorModel(BaseModel):
    """Configuration of the detector model (defaults CMS-like; see the module docstring).

    Calibration uncertainties are one-sigma widths per reco eta bin at |eta| = 0; they grow
    linearly in |eta| to ``calib_endcap_factor`` times that at |eta| = 2.4. The J/psi widths
    are the unscaled statistical ones, multiplied by ``calib_jpsi_scale`` (CMS: 2.1).

    The widths are tuned on the analytic production model with 100 M selected events so that
    the *prefit* impacts on mW (the mW shift a one-sigma variation causes in a fit of mW
    alone) match CMS's calibration table: J/psi stat. 3.7 MeV, Z closure 1.0, LEP closure
    1.8, resolution 1.35, pixel 0.7; 4.7 MeV in quadrature over the 314 nuisances. In an
    in-situ Asimov fit with only the statistical and calibration nuisances the data constrain
    them and the group's impact is 2.45 MeV (stat. alone 1.45 MeV); nuisances that free the
    pT^W shape (as in the full fit) weaken that constraint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # resolution
    res_barrel: float = Field(0.0095, gt=0, description="sigma_k/k at 40 GeV, |eta| < 0.9")
    res_endcap: float = Field(0.023, gt=0, description="sigma_k/k at 40 GeV, |eta| = 2.4")
    res_ms_fraction: float = Field(
        0.7, ge=0, le=1, description="share of (sigma_k/k)^2 at 40 GeV from the a term"
    )
    # calibration (J/psi statistical, per eta bin: A, e, M)
    calib_A_sigma: float = Field(6.4e-5, ge=0, description="A, dimensionless, unscaled")
    calib_e_sigma: float = Field(3.2e-3, ge=0, description="e in GeV, unscaled")
    calib_M_sigma: float = Field(6.4e-6, ge=0, description="M in GeV^-1, unscaled")
    calib_jpsi_scale: float = Field(2.1, gt=0, description="scaling of the J/psi stat. widths")
    calib_endcap_factor: float = Field(2.0, ge=1, description="width ratio |eta|=2.4 vs 0")
    # closure terms and the rest of the calibration family
    zclosure_sigma: float = Field(6.0e-5, ge=0, description="Z closure stat., A-like, per bin")
    zclosure_lep_sigma: float = Field(
        2.3e-5, ge=0, description="global A-like shift: LEP m_Z (2.1 MeV / 91.19 GeV)"
    )
    resol_rel_sigma: float = Field(
        0.21, ge=0, description="relative width of each resolution term (CMS: stat. x 10)"
    )
    pixel_sigma: float = Field(2.85e-6, ge=0, description="pixel multiplicity, M-like, GeV^-1")
    # efficiency steps
    eff_tracking: tuple[float, float] = Field((0.995, 0.985), description="barrel, endcap")
    eff_idip: tuple[float, float] = Field((0.975, 0.965), description="barrel, endcap")
    eff_trigger: tuple[float, float, float] = Field(
        (0.935, 0.895, 0.86), description="plateau: |eta|<0.9, 0.9-1.2 (overlap), >1.2"
    )
    trigger_threshold: float = Field(24.0, description="turn-on midpoint in reco pT, GeV")
    trigger_width: float = Field(0.8, gt=0, description="turn-on width (erf sigma), GeV")
    trigger_charge_asym: float = Field(0.004, description="endcap plateau shift q * sign(eta)")
    eff_iso: tuple[float, float] = Field((0.95, 0.98), description="at pT = 26 and 56 GeV")
    # recoil
    recoil_response: float = Field(0.9, gt=0, le=1.2)
    recoil_sigma0: float = Field(5.0, ge=0, description="GeV, per transverse component")
    recoil_sigma_slope: float = Field(0.05, ge=0, description="added sigma per GeV of pT^W")
    # selection
    pt_min: float = 26.0
    pt_max: float = 56.0
    eta_max: float = 2.4
    mt_min: float = 40.0

    def calib_width_scale(self, eta: np.ndarray) -> np.ndarray:
        """Factor 1 at eta = 0 rising linearly to ``calib_endcap_factor`` at |eta| = 2.4."""
        return 1.0 + (self.calib_endcap_factor - 1.0) * np.minimum(np.abs(eta) / 2.4, 1.0)


def eta_bin_centers() -> np.ndarray:
    """Centres of the 48 reco eta bins, shape (48,)."""
    return 0.5 * (ETA_EDGES[1:] + ETA_EDGES[:-1])


def resolution_terms(eta: np.ndarray, det: DetectorModel) -> tuple[np.ndarray, ...]:
    """Nominal (a, b, c) of (sigma_k/k)^2 = a + b u + c u^2 (u = pT/40 GeV) at ``eta``."""
    x = np.clip((np.abs(eta) - 0.9) / 1.5, 0.0, 1.0)
    r = det.res_barrel + (det.res_endcap - det.res_barrel) * x * x
    r2 = r * r
    return det.res_ms_fraction * r2, np.zeros_like(r2), (1.0 - det.res_ms_fraction) * r2


def relative_resolution(
    eta: np.ndarray,
    pt_true: np.ndarray,
    det: DetectorModel,
    delta: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """sigma_k/k, shape (n,). ``delta``: additive shifts of (a, b, c), in units of the nominal
    (sigma_k/k)^2 at 40 GeV and this eta, for resolution variations."""
    a, b, c = resolution_terms(eta, det)
    u = pt_true / PT_REF
    if delta is not None:
        r2 = a + c
        a, b, c = a + delta[0] * r2, b + delta[1] * r2, c + delta[2] * r2
    return np.sqrt(np.maximum(a + u * (b + u * c), 0.0))


def calibrate(
    k: np.ndarray, charge: np.ndarray, A: float = 0.0, e: float = 0.0, M: float = 0.0
) -> np.ndarray:
    """Apply delta k / k = A + q M / k - e k to unsigned curvatures k (GeV^-1): returns
    k (1 + A) + q M - e k^2. A dimensionless, e in GeV, M in GeV^-1."""
    return k * (1.0 + A) + charge * M - e * k * k


def efficiency_steps(
    eta: np.ndarray, pt: np.ndarray, charge: np.ndarray, det: DetectorModel
) -> dict[str, np.ndarray]:
    """Efficiency of each step (tracking, idip, trigger, iso) at reco (eta, pT, q); (n,) each."""
    ae = np.abs(eta)
    endcap = ae > 1.2
    overlap = (ae > 0.9) & ~endcap
    trk = np.where(endcap, det.eff_tracking[1], det.eff_tracking[0])
    # identification: dips at the wheel gaps (|eta| ~ 0.25) and in the barrel-endcap overlap
    idip = np.where(endcap, det.eff_idip[1], det.eff_idip[0])
    idip = idip - 0.02 * np.exp(-0.5 * ((ae - 0.25) / 0.03) ** 2) - 0.01 * overlap
    b, o, e = det.eff_trigger
    plateau = np.where(endcap, e, np.where(overlap, o, b)) - 0.05 * (ae > 2.1)
    plateau = plateau + det.trigger_charge_asym * charge * np.sign(eta) * endcap
    trig, iso = _pt_factors(pt, det)
    return {"tracking": trk, "idip": idip, "trigger": plateau * trig, "iso": iso}


def _pt_factors(pt: np.ndarray, det: DetectorModel) -> tuple[np.ndarray, np.ndarray]:
    """Trigger turn-on (erf, 0..1) and isolation efficiency as functions of reco pT."""
    z = (pt - det.trigger_threshold) / (np.sqrt(2.0) * det.trigger_width)
    t = np.clip((pt - 26.0) / 30.0, 0.0, 1.0)
    # erf(z) rounds to exactly 1 above z = 6: evaluate it only below (same numbers, faster)
    trig = np.ones_like(z)
    low = np.flatnonzero(z < 6.0)
    trig[low] = 0.5 * (1.0 + erf(z[low]))
    return trig, det.eff_iso[0] + (det.eff_iso[1] - det.eff_iso[0]) * t


def efficiency_eta_factor(eta: np.ndarray, charge: np.ndarray, det: DetectorModel) -> np.ndarray:
    """The pT-independent part of the efficiency (tracking x idip x trigger plateau), (n,);
    eps = efficiency_eta_factor * efficiency_pt_factor."""
    s = efficiency_steps(eta, np.full(np.shape(eta), 1e3), charge, det)
    return s["tracking"] * s["idip"] * s["trigger"]


def efficiency_pt_factor(pt: np.ndarray, det: DetectorModel) -> np.ndarray:
    """The pT-dependent part of the efficiency (trigger turn-on x isolation), (n,)."""
    trig, iso = _pt_factors(pt, det)
    return trig * iso


def efficiency(
    eta: np.ndarray, pt: np.ndarray, charge: np.ndarray, det: DetectorModel
) -> np.ndarray:
    """Nominal muon efficiency: the product of :func:`efficiency_steps`, shape (n,)."""
    return efficiency_eta_factor(eta, charge, det) * efficiency_pt_factor(pt, det)


def transverse_mass(pt: np.ndarray, phi: np.ndarray, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """mT (GeV) of the muon (pt, phi) with MET = -(muon + recoil (ux, uy)); shape (n,)."""
    u_par = ux * np.cos(phi) + uy * np.sin(phi)
    return transverse_mass_par(pt, u_par, ux * ux + uy * uy)


def transverse_mass_par(pt: np.ndarray, u_par: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """mT (GeV) from the muon pT, the recoil's projection on the muon direction u_par and its
    squared magnitude u2: with MET = -(muon + u), mT^2 = 2 pT (|MET| + pT + u_par)."""
    met = np.sqrt(np.maximum(pt * (pt + 2.0 * u_par) + u2, 0.0))
    return np.sqrt(np.maximum(2.0 * pt * (met + pt + u_par), 0.0))


def eta_bin(eta: np.ndarray) -> np.ndarray:
    """Reco eta bin 0..47 of each muon, -1 outside |eta| < 2.4; shape (n,) int64."""
    i = np.floor((np.asarray(eta) + 2.4) * (N_ETA_RECO / 4.8)).astype(np.int64)
    return np.where((i >= 0) & (i < N_ETA_RECO), i, -1)


def pt_bin(pt: np.ndarray) -> np.ndarray:
    """Reco pT bin 0..29 of each muon, -1 outside [26, 56) GeV; shape (n,) int64."""
    i = np.floor((np.asarray(pt) - PT_EDGES_RECO[0]) * (N_PT_RECO / 30.0)).astype(np.int64)
    return np.where((i >= 0) & (i < N_PT_RECO), i, -1)


def reco_bin(charge: np.ndarray, eta: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Flat (charge, eta, pt) reco index of each muon, -1 outside the eta/pT acceptance."""
    ieta, ipt = eta_bin(eta), pt_bin(pt)
    iq = (np.asarray(charge) > 0).astype(np.int64)
    return np.where((ieta >= 0) & (ipt >= 0), (iq * N_ETA_RECO + ieta) * N_PT_RECO + ipt, -1)


@dataclass
class RecoMuons:
    """Detector-level view of a TruthMuons sample, aligned with it event by event (n,).

    ``row`` is the part of the reco index that a momentum change cannot alter,
    (iq * 48 + ieta) * 30, or -1 outside |eta| < 2.4; ``bin`` is the flat reco index of a
    selected event (mT cut included), -1 otherwise."""

    pt: np.ndarray  #: reco muon pT (GeV), nominal (perfect) calibration
    eta: np.ndarray  #: muon eta (not smeared)
    phi: np.ndarray  #: muon phi (not smeared)
    charge: np.ndarray  #: +-1
    ieta: np.ndarray  #: reco eta bin, -1 outside |eta| < 2.4
    row: np.ndarray  #: (iq * 48 + ieta) * 30, -1 outside |eta| < 2.4
    pt_true: np.ndarray  #: truth (bare) muon pT, GeV
    smear_z: np.ndarray  #: the N(0,1) number of the curvature smearing
    u_par: np.ndarray  #: reco recoil projected on the muon direction (GeV)
    u2: np.ndarray  #: squared reco recoil (GeV^2)
    mt: np.ndarray  #: transverse mass (GeV) with the nominal pT
    eff_eta: np.ndarray  #: pT-independent efficiency factor (see efficiency_eta_factor)
    eff: np.ndarray  #: nominal efficiency at the reco (eta, pT, q)
    bin: np.ndarray  #: flat reco index if selected, else -1

    def __len__(self) -> int:
        return int(self.pt.shape[0])


def reco_pt(
    pt_true: np.ndarray, eta: np.ndarray, smear_z: np.ndarray, det: DetectorModel, **kw
) -> np.ndarray:
    """Reco pT = pT_true / (1 + sigma_k/k z) (GeV); ``kw`` is passed to
    :func:`relative_resolution` (``delta`` for resolution variations)."""
    return pt_true / (1.0 + relative_resolution(eta, pt_true, det, **kw) * smear_z)


def select_and_bin(
    pt: np.ndarray,
    row: np.ndarray,
    u_par: np.ndarray,
    u2: np.ndarray,
    eff_eta: np.ndarray,
    det: DetectorModel,
) -> tuple[np.ndarray, np.ndarray]:
    """Selection and binning at muon pT values ``pt`` (GeV) of events with the given
    :class:`RecoMuons` fields: returns (flat reco bin or -1 if not selected, efficiency),
    both (m,). The eta cut is in ``row`` (-1 outside), the pT and mT cuts are applied here."""
    ipt = np.floor((pt - PT_EDGES_RECO[0]) * (N_PT_RECO / 30.0)).astype(np.int64)
    ok = (row >= 0) & (ipt >= 0) & (ipt < N_PT_RECO)
    # mT^2 > mt_min^2, with mT^2 = 2 pT (|MET| + pT + u_par)
    met = np.sqrt(np.maximum(pt * (pt + 2.0 * u_par) + u2, 0.0))
    ok &= 2.0 * pt * (met + pt + u_par) > det.mt_min * det.mt_min
    if det.pt_min > PT_EDGES_RECO[0] or det.pt_max < PT_EDGES_RECO[-1]:
        ok &= (pt > det.pt_min) & (pt < det.pt_max)
    return np.where(ok, row + ipt, -1), eff_eta * efficiency_pt_factor(pt, det)


def simulate(truth: TruthMuons, det: DetectorModel, rng: np.random.Generator) -> RecoMuons:
    """Run the detector model on a truth sample. Random numbers drawn, in order: the
    curvature smearing z (n,), then the recoil smearing (2, n); the rest is computed in
    cache-sized blocks (no effect on the numbers)."""
    n = len(truth)
    z = rng.standard_normal(n)
    rec = rng.standard_normal((2, n))
    parts = [
        _simulate_block(truth, det, z, rec, slice(lo, min(lo + BLOCK, n)))
        for lo in range(0, max(n, 1), BLOCK)
    ]
    if len(parts) == 1:
        return parts[0]
    return RecoMuons(
        **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(RecoMuons)}
    )


def _simulate_block(
    truth: TruthMuons, det: DetectorModel, z: np.ndarray, rec: np.ndarray, sl: slice
) -> RecoMuons:
    q = np.asarray(truth.charge[sl])
    eta, phi, pt_true = truth.eta[sl], truth.phi[sl], truth.pt[sl]
    bx, by = truth.boson_px[sl], truth.boson_py[sl]
    pt = reco_pt(pt_true, eta, z[sl], det)
    sig = det.recoil_sigma0 + det.recoil_sigma_slope * np.hypot(bx, by)
    ux = -det.recoil_response * bx + sig * rec[0, sl]
    uy = -det.recoil_response * by + sig * rec[1, sl]
    u_par = ux * np.cos(phi) + uy * np.sin(phi)
    u2 = ux * ux + uy * uy
    ieta = np.where(np.abs(eta) < det.eta_max, eta_bin(eta), -1)
    row = np.where(ieta >= 0, ((q > 0) * N_ETA_RECO + ieta) * N_PT_RECO, -1)
    eff_eta = efficiency_eta_factor(eta, q, det)
    b, eff = select_and_bin(pt, row, u_par, u2, eff_eta, det)
    return RecoMuons(
        pt=pt,
        eta=eta,
        phi=phi,
        charge=q,
        ieta=ieta,
        row=row,
        pt_true=pt_true,
        smear_z=z[sl],
        u_par=u_par,
        u2=u2,
        mt=transverse_mass_par(pt, u_par, u2),
        eff_eta=eff_eta,
        eff=eff,
        bin=b,
    )
