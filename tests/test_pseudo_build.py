"""The pseudo-analysis end to end: a small build, what it holds, and its physics checked
against an independent leading-order calculation written out here (parton's PDFs, analytic
decay), not against the package's own theory code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from wmass_archive.archive import open_archive, validate_archive
from wmass_archive.producers.pseudo.build import build_pseudo_analysis, mass_interpolated
from wmass_archive.producers.pseudo.config import TEST_CONFIG, PseudoAnalysisConfig
from wmass_archive.producers.pseudo.signal import generate_w_events
from wmass_archive.theory.compute import cell_densities
from wmass_archive.theory.generator import GRID_SHAPE, CellDensities
from wmass_archive.theory.lhapdf import load_pdf_set
from wmass_archive.theory.params import parameters_from_notes, parameters_of

PDFSETS = Path(__file__).resolve().parents[1].parent / "shared" / "pdfsets"
pytestmark = pytest.mark.skipif(not PDFSETS.is_dir(), reason="../shared/pdfsets not found")
SQRT_S, MW = 13000.0, 80.360


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("pseudo") / "small.h5"
    cfg = PseudoAnalysisConfig(**TEST_CONFIG)
    rep = build_pseudo_analysis(path, cfg, paths=[str(PDFSETS)], progress=False)
    return path, rep, cfg


def test_small_build_is_valid_and_cms_sized(small):
    path, rep, _ = small
    assert validate_archive(path).n_datasets > 20  # raises on any problem
    assert rep.n_bins == 2880 and rep.n_nuisances >= 3000
    a = open_archive(path)
    m = a.metadata
    assert m.synthetic and "SYNTHETIC" in m.title
    groups = {g.name for g in m.groups}
    for g in (
        "muonCalibration",
        "muon_eff_stat",
        "muon_eff_syst",
        "angularCoeffs",
        "pTModeling",
        "theory_ew",
        "luminosity",
        "Fake",
        "CMS_background",
    ):
        assert g in groups
    assert [s.name for s in m.theory.pdf_sets] == ["CT10nlo", "NNPDF23", "NNPDF31"]
    poi = m.pois[0]
    assert poi.kind == "mass" and poi.mass_points == [-1.0, 0.0, 1.0]
    assert poi.blinding_offset != 0.0
    assert f"true mW = {rep.true_mw_mev:.3f} MeV" in m.provenance.notes
    # CMS-like background fractions after the selection
    f = rep.background_fractions
    assert 0.02 < f["Zmumu"] < 0.06 and 0.005 < f["Wtaunu"] < 0.04
    assert 0.005 < f["Nonprompt"] < 0.05 and sum(f.values()) < 0.15


def test_the_theory_parameters_are_recorded(small):
    """Format 1.3: the parameters the grids were computed with, as a typed field (the
    configuration in the provenance notes is kept for readers of older archives)."""
    path, _, cfg = small
    with open_archive(path) as a:
        assert a.format_version == "1.3.0"
        record = a.metadata.theory.parameters
        assert record.model.startswith("wmass_archive.theory ")
        assert parameters_of(a.metadata.theory) == cfg.theory
        assert parameters_from_notes(a.metadata.provenance.notes) == cfg.theory


def test_folding_the_nominal_grid_reproduces_the_signal(small):
    a = open_archive(small[0])
    r = a.response("Wmunu", "mu")
    nu = a.metadata.luminosity.value * r[1] @ a.theory_nominal()
    np.testing.assert_allclose(nu, a.nominal("Wmunu", "mu"), rtol=1e-9, atol=1e-9)


def test_plus_100_mev_moves_the_jacobian_peak_up(small):
    a = open_archive(small[0])
    r = a.response("Wmunu", "mu")
    nu = np.einsum("pbg,g->pb", r, a.theory_nominal()).reshape(3, 2, 48, 30).sum(axis=(1, 2))
    pt = np.linspace(26.5, 55.5, 30)
    # shift that maps the nominal spectrum onto the varied one, to first order
    d = nu[2] - nu[1]
    slope = np.gradient(nu[1], pt)
    sel = (pt > 30) & (pt < 44)  # around the peak, where the spectrum is steep
    shift = -np.sum(d[sel] * slope[sel]) / np.sum(slope[sel] ** 2)
    assert 0.030 < shift < 0.070  # GeV: ~half of the 100 MeV mass shift


def test_mass_interpolation_hits_the_stored_points():
    nu = np.array([[1.0, 2.0], [1.1, 2.0], [1.3, 1.9]])
    np.testing.assert_allclose(mass_interpolated(nu, 1.0), nu[2])
    np.testing.assert_allclose(mass_interpolated(nu, -1.0), nu[0])
    np.testing.assert_allclose(mass_interpolated(nu, 0.0), nu[1])


# 20 s (the build once more); in the fast set, bit-identical event processing:
# tests/test_pseudo_processing.py::test_bit_identical_with_a_process_pool, and bit-identical
# archive writes: tests/test_determinism.py::test_writer_output_is_byte_identical
@pytest.mark.slow
def test_rebuild_gives_identical_datasets(small, tmp_path):
    path, _, cfg = small
    again = tmp_path / "again.h5"
    build_pseudo_analysis(again, cfg, paths=[str(PDFSETS)], progress=False)
    d1, d2 = open_archive(path).metadata.datasets, open_archive(again).metadata.datasets
    assert {k: v.sha256 for k, v in d1.items()} == {k: v.sha256 for k, v in d2.items()}


# ------------------------------------------------------------ independent LO calculation
CKM = {(2, 1): 0.97435, (2, 3): 0.22500, (4, 1): 0.22486, (4, 3): 0.97349}


def _lo_luminosities(pdf, y: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For W+ and W- at rapidities y: (q(x1) qbar(x2), qbar(x1) q(x2)) summed with |V|^2,
    i.e. the quark from beam 1 (moving along +z) or from beam 2."""
    x1, x2 = MW / SQRT_S * np.exp(y), MW / SQRT_S * np.exp(-y)

    def f(pid, x):
        return np.asarray(pdf.xfxQ(pid, x, MW, grid=False), dtype=float) / x

    out = {}
    for charge in (1, -1):
        fwd = np.zeros_like(y)
        bwd = np.zeros_like(y)
        for (u, d), v in CKM.items():
            q, qb = (u, -d) if charge > 0 else (d, -u)
            fwd += v**2 * f(q, x1) * f(qb, x2)
            bwd += v**2 * f(qb, x1) * f(q, x2)
        out[charge] = (fwd, bwd)
    return out


def _lo_eta_distribution(pdf, eta_edges: np.ndarray, charge: int) -> np.ndarray:
    """d sigma in eta bins (arbitrary common normalisation) at pT^W = 0: the charged lepton
    goes as (1 + c)^2 (W-) or (1 - c)^2 (W+) in the angle c to the quark direction."""
    y = np.linspace(-5.0, 5.0, 4001)
    fwd, bwd = _lo_luminosities(pdf, y)[charge]

    def cdf(c):  # CDF in c = cos(angle to +z) of 3/8 (1 + s c)^2 (quark along +z)
        s = -1.0 if charge > 0 else 1.0
        return (1 + s * c) ** 3 / 8 if s > 0 else 1 - (1 - c) ** 3 / 8

    def cdf_rev(c):  # quark along -z: the mirror image
        return 1.0 - cdf(-c)

    out = np.empty(eta_edges.size - 1)
    for i, (lo, hi) in enumerate(zip(eta_edges[:-1], eta_edges[1:], strict=True)):
        c_lo, c_hi = np.tanh(lo - y), np.tanh(hi - y)
        p = fwd * (cdf(c_hi) - cdf(c_lo)) + bwd * (cdf_rev(c_hi) - cdf_rev(c_lo))
        out[i] = np.trapezoid(p, y)
    return out


def _at_rest(d: CellDensities) -> CellDensities:
    """The same W rapidity spectra with every W at pT^W ~ 0 and only the A4 term, as LO."""
    grid = np.zeros(GRID_SHAPE)
    ul = d.grid[..., 0].sum(axis=2)
    grid[:, :, 0, 0] = ul
    a4 = d.grid[:, :, 0, 5] / d.grid[:, :, 0, 0]
    grid[:, :, 0, 5] = ul * a4
    dpt = np.zeros_like(d.dsigma_dpt)
    dpt[:, :, :2] = 1.0  # pT in [0, 0.1] GeV
    return CellDensities(grid, d.abs_y, d.dsigma_dy, d.pt, dpt)


# 11 s (3 million events); in the fast set, the generator's W+/W- ratio against the same LO
# calculation: test_w_plus_over_w_minus_agrees_with_independent_lo, and the asymmetry of the
# theory grid: tests/test_theory_physics.py::test_charge_asymmetry_rises_with_rapidity
@pytest.mark.slow
def test_charge_asymmetry_vs_eta_agrees_with_independent_lo():
    parton = pytest.importorskip("parton")
    pdf = parton.mkPDF("CT10nlo", 0, pdfdir=str(PDFSETS))
    member = load_pdf_set("CT10nlo", paths=[str(PDFSETS)]).member(0)
    dens = _at_rest(cell_densities(member))
    ev = generate_w_events(dens, 3_000_000, np.random.default_rng(7))
    t = ev.truth
    edges = np.linspace(-2.4, 2.4, 13)
    h, v = {}, {}
    for q in (1, -1):
        sel = t.charge == q
        h[q] = np.histogram(t.eta[sel], edges, weights=t.weight[sel])[0]
        v[q] = np.histogram(t.eta[sel], edges, weights=t.weight[sel] ** 2)[0]
    asym = (h[1] - h[-1]) / (h[1] + h[-1])
    err = 2 * np.sqrt(h[-1] ** 2 * v[1] + h[1] ** 2 * v[-1]) / (h[1] + h[-1]) ** 2
    lo = {q: _lo_eta_distribution(pdf, edges, q) for q in (1, -1)}
    asym_lo = (lo[1] - lo[-1]) / (lo[1] + lo[-1])
    pulls = (asym - asym_lo) / err
    assert np.all(np.abs(pulls) < 4), (asym, asym_lo, pulls)
    assert np.sum(pulls**2) / pulls.size < 2.5
    # asymmetry rises towards large |eta| (valence u/d), symmetric in eta
    assert asym_lo[0] > asym_lo[5] and asym_lo[-1] > asym_lo[6]


def test_w_plus_over_w_minus_agrees_with_independent_lo():
    parton = pytest.importorskip("parton")
    pdf = parton.mkPDF("CT10nlo", 0, pdfdir=str(PDFSETS))
    member = load_pdf_set("CT10nlo", paths=[str(PDFSETS)]).member(0)
    dens = cell_densities(member)
    ev = generate_w_events(dens, 500_000, np.random.default_rng(3))
    w = ev.truth.weight
    ratio_mc = w[ev.truth.charge > 0].sum() / w[ev.truth.charge < 0].sum()
    y = np.linspace(-5.0, 5.0, 8001)
    lum = _lo_luminosities(pdf, y)
    tot = {q: np.trapezoid(lum[q][0] + lum[q][1], y) for q in (1, -1)}
    # the pT^W spectrum is charge independent, so the pT < 100 GeV cut cancels in the ratio
    assert math.isclose(ratio_mc, tot[1] / tot[-1], rel_tol=2e-3)
