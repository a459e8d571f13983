"""Reco-level templates of the pseudo-analysis: nominal yields, sumw2, the signal's response
tensor and mass templates, and the event-level systematic variations as sparse log-ratios.

Work is split in two steps so that it can run chunk by chunk:

* :func:`fill` histograms one chunk (a :class:`WEvents` signal chunk or any
  :class:`TruthMuons` sample, after :func:`detector.simulate`) into additive
  :class:`Histograms` (per unit luminosity, pb);
* :func:`finalize` turns the sum over chunks into :class:`Templates` (events, for a
  luminosity in pb^-1), with variations logk = ln(varied / nominal).

Variations (:func:`variation_specs`):

``muonCalibration`` (314, CMS's count): for each of the 48 reco eta bins ``calib_A_etaEE``,
``calib_e_etaEE``, ``calib_M_etaEE`` (J/psi statistical, scaled by 2.1: 144),
``calib_Zclosure_etaEE`` (A-like, 48); ``calib_ZclosureLEP`` (one global A-like shift);
``calib_resol_{a,b,c}_etaEE-FF`` (the three resolution terms per pair of eta bins: 72);
``calib_pixel_etaEE`` (M-like, 48) and ``calib_pixel_global`` (M-like, all bins): 49.
Each moves the reco pT of the events in its eta region (by curvature, or by re-smearing
with the event's own random number) and re-bins them: only those events are touched. By
default the momentum shifts are applied 10x (curvature) or 2x (resolution) amplified and the
log-ratio divided back, and only the up shift is processed (logk_down = -logk_up): both
rest on the log-linearity the fit's interpolation assumes, and cut the MC noise of bin
migrations and the cost (:class:`VariationSpec`).
``theory_ew`` (signal only): ``ew_fsr_rate``, ``ew_fsr_hardness``, ``ew_virtual`` (event
weights of :mod:`.signal`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ...theory.generator import N_GEN, N_HEL
from .detector import (
    BLOCK,
    N_ETA_RECO,
    N_RECO,
    RECO_SHAPE,
    DetectorModel,
    RecoMuons,
    calibrate,
    eta_bin_centers,
    reco_pt,
    select_and_bin,
)
from .signal import EW_NAMES, SignalConfig, WEvents
from .truth import TruthMuons

CALIB_GROUP = "muonCalibration"
EW_GROUP = "theory_ew"
#: varied / nominal is floored here before the log (a bin emptied by a variation)
RATIO_FLOOR = 1e-3
#: events whose nominal reco pT is within this fraction outside [pt_min, pt_max] can migrate
#: into the selection under a momentum variation (curvature shifts are checked against it)
MIGRATION_MARGIN = 0.03
#: bincount length with an overflow slot: bin -1 (not selected) maps to N_RECO via % _NB
_NB = N_RECO + 1


@dataclass(frozen=True)
class Variation:
    """One nuisance's effect on a template, ready for the archive writer: ``bins`` (k,)
    int64 flat (charge, eta, pt) indices (C order of (2, 48, 30)), ``logk_up`` /
    ``logk_down`` (k,) = ln(varied / nominal) for the +1 / -1 sigma variation, on the bins
    where the nominal is > 0 and the variation changes the yield."""

    name: str
    group: str
    bins: np.ndarray
    logk_up: np.ndarray
    logk_down: np.ndarray


@dataclass(frozen=True)
class VariationSpec:
    """An event-level variation. ``kind``:

    * ``"calib"``: ``up``/``down`` = (A, e, M) applied to the reco curvature of the events
      whose reco eta bin is in [eta_lo, eta_hi);
    * ``"resolution"``: ``up``/``down`` = shifts of the (a, b, c) resolution terms (units of
      the nominal (sigma_k/k)^2 at 40 GeV), re-smearing with the event's random number;
    * ``"weight"``: ``index`` into the signal's :data:`EW_NAMES` weights (signal only).

    ``amplify`` K: the events are shifted by K times ``up``/``down`` and the log-ratio is
    divided by K (log-linear in the parameter, as the fit's interpolation assumes). Tiny
    momentum shifts move few events across bin edges, so with a finite sample the re-binned
    template is noisy; a K-fold shift divides that noise by about sqrt(K) while staying deep
    in the linear regime (K sigma_A ~ 1e-3 << the 1/40 relative bin width).
    ``symmetric``: only the up shift is processed and logk_down = -logk_up (the same
    log-linear assumption; halves the cost)."""

    name: str
    group: str
    kind: Literal["calib", "resolution", "weight"]
    eta_lo: int = 0
    eta_hi: int = N_ETA_RECO
    up: tuple[float, float, float] = (0.0, 0.0, 0.0)
    down: tuple[float, float, float] = (0.0, 0.0, 0.0)
    index: int = -1
    amplify: float = 1.0
    symmetric: bool = False


def variation_specs(
    det: DetectorModel,
    signal: bool = False,
    amplify_calib: float = 10.0,
    amplify_resolution: float = 2.0,
    symmetric: bool = True,
) -> list[VariationSpec]:
    """The muon-calibration family (314 specs, widths from ``det``) and, if ``signal``, the
    three EW weight variations; in a fixed order (the order of ``Histograms.delta``).
    ``amplify_*``, ``symmetric``: :class:`VariationSpec` options of the momentum specs."""
    specs: list[VariationSpec] = []
    width = det.calib_width_scale(eta_bin_centers())
    jpsi = det.calib_jpsi_scale
    jpsi_sigmas = (("A", det.calib_A_sigma), ("e", det.calib_e_sigma), ("M", det.calib_M_sigma))
    for i in range(N_ETA_RECO):
        for par, sig in jpsi_sigmas:
            specs.append(_calib(f"calib_{par}_eta{i:02d}", i, par, jpsi * float(width[i]) * sig))
    for i in range(N_ETA_RECO):
        sig = float(width[i]) * det.zclosure_sigma
        specs.append(_calib(f"calib_Zclosure_eta{i:02d}", i, "A", sig))
    specs.append(_calib("calib_ZclosureLEP", None, "A", det.zclosure_lep_sigma))
    r = det.resol_rel_sigma
    a, c = det.res_ms_fraction, 1.0 - det.res_ms_fraction  # shares of (sigma_k/k)^2 at 40 GeV
    for i in range(0, N_ETA_RECO, 2):
        for term, d in (("a", (r * a, 0, 0)), ("b", (0, r, 0)), ("c", (0, 0, r * c))):
            specs.append(
                VariationSpec(
                    f"calib_resol_{term}_eta{i:02d}-{i + 1:02d}",
                    CALIB_GROUP,
                    "resolution",
                    i,
                    i + 2,
                    tuple(float(x) for x in d),
                    tuple(-float(x) for x in d),
                    amplify=amplify_resolution,
                )
            )
    for i in range(N_ETA_RECO):
        specs.append(_calib(f"calib_pixel_eta{i:02d}", i, "M", float(width[i]) * det.pixel_sigma))
    specs.append(_calib("calib_pixel_global", None, "M", det.pixel_sigma))
    specs = [
        replace(s, amplify=amplify_calib if s.kind == "calib" else s.amplify, symmetric=symmetric)
        for s in specs
    ]
    if signal:
        specs += [VariationSpec(n, EW_GROUP, "weight", index=j) for j, n in enumerate(EW_NAMES)]
    return specs


def _calib(name: str, ieta: int | None, par: str, sigma: float) -> VariationSpec:
    v = [0.0, 0.0, 0.0]
    v["AeM".index(par)] = sigma
    lo, hi = (0, N_ETA_RECO) if ieta is None else (ieta, ieta + 1)
    return VariationSpec(name, CALIB_GROUP, "calib", lo, hi, tuple(v), tuple(-x for x in v))


@dataclass
class Histograms:
    """Additive sums over events of one or more chunks (per unit luminosity, pb).

    ``nominal``/``sumw2`` (N_RECO,): sum of w eps and (w eps)^2 over selected events;
    ``delta`` (n_spec, 2, N_RECO): varied - nominal for the up and down variation of each
    spec; signal only: ``mass`` (3, N_RECO) nominal at (mW - shift, mW, mW + shift) and
    ``response`` (3, N_RECO, N_GEN) (see :func:`fill`). ``n_events``: events processed,
    ``n_selected``: events selected, ``sumw``: sum of generated weights (pb)."""

    nominal: np.ndarray
    sumw2: np.ndarray
    delta: np.ndarray
    mass: np.ndarray | None = None
    response: np.ndarray | None = None
    n_events: int = 0
    n_selected: int = 0
    sumw: float = 0.0

    def add(self, other: Histograms) -> None:
        """Add ``other`` in place (the same float operations whatever produced the chunks)."""
        self.nominal += other.nominal
        self.sumw2 += other.sumw2
        self.delta += other.delta
        if self.mass is not None:
            self.mass += other.mass
            self.response += other.response
        self.n_events += other.n_events
        self.n_selected += other.n_selected
        self.sumw += other.sumw


@dataclass
class Templates:
    """Final templates of one process for a luminosity ``lumi`` (pb^-1).

    ``nominal``, ``sumw2``: (2, 48, 30) expected events and the sum of squared event weights
    (events^2); ``variations``: sparse log-ratios; signal only: ``mass_templates``
    (3, 2, 48, 30) at ``mass_points`` (GeV) and ``response`` (3, N_RECO, N_GEN): R per unit
    luminosity and unit generator-bin cross section, so that
    lumi * R[p] @ grid.ravel() = mass_templates[p].ravel(). ``acceptance``: selected
    sum(w eps) / generated sum(w)."""

    nominal: np.ndarray
    sumw2: np.ndarray
    variations: list[Variation]
    lumi: float
    n_events: int
    n_selected: int
    sigma_generated: float
    mass_templates: np.ndarray | None = None
    mass_points: tuple[float, float, float] | None = None
    response: np.ndarray | None = None

    @property
    def acceptance(self) -> float:
        return float(self.nominal.sum() / (self.lumi * self.sigma_generated))


def empty_histograms(n_specs: int, signal: bool) -> Histograms:
    """Zero :class:`Histograms` for ``n_specs`` variations (with the signal's extras)."""
    return Histograms(
        nominal=np.zeros(N_RECO),
        sumw2=np.zeros(N_RECO),
        delta=np.zeros((n_specs, 2, N_RECO)),
        mass=np.zeros((3, N_RECO)) if signal else None,
        response=np.zeros((3, N_RECO, N_GEN)) if signal else None,
    )


def fill(
    events: WEvents | TruthMuons,
    reco: RecoMuons,
    det: DetectorModel,
    specs: list[VariationSpec],
) -> Histograms:
    """Histogram one chunk. ``events``: a signal chunk (then ``mass`` and ``response`` are
    filled) or any truth sample; ``reco``: :func:`detector.simulate` of its muons.

    Response: for generator bin g = (cell, i) and mass point p,
    R[p, b, g] += eps * w_mass,p * h_i / N_cell over the cell's events selected in reco bin b
    (h_i the unit helicity weights), which is w_mass,p * eps * w_i / sigma_UL,cell: R
    multiplies the grid entry sigma_UL * A_i, and sum_g R[p, b, g] grid[g] = sum eps w_mass,p w
    exactly (sum_i A_i h_i = 1)."""
    signal = isinstance(events, WEvents)
    truth = events.truth if signal else events
    w = np.asarray(truth.weight, dtype=np.float64)
    h = empty_histograms(len(specs), signal)
    h.n_events, h.sumw = len(truth), float(w.sum())
    sel = np.flatnonzero(reco.bin >= 0)
    b, wn = reco.bin[sel], w[sel] * reco.eff[sel]
    h.n_selected = int(sel.size)
    h.nominal = np.bincount(b, wn, N_RECO)
    h.sumw2 = np.bincount(b, wn * wn, N_RECO)
    if signal:
        for lo in range(0, sel.size, BLOCK):
            _fill_signal(h, events, reco, sel[lo : lo + BLOCK])
        h.mass[1] = h.nominal
    if specs:
        _fill_variations(h, events, reco, w, det, specs)
    return h


def _fill_signal(h: Histograms, events: WEvents, reco: RecoMuons, sel: np.ndarray) -> None:
    """Add the selected signal events ``sel`` to the shifted-mass templates and R."""
    b = reco.bin[sel]
    wn = events.truth.weight[sel] * reco.eff[sel]
    mw = events.mass_weights(sel)
    h.mass[0] += np.bincount(b, wn * mw[0], N_RECO)
    h.mass[2] += np.bincount(b, wn * mw[1], N_RECO)
    unit = events.hel(sel) * (reco.eff[sel] / events.n_cell[sel])  # (9, m)
    if not h.response.flags.c_contiguous:
        raise ValueError("the response accumulator must be C-contiguous")
    idx = ((b * N_GEN + events.cell[sel] * N_HEL)[None, :] + np.arange(N_HEL)[:, None]).ravel()
    for p, f in enumerate((mw[0], None, mw[1])):
        wt = unit if f is None else unit * f
        np.add.at(h.response[p].reshape(-1), idx, wt.ravel())  # in index order: deterministic


def _fill_variations(h, events, reco, w, det, specs) -> None:
    """delta[j] = varied - nominal for each spec, touching only the events it can change."""
    for s in specs:  # the pre-selection below must contain every event that can migrate in
        if s.kind == "calib":
            A, e, M = (abs(x) * s.amplify for x in s.up)
            hi, lo = det.pt_max * (1 + MIGRATION_MARGIN), det.pt_min * (1 - MIGRATION_MARGIN)
            if A + M * hi + e / lo > 0.9 * MIGRATION_MARGIN:
                raise ValueError(f"{s.name}: momentum shift too large for MIGRATION_MARGIN")
    lo_pt, hi_pt = det.pt_min * (1 - MIGRATION_MARGIN), det.pt_max * (1 + MIGRATION_MARGIN)
    pre = (reco.row >= 0) & (reco.pt > lo_pt) & (reco.pt < hi_pt)  # no mT pre-cut: with a
    # small MET, mT moves much more than pT
    idx = np.flatnonzero(pre)
    idx = idx[np.argsort(reco.ieta[idx], kind="stable")]  # contiguous per eta bin
    bounds = np.searchsorted(reco.ieta[idx], np.arange(N_ETA_RECO + 1))
    ev = {
        "k": 1.0 / reco.pt[idx],
        "q": reco.charge[idx].astype(np.float64),
        "eta": reco.eta[idx],
        "row": reco.row[idx],
        "u_par": reco.u_par[idx],
        "u2": reco.u2[idx],
        "eff_eta": reco.eff_eta[idx],
        "pt_true": reco.pt_true[idx],
        "z": reco.smear_z[idx],
        "w": w[idx],
        "bin": reco.bin[idx],
        "wn": w[idx] * reco.eff[idx],
    }
    # every spec is evaluated eta bin by eta bin: small, cache-resident slices
    slices = [slice(bounds[i], bounds[i + 1]) for i in range(N_ETA_RECO)]
    nominal = [np.bincount(ev["bin"][sl] % _NB, ev["wn"][sl], _NB)[:N_RECO] for sl in slices]
    weight_specs = [(j, s) for j, s in enumerate(specs) if s.kind == "weight"]
    if weight_specs and isinstance(events, WEvents):
        for sl in slices:
            ew = events.ew_weights(idx[sl])
            b, wn = ev["bin"][sl] % _NB, ev["wn"][sl]
            for j, s in weight_specs:
                for k in range(2):
                    h.delta[j, k] += np.bincount(b, wn * (ew[s.index, k] - 1.0), _NB)[:N_RECO]
    for j, s in enumerate(specs):
        if s.kind == "weight":
            continue
        for k, par in enumerate((s.up,) if s.symmetric else (s.up, s.down)):
            par = tuple(x * s.amplify for x in par)
            for i in range(s.eta_lo, s.eta_hi):
                sl = slices[i]
                if s.kind == "calib":
                    pt = 1.0 / calibrate(ev["k"][sl], ev["q"][sl], *par)
                else:
                    pt = reco_pt(ev["pt_true"][sl], ev["eta"][sl], ev["z"][sl], det, delta=par)
                b, eff = select_and_bin(
                    pt, ev["row"][sl], ev["u_par"][sl], ev["u2"][sl], ev["eff_eta"][sl], det
                )
                varied = np.bincount(b % _NB, ev["w"][sl] * eff, _NB)[:N_RECO]
                h.delta[j, k] += varied - nominal[i]


def finalize(
    h: Histograms,
    specs: list[VariationSpec],
    lumi: float,
    signal_config: SignalConfig | None = None,
) -> Templates:
    """Templates for luminosity ``lumi`` (pb^-1) from summed histograms. A variation keeps
    the bins where the nominal is > 0 and its up or down delta is non-zero; logk =
    log1p(delta / nominal), with varied / nominal floored at :data:`RATIO_FLOOR`."""
    variations = []
    nom = h.nominal
    for j, s in enumerate(specs):
        d = h.delta[j]
        mask = (nom > 0) & ((d[0] != 0) | (d[1] != 0))
        if not mask.any():
            continue
        bins = np.flatnonzero(mask)
        ratio = d[:, bins] / nom[bins]
        logk = np.log1p(np.maximum(ratio, RATIO_FLOOR - 1.0)) / s.amplify
        if s.symmetric:
            logk[1] = -logk[0]
        variations.append(Variation(s.name, s.group, bins, logk[0], logk[1]))
    out = Templates(
        nominal=lumi * h.nominal.reshape(RECO_SHAPE),
        sumw2=lumi * lumi * h.sumw2.reshape(RECO_SHAPE),
        variations=variations,
        lumi=float(lumi),
        n_events=h.n_events,
        n_selected=h.n_selected,
        sigma_generated=h.sumw,
    )
    if h.mass is not None:
        cfg = signal_config or SignalConfig()
        out.mass_templates = lumi * h.mass.reshape((3, *RECO_SHAPE))
        out.mass_points = (cfg.mw - cfg.mass_shift, cfg.mw, cfg.mw + cfg.mass_shift)
        out.response = h.response
    return out
