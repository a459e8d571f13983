"""W -> mu nu event generation of the pseudo-analysis: line shape, decay angles, kinematics,
weights."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.producers.pseudo.signal import (
    N_CELLS,
    PiecewiseLinearTables,
    SignalConfig,
    allocate_events,
    analytic_cell_densities,
    bw_density,
    bw_mean_s,
    bw_norm,
    chunk_counts,
    generate_chunk,
    generate_w_events,
    lepton_momenta,
    sample_cs_angles,
    sample_mass,
)
from wmass_archive.theory.generator import (
    GRID_SHAPE,
    N_HEL,
    angular_density,
    angular_polynomials,
    cell_index,
)

MW, GW, WINDOW = 80.360, 2.085, (50.0, 200.0)


@pytest.fixture(scope="module")
def densities():
    return analytic_cell_densities()


@pytest.fixture(scope="module")
def events(densities):
    return generate_w_events(densities, 300_000, np.random.default_rng(11))


def _bw_cdf(m: np.ndarray, mw: float = MW) -> np.ndarray:
    g2 = (GW / mw) ** 2
    s0, sc = mw * mw / (1 + g2), mw * GW / (1 + g2)
    lo = np.arctan((WINDOW[0] ** 2 - s0) / sc)
    return (np.arctan((m * m - s0) / sc) - lo) / (np.arctan((WINDOW[1] ** 2 - s0) / sc) - lo)


def test_breit_wigner_mass_distribution():
    m = sample_mass(200_000, np.random.default_rng(1), MW, GW, WINDOW)
    assert m.min() >= WINDOW[0] and m.max() <= WINDOW[1]
    edges = np.concatenate([[50.0], np.linspace(74, 87, 27), [200.0]])
    obs = np.histogram(m, edges)[0]
    exp = m.size * np.diff(_bw_cdf(edges))
    chi2 = np.sum((obs - exp) ** 2 / exp)
    assert chi2 < len(exp) + 5 * np.sqrt(2 * len(exp))
    assert abs(np.median(m) - MW) < 0.02
    # the density is normalised on the window
    s = np.linspace(WINDOW[0] ** 2, WINDOW[1] ** 2, 400_001)
    f = bw_density(s, MW, GW, WINDOW)
    assert np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(s)) == pytest.approx(1.0, rel=1e-6)
    assert bw_norm(MW, GW, WINDOW) > 0
    assert np.average(s, weights=f) == pytest.approx(bw_mean_s(MW, GW, WINDOW), rel=1e-6)


def test_mass_weights_shift_line_shape(events):
    w = events.truth.weight
    mw = events.mass_weights()
    assert mw.shape == (2, len(events))
    # normalised Breit-Wigner ratios: the cross section is unchanged (within MC precision)
    for k in range(2):
        assert np.sum(w * mw[k]) / np.sum(w) == pytest.approx(1.0, abs=3e-3)
    # the weighted median mass moves by +-100 MeV
    o = np.argsort(events.mass)
    for k, shift in ((0, -0.1), (1, 0.1)):
        cw = np.cumsum((w * mw[k])[o])
        med = events.mass[o][np.searchsorted(cw, 0.5 * cw[-1])]
        cw0 = np.cumsum(w[o])
        med0 = events.mass[o][np.searchsorted(cw0, 0.5 * cw0[-1])]
        assert med - med0 == pytest.approx(shift, abs=0.02)


def _gram() -> tuple[np.ndarray, np.ndarray]:
    """G_ij = integral of P_i P_j over cos theta, phi (Gauss-Legendre x uniform phi)."""
    x, wx = np.polynomial.legendre.leggauss(24)
    ph = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    c, p = np.meshgrid(x, ph, indexing="ij")
    wt = (wx[:, None] * np.full(ph.size, 2 * np.pi / ph.size)[None, :]).ravel()
    poly = angular_polynomials(c.ravel(), p.ravel())
    return (poly * wt) @ poly.T, poly


def test_cs_angles_recover_coefficients():
    a_true = np.array([0.3, 0.1, 0.2, -0.15, -0.8, 0.05, 0.05, 0.1])
    n = 400_000
    c, phi, cp, sp = sample_cs_angles(
        np.repeat(a_true[:, None], n, axis=1), np.random.default_rng(3)
    )
    assert np.all(np.abs(c) <= 1) and np.all((phi >= 0) & (phi < 2 * np.pi))
    np.testing.assert_allclose(cp, np.cos(phi), atol=1e-12)
    np.testing.assert_allclose(sp, np.sin(phi), atol=1e-12)
    g, _ = _gram()
    p = angular_polynomials(c, phi)[1:]  # (8, n)
    mean = p.mean(axis=1)
    cov = np.cov(p) / n
    k = 16 * np.pi / 3
    ginv = np.linalg.inv(g[1:, 1:])
    a_hat = ginv @ (k * mean - g[1:, 0])
    err = np.sqrt(np.diag(ginv @ (k * k * cov) @ ginv.T))
    assert np.all(np.abs(a_hat - a_true) < 5 * err), (a_hat, err)
    assert np.all(err < 0.02)


def test_boost_consistency():
    rng = np.random.default_rng(4)
    n = 20_000
    m = sample_mass(n, rng, MW, GW, WINDOW)
    pt, y = 30 * rng.random(n), rng.uniform(-4, 4, n)
    phi_w, cos_t, phi_cs = (
        2 * np.pi * rng.random(n),
        rng.uniform(-1, 1, n),
        2 * np.pi * rng.random(n),
    )
    lep, nu = lepton_momenta(m, pt, y, phi_w, cos_t, phi_cs)
    w = lep + nu
    mt = np.sqrt(m * m + pt * pt)
    np.testing.assert_allclose(w[0], mt * np.cosh(y), rtol=1e-12)
    np.testing.assert_allclose(w[3], mt * np.sinh(y), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(w[1], pt * np.cos(phi_w), atol=1e-9)
    np.testing.assert_allclose(w[2], pt * np.sin(phi_w), atol=1e-9)
    mass = np.sqrt(w[0] ** 2 - w[1] ** 2 - w[2] ** 2 - w[3] ** 2)
    np.testing.assert_allclose(mass, m, rtol=1e-9)
    for p in (lep, nu):  # massless
        np.testing.assert_allclose(p[0], np.sqrt(p[1] ** 2 + p[2] ** 2 + p[3] ** 2), rtol=1e-12)
    # Collins-Soper cos theta of the charged lepton, computed independently from lab momenta
    # (z along the W's longitudinal direction)
    lp, lm = (lep[0] + lep[3]) / np.sqrt(2), (lep[0] - lep[3]) / np.sqrt(2)
    vp, vm = (nu[0] + nu[3]) / np.sqrt(2), (nu[0] - nu[3]) / np.sqrt(2)
    cos_cs = np.sign(y) * 2 * (lp * vm - lm * vp) / (m * mt)
    np.testing.assert_allclose(cos_cs, cos_t, atol=1e-9)


def test_helicity_weights_sum_to_event_weight(events, densities):
    hw = events.helicity_weights()
    assert hw.shape == (N_HEL, len(events))
    a = np.concatenate([np.ones((N_CELLS, 1)), densities.coefficients().reshape(N_CELLS, 8)], 1)
    total = np.einsum("in,ni->n", hw, a[events.cell])
    np.testing.assert_allclose(total, events.truth.weight, rtol=1e-12)
    # the unit weights are [3/(16 pi) P_i] / density, computed without trigonometry
    sub = slice(0, 1000)
    poly = angular_polynomials(events.cos_theta[sub], events.phi_cs[sub])
    dens = angular_density(a[events.cell[sub], 1:].T, events.cos_theta[sub], events.phi_cs[sub])
    np.testing.assert_allclose(events.hel(sub), 3 / (16 * np.pi) * poly / dens, rtol=1e-10)


def test_weights_reproduce_cell_cross_sections(events, densities):
    grid_ul = densities.grid.reshape(N_CELLS, N_HEL)[:, 0]
    sums = np.bincount(events.cell, events.truth.weight, N_CELLS)
    np.testing.assert_allclose(sums, grid_ul, rtol=1e-12)
    # the W kinematics are inside their cells
    cell = cell_index(events.truth.charge, np.abs(events.y), events.pt_w)
    np.testing.assert_array_equal(cell, events.cell)
    assert np.mean(events.y > 0) == pytest.approx(0.5, abs=0.01)
    # the muon charge is the W charge
    iq = events.cell // (GRID_SHAPE[1] * GRID_SHAPE[2])
    np.testing.assert_array_equal(events.truth.charge, np.where(iq > 0, 1, -1))


def test_chunks_partition_the_sample(densities):
    n_cell = allocate_events(densities.grid, 100_000)
    assert n_cell.min() >= 1 and abs(n_cell.sum() - 100_000) < N_CELLS
    for k_chunks in (1, 3, 7):
        parts = [chunk_counts(n_cell, k, k_chunks) for k in range(k_chunks)]
        np.testing.assert_array_equal(np.sum(parts, axis=0), n_cell)
    rng = np.random.default_rng(0)
    parts = [generate_chunk(densities, chunk_counts(n_cell, k, 3), n_cell, rng) for k in range(3)]
    total = sum(np.bincount(p.cell, p.truth.weight, N_CELLS) for p in parts)
    np.testing.assert_allclose(total, densities.grid.reshape(N_CELLS, N_HEL)[:, 0], rtol=1e-12)


def test_piecewise_linear_sampling():
    x = np.array([0.0, 1.0, 2.0, 4.0])
    f = np.array([[0.0, 2.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    tab = PiecewiseLinearTables(x, f, np.array([0.5, 0.0]), np.array([3.0, 4.0]))
    rng = np.random.default_rng(2)
    n = 200_000
    v0 = tab.sample(np.zeros(n, dtype=np.int64), rng.random(n))
    v1 = tab.sample(np.ones(n, dtype=np.int64), rng.random(n))
    assert v0.min() >= 0.5 and v0.max() <= 3.0 and v1.max() <= 2.0
    # exact CDF of table 0 at 1 and 2: areas 0.75, 1.5, 1.0 (total 3.25)
    assert np.mean(v0 < 1.0) == pytest.approx(0.75 / 3.25, abs=4e-3)
    assert np.mean(v0 < 2.0) == pytest.approx(2.25 / 3.25, abs=4e-3)
    assert np.mean(v1 < 1.0) == pytest.approx(1 / 1.5, abs=4e-3)
    assert np.mean(v1 < 0.5) == pytest.approx(0.5 / 1.5, abs=4e-3)


def _translation(pt, w, w_var, lo=30.0, hi=50.0):
    """Shift (GeV) of the pT distribution fitted as a translation of the nominal one."""
    e = np.linspace(lo, hi, 41)

    def h(x, ww):
        return np.histogram(x, e, weights=ww)[0]

    nom, var, s2 = h(pt, w), h(pt, w * w_var), h(pt, w * w)
    der = (h(pt + 0.5, w) - h(pt - 0.5, w)) / 1.0
    return np.sum((var - nom) * der / s2) / np.sum(der * der / s2)


def test_mass_weights_move_jacobian_peak(densities):
    ev = generate_w_events(densities, 300_000, np.random.default_rng(7), SignalConfig(fsr=False))
    mw = ev.mass_weights()
    up = _translation(ev.truth.pt, ev.truth.weight, mw[1])
    down = _translation(ev.truth.pt, ev.truth.weight, mw[0])
    # +100 MeV on mW moves the Jacobian peak (~mW/2) by about +50 MeV (46-50 MeV measured)
    assert 0.040 < up < 0.060
    assert -0.060 < down < -0.040


def test_fsr_and_ew_weights(events):
    cfg = SignalConfig()
    emit = events.fsr_z > 0
    assert np.mean(emit) == pytest.approx(np.mean(events.fsr_prob), abs=3e-3)
    assert 0.1 < np.mean(emit) < 0.25
    assert np.all(events.fsr_z[emit] >= cfg.fsr_zmin) and np.all(events.fsr_z < 1)
    ew = events.ew_weights()
    w = events.truth.weight
    for j in range(ew.shape[0]):
        for k in range(2):
            assert np.sum(w * ew[j, k]) / np.sum(w) == pytest.approx(1.0, abs=2e-3)
        assert not np.allclose(ew[j, 0], 1.0)
    # the rate variation: emitting events get 1 +- delta
    np.testing.assert_allclose(ew[0, 0][emit], 1 + cfg.fsr_rate_unc)
    np.testing.assert_allclose(ew[0, 1][emit], 1 - cfg.fsr_rate_unc)


def test_analytic_densities_are_physical(densities):
    c, p = np.meshgrid(np.linspace(-1, 1, 81), np.linspace(0, 2 * np.pi, 81))
    for a in densities.coefficients().reshape(-1, 8):
        assert angular_density(a, c.ravel(), p.ravel()).min() > 0
    ul = densities.grid[..., 0]
    assert ul[1].sum() == pytest.approx(11_600.0) and ul[0].sum() == pytest.approx(8_600.0)
