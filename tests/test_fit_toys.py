"""Pseudo-experiments: the pulls of the POI over 300 seeded toys (randomised
data, constraint centres and simulated-sample counts) are standard normal."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.fit import run_toys, toy
from wmass_archive.model import build_model
from wmass_archive.model.synthetic import write_folded_archive


@pytest.fixture(scope="module")
def reduced_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("toys") / "reduced.h5"
    write_folded_archive(path, n_eta=3, n_pt=5, events=5.0e4)
    return build_model(path)


def test_toys_are_seeded(reduced_model):
    a, b = toy(reduced_model, 11), toy(reduced_model, 11)
    c = toy(reduced_model, 12)
    np.testing.assert_array_equal(a.n, b.n)
    np.testing.assert_array_equal(a.theta0, b.theta0)
    assert not np.array_equal(a.n, c.n)
    d = toy(reduced_model, 11, randomize=("data",))
    assert np.all(np.asarray(d.theta0) == 0.0) and np.all(np.asarray(d.beta0) == 1.0)


def test_pull_distribution(reduced_model):
    th = np.zeros(reduced_model.n_params)
    th[0] = 0.2
    r = run_toys(reduced_model, 300, seed=1000, theta=th)
    assert all(r.converged)
    assert r.pull_mean[0] == pytest.approx(0.0, abs=0.1)
    assert r.pull_std[0] == pytest.approx(1.0, abs=0.1)
