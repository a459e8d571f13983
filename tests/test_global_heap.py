"""The pre-flight walk of HDF5 global heap collections (archive/global_heap.py), on collections
built byte by byte from the HDF5 file format specification (section III.E) and on files h5py
writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from wmass_archive.archive.global_heap import check_global_heaps
from wmass_archive.errors import CorruptArchiveError


def _obj(idx: int, data: bytes) -> bytes:
    """One heap object: index, reference count, reserved, size, data padded to 8 bytes."""
    pad = -len(data) % 8
    return (
        idx.to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + bytes(4)
        + len(data).to_bytes(8, "little")
        + data
        + bytes(pad)
    )


def _collection(objects: list[bytes], size: int = 4096, free: int | None = None) -> bytes:
    """A collection of ``size`` bytes: header, objects, then a free-space record (object 0,
    its size counting its own 16-byte header) of ``free`` bytes (default: the rest)."""
    body = b"".join(objects)
    rest = size - 16 - len(body)
    free = rest if free is None else free
    record = (0).to_bytes(2, "little") + bytes(6) + free.to_bytes(8, "little")
    coll = b"GCOL" + bytes([1, 0, 0, 0]) + size.to_bytes(8, "little") + body + record
    return coll + bytes(size - len(coll))


def _file(tmp_path, *chunks: bytes):
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(56) + b"".join(chunks) + bytes(100))
    return path


def test_well_formed_collections_pass(tmp_path):
    a = _collection([_obj(1, b"wmass-archive"), _obj(2, b"1.0.0")])
    b = _collection([_obj(1, b"x" * 100)], size=8192)
    assert check_global_heaps(_file(tmp_path, a, b)) == 2


def test_a_tail_shorter_than_a_header_is_free_space(tmp_path):
    # header (16) + one object (16 + 4056): 8 bytes left, too few for a record
    coll = b"GCOL" + bytes([1, 0, 0, 0]) + (4096).to_bytes(8, "little") + _obj(1, b"y" * 4056)
    coll += bytes(4096 - len(coll))
    assert len(coll) == 4096 and coll[-8:] == bytes(8)
    assert check_global_heaps(_file(tmp_path, coll)) == 1


@pytest.mark.parametrize(
    "free,what",
    [(0, "free-space record"), (8, "free-space record")],
)
def test_a_free_space_record_that_does_not_advance_is_refused(tmp_path, free, what):
    coll = _collection([_obj(1, b"wmass-archive")], free=free)
    path = _file(tmp_path, coll)
    with pytest.raises(CorruptArchiveError, match=f"{what} at byte {64 + 16 + 32} has size {free}"):
        check_global_heaps(path)


def test_an_object_size_that_wraps_the_step_to_zero_is_refused(tmp_path):
    # 16 + align8(2^64 - 16) = 2^64: libhdf5's size_t step is 0, a loop for ever
    bad = (1).to_bytes(2, "little") + bytes(6) + (2**64 - 16).to_bytes(8, "little")
    coll = b"GCOL" + bytes([1, 0, 0, 0]) + (4096).to_bytes(8, "little") + bad
    with pytest.raises(CorruptArchiveError, match="object 1 at byte 80"):
        check_global_heaps(_file(tmp_path, coll + bytes(4096 - len(coll))))


@pytest.mark.parametrize(
    "header",
    [
        b"GCOL" + bytes([2, 0, 0, 0]) + (4096).to_bytes(8, "little"),  # another version
        b"GCOL" + bytes([1, 9, 0, 0]) + (4096).to_bytes(8, "little"),  # reserved bytes set
        b"GCOL" + bytes([1, 0, 0, 0]) + (2**40).to_bytes(8, "little"),  # beyond the file
        b"GCOL" + bytes([1, 0, 0, 0]) + (8).to_bytes(8, "little"),  # shorter than its header
        b"GCOL",  # the signature alone, at the end of the file
    ],
)
def test_signatures_that_are_not_collections_are_left_to_hdf5(tmp_path, header):
    """A chance "GCOL" in data, or a header libhdf5 refuses itself, is not walked (zeros after
    it would otherwise read as a free-space record of size 0)."""
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(64) + header + bytes(64 if len(header) > 4 else 0))
    assert check_global_heaps(path) == 0


def test_files_h5py_writes(tmp_path):
    path = tmp_path / "vlen.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "wmass-archive"  # variable-length UTF-8: a global heap
        f.create_dataset("s", data=np.array(["a", "bc" * 3000], dtype=h5py.string_dtype()))
    assert check_global_heaps(path) >= 1
    fixed = tmp_path / "fixed.h5"
    with h5py.File(fixed, "w") as f:
        f.attrs["format"] = np.bytes_(b"wmass-archive")  # fixed-length: no heap
        f.create_dataset("x", data=np.arange(10.0))
    assert check_global_heaps(fixed) == 0


def test_the_default_archive_passes():
    from pathlib import Path

    default = Path(__file__).resolve().parent.parent / "likelihoods" / "default.h5"
    assert check_global_heaps(default) == 1


def test_a_signature_inside_a_collection_is_data(tmp_path):
    """A string stored in the heap that looks like a damaged collection is not walked."""
    fake = b"GCOL" + bytes([1, 0, 0, 0]) + (64).to_bytes(8, "little") + bytes(48)
    coll = _collection([_obj(1, fake)])
    assert check_global_heaps(_file(tmp_path, coll)) == 1


def test_more_collections_than_an_archive_holds_are_refused(tmp_path, monkeypatch):
    import wmass_archive.archive.global_heap as gh

    monkeypatch.setattr(gh, "MAX_COLLECTIONS", 3)
    path = _file(tmp_path, *[_collection([_obj(1, b"x")]) for _ in range(4)])
    with pytest.raises(CorruptArchiveError, match="more than 3 HDF5 global heap collections"):
        check_global_heaps(path)


def test_a_huge_collection_of_tiny_objects_is_refused_unwalked(tmp_path):
    """2^21 records of 16 bytes (32 MB): refused once past 2^20 records, not walked to the end
    (0.5 s here; benchmarks are not tests, so no time is asserted)."""
    n = 2**21
    record = _obj(1, b"")
    size = 16 + n * len(record)
    coll = b"GCOL" + bytes([1, 0, 0, 0]) + size.to_bytes(8, "little") + record * n
    path = _file(tmp_path, coll)
    with pytest.raises(CorruptArchiveError, match="objects in them"):
        check_global_heaps(path)
