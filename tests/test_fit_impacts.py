"""Impacts: global impacts add up in quadrature to the total; on Asimov data the data-statistics
part equals the direct sum over bins; nominal impacts equal sqrt(C_pG C_GG^-1 C_Gp)."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.fit import engine, fit, nominal_impacts, observation
from wmass_archive.jax_config import jax, jnp
from wmass_archive.model import build_model


@pytest.fixture(scope="module")
def demo_model(demo_archive_master):
    return build_model(demo_archive_master)


@pytest.fixture(scope="module")
def data_fit(demo_model):
    return fit(demo_model)


def test_global_impacts_add_up_to_total(data_fit):
    g = data_fit.impact("global")
    assert g.total == pytest.approx(data_fit.poi().physical_error, rel=1e-12)
    groups = g.groups
    # every source once: nuisances (each in its own first group would double count, so use
    # the per-nuisance table), MC statistics and data statistics
    total_sq = sum(v**2 for v in g.nuisances.values()) + groups["binByBinStat"] ** 2
    total_sq += groups["stat"] ** 2
    assert np.sqrt(total_sq) == pytest.approx(g.total, rel=1e-3)
    assert g.sum_in_quadrature == pytest.approx(g.total, rel=1e-3)
    assert groups["stat"] > 0 and groups["binByBinStat"] > 0
    # a group's impact is the quadrature sum of its members
    eff = [v for k, v in g.nuisances.items() if k.startswith("effStat")]
    assert groups["muon_eff_stat"] == pytest.approx(np.sqrt(np.sum(np.square(eff))), rel=1e-12)


def test_asimov_data_stat_equals_direct_sum(demo_model):
    m, bb = demo_model, "gamma"
    r = fit(m, asimov=True, impacts=("global",))
    g = r.impact("global")
    cov = np.asarray(r.covariance)
    theta = jnp.asarray(r.values)
    jac = np.asarray(jax.jacfwd(lambda t: jnp.asarray(_expected(m, t)))(theta))
    nu = m.expected(r.values)
    k = np.asarray(m.arrays["bb_k"])
    on = np.asarray(m.arrays["bb_on"])
    # shift of theta_hat per unit observed count: C (J/nu + C_theta,beta / beta), sigma_n = sqrt(nu)
    per_count = 1.0 / nu - (np.where(on, 1.0 / (nu + k), 0.0) if bb != "none" else 0.0)
    cj = cov[0] @ jac.T  # (n_bins,)
    direct = np.sqrt(np.sum((cj * per_count) ** 2 * nu)) * 100.0
    assert g.groups["stat"] == pytest.approx(direct, rel=1e-3)


def _expected(m, t):
    from wmass_archive.model.expected import expected_bins

    return expected_bins(m.static, m.arrays, t)


def test_nominal_impacts_match_covariance_formula(data_fit, demo_model):
    n = data_fit.impact("nominal")
    cov = np.asarray(data_fit.covariance)
    for group, idx in demo_model.groups().items():
        c_pg = cov[0, idx]
        c_gg = cov[np.ix_(idx, idx)]
        expect = 100.0 * np.sqrt(c_pg @ np.linalg.solve(c_gg, c_pg))
        assert n.groups[group] == pytest.approx(expect, rel=1e-6), group
    # per nuisance: C_pk / sqrt(C_kk)
    k = demo_model.index("lumi")
    assert n.nuisances["lumi"] == pytest.approx(100 * cov[0, k] / np.sqrt(cov[k, k]), rel=1e-12)
    # the structured solve with the group fixed gives the same numbers
    obs = observation(demo_model.data, demo_model.n_params)
    theta = data_fit.values
    _, _, hs, _ = engine.value_grad_hess(demo_model.static, demo_model.arrays, theta, obs)
    free = np.ones(demo_model.n_params, dtype=bool)
    structured = nominal_impacts(demo_model, theta, obs, hs, cov, free, small_group=0)[0]
    for group, value in n.groups.items():
        assert structured.groups[group] == pytest.approx(value, rel=1e-6, abs=1e-9), group
    # stat: all nuisances fixed and no Barlow-Beeston: smaller than the total
    assert 0 < n.groups["stat"] < n.total
    assert 0 < n.groups["binByBinStat"] < n.total


def test_multiple_pois_have_their_tables(demo_archive_master):
    r = fit(build_model(demo_archive_master, poi="mw-charge"), impacts=("nominal", "global"))
    kinds = {(t.kind, t.poi) for t in r.impacts}
    assert kinds == {(k, p) for k in ("nominal", "global") for p in ("mW_plus", "mW_minus")}
    for p in ("mW_plus", "mW_minus"):
        g = r.impact("global", p)
        assert g.sum_in_quadrature == pytest.approx(g.total, rel=1e-3)
