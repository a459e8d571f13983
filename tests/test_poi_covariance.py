"""The POIs' covariance in physical units and the differences of split POIs in the refit result
(``poi_covariance``, ``poi_differences``; wmass_archive/refit/poicov.py), checked by hand
against the fitter's covariance in theta: the matrix, its order, the difference's value,
uncertainty and correlation, blinding, the JSON, the printed line and the command line."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from wmass_archive.cli.refit_cmd import main
from wmass_archive.model.info import POIInfo
from wmass_archive.refit import RefitResult, refit
from wmass_archive.refit.poicov import difference, theta_covariance
from wmass_archive.refit.report import difference_line


def theta_cov(r: RefitResult, a: str, b: str) -> float:
    """C_ab in theta units from the fitter's full covariance, found by parameter name."""
    fit = r.fit_result
    names = fit.parameter_names
    return float(np.asarray(fit.covariance)[names.index(a), names.index(b)])


@pytest.fixture(scope="module")
def charge(arcs) -> RefitResult:
    return refit(arcs["tiny"], poi="mw-charge", impacts="none")


@pytest.fixture(scope="module")
def rates(arcs) -> RefitResult:
    return refit(arcs["rates"], impacts="none")


def test_matrix_is_the_fit_covariance_in_mev(charge):
    cov = charge.poi_covariance
    assert cov is not None and cov.names == ["mW_plus", "mW_minus"]
    m = np.array(cov.matrix)
    for i, a in enumerate(cov.names):
        for j, b in enumerate(cov.names):
            # scale 100 MeV per unit theta for both parts of the split
            assert m[i, j] == pytest.approx(100.0 * 100.0 * theta_cov(charge, a, b), rel=1e-12)
    np.testing.assert_array_equal(m, m.T)
    unc = np.array([charge.pois[n].unc_mev for n in cov.names])
    np.testing.assert_allclose(np.diag(m), unc**2, rtol=1e-10)
    assert m[0, 1] != 0.0  # the two masses share nuisances: correlated


def test_matrix_scales_each_poi_and_follows_the_result_order(rates, arcs):
    """mu (scale 1) and xs (scale 2 pb per theta): entries scale_i * scale_j * C_ij; with
    ``poi="xs"`` xs comes first in ``pois`` and in the matrix."""
    assert rates.poi_covariance.names == ["mu", "xs"]
    m = np.array(rates.poi_covariance.matrix)
    assert m[0, 0] == pytest.approx(theta_cov(rates, "mu", "mu"), rel=1e-12)
    assert m[0, 1] == pytest.approx(2.0 * theta_cov(rates, "mu", "xs"), rel=1e-12)
    assert m[1, 1] == pytest.approx(4.0 * theta_cov(rates, "xs", "xs"), rel=1e-12)
    np.testing.assert_allclose(
        np.diag(m), [rates.pois["mu"].physical_unc ** 2, rates.pois["xs"].physical_unc ** 2]
    )
    assert rates.poi_differences == []  # two archive POIs, not the parts of a split
    assert " - mu =" not in rates.summary() and "correlation" not in rates.summary()
    swapped = refit(arcs["rates"], poi="xs", impacts="none")
    assert swapped.poi_covariance.names == ["xs", "mu"] == list(swapped.pois)
    np.testing.assert_allclose(np.array(swapped.poi_covariance.matrix), m[::-1, ::-1], rtol=1e-9)


def test_difference_against_a_hand_calculation(charge, arcs):
    (d,) = charge.poi_differences
    assert d.name == "mW_plus - mW_minus" and d.unit == "MeV" and not d.blinded
    vp = 1e4 * theta_cov(charge, "mW_plus", "mW_plus")
    vm = 1e4 * theta_cov(charge, "mW_minus", "mW_minus")
    cpm = 1e4 * theta_cov(charge, "mW_plus", "mW_minus")
    assert d.uncertainty == pytest.approx(math.sqrt(vp + vm - 2 * cpm), rel=1e-10)
    assert d.correlation == pytest.approx(cpm / math.sqrt(vp * vm), rel=1e-10)
    assert -1.0 < d.correlation < 1.0
    # blinded result, one offset shared by the parts: it cancels in the difference
    plus, minus = charge.pois["mW_plus"], charge.pois["mW_minus"]
    assert charge.blinded
    assert d.value == pytest.approx(plus.shift_mev - minus.shift_mev, abs=1e-9)
    fit = charge.fit_result
    assert d.value == pytest.approx(
        100.0 * (fit.poi("mW_plus").value - fit.poi("mW_minus").value), abs=1e-9
    )
    unblinded = refit(arcs["tiny"], poi="mw-charge", impacts="none", unblind=True)
    assert not unblinded.blinded
    (du,) = unblinded.poi_differences
    assert du.value == pytest.approx(d.value, abs=1e-6)
    assert du.uncertainty == pytest.approx(d.uncertainty, rel=1e-6)


@pytest.mark.parametrize(
    ("poi", "name"),
    [("mw-eta", "mW_etaneg - mW_etapos"), ("mw-barrel-endcap", "mW_barrel - mW_endcap")],
)
def test_every_predefined_split_has_its_difference(arcs, poi, name):
    r = refit(arcs["tiny"], poi=poi, impacts="none")
    (d,) = r.poi_differences
    assert d.name == name
    m = np.array(r.poi_covariance.matrix)
    assert d.uncertainty == pytest.approx(math.sqrt(m[0, 0] + m[1, 1] - 2 * m[0, 1]), rel=1e-12)
    assert f"  {name} = " in r.summary()


def test_single_poi_has_no_covariance(arcs):
    r = refit(arcs["tiny"], impacts="none")
    assert r.poi_covariance is None and r.poi_differences == []
    d = r.to_dict()
    assert d["poi_covariance"] is None and d["poi_differences"] == []
    assert "correlation" not in r.summary()


def test_json_round_trip(charge, tmp_path):
    p = tmp_path / "r.json"
    charge.to_json(p)
    d = json.loads(p.read_text())
    assert d["schema_version"] == "1.3"
    assert set(d["poi_covariance"]) == {"names", "matrix"}
    assert d["poi_covariance"]["names"] == ["mW_plus", "mW_minus"]
    assert d["poi_covariance"]["matrix"] == charge.poi_covariance.matrix
    (dd,) = d["poi_differences"]
    assert {"name", "value", "uncertainty", "correlation"} <= set(dd)
    assert dd["name"] == "mW_plus - mW_minus"
    back = RefitResult.load(p)
    assert back.poi_covariance == charge.poi_covariance
    assert back.poi_differences == charge.poi_differences
    assert back.summary().count("mW_plus - mW_minus =") == 1


def test_printed_line(charge):
    (d,) = charge.poi_differences
    lines = [x for x in charge.summary().splitlines() if x.startswith("  mW_plus - mW_minus =")]
    assert lines == [
        f"  mW_plus - mW_minus = {d.value:.1f} +- {d.uncertainty:.1f} MeV "
        f"(correlation {d.correlation:.2f})"
    ]
    assert re.fullmatch(
        r"  mW_plus - mW_minus = -?\d+\.\d \+- \d+\.\d MeV \(correlation -?[01]\.\d\d\)", lines[0]
    )


def test_unequal_offsets_withhold_the_value():
    """Two POIs with different blinding offsets (not made by the predefined splits): while
    blinded the value is withheld, the uncertainty and the correlation are shown, and no
    offset appears anywhere; unblinded the value is the difference of the physical values."""
    common = dict(kind="mass", unit="MeV", central=80360.0, scale=100.0)
    a = POIInfo(name="mA", blinding_offset=17.25, **common)
    b = POIInfo(name="mB", blinding_offset=-3.5, **common)
    cov = np.array([[16.0, -6.0], [-6.0, 25.0]])
    d = difference(a, b, 0.3, 0.1, cov, blinded=True)
    assert d.blinded and d.value is None
    assert d.uncertainty == pytest.approx(math.sqrt(16 + 25 + 12))
    assert d.correlation == pytest.approx(-6.0 / 20.0)
    line = difference_line(d)
    assert (
        line
        == "mA - mB = blinded +- 7.3 MeV (correlation -0.30; the POIs' blinding offsets differ)"
    )
    text = line + d.model_dump_json()
    for secret in ("17.25", "-3.5", "20.75", "40.75", "0.2075"):
        assert secret not in text
    open_ = difference(a, b, 0.3, 0.1, cov, blinded=False)
    assert not open_.blinded and open_.value == pytest.approx(20.0)
    same = difference(a, a.model_copy(update={"name": "mC"}), 0.3, 0.1, cov, blinded=True)
    assert not same.blinded and same.value == pytest.approx(20.0)  # the offset cancels


def test_covariance_from_the_poi_columns_alone(arcs):
    """A fit that keeps only the POIs' columns of C (``covariance="pois"``, for models whose
    full C does not fit in memory) gives the same block as the full covariance."""
    from wmass_archive.fit import fit
    from wmass_archive.model import build_model

    model = build_model(arcs["tiny"], poi="mw-charge")
    full, cols = fit(model, impacts=()), fit(model, impacts=(), covariance="pois")
    assert cols.covariance is None and full.covariance is not None
    names = ["mW_minus", "mW_plus"]
    ref = np.asarray(full.covariance)[np.ix_([1, 0], [1, 0])]
    assert full.parameter_names[:2] == ["mW_plus", "mW_minus"]
    np.testing.assert_allclose(theta_covariance(cols, names), ref, rtol=1e-6)
    np.testing.assert_allclose(theta_covariance(full, names), ref, rtol=1e-12)


def test_command_line(arcs, tmp_path):
    js = tmp_path / "r.json"
    res = CliRunner().invoke(
        main,
        [
            "--archive",
            str(arcs["tiny"]),
            "--poi",
            "mw-charge",
            "--impacts",
            "none",
            "--json",
            str(js),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert re.search(
        r"^  mW_plus - mW_minus = -?\d+\.\d \+- \d+\.\d MeV \(correlation ", res.stdout, re.M
    )
    d = json.loads(js.read_text())
    assert d["poi_covariance"]["names"] == ["mW_plus", "mW_minus"]
    assert len(d["poi_differences"]) == 1
