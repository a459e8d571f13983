"""Numerical robustness of the fitter: empty bins and processes without yield, an 8-sigma pull,
degenerate nuisances, starts far from the minimum where the Hessian is not positive definite,
fits that cannot converge (the message must say why), and non-finite numbers (a FitError naming
where they appear, never a NaN in a result).

References, independent of the fitter's JAX code: a numpy implementation of the counting
likelihood (docs/format.md sections 7.3 and 11; Poisson without Barlow-Beeston) minimised with
scipy's BFGS and differentiated by finite differences; the exact reparametrisation of two
nuisances with identical effects into one with sqrt(2) times the effect; numpy's eigvalsh of
the Hessian from ``jax.hessian`` of the nll (autodiff, not the structured assembly)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from wmass_archive.archive import POI, ArchiveWriter, Axis
from wmass_archive.fit import FitError, fit, minimize_newton, observation
from wmass_archive.fit import api as fit_api
from wmass_archive.fit.hessian import nll as structured_nll
from wmass_archive.jax_config import jax, jnp
from wmass_archive.model import build_model

X = np.arange(8.0)
SIG = 400.0 * np.exp(-0.5 * ((X - 3.5) / 1.4) ** 2)
BKG = np.full(8, 2.0e4)


def write_counting(path, sig, bkgs, nuisances, data) -> None:
    """Channel ``ch`` with a signal scaled by the rate POI mu = 1 + theta and backgrounds;
    ``nuisances``: [(name, constraint, {process: kappa or (kappa_down, kappa_up)})]."""
    w = ArchiveWriter(
        title="robustness",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "tests", "producer_version": "0"},
    )
    w.add_group("syst")
    nb = len(sig)
    w.add_channel("ch", np.asarray(data, float), axes=[Axis.regular(nb, 0.0, nb, name="x")])
    w.add_process("sig", kind="signal")
    for b in bkgs:
        w.add_process(b)
    for p, y in {"sig": sig, **bkgs}.items():
        y = np.asarray(y, float)
        w.set_yield(p, "ch", y, sumw2=1e-4 * y**2)
    w.add_poi(POI(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "sig"}]))
    for name, cons, effects in nuisances:
        w.add_nuisance(name, groups=["syst"], constraint=cons)
        for p, kappa in effects.items():
            w.add_variation(name, p, "ch", kappa=kappa)
    w.write(path)


# ------------------------------------------------------------------ the numpy reference
def _alpha(t):
    x = np.clip(2.0 * t, -1.0, 1.0)
    return x * (3.0 * x**4 - 10.0 * x**2 + 15.0) / 8.0


def reference_nll(theta, sig, bkgs, nuisances, data, constrained):
    """nll of the counting model in numpy: Poisson relative to the saturated model plus
    1/2 theta^2 for the constrained nuisances (theta[0] = mu - 1)."""
    yields = {"sig": np.asarray(sig, float) * (1.0 + theta[0])}
    yields.update({k: np.asarray(v, float).copy() for k, v in bkgs.items()})
    for k, (_, _, effects) in enumerate(nuisances):
        t = theta[1 + k]
        for p, kappa in effects.items():
            kd, ku = (1.0 / kappa, kappa) if np.isscalar(kappa) else kappa
            lu, ld = np.log(ku), np.log(kd)
            avg, hd = 0.5 * (lu - ld), 0.5 * (lu + ld)
            yields[p] = yields[p] * np.exp(t * avg + t * _alpha(t) * hd)
    nu = sum(yields.values())
    n = np.asarray(data, float)
    on = nu > 0
    term = np.where(n > 0, n * np.log(np.where(n > 0, n, 1.0) / np.where(on, nu, 1.0)), 0.0)
    return float(np.sum(np.where(on, nu - n + term, 0.0)) + 0.5 * np.sum(constrained * theta**2))


def reference_fit(sig, bkgs, nuisances, data, x0=None):
    """(theta, errors) by scipy BFGS and a central finite-difference Hessian."""
    constrained = np.array([0.0] + [c == "gaussian" for _, c, _ in nuisances])

    def f(t):
        return reference_nll(t, sig, bkgs, nuisances, data, constrained)

    n = 1 + len(nuisances)
    x0 = np.zeros(n) if x0 is None else x0
    res = minimize(f, x0, method="BFGS", options={"gtol": 1e-9, "xrtol": 1e-12})
    res = minimize(f, res.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-13})
    t, h, eps = res.x, np.zeros((n, n)), 2e-3
    for i in range(n):
        for j in range(n):
            ei, ej = np.eye(n)[i] * eps, np.eye(n)[j] * eps
            h[i, j] = (f(t + ei + ej) - f(t + ei - ej) - f(t - ei + ej) + f(t - ei - ej)) / (
                4 * eps * eps
            )
    return t, np.sqrt(np.diag(np.linalg.inv(h)))


def counting_model(tmp_path, name, sig, bkgs, nuisances, data):
    """The counting model built without Barlow-Beeston (as the numpy reference)."""
    path = tmp_path / f"{name}.h5"
    write_counting(path, sig, bkgs, nuisances, data)
    return build_model(path, bb="none")


# ------------------------------------------------------------------ empty bins
def test_empty_bins_and_processes_without_yield(tmp_path):
    sig = SIG.copy()
    sig[[0, 7]] = 0.0  # signal absent at the edges
    bkgs = {"bkg": BKG.copy(), "other": np.full(8, 300.0)}
    bkgs["bkg"][[2, 6]] = 0.0  # one background absent in two bins
    for b in bkgs.values():
        b[5] = 0.0  # bin 5: no process at all, and no data
    sig[5] = 0.0
    nuis = [("lumi", "gaussian", {"sig": 1.02, "bkg": 1.02}), ("norm", "gaussian", {"bkg": 1.1})]
    truth = sig * 1.3 + sum(bkgs.values())
    data = np.random.default_rng(5).poisson(truth).astype(float)
    assert data[5] == 0.0
    model = counting_model(tmp_path, "empty", sig, bkgs, nuis, data)
    r = fit(model)
    assert r.converged and not r.warnings
    t_ref, e_ref = reference_fit(sig, bkgs, nuis, data)
    np.testing.assert_allclose(r.values, t_ref, atol=2e-5)
    np.testing.assert_allclose(r.errors, e_ref, rtol=1e-4)
    assert r.gof.ndof == 7 - 1  # the empty bin does not count; mu is unconstrained
    assert all(np.isfinite(v) for t in r.impacts for v in t.groups.values())
    # observed events where nothing is expected: refused, naming the bin
    bad = data.copy()
    bad[5] = 3.0
    with pytest.raises(FitError, match=r"without any expected yield: ch\[5\] \(3\)"):
        fit(model, data=bad)
    # non-finite or negative counts: refused, naming the bins
    bad = data.copy()
    bad[[1, 4]] = [np.nan, -2.0]
    with pytest.raises(FitError, match=r"not finite or negative in bins ch\[1\] \(nan\), ch\[4\]"):
        fit(model, data=bad)


# ------------------------------------------------------------------ a huge pull
def test_eight_sigma_pull(tmp_path):
    """Data generated with an (asymmetric) background normalisation at theta = 8: far beyond the
    +-0.5 smooth-interpolation region, strongly constrained by the data."""
    bkgs = {"bkg": BKG}
    nuis = [("norm", "gaussian", {"bkg": (0.93, 1.06)}), ("lumi", "gaussian", {"sig": 1.025})]
    truth = SIG + BKG * 1.06**8
    model = counting_model(tmp_path, "pull", SIG, bkgs, nuis, truth)
    r = fit(model)
    p = r.parameter("norm")
    assert r.converged and p.pull > 7.9 and p.constraint < 0.1
    t_ref, e_ref = reference_fit(SIG, bkgs, nuis, truth, x0=np.array([0.0, 7.0, 0.0]))
    np.testing.assert_allclose(r.values, t_ref, atol=2e-5)
    np.testing.assert_allclose(r.errors, e_ref, rtol=1e-4)
    assert r.gof.chi2 > 1.0  # the prior pulls back: data and constraint disagree


# ------------------------------------------------------------------ degenerate nuisances
def test_identical_nuisances_converge_and_are_reported(tmp_path):
    """Two constrained nuisances with identical effects equal one nuisance with sqrt(2) times
    the log-effect (rotate (a, b) to ((a + b)/sqrt2, (a - b)/sqrt2)): the POI must agree with
    that model, and the degeneracy must be reported naming both."""
    bkgs = {"bkg": BKG}
    data = np.random.default_rng(2).poisson(SIG * 0.8 + BKG * 1.02).astype(float)
    kappa = 1.2
    two = [("a", "gaussian", {"bkg": kappa}), ("b", "gaussian", {"bkg": kappa})]
    one = [("ab", "gaussian", {"bkg": float(np.exp(np.sqrt(2.0) * np.log(kappa)))})]
    m2 = counting_model(tmp_path, "two", SIG, bkgs, two, data)
    m1 = counting_model(tmp_path, "one", SIG, bkgs, one, data)
    r2, r1 = fit(m2), fit(m1)
    assert r2.converged and r1.converged and not r1.warnings
    assert r2.poi().value == pytest.approx(r1.poi().value, abs=1e-6)
    assert r2.poi().error == pytest.approx(r1.poi().error, rel=1e-6)
    a, b = r2.parameter("a"), r2.parameter("b")
    assert (a.value + b.value) / np.sqrt(2) == pytest.approx(r1.parameter("ab").value, abs=1e-6)
    rho = r2.correlation()[1, 2]
    assert rho < -0.999
    assert len(r2.warnings) == 1
    assert "near-degenerate" in r2.warnings[0] and f"a & b {rho:+.6f}" in r2.warnings[0]
    assert "warning: near-degenerate" in r2.summary()


def test_exact_degeneracy_and_parameter_without_effect(tmp_path):
    """Unconstrained nuisances with identical effects leave an exactly flat direction; an
    unconstrained one without any effect has zero curvature. The fit stops at once, the POI is
    still at its minimum, and the message names the flat direction and the parameter."""
    bkgs = {"bkg": BKG}
    data = np.random.default_rng(3).poisson(SIG * 1.2 + BKG).astype(float)
    nuis = [("a", "none", {"bkg": 1.3}), ("b", "none", {"bkg": 1.3}), ("c", "none", {"bkg": 1.0})]
    model = counting_model(tmp_path, "flat", SIG, bkgs, nuis, data)
    with pytest.raises(FitError) as exc:
        fit(model)
    msg = str(exc.value)
    assert "not_positive_definite" in msg and "stationary point" in msg
    assert "no positive curvature (H_ii <= 0) for c" in msg
    assert "0.707 a" in msg and "0.707 b" in msg  # the direction a - b, eigenvalue ~ 0
    info = exc.value.info
    assert info.n_iterations < 15 and info.no_curvature == ["c"]
    assert abs(info.smallest_eigenvalues[0]) < 1e-8
    r = fit(model, strict=False)
    assert not r.converged and r.status == "not_positive_definite"
    # the POI is determined: a single free normalisation gives the same minimum
    ref = [("n", "none", {"bkg": 1.3})]
    t_ref, _ = reference_fit(SIG, bkgs, ref, data)
    assert r.poi().value == pytest.approx(t_ref[0], abs=1e-5)
    assert np.all(np.isfinite(r.values))
    assert any(w.startswith("not computed (NaN) (the fit did not converge") for w in r.warnings)


# ------------------------------------------------------------------ far starts
@pytest.fixture(scope="module")
def demo(demo_archive_master):
    m = build_model(demo_archive_master)
    obs = observation(m.data, m.n_params)
    ref = minimize_newton(m, obs)
    assert ref.info.converged
    return m, obs, ref


_hessian = jax.jit(jax.hessian(structured_nll, argnums=2), static_argnums=0)


def autodiff_hessian(m, obs, theta) -> np.ndarray:
    """The nll's Hessian by JAX autodiff (not the fitter's structured assembly)."""
    return np.asarray(_hessian(m.static, m.arrays, jnp.asarray(theta), obs))


@pytest.mark.parametrize("kind", ["plus5", "minus5", "alternating"])
def test_start_far_from_the_minimum(demo, kind):
    m, obs, ref = demo
    start = {
        "plus5": np.full(m.n_params, 5.0),
        "minus5": np.full(m.n_params, -5.0),
        "alternating": np.where(np.arange(m.n_params) % 2, 5.0, -5.0),
    }[kind]
    h = autodiff_hessian(m, obs, start)
    assert np.linalg.eigvalsh(h)[0] < 0  # the Hessian at the start is not positive definite
    out = minimize_newton(m, obs, start)
    assert out.info.converged and out.info.hessian_positive_definite
    assert out.info.nll == pytest.approx(ref.info.nll, abs=1e-7)
    np.testing.assert_allclose(out.theta, ref.theta, atol=1e-4)
    pure = minimize_newton(m, obs, start, gn_switch=0.0)  # damped Newton from the first step
    assert pure.info.converged and pure.info.nll == pytest.approx(ref.info.nll, abs=1e-7)


def test_not_converged_says_why(demo):
    m, obs, _ = demo
    start = np.full(m.n_params, -5.0)
    with pytest.raises(FitError) as exc:
        fit(m, start=start, max_iter=2, impacts=())
    info = exc.value.info
    msg = str(exc.value)
    for word in ("edm", "gradient norm", "max |g_i|/sqrt(H_ii)", "largest |g_i|/sqrt(H_ii)"):
        assert word in msg
    assert info.worst_gradients[0][0] in msg and info.gradient_norm > 0
    assert "smallest eigenvalues of the unit-diagonal Hessian" in msg
    # the reported eigenvalue is numpy's for the autodiff Hessian at the last point
    out = minimize_newton(m, obs, start, max_iter=2)
    h = autodiff_hessian(m, obs, out.theta)
    s = 1.0 / np.sqrt(np.diag(h))
    lowest = np.linalg.eigvalsh(h * s[:, None] * s[None, :])[0]
    assert out.info.smallest_eigenvalues[0] == pytest.approx(lowest, rel=1e-6, abs=1e-10)
    assert info.smallest_eigen_directions and info.smallest_eigen_directions[0] in msg


# ------------------------------------------------------------------ non-finite numbers
def test_non_finite_inputs_raise_naming_them(demo):
    m, obs, _ = demo
    start = np.zeros(m.n_params)
    start[m.index("lumi")] = np.nan
    with pytest.raises(FitError, match="parameter value not finite: lumi"):
        fit(m, start=start)
    theta0 = np.zeros(m.n_params)
    theta0[m.index("norm_Top")] = np.inf
    with pytest.raises(FitError, match="theta0 not finite: norm_Top"):
        fit(m, observation=observation(m.data, m.n_params, theta0=theta0))
    # finite parameters whose yields overflow: the bins and processes are named
    start = np.zeros(m.n_params)
    start[m.index("norm_Top")] = 1.0e4
    with pytest.raises(FitError, match=r"expected yield not finite in bins mu\[0\] \(Top\)"):
        fit(m, start=start)


def test_nan_in_a_result_raises_naming_it(demo, monkeypatch):
    m, _, _ = demo
    real = fit_api.global_impacts

    def broken(*args, **kw):
        tables = real(*args, **kw)
        tables[0].groups["luminosity"] = float("nan")
        return tables

    monkeypatch.setattr(fit_api, "global_impacts", broken)
    with pytest.raises(FitError, match=r"impacts\[global mW\]\.groups\.luminosity"):
        fit(m, impacts=("global",))
    r = fit(m, impacts=("global",), strict=False)
    assert r.warnings == ["not computed (NaN): impacts[global mW].groups.luminosity"]


@pytest.mark.parametrize("where", ["minimum", "far"])
def test_smallest_eigenvalues_lanczos_path(demo, where):
    """The shift-invert Lanczos path (used above a few hundred parameters) against numpy's
    eigvalsh of the autodiff Hessian: at the minimum (positive definite, shift 0) and at a far
    point (indefinite: the shift ladder)."""
    from wmass_archive.fit import diagnostics, engine

    m, obs, ref = demo
    theta = ref.theta if where == "minimum" else np.full(m.n_params, -5.0)
    _, _, hs, _ = engine.value_grad_hess(m.static, m.arrays, jnp.asarray(theta), obs)
    free = np.ones(m.n_params, dtype=bool)
    free[m.index("lumi")] = False
    got = diagnostics.hessian_eigen(m, hs, free, k=3, dense_below=0)
    h = autodiff_hessian(m, obs, theta)
    curved = free & (np.diag(h) > 0)  # the others are reported by name, not in the spectrum
    assert got.no_curvature == [m.parameter_names[i] for i in np.flatnonzero(free & ~curved)]
    assert bool(got.no_curvature) == (where == "far")
    idx = np.flatnonzero(curved)
    h = h[np.ix_(idx, idx)]
    s = 1.0 / np.sqrt(np.diag(h))
    want = np.linalg.eigvalsh(h * s[:, None] * s[None, :])[:3]
    assert (want[0] < 0) == (where == "far")
    np.testing.assert_allclose(got.values, want, rtol=1e-7, atol=1e-10)
    assert len(got.directions) == 3 and "lumi" not in " ".join(got.directions)
