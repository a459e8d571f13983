"""Slow validation on the CMS-sized "large" demo (2880 bins, ~2500 parameters) and with many
toys. Marked ``slow``, so deselected by default:
``python -m pytest -q -m slow tests/test_fit_slow.py``."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.fit import fit, run_toys
from wmass_archive.model import build_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def large_model(tmp_path_factory):
    from wmass_archive.producers.demo import DEMO_SIZES, build_demo_archive

    path = tmp_path_factory.mktemp("large") / "large.h5"
    build_demo_archive(path, DEMO_SIZES["large"])
    return build_model(path)


def test_large_demo_fit(large_model):
    r = fit(large_model, intervals=["mW"])
    assert r.converged and r.edm < 1e-8
    p = r.poi()
    lo, hi = p.interval
    assert (hi - lo) / 2 == pytest.approx(p.error, rel=0.02)
    g = r.impact("global")
    assert g.sum_in_quadrature == pytest.approx(g.total, rel=1e-3)
    assert r.timing.fit < 60.0


def test_large_demo_asimov_closure_split(large_model, tmp_path):
    th = np.zeros(large_model.n_params)
    th[0] = 0.2
    r = fit(large_model, asimov=th, impacts=())
    assert abs(r.poi().value - 0.2) * 100 < 0.01
    assert np.max(np.abs(r.values[1:])) < 1e-4


def test_many_toys(demo_archive_master):
    m = build_model(demo_archive_master)
    r = run_toys(m, 1000, seed=7)
    assert sum(r.converged) >= 995
    assert r.pull_mean[0] == pytest.approx(0.0, abs=0.07)
    assert r.pull_std[0] == pytest.approx(1.0, abs=0.05)
