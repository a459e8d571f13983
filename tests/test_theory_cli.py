"""``wmass-archive theory-grid`` (the click command ``theory_grid``) through click's runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wmass_archive.cli.theory_cmd import theory_grid
from wmass_archive.theory import load_theory_grid

PDFSETS = Path(
    os.environ.get("WMASS_PDFSETS", Path(__file__).resolve().parents[2] / "shared" / "pdfsets")
)
pytestmark = pytest.mark.skipif(not PDFSETS.is_dir(), reason="shared PDF sets not available")


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.delenv("LHAPDF_DATA_PATH", raising=False)
    monkeypatch.delenv("LHAPATH", raising=False)
    return CliRunner()


def test_help_teaches():
    out = CliRunner().invoke(theory_grid, ["--help"]).output
    for word in ("--pdf", "--pdf-path", "--members", "LHAPDF_DATA_PATH", "Examples", "0-10"):
        assert word in out


def test_default_output_name_and_summary(runner):
    with runner.isolated_filesystem():
        res = runner.invoke(
            theory_grid, ["--pdf", "CT10nlo", "--pdf-path", str(PDFSETS), "--members", "0-2"]
        )
        assert res.exit_code == 0, res.output
        assert "wrote 3 member grid(s) of CT10nlo to CT10nlo_grid.h5" in res.output
        g = load_theory_grid("CT10nlo_grid.h5")
        assert g.meta.pdf_members == [0, 1, 2] and g.values.shape == (3, 2, 8, 10, 9)
        assert "theory-grid" in g.meta.provenance.command


def test_env_path_loose_name_and_csv(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("LHAPDF_DATA_PATH", f"{tmp_path / 'nothing'}{os.pathsep}{PDFSETS}")
    out = tmp_path / "nn.csv"
    res = runner.invoke(
        theory_grid,
        ["--pdf", "nnpdf31-nnlo-as-0118-mc", "-o", str(out), "-q", "--set", "k_factor=1"],
    )
    assert res.exit_code == 0, res.output
    assert res.output == ""
    g = load_theory_grid(out)
    assert g.meta.pdf_set == "NNPDF31_nnlo_as_0118_mc" and g.meta.parameters.k_factor == 1.0
    # by folder, with the members of a set given as a list
    res = runner.invoke(
        theory_grid,
        ["--pdf", str(PDFSETS / "CT10nlo"), "-o", str(tmp_path / "c.h5"), "--members", "0,5-6"],
    )
    assert res.exit_code == 0, res.output
    assert load_theory_grid(tmp_path / "c.h5").meta.pdf_members == [0, 5, 6]
    np.testing.assert_allclose(
        load_theory_grid(tmp_path / "c.h5").totals()[0].sum(), 20000, rtol=0.05
    )


@pytest.mark.parametrize("name", ["NNPDF3.1", "nnpdf31", "CT10"])
def test_pdf_names_as_wmass_refit_takes_them(runner, name):
    """``--pdf`` means what it means to wmass-refit: short names resolve to the LHAPDF set."""
    with runner.isolated_filesystem():
        res = runner.invoke(
            theory_grid,
            ["--pdf", name, "--members", "0", "--pdf-path", str(PDFSETS), "-q", "-o", "g.csv"],
        )
        assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "args,match",
    [
        (
            ["--pdf", "CT18ZNNLO"],
            "error: unknown PDF set 'CT18ZNNLO': not on the LHAPDF path (",
        ),
        (
            ["--pdf", "CT18Z"],
            "install the LHAPDF set CT18ZNNLO: `wmass-archive pdf install CT18ZNNLO",
        ),
        (["--pdf", "CT01nlo"], "did you mean CT10nlo?"),
        (["--pdf", "CT10nlo", "--members", "53"], "member 53 is not available"),
        (["--pdf", "CT10nlo", "--members", "a-b"], "is not N or N-M"),
        (["--pdf", "CT10nlo", "--set", "kt_np_gev"], "expected FIELD=VALUE"),
        (["--pdf", "CT10nlo", "--set", "nope=1"], "unknown theory parameter"),
        (["--pdf", "CT10nlo", "--set", "kt_np_gev=x"], "must be a number"),
        (["--pdf", "CT10nlo", "--set", "kt_np_gev=0"], "--set kt_np_gev: Input should be greater"),
        (["--pdf", "CT10nlo", "-o", "grid.txt"], "unknown theory grid file type '.txt'"),
        (["--pdf", "CT10nlo", "-o", "no/such/dir/g.h5"], "does not exist"),
    ],
)
def test_errors_are_one_line(runner, args, match):
    with runner.isolated_filesystem():
        res = runner.invoke(theory_grid, [*args, "--pdf-path", str(PDFSETS), "-q"])
        assert res.exit_code == 1
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), res.output
        assert match in lines[0]
        assert not Path("CT10nlo_grid.h5").exists()


def test_missing_option_is_a_usage_error(runner):
    res = runner.invoke(theory_grid, [])
    assert res.exit_code == 2 and "--pdf" in res.output


def test_registered_under_wmass_archive(runner, tmp_path):
    from wmass_archive.cli.archive_cmd import main

    if "theory-grid" not in main.commands:
        pytest.skip("theory-grid is not registered in wmass-archive yet")
    out = tmp_path / "g.h5"
    res = runner.invoke(
        main,
        [
            "theory-grid",
            "--pdf",
            "CT10nlo",
            "--pdf-path",
            str(PDFSETS),
            "--members",
            "0",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert load_theory_grid(out).n_members == 1
    res = runner.invoke(main, ["theory-grid", "--pdf", "nope", "--pdf-path", str(PDFSETS)])
    assert res.exit_code == 1
    assert res.output.startswith("error: unknown PDF set 'nope': not on the LHAPDF path")
