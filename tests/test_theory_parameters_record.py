"""The theory parameters as a typed metadata field (format 1.3, docs/format.md section 18): the
writer writes ``theory.parameters``, the reader reads it back, archives without it (all before
1.3) still read, and hostile records are refused with one line, by the writer and the reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from _attacker import edit_metadata, read_doc

from wmass_archive import ArchiveWriter, Axis, open_archive, validate_archive
from wmass_archive._version import __version__
from wmass_archive.archive import layout
from wmass_archive.archive.checksums import bytes_sha256
from wmass_archive.archive.models import FORMAT_VERSION, TheoryParametersRecord
from wmass_archive.errors import ContentError, MetadataError
from wmass_archive.theory.params import (
    TheoryParameters,
    parameters_from_notes,
    parameters_of,
    parameters_record,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = ROOT / "likelihoods" / "default.h5"


def _writer(parameters=None, notes: str = "") -> ArchiveWriter:
    w = ArchiveWriter(
        title="t",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "t", "producer_version": "0", "notes": notes},
    )
    w.add_channel("c", np.ones(3), axes=[Axis.regular(3, 0, 1, name="x")])
    w.add_process("B")
    w.set_yield("B", "c", np.ones(3), sumw2=np.ones(3))
    w.set_theory(
        [Axis.regular(4, 0, 1, name="g")],
        np.arange(1.0, 5.0),
        nominal_pdf="P",
        parameters=parameters,
    )
    w.add_pdf_set(name="P", lhapdf_name="P", error_type="replicas", members=np.arange(1.0, 5.0))
    return w


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and "\r" not in msg and "\x1b" not in msg, repr(msg)
    assert len(msg) < 600, len(msg)
    return msg


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("as_dict", [False, True])
def test_round_trip(tmp_path, as_dict):
    params = TheoryParameters(mw_gev=80.4, kt_np_gev=3.1)
    record = parameters_record(params)
    assert record.model == f"wmass_archive.theory {__version__}"
    path = tmp_path / "a.h5"
    _writer(record.model_dump() if as_dict else record).write(path)
    assert validate_archive(path).format_version == FORMAT_VERSION == "1.3.0"
    with open_archive(path) as a:
        assert a.format_version == "1.3.0"
        got = a.metadata.theory.parameters
        assert got == record
        assert got.values == {k: float(v) for k, v in params.model_dump().items()}
        assert parameters_of(a.metadata.theory) == params
    doc = read_doc(path)
    assert doc["theory"]["parameters"]["values"]["mw_gev"] == 80.4


def test_without_the_record_the_archive_keeps_its_older_version(tmp_path):
    """No record: the oldest version that holds the content, and no ``parameters`` key at all,
    so that readers of 1.0 to 1.2 read the archive."""
    path = tmp_path / "a.h5"
    _writer().write(path)
    doc = read_doc(path)
    assert doc["format_version"] == "1.0.0" and "parameters" not in doc["theory"]
    with open_archive(path) as a:
        assert a.metadata.theory.parameters is None
        assert parameters_of(a.metadata.theory) is None
    assert parameters_of(None) is None


def test_an_older_archive_reads_and_its_notes_give_the_parameters(tmp_path):
    """An archive of format 1.2 without the field reads; the pseudo-analysis's configuration in
    the provenance notes is the fallback of older archives."""
    config = {"theory": {"mw_gev": 80.4, "k_factor": 1.2}, "seed": 7}
    notes = f"pseudo-data at true mW = 80360 MeV. Configuration: {json.dumps(config)}"
    path = tmp_path / "a.h5"
    _writer(notes=notes).write(path)
    edit_metadata(path, lambda d: d.update(format_version="1.2.0"))
    with h5py.File(path, "r+") as f:
        f.attrs[layout.ATTR_VERSION] = "1.2.0"
    validate_archive(path)
    with open_archive(path) as a:
        assert a.format_version == "1.2.0" and a.metadata.theory.parameters is None
        assert parameters_of(a.metadata.theory) is None
        got = parameters_from_notes(a.metadata.provenance.notes)
    assert got == TheoryParameters(mw_gev=80.4, k_factor=1.2)


@pytest.mark.skipif(not DEFAULT_ARCHIVE.exists(), reason="likelihoods/default.h5 not present")
def test_the_default_archive_reads_and_its_notes_give_the_parameters():
    """The published default archive predates format 1.3 (it is not rebuilt here)."""
    with open_archive(DEFAULT_ARCHIVE) as a:
        assert a.metadata.major_minor < (1, 3) and a.metadata.theory.parameters is None
        assert parameters_of(a.metadata.theory) is None
        assert isinstance(parameters_from_notes(a.metadata.provenance.notes), TheoryParameters)


@pytest.mark.parametrize(
    "notes",
    [
        "",
        "no configuration here",
        "Configuration: {not json}",
        'Configuration: {"seed": 1}',
        'Configuration: {"theory": [1, 2]}',
        'Configuration: {"theory": {"mw_gev": -1}}',
        'Configuration: {"theory": {"unknown_field": 1}}',
        "Configuration: {" + "[" * 100_000 + "]" * 100_000 + "}",
    ],
)
def test_notes_without_usable_parameters_give_none(notes):
    assert parameters_from_notes(notes) is None


def test_a_record_of_another_model_or_invalid_values(tmp_path):
    """A record of another code is not this package's parameters (None); a record of
    wmass_archive.theory whose values TheoryParameters refuses is one ContentError line."""
    path = tmp_path / "a.h5"
    _writer({"model": "MiNNLO-PS 1.0", "values": {"mw_gev": 80.4}}).write(path)
    with open_archive(path) as a:
        assert parameters_of(a.metadata.theory) is None
    bad = TheoryParametersRecord(model="wmass_archive.theory 9.9", values={"new_knob": 1.0})
    path = tmp_path / "b.h5"
    _writer(bad).write(path)
    with open_archive(path) as a, pytest.raises(ContentError) as ei:
        parameters_of(a.metadata.theory)
    msg = _one_line(ei.value)
    assert "wmass_archive.theory 9.9" in msg and "new_knob" in msg, msg


def test_a_1_2_archive_may_not_hold_the_record(tmp_path):
    path = tmp_path / "a.h5"
    _writer(parameters_record(TheoryParameters())).write(path)
    edit_metadata(path, lambda d: d.update(format_version="1.2.0"))
    with h5py.File(path, "r+") as f:
        f.attrs[layout.ATTR_VERSION] = "1.2.0"
    with pytest.raises(MetadataError) as ei:
        open_archive(path)
    msg = _one_line(ei.value)
    assert "theory.parameters" in msg and "1.3.0" in msg, msg


# ----------------------------------------------------------------------------- hostile values
HOSTILE = {
    "nan": ({"model": "m", "values": {"mw_gev": math.nan}}, "values.mw_gev"),
    "inf (1e400)": ({"model": "m", "values": {"mw_gev": 1e400}}, "finite"),
    "10^4 entries": ({"model": "m", "values": {f"p{i}": 1.0 for i in range(10**4)}}, "256"),
    "escape in a name": ({"model": "m", "values": {"mw\x1b[2J": 1.0}}, "pattern"),
    "newline in a name": ({"model": "m", "values": {"mw\ngev": 1.0}}, "pattern"),
    "bidi override in a name": ({"model": "m", "values": {"mw\u202egev": 1.0}}, "pattern"),
    "a digit first": ({"model": "m", "values": {"1mw": 1.0}}, "pattern"),
    "a string value": ({"model": "m", "values": {"mw_gev": "80.4"}}, "valid number"),
    "a boolean value": ({"model": "m", "values": {"mw_gev": True}}, "valid number"),
    "control in the model": ({"model": "code\r\x1b]0;x\x07", "values": {}}, "U+000D"),
    "empty model": ({"model": "", "values": {}}, "model"),
    "long model": ({"model": "m" * 201, "values": {}}, "model"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_the_writer_refuses_hostile_records(case):
    record, needle = HOSTILE[case]
    with pytest.raises(ContentError) as ei:
        _writer(record)
    msg = _one_line(ei.value)
    assert needle in msg, msg


def _store_raw(path: Path, blob: bytes) -> None:
    with h5py.File(path, "r+") as f:
        del f[layout.METADATA]
        f.create_dataset(layout.METADATA, data=np.frombuffer(blob, dtype=np.uint8))
        f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_the_reader_refuses_hostile_records(tmp_path, case):
    """The same records edited into a valid 1.3 archive (checksums recomputed): one line."""
    record, _ = HOSTILE[case]
    path = tmp_path / "a.h5"
    _writer(parameters_record(TheoryParameters())).write(path)
    doc = read_doc(path)
    doc["theory"]["parameters"] = record
    blob = json.dumps(doc).encode("utf-8")  # NaN and inf as the tokens NaN and Infinity
    _store_raw(path, blob)
    with pytest.raises(MetadataError) as ei:
        open_archive(path)
    msg = _one_line(ei.value)
    assert "theory.parameters" in msg, msg


def test_the_reader_refuses_a_number_that_overflows(tmp_path):
    """A JSON number too large for a float64 (1e400) is infinity to a JSON parser: refused."""
    path = tmp_path / "a.h5"
    _writer(parameters_record(TheoryParameters())).write(path)
    doc = read_doc(path)
    doc["theory"]["parameters"]["values"]["mw_gev"] = 12345.678
    blob = json.dumps(doc).encode("utf-8").replace(b"12345.678", b"1e400")
    _store_raw(path, blob)
    with pytest.raises(MetadataError) as ei:
        open_archive(path)
    msg = _one_line(ei.value)
    assert "theory.parameters.values.mw_gev" in msg and "finite" in msg, msg
