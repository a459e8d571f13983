"""The Hessian of generic models built from their entries (fit/generic_hessian.py) equals JAX's
Hessian of the nll, on imported likelihoods with every modifier type, negative sample yields,
clipped yields, rate POIs on their bound and both Barlow-Beeston modes it covers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyhf")

from wmass_archive.fit import engine, generic_hessian, hessian, observation  # noqa: E402
from wmass_archive.fit.toys import toy  # noqa: E402
from wmass_archive.interop.pyhf import import_pyhf  # noqa: E402
from wmass_archive.jax_config import jax, jnp  # noqa: E402
from wmass_archive.model import build_model  # noqa: E402


def _reference(model, theta, obs):
    """(nll, gradient, Hessian) by JAX's automatic differentiation of the nll."""
    st, ar = model.static, model.arrays

    def f(t):
        return hessian._generic_nll(st, ar, t, obs)

    return jax.jit(lambda t: (f(t), jax.grad(f)(t), jax.hessian(f)(t)))(theta)


def _check(model, points, obs=None):
    st, ar = model.static, model.arrays
    assert generic_hessian.applies(st)
    obs = obs or observation(model.data, model.n_params)
    for th in points:
        th = jnp.asarray(th)
        f0, g0, h0 = _reference(model, th, obs)
        f1, g1, hs, _ = engine.value_grad_hess(st, ar, th, obs, 0.0)
        h1 = np.asarray(hs.dd)
        scale = np.sqrt(np.outer(np.abs(np.diag(h0)), np.abs(np.diag(h0)))) + 1e-300
        assert float(f1) == pytest.approx(float(f0), rel=1e-12, abs=1e-10)
        assert np.max(np.abs(np.asarray(g1 - g0))) < 1e-9 * max(1.0, float(np.max(np.abs(g0))))
        assert np.max(np.abs(h1 - np.asarray(h0)) / scale) < 1e-10
        # the Gauss-Newton matrix: J^T diag(max(phi'', 0)) J + constraints, J of the bin yields
        _, _, hg, _ = engine.value_grad_hess(st, ar, th, obs, 1.0)
        nu_bin = hessian._bin_yields(st, ar, th)
        jac = jax.jit(jax.jacfwd(lambda t: hessian._bin_yields(st, ar, t)))(th)
        d2 = hessian.bin_nll_terms(st, ar, nu_bin, obs)[2]
        cons = ar["constrained"] + hessian.poisson_constraint_d2(
            th, obs.theta0, ar["poisson_tau"], ar["poisson_on"]
        )
        ref = np.asarray(jac.T @ (jnp.maximum(d2, 0.0)[:, None] * jac) + jnp.diag(cons))
        assert np.max(np.abs(np.asarray(hg.dd) - ref) / scale) < 1e-10


def _points(model, rng, n=2, spread=0.4):
    lo, hi = model.bounds.T
    pts = [np.zeros(model.n_params)]
    for _ in range(n):
        pts.append(np.clip(spread * rng.normal(size=model.n_params), lo + 1e-6, hi - 1e-6))
    return [np.clip(p, lo, hi) for p in pts]


# 17 s (JAX's Hessian of a 4-channel model compiled); in the fast set, the generic Hessian
# against JAX's on every extended modifier kind: test_clipped_yields_and_barlow_beeston, and
# negative sample yields fitted with pyhf's uncertainties (to 1e-4, from this Hessian):
# tests/test_import_pyhf_semantics.py::test_negative_sample_yields_fit_equals_pyhf
@pytest.mark.slow
def test_published_like_with_negative_yields(tmp_path):
    from _pyhf_published import published_like

    bkg, patch = published_like(
        seed=3, n_bins=40, n_channels=4, n_stat_channels=2, n_shapesys_channels=1
    )
    path = tmp_path / "p.h5"
    import_pyhf(bkg, path, patches=[patch])
    model = build_model(path)
    rng = np.random.default_rng(4)
    pts = _points(model, rng, n=1)
    at_bound = pts[1].copy()
    at_bound[model.index("mu_SIG")] = model.bounds[model.index("mu_SIG"), 0]  # mu = 0
    _check(model, [*pts, at_bound])
    _check(model, pts[:1], obs=toy(model, 7, pts[1]))  # other global observables


@pytest.mark.parametrize(
    "bb",
    [
        "gamma",
        # 6 s; the Hessian's assembly is the same as with "gamma" (above), and the bin terms of
        # "normal" are checked in tests/test_fit_likelihood.py::test_bb_profile_is_the_minimum
        pytest.param("normal", marks=pytest.mark.slow),
    ],
)
def test_clipped_yields_and_barlow_beeston(arcs, bb):
    """The 'modifiers' archive of tests/refit_archives.py: every extended modifier kind, yields
    clipped at 0 (format 1.1), with Barlow-Beeston lite."""
    model = build_model(arcs["modifiers"], bb=bb)
    rng = np.random.default_rng(5)
    _check(model, _points(model, rng, spread=1.5))


def test_not_applied_where_it_does_not_hold(arcs):
    """bb='combine' (the width depends on theta) keeps JAX's Hessian."""
    model = build_model(arcs["modifiers"], bb="combine")
    assert not generic_hessian.applies(model.static)
