"""The metadata models: axes, POIs, PDF sets, cross references, name lookup."""

from __future__ import annotations

import hist
import numpy as np
import pytest
from pydantic import ValidationError

from wmass_archive.archive import POI, Axis, PDFSet, find_pdf_set, replica_eigenvectors
from wmass_archive.archive.models import ArchiveMetadata


def test_axis_from_and_to_hist():
    h_axes = [
        hist.axis.Regular(48, -2.4, 2.4, name="eta", label="muon eta"),
        hist.axis.Variable([26, 30, 56], name="pt", metadata={"unit": "GeV"}),
        hist.axis.IntCategory([-1, 1], name="charge"),
        hist.axis.StrCategory(["UL", "A0"], name="helicity"),
        hist.axis.Integer(0, 3, name="n"),
    ]
    axes = [Axis.from_hist(a) for a in h_axes]
    assert [a.type for a in axes] == [
        "regular",
        "variable",
        "category_int",
        "category_str",
        "category_int",
    ]
    assert [a.size for a in axes] == [48, 2, 2, 2, 3]
    assert axes[1].unit == "GeV" and axes[0].label == "muon eta"
    np.testing.assert_allclose(axes[0].bin_edges(), np.linspace(-2.4, 2.4, 49))
    assert axes[4].categories == [0, 1, 2]
    for a in axes[:4]:
        back = Axis.from_hist(a.to_hist())
        assert back.same_binning(a) and back.unit == a.unit


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(name="x", type="regular", bins=3, lower=1.0, upper=0.0), "lower < upper"),
        (dict(name="x", type="variable", edges=[0.0, 2.0, 1.0]), "increasing"),
        (dict(name="x", type="category_int", categories=[1, 1]), "duplicate"),
        (dict(name="x", type="regular", bins=3, lower=0, upper=1, edges=[0, 1]), "no edges"),
        (dict(name="bad name", type="category_int", categories=[1]), "pattern"),
    ],
)
def test_axis_rejects(kwargs, msg):
    with pytest.raises(ValidationError, match=msg):
        Axis(**kwargs)


def test_unnamed_hist_axis_is_refused():
    from wmass_archive.errors import ContentError

    with pytest.raises(ContentError, match="named"):
        Axis.from_hist(hist.axis.Regular(3, 0, 1))


def test_poi_rules():
    p = POI(
        name="mW",
        kind="mass",
        unit="MeV",
        central=80360,
        scale=100,
        mass_points=[-1, 0, 1],
        acts_on=[{"process": "W"}],
    )
    assert p.nominal_point == 1
    with pytest.raises(ValidationError, match="contain 0"):
        POI(
            name="mW",
            kind="mass",
            central=0,
            scale=1,
            mass_points=[-1, 1],
            acts_on=[{"process": "W"}],
        )
    with pytest.raises(ValidationError, match="increasing"):
        POI(
            name="mW",
            kind="mass",
            central=0,
            scale=1,
            mass_points=[1, 0],
            acts_on=[{"process": "W"}],
        )
    with pytest.raises(ValidationError, match="no mass points"):
        POI(
            name="r",
            kind="rate",
            central=1,
            scale=1,
            mass_points=[-1, 0, 1],
            acts_on=[{"process": "W"}],
        )


def test_pdf_set_rules_and_nuisance_counts():
    assert (
        PDFSet(
            name="CT",
            lhapdf_name="CT10nlo",
            error_type="hessian",
            n_members=53,
            confidence_level=90,
        ).n_nuisances
        == 26
    )
    assert (
        PDFSet(name="S", lhapdf_name="S", error_type="symmhessian", n_members=31).n_nuisances == 30
    )
    assert PDFSet(name="N", lhapdf_name="N", error_type="replicas", n_members=1).n_nuisances == 0
    with pytest.raises(ValidationError, match="1 \\+ 2k"):
        PDFSet(name="CT", lhapdf_name="CT", error_type="hessian", n_members=52)
    with pytest.raises(ValidationError, match="eigenvectors stored"):
        PDFSet(name="N", lhapdf_name="N", error_type="replicas", n_members=101)


@pytest.mark.parametrize(
    "query", ["NNPDF40", "NNPDF4.0", "nnpdf40_nnlo_as_01180", "nnpdf-4.0", "NNPDF40_NNLO_AS_01180"]
)
def test_find_pdf_set_is_forgiving(query):
    sets = [
        PDFSet(name="CT18", lhapdf_name="CT18NNLO", error_type="hessian", n_members=59),
        PDFSet(
            name="NNPDF40",
            lhapdf_name="NNPDF40_nnlo_as_01180",
            aliases=["NNPDF4.0"],
            error_type="replicas",
            n_members=1,
        ),
    ]
    assert find_pdf_set(sets, query).name == "NNPDF40"
    assert find_pdf_set(sets, "MSHT20") is None


def test_replica_eigenvectors_match_hand_calculation():
    # two independent directions with variances 4 and 1, plus nothing else
    rng = np.random.default_rng(1)
    n = 4000
    a, b = rng.normal(0, 2, n), rng.normal(0, 1, n)
    e1, e2 = np.array([1.0, 1.0, 0.0]) / np.sqrt(2), np.array([0.0, 0.0, 1.0])
    reps = 10.0 + a[:, None] * e1 + b[:, None] * e2
    cov = np.cov(reps, rowvar=False)
    lam, vec = np.linalg.eigh(cov)
    shifts, kept = replica_eigenvectors(reps, 0.999)
    assert shifts.shape == (2, 3)
    np.testing.assert_allclose(kept, 1.0, atol=1e-12)
    # same eigen-decomposition as numpy's (up to sign)
    np.testing.assert_allclose(np.abs(shifts[0]), np.sqrt(lam[-1]) * np.abs(vec[:, -1]), rtol=1e-9)
    np.testing.assert_allclose(np.abs(shifts[1]), np.sqrt(lam[-2]) * np.abs(vec[:, -2]), rtol=1e-9)
    # keeping 75% of the variance needs only the first direction (4 / 5 = 80%)
    one, kept1 = replica_eigenvectors(reps, 0.75)
    assert one.shape == (1, 3) and kept1 == pytest.approx(lam[-1] / lam.sum())


def _meta(**over):
    base = dict(
        title="t",
        synthetic=True,
        citation={"title": "c"},
        provenance={"producer": "p", "producer_version": "1"},
        channels=[
            {
                "name": "ch",
                "axes": [{"name": "x", "type": "regular", "bins": 2, "lower": 0, "upper": 1}],
                "processes": ["A"],
            }
        ],
        processes=[{"name": "A"}],
    )
    base.update(over)
    return ArchiveMetadata.model_validate(base)


@pytest.mark.parametrize(
    "over, msg",
    [
        (dict(processes=[{"name": "B"}]), "unknown process 'A'"),
        (dict(nuisances=[{"name": "n", "groups": ["nope"]}]), "unknown group 'nope'"),
        (dict(nuisances=[{"name": "n"}, {"name": "n"}]), "duplicate parameter names"),
        (dict(processes=[{"name": "A", "folded": True}]), "theory section"),
        (
            dict(
                pois=[
                    {
                        "name": "r",
                        "kind": "rate",
                        "central": 1,
                        "scale": 1,
                        "acts_on": [{"process": "Z"}],
                    }
                ]
            ),
            "unknown process 'Z'",
        ),
        (dict(format_version="1.0"), "MAJOR.MINOR.PATCH"),
    ],
)
def test_cross_references_are_checked(over, msg):
    with pytest.raises(ValidationError, match=msg):
        _meta(**over)


def test_metadata_lookups():
    m = _meta(
        nuisances=[{"name": "n1"}],
        pois=[
            {"name": "r", "kind": "rate", "central": 1, "scale": 1, "acts_on": [{"process": "A"}]}
        ],
    )
    assert m.parameter_names == ["r", "n1"] and m.parameter_index("n1") == 1
    assert m.n_bins == 2 and m.major_minor == (1, 0)
    with pytest.raises(KeyError, match="no channel named 'zz'"):
        m.channel("zz")
