"""TheoryGrid: validation, HDF5 and CSV round trips, and a clear one-line error for each kind
of bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from wmass_archive.archive.axes import Axis
from wmass_archive.errors import ContentError
from wmass_archive.theory import (
    GRID_SHAPE,
    TheoryGrid,
    TheoryGridError,
    TheoryGridMeta,
    compute_grid,
    compute_set_grid,
    generator_axes,
    load_member,
    load_theory_grid,
)

PDFSETS = Path(
    os.environ.get("WMASS_PDFSETS", Path(__file__).resolve().parents[2] / "shared" / "pdfsets")
)
needs_sets = pytest.mark.skipif(not PDFSETS.is_dir(), reason="shared PDF sets not available")


def synthetic(n_members: int = 1) -> TheoryGrid:
    """A grid that needs no PDF: random positive UL, A_i of both signs."""
    rng = np.random.default_rng(n_members)
    v = rng.uniform(-1.0, 1.0, (n_members, *GRID_SHAPE))
    v[..., 0] = rng.uniform(0.0, 100.0, v.shape[:-1])
    return TheoryGrid(v, TheoryGridMeta(pdf_set="Toy", pdf_members=list(range(n_members))))


def assert_same(a: TheoryGrid, b: TheoryGrid) -> None:
    assert np.array_equal(a.values, b.values)
    assert a.meta == b.meta


@pytest.mark.parametrize("suffix", [".h5", ".csv"])
@pytest.mark.parametrize("n", [1, 3])
def test_round_trip_is_exact(tmp_path, suffix, n):
    g = synthetic(n)
    path = g.save(tmp_path / f"g{suffix}")
    assert_same(load_theory_grid(path), g)
    assert_same(TheoryGrid.load(path), g)


@needs_sets
def test_round_trip_of_a_computed_grid(tmp_path):
    g = compute_set_grid("CT10nlo", paths=PDFSETS, members="0-4", progress=False)
    for suffix in (".h5", ".csv"):
        back = load_theory_grid(g.save(tmp_path / f"ct{suffix}"))
        assert_same(back, g)
        assert back.meta.parameters == g.meta.parameters
        assert back.meta.pdf_conf_level == 90
    one = compute_grid(load_member("CT10nlo", 0, PDFSETS))
    np.testing.assert_array_equal(one.central, g.central)
    with pytest.raises(TheoryGridError, match="needs all members 0-52 of CT10nlo"):
        g.archive_pdf_kwargs()
    full = compute_set_grid("CT10nlo", paths=PDFSETS, progress=False)
    kw = full.archive_pdf_kwargs(scale=1.0)
    assert kw["error_type"] == "hessian" and kw["confidence_level"] == 90
    assert kw["members"].shape == (53, 1440) and kw["name"] == "CT10nlo"


def test_csv_layout(tmp_path):
    g = synthetic(1)
    text = g.to_csv()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines[0] == "qW,absYW_lo,absYW_hi,ptW_lo,ptW_hi,helicity,sigma_pb"
    assert len(lines) == 1 + 1440
    assert lines[1].startswith("-1,0,0.5,0,3,UL,")
    assert lines[-1].startswith("1,3.5,5,40,100,A7,")
    multi = synthetic(2).to_csv().splitlines()
    assert [ln for ln in multi if not ln.startswith("#")][0].startswith("member,qW,")
    # a CSV without metadata (e.g. made by another tool) is read with default metadata
    p = tmp_path / "bare.csv"
    p.write_text("\n".join(lines) + "\n")
    back = load_theory_grid(p)
    assert np.array_equal(back.values, g.values) and back.meta.pdf_set == "unknown"
    # rows in any order
    p.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    assert np.array_equal(load_theory_grid(p).values, g.values)


def test_views():
    g = synthetic(3)
    assert g.flat().shape == (3, 1440) and g.totals().shape == (3, 2)
    np.testing.assert_array_equal(g.member(2), g.values[2])
    with pytest.raises(KeyError, match="member 7"):
        g.member(7)
    assert g.coefficients().shape == (3, 2, 8, 10, 8)
    with pytest.raises(TheoryGridError, match="pdf_error_type"):
        g.archive_pdf_kwargs()


# ----------------------------------------------------------------------------------------------
# validate(): each problem, one line
# ----------------------------------------------------------------------------------------------


def _bad_values(kind: str) -> TheoryGrid:
    g = synthetic(2)
    v = g.values.copy()
    meta = g.meta
    if kind == "shape":
        v = v[:, :, :7]
    elif kind == "nan":
        v[1, 0, 3, 2, 4] = np.nan
    elif kind == "negative":
        v[0, 1, 2, 3, 0] = -1.0
    elif kind == "members":
        meta = meta.model_copy(update={"pdf_members": [0]})
    elif kind == "duplicate":
        meta = meta.model_copy(update={"pdf_members": [0, 0]})
    elif kind == "axes":
        axes = generator_axes()
        axes[2] = Axis.variable([0, 3, 5, 7, 9, 12, 15, 20, 27, 40, 80], name="ptW")
        meta = meta.model_copy(update={"axes": axes})
    elif kind == "order":
        axes = generator_axes()
        meta = meta.model_copy(update={"axes": [axes[1], axes[0], axes[2], axes[3]]})
    elif kind == "int":
        v = v.astype(np.int64)
    return TheoryGrid(v, meta)


@pytest.mark.parametrize(
    "kind,match",
    [
        ("shape", r"shape \(2, 2, 7, 10, 9\), expected \(n_members, 2, 8, 10, 9\)"),
        ("nan", r"1 non-finite value\(s\), first at member 1, qW=-1, \|y\| in \[1.5, 2\]"),
        ("negative", r"negative sigma_UL value\(s\), first -1 pb at member 0, qW=\+1"),
        ("members", "metadata lists 1 PDF members but values hold 2"),
        ("duplicate", "must be distinct"),
        ("axes", "axis 'ptW' has a binning different"),
        ("order", "axes are"),
        ("int", "must be a float numpy array"),
    ],
)
def test_validate_errors(kind, match):
    with pytest.raises(TheoryGridError, match=match) as err:
        _bad_values(kind).validate()
    assert "\n" not in str(err.value)
    assert isinstance(err.value, ContentError)


def test_save_refuses_invalid_grids_and_bad_paths(tmp_path):
    with pytest.raises(TheoryGridError, match="non-finite"):
        _bad_values("nan").save(tmp_path / "x.h5")
    assert not list(tmp_path.iterdir())
    with pytest.raises(TheoryGridError, match="unknown theory grid file type '.txt'"):
        synthetic().save(tmp_path / "x.txt")
    with pytest.raises(TheoryGridError, match="does not exist"):
        synthetic().save(tmp_path / "no" / "x.h5")


# ----------------------------------------------------------------------------------------------
# bad files
# ----------------------------------------------------------------------------------------------


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(TheoryGridError, match="no such theory grid file"):
        load_theory_grid(tmp_path / "none.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(TheoryGridError, match="not an HDF5 file"):
        load_theory_grid(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(TheoryGridError, match="not a theory grid file"):
        load_theory_grid(tmp_path / "other.h5")


def _damage_h5(path: Path, what: str) -> None:
    with h5py.File(path, "r+") as f:
        if what == "values":
            del f["values"]
        elif what == "shape":
            del f["values"]
            f["values"] = np.zeros((1, 2, 8, 10, 8))
        elif what == "json":
            del f["metadata"]
            f["metadata"] = "{not json"
        elif what == "field":
            meta = json.loads(f["metadata"][()])
            meta["unit"] = "fb"
            del f["metadata"]
            f["metadata"] = json.dumps(meta)
        elif what == "version":
            f.attrs["format_version"] = "2.0"
        elif what == "members":
            del f["members"]
            f["members"] = np.array([5])
        elif what == "nan":
            f["values"][0, 0, 0, 0, 0] = np.nan


@pytest.mark.parametrize(
    "what,match",
    [
        ("values", "dataset '/values' is missing"),
        ("shape", "expected 2, 8, 10, 9|shape \\(1, 2, 8, 10, 8\\)"),
        ("json", "metadata is not valid JSON"),
        ("field", "metadata field unit"),
        ("version", "format version 2.0 is not supported"),
        ("members", "'/members' disagrees"),
        ("nan", "non-finite"),
    ],
)
def test_damaged_hdf5(tmp_path, what, match):
    path = synthetic().save(tmp_path / "g.h5")
    _damage_h5(path, what)
    with pytest.raises(TheoryGridError, match=match) as err:
        load_theory_grid(path)
    assert "\n" not in str(err.value) and "g.h5" in str(err.value)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda ls: ["a,b,c", *ls[1:]], "header 'a,b,c'"),
        (lambda ls: ls[:-1], "lacks 1 of the 1440 generator bins"),
        (lambda ls: ls + [ls[5]], "generator bin repeated"),
        (lambda ls: ls[:3] + [ls[3].rsplit(",", 1)[0] + ",abc"] + ls[4:], "is not a number"),
        (lambda ls: ls[:3] + [ls[3].replace(",0,3,", ",0,4,", 1)] + ls[4:], "not a generator bin"),
        (lambda ls: ls[:3] + [ls[3] + ",1"] + ls[4:], "8 columns, expected 7"),
        (lambda ls: ls[:1] + [ls[1].replace(",UL,", ",A9,", 1)] + ls[2:], "not a generator bin"),
        (lambda ls: ls[:1], "no data rows"),
    ],
)
def test_bad_csv(tmp_path, edit, match):
    g = synthetic()
    lines = [ln for ln in g.to_csv().splitlines() if not ln.startswith("#")]
    p = tmp_path / "g.csv"
    p.write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(TheoryGridError, match=match) as err:
        load_theory_grid(p)
    assert "\n" not in str(err.value)


def test_csv_negative_ul_is_reported_with_its_bin(tmp_path):
    g = synthetic()
    lines = g.to_csv().splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("1,2,2.5,9,12,UL,"))
    lines[i] = "1,2,2.5,9,12,UL,-5"
    p = tmp_path / "g.csv"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(TheoryGridError, match=r"-5 pb at member 0, qW=\+1, \|y\| in \[2, 2.5\]"):
        load_theory_grid(p)
