"""Bounds, hypothesis tests (CLs with q~mu, q_mu, q0) and upper limits, against hand
calculations and against pyhf itself (pyhf.infer.hypotest, upper_limits.upper_limit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

pyhf = pytest.importorskip("pyhf")

from _pyhf_search import search_workspace  # noqa: E402

from wmass_archive.fit import fit, hypotest, upper_limit  # noqa: E402
from wmass_archive.fit.hypotest import (  # noqa: E402
    AsymptoticCalculator,
    HypotestError,
    cls_from_q,
    cls_from_toys,
)
from wmass_archive.interop.pyhf import import_pyhf  # noqa: E402
from wmass_archive.model import build_model  # noqa: E402

#: a small search: the data sit below the background, so that the free fit of mu wants < 0
SMALL = search_workspace([45.0, 52.0, 41.0])


def _pyhf(spec):
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    ws = pyhf.Workspace(spec)
    model = ws.model()
    return model, ws.data(model)


def _assert_same_cls(r, cls, exp):
    """Our result ``r`` against pyhf's observed CLs and expected set, to 1e-4."""
    assert r.cls_obs == pytest.approx(float(cls), abs=1e-4, rel=1e-4)
    assert r.cls_exp == pytest.approx([float(x) for x in exp], abs=1e-4, rel=1e-4)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("ht") / "small.h5"
    import_pyhf(SMALL, path)
    return path


@pytest.fixture(scope="module")
def signal_like(tmp_path_factory):
    """SMALL with data above the background: mu_hat ~ 1.5 inside its bounds."""
    spec = search_workspace([58.0, 75.0, 44.0])
    path = tmp_path_factory.mktemp("ht") / "signal.h5"
    import_pyhf(spec, path)
    return spec, path


# ------------------------------------------------------------------------------ pure formulae
def test_cls_from_q_by_hand():
    """q = 4, q_A = 1 (q~: q > q_A): t = (4 - 1) / 2 = 1.5, CLs+b = Phi(-(1.5 + 1)),
    CLb = Phi(-1.5); expected at t = n: Phi(-(n + 1)) / Phi(-n)."""
    clsb, clb, cls, exp_sb, exp = cls_from_q(4.0, 1.0, "qtilde")
    assert clsb == pytest.approx(norm.cdf(-2.5), rel=1e-12)
    assert clb == pytest.approx(norm.cdf(-1.5), rel=1e-12)
    assert cls == pytest.approx(norm.cdf(-2.5) / norm.cdf(-1.5), rel=1e-12)
    assert exp[2] == pytest.approx(norm.cdf(-1.0) / 0.5, rel=1e-12)
    assert exp_sb[0] == pytest.approx(norm.cdf(-3.0), rel=1e-12)
    # q_mu (not tilde): t = sqrt(q) - sqrt(q_A) = 1
    clsb, clb, cls, _, _ = cls_from_q(4.0, 1.0, "q")
    assert (clsb, clb) == pytest.approx((norm.cdf(-2.0), norm.cdf(-1.0)), rel=1e-12)
    # q~ below q_A is the same as q_mu
    assert cls_from_q(0.25, 1.0, "qtilde")[:3] == pytest.approx(cls_from_q(0.25, 1.0, "q")[:3])


def test_cls_from_toys_by_hand():
    q_sb = np.array([0.0, 1.0, 2.0, 3.0])
    q_b = np.array([0.0, 0.0, 1.0, 5.0])
    clsb, clb, cls, _, exp = cls_from_toys(2.0, q_sb, q_b)
    assert clsb == 0.5  # 2 and 3 are >= 2
    assert clb == 0.25  # only 5
    assert cls == 2.0
    # the b toys as observed: q = 0 -> CLs 1; q = 1 -> 0.75 / 0.5; q = 5 -> 0 / 0.25
    assert exp == pytest.approx(
        np.percentile([1.0, 1.0, 1.5, 0.0], [2.275, 15.87, 50, 84.13, 97.72]), abs=2e-3
    )
    with pytest.raises(HypotestError, match="no toy fit converged"):
        cls_from_toys(1.0, np.array([np.nan]), q_b)


# ------------------------------------------------------------------------------ bounds
def test_bounded_fit_stops_at_bound_and_says_so(small):
    """Unbounded, the fit wanders into the region where the signal is clipped at 0 and the
    likelihood is flat; bounded to [0, 10] (pyhf's default, imported) it stops at 0."""
    r = fit(small, impacts=(), gof=False)
    mu = r.poi("mu")
    assert r.converged and mu.at_bound and mu.physical_value == pytest.approx(0.0, abs=1e-12)
    assert mu.bounds == (0.0, 10.0)
    assert r.minimize.at_bound == ["mu"]
    # the error from the curvature on every free parameter, as a Hessian by autodiff gives it
    model, data = _pyhf(SMALL)
    best = pyhf.infer.mle.fit(data, model)

    def nll(x):
        return -float(model.logpdf(x, data)[0])

    h, n = 1e-4, len(best)
    hess = np.zeros((n, n))
    eye = np.eye(n) * h
    for i in range(n):
        for j in range(n):
            hess[i, j] = (
                nll(best + eye[i] + eye[j])
                - nll(best + eye[i] - eye[j])
                - nll(best - eye[i] + eye[j])
                + nll(best - eye[i] - eye[j])
            ) / (4 * h * h)
    err = math.sqrt(np.linalg.inv(hess)[model.config.poi_index, model.config.poi_index])
    assert mu.physical_error == pytest.approx(err, rel=1e-4)


def test_bounds_override_and_profile_interval_at_bound(small):
    """--bounds replaces the archive's range; the lower end of a profile interval whose
    profile never reaches 2 dNLL = 1 below the minimum is the bound itself."""
    r = fit(small, impacts=(), gof=False, intervals=True, bounds={"mu": (0.0, 5.0)})
    mu = r.poi("mu")
    assert mu.bounds == (0.0, 5.0)
    lo, hi = mu.physical_interval
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert 0.2 < hi < 1.0
    # the upper end is where the profile crosses 1
    r2 = fit(small, impacts=(), gof=False, scan_points={"mu": [mu.interval[1]]})
    assert r2.scans[0].two_delta_nll[0] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    "bounds, match",
    [
        ({"mu": (5.0, 1.0)}, "below high"),
        ({"nope": (0, 1)}, "no parameter 'nope'"),
        ({"mu": (-5.0, -1.0)}, "exclude every positive value"),
        ({"bkgunc[0]": (-50.0, -20.0)}, "exclude every value of its poisson-constrained"),
    ],
)
def test_bad_bounds(small, bounds, match):
    from wmass_archive.errors import ArchiveError

    with pytest.raises(ArchiveError, match=match):
        fit(small, impacts=(), gof=False, bounds=bounds)


def test_any_nuisance_as_poi(small):
    """fit(path, poi=NAME) and build_model(path, poi=NAME) take any parameter; a nuisance made
    a POI keeps its constraint and gives the same minimum."""
    base = fit(small, impacts=(), gof=False)
    r = fit(small, poi="ns", impacts=(), gof=False)
    assert r.pois[0].name == "ns" and r.pois[0].kind == "parameter"
    assert r.pois[0].value == pytest.approx(base.parameter("ns").value, abs=1e-6)
    assert r.pois[0].error == pytest.approx(base.parameter("ns").error, rel=1e-6)
    assert r.nll == pytest.approx(base.nll, abs=1e-9)
    assert build_model(small, poi=None).poi_names == ["mu"]
    assert fit(small, poi="mu", impacts=(), gof=False).pois[0].name == "mu"


# ------------------------------------------------------------------------------ pyhf
@pytest.mark.parametrize("test_stat", ["qtilde", "q", "q0"])
def test_hypotest_matches_pyhf_small(signal_like, test_stat):
    spec, path = signal_like
    model, data = _pyhf(spec)
    kw, ours = {}, {}
    if test_stat == "q":  # q_mu with mu free to go negative, as pyhf wants it
        b = model.config.suggested_bounds()
        b[model.config.poi_index] = (-10.0, 10.0)
        kw = dict(par_bounds=b)
        ours = dict(bounds={"mu": (-10.0, 10.0)})
    for mu in (0.5, 1.0, 2.5):
        cls, exp = pyhf.infer.hypotest(
            mu, data, model, test_stat=test_stat, return_expected_set=True, **kw
        )
        r = hypotest(path, mu, test_stat=test_stat, **ours)
        _assert_same_cls(r, cls, exp)


def test_upper_limit_matches_pyhf_small(small):
    model, data = _pyhf(SMALL)
    obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, rtol=1e-8)
    ul = upper_limit(small)
    assert ul.observed == pytest.approx(float(obs), rel=1e-4)
    assert ul.expected == pytest.approx([float(x) for x in exp], rel=1e-4)


def test_cls_refused_on_a_mass_poi(demo_archive):
    with pytest.raises(HypotestError, match="mass POI"):
        hypotest(demo_archive, 1.0)


def test_calculator_reuses_fits(small):
    """An upper limit costs two fixed-POI fits per value tried, the free fits once."""
    calc = AsymptoticCalculator(build_model(small))
    n0 = calc.n_fits
    calc.hypotest(1.0)
    calc.hypotest(1.0)
    assert calc.n_fits == n0 + 2


def _published(tmp_path_factory, **size):
    """A search likelihood built like published ones (tests/_pyhf_published.py: every modifier
    type, negative sample yields, a background-only workspace and a JSON Patch signal)."""
    import jsonpatch
    from _pyhf_published import published_like

    bkg, patch = published_like(seed=3, **size)
    path = tmp_path_factory.mktemp("pub") / "pub.h5"
    import_pyhf(bkg, path, patches=[patch])
    return jsonpatch.apply_patch(bkg, patch), path


@pytest.fixture(scope="module")
def published_medium(tmp_path_factory):
    """80 bins in 5 channels, 51 parameters (pyhf's numpy fits take ~15 s per test)."""
    return _published(
        tmp_path_factory, n_bins=80, n_channels=5, n_stat_channels=2, n_shapesys_channels=1
    )


# 27 s (pyhf's numpy fits of 80 bins); CLs against pyhf in the fast set:
# test_hypotest_matches_pyhf_small (q~mu, q_mu, q0)
@pytest.mark.slow
def test_hypotest_matches_pyhf_published_medium(published_medium):
    spec, path = published_medium
    model, data = _pyhf(spec)
    cls, exp = pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde", return_expected_set=True)
    r = hypotest(path, 1.0)
    _assert_same_cls(r, cls, exp)


@pytest.mark.slow  # pyhf's numpy fits of 300 bins, minutes
def test_hypotest_matches_pyhf_published_full(tmp_path_factory):
    """300 bins, 10 channels, 159 parameters: CLs (q~mu) as pyhf gives it."""
    spec, path = _published(tmp_path_factory)
    model, data = _pyhf(spec)
    cls, exp = pyhf.infer.hypotest(1.0, data, model, return_expected_set=True)
    r = hypotest(path, 1.0)
    _assert_same_cls(r, cls, exp)


@pytest.mark.slow  # pyhf's root finding, ~15 CLs of 30 s
def test_upper_limit_matches_pyhf_published_medium(published_medium):
    spec, path = published_medium
    model, data = _pyhf(spec)
    obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, rtol=1e-6)
    ul = upper_limit(path)
    assert ul.observed == pytest.approx(float(obs), rel=1e-4)
    assert ul.expected == pytest.approx([float(x) for x in exp], rel=1e-4)


def test_toy_cls_close_to_asymptotic(signal_like):
    """With counts of ~50 per bin, 300 toys per hypothesis give a CLs within the binomial
    spread of the asymptotic one."""
    from wmass_archive.fit.hypotest import toy_test_statistics

    _, path = signal_like
    model = build_model(path)
    calc = AsymptoticCalculator(model)
    mu = 3.0
    asym = calc.hypotest(mu)
    th_sb, th_b = calc.toy_generation_points(mu)
    q_sb = toy_test_statistics(model, th_sb, mu, 300, 1)
    q_b = toy_test_statistics(model, th_b, mu, 300, 100_001)
    r = calc.toy_result(mu, q_sb, q_b)
    assert r.calculator == "toys" and r.n_toys == 300
    sig = math.sqrt(asym.clsb * (1 - asym.clsb) / 300) / asym.clb + 0.02
    assert abs(r.cls_obs - asym.cls_obs) < 4 * sig
