"""Bad input is refused cleanly.

Every damaged, foreign, hostile or out-of-range input must give an
:class:`~wmass_archive.errors.ArchiveError` (the right subclass) whose one-line message names the
problem, both from the Python API (``validate_archive``, ``open_archive`` + reading the affected
array) and from the command line (``wmass-archive validate PATH``: exit status 1, exactly one
line on stderr, no traceback). The writer refuses bad content with a
:class:`~wmass_archive.errors.ContentError` and writes nothing.

The damaged archives are private copies of the small demonstration archive (fixture
``demo_archive``), edited with h5py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from wmass_archive import ArchiveWriter, Axis, open_archive, validate_archive
from wmass_archive.archive import layout
from wmass_archive.archive.checksums import array_sha256, bytes_sha256
from wmass_archive.archive.reader import ReadLimits
from wmass_archive.cli.archive_cmd import main
from wmass_archive.errors import (
    ArchiveError,
    ArchiveNotFoundError,
    ChecksumError,
    ContentError,
    CorruptArchiveError,
    HostileArchiveError,
    MetadataError,
    NotAnArchiveError,
    UnsupportedVersionError,
)

DATA = "channels/mu/data"
NOMINAL = "channels/mu/processes/Zmumu/nominal"
SUMW2 = "channels/mu/processes/Zmumu/sumw2"
RESPONSE = "channels/mu/processes/Wmunu/response"
REPLICAS = "theory/pdf/DemoReplicas/members"
LOGK_AVG = "channels/mu/logk/sparse/avg"
N_BINS = 240  # bins of the demonstration channel 'mu'


# --------------------------------------------------------------------------------- helpers
def rewrite_metadata(path: Path, mutate: Callable[[dict], Any]) -> None:
    """Edit the metadata JSON of an archive in place and store it back under a matching root
    attribute 'metadata_sha256', so that the only thing wrong is what ``mutate`` changed.

    ``mutate(doc)`` edits the parsed document in place; when it returns ``bytes`` those bytes
    are stored instead (for metadata that is not valid JSON)."""
    with h5py.File(path, "r+") as f:
        doc = json.loads(f[layout.METADATA][()].tobytes())
        out = mutate(doc)
        blob = out if isinstance(out, bytes) else json.dumps(doc).encode("utf-8")
        del f[layout.METADATA]
        f.create_dataset(layout.METADATA, data=np.frombuffer(blob, dtype=np.uint8))
        f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)


def manifest_sha(path: Path, dpath: str) -> str:
    with h5py.File(path, "r") as f:
        return json.loads(f[layout.METADATA][()].tobytes())["datasets"][dpath]["sha256"]


def read_raw(path: Path, dpath: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[dpath][()]


def replace_dataset(
    path: Path, dpath: str, data: np.ndarray, *, update_manifest: bool = False, **kwargs: Any
) -> None:
    """Put ``data`` in place of a dataset; with ``update_manifest`` also record its shape and
    SHA-256 in the manifest, so that the checksum passes and another check must fail."""
    with h5py.File(path, "r+") as f:
        del f[dpath]
        f.create_dataset(dpath, data=data, **kwargs)
    if update_manifest:
        rewrite_metadata(
            path,
            lambda d: d["datasets"][dpath].update(
                shape=list(data.shape), sha256=array_sha256(data)
            ),
        )


def flip_byte(path: Path, offset: int, mask: int = 0xFF) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ mask]))


def data_offset(path: Path, dpath: str) -> int:
    """File offset of the first byte of a dataset's stored data (first chunk if chunked)."""
    with h5py.File(path, "r") as f:
        d = f[dpath]
        return d.id.get_chunk_info(0).byte_offset if d.chunks else d.id.get_offset()


def cli_refuses(path: Path | str, *needles: str, command: str = "validate") -> str:
    """``wmass-archive COMMAND PATH`` exits 1 with one line on stderr holding ``needles``."""
    r = CliRunner().invoke(main, [command, str(path)])
    assert r.exit_code == 1, r.output
    # CliRunner swallows uncaught exceptions into r.exception: only a clean sys.exit is allowed
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: ") and line[len("error: ") :].strip()
    assert not line.startswith("error: unexpected "), line  # the catch-all for foreign errors
    for n in needles:
        assert n in line, line
    return line


def refused(
    path: Path | str,
    exc_type: type[ArchiveError],
    *needles: str,
    read: Callable[[Any], Any] | None = None,
) -> ArchiveError:
    """``validate_archive`` raises ``exc_type`` with a one-line message holding ``needles``, and
    so does the CLI; with ``read``, ``open_archive`` + ``read(archive)`` raises it too."""
    with pytest.raises(exc_type) as ei:
        validate_archive(path)
    msg = str(ei.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg
    if read is not None:
        with pytest.raises(exc_type) as ei_read, open_archive(path) as a:
            read(a)
        for n in needles:
            assert n in str(ei_read.value), str(ei_read.value)
    cli_refuses(path, *needles)
    return ei.value


def test_demo_archive_is_valid(demo_archive):
    """The starting point of every damage below is a valid archive (CLI exit 0)."""
    assert validate_archive(demo_archive).n_datasets > 20
    r = CliRunner().invoke(main, ["validate", str(demo_archive)])
    assert r.exit_code == 0 and r.stdout.startswith("OK ") and r.stderr == ""


# --------------------------------------------------------------------------------- truncated
@pytest.mark.parametrize(
    "keep", [0.5, -300, -1, 100], ids=["half", "minus300", "minus1", "first100"]
)
def test_truncated_file(demo_archive, keep):
    size = demo_archive.stat().st_size
    n = int(size * keep) if isinstance(keep, float) else (keep if keep > 0 else size + keep)
    os.truncate(demo_archive, n)
    refused(demo_archive, CorruptArchiveError, "truncated", "demo.h5", read=lambda a: None)


# --------------------------------------------------------------------------------- flipped bytes
@pytest.mark.parametrize("dpath", [NOMINAL, DATA, RESPONSE, REPLICAS, LOGK_AVG])
@pytest.mark.parametrize("shift", [0, 37])
def test_flipped_byte_in_compressed_chunk(demo_archive, dpath, shift):
    """A flipped byte inside a gzip chunk: a decode error or a checksum mismatch, either way a
    CorruptArchiveError naming the dataset."""
    flip_byte(demo_archive, data_offset(demo_archive, dpath) + shift)
    refused(demo_archive, CorruptArchiveError, f"'{dpath}'", read=lambda a: a.read(dpath))


@pytest.mark.parametrize("dpath,byte", [(SUMW2, 5), (SUMW2, 8 * N_BINS - 1), (DATA, 800)])
def test_flipped_byte_in_raw_data_is_a_checksum_error(demo_archive, dpath, byte):
    """Stored uncompressed (contiguous), a flipped byte decodes fine: only the SHA-256 sees it."""
    replace_dataset(demo_archive, dpath, read_raw(demo_archive, dpath))  # contiguous, same bytes
    validate_archive(demo_archive)  # still valid: the manifest checksum is of the values
    flip_byte(demo_archive, data_offset(demo_archive, dpath) + byte, mask=0x01)
    e = refused(
        demo_archive, ChecksumError, "checksum mismatch", f"'{dpath}'", read=lambda a: a.read(dpath)
    )
    assert e.__class__ is ChecksumError


def test_changed_value_is_a_checksum_error(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        f[NOMINAL][7] = f[NOMINAL][7] * (1 + 1e-12)  # recompressed, decodes fine
    refused(
        demo_archive,
        ChecksumError,
        "checksum",
        f"'{NOMINAL}'",
        read=lambda a: a.nominal("Zmumu", "mu"),
    )
    # verify=False skips the checksum: the reader then returns the changed values
    with open_archive(demo_archive, verify=False) as a:
        assert a.nominal("Zmumu", "mu").shape == (N_BINS,)


# --------------------------------------------------------------------------------- structure
@pytest.mark.parametrize(
    "dpath", [SUMW2, "theory/pdf/DemoReplicas/eigenvectors", "channels/mu/logk/sparse/bin"]
)
def test_missing_dataset(demo_archive, dpath):
    with h5py.File(demo_archive, "r+") as f:
        del f[dpath]
    refused(
        demo_archive,
        CorruptArchiveError,
        "missing dataset",
        f"'{dpath}'",
        read=lambda a: a.read(dpath),
    )


def test_missing_dataset_and_manifest_entry(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        del f[SUMW2]
    rewrite_metadata(demo_archive, lambda d: d["datasets"].pop(SUMW2))
    refused(
        demo_archive,
        CorruptArchiveError,
        "manifest",
        f"'{SUMW2}'",
        read=lambda a: a.sumw2("Zmumu", "mu"),
    )
    with pytest.raises(CorruptArchiveError, match="the manifest lacks dataset"):
        validate_archive(demo_archive)


def test_wrong_shape_dataset(demo_archive):
    replace_dataset(demo_archive, SUMW2, np.ones(10))
    refused(
        demo_archive,
        CorruptArchiveError,
        f"'{SUMW2}'",
        "shape (10,)",
        "(240,)",
        read=lambda a: a.sumw2("Zmumu", "mu"),
    )


def test_wrong_shape_dataset_and_manifest(demo_archive):
    """Dataset and manifest agree with each other but not with the channel's binning."""
    replace_dataset(demo_archive, SUMW2, np.ones(10), update_manifest=True)
    refused(
        demo_archive,
        CorruptArchiveError,
        f"'{SUMW2}'",
        "shape (10,)",
        "expected (240,)",
        read=lambda a: a.sumw2("Zmumu", "mu"),
    )


def test_manifest_shape_disagrees_with_metadata(demo_archive):
    rewrite_metadata(demo_archive, lambda d: d["datasets"][SUMW2].update(shape=[10]))
    refused(
        demo_archive,
        CorruptArchiveError,
        f"'{SUMW2}'",
        "(10,)",
        "expected (240,)",
        read=lambda a: a.sumw2("Zmumu", "mu"),
    )


def test_manifest_shape_disagrees_with_dataset(demo_archive):
    """The manifest says (3, 240, 360) for the response, the dataset holds (3, 240, 359)."""
    r = read_raw(demo_archive, RESPONSE)[:, :, :-1]
    replace_dataset(demo_archive, RESPONSE, r)
    refused(
        demo_archive,
        CorruptArchiveError,
        f"'{RESPONSE}'",
        "(3, 240, 359)",
        read=lambda a: a.response("Wmunu", "mu"),
    )


def test_wrong_dtype(demo_archive):
    replace_dataset(demo_archive, SUMW2, read_raw(demo_archive, SUMW2).astype(np.float32))
    refused(
        demo_archive,
        CorruptArchiveError,
        f"'{SUMW2}'",
        "dtype <f4",
        "<f8",
        read=lambda a: a.sumw2("Zmumu", "mu"),
    )


def test_dataset_not_in_manifest(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        f["channels/mu/extra"] = np.zeros(3)
    refused(demo_archive, CorruptArchiveError, "'channels/mu/extra'", "not in the manifest")


def test_manifest_lists_unexpected_dataset(demo_archive):
    rewrite_metadata(
        demo_archive,
        lambda d: d["datasets"].__setitem__("channels/mu/extra", dict(d["datasets"][SUMW2])),
    )
    refused(demo_archive, CorruptArchiveError, "unexpected dataset", "'channels/mu/extra'")


# --------------------------------------------------------------------------------- bad values
def poison(path: Path, dpath: str, index: int, value: float) -> None:
    """Set one value of a dataset and record the new checksum, so that the checksum passes and
    the value check is what must fail."""
    a = read_raw(path, dpath)
    a.reshape(-1)[index] = value
    with h5py.File(path, "r+") as f:
        f[dpath][...] = a
    rewrite_metadata(path, lambda d: d["datasets"][dpath].update(sha256=array_sha256(a)))


@pytest.mark.parametrize(
    "dpath,value,needle",
    [
        (NOMINAL, np.nan, "non-finite value nan"),
        (NOMINAL, np.inf, "non-finite value inf"),
        (SUMW2, -np.inf, "non-finite value -inf"),
        (DATA, np.nan, "non-finite"),
        ("channels/mu/processes/Wmunu/nominal", np.nan, "non-finite"),
        (RESPONSE, np.inf, "non-finite"),
        ("theory/nominal", np.nan, "non-finite"),
        (REPLICAS, np.inf, "non-finite"),
        ("theory/variations/up", np.nan, "non-finite"),
        (NOMINAL, -5.0, "negative nominal yield -5 in bin 3"),
        (SUMW2, -1.0, "negative sumw2"),
        (DATA, -2.0, "negative observed counts"),
    ],
)
def test_bad_value(demo_archive, dpath, value, needle):
    poison(demo_archive, dpath, 3, value)
    # the checksum passes, but the reader applies the validator's value rules to every array
    # it returns (issue 14: the fitter and the exports read through it)
    with open_archive(demo_archive) as a, pytest.raises(ContentError, match=f"{dpath}: .*"):
        a.read(dpath)
    e = refused(demo_archive, ContentError, f"{dpath}:", needle)
    assert not isinstance(e, ChecksumError)


def test_non_finite_logk(demo_archive):
    poison(demo_archive, LOGK_AVG, 0, np.nan)
    refused(demo_archive, ContentError, LOGK_AVG, "non-finite value nan")


def test_inconsistent_folding(demo_archive):
    """The stored nominal of the folded signal no longer equals lumi * R @ sigma."""
    nom = read_raw(demo_archive, "channels/mu/processes/Wmunu/nominal")
    poison(demo_archive, "channels/mu/processes/Wmunu/nominal", 50, nom[50] * 1.01)
    refused(demo_archive, ContentError, "'Wmunu' in 'mu'", "folding", "bin 50")


def test_poi_variation_not_allowed(demo_archive):
    """The demo's mass POI carries a logk variation for the plain process Wtaunu; once the POI
    no longer acts on Wtaunu, that variation breaks the format's rule."""

    def drop_wtaunu(doc):
        doc["pois"][0]["acts_on"] = [
            s for s in doc["pois"][0]["acts_on"] if s["process"] != "Wtaunu"
        ]

    rewrite_metadata(demo_archive, drop_wtaunu)
    refused(demo_archive, CorruptArchiveError, "variation 'mW' of 'Wtaunu'", "mass POI")


# --------------------------------------------------------------------------------- the writer
def _writer() -> ArchiveWriter:
    """A tiny valid model: channel 'ch' of 4 x 2 bins, a plain process 'bkg', a folded 'sig'
    with a (1, 8, 3) response and a 3-bin theory grid."""
    w = ArchiveWriter(
        title="tiny",
        synthetic=True,
        citation={"title": "tests"},
        provenance={"producer": "tests", "producer_version": "0"},
        luminosity=2.0,
    )
    w.add_group("g")
    w.set_theory([Axis.regular(3, 0.0, 3.0, name="gen")], np.ones(3), nominal_pdf="P")
    w.add_pdf_set(
        name="P",
        lhapdf_name="P_lhapdf",
        error_type="hessian",
        members=np.ones((3, 3)) * np.array([[1.0], [1.02], [0.98]]),
    )
    w.add_channel("ch", np.full((4, 2), 10.0), axes=_axes())
    w.add_process("bkg")
    w.add_process("sig", folded=True)
    w.set_yield("bkg", "ch", np.full(8, 9.0), sumw2=np.full(8, 1.0))
    w.set_yield("sig", "ch", 2.0 * _response()[0] @ np.ones(3), sumw2=np.ones(8))
    w.set_response("sig", "ch", _response())
    w.add_nuisance("n1", groups=["g"])
    w.add_variation("n1", "bkg", "ch", kappa=1.05)
    return w


def _axes() -> list[Axis]:
    return [Axis.regular(4, 0.0, 4.0, name="x"), Axis.category([-1, 1], name="q")]


def _response() -> np.ndarray:
    return np.linspace(0.1, 1.0, 24).reshape(1, 8, 3)


def _hist(axes: list, values: np.ndarray):
    import hist

    h = hist.Hist(*axes, storage=hist.storage.Weight())
    h.view().value = values
    h.view().variance = values
    return h


def test_tiny_writer_is_valid(tmp_path):
    out = tmp_path / "tiny.h5"
    _writer().write(out)
    assert validate_archive(out).n_datasets > 5


BAD_WRITER_CALLS = {
    # name: (call, message, refused at the call itself (True) or only at write (False))
    "yield_negative": (
        lambda w: w.set_yield(
            "bkg2", "ch", np.array([1, 2, -3, 4, 5, 6, 7, 8.0]), sumw2=np.ones(8)
        ),
        "yield of 'bkg2' in channel 'ch' is negative in bin 2",
        True,
    ),
    "yield_nan": (
        lambda w: w.set_yield("bkg2", "ch", np.full(8, np.nan), sumw2=np.ones(8)),
        "yield of 'bkg2' in channel 'ch' has a non-finite value (nan)",
        True,
    ),
    "sumw2_inf": (
        lambda w: w.set_yield("bkg2", "ch", np.ones(8), sumw2=np.full(8, np.inf)),
        "sumw2 of yield of 'bkg2' in channel 'ch' has a non-finite value (inf)",
        True,
    ),
    "yield_wrong_shape": (
        lambda w: w.set_yield("bkg2", "ch", np.ones(7), sumw2=np.ones(7)),
        "has shape (7,), expected (4, 2)",
        True,
    ),
    "yield_no_sumw2": (lambda w: w.set_yield("bkg2", "ch", np.ones(8)), "no sumw2", True),
    "data_inf": (
        lambda w: w.add_channel(
            "ch2", np.array([1.0, np.inf, 2.0]), axes=[Axis.regular(3, 0, 1, name="x")]
        ),
        "data of channel 'ch2' has a non-finite value (inf)",
        True,
    ),
    "data_negative": (
        lambda w: w.add_channel(
            "ch2", np.array([1.0, -1.0, 2.0]), axes=[Axis.regular(3, 0, 1, name="x")]
        ),
        "data of channel 'ch2' has negative counts (bin 1)",
        True,
    ),
    "response_ndim": (
        lambda w: w.set_response("sig2", "ch", np.ones((1, 1, 8, 3))),
        "must be 3-d (points, bins, gen), got shape (1, 1, 8, 3)",
        True,
    ),
    "response_nan": (
        lambda w: w.set_response("sig2", "ch", np.full((1, 8, 3), np.nan)),
        "response of 'sig2' in 'ch' has a non-finite value",
        True,
    ),
    "response_shape": (
        lambda w: w.set_response("sig", "ch", np.ones((1, 8, 4))),
        "response of 'sig' in 'ch' has shape (1, 8, 4), expected (1, 8, 3)",
        False,
    ),
    "unknown_group": (
        lambda w: w.add_nuisance("n2", groups=["nope"]),
        "nuisance 'n2' is in unknown group 'nope'",
        False,
    ),
    "hist_axis_edges": (
        lambda w: w.set_yield(
            "bkg2",
            "ch",
            _hist(
                [Axis.regular(4, 0.0, 5.0, name="x").to_hist(), _axes()[1].to_hist()],
                np.ones((4, 2)),
            ),
        ),
        "histogram axes ['x', 'q'] do not match the expected ['x', 'q']",
        True,
    ),
    "hist_axis_names": (
        lambda w: w.set_yield(
            "bkg2",
            "ch",
            _hist(
                [Axis.regular(4, 0.0, 4.0, name="pt").to_hist(), _axes()[1].to_hist()],
                np.ones((4, 2)),
            ),
        ),
        "histogram axes ['pt', 'q'] do not match",
        True,
    ),
    "hist_axis_count": (
        lambda w: w.set_yield(
            "bkg2", "ch", _hist([Axis.regular(8, 0.0, 4.0, name="x").to_hist()], np.ones(8))
        ),
        "histogram axes ['x'] do not match",
        True,
    ),
    "variation_hist_axes": (
        lambda w: w.add_variation(
            "n1",
            "sig",
            "ch",
            up=_hist(
                [Axis.regular(4, 1.0, 5.0, name="x").to_hist(), _axes()[1].to_hist()],
                np.ones((4, 2)),
            ),
        ),
        "do not match",
        True,
    ),
    "unknown_channel": (
        lambda w: w.set_yield("bkg", "nope", np.ones(8), sumw2=np.ones(8)),
        "unknown channel 'nope'",
        True,
    ),
}


@pytest.mark.parametrize("case", list(BAD_WRITER_CALLS))
def test_writer_refuses_bad_content(tmp_path, case):
    call, message, immediate = BAD_WRITER_CALLS[case]
    w = _writer()
    w.add_process("bkg2")
    w.add_process("sig2", folded=True)
    out = tmp_path / "out" / "bad.h5"
    out.parent.mkdir()
    with pytest.raises(ContentError) as ei:
        call(w)
        assert not immediate, "the bad call was accepted"
        w.write(out)
    msg = str(ei.value)
    assert message in msg and "\n" not in msg, msg
    assert list(out.parent.iterdir()) == []  # nothing written, no temporary file
    if immediate:
        # the refused call left no trace: the same writer still writes a valid archive
        good = tmp_path / "good.h5"
        w.write(good)
        validate_archive(good)


# --------------------------------------------------------------------------------- versions
@pytest.mark.parametrize(
    "value,exc_type,needles",
    [
        ("hdf5-thing", NotAnArchiveError, ("not a wmass-archive", "'hdf5-thing'")),
        (None, NotAnArchiveError, ("not a wmass-archive", "None")),
    ],
)
def test_unknown_format(demo_archive, value, exc_type, needles):
    with h5py.File(demo_archive, "r+") as f:
        if value is None:
            del f.attrs[layout.ATTR_FORMAT]
        else:
            f.attrs[layout.ATTR_FORMAT] = value
    refused(demo_archive, exc_type, *needles, read=lambda a: None)


@pytest.mark.parametrize("version", ["2.0.0", "10.3.1"])
@pytest.mark.parametrize("in_metadata", [False, True])
def test_newer_major_version(demo_archive, version, in_metadata):
    with h5py.File(demo_archive, "r+") as f:
        f.attrs[layout.ATTR_VERSION] = version
    if in_metadata:
        rewrite_metadata(demo_archive, lambda d: d.update(format_version=version))
    refused(demo_archive, UnsupportedVersionError, version, "newer", "upgrade", read=lambda a: None)


def _set_version(path: Path, version: str) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs[layout.ATTR_VERSION] = version
    rewrite_metadata(path, lambda d: d.update(format_version=version))


def test_newer_minor_version_reads_with_a_warning(demo_archive):
    _set_version(demo_archive, "1.7.0")
    with pytest.warns(UserWarning, match="1.7.0 is newer"):
        report = validate_archive(demo_archive)
    assert report.format_version == "1.7.0"
    with pytest.warns(UserWarning, match="newer"), open_archive(demo_archive) as a:
        assert a.nominal("Zmumu", "mu").shape == (N_BINS,)
    r = CliRunner().invoke(main, ["validate", str(demo_archive)])
    assert r.exit_code == 0 and r.exception is None
    assert r.stdout.startswith("OK ")
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "newer" in lines[0], lines


def test_newer_minor_version_with_unknown_content(demo_archive):
    """A newer minor version whose metadata this reader's schema rejects: say so, and suggest
    an upgrade; the CLI prints the error line only (not the warning as well)."""
    _set_version(demo_archive, "1.7.0")
    rewrite_metadata(demo_archive, lambda d: d.update(new_field_of_1_7=1))
    with pytest.warns(UserWarning):
        refused(demo_archive, MetadataError, "schema", "new_field_of_1_7", "upgrade")


def test_version_attribute_and_metadata_disagree(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        f.attrs[layout.ATTR_VERSION] = "1.0.1"
    refused(demo_archive, MetadataError, "'1.0.0' differs", "'1.0.1'", read=lambda a: None)


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0-rc1", "01.0.0", "", "latest", 1])
def test_version_not_semver(demo_archive, version):
    with h5py.File(demo_archive, "r+") as f:
        f.attrs[layout.ATTR_VERSION] = version
    refused(demo_archive, UnsupportedVersionError, "not MAJOR.MINOR.PATCH", read=lambda a: None)


def test_version_too_old_or_missing(demo_archive, tmp_path):
    with h5py.File(demo_archive, "r+") as f:
        f.attrs[layout.ATTR_VERSION] = "0.9.0"
    refused(demo_archive, UnsupportedVersionError, "0.9.0", "predates")
    with h5py.File(demo_archive, "r+") as f:
        del f.attrs[layout.ATTR_VERSION]
    refused(demo_archive, NotAnArchiveError, "'format_version' is missing")


# --------------------------------------------------------------------------------- not archives
NOT_HDF5 = {
    "text": b"channel,bin,value\nmu,0,1.0\n" * 20,
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
    "random": np.random.default_rng(1234).bytes(5000),
    "json": json.dumps({"format": "wmass-archive", "format_version": "1.0.0"}).encode(),
    "one_byte": b"\x89",
}


@pytest.mark.parametrize("kind", list(NOT_HDF5))
def test_not_hdf5(tmp_path, kind):
    p = tmp_path / f"{kind}.h5"
    p.write_bytes(NOT_HDF5[kind])
    refused(p, NotAnArchiveError, "not an HDF5 file", p.name, read=lambda a: None)


def test_hdf5_signature_then_garbage(tmp_path):
    p = tmp_path / "garbage.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(5).bytes(3000))
    refused(p, CorruptArchiveError, "garbage.h5", "cannot be opened", read=lambda a: None)


def test_hdf5_but_not_an_archive(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
    refused(p, NotAnArchiveError, "HDF5 but not a wmass-archive", read=lambda a: None)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.h5"
    p.touch()
    refused(p, NotAnArchiveError, "empty", read=lambda a: None)


def test_no_such_file(tmp_path):
    p = tmp_path / "absent.h5"
    e = refused(p, ArchiveNotFoundError, "no such file", "absent.h5", read=lambda a: None)
    assert isinstance(e, FileNotFoundError)


@pytest.mark.parametrize("command", ["validate", "inspect"])
def test_directory(tmp_path, command):
    d = tmp_path / "folder.h5"
    d.mkdir()
    with pytest.raises(ArchiveNotFoundError, match="not a regular file"):
        validate_archive(d)
    with pytest.raises(ArchiveNotFoundError, match="not a regular file"):
        open_archive(d)
    cli_refuses(d, "folder.h5", "not a regular file", command=command)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_named_pipe_is_not_opened(tmp_path):
    """A FIFO is refused from its type alone (opening it would block)."""
    p = tmp_path / "pipe.h5"
    os.mkfifo(p)
    refused(p, ArchiveNotFoundError, "not a regular file", read=lambda a: None)


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "{trunc}"],
        ["validate", "{text}"],
        ["validate", "{dir}"],
        ["validate", "{absent}"],
        ["validate", "{newer}"],
        ["inspect", "{trunc}"],
        ["diff", "{text}", "{text}"],
    ],
)
def test_cli_subprocess(demo_archive, tmp_path, args):
    """The installed command, run for real: exit 1, one line on stderr, no traceback."""
    paths = {
        "trunc": tmp_path / "trunc.h5",
        "text": tmp_path / "notes.txt",
        "dir": tmp_path / "adir",
        "absent": tmp_path / "absent.h5",
        "newer": demo_archive,
    }
    data = demo_archive.read_bytes()
    paths["trunc"].write_bytes(data[: len(data) // 2])
    paths["text"].write_text("not an archive\n")
    paths["dir"].mkdir()
    with h5py.File(demo_archive, "r+") as f:
        f.attrs[layout.ATTR_VERSION] = "2.0.0"
    argv = [a.format(**paths) for a in args]
    r = subprocess.run(
        [sys.executable, "-m", "wmass_archive.cli.archive_cmd", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert r.stdout == ""


# --------------------------------------------------------------------------------- metadata
@pytest.mark.parametrize(
    "blob,needle",
    [
        (b'{"format": "wmass-archive", "format_version": ', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b"", "not valid JSON"),
    ],
)
def test_metadata_not_json(demo_archive, blob, needle):
    rewrite_metadata(demo_archive, lambda d: blob)
    refused(demo_archive, MetadataError, needle, read=lambda a: None)


@pytest.mark.parametrize(
    "mutate,needles",
    [
        (
            lambda d: d["channels"][0]["processes"].append("Ghost"),
            ("schema", "channel 'mu' lists unknown process 'Ghost'"),
        ),
        (lambda d: d.pop("title"), ("schema", "title", "Field required")),
        (lambda d: d["luminosity"].update(value=-1.0), ("schema", "luminosity.value")),
        (lambda d: d["nuisances"][0].update(groups=["no_such_group"]), ("unknown group",)),
        (lambda d: d["datasets"][SUMW2].update(sha256="xyz"), ("schema", "sha256")),
        (lambda d: d["datasets"][SUMW2].update(dtype="object"), ("schema", "dtype")),
        (lambda d: d.update(format="something-else"), ("schema", "format")),
    ],
)
def test_metadata_fails_schema(demo_archive, mutate, needles):
    rewrite_metadata(demo_archive, mutate)
    refused(demo_archive, MetadataError, *needles, read=lambda a: None)


def test_metadata_checksum_mismatch(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        f.attrs[layout.ATTR_METADATA_SHA] = "0" * 64
    refused(demo_archive, ChecksumError, "checksum mismatch in the metadata", read=lambda a: None)


def test_metadata_changed_without_checksum(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        blob = f[layout.METADATA][()].tobytes().replace(b'"mu"', b'"MU"', 1)
        del f[layout.METADATA]
        f[layout.METADATA] = np.frombuffer(blob, np.uint8)
    refused(demo_archive, ChecksumError, "metadata_sha256", read=lambda a: None)


def test_metadata_checksum_attribute_missing(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        del f.attrs[layout.ATTR_METADATA_SHA]
    refused(demo_archive, ChecksumError, "metadata_sha256", read=lambda a: None)


def test_metadata_dataset_missing_or_wrong_type(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        blob = f[layout.METADATA][()]
        del f[layout.METADATA]
        f[layout.METADATA] = blob.astype(np.float64)
    refused(demo_archive, CorruptArchiveError, "1-d uint8", read=lambda a: None)
    with h5py.File(demo_archive, "r+") as f:
        del f[layout.METADATA]
    refused(demo_archive, CorruptArchiveError, "missing dataset 'metadata'", read=lambda a: None)


# --------------------------------------------------------------------------------- hostile
@pytest.fixture
def outside(demo_archive, tmp_path) -> Path:
    """An HDF5 file OUTSIDE the archive holding the archive's own objects at the same paths, so
    that following a link into it would pass every checksum: only refusing to follow it makes
    the reader raise."""
    p = tmp_path / "outside" / "target.h5"
    p.parent.mkdir()
    with h5py.File(demo_archive, "r") as src, h5py.File(p, "w") as dst:
        for key in src:
            src.copy(key, dst)
    return p


@pytest.mark.parametrize("dpath", [SUMW2, RESPONSE, layout.METADATA])
def test_external_link_in_place_of_a_dataset(demo_archive, outside, dpath):
    want = read_raw(demo_archive, dpath)
    with h5py.File(demo_archive, "r+") as f:
        del f[dpath]
        f[dpath] = h5py.ExternalLink(str(outside), dpath)
    # control: h5py follows the link, and what it finds there passes the manifest checksum
    assert np.array_equal(read_raw(demo_archive, dpath), want)
    if dpath != layout.METADATA:
        assert array_sha256(read_raw(demo_archive, dpath)) == manifest_sha(outside, dpath)
    refused(
        demo_archive,
        HostileArchiveError,
        f"'{dpath}'",
        "ExternalLink",
        read=lambda a: a.read(dpath),
    )


@pytest.mark.parametrize(
    "group,read",
    [
        ("theory", lambda a: a.theory_nominal()),
        ("channels/mu/processes", lambda a: a.nominal("Zmumu", "mu")),
        ("channels/mu/processes/Zmumu", lambda a: a.sumw2("Zmumu", "mu")),
    ],
)
def test_external_link_in_place_of_a_group(demo_archive, outside, group, read):
    """The reader checks every component of a path: it never goes through a linked group."""
    with h5py.File(demo_archive, "r+") as f:
        del f[group]
        f[group] = h5py.ExternalLink(str(outside), group)
    refused(demo_archive, HostileArchiveError, f"'{group}'", "ExternalLink", read=read)


def test_soft_link_in_place_of_a_dataset(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        f["stash"] = f[SUMW2][()]  # same values: following the link would pass the checksum
        del f[SUMW2]
        f[SUMW2] = h5py.SoftLink("/stash")
    refused(
        demo_archive,
        HostileArchiveError,
        f"'{SUMW2}'",
        "SoftLink",
        read=lambda a: a.sumw2("Zmumu", "mu"),
    )


def test_soft_link_in_place_of_a_group(demo_archive):
    with h5py.File(demo_archive, "r+") as f:
        f.move("channels/mu/processes/Zmumu", "Zmumu_elsewhere")
        f["channels/mu/processes/Zmumu"] = h5py.SoftLink("/Zmumu_elsewhere")
    refused(demo_archive, HostileArchiveError, "SoftLink", read=lambda a: a.sumw2("Zmumu", "mu"))


@pytest.mark.parametrize("kind", ["soft", "external"])
def test_extra_link_outside_the_manifest(demo_archive, outside, kind):
    with h5py.File(demo_archive, "r+") as f:
        f["channels/mu/extra"] = (
            h5py.SoftLink("/channels/mu/data")
            if kind == "soft"
            else h5py.ExternalLink(str(outside), DATA)
        )
    refused(demo_archive, HostileArchiveError, "'channels/mu/extra'")


def test_hard_link_cycle(demo_archive):
    """A group hard-linked inside itself: the validator must not walk it for ever."""
    with h5py.File(demo_archive, "r+") as f:
        f["channels/mu/loop"] = f["channels"]
    refused(demo_archive, HostileArchiveError, "'channels/mu/loop'", "cycle")


@pytest.mark.parametrize("dpath", [SUMW2, REPLICAS, layout.METADATA])
def test_external_storage(demo_archive, tmp_path, dpath):
    """A dataset whose bytes live in a raw file outside the archive (HDF5 external storage),
    holding exactly the right values."""
    data = read_raw(demo_archive, dpath)
    raw = tmp_path / "outside.bin"
    raw.write_bytes(np.ascontiguousarray(data).tobytes())
    with h5py.File(demo_archive, "r+") as f:
        del f[dpath]
        f.create_dataset(
            dpath, shape=data.shape, dtype=data.dtype, external=[(str(raw), 0, data.nbytes)]
        )
    assert np.array_equal(read_raw(demo_archive, dpath), data)  # control: h5py would read it
    refused(
        demo_archive,
        HostileArchiveError,
        f"'{dpath}'",
        "outside the archive",
        read=lambda a: a.read(dpath),
    )


@pytest.mark.parametrize("dpath", [SUMW2, RESPONSE, layout.METADATA])
def test_virtual_dataset(demo_archive, outside, dpath):
    data = read_raw(demo_archive, dpath)
    lay = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
    lay[...] = h5py.VirtualSource(str(outside), dpath, shape=data.shape)
    with h5py.File(demo_archive, "r+") as f:
        del f[dpath]
        f.create_virtual_dataset(dpath, lay)
    assert np.array_equal(read_raw(demo_archive, dpath), data)  # control: h5py would read it
    refused(
        demo_archive,
        HostileArchiveError,
        f"'{dpath}'",
        "outside the archive",
        read=lambda a: a.read(dpath),
    )


def test_non_numeric_dataset(demo_archive):
    """Strings or objects (which could smuggle references) where numbers are expected."""
    with h5py.File(demo_archive, "r+") as f:
        del f[SUMW2]
        f.create_dataset(
            SUMW2, data=np.array(["x"] * N_BINS, dtype=object), dtype=h5py.string_dtype()
        )
    refused(
        demo_archive,
        HostileArchiveError,
        f"'{SUMW2}'",
        "non-numeric dtype",
        read=lambda a: a.sumw2("Zmumu", "mu"),
    )


def test_sizes_beyond_the_reader_limits(demo_archive):
    with pytest.raises(HostileArchiveError, match="over the reader's limit"):
        validate_archive(demo_archive, limits=ReadLimits(max_dataset_bytes=1000))
    with pytest.raises(HostileArchiveError, match="metadata of .* exceeds the limit"):
        open_archive(demo_archive, limits=ReadLimits(max_metadata_bytes=1000))


def test_total_declared_size_is_bounded(demo_archive):
    """Many datasets, each under the per-dataset limit, must not add up to more than the
    reader allows: the sum over the manifest is checked when the archive is opened."""
    with open_archive(demo_archive) as a:
        sizes = [
            int(np.prod(r.shape)) * np.dtype(r.dtype).itemsize for r in a.metadata.datasets.values()
        ]
    total, biggest = sum(sizes), max(sizes)
    limits = ReadLimits(max_dataset_bytes=biggest, max_total_bytes=total - 1)
    with pytest.raises(HostileArchiveError, match=f"declares {total} bytes of arrays in total"):
        open_archive(demo_archive, limits=limits)
    with pytest.raises(HostileArchiveError, match="max_total_bytes"):
        validate_archive(demo_archive, limits=limits)
    open_archive(demo_archive, limits=ReadLimits(max_total_bytes=total)).close()


def test_negative_declared_shape_is_refused(demo_archive):
    def mutate(doc):
        doc["datasets"][LOGK_AVG]["shape"] = [-5]

    rewrite_metadata(demo_archive, mutate)
    refused(demo_archive, MetadataError, "datasets", read=lambda a: None)


@pytest.mark.parametrize("where", ["root", "nested"])
def test_duplicate_json_keys_are_refused(demo_archive, where):
    """RFC 8259 leaves a repeated key undefined (Python keeps the last, other parsers the
    first or fail): the metadata must mean one thing to every reader."""

    def mutate(doc):
        text = json.dumps(doc)
        if where == "root":
            return text.replace('"title": ', '"title": "hidden", "title": ', 1).encode()
        return text.replace('"sha256": ', '"sha256": "0", "sha256": ', 1).encode()

    rewrite_metadata(demo_archive, mutate)
    key = "title" if where == "root" else "sha256"
    refused(demo_archive, MetadataError, f"the key '{key}' appears twice", read=lambda a: None)


# --------------------------------------------------------------------------------- fuzz
FUZZ = """
import sys
from wmass_archive import validate_archive
from wmass_archive.errors import ArchiveError
src, dst = sys.argv[1], sys.argv[2]
original = open(src, "rb").read()
for offset in range(0, 4000, 29):
    b = bytearray(original)
    b[offset] ^= 0x5A
    open(dst, "wb").write(bytes(b))
    try:
        validate_archive(dst)
        print(offset, "valid")
    except ArchiveError as exc:
        assert "\\n" not in str(exc)
        print(offset, type(exc).__name__)
"""


# 9 s (138 files validated); in the fast set, bytes flipped, overwritten and truncated anywhere
# in the file (superblock, object headers, B-trees, heaps): tests/test_fuzz_archive.py::
# test_fuzz_bytes, and the global heap's records one by one:
# tests/test_fuzz_archive.py::test_every_record_of_the_global_heap_damaged
@pytest.mark.slow
def test_flipped_bytes_anywhere_in_the_headers(demo_archive, tmp_path):
    """Bytes flipped across the superblock, object headers, B-trees and heaps at the start of
    the file: every outcome is either a valid archive (the byte was padding or unused) or an
    ArchiveError, never another exception (KeyError, RuntimeError from h5py) nor a crash. Run
    in a subprocess so that a crash of the HDF5 library fails this test only."""
    r = subprocess.run(
        [sys.executable, "-c", FUZZ, str(demo_archive), str(tmp_path / "f.h5")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    outcomes = [line.split()[1] for line in r.stdout.splitlines()]
    assert len(outcomes) == len(range(0, 4000, 29))
    assert sum(o != "valid" for o in outcomes) > 20, outcomes
