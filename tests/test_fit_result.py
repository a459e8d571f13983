"""The result object: JSON serialisation, covariance and correlation, versions, summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wmass_archive.fit import FitResult, fit
from wmass_archive.model import build_model
from wmass_archive.model.synthetic import write_folded_archive


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = tmp_path_factory.mktemp("res") / "f.h5"
    write_folded_archive(path, n_eta=3, n_pt=5, events=5.0e4, true_theta=0.1)
    return fit(build_model(path), intervals=True)


def test_json_round_trip(result, tmp_path):
    text = result.to_json(tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert json.loads(text) == doc
    assert doc["status"] == "converged" and doc["minimizer"] == "newton"
    assert doc["pois"][0]["name"] == "mW" and doc["pois"][0]["unit"] == "MeV"
    assert "covariance" not in doc
    assert {t["kind"] for t in doc["impacts"]} == {"nominal", "global"}
    assert doc["versions"]["jax"] and doc["versions"]["numpy"] and doc["versions"]["wmass_archive"]
    assert set(doc["timing"]) >= {"build", "compile", "fit", "covariance", "impacts", "total"}
    assert doc["model"]["pdf_set"] == "P" and doc["model"]["bb"] == "gamma"
    back = FitResult.model_validate(doc)
    assert back.poi().physical_value == result.poi().physical_value
    with_cov = json.loads(result.to_json(covariance=True))
    cov = np.array(with_cov["covariance"]["matrix"])
    assert with_cov["covariance"]["parameters"] == result.parameter_names
    np.testing.assert_allclose(cov, result.covariance)


def test_covariance_and_correlation(result):
    c = np.asarray(result.covariance)
    np.testing.assert_allclose(c, c.T, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(c) > 0)
    rho = result.correlation()
    np.testing.assert_allclose(np.diag(rho), 1.0)
    assert np.all(np.abs(rho) <= 1 + 1e-12)
    np.testing.assert_allclose(np.sqrt(np.diag(c)), result.errors)


def test_pulls_constraints_and_pois(result):
    lumi = result.parameter("lumi")
    assert lumi.constrained and lumi.pull == lumi.value and 0 < lumi.constraint <= 1.0
    mw = result.parameter("mW")
    assert not mw.constrained and mw.pull is None
    p = result.poi()
    assert p.physical_value == pytest.approx(80360.0 + 100.0 * p.value)
    lo, hi = p.physical_interval
    assert lo < p.physical_value < hi
    assert "mW =" in result.summary() and "global impacts" in result.summary()
