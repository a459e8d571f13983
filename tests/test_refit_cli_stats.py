"""wmass-refit's statistics options: --cls, --test-stat, --upper-limit, --toys-cls, --bounds,
--scan-values, --poi on any parameter, and exit status 3 for a fit that did not converge."""

from __future__ import annotations

import json

import pytest
from _pyhf_search import search_workspace
from click.testing import CliRunner

from wmass_archive.cli.refit_cmd import EXIT_NOT_CONVERGED, main
from wmass_archive.interop.pyhf import import_pyhf

SEARCH = search_workspace([58.0, 75.0, 44.0])


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, match):
    assert res.exit_code == 1, res.output
    err = res.stderr.strip()
    assert "Traceback" not in res.output
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert match in err, err


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "search.h5"
    import_pyhf(SEARCH, path)
    return path


def test_cls_upper_limit_scan_values_json(search, tmp_path):
    out = tmp_path / "r.json"
    res = run(
        [
            "--archive", search, "--cls", "1", "--cls", "2,3", "--upper-limit",
            "--scan-values", "0.5,1,1.75", "--impacts", "none", "--json", out, "-q",
        ]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "CLs of mu = 1 (q~mu, asymptotic)" in res.stdout
    assert "95% CL upper limit on mu (CLs, q~mu, asymptotic): observed" in res.stdout
    d = json.loads(out.read_text())
    assert [h["value"] for h in d["hypotests"]] == [1.0, 2.0, 3.0]
    h = d["hypotests"][0]
    assert {"poi", "value", "test_statistic", "cls_obs", "cls_exp", "clsb", "clb"} <= set(h)
    assert h["poi"] == "mu" and h["test_statistic"] == "qtilde" and len(h["cls_exp"]) == 5
    assert h["cls_obs"] == pytest.approx(h["clsb"] / h["clb"])
    (ul,) = d["upper_limits"]
    assert ul["poi"] == "mu" and ul["cl"] == 0.95 and len(ul["expected"]) == 5
    assert ul["expected"] == sorted(ul["expected"])
    (scan,) = d["scans"]
    assert scan["physical_values"] == [0.5, 1.0, 1.75]  # exactly the values asked for


def test_q0_and_upper_limit_cl(search, tmp_path):
    out = tmp_path / "r.json"
    res = run(
        ["--archive", search, "--cls", "0", "--test-stat", "q0", "--impacts", "none",
         "--json", out, "-q"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Discovery test of mu (q0, asymptotic): p0 = " in res.stdout
    h = json.loads(out.read_text())["hypotests"][0]
    assert h["test_statistic"] == "q0" and h["significance"] > 0
    res = run(["--archive", search, "--upper-limit", "0.9", "--impacts", "none", "-q"])
    assert res.exit_code == 0 and "90% CL upper limit on mu" in res.stdout


def test_bounds_option_and_at_bound_note(search, tmp_path):
    out = tmp_path / "r.json"
    res = run(["--archive", search, "--bounds", "mu=0,1", "--impacts", "none", "--json", out, "-q"])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["pois"]["mu"]["physical_value"] == pytest.approx(1.0)
    assert any("on a bound of its range at the minimum: mu" in n for n in d["notes"])


def test_any_nuisance_as_poi(search, tmp_path):
    out = tmp_path / "r.json"
    res = run(["--archive", search, "--poi", "ns", "--impacts", "none", "--json", out, "-q"])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert list(d["pois"])[0] == "ns" and d["pois"]["ns"]["kind"] == "parameter"


@pytest.mark.parametrize(
    "args, match",
    [
        (["--bounds", "mu=5,1"], "low 5 must be below high 1"),
        (["--bounds", "mu=0"], "expected NAME=LO,HI"),
        (["--bounds", "nope=0,1"], "no parameter 'nope'"),
        (["--bounds", "mu=-3,-1"], "exclude every positive value"),
        (["--poi", "nope"], "unknown POI 'nope'"),
        (["--toys-cls", "10"], "--toys-cls needs --cls"),
        (["--cls", "1", "--poi", "ns"], "'ns' is a parameter POI"),
    ],
)
def test_bad_input_one_line(search, args, match):
    one_line_error(run(["--archive", search, "--impacts", "none", "-q", *args]), match)


def test_cls_values_must_be_numbers(search):
    res = run(["--archive", search, "--cls", "one"])
    assert res.exit_code == 2 and "expected numbers" in res.output


def test_cls_on_a_mass_poi_is_refused(arcs):
    one_line_error(
        run(["--archive", arcs["tiny"], "--cls", "1", "--impacts", "none", "-q"]), "mass POI"
    )


def test_not_converged_exits_3(search, tmp_path):
    """The unbounded fit of data below the background wanders where the signal is clipped and
    the likelihood is flat: the block and the JSON are written, the status is 3."""
    spec = search_workspace([45.0, 52.0, 41.0])
    path = tmp_path / "flat.h5"
    import_pyhf(spec, path, bounds=False)
    out = tmp_path / "r.json"
    res = run(["--archive", path, "--impacts", "none", "--json", out, "-q"])
    assert res.exit_code == EXIT_NOT_CONVERGED, res.output
    assert "did not converge" in res.stderr
    assert json.loads(out.read_text())["fit"]["converged"] is False


def test_ungrouped_nuisances_have_an_impact_row(tmp_path):
    """A counting card without 'group' lines: its nuisances appear as 'ungrouped' in the
    impact table (not only stat and total), and the rows add up to the total in quadrature."""
    from _combine_cards import write_card

    from wmass_archive.interop.combine import import_combine

    card = write_card(
        tmp_path / "c.txt",
        "imax 1\njmax 1\nkmax 2\n---\nbin a\nobservation 60\n---\n"
        "bin a a\nprocess sig bkg\nprocess 0 1\nrate 10 50\n---\n"
        "lumi lnN 1.025 1.025\nbkgxs lnN - 1.10\n",
    )
    import_combine(card, tmp_path / "c.h5")
    out = tmp_path / "r.json"
    res = run(["--archive", tmp_path / "c.h5", "--json", out, "-q"])
    assert res.exit_code == 0, res.output
    assert "ungrouped" in res.stdout
    imp = json.loads(out.read_text())["impacts"]
    assert set(imp["global"]) >= {"ungrouped", "stat"}
    total = sum(v**2 for v in imp["global"].values() if v is not None) ** 0.5
    assert total == pytest.approx(imp["total"], rel=1e-6)


def test_toys_cls_in_the_json(search, tmp_path):
    out = tmp_path / "r.json"
    res = run(
        ["--archive", search, "--cls", "3", "--toys-cls", "30", "--workers", "1", "--seed", "5",
         "--impacts", "none", "--json", out, "-q"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    asym, toys = json.loads(out.read_text())["hypotests"]
    assert asym["calculator"] == "asymptotic" and toys["calculator"] == "toys"
    assert toys["n_toys"] == 30 and toys["value"] == 3.0 and len(toys["cls_exp"]) == 5
    assert toys["q_obs"] == pytest.approx(asym["q_obs"])
    assert 0.0 <= toys["clsb"] <= 1.0 and 0.0 < toys["clb"] <= 1.0
    assert "(q~mu, 30 toys)" in res.stdout
