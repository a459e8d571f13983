"""Rules the writer enforces beyond shapes and values: folding closure, sparse responses,
PDF names, replica sets, which parameters may carry variations."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from wmass_archive import ArchiveWriter, Axis, open_archive
from wmass_archive.archive import POI, SparseTensor
from wmass_archive.archive.folding import folding_problem
from wmass_archive.archive.models import Theory
from wmass_archive.errors import ContentError


def test_folding_check_is_relative_per_bin():
    nom = np.array([1e6, 1.0, 0.0])
    assert folding_problem(nom * (1 + 0.9e-6), nom) is None
    problem = folding_problem(nom + np.array([0.0, 2e-6, 0.0]), nom)  # 2e-6 relative, small bin
    assert problem is not None and "bin 1" in problem
    assert folding_problem(nom + np.array([0.0, 0.0, 1e-7]), nom) is None  # rounding, empty bin


def test_pdf_names_must_be_unique_when_compared_loosely():
    gen = [Axis.category([1], name="g")]
    common = dict(error_type="replicas", n_members=1)
    with pytest.raises(ValidationError, match="ignoring case"):
        Theory(
            generator_axes=gen,
            nominal_pdf="A",
            pdf_sets=[
                dict(name="A", lhapdf_name="NNPDF40", **common),
                dict(name="B", lhapdf_name="x", aliases=["NNPDF4.0"], **common),
            ],
        )
    # an alias that differs from its own name only in spelling is fine
    Theory(
        generator_axes=gen,
        nominal_pdf="A",
        pdf_sets=[dict(name="A", lhapdf_name="nnpdf40", aliases=["NNPDF4.0"], **common)],
    )


def _writer(n_gen=4, lumi=10.0):
    w = ArchiveWriter(
        title="t",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "t", "producer_version": "0"},
        luminosity=lumi,
    )
    w.add_channel("c", np.ones(3), axes=[Axis.regular(3, 0, 1, name="x")])
    w.set_theory([Axis.regular(n_gen, 0, 1, name="g")], np.arange(1.0, n_gen + 1), nominal_pdf="P")
    w.add_pdf_set(
        name="P", lhapdf_name="P", error_type="replicas", members=np.arange(1.0, n_gen + 1)
    )
    w.add_process("W", folded=True)
    w.add_process("B")
    w.set_yield("B", "c", np.ones(3), sumw2=np.ones(3))
    return w


def test_sparse_response_input_is_kept_sparse(tmp_path):
    w = _writer()
    coords = np.array([[0, 0, 0], [2, 0, 1], [3, 0, 1]])  # (point, bin, gen), unsorted
    t = SparseTensor(coords, np.array([0.5, 0.25, 0.125]), (1, 3, 4))
    sigma = np.arange(1.0, 5.0)
    nom = 10.0 * t.todense()[0] @ sigma
    w.set_yield("W", "c", nom, sumw2=nom)
    w.set_response("W", "c", t)
    w.write(tmp_path / "a.h5")
    with open_archive(tmp_path / "a.h5") as a:
        got = a.response("W", "c", dense=False)
        assert "channels/c/processes/W/response/value" in a.metadata.datasets
        np.testing.assert_array_equal(got.todense(), t.todense())


def test_folding_mismatch_is_refused(tmp_path):
    w = _writer()
    r = np.full((1, 3, 4), 0.1)
    w.set_yield("W", "c", 10.0 * r[0] @ np.arange(1.0, 5.0) * 1.001, sumw2=np.ones(3))
    w.set_response("W", "c", r)
    with pytest.raises(ContentError, match="folding with the nominal theory"):
        w.write(tmp_path / "a.h5")
    assert not (tmp_path / "a.h5").exists()


def test_replicas_without_spread_are_refused():
    w = _writer()
    with pytest.raises(ContentError, match="no spread"):
        w.add_pdf_set(
            name="R",
            lhapdf_name="R",
            error_type="replicas",
            members=np.tile(np.arange(1.0, 5.0), (5, 1)),
        )


def test_pdf_nuisance_names():
    from wmass_archive.archive import PDFSet

    s = PDFSet(name="CT10", lhapdf_name="CT10nlo", error_type="hessian", n_members=5)
    assert s.nuisance_names == ["pdfCT10EV1", "pdfCT10EV2"] and s.group == "pdfCT10"


def test_rate_poi_cannot_carry_variations(tmp_path):
    w = _writer()
    r = np.full((1, 3, 4), 0.1)
    w.set_yield("W", "c", 10.0 * r[0] @ np.arange(1.0, 5.0), sumw2=np.ones(3))
    w.set_response("W", "c", r)
    w.add_poi(POI(name="r", kind="rate", central=1, scale=1, acts_on=[{"process": "B"}]))
    w.add_variation("r", "B", "c", kappa=1.1)
    with pytest.raises(ContentError, match="only as a mass POI"):
        w.write(tmp_path / "a.h5")
