"""The scale path of the fitter on CI-sized models: ``covariance="pois"`` keeps the POIs'
columns and the diagonal of the covariance, solved with the structured factorisation, and never
forms the n_params^2 inverse. Checked against ``covariance="full"`` and against numpy's dense
inverse; the benchmark at 10 000 and 20 000 parameters is benchmarks/bench_scale.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_fit_robustness import BKG, SIG, write_counting

from wmass_archive.errors import ArchiveError
from wmass_archive.fit import FitResult, asimov, diagnostics, engine, fit
from wmass_archive.fit import linalg as fit_linalg
from wmass_archive.jax_config import jnp
from wmass_archive.model import build_model


@pytest.fixture(scope="module")
def split_model(demo_archive_master):
    return build_model(demo_archive_master, poi="mw-charge")


def test_covariance_diagonal_and_scaling_against_numpy(split_model):
    m = split_model
    st, ar = m.static, m.arrays
    _, _, hs, _ = engine.value_grad_hess(st, ar, jnp.zeros(m.n_params), asimov(m))
    h = np.asarray(engine.dense_hessian(st, ar, hs))
    free = np.ones(m.n_params, dtype=bool)
    free[[1, 7, m.n_params - 1]] = False  # a POI, a dense and a sparse parameter
    fac = engine.factorize(st, ar, hs, 0.0, jnp.asarray(free))
    idx = np.flatnonzero(free)
    ref = np.zeros(m.n_params)
    ref[idx] = np.diag(np.linalg.inv(h[np.ix_(idx, idx)]))
    got = np.asarray(diagnostics.covariance_diagonal(st, ar, fac))
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-14)
    assert np.all(got[~free] == 0.0)
    s = 1.0 / np.sqrt(np.diag(h))
    hs_s = fit_linalg.scale_hessian(st, ar, hs, jnp.asarray(s))
    h_s = np.asarray(engine.dense_hessian(st, ar, hs_s))
    np.testing.assert_allclose(h_s, h * s[:, None] * s[None, :], atol=1e-14)
    np.testing.assert_allclose(np.diag(h_s), 1.0)


@pytest.fixture(scope="module")
def both(split_model):
    kw = dict(intervals=True, scan_points={"mW_plus": [-0.1, 0.0, 0.2]}, freeze=["lumi"])
    return fit(split_model, covariance="full", **kw), fit(split_model, covariance="pois", **kw)


def test_pois_mode_equals_full(both):
    full, pois = both
    assert full.converged and pois.converged and pois.covariance_mode == "pois"
    np.testing.assert_array_equal(pois.values, full.values)
    np.testing.assert_allclose(pois.errors, full.errors, rtol=1e-10, atol=1e-15)
    assert pois.parameter("lumi").frozen and pois.parameter("lumi").error == 0.0
    np.testing.assert_allclose(pois.covariance_pois, full.covariance[:, :2], atol=1e-14)
    for p, q in zip(pois.pois, full.pois, strict=True):
        assert p.physical_error == pytest.approx(q.physical_error, rel=1e-10)
        assert p.interval == pytest.approx(q.interval, abs=1e-8)
    np.testing.assert_allclose(pois.scans[0].two_delta_nll, full.scans[0].two_delta_nll, atol=1e-9)
    assert len(pois.impacts) == len(full.impacts) == 4  # nominal and global, two POIs
    for a, b in zip(pois.impacts, full.impacts, strict=True):
        assert (a.kind, a.poi) == (b.kind, b.poi) and a.groups.keys() == b.groups.keys()
        for g in a.groups:
            assert a.groups[g] == pytest.approx(b.groups[g], rel=1e-8, abs=1e-9), (a.kind, g)
        assert a.nuisances.keys() == b.nuisances.keys()
        for k in a.nuisances:
            assert a.nuisances[k] == pytest.approx(b.nuisances[k], rel=1e-8, abs=1e-10)
    assert pois.warnings == full.warnings
    assert pois.gof == full.gof


def test_pois_mode_result_object(both):
    _, pois = both
    assert pois.covariance is None
    with pytest.raises(ArchiveError, match="covariance='full'"):
        pois.correlation()
    doc = json.loads(pois.to_json(covariance=True))
    assert doc["covariance_mode"] == "pois" and "covariance" not in doc
    assert FitResult.model_validate(doc).poi("mW_minus").error == pois.poi("mW_minus").error


def test_pois_mode_never_forms_the_full_inverse(split_model, monkeypatch):
    def boom(*args, **kw):
        raise AssertionError("the full covariance was formed")

    for name in ("covariance_numpy", "covariance_factors", "covariance"):
        monkeypatch.setattr(engine, name, boom)
    for name in ("covariance_blocks", "covariance_factors"):
        monkeypatch.setattr(fit_linalg, name, boom)
    r = fit(split_model, covariance="pois", impacts=("nominal", "global"))
    assert r.converged and np.all(np.isfinite(r.errors))
    with pytest.raises(AssertionError, match="full covariance was formed"):
        fit(split_model, covariance="full", impacts=())


def test_pois_mode_refusals(split_model):
    with pytest.raises(ArchiveError, match="needs minimizer='newton'"):
        fit(split_model, covariance="pois", minimizer="minuit")
    with pytest.raises(ArchiveError, match="unknown covariance mode 'dense'"):
        fit(split_model, covariance="dense")


def test_degeneracy_reported_without_the_full_covariance(tmp_path):
    path = tmp_path / "two.h5"
    data = np.random.default_rng(2).poisson(SIG * 0.8 + BKG * 1.02).astype(float)
    nuis = [("a", "gaussian", {"bkg": 1.2}), ("b", "gaussian", {"bkg": 1.2})]
    write_counting(path, SIG, {"bkg": BKG}, nuis, data)
    m = build_model(path, bb="none")
    full, pois = fit(m), fit(m, covariance="pois")
    assert len(pois.warnings) == 1 and "a & b" in pois.warnings[0]
    assert pois.warnings == full.warnings
