"""Tiled assembly of a large sparse block (model/structure.py): parameters that each touch a
window of bins, chained by overlapping windows into one component of hundreds, have their
block of the Hessian assembled from tiles of consecutive bins. The structured Hessian must
equal JAX's Hessian of the nll, and the fit the one of the untiled layout; a shuffled bin
order is recovered by the spectral ordering."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from wmass_archive.fit import engine, fit, hessian
from wmass_archive.fit.likelihood import observation
from wmass_archive.jax_config import jnp
from wmass_archive.model import build_model, structure
from wmass_archive.model.synthetic import write_counting_archive

N_BINS, N_WINDOWS = 600, 320


def _write(path, permute: bool = False) -> None:
    """A counting model of 600 bins, three processes and 320 nuisances, each on a window of
    16-38 consecutive bins (in a shuffled bin order with ``permute``)."""
    rng = np.random.default_rng(7)
    x = np.arange(N_BINS)
    perm = rng.permutation(N_BINS) if permute else x
    sig = 200.0 + 100.0 * np.sin(x / 50.0) ** 2
    bkgs = {"bkg": np.full(N_BINS, 300.0), "bkg2": np.linspace(100.0, 50.0, N_BINS)}
    shapes = {}
    for k in range(N_WINDOWS):
        c, w = rng.integers(0, N_BINS), rng.integers(8, 20)
        logk = np.zeros(N_BINS)
        lo, hi = max(0, c - w), min(N_BINS, c + w)
        logk[lo:hi] = rng.normal(0.0, 0.03, hi - lo)
        shapes[f"win{k}"] = (("sig", "bkg", "bkg2")[k % 3], logk[perm])
    write_counting_archive(
        path,
        signal=sig[perm],
        backgrounds={k: v[perm] for k, v in bkgs.items()},
        shapes=shapes,
        lnN={"lumi": {"sig": 1.02}},
    )


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiles") / "windows.h5"
    _write(path)
    return path


def _tiled(model) -> list:
    return [b for b in model.layout.buckets if b.tiled]


def _assert_exact_hessian(model, seed: int) -> None:
    """The structured Hessian equals JAX's Hessian of the nll at a random theta."""
    st, ar = model.static, model.arrays
    obs = observation(model.data, model.n_params)
    theta = jnp.asarray(np.random.default_rng(seed).normal(0.0, 0.3, model.n_params))
    _, _, hs, _ = engine.value_grad_hess(st, ar, theta, obs)
    got = np.asarray(engine.dense_hessian(st, ar, hs))
    want = np.asarray(jax.hessian(hessian.nll, argnums=2)(st, ar, theta, obs))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_the_chained_component_is_tiled_and_its_hessian_exact(windows):
    model = build_model(windows)
    (bucket,) = _tiled(model)
    assert bucket.n_blocks == 1 and bucket.size >= 256
    assert bucket.n_tiles > 8 and bucket.t_size < bucket.size // 4
    assert "assembled from tiles" in model.layout.summary()
    _assert_exact_hessian(model, seed=1)


def test_tiled_and_untiled_fits_agree(windows, monkeypatch):
    tiled = fit(build_model(windows))
    monkeypatch.setattr(structure, "TILE_GAIN", float("inf"))
    plain = build_model(windows)
    assert not _tiled(plain)
    untiled = fit(plain)
    assert tiled.converged and untiled.converged
    np.testing.assert_allclose(tiled.values, untiled.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(tiled.errors, untiled.errors, rtol=1e-10)
    np.testing.assert_allclose(tiled.covariance, untiled.covariance, rtol=0, atol=1e-12)


def test_a_shuffled_bin_order_is_tiled_through_the_spectral_order(tmp_path):
    path = tmp_path / "shuffled.h5"
    _write(path, permute=True)
    model = build_model(path)
    (bucket,) = _tiled(model)  # consecutive bins share nothing here: the spectral order does
    assert bucket.t_size < bucket.size // 4
    _assert_exact_hessian(model, seed=2)
