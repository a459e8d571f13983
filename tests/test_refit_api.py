"""The refit Python API: PDF swaps (in the archive, from LHAPDF, cached), user theory grids,
blinding, the result object and its JSON."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from refit_archives import OFFSET_MEV, pdf_dir

from wmass_archive.errors import TheoryError
from wmass_archive.refit import (
    RefitError,
    TheoryGrid,
    TheoryGridError,
    archive_contents,
    default_archive_path,
    make_theory_grid,
    open_archive,
    refit,
    resolve_theory,
)
from wmass_archive.refit.schema import RefitResult
from wmass_archive.theory import compute_set_grid


@pytest.fixture(scope="session")
def nominal(arcs) -> RefitResult:
    return refit(arcs["tiny"], scan=5, minos=True)


def test_nominal_result_block_and_blinding(nominal, arcs):
    r = nominal
    assert r.blinded and r.synthetic and r.fit.converged
    assert r.pdf.name == "CT10nlo" and r.pdf.nominal and r.pdf.source == "archive"
    mw = r.mw
    assert mw.reference_mev == 80360.0
    assert mw.shift_mev == pytest.approx(mw.value_mev - 80360.0)
    assert 5 < mw.unc_mev < 30
    assert mw.stat_mev**2 + mw.syst_mev**2 == pytest.approx(mw.unc_mev**2, rel=1e-9)
    text = r.summary()
    assert "SYNTHETIC" in text and "BLINDED" in text
    assert f"mW - 80360.0 MeV = {mw.shift_mev:+.1f} +- {mw.unc_mev:.1f} MeV" in text
    assert f"{mw.value_mev:.1f}" not in text  # the absolute (blinded) value is not printed
    assert "Muon momentum scale" in text and "Data sample size" in text
    # the impact table: nominal and global per group, global squares add up to the total
    imp = r.impacts
    assert imp.poi == "mW" and imp.total == pytest.approx(mw.unc_mev, rel=1e-9)
    glob = [v for v in imp.global_.values() if v is not None]
    assert np.sqrt(np.sum(np.square(glob))) == pytest.approx(imp.total, rel=1e-6)
    assert [row.label for row in imp.cms][:2] == ["Muon momentum scale", "pT^V modelling"]
    # unblinding removes exactly the archive's offset
    u = refit(arcs["tiny"], unblind=True, impacts="none")
    assert not u.blinded and "BLINDED" not in u.summary()
    assert u.mw.value_mev + OFFSET_MEV == pytest.approx(mw.value_mev, abs=1e-6)
    assert f"mW = {u.mw.value_mev:.1f} +-" in u.summary()
    assert u.impacts is None and u.mw.stat_mev is None


def test_scan_and_minos(nominal):
    r = nominal
    (s,) = r.scans
    assert len(s.shift_mev) == 5 and all(s.converged)
    assert min(s.two_delta_nll) == pytest.approx(0.0, abs=1e-6)
    assert s.two_delta_nll[0] == pytest.approx(9.0, rel=0.1)  # +-3 sigma, nearly parabolic
    lo, hi = r.mw.interval_mev
    assert lo < r.mw.value_mev < hi
    assert hi - lo == pytest.approx(2 * r.mw.unc_mev, rel=0.05)


def test_json_round_trip(nominal, tmp_path):
    p = tmp_path / "r.json"
    nominal.to_json(p)
    d = json.loads(p.read_text())
    for key in ("archive", "pdf", "synthetic", "blinded", "pois", "impacts", "gof", "timing_s"):
        assert key in d
    assert d["schema"] == "wmass-refit-result" and d["schema_version"] == "1.3"
    assert set(d["impacts"]) >= {"nominal", "global", "cms"}
    assert d["pois"]["mW"]["unc_mev"] == pytest.approx(nominal.mw.unc_mev)
    back = RefitResult.load(p)
    assert back.mw == nominal.mw and back.fit_result is None


def test_forgiving_names_and_scale(arcs):
    with open_archive(arcs["tiny"]) as a:
        for name in ("CT10", "ct10nlo", "CT-10", "CT10NLO"):
            assert resolve_theory(a, name).name == "CT10nlo"
        assert resolve_theory(a, "NNPDF3.1").name == "NNPDF31"
        assert resolve_theory(a, "NNPDF31").scale == 3.0
        assert resolve_theory(a, "NNPDF31", scale=1.5).scale == 1.5
        with pytest.raises(TheoryError, match="unknown PDF set 'NNPDF40'.*CT10nlo.*NNPDF31"):
            resolve_theory(a, "NNPDF40", paths=[str(pdf_dir())])
        with pytest.raises(TheoryError, match="positive"):
            resolve_theory(a, "CT10", scale=-1)


def test_pdf_scale_widens_pdf_uncertainty(arcs):
    base = refit(arcs["tiny"], impacts="nominal")
    wide = refit(arcs["tiny"], pdf_scale=3.0, impacts="nominal")
    assert wide.pdf.scale == 3.0 and wide.pdf.archive_scale == 1.0
    rows = [i for i, n in enumerate(base.model.theory.nuisances) if n.source == "pdf"]
    assert len(rows) == 26
    np.testing.assert_allclose(wide.model.theory.dA[rows], 3.0 * base.model.theory.dA[rows])
    # the data constrain the PDF nuisances, so the impact grows less than the prior
    pb = base.impacts.nominal["pdfCT10nlo"]
    pw = wide.impacts.nominal["pdfCT10nlo"]
    assert pw > 1.1 * pb and wide.mw.unc_mev > base.mw.unc_mev


def test_external_lhapdf_set_matches_archive_copy_and_is_cached(arcs):
    """NNPDF23 computed from LHAPDF for an archive without it gives the fit of an archive that
    carries it (same grid, same replica eigenvectors), and its grid is cached."""
    ext = refit(
        arcs["tiny"],
        pdf="NNPDF23_lo_as_0119_qed",
        pdf_path=str(pdf_dir()),
        pdf_scale=3.0,
        impacts="nominal",
    )
    own = refit(arcs["tiny_full"], pdf="nnpdf2.3", impacts="nominal")
    assert ext.pdf.source == "lhapdf" and own.pdf.source == "archive"
    assert ext.pdf.n_nuisances == own.pdf.n_nuisances > 0
    assert ext.pdf.variance_kept == pytest.approx(own.pdf.variance_kept)
    assert ext.mw.value_mev == pytest.approx(own.mw.value_mev, abs=1e-6)
    assert ext.mw.unc_mev == pytest.approx(own.mw.unc_mev, rel=1e-8)
    assert "checked" in ext.pdf.theory_parameters
    assert ext.pdf.grid_file and os.path.isfile(ext.pdf.grid_file)
    again = refit(
        arcs["tiny"], pdf="nnpdf23_lo_as_0119_qed", pdf_path=str(pdf_dir()), impacts="none"
    )
    assert again.pdf.grid_cached and again.pdf.scale == 1.0  # external sets default to x1
    assert "computed from LHAPDF (cached grid)" in again.summary()


def test_user_theory_grid(arcs, tmp_path):
    grid = compute_set_grid("CT10nlo", paths=[str(pdf_dir())], members=0, progress=False)
    base = refit(arcs["tiny"], impacts="none")
    for name in ("g.h5", "g.csv"):
        grid.save(tmp_path / name)
        r = refit(arcs["tiny"], theory=tmp_path / name, impacts="none")
        assert r.theory.source == "user" and r.theory.ratio_to_nominal == pytest.approx(1.0)
        assert r.mw.value_mev == pytest.approx(base.mw.value_mev, abs=1e-6)
    # a harder pT^W spectrum in the prediction moves mW
    v = grid.values.copy()
    v[..., 0, :] *= 0.97
    harder = TheoryGrid(v, grid.meta)
    r = refit(arcs["tiny"], theory=harder, impacts="none")
    assert abs(r.mw.value_mev - base.mw.value_mev) > 0.1
    flat = refit(arcs["tiny"], theory=v.reshape(-1), impacts="none")
    assert flat.mw.value_mev == pytest.approx(r.mw.value_mev, abs=1e-9)


def test_user_theory_grid_errors(arcs, tmp_path):
    grid = compute_set_grid("CT10nlo", paths=[str(pdf_dir())], members=0, progress=False)
    with pytest.raises(TheoryError, match="wrong units"):
        refit(arcs["tiny"], theory=grid.values * 1000.0, impacts="none")
    neg = grid.values.copy()
    neg[0, 1, 2, 3, 0] = -5.0
    with pytest.raises(TheoryGridError, match="negative sigma_UL"):
        refit(arcs["tiny"], theory=neg, impacts="none")
    with pytest.raises(TheoryError, match="1439 values"):
        refit(arcs["tiny"], theory=np.ones(1439), impacts="none")
    with pytest.raises(TheoryGridError, match="axes"):
        make_theory_grid(np.ones((2, 8, 10, 9)), axes=("qW", "y", "ptW", "helicity"))
    bad = tmp_path / "bad.csv"
    bad.write_text("qW,absYW_lo,absYW_hi,ptW_lo,ptW_hi,helicity,sigma_pb\n-1,0,0.7,0,3,UL,1\n")
    with pytest.raises(TheoryGridError):
        refit(arcs["tiny"], theory=bad, impacts="none")


def test_make_theory_grid_named_axes_and_hist():
    import hist

    rng = np.random.default_rng(1)
    v = rng.uniform(1, 2, size=(2, 8, 10, 9))
    g = make_theory_grid(np.transpose(v, (3, 2, 1, 0)), axes=("helicity", "ptW", "absYW", "qW"))
    np.testing.assert_array_equal(g.values[0], v)
    axes = [a.to_hist() for a in g.axes]
    h = hist.Hist(*axes)
    h[...] = v
    np.testing.assert_array_equal(make_theory_grid(h).values[0], v)


def test_archive_contents(arcs):
    c = archive_contents(arcs["tiny"])
    assert [s.name for s in c.pdf_sets] == ["CT10nlo", "NNPDF31"]
    assert c.nuisance_groups["muonCalibration"] == 4 and c.nuisance_groups["pdfCT10nlo"] == 26
    assert [a.name for a in c.binning["mu"]] == ["charge", "eta", "pt"]
    assert [a.name for a in c.theory_axes] == ["qW", "absYW", "ptW", "helicity"]
    assert c.theory_axes[2].edges[-1] == 100.0 and c.n_gen == 1440
    assert "generator axes" in c.text()


def test_default_archive(monkeypatch, arcs, tmp_path):
    monkeypatch.setenv("WMASS_ARCHIVE_DEFAULT", str(tmp_path / "missing.h5"))
    with pytest.raises(RefitError, match="no such archive.*build-demo"):
        default_archive_path()
    monkeypatch.setenv("WMASS_ARCHIVE_DEFAULT", str(arcs["tiny"]))
    assert default_archive_path() == arcs["tiny"]
    r = refit(impacts="none")
    assert r.archive.name == "tiny.h5"


def test_bad_options(arcs):
    with pytest.raises(RefitError, match=r"unknown POI 'mz': choose mw, mw-charge.*\(mW\)"):
        refit(arcs["tiny"], poi="mz")
    with pytest.raises(RefitError, match="impacts"):
        refit(arcs["tiny"], impacts="all")
    with pytest.raises(Exception, match="matches no parameter"):
        refit(arcs["tiny"], freeze=["noSuchGroup"], impacts="none")


def test_freeze_and_asimov(arcs, nominal):
    fr = refit(arcs["tiny"], freeze=["muonCalibration"], impacts="nominal")
    assert fr.fit.frozen == ["muonCalibration"]
    assert fr.mw.unc_mev < nominal.mw.unc_mev
    expect = np.sqrt(nominal.mw.unc_mev**2 - nominal.impacts.nominal["muonCalibration"] ** 2)
    assert fr.mw.unc_mev == pytest.approx(expect, rel=1e-3)
    asi = refit(arcs["tiny"], asimov=True, impacts="none")
    # Asimov data are shown without the blinding offset (it would print the offset itself)
    assert asi.fit.asimov and not asi.blinded
    assert asi.mw.shift_mev == pytest.approx(0.0, abs=1e-3)
    text = asi.summary()
    assert "[Asimov]" in text and "BLINDED" not in text and f"{OFFSET_MEV:+.1f}" not in text
