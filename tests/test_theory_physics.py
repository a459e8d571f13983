"""The W theory grid's physics: cross sections against an independent LO integration with the
``parton`` package, the pT^W model against a Monte Carlo, A_i signs and sizes, the charge
asymmetry, the in-cell densities, PDF-set grids and their replica eigenvectors."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

from wmass_archive.archive import ArchiveWriter, Axis, Citation, Provenance, open_archive
from wmass_archive.archive.validate import validate_archive
from wmass_archive.theory import (
    ABS_Y_EDGES,
    GRID_SHAPE,
    PT_EDGES,
    TheoryParameters,
    add_variations_to_writer,
    cell_densities,
    compute_set_values,
    generator_axes,
    grid_values,
    load_member,
    pt_cell_integrals,
    pt_model,
    theory_variations,
    total_cross_sections,
)
from wmass_archive.theory.ptspectrum import sudakov_cumulative

PDFSETS = Path(
    os.environ.get("WMASS_PDFSETS", Path(__file__).resolve().parents[2] / "shared" / "pdfsets")
)
pytestmark = pytest.mark.skipif(not PDFSETS.is_dir(), reason="shared PDF sets not available")
P = TheoryParameters()
UL, A0, A1, A2, A3, A4 = 0, 1, 2, 3, 4, 5


@pytest.fixture(scope="module")
def ct10():
    return load_member("CT10nlo", 0, PDFSETS)


@pytest.fixture(scope="module")
def grid(ct10):
    return grid_values(ct10, P)


def coeffs(g):
    return g[..., 1:] / g[..., :1]


# ----------------------------------------------------------------------------------------------
# an independent LO calculation (parton's PDFs, scipy quadrature, written out here)
# ----------------------------------------------------------------------------------------------

GEV2PB = 0.3893793721e9


def independent_dsigma_dy(pdf, y: float) -> np.ndarray:
    """d sigma/dy x BR x K in pb at rapidity y for (W-, W+), from the textbook formula."""
    rt = P.mw_gev / P.sqrt_s_gev
    x1, x2 = rt * math.exp(y), rt * math.exp(-y)
    q = P.mw_gev

    xs = np.array([x1, x2])
    cache = {}

    def f(pid, x):  # x f(x); parton wants arrays of more than one point
        if pid not in cache:
            cache[pid] = np.asarray(pdf.xfxQ(pid, xs, q, grid=False), dtype=float)
        return cache[pid][0 if x == x1 else 1]

    ckm = {
        (2, 1): P.v_ud,
        (2, 3): P.v_us,
        (2, 5): P.v_ub,
        (4, 1): P.v_cd,
        (4, 3): P.v_cs,
        (4, 5): P.v_cb,
    }
    wp = sum(v**2 * (f(u, x1) * f(-d, x2) + f(-d, x1) * f(u, x2)) for (u, d), v in ckm.items())
    wm = sum(v**2 * (f(d, x1) * f(-u, x2) + f(-u, x1) * f(d, x2)) for (u, d), v in ckm.items())
    norm = P.k_factor * P.br_w_munu * math.pi * math.sqrt(2) * P.gf_gev2 / 3 * GEV2PB
    return norm * np.array([wm, wp])


@pytest.fixture(scope="module")
def parton_ct10():
    parton = pytest.importorskip("parton")
    return parton.mkPDF("CT10nlo", 0, pdfdir=str(PDFSETS))


def test_rapidity_cells_agree_with_independent_lo_integration(grid, parton_ct10):
    frac = pt_cell_integrals(P)[..., 0].sum(axis=1)  # pT < 100 GeV fraction per |y| bin
    ours = grid[..., UL].sum(axis=2) / frac  # (2, N_Y): sigma in each |y| cell, all pT
    for i in range(len(ABS_Y_EDGES) - 1):
        ref, _ = integrate.quad_vec(
            lambda y: 2.0 * independent_dsigma_dy(parton_ct10, y),  # |y|: both signs
            ABS_Y_EDGES[i],
            ABS_Y_EDGES[i + 1],
            epsrel=1e-7,
        )
        np.testing.assert_allclose(ours[:, i], ref, rtol=1e-3)


def test_totals_ratio_and_normalisation(ct10, grid, parton_ct10):
    tot = total_cross_sections(ct10, P)  # pb, all phase space
    ymax = math.log(P.sqrt_s_gev / P.mw_gev)
    ref, _ = integrate.quad_vec(
        lambda y: 2.0 * independent_dsigma_dy(parton_ct10, y), 0.0, ymax * (1 - 1e-9), epsrel=1e-7
    )
    np.testing.assert_allclose(tot, ref, rtol=1e-3)
    # K = 1.19 brings LO (CT10nlo, mu_F = mW) to the NNLO totals 11.8 nb (W+) and 8.8 nb (W-)
    assert tot[1] == pytest.approx(11800, rel=0.02)
    assert tot[0] == pytest.approx(8800, rel=0.02)
    assert 1.30 < tot[1] / tot[0] < 1.40
    # the grid holds |y| < 5 and pT < 100 GeV: 98-99% of it
    inside = grid[..., UL].sum(axis=(1, 2)) / tot
    assert np.all((inside > 0.975) & (inside < 0.995))


@pytest.mark.parametrize("name", ["NNPDF23_lo_as_0119_qed", "NNPDF31_nnlo_as_0118_mc"])
def test_other_sets_give_sane_totals(name):
    tot = total_cross_sections(load_member(name, 0, PDFSETS), P)
    assert 7000 < tot[0] < 10000 and 9000 < tot[1] < 13000
    assert 1.28 < tot[1] / tot[0] < 1.45


def test_charge_asymmetry_rises_with_rapidity(grid):
    s = grid[..., UL].sum(axis=2)
    asym = (s[1] - s[0]) / (s[1] + s[0])
    assert 0.02 < asym[0] < 0.10  # small at y = 0 (sea-dominated x ~ 0.006)
    assert asym[5] > 0.15 and asym[7] > 0.3
    assert np.all(np.diff(asym) > 0)  # rises with |y| (valence u over d)
    assert np.all(asym > 0)


# ----------------------------------------------------------------------------------------------
# angular coefficients
# ----------------------------------------------------------------------------------------------


def test_a4_sign_and_magnitude(grid):
    a4 = coeffs(grid)[..., A4 - 1]  # (2, N_Y, N_PT)
    # the CS z axis points along the W: mu- follows the quark (A4 > 0), mu+ opposes it
    assert np.all(a4[0] > 0) and np.all(a4[1] < 0)
    assert np.all(np.abs(a4) < 2.0)
    # dilution: ~0 at y = 0, large where the valence quark dominates
    assert np.all(np.abs(a4[:, 0, 0]) < 0.15)
    assert np.all(np.abs(a4[:, -1, 0]) > 1.2)
    assert np.all(np.diff(np.abs(a4[:, :, 0]), axis=1) > 0)
    # reduced at finite pT as M / sqrt(M^2 + pT^2)
    assert np.all(np.diff(np.abs(a4), axis=2) < 0)
    ratio = a4[:, :, -1] / a4[:, :, 0]
    assert np.all((ratio > 0.6) & (ratio < 0.9))


def test_lo_pattern_of_the_other_coefficients(grid):
    a = coeffs(grid)
    np.testing.assert_allclose(a[..., A0 - 1], a[..., A2 - 1])  # Lam-Tung at LO
    a0 = a[..., A0 - 1]
    assert np.all(np.diff(a0, axis=2) > 0) and np.all((a0 > 0) & (a0 < 1))
    assert a0[0, 0, 0] < 0.002 and 0.3 < a0[0, 0, -1] < 0.6
    assert np.all(np.abs(a[..., A1 - 1]) < 0.2) and np.all(np.abs(a[..., A3 - 1]) < 0.15)
    assert np.all(np.sign(a[..., A3 - 1]) == np.sign(a[..., A4 - 1]))
    assert np.all(grid[..., 6:] == 0.0)  # A5..A7


# ----------------------------------------------------------------------------------------------
# the pT^W model
# ----------------------------------------------------------------------------------------------


def test_sudakov_exponent_against_quadrature():
    q = np.array([0.5, 2.0, 5.0, 15.0, 40.0])
    got, _ = sudakov_cumulative(q, P)
    big_q = P.res_scale * P.mw_gev
    cf, ca, nf = 4 / 3, 3.0, 5
    k2 = ca * (67 / 18 - math.pi**2 / 6) - 5 / 9 * nf
    aw = P.alphas_sudakov / math.pi

    def integrand(ell):  # ell = ln(Q^2 / mu^2)
        mu2 = big_q**2 * math.exp(-ell)
        a = aw / (1 + (33 - 2 * nf) / 12 * aw * math.log((mu2 + P.mu0_gev**2) / P.mw_gev**2))
        return a * max(0.0, cf * (1 + k2 * a / 2) * ell - 1.5 * cf)

    for qi, s in zip(q, got, strict=True):
        ell = 2 * math.log(big_q / qi) if qi < big_q else 0.0
        ref, _ = integrate.quad(integrand, 0.0, ell, points=[1.5], limit=200)
        assert s == pytest.approx(ref, rel=1e-4, abs=1e-7)


def test_pt_cell_fractions_match_a_monte_carlo():
    """Draw q from the cumulative exp(-S) (1 - w Qh^2/(q^2+Qh^2)), add a 2-D Gaussian k_T,
    histogram |pT|: the cell probabilities of the model's Rice-kernel smearing agree."""
    rng = np.random.default_rng(5)
    qg = np.linspace(1e-3, 400.0, 200_001)
    s, _ = sudakov_cumulative(qg, P)
    qh2 = P.hard_scale_gev**2
    cdf = np.exp(-s) * (1 - P.hard_fraction * qh2 / (qg**2 + qh2))
    n = 1_000_000
    q = np.interp(rng.uniform(cdf[0], cdf[-1], n), cdf, qg)
    phi = rng.uniform(0, 2 * np.pi, n)
    iy = 3
    sigma = pt_model(P).kt_np[iy]
    px = q * np.cos(phi) + rng.normal(0, sigma, n)
    py = q * np.sin(phi) + rng.normal(0, sigma, n)
    counts, _ = np.histogram(np.hypot(px, py), bins=PT_EDGES)
    mc = counts / n * (cdf[-1] - cdf[0]) + 0.0
    model = pt_cell_integrals(P)[iy, :, 0]
    err = np.sqrt(counts) / n
    assert np.all(np.abs(model - mc) < 5 * err + 2e-4), (model, mc)


def test_pt_spectrum_shape():
    m = pt_model(P)
    pt = np.linspace(0.0, 100.0, 4001)
    for iy in range(len(ABS_Y_EDGES) - 1):
        g = m.density(iy, pt)
        assert np.all(g >= 0)
        norm = np.trapezoid(g, pt)
        mean = np.trapezoid(pt * g, pt) / norm
        peak = pt[np.argmax(g)]
        assert 0.98 < norm < 0.995  # ~1.4% above 100 GeV
        assert 8.0 < mean < 11.0 and 3.5 < peak < 5.0
        assert 1e-3 < g[-1] / g.max() < 1e-2  # a tail to 100 GeV
    # mildly harder at large |y| (k_T width grows with |y|)
    assert m.kt_np[-1] > m.kt_np[0]


def test_parameters_validate():
    with pytest.raises(ValueError, match="Landau"):
        TheoryParameters(alphas_sudakov=0.3, mu0_gev=0.1)
    with pytest.raises(ValueError):
        TheoryParameters(unknown=1.0)
    assert P.replace(k_factor=1.0).k_factor == 1.0


# ----------------------------------------------------------------------------------------------
# in-cell densities for the event simulation
# ----------------------------------------------------------------------------------------------


def test_cell_densities_consistent_with_the_grid(ct10, grid):
    cd = cell_densities(ct10, P)
    np.testing.assert_array_equal(cd.grid, grid)
    np.testing.assert_allclose(cd.coefficients(), coeffs(grid))
    # pT: the linear interpolation of dsigma/dpT integrated over each cell = the UL entry
    for j in range(len(PT_EDGES) - 1):
        sel = (cd.pt >= PT_EDGES[j] - 1e-9) & (cd.pt <= PT_EDGES[j + 1] + 1e-9)
        cell = np.trapezoid(cd.dsigma_dpt[..., sel], cd.pt[sel], axis=-1)
        np.testing.assert_allclose(cell, grid[:, :, j, UL], rtol=2e-3)
    # |y|: the tabulated d sigma/d|y| integrates to the |y| cell cross sections (all pT)
    frac = pt_cell_integrals(P)[..., 0].sum(axis=1)
    per_y = grid[..., UL].sum(axis=2) / frac
    for i in range(len(ABS_Y_EDGES) - 1):
        sel = (cd.abs_y >= ABS_Y_EDGES[i] - 1e-9) & (cd.abs_y <= ABS_Y_EDGES[i + 1] + 1e-9)
        cell = np.trapezoid(cd.dsigma_dy[:, sel], cd.abs_y[sel], axis=-1)
        np.testing.assert_allclose(cell, per_y[:, i], rtol=2e-3)
    assert cd.pt[0] == 0 and cd.pt[-1] == 100 and cd.abs_y[-1] == 5


# ----------------------------------------------------------------------------------------------
# whole sets, the archive's replica eigenvectors, theory variations in an archive
# ----------------------------------------------------------------------------------------------


def test_set_grids_are_fast_and_equal_member_grids(ct10):
    t = time.perf_counter()
    values, info = compute_set_values("NNPDF23_lo_as_0119_qed", P, paths=PDFSETS, progress=False)
    assert time.perf_counter() - t < 10.0  # ~0.5 s on 2 cores
    assert values.shape == (101, *GRID_SHAPE) and info.error_type == "replicas"
    one = grid_values(load_member("NNPDF23_lo_as_0119_qed", 42, PDFSETS), P)
    np.testing.assert_allclose(values[42], one, rtol=1e-12)
    ct, _ = compute_set_values("CT10nlo", P, paths=PDFSETS, members="0-2", progress=False)
    np.testing.assert_allclose(ct[0], grid_values(ct10, P), rtol=1e-12)


def _small_archive_writer(nominal: np.ndarray) -> ArchiveWriter:
    w = ArchiveWriter(
        title="theory grid test",
        synthetic=True,
        citation=Citation(title="t"),
        provenance=Provenance(producer="tests", producer_version="0"),
        luminosity=1.0,
    )
    w.add_channel("c", np.zeros(4), axes=[Axis.regular(4, 0.0, 4.0, name="x")])
    w.add_process("sig", kind="signal", folded=True)
    rng = np.random.default_rng(1)
    response = np.stack([rng.uniform(0, 1e-3, (4, nominal.size))] * 3)
    w.set_theory(generator_axes(), nominal, nominal_pdf="NNPDF23")
    w.set_yield("sig", "c", response[1] @ nominal, sumw2=np.ones(4))
    w.set_response("sig", "c", response)
    w.add_poi(
        name="m",
        kind="mass",
        central=0.0,
        scale=1.0,
        mass_points=[-1.0, 0.0, 1.0],
        acts_on=[{"process": "sig"}],
    )
    return w


def test_replica_grids_through_the_archive_eigenvectors(tmp_path):
    values, info = compute_set_values("NNPDF23_lo_as_0119_qed", P, paths=PDFSETS, progress=False)
    flat = values.reshape(values.shape[0], -1)
    w = _small_archive_writer(flat[0])
    w.add_pdf_set(
        name="NNPDF23",
        lhapdf_name=info.name,
        error_type="replicas",
        members=flat,
        variance_threshold=0.99,
    )
    member = load_member("NNPDF23_lo_as_0119_qed", 0, PDFSETS)
    add_variations_to_writer(w, theory_variations(member, P))
    path = tmp_path / "a.h5"
    w.write(path)
    validate_archive(path)
    with open_archive(path) as a:
        s = a.pdf_sets[0]
        ev = a.pdf_eigenvectors("NNPDF23")
        up, down = a.theory_variations()
        groups = {n.name: n.groups for n in a.nuisances}
    cov = np.cov(flat[1:], rowvar=False)
    approx = ev.T @ ev
    kept = np.trace(approx) / np.trace(cov)
    assert s.variance_kept >= 0.99 and kept == pytest.approx(s.variance_kept, rel=1e-9)
    resid = cov - approx  # the dropped eigen-directions: positive semi-definite
    assert np.linalg.eigvalsh(resid).min() > -1e-9 * np.trace(cov)
    assert np.trace(resid) == pytest.approx((1 - s.variance_kept) * np.trace(cov), rel=1e-6)
    # the largest cells' variances are held to the stated fraction
    big = np.argsort(np.diag(cov))[-50:]
    assert np.all(np.diag(approx)[big] >= 0.95 * np.diag(cov)[big])
    assert ev.shape[0] < 40  # far fewer than 100 replicas
    assert up.shape == (46, flat.shape[1]) and down.shape == up.shape
    assert groups["pTModel_ktNP"] == ["pTModeling"]
    assert groups["AiMuF_Wplus_ptW9"] == ["angularCoeffs"]


def test_theory_variations(ct10, grid):
    vs = theory_variations(ct10, P)
    names = [v.name for v in vs]
    assert len(names) == len(set(names)) == 46 and all(n.isidentifier() for n in names)
    pt = [v for v in vs if v.group == "pTModeling"]
    ang = [v for v in vs if v.group == "angularCoeffs"]
    assert len(pt) == 6 and len(ang) == 40
    assert {v.interpolation for v in pt} == {"multiplicative"}
    assert {v.interpolation for v in ang} == {"additive"}
    for v in pt:  # shape variations: the total moves by < 1%, the bins by up to ~10%
        for g in (v.up, v.down):
            assert abs(g[..., UL].sum() / grid[..., UL].sum() - 1) < 0.01
            assert np.all(g[..., UL] > 0)
        assert np.max(np.abs(v.up[..., UL] / grid[..., UL] - 1)) > 0.005
    for v in ang:  # one charge, one pT bin, A_i only
        diff = (v.up != grid) | (v.down != grid)
        assert not diff[..., UL].any()
        iq = 1 if "Wplus" in v.name else 0
        j = int(v.name.rsplit("ptW", 1)[1])
        assert diff[iq, :, j].any() and diff.sum() == diff[iq, :, j].sum()
    corr = theory_variations(ct10, P, correlate_charges=True)
    assert len(corr) == 26
