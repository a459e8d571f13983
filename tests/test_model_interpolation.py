"""Interpolations of docs/format.md 7.3, 9.2, 10 against hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wmass_archive.jax_config import jax, jnp
from wmass_archive.model.interpolation import (
    cl_of_z,
    logk_exponent,
    logk_exponent_d1,
    logk_exponent_d2,
    logk_from_updown,
    mass_weights,
    mass_weights_d1,
    mass_weights_d2,
    smooth_step,
    smooth_step_d1,
    smooth_step_d2,
    z_of_cl,
)


def test_smooth_step_hand_values():
    # h(x) = x (3 x^4 - 10 x^2 + 15) / 8 at x = 2t
    assert float(smooth_step(0.25)) == pytest.approx(0.5 * (3 / 16 - 10 / 4 + 15) / 8)
    assert float(smooth_step(0.5)) == 1.0 and float(smooth_step(-0.7)) == -1.0
    assert float(smooth_step(0.0)) == 0.0
    # odd, monotonic
    t = np.linspace(-1, 1, 201)
    a = np.asarray(smooth_step(jnp.asarray(t)))
    np.testing.assert_allclose(a, -a[::-1], atol=1e-15)
    assert np.all(np.diff(a) >= 0)


@pytest.mark.parametrize("t", [-0.9, -0.5, -0.3, -0.01, 0.0, 0.2, 0.49, 0.5, 1.3])
def test_derivatives_match_autodiff(t):
    assert float(smooth_step_d1(t)) == pytest.approx(float(jax.grad(smooth_step)(t)), abs=1e-12)
    d2 = jax.grad(jax.grad(smooth_step))(t)
    assert float(smooth_step_d2(t)) == pytest.approx(float(d2), abs=1e-10)
    avg, hd = 0.03, -0.012
    f = lambda x: logk_exponent(x, avg, hd)  # noqa: E731
    assert float(logk_exponent_d1(t, avg, hd)) == pytest.approx(float(jax.grad(f)(t)), rel=1e-12)
    assert float(logk_exponent_d2(t, avg, hd)) == pytest.approx(
        float(jax.grad(jax.grad(f))(t)), abs=1e-12
    )


def test_logk_reproduces_up_and_down_and_is_c2():
    up, down, nom = 1.07, 0.96, 1.0
    avg, hd = logk_from_updown(np.array(up), np.array(down), np.array(nom))
    assert math.exp(float(logk_exponent(1.0, avg, hd))) == pytest.approx(up, rel=1e-14)
    assert math.exp(float(logk_exponent(-1.0, avg, hd))) == pytest.approx(down, rel=1e-14)
    assert float(logk_exponent(0.0, avg, hd)) == 0.0
    # log-linear beyond |t| = 1/2: exp(t logk_up), exp(|t| logk_down)
    assert float(logk_exponent(2.5, avg, hd)) == pytest.approx(2.5 * math.log(up))
    assert float(logk_exponent(-0.6, avg, hd)) == pytest.approx(0.6 * math.log(down))
    # continuity of f, f', f'' at t = +-1/2 (from both sides)
    for t0 in (0.5, -0.5):
        for fn in (logk_exponent, logk_exponent_d1, logk_exponent_d2):
            lo, hi = float(fn(t0 - 1e-9, avg, hd)), float(fn(t0 + 1e-9, avg, hd))
            assert lo == pytest.approx(hi, abs=1e-7)


def test_combine_asympow_hand_value():
    # Combine's logKappaForX(0.3): avg + halfdiff * h(0.6); factor exp(theta * logKappa)
    kh, kl = 1.1, 0.95
    avg = 0.5 * (math.log(kh) - math.log(kl))
    hd = 0.5 * (math.log(kh) + math.log(kl))
    x = 0.6
    h = x * (3 * x**4 - 10 * x**2 + 15) / 8
    expect = 0.3 * (avg + hd * h)
    assert float(logk_exponent(0.3, avg, hd)) == pytest.approx(expect, rel=1e-14)


def test_logk_from_updown_zero_and_negative_reference():
    avg, hd = logk_from_updown(
        np.array([2.0, 1.0, -1.0]), np.array([0.5, 1.0, 1.0]), np.array([1.0, 0.0, 1.0])
    )
    np.testing.assert_allclose(avg, [math.log(2.0), 0.0, 0.0])
    np.testing.assert_allclose(hd, [0.0, 0.0, 0.0], atol=1e-15)


def test_three_point_mass_weights_equal_asymmetric_lognormal():
    # ln nu = ln nu1 + theta avg + theta alpha halfdiff with r_j = ln(nu_j / nu1)
    lnu = np.log(np.array([95.0, 100.0, 106.0]))
    r0, r2 = lnu[0] - lnu[1], lnu[2] - lnu[1]
    for t in (-1.7, -1.0, -0.4, 0.0, 0.1, 0.5, 1.0, 2.2):
        w = np.asarray(mass_weights(jnp.asarray(t), [-1.0, 0.0, 1.0]))
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        expect = lnu[1] + float(logk_exponent(t, 0.5 * (r2 - r0), 0.5 * (r2 + r0)))
        assert float(w @ lnu) == pytest.approx(expect, rel=1e-14)


def test_piecewise_mass_weights_hand_values():
    pts = [-2.0, -1.0, 0.0, 0.5, 1.0]
    # inside [0, 0.5] at 0.2: 0.6 on point 2, 0.4 on point 3
    np.testing.assert_allclose(mass_weights(0.2, pts), [0, 0, 0.6, 0.4, 0], atol=1e-15)
    # extended below the first segment: theta = -3 -> u = -1 on [-2, -1]
    np.testing.assert_allclose(mass_weights(-3.0, pts), [2.0, -1.0, 0, 0, 0], atol=1e-15)
    # above the last segment: theta = 1.5 on [0.5, 1] -> u = 2
    np.testing.assert_allclose(mass_weights(1.5, pts), [0, 0, 0, -1.0, 2.0], atol=1e-15)
    np.testing.assert_allclose(mass_weights_d1(0.2, pts), [0, 0, -2.0, 2.0, 0], atol=1e-15)
    np.testing.assert_allclose(mass_weights_d2(0.2, pts), np.zeros(5))
    np.testing.assert_allclose(mass_weights(0.7, [0.0]), [1.0])


@pytest.mark.parametrize("t", [-1.3, -0.45, -0.1, 0.0, 0.3, 0.5, 2.0])
def test_mass_weight_derivatives(t):
    pts = [-1.0, 0.0, 1.0]
    for j in range(3):
        f = lambda x, j=j: mass_weights(x, pts)[j]  # noqa: E731
        assert float(mass_weights_d1(t, pts)[j]) == pytest.approx(float(jax.grad(f)(t)), abs=1e-12)
        d2 = float(jax.grad(jax.grad(f))(t))
        assert float(mass_weights_d2(t, pts)[j]) == pytest.approx(d2, abs=1e-10)


def test_z_of_cl():
    assert z_of_cl(68.268949) == pytest.approx(1.0, abs=1e-7)
    assert z_of_cl(90.0) == pytest.approx(1.6448536, abs=1e-6)
    assert cl_of_z(z_of_cl(95.0)) == pytest.approx(95.0)
    with pytest.raises(ValueError):
        z_of_cl(100.0)
