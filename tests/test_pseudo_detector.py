"""Detector model of the pseudo-analysis: resolution, calibration, efficiency, recoil, binning,
and the calibration variations of the templating."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.producers.pseudo.detector import (
    N_RECO,
    RECO_SHAPE,
    DetectorModel,
    calibrate,
    efficiency,
    efficiency_steps,
    eta_bin,
    reco_bin,
    relative_resolution,
    simulate,
    transverse_mass,
    transverse_mass_par,
)
from wmass_archive.producers.pseudo.signal import analytic_cell_densities, generate_w_events
from wmass_archive.producers.pseudo.templates import fill, finalize, variation_specs
from wmass_archive.producers.pseudo.truth import TruthMuons

DET = DetectorModel()


def _truth(n: int, rng: np.random.Generator, eta=None, pt=None) -> TruthMuons:
    bpt, bphi = 10 * rng.random(n), 2 * np.pi * rng.random(n)
    return TruthMuons(
        pt=rng.uniform(25, 60, n) if pt is None else np.full(n, pt, dtype=float),
        eta=rng.uniform(-2.5, 2.5, n) if eta is None else np.full(n, eta, dtype=float),
        phi=rng.uniform(-np.pi, np.pi, n),
        charge=np.where(rng.random(n) < 0.5, -1, 1).astype(np.int8),
        weight=np.full(n, 0.01),
        boson_px=bpt * np.cos(bphi),
        boson_py=bpt * np.sin(bphi),
    )


@pytest.fixture(scope="module")
def signal_chunk():
    d = analytic_cell_densities()
    ev = generate_w_events(d, 200_000, np.random.default_rng(21))
    reco = simulate(ev.truth, DET, np.random.default_rng(22))
    return ev, reco


def test_resolution_barrel_and_endcap():
    rng = np.random.default_rng(0)
    for eta, expect in ((0.1, DET.res_barrel), (2.35, None)):
        t = _truth(100_000, rng, eta=eta, pt=40.0)
        reco = simulate(t, DET, rng)
        measured = np.std(t.pt / reco.pt - 1.0)  # k_reco / k_true - 1
        nominal = relative_resolution(np.array([eta]), np.array([40.0]), DET)[0]
        assert measured == pytest.approx(nominal, rel=0.02)
        if expect is not None:
            assert nominal == pytest.approx(expect, rel=1e-12)
    r = relative_resolution(np.array([0.0, 1.5, 2.4]), np.full(3, 40.0), DET)
    assert 0.009 < r[0] < 0.011 and r[0] < r[1] < r[2] and 0.02 < r[2] < 0.025


def test_calibration_formula():
    k = np.array([1 / 30, 1 / 45])
    q = np.array([-1.0, 1.0])
    A, e, M = 1e-4, 2e-3, 3e-5
    kc = calibrate(k, q, A, e, M)
    np.testing.assert_allclose((kc - k) / k, A + q * M / k - e * k, rtol=1e-12)
    np.testing.assert_array_equal(calibrate(k, q), k)  # nominal: perfect calibration


def test_efficiency_map():
    eta = np.array([0.5, 1.8, 0.5, 0.5, 0.5])
    pt = np.array([40.0, 40.0, 24.0, 26.0, 55.0])
    q = np.ones(5)
    eff = efficiency(eta, pt, q, DET)
    steps = efficiency_steps(eta, pt, q, DET)
    np.testing.assert_allclose(eff, np.prod(list(steps.values()), axis=0), rtol=1e-14)
    assert 0.85 < eff[0] < 0.92  # barrel plateau
    assert eff[1] < eff[0]  # endcap lower
    assert steps["trigger"][2] == pytest.approx(0.5 * steps["trigger"][0], rel=1e-12)
    assert eff[2] < 0.6 * eff[0] and eff[3] > 0.9 * eff[0]  # turn-on between 24 and 26 GeV
    assert eff[4] > eff[0]  # isolation improves with pT
    # charge asymmetry only in the endcaps
    assert efficiency(np.array([1.8]), np.array([40.0]), np.array([1]), DET) != efficiency(
        np.array([1.8]), np.array([40.0]), np.array([-1]), DET
    )


def test_binning_and_selection():
    assert RECO_SHAPE == (2, 48, 30) and N_RECO == 2880
    b = reco_bin(np.array([-1, 1, 1, 1]), np.array([-2.39, 2.39, 0.05, 2.5]),
                 np.array([26.01, 55.99, 40.5, 40.0]))  # fmt: skip
    assert list(b) == [0, (1 * 48 + 47) * 30 + 29, (48 + 24) * 30 + 14, -1]
    assert list(eta_bin(np.array([-2.41, -2.4, 0.0, 2.3999, 2.4]))) == [-1, 0, 24, 47, -1]
    rng = np.random.default_rng(1)
    t = _truth(50_000, rng)
    reco = simulate(t, DET, rng)
    sel = reco.bin >= 0
    assert np.all((reco.pt[sel] > 26) & (reco.pt[sel] < 56) & (np.abs(reco.eta[sel]) < 2.4))
    assert np.all(reco.mt[sel] > 40)
    assert np.any(~sel & (reco.mt < 40) & (reco.pt > 26) & (reco.pt < 56) & (reco.ieta >= 0))
    np.testing.assert_array_equal(reco.bin[sel], reco_bin(t.charge, t.eta, reco.pt)[sel])


def test_transverse_mass_and_recoil():
    rng = np.random.default_rng(5)
    t = _truth(50_000, rng)
    reco = simulate(t, DET, rng)
    mu = np.stack([t.pt * np.cos(t.phi), t.pt * np.sin(t.phi)])
    # with no recoil (u = 0) mT = 2 pT
    np.testing.assert_allclose(
        transverse_mass(t.pt, t.phi, np.zeros(len(t)), np.zeros(len(t))), 2 * t.pt, rtol=1e-12
    )
    # against the textbook formula with an explicit MET
    ux, uy = rng.normal(0, 8, len(t)), rng.normal(0, 8, len(t))
    met = -(mu + np.stack([ux, uy]))
    dphi = t.phi - np.arctan2(met[1], met[0])
    ref = np.sqrt(2 * t.pt * np.hypot(*met) * (1 - np.cos(dphi)))
    np.testing.assert_allclose(transverse_mass(t.pt, t.phi, ux, uy), ref, rtol=1e-9, atol=1e-6)
    # recoil: E|u|^2 = response^2 |boson|^2 + 2 sigma^2, sigma = sigma0 + slope |boson|
    b2 = t.boson_px**2 + t.boson_py**2
    sig = DET.recoil_sigma0 + DET.recoil_sigma_slope * np.sqrt(b2)
    expect = np.mean(DET.recoil_response**2 * b2 + 2 * sig**2)
    assert np.mean(reco.u2) == pytest.approx(expect, rel=0.02)
    np.testing.assert_allclose(reco.mt, transverse_mass_par(reco.pt, reco.u_par, reco.u2))


def test_signal_acceptance(signal_chunk):
    ev, reco = signal_chunk
    sel = reco.bin >= 0
    acc = np.sum(ev.truth.weight[sel] * reco.eff[sel]) / np.sum(ev.truth.weight)
    assert 0.3 < acc < 0.45
    assert 0.8 < np.average(reco.eff[sel], weights=ev.truth.weight[sel]) < 0.9


def _variations(ev, reco):
    specs = variation_specs(DET, signal=True)
    h = fill(ev, reco, DET, specs)
    return {v.name: v for v in finalize(h, specs, 1000.0).variations}, specs


def test_calibration_variation_moves_only_its_eta_bin(signal_chunk):
    ev, reco = signal_chunk
    var, specs = _variations(ev, reco)
    assert sum(s.group == "muonCalibration" for s in specs) == 314
    assert len({s.name for s in specs}) == len(specs)
    for name, bins in (
        ("calib_A_eta07", [7]),
        ("calib_e_eta30", [30]),
        ("calib_M_eta47", [47]),
        ("calib_Zclosure_eta00", [0]),
        ("calib_pixel_eta12", [12]),
        ("calib_resol_a_eta06-07", [6, 7]),
    ):
        v = var[name]
        ieta = (v.bins // 30) % 48
        assert set(np.unique(ieta)) <= set(bins), name
        assert v.bins.dtype == np.int64 and np.all(np.diff(v.bins) > 0)
        assert np.all(np.isfinite(v.logk_up)) and np.all(np.isfinite(v.logk_down))
        assert np.any(v.logk_up != 0)
    assert len(np.unique((var["calib_ZclosureLEP"].bins // 30) % 48)) == 48
    # a positive A raises the curvature, lowering pT: the mean pT of the bin goes down
    v = var["calib_A_eta07"]
    pt_c = 26.5 + v.bins % 30
    nom = np.bincount(reco.bin[reco.bin >= 0], (ev.truth.weight * reco.eff)[reco.bin >= 0], N_RECO)[
        v.bins
    ]
    mean_nom = np.sum(nom * pt_c) / nom.sum()
    mean_up = np.sum(nom * np.exp(v.logk_up) * pt_c) / np.sum(nom * np.exp(v.logk_up))
    assert mean_up < mean_nom


def test_any_truth_sample_is_accepted():
    rng = np.random.default_rng(9)
    t = _truth(20_000, rng)
    reco = simulate(t, DET, rng)
    specs = variation_specs(DET)
    h = fill(t, reco, DET, specs)
    tpl = finalize(h, specs, 100.0)
    assert tpl.nominal.shape == RECO_SHAPE and tpl.response is None
    assert tpl.nominal.sum() > 0
    assert {v.group for v in tpl.variations} == {"muonCalibration"}
    try:
        from wmass_archive.producers.pseudo import backgrounds
    except ImportError:  # the background generators are optional here
        return
    z = backgrounds.generate("Zmumu", 5_000, np.random.default_rng(3))
    r = simulate(z, DET, np.random.default_rng(4))
    assert finalize(fill(z, r, DET, specs), specs, 100.0).nominal.sum() >= 0
