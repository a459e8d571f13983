"""The Schur-complement solver of the structured Hessian against dense numpy linear algebra:
solves, damping, frozen parameters, covariance (JAX and host assembly), positive-definiteness."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.fit import asimov, engine
from wmass_archive.jax_config import jnp
from wmass_archive.model import build_model


@pytest.fixture(scope="module")
def hessian(demo_archive_master):
    m = build_model(demo_archive_master)
    obs = asimov(m)  # positive definite at the Asimov minimum
    _, g, hs, diag = engine.value_grad_hess(m.static, m.arrays, jnp.zeros(m.n_params), obs)
    h = np.asarray(engine.dense_hessian(m.static, m.arrays, hs))
    return m, hs, h, np.asarray(diag)


def test_dense_hessian_is_symmetric_with_its_diagonal(hessian):
    m, hs, h, diag = hessian
    np.testing.assert_allclose(h, h.T, atol=1e-10 * np.abs(h).max())
    np.testing.assert_allclose(np.diag(h), diag)
    v = np.random.default_rng(0).normal(size=m.n_params)
    hv = np.asarray(engine.linalg.matvec(m.static, m.arrays, hs, jnp.asarray(v)))
    np.testing.assert_allclose(hv, h @ v, rtol=1e-12, atol=1e-10 * np.abs(h).max())


@pytest.mark.parametrize("lam", [0.0, 2.5])
def test_solve_and_covariance(hessian, lam):
    m, hs, h, _ = hessian
    free = jnp.ones(m.n_params, dtype=bool)
    fac = engine.factorize(m.static, m.arrays, hs, lam, free)
    assert bool(fac.ok)
    hl = h + lam * np.eye(m.n_params)
    r = np.random.default_rng(1).normal(size=(m.n_params, 3))
    x = np.asarray(engine.solve(m.static, m.arrays, fac, jnp.asarray(r)))
    np.testing.assert_allclose(hl @ x, r, atol=1e-9)
    inv = np.linalg.inv(hl)
    np.testing.assert_allclose(engine.covariance_numpy(m.static, m.arrays, fac), inv, atol=1e-12)
    # the sparse-sparse block in chunks of rows, with a remainder
    chunked = engine.covariance_numpy(m.static, m.arrays, fac, row_chunk=7)
    np.testing.assert_allclose(chunked, inv, atol=1e-12)
    np.testing.assert_allclose(
        chunked, np.asarray(engine.covariance(m.static, m.arrays, fac)), rtol=0, atol=1e-14
    )
    np.testing.assert_allclose(
        np.asarray(engine.covariance(m.static, m.arrays, fac)), inv, atol=1e-12
    )


def test_frozen_parameters_are_removed(hessian):
    m, hs, h, _ = hessian
    free = np.ones(m.n_params, dtype=bool)
    free[[0, 5, 20, m.n_params - 1]] = False
    fac = engine.factorize(m.static, m.arrays, hs, 0.0, jnp.asarray(free))
    c = engine.covariance_numpy(m.static, m.arrays, fac, row_chunk=5)
    idx = np.flatnonzero(free)
    np.testing.assert_allclose(c[np.ix_(idx, idx)], np.linalg.inv(h[np.ix_(idx, idx)]), atol=1e-12)
    assert np.all(c[~free] == 0.0) and np.all(c[:, ~free] == 0.0)
    fac_s, p = engine.step(m.static, m.arrays, hs, jnp.ones(m.n_params), 0.0, jnp.asarray(free))
    assert np.all(np.asarray(p)[~free] == 0.0)


def test_not_positive_definite_is_detected(hessian):
    m, hs, _, _ = hessian
    free = jnp.ones(m.n_params, dtype=bool)
    bad = hs._replace(dd=hs.dd - 1e9 * jnp.eye(m.static.n_dense))
    assert not bool(engine.factorize(m.static, m.arrays, bad, 0.0, free).ok)
    bad_blocks = hs._replace(blocks=tuple(b - 1e9 * jnp.eye(b.shape[-1]) for b in hs.blocks))
    assert not bool(engine.factorize(m.static, m.arrays, bad_blocks, 0.0, free).ok)
