"""The fast minimiser: Asimov closure, convergence diagnostics, agreement with iminuit, Hessian
uncertainty against the profile-likelihood interval, frozen parameters and scans."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.fit import FitError, asimov, fit, minimize_newton, observation
from wmass_archive.model import build_model


@pytest.fixture(scope="module")
def demo_model(demo_archive_master):
    return build_model(demo_archive_master)


@pytest.fixture(scope="module")
def demo_fit(demo_model):
    return fit(demo_model, intervals=["mW"], scan_points={"mW": [-0.2, 0.0, 0.1, 0.2, 0.3]})


def test_asimov_closure(demo_model):
    th = np.zeros(demo_model.n_params)
    th[0] = 0.37  # +37 MeV
    r = fit(demo_model, asimov=th, impacts=())
    assert r.converged and r.asimov and r.edm < 1e-8
    p = r.poi("mW")
    assert abs(p.value - 0.37) * 100.0 < 0.01  # MeV
    assert p.physical_value == pytest.approx(80360.0 + 37.0 + p.blinding_offset, abs=0.01)
    assert np.max(np.abs(r.values[1:])) < 1e-4
    assert r.gof.chi2 == pytest.approx(0.0, abs=1e-6)


def test_asimov_closure_split_pois(demo_archive_master):
    m = build_model(demo_archive_master, poi="mw-charge")
    th = np.zeros(m.n_params)
    th[:2] = [0.3, -0.25]
    r = fit(m, asimov=th, impacts=(), gof=False)
    assert r.poi("mW_plus").value == pytest.approx(0.3, abs=1e-4)
    assert r.poi("mW_minus").value == pytest.approx(-0.25, abs=1e-4)


def test_fit_to_data_converges_with_diagnostics(demo_fit, demo_model):
    r = demo_fit
    assert r.status == "converged" and r.minimize.edm < 1e-8
    assert r.minimize.max_scaled_gradient < 1e-3
    assert r.minimize.n_iterations >= 2
    assert r.pois[0].unit == "MeV" and r.pois[0].physical_error == pytest.approx(
        100.0 * r.pois[0].error
    )
    # GoF: chi2 = 2 nll; ndof = bins - POIs - unconstrained nuisances (nonpromptNorm)
    assert r.gof.chi2 == pytest.approx(2 * r.nll) and r.gof.ndof == 240 - 2


def test_not_converged_is_reported(demo_model):
    with pytest.raises(FitError, match="did not converge"):
        fit(demo_model, max_iter=1, impacts=())
    r = fit(demo_model, max_iter=1, strict=False, impacts=())
    assert not r.converged and r.status in ("max_iterations", "not_positive_definite")
    assert r.minimize.worst_gradients and r.minimize.worst_gradients[0][0] in r.parameter_names
    assert "largest" in r.minimize.message and r.impacts == []


def test_newton_and_minuit_agree(demo_model, demo_fit):
    rm = fit(demo_model, minimizer="minuit", impacts=(), intervals=["mW"])
    rn = demo_fit
    assert rm.converged and rm.versions.iminuit
    err = rn.errors
    np.testing.assert_allclose(rm.values, rn.values, atol=2e-3 * err.min())
    np.testing.assert_allclose(rm.errors, rn.errors, rtol=1e-3)
    lo_m, hi_m = rm.poi().interval
    lo_n, hi_n = rn.poi().interval
    sig = rn.poi().error
    assert lo_m == pytest.approx(lo_n, abs=0.01 * sig) and hi_m == pytest.approx(
        hi_n, abs=0.01 * sig
    )


def test_hessian_error_vs_profile_interval(demo_fit):
    p = demo_fit.poi("mW")
    lo, hi = p.interval
    assert lo < p.value < hi
    assert (hi - lo) / 2 == pytest.approx(p.error, rel=0.02)
    assert p.physical_interval[1] - p.physical_interval[0] == pytest.approx(100 * (hi - lo))


def test_scan(demo_fit):
    s = demo_fit.scans[0]
    assert s.poi == "mW" and all(s.converged)
    p = demo_fit.poi()
    q = np.array(s.two_delta_nll)
    expect = ((np.array(s.values) - p.value) / p.error) ** 2
    np.testing.assert_allclose(q, expect, rtol=0.05, atol=0.02)
    assert np.all(q >= -1e-7)


def test_frozen_parameters(demo_model):
    start = {"lumi": 0.5}
    r = fit(demo_model, freeze=["lumi", "muonCalibration"], start=start, impacts=("global",))
    assert r.parameter("lumi").value == 0.5 and r.parameter("lumi").error == 0.0
    assert r.parameter("lumi").frozen and not r.parameter("mW").frozen
    assert all(r.parameter(f"muonScale_eta{i}").value == 0.0 for i in range(12))
    g = r.impact("global")
    assert g.groups["muonCalibration"] == 0.0 and g.groups["luminosity"] == 0.0


def test_minimize_from_far_start(demo_model):
    obs = observation(demo_model.data, demo_model.n_params)
    start = np.random.default_rng(0).normal(0, 1.5, demo_model.n_params)
    out = minimize_newton(demo_model, obs, start)
    ref = minimize_newton(demo_model, obs)
    assert out.info.converged and out.info.nll == pytest.approx(ref.info.nll, abs=1e-7)
    np.testing.assert_allclose(out.theta, ref.theta, atol=1e-3)


def test_asimov_observation(demo_model):
    th = np.full(demo_model.n_params, 0.1)
    obs = asimov(demo_model, th)
    np.testing.assert_allclose(obs.n, demo_model.expected(th))
    np.testing.assert_allclose(obs.theta0[demo_model.constrained], 0.1)
    assert np.all(np.asarray(obs.theta0)[~demo_model.constrained] == 0.0)
