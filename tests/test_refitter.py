"""The theory resolved once and the reusable refitter (issue 15).

* ``Model.with_theory`` gives exactly the model that ``build_model`` builds for the same
  theory (another PDF set of the same structure, another scale, a user grid), sharing the
  archive's arrays; a theory of another structure or from another archive is not swapped in;
* a :class:`Refitter` refits as ``refit()`` does (same minimum, same uncertainty), whatever
  it fitted before (warm starts change nothing but the path to the minimum);
* its PDF sweep agrees with the refits of each set.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wmass_archive.archive.reader import open_archive
from wmass_archive.errors import TheoryError
from wmass_archive.model.build import build_model
from wmass_archive.model.model import ModelError
from wmass_archive.refit import Refitter, refit
from wmass_archive.theory.resolve import resolve_theory

THEORY_ARRAYS = ("th_central", "th_dA", "th_dH", "th_mA", "th_mH", "th_ps", "th_param", "th_col")


def _same_model(a, b) -> None:
    assert a.static == b.static
    assert a.info == b.info
    for k in THEORY_ARRAYS:
        np.testing.assert_array_equal(np.asarray(a.arrays[k]), np.asarray(b.arrays[k]), err_msg=k)
    for fa, fb in zip(a.arrays["folds"], b.arrays["folds"], strict=True):
        np.testing.assert_array_equal(np.asarray(fa["active"]), np.asarray(fb["active"]))
    x = np.random.default_rng(3).normal(0.0, 0.3, a.n_params)
    np.testing.assert_allclose(a.expected(x), b.expected(x), rtol=1e-12)


def test_with_theory_equals_a_rebuilt_model(arcs):
    with open_archive(arcs["tiny"]) as a:
        base = build_model(a, theory=resolve_theory(a))
        nominal = a.theory_nominal()
        ct10 = resolve_theory(a, "CT10")
        tilt = np.linspace(0.99, 1.01, nominal.size)
        other = dataclasses.replace(  # another Hessian set with as many members
            ct10,
            pdf=ct10.pdf.model_copy(update={"name": "Other", "lhapdf_name": "Other"}),
            members=ct10.members * tilt,
            central=ct10.members[0] * tilt,
            nominal_set=False,
        )
        cases = [
            other,
            resolve_theory(a, "CT10", scale=1.0),  # another scale factor
            resolve_theory(a, grid=nominal * np.linspace(0.97, 1.03, nominal.size)),
        ]
        for th in cases:
            swapped = base.with_theory(th)
            assert swapped is not None, th
            assert swapped.arrays["folds"][0]["R"] is base.arrays["folds"][0]["R"]  # shared
            _same_model(swapped, build_model(a, theory=th))
            assert swapped.resolved is th


def test_with_theory_refuses_another_structure(arcs):
    with open_archive(arcs["tiny_full"]) as a:
        base = build_model(a, theory=resolve_theory(a))
        for name in ("NNPDF23", "NNPDF31"):  # replicas, central only: other nuisance counts
            other = resolve_theory(a, name)
            assert other.pdf.n_nuisances != base.resolved.pdf.n_nuisances
            assert base.with_theory(other) is None
            assert build_model(a, theory=other).info.pdf_set == other.name


def test_a_theory_of_another_archive_is_refused(arcs):
    with open_archive(arcs["tiny"]) as a:
        th = resolve_theory(a)
    with open_archive(arcs["tiny_full"]) as b:  # same binning and variations: accepted
        assert build_model(b, theory=th).info.pdf_set == th.name
    with open_archive(arcs["rates"]) as c, pytest.raises(ModelError, match="no folded process"):
        build_model(c, theory=th)
    with open_archive(arcs["rates"]) as c, pytest.raises(TheoryError):
        resolve_theory(c)  # no theory: nothing to resolve


def test_refitter_refits_as_refit_does(arcs):
    path = arcs["tiny"]
    nominal = refit(path, impacts="none")
    nn = refit(path, pdf="NNPDF3.1", impacts="nominal")
    with open_archive(path) as a:
        grid = a.theory_nominal() * np.linspace(0.98, 1.02, a.metadata.theory.n_gen)
    user = refit(path, theory=grid, impacts="none")
    with Refitter(path) as rf:
        first = rf.fit(impacts="none")
        again = rf.fit("NNPDF3.1", impacts="nominal")  # swapped in, warm start
        mine = rf.fit(grid=grid, impacts="none")
        back = rf.fit(impacts="none")
        model = rf.model()
    for a, b in ((first, nominal), (again, nn), (mine, user), (back, nominal)):
        assert a.fit.converged and b.fit.converged
        assert a.pdf.name == b.pdf.name and a.theory == b.theory
        assert a.mw.shift_mev == pytest.approx(b.mw.shift_mev, abs=2e-3)
        assert a.mw.unc_mev == pytest.approx(b.mw.unc_mev, rel=1e-5)
    assert again.impacts.nominal == pytest.approx(nn.impacts.nominal, rel=1e-4, abs=1e-4)
    assert mine.theory.source == "user" and mine.resolved_theory.grid_source == "user"
    assert model is back.model  # the nominal model was kept, not rebuilt


def test_refitter_sweep_agrees_with_each_refit(arcs):
    path = arcs["tiny"]
    with Refitter(path) as rf:
        main = rf.fit(impacts="none")
        rows = {r.pdf: r for r in rf.pdf_sweep(main)}
        for name in ("CT10nlo", "NNPDF31"):
            own = rf.fit(name, impacts="none", warm_start=False)
            one = rf.fit(name, pdf_scale=1.0, impacts="none", warm_start=False)
            assert rows[name].scaled_shift_mev == pytest.approx(own.mw.shift_mev, abs=2e-3)
            assert rows[name].scaled_unc_mev == pytest.approx(own.mw.unc_mev, rel=1e-5)
            assert rows[name].shift_mev == pytest.approx(one.mw.shift_mev, abs=2e-3)
            assert rows[name].unc_mev == pytest.approx(one.mw.unc_mev, rel=1e-5)


def test_refitter_errors_are_one_line(arcs):
    with Refitter(arcs["tiny"]) as rf:
        with pytest.raises(TheoryError, match="unknown PDF set 'NoSuchSet'"):
            rf.fit("NoSuchSet")
        with pytest.raises(TheoryError, match="positive"):
            rf.theory("CT10", scale=0.0)
    with Refitter(arcs["rates"]) as rf:
        assert rf.theory() is None
        with pytest.raises(Exception, match="has no theory"):
            rf.fit("CT10")


def test_pdf_means_the_same_in_every_command(arcs, tmp_path, monkeypatch):
    """--pdf, --pdf-path and --pdf-scale resolve once, the same way, in wmass-refit and the
    exports: the same one-line error for a set that is nowhere, an LHAPDF set the archive
    lacks exported with its own nuisances, a scale factor that reaches the tensor."""
    from click.testing import CliRunner
    from refit_archives import pdf_dir

    from wmass_archive.cli.export_cmd import export
    from wmass_archive.cli.refit_cmd import main as wmass_refit
    from wmass_archive.interop.rabbit import read_rabbit_tensor

    monkeypatch.delenv("LHAPDF_DATA_PATH", raising=False)
    run = CliRunner().invoke
    path, sets = str(arcs["tiny"]), ["--pdf-path", str(pdf_dir())]
    bad = ["--pdf", "NNPDF40", *sets]
    r1 = run(wmass_refit, ["--archive", path, *bad, "--impacts", "none", "-q"])
    r2 = run(export, ["rabbit", path, "-o", str(tmp_path / "t.hdf5"), *bad, "-q"])
    assert r1.exit_code == r2.exit_code == 1
    line = "error: unknown PDF set 'NNPDF40': not in tiny.h5"
    assert r1.output.startswith(line) and r1.output == r2.output
    assert "install the LHAPDF set NNPDF40_nnlo_as_01180" in r1.output
    ext = ["--pdf", "NNPDF23_lo_as_0119_qed", *sets]
    out = tmp_path / "ext.hdf5"
    assert run(export, ["rabbit", path, "-o", str(out), *ext, "-q"]).exit_code == 0
    tensor = read_rabbit_tensor(out)
    assert any(s.startswith("pdfNNPDF23_lo_as_0119_qedEV") for s in tensor.systs)
    avg = {}
    for scale in ("1", "2"):
        f = tmp_path / f"s{scale}.hdf5"
        args = ["rabbit", path, "-o", str(f), "--pdf", "CT10", "--pdf-scale", scale, "-q"]
        assert run(export, args).exit_code == 0
        t = read_rabbit_tensor(f)
        avg[scale] = t.logk_avg[:, t.systs.index("pdfCT10nloEV1")].toarray().ravel()
    big = np.abs(avg["1"]) > 1e-4
    assert big.any()
    # the log of yields shifted by 2x the PDF shift: close to twice the log-normal effect
    np.testing.assert_allclose(avg["2"][big] / avg["1"][big], 2.0, rtol=0.05)
