"""``wmass-refit`` end to end on the small pseudo-analysis archive (2880 bins, ~3200 nuisances,
three real PDF sets): the result block, an LHAPDF set the archive lacks (a copy of NNPDF23 under
another name) giving exactly the fit with the archive's own NNPDF23, and the PDF sweep. Marked
``slow`` (minutes): ``python -m pytest -q -m slow tests/test_refit_slow.py``."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from refit_archives import pdf_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from wmass_archive.producers.pseudo.build import build_pseudo_analysis
    from wmass_archive.producers.pseudo.config import TEST_CONFIG, PseudoAnalysisConfig

    base = tmp_path_factory.mktemp("refit-slow")
    path = base / "small.h5"
    build_pseudo_analysis(
        path, PseudoAnalysisConfig(**TEST_CONFIG), paths=[str(pdf_dir())], progress=False
    )
    # an LHAPDF folder with NNPDF23 under a name the archive does not know
    src = pdf_dir() / "NNPDF23_lo_as_0119_qed"
    dst = base / "lhapdf" / "MYNNPDF23"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        name = f.name.replace("NNPDF23_lo_as_0119_qed", "MYNNPDF23")
        if f.suffix == ".info":
            (dst / name).write_text(f.read_text().replace("NNPDF23_lo_as_0119_qed", "MYNNPDF23"))
        else:
            (dst / name).symlink_to(f)
    os.environ.setdefault("XDG_CACHE_HOME", str(base / "cache"))
    return path, base / "lhapdf"


def test_pseudo_analysis_refit_end_to_end(small, tmp_path):
    from wmass_archive.cli.refit_cmd import main

    path, lhapdf = small
    js = tmp_path / "own.json"
    res = CliRunner().invoke(main, ["--archive", str(path), "--pdf", "NNPDF2.3", "--json", str(js)])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "CMS-like W-mass pseudo-analysis" in out and "SYNTHETIC" in out and "BLINDED" in out
    for label in (
        "Muon momentum scale",
        "Muon reco. efficiency",
        "W and Z angular coeffs.",
        "Higher-order EW",
        "pT^V modelling",
        "PDF",
        "Nonprompt background",
        "Integrated luminosity",
        "MC sample size",
        "Data sample size",
    ):
        assert label in out, label
    own = json.loads(js.read_text())
    js2 = tmp_path / "ext.json"
    res = CliRunner().invoke(
        main,
        [
            "--archive",
            str(path),
            "--pdf",
            "mynnpdf23",
            "--pdf-path",
            str(lhapdf),
            "--pdf-scale",
            str(own["pdf"]["scale"]),
            "--json",
            str(js2),
            "--impacts",
            "none",
        ],
    )
    assert res.exit_code == 0, res.output
    ext = json.loads(js2.read_text())
    assert ext["pdf"]["source"] == "lhapdf" and "checked" in ext["pdf"]["theory_parameters"]
    assert ext["pois"]["mW"]["value_mev"] == pytest.approx(own["pois"]["mW"]["value_mev"], abs=1e-4)
    assert ext["pois"]["mW"]["unc_mev"] == pytest.approx(own["pois"]["mW"]["unc_mev"], rel=1e-6)


def test_pseudo_analysis_pdf_sweep(small):
    from wmass_archive.refit import refit

    path, _ = small
    r = refit(path, pdf_sweep=True, impacts="none")
    assert [row.pdf for row in r.sweep] == ["CT10nlo", "NNPDF23", "NNPDF31"]
    assert all(row.converged for row in r.sweep)
    for row in r.sweep:
        assert row.scaled_unc_mev >= row.unc_mev - 1e-6
