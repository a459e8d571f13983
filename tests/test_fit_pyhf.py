"""Best-fit values and uncertainties against pyhf on models it can express: a rate POI
(normfactor), symmetric lnN nuisances (normsys, whose code1 interpolation equals the
log-normal for symmetric kappas), and Barlow-Beeston-lite as pyhf's staterror (normal constraint
on the total) or shapesys (Poisson constraint, one sample). pyhf's minimum is polished with
Newton steps of its own (JAX) gradient and Hessian, and its uncertainties are the square roots of
the diagonal of the inverse of that Hessian."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.fit import fit
from wmass_archive.model import build_model
from wmass_archive.model.synthetic import write_counting_archive

pyhf = pytest.importorskip("pyhf")


def _pyhf_spec(info: dict, stat: str) -> dict:
    yields = info["yields"]
    samples = []
    for name, nom in yields.items():
        mods = []
        if name == "sig":
            mods.append({"name": "mu", "type": "normfactor", "data": None})
        for nuis, per in info["lnN"].items():
            if name in per:
                k = per[name]
                mods.append({"name": nuis, "type": "normsys", "data": {"hi": k, "lo": 1.0 / k}})
        err = (np.sqrt(info["mc_fraction"]) * nom).tolist()
        mods.append({"name": "mcstat", "type": stat, "data": err})
        samples.append({"name": name, "data": nom.tolist(), "modifiers": mods})
    return {"channels": [{"name": "ch", "samples": samples}]}


def _pyhf_fit(spec: dict, data: np.ndarray, names: list[str]):
    import jax
    import jax.numpy as jnp

    pyhf.set_backend("jax")
    try:
        model = pyhf.Model(spec, poi_name="mu")
        d = jnp.asarray(np.concatenate([data, model.config.auxdata]))
        x = jnp.asarray(pyhf.infer.mle.fit(d, model))

        def f(p):
            return -model.logpdf(p, d)[0]

        grad, hess = jax.jit(jax.grad(f)), jax.jit(jax.hessian(f))
        for _ in range(5):  # polish the optimiser's minimum with Newton steps
            x = x - jnp.linalg.solve(hess(x), grad(x))
        cov = np.linalg.inv(np.asarray(hess(x)))
        x = np.asarray(x)
        idx = [model.config.par_slice(n).start for n in names]
        return x[idx], np.sqrt(np.diag(cov))[idx], model, d, f
    finally:
        pyhf.set_backend("numpy")


@pytest.mark.parametrize(
    "stat, bb, kw",
    [
        # staterror: normal constraint on the total of both samples (bb="normal")
        ("staterror", "normal", {"backgrounds": {"bkg": np.linspace(60.0, 30.0, 6)}}),
        # shapesys on the only sample: Poisson constraint with tau = N^2 / sumw2 (bb="gamma")
        ("shapesys", "gamma", {"backgrounds": {}, "lnN": {"lumi": {"sig": 1.05}}}),
    ],
)
def test_agrees_with_pyhf(tmp_path, stat, bb, kw):
    info = write_counting_archive(
        tmp_path / "c.h5", signal=[20.0, 35.0, 50.0, 40.0, 25.0, 12.0], mc_fraction=0.01, **kw
    )
    m = build_model(tmp_path / "c.h5", bb=bb)
    r = fit(m, impacts=(), edm_tol=1e-14)
    values, errors, _, _, _ = _pyhf_fit(_pyhf_spec(info, stat), info["data"], m.parameter_names)
    mine = r.values.copy()
    mine[0] += 1.0  # mu = 1 + theta
    np.testing.assert_allclose(mine, values, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r.errors, errors, rtol=1e-4)
    assert r.poi("mu").physical_value == pytest.approx(values[0], rel=1e-4)


# 14 s (pyhf's jax backend compiled once more); the fit against pyhf's with MC statistics is in
# the fast set: test_agrees_with_pyhf (staterror and shapesys)
@pytest.mark.slow
def test_agrees_with_pyhf_without_mc_stat(tmp_path):
    info = write_counting_archive(tmp_path / "c.h5", mc_fraction=0.0)
    m = build_model(tmp_path / "c.h5", bb="gamma")  # no sumw2: Barlow-Beeston inactive
    spec = _pyhf_spec(info, "staterror")
    for s in spec["channels"][0]["samples"]:
        s["modifiers"] = [x for x in s["modifiers"] if x["type"] != "staterror"]
    r = fit(m, impacts=(), edm_tol=1e-14)
    values, errors, model, d, f = _pyhf_fit(spec, info["data"], m.parameter_names)
    mine = r.values.copy()
    mine[0] += 1.0
    np.testing.assert_allclose(mine, values, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r.errors, errors, rtol=1e-4)
    # without auxiliary per-bin parameters the nll differences agree exactly
    import jax.numpy as jnp

    from wmass_archive.fit import engine
    from wmass_archive.fit.likelihood import observation

    pyhf.set_backend("jax")
    try:
        order = [model.config.par_slice(n).start for n in m.parameter_names]
        th = np.array([0.2, 0.7, -0.4])
        p = np.zeros(len(order))
        p[order] = th + np.array([1.0, 0.0, 0.0])
        p0 = np.zeros(len(order))
        p0[order] = [1.0, 0.0, 0.0]
        obs = observation(info["data"], m.n_params)
        ours = float(engine.nll(m.static, m.arrays, jnp.asarray(th), obs)) - float(
            engine.nll(m.static, m.arrays, jnp.zeros(3), obs)
        )
        assert ours == pytest.approx(float(f(jnp.asarray(p)) - f(jnp.asarray(p0))), rel=1e-10)
    finally:
        pyhf.set_backend("numpy")
