"""The likelihood of format 1.1 (docs/format.md sections 15.3 and 15.4) against independent
references: the interpolations against pyhf's own interpolators, the poisson constraint
against scipy's Poisson log-pmf, the generic model's yields against yields assembled from
pyhf's interpolators, its fit against pyhf's fit of the same workspace, and its autodiff
Hessian against the structured exact Hessian of the 1.0 path. A 1.0 archive fits exactly as
before format 1.1 was added."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import poisson

from wmass_archive.archive import POI, ArchiveWriter, Axis
from wmass_archive.fit import engine, fit
from wmass_archive.fit.likelihood import observation
from wmass_archive.fit.toys import run_toys, toy
from wmass_archive.jax_config import jax, jnp
from wmass_archive.model import ModelError, build_model
from wmass_archive.model.modifiers import (
    additive_delta,
    multiplicative_factor,
    poisson_constraint,
)
from wmass_archive.model.synthetic import write_counting_archive, write_folded_archive

pyhf = pytest.importorskip("pyhf")
from pyhf.interpolators import _slow_code2, code0, code1, code2, code4, code4p  # noqa: E402


def _random_sets(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    nom = rng.uniform(1.0, 30.0, n)
    up = nom * rng.uniform(0.3, 1.9, n)
    down = nom * rng.uniform(0.3, 1.9, n)
    t = np.concatenate([rng.uniform(-3.0, 3.0, 60), [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]])
    return nom, up, down, t


def _pyhf(cls, down, nom, up, t) -> np.ndarray:
    """pyhf's interpolator ``cls`` on one histogram set: (n_t, n_bins)."""
    out = cls(np.array([[[down, nom, up]]]), subscribe=False)(np.array([t]))
    return np.asarray(out)[0, 0]


# ----------------------------------------------------------------------------- interpolations
@pytest.mark.parametrize("code,cls", [(0, code0), (2, code2), (4, code4p)])
def test_additive_interpolation_matches_pyhf(code, cls):
    nom, up, down, t = _random_sets(code)
    ref = _pyhf(cls, down, nom, up, t)
    got = np.asarray(additive_delta(code, t[:, None], (up - nom)[None], (down - nom)[None]))
    inside = np.abs(t) <= 1.0
    np.testing.assert_allclose(got[inside], ref[inside], rtol=0, atol=1e-12 * nom.max())
    if code == 2:
        # outside |t| <= 1 the format continues code 2 linearly from its value at t = +-1 (as
        # ROOT's HistFactory does); pyhf's reference ``_slow_code2`` extrapolates the same
        # line without that value, i.e. it is discontinuous at t = +-1 (pyhf issue #2729)
        slow = _slow_code2(None)
        for i in np.flatnonzero(~inside):
            want = [
                slow.summand(d, m, u, t[i]) + ((u - m) if t[i] > 1 else (d - m))
                for d, m, u in zip(down, nom, up, strict=True)
            ]
            np.testing.assert_allclose(got[i], want, rtol=0, atol=1e-12 * nom.max())
    else:
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * nom.max())


@pytest.mark.parametrize("code,cls", [(0, code0), (1, code1), (2, code2), (4, code4)])
def test_multiplicative_interpolation_matches_pyhf(code, cls):
    nom, up, down, t = _random_sets(10 + code)
    hi, lo = up / nom, down / nom
    ref = _pyhf(cls, lo, np.ones_like(hi), hi, t)
    if code in (0, 2):  # pyhf's additive interpolators on the ratios give F - 1
        ref = 1.0 + ref
    got = np.asarray(multiplicative_factor(code, t[:, None], hi[None], lo[None]))
    inside = np.abs(t) <= 1.0 if code == 2 else np.ones(t.size, bool)  # code 2: see above
    np.testing.assert_allclose(got[inside], ref[inside], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,code", [("add", 4), ("add", 2), ("mult", 4), ("mult", 2)])
def test_smooth_codes_are_twice_differentiable_at_the_boundaries(kind, code):
    """Codes 2 (value and slope) and 4 (value, slope, curvature) join their outer branches
    continuously at t = +-1: derivatives from both sides agree."""
    hi, lo = 1.3, 0.8

    def f(t):
        if kind == "add":
            return additive_delta(code, t, hi - 1.0, lo - 1.0)
        return multiplicative_factor(code, t, hi, lo)

    orders = [f, jax.grad(f)] + ([jax.grad(jax.grad(f))] if code == 4 else [])
    orders = [jax.jit(g) for g in orders]
    for g in orders:
        for b in (-1.0, 1.0):
            left, right = float(g(b - 1e-9)), float(g(b + 1e-9))
            assert abs(left - right) < 1e-6, (kind, code, b, left, right)


@pytest.mark.parametrize("tau", [4.0, 25.0, 900.0])
@pytest.mark.parametrize("gamma0", [1.0, 0.75, 1.4])
def test_poisson_constraint_matches_scipy(tau, gamma0):
    """The term equals differences of -ln Poisson(tau gamma0 | tau gamma) (scipy), with the
    auxiliary count tau gamma0 an integer; it is 0 at gamma = gamma0 and +inf at gamma <= 0."""
    s = np.sqrt(tau)
    n_aux = round(tau * gamma0)
    gamma0 = n_aux / tau
    gammas = np.array([0.2, 0.7, 0.95, 1.0, 1.05, 1.3, 2.5]) * gamma0
    theta = s * (gammas - 1.0)
    theta0 = s * (gamma0 - 1.0)

    def term(th: float) -> float:
        one = jnp.array([True])
        return float(poisson_constraint(jnp.array([th]), jnp.array([theta0]), tau, one))

    ours = np.array([term(x) for x in theta])
    ref = -(poisson.logpmf(n_aux, tau * gammas) - poisson.logpmf(n_aux, tau * gamma0))
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)
    assert term(theta0) == 0.0
    assert term(-1.0001 * s) == np.inf  # gamma < 0
    # its curvature at the minimum is 1 / gamma0 (1 for the nominal gamma0 = 1)
    assert abs(term(theta0 + 1e-3) - 0.5e-6 / gamma0) < 1e-9


# ----------------------------------------------------------------------------- generic model
def _tiny(path, *, clip: bool = False):
    """One channel of 3 bins: ``b`` with an additive (code 4) and a multiplicative (code 1)
    modifier, ``s`` with a linear one and a rate POI; ``clip``: a down shift that empties bin
    0 of ``b`` at t = -1 and beyond."""
    w = ArchiveWriter(
        title="tiny 1.1",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "tests", "producer_version": "0"},
    )
    w.add_channel("c", np.array([12.0, 14.0, 9.0]), axes=[Axis.regular(3, 0, 3, name="x")])
    w.add_process("s", kind="signal")
    w.add_process("b")
    nom = {"s": np.array([2.0, 5.0, 3.0]), "b": np.array([10.0, 9.0, 6.0])}
    for p, v in nom.items():
        w.set_yield(p, "c", v, sumw2=0.05 * v)
    w.add_poi(POI(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "s"}]))
    for n in ("h", "k", "l"):
        w.add_nuisance(n, prior_scale=0.5 if n == "k" else 1.0)
    down = np.array([0.0 if clip else 8.0, 8.5, 6.5])
    w.add_additive("h", "b", "c", up=np.array([12.0, 9.5, 5.0]), down=down, code=4)
    w.add_multiplicative("k", "b", "c", hi=np.array([1.2, 1.1, 1.3]), lo=0.85, code=1)
    w.add_linear("l", "s", "c", coeff=np.array([0.1, 0.3]), bins=[0, 2])
    w.write(path)
    return nom, down


def test_generic_yields_against_pyhf_interpolators(tmp_path):
    """nu = rho * max(0, N + Delta) * F * (1 + c t) (section 15.3), assembled from pyhf's
    code4p and code1 interpolators, at random parameter values."""
    nom, down = _tiny(tmp_path / "t.h5")
    m = build_model(tmp_path / "t.h5")
    assert m.static.generic and m.static.n_sparse == 0 and m.static.bb == "gamma"
    up, hi, lo = np.array([12.0, 9.5, 5.0]), np.array([1.2, 1.1, 1.3]), np.full(3, 0.85)
    rng = np.random.default_rng(3)
    for _ in range(5):
        th = rng.normal(0.0, 1.2, m.n_params)
        mu, h, k, ell = th[m.index("mu")] + 1.0, th[m.index("h")], th[m.index("k")], th[3]
        b = nom["b"] + _pyhf(code4p, down, nom["b"], up, np.array([h]))[0]
        b = np.maximum(b, 0.0) * _pyhf(code1, lo, np.ones(3), hi, np.array([0.5 * k]))[0]
        s = max(mu, 0.0) * nom["s"] * (1.0 + np.array([0.1, 0.0, 0.3]) * ell).clip(0.0)
        got = m.expected_by_process(th)
        np.testing.assert_allclose(got, [s, b], rtol=1e-12)


def test_clipped_slot_is_exactly_zero_without_nan(tmp_path):
    nom, _ = _tiny(tmp_path / "t.h5", clip=True)
    m = build_model(tmp_path / "t.h5")
    th = np.zeros(m.n_params)
    th[m.index("h")] = -1.5  # N + Delta = 10 - 1.5 * 10 < 0 in bin 0
    by = m.expected_by_process(th)
    assert by[1, 0] == 0.0 and by[1, 1] > 0
    ell, active = m.log_yields(th)
    assert not active[3] and ell[3] == 0.0 and np.all(np.isfinite(ell))
    st, ar = m.static, m.arrays
    obs = observation(np.array([3.0, 14.0, 9.0]), m.n_params)
    f, g, hs, _ = engine.value_grad_hess(st, ar, jnp.asarray(th), obs)
    assert np.isfinite(float(f)) and np.all(np.isfinite(np.asarray(g)))
    assert np.all(np.isfinite(np.asarray(hs.dd)))
    # the gradient of ln nu of the clipped slot is zero, not NaN
    grad_ell = jax.grad(lambda t: _ell(m, t)[3])(jnp.asarray(th))
    assert np.all(np.asarray(grad_ell) == 0.0)


def _ell(m, theta):
    from wmass_archive.model.expected import log_yields

    return log_yields(m.static, m.arrays, theta)[0]


def test_mc_stat_and_generic_flag(tmp_path):
    _tiny(tmp_path / "t.h5")
    path = tmp_path / "n.h5"
    w = ArchiveWriter(
        title="mc_stat",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "tests", "producer_version": "0"},
        mc_stat="normal",
    )
    w.add_channel("c", np.array([3.0]), axes=[Axis.regular(1, 0, 1, name="x")])
    w.add_process("p")
    w.set_yield("p", "c", [3.0], sumw2=[0.3])
    w.add_nuisance("n")
    w.add_variation("n", "p", "c", kappa=1.1)
    w.write(path)
    assert build_model(path).static.bb == "normal"  # the archive's mc_stat
    assert fit(path, impacts=(), gof=False).model.bb == "normal"
    assert build_model(path, bb="gamma").static.bb == "gamma"  # an explicit choice wins
    assert not build_model(path).static.generic  # mc_stat alone needs no generic model
    with pytest.raises(ModelError, match="needs the generic model"):
        build_model(tmp_path / "t.h5", generic=False)


# ----------------------------------------------------------------------------- pyhf fit
CH = {
    "A": dict(
        sig=np.array([5.0, 12.0, 9.0, 3.0]),
        bkg=np.array([50.0, 42.0, 30.0, 20.0]),
        bkg2=np.array([10.0, 12.0, 8.0, 6.0]),
    ),
    "B": dict(
        sig=np.array([4.0, 8.0, 2.0]),
        bkg=np.array([30.0, 25.0, 18.0]),
        bkg2=np.array([6.0, 5.0, 4.0]),
    ),
}
HIST_UP = {"A": np.array([1.05, 1.08, 0.97, 1.1]), "B": np.array([1.06, 1.0, 0.95])}
HIST_DN = {"A": np.array([0.96, 0.9, 1.02, 0.93]), "B": np.array([0.97, 0.98, 1.03])}
STAT = {"A": np.array([2.0, 2.5, 2.2, 1.5]), "B": np.array([1.8, 1.5, 1.2])}  # on bkg
SHAPESYS = {"A": np.array([1.0, 1.5, 1.0, 0.8]), "B": np.array([0.7, 0.8, 0.6])}  # on bkg2
DATA = {"A": np.array([70.0, 75.0, 45.0, 31.0]), "B": np.array([44.0, 41.0, 22.0])}
LUMI_SIGMA = 0.02


def pyhf_workspace() -> dict:
    """histosys (code4p), normsys (code4), staterror, shapesys, normfactor POI and lumi."""
    channels = []
    for c, y in CH.items():
        lumi = {"name": "lumi", "type": "lumi", "data": None}
        hs = {
            "hi_data": (y["bkg"] * HIST_UP[c]).tolist(),
            "lo_data": (y["bkg"] * HIST_DN[c]).tolist(),
        }
        samples = [
            {
                "name": "sig",
                "data": y["sig"].tolist(),
                "modifiers": [
                    {"name": "mu", "type": "normfactor", "data": None},
                    {"name": "sig_norm", "type": "normsys", "data": {"hi": 1.07, "lo": 0.9}},
                    lumi,
                ],
            },
            {
                "name": "bkg",
                "data": y["bkg"].tolist(),
                "modifiers": [
                    {"name": "bkg_shape", "type": "histosys", "data": hs},
                    {"name": f"stat_{c}", "type": "staterror", "data": STAT[c].tolist()},
                    lumi,
                ],
            },
            {
                "name": "bkg2",
                "data": y["bkg2"].tolist(),
                "modifiers": [
                    {"name": f"shp_{c}", "type": "shapesys", "data": SHAPESYS[c].tolist()},
                    {"name": "bkg2_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.85}},
                ],
            },
        ]
        channels.append({"name": c, "samples": samples})
    lumi_par = {
        "name": "lumi",
        "auxdata": [1.0],
        "sigmas": [LUMI_SIGMA],
        "inits": [1.0],
        "bounds": [[0.5, 1.5]],
    }
    return {"channels": channels, "parameters": [lumi_par]}


def write_equivalent_archive(path) -> dict[str, float]:
    """The same likelihood in format 1.1; returns {parameter: coefficient c} of the parameters
    whose pyhf value is 1 + c theta (mu: c = 1)."""
    w = ArchiveWriter(
        title="pyhf-equivalent",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "tests", "producer_version": "0"},
        mc_stat="none",  # the MC statistics are pyhf's staterror, written explicitly
    )
    w.add_poi(POI(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "sig"}]))
    for p in ("sig", "bkg", "bkg2"):
        w.add_process(p, kind="signal" if p == "sig" else "background")
    for n in ("sig_norm", "bkg_shape", "bkg2_norm", "lumi"):
        w.add_nuisance(n)
    coeff = {"mu": 1.0, "lumi": LUMI_SIGMA}
    for c, y in CH.items():
        nb = y["sig"].size
        w.add_channel(c, DATA[c], axes=[Axis.regular(nb, 0, nb, name="x")])
        for p, v in y.items():
            w.set_yield(p, c, v, sumw2=np.zeros(nb))
        w.add_multiplicative("sig_norm", "sig", c, hi=1.07, lo=0.9, code=4)
        w.add_multiplicative("bkg2_norm", "bkg2", c, hi=1.2, lo=0.85, code=4)
        up, down = y["bkg"] * HIST_UP[c], y["bkg"] * HIST_DN[c]
        w.add_additive("bkg_shape", "bkg", c, up=up, down=down, code=4)
        for p in ("sig", "bkg"):
            w.add_linear("lumi", p, c, coeff=LUMI_SIGMA)
        # staterror: gamma = 1 + sigma_rel theta (gaussian); shapesys: gamma = 1 + theta /
        # sqrt(tau), tau = (N / err)^2 (poisson)
        rel = STAT[c] / y["bkg"]
        tau = (y["bkg2"] / SHAPESYS[c]) ** 2
        for b in range(nb):
            w.add_nuisance(f"stat_{c}[{b}]")
            w.add_linear(f"stat_{c}[{b}]", "bkg", c, coeff=rel[b], bins=[b])
            w.add_nuisance(f"shp_{c}[{b}]", constraint="poisson", tau=float(tau[b]))
            w.add_linear(f"shp_{c}[{b}]", "bkg2", c, coeff=1.0 / np.sqrt(tau[b]), bins=[b])
            coeff[f"stat_{c}[{b}]"] = rel[b]
            coeff[f"shp_{c}[{b}]"] = 1.0 / np.sqrt(tau[b])
    w.write(path)
    return coeff


def pyhf_fit() -> tuple[dict[str, float], dict[str, float]]:
    """pyhf's best fit and Hessian uncertainties ({name or name[i]: value}), the minimum
    polished with Newton steps of pyhf's own JAX gradient and Hessian."""
    pyhf.set_backend("jax")
    try:
        model = pyhf.Model(pyhf_workspace(), poi_name="mu")
        obs = np.concatenate([DATA[c] for c in model.config.channels])
        d = jnp.asarray(np.concatenate([obs, model.config.auxdata]))
        x = jnp.asarray(pyhf.infer.mle.fit(d, model))

        def f(p):
            return -model.logpdf(p, d)[0]

        grad, hess = jax.jit(jax.grad(f)), jax.jit(jax.hessian(f))
        for _ in range(8):
            x = x - jnp.linalg.solve(hess(x), grad(x))
        err = np.sqrt(np.diag(np.linalg.inv(np.asarray(hess(x)))))
        x = np.asarray(x)
        values, errors = {}, {}
        for name in model.config.par_order:
            sl = model.config.par_slice(name)
            for k, i in enumerate(range(sl.start, sl.stop)):
                key = name if sl.stop - sl.start == 1 else f"{name}[{k}]"
                values[key], errors[key] = float(x[i]), float(err[i])
        return values, errors
    finally:
        pyhf.set_backend("numpy")


@pytest.fixture(scope="module")
def pyhf_case(tmp_path_factory):
    path = tmp_path_factory.mktemp("pyhf") / "eq.h5"
    coeff = write_equivalent_archive(path)
    model = build_model(path)
    return model, coeff, fit(model, edm_tol=1e-14, impacts=("nominal", "global"))


# 18 s (pyhf's fit with its jax backend); in the fast set, a generic model's fit against pyhf's:
# tests/test_import_pyhf.py::test_fit_agrees_with_pyhf (every pyhf modifier type), and its
# yields against pyhf's interpolators: test_generic_yields_against_pyhf_interpolators
@pytest.mark.slow
def test_fit_matches_pyhf(pyhf_case):
    model, coeff, r = pyhf_case
    assert r.converged and model.static.generic and model.static.bb == "none"
    values, errors = pyhf_fit()
    ours = {p.name: p for p in r.parameters}
    assert set(ours) == set(values)
    for name, v in values.items():
        c = coeff.get(name)
        val = ours[name].value if c is None else 1.0 + c * ours[name].value
        err = ours[name].error * (1.0 if c is None else c)
        assert abs(val - v) <= 1e-4 * max(abs(v), errors[name]), (name, val, v)
        assert abs(err - errors[name]) <= 1e-4 * errors[name], (name, err, errors[name])


def test_generic_model_impacts_intervals_asimov_and_toys(pyhf_case):
    """Everything downstream of the Hessian works on the generic model: impacts, profile
    intervals, Asimov fits (also away from 0 for the poisson parameters), toys."""
    model, _, r = pyhf_case
    assert {t.kind for t in r.impacts} == {"nominal", "global"}
    for t in r.impacts:
        assert t.total == pytest.approx(r.pois[0].error, rel=1e-9)
        assert np.isfinite(list(t.groups.values())).all()
    th = np.zeros(model.n_params)
    th[model.index("mu")] = 0.3
    th[model.index("shp_A[1]")] = -0.8
    th[model.index("bkg_shape")] = 0.5
    a = fit(model, asimov=th, impacts=(), intervals=["mu"], edm_tol=1e-14)
    np.testing.assert_allclose([p.value for p in a.parameters], th, atol=1e-6)
    lo, hi = a.pois[0].interval
    assert lo < 0.3 < hi and (hi - lo) / 2 == pytest.approx(a.pois[0].error, rel=0.15)
    toys = run_toys(model, 2, seed=5)
    assert all(toys.converged)
    # a toy's poisson global observable is an auxiliary count: tau gamma0 is an integer
    t = toy(model, seed=9)
    tau = model.poisson_tau
    on = tau > 0
    assert on.sum() == 7 and np.all(np.asarray(t.theta0)[~model.constrained] == 0)
    aux = tau[on] * (1.0 + np.asarray(t.theta0)[on] / np.sqrt(tau[on]))
    np.testing.assert_allclose(aux, np.round(aux), atol=1e-9)


# ----------------------------------------------------------------------------- against 1.0
def _twin_check(path) -> None:
    """The generic path (autodiff Hessian) on a 1.0 archive reproduces the structured path."""
    a, b = build_model(path), build_model(path, generic=True)
    assert not a.static.generic and b.static.generic and b.static.n_sparse == 0
    th = np.random.default_rng(0).normal(0.0, 0.5, a.n_params)
    np.testing.assert_allclose(b.expected_by_process(th), a.expected_by_process(th), rtol=1e-13)
    ra, rb = fit(a, impacts=("nominal",)), fit(b, impacts=("nominal",))
    np.testing.assert_allclose(
        [p.value for p in rb.parameters], [p.value for p in ra.parameters], atol=1e-9
    )
    sd = np.sqrt(np.diag(ra.covariance))
    np.testing.assert_allclose(
        rb.covariance / np.outer(sd, sd), ra.covariance / np.outer(sd, sd), atol=1e-9
    )
    ga, gb = ra.impacts[0].groups, rb.impacts[0].groups
    assert gb == pytest.approx(ga, rel=1e-8, abs=1e-12)


def test_generic_path_reproduces_structured_hessian_counting(tmp_path):
    write_counting_archive(tmp_path / "c.h5", shapes={"shp": ("bkg", [0.01, -0.02, 0.03, 0, 0.05])})
    _twin_check(tmp_path / "c.h5")


@pytest.mark.slow  # JIT of a folded model twice
def test_generic_path_reproduces_structured_hessian_folded(tmp_path):
    write_folded_archive(tmp_path / "f.h5", two_channels=True, pdf_type="replicas", true_theta=0.3)
    _twin_check(tmp_path / "f.h5")


#: fit of a 1.0 counting archive computed with the code before format 1.1 was added
#: (float.hex of theta and the Hessian errors of mu, lumi, bkg_norm, shp; and the nll)
REF_THETA = ["0x1.871d0a6f1b6b5p-4", "-0x1.a141ce68ca876p-7", "-0x1.f6afa42cde564p-5",
             "0x1.41aceb16360a3p-3"]  # fmt: skip
REF_ERROR = ["0x1.be626a4aaf240p-3", "0x1.ff2927e2aa0cbp-1", "0x1.ec323368500c3p-1",
             "0x1.f707b0c080c0dp-1"]  # fmt: skip
REF_NLL = "0x1.b382dff8196f4p-2"


def test_1_0_archive_fits_as_before(tmp_path):
    path = tmp_path / "c.h5"
    write_counting_archive(path, shapes={"shp": ("bkg", [0.01, -0.02, 0.03, 0.0, 0.05])})
    m = build_model(path)
    assert not m.static.generic and "generic" not in m.info.structure
    assert "ext" not in m.arrays and "poisson_tau" not in m.arrays
    r = fit(m, impacts=())
    assert r.minimize.n_iterations == 2
    np.testing.assert_allclose(
        [p.value for p in r.parameters], [float.fromhex(x) for x in REF_THETA], rtol=1e-12
    )
    np.testing.assert_allclose(
        [p.error for p in r.parameters], [float.fromhex(x) for x in REF_ERROR], rtol=1e-12
    )
    assert r.nll == pytest.approx(float.fromhex(REF_NLL), rel=1e-12)
