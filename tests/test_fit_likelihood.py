"""The likelihood's pure functions against hand calculations and numerical minimisation, and the
structured gradient/Hessian against JAX autodiff of the plain nll."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from wmass_archive.fit.hessian import dense_hessian, nll, value_grad_hess
from wmass_archive.fit.likelihood import (
    beta_gamma,
    beta_normal,
    bin_terms,
    constraint_nll,
    observation,
    poisson_saturated,
)
from wmass_archive.jax_config import jax, jnp
from wmass_archive.model import build_model
from wmass_archive.model.synthetic import write_counting_archive, write_folded_archive


def test_poisson_saturated_hand_values():
    nu, n = jnp.array([10.0, 3.0, 2.5]), jnp.array([12.0, 0.0, 2.5])
    expect = [10 - 12 + 12 * math.log(12 / 10), 3.0, 0.0]
    np.testing.assert_allclose(poisson_saturated(nu, n), expect, rtol=1e-14)
    assert float(constraint_nll(jnp.array([1.0, 2.0, -1.0]), jnp.zeros(3),
                                jnp.array([1.0, 0.0, 1.0]))) == 1.0  # fmt: skip


def _unprofiled(beta, nu, n, k, b0, mode):
    p = beta * nu - n + (n * math.log(n / (beta * nu)) if n > 0 else 0.0)
    if mode == "gamma":
        return p + k * (beta - b0) - k * b0 * math.log(beta / b0)
    return p + 0.5 * k * (beta - b0) ** 2


@pytest.mark.parametrize("mode", ["gamma", "normal"])
@pytest.mark.parametrize(
    "nu, n, k, b0", [(100.0, 120.0, 400.0, 1.0), (50.0, 30.0, 20.0, 1.1), (5.0, 0.0, 10.0, 1.0)]
)
def test_bb_profile_is_the_minimum(mode, nu, n, k, b0):
    res = minimize_scalar(
        lambda b: _unprofiled(b, nu, n, k, b0, mode), bounds=(1e-6, 5), method="bounded",
        options={"xatol": 1e-12},
    )  # fmt: skip
    phi, d1, d2, beta = bin_terms(
        jnp.array([nu]), jnp.array([n]), jnp.array([k]), jnp.array([b0]), jnp.array([True]), mode
    )
    assert float(beta[0]) == pytest.approx(res.x, rel=1e-6)
    assert float(phi[0]) == pytest.approx(res.fun, rel=1e-9, abs=1e-12)
    # total derivatives of the profiled phi(nu) by finite differences
    h = 1e-4 * nu

    def prof(x):
        return minimize_scalar(
            lambda b: _unprofiled(b, x, n, k, b0, mode), bounds=(1e-6, 5), method="bounded",
            options={"xatol": 1e-13},
        ).fun  # fmt: skip

    def phi_of(x):
        return float(bin_terms(jnp.array([x]), jnp.array([n]), jnp.array([k]),
                               jnp.array([b0]), jnp.array([True]), mode)[0][0])  # fmt: skip

    assert float(d1[0]) == pytest.approx((phi_of(nu + h) - phi_of(nu - h)) / (2 * h), rel=1e-6)
    fd2 = (phi_of(nu + h) - 2 * phi_of(nu) + phi_of(nu - h)) / h**2
    assert float(d2[0]) == pytest.approx(fd2, rel=1e-4, abs=1e-9)
    assert phi_of(nu + h) == pytest.approx(prof(nu + h), rel=1e-8, abs=1e-10)


def test_bb_closed_forms():
    nu, n, k = jnp.array(80.0), jnp.array(90.0), jnp.array(50.0)
    assert float(beta_gamma(nu, n, k, 1.0)) == pytest.approx((90 + 50) / (80 + 50))
    b = float(beta_normal(nu, n, k, 1.0))
    assert 50 * b * b + (80 - 50) * b - 90 == pytest.approx(0.0, abs=1e-10)
    # bins without MC variance: beta = beta0, plain Poisson
    phi, d1, d2, beta = bin_terms(nu[None], n[None], k[None], jnp.ones(1), jnp.array([False]),
                                  "gamma")  # fmt: skip
    assert float(beta[0]) == 1.0 and float(phi[0]) == pytest.approx(float(poisson_saturated(nu, n)))
    assert float(d1[0]) == pytest.approx(1 - 90 / 80) and float(d2[0]) == pytest.approx(90 / 6400)


def _check_against_autodiff(model, theta, obs=None, rtol=1e-8):
    st, ar = model.static, model.arrays
    obs = obs or observation(model.data, model.n_params)
    f = partial(nll, st)
    v, g, hs = jax.jit(partial(value_grad_hess, st))(ar, theta, obs)
    h = np.asarray(dense_hessian(st, ar, hs))
    g_ref = np.asarray(jax.jit(jax.grad(f, argnums=1))(ar, theta, obs))
    h_ref = np.asarray(jax.jit(jax.hessian(f, argnums=1))(ar, theta, obs))
    assert float(v) == pytest.approx(float(jax.jit(f)(ar, theta, obs)), rel=1e-12)
    scale_g = np.max(np.abs(g_ref))
    scale_h = np.max(np.abs(h_ref))
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=rtol * scale_g)
    np.testing.assert_allclose(h, h_ref, rtol=0, atol=rtol * scale_h)
    np.testing.assert_allclose(h, h.T, atol=1e-12 * scale_h)


def test_structured_hessian_demo(demo_archive_master):
    m = build_model(demo_archive_master)
    th = jnp.asarray(np.random.default_rng(1).normal(0, 0.6, m.n_params))
    _check_against_autodiff(m, th)


def test_structured_hessian_split_poi_and_dense_fallback(demo_archive_master):
    m = build_model(demo_archive_master, poi="mw-charge", max_block=2)
    assert m.layout.n_dense > 25  # the greedy separator moved parameters to the dense set
    th = jnp.asarray(np.random.default_rng(2).normal(0, 0.6, m.n_params))
    _check_against_autodiff(m, th)


def test_structured_hessian_folded_variant(tmp_path):
    # replica set acting multiplicatively, piecewise mass interpolation, additive theory
    # variation, two channels, eta split of the mass POI
    write_folded_archive(
        tmp_path / "f.h5",
        pdf_type="replicas",
        pdf_interpolation="multiplicative",
        mass_points=(-2, -1, 0, 1),
        variation_interpolation="additive",
        two_channels=True,
    )
    m = build_model(tmp_path / "f.h5", poi="mw-eta")
    th = jnp.asarray(np.random.default_rng(3).normal(0, 0.7, m.n_params))
    _check_against_autodiff(m, th)


def test_structured_hessian_rate_poi(tmp_path):
    write_counting_archive(
        tmp_path / "c.h5",
        shapes={"tilt": ("bkg", [0.05, 0.02, 0.0, -0.02, -0.05])},
    )
    m = build_model(tmp_path / "c.h5", bb="normal")
    th = jnp.array([0.4, -0.3, 0.8, 0.2])
    _check_against_autodiff(m, th)
