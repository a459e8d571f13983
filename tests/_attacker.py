"""Edit an archive as an attacker would: change what you like, then recompute every checksum the
file carries, so that the only thing wrong is the edit itself.

The archive's SHA-256 checksums live in the archive (the manifest and the root attribute
``metadata_sha256``): they prove nothing against someone who edits the file. The tests of
``tests/test_hostile_*.py`` use these helpers to build structurally valid archives with absurd
values, huge declared sizes, hostile strings or expensive HDF5 layouts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wmass_archive.archive import layout
from wmass_archive.archive.checksums import array_sha256, bytes_sha256


def read_doc(path: Path) -> dict:
    """The archive's metadata JSON document, parsed."""
    with h5py.File(path, "r") as f:
        return json.loads(f[layout.METADATA][()].tobytes())


def edit_metadata(path: Path, mutate: Callable[[dict], Any]) -> None:
    """Edit the metadata document in place (``mutate(doc)`` changes it) and store it back with
    a matching root checksum attribute."""
    with h5py.File(path, "r+") as f:
        doc = json.loads(f[layout.METADATA][()].tobytes())
        mutate(doc)
        blob = json.dumps(doc).encode("utf-8")
        del f[layout.METADATA]
        f.create_dataset(layout.METADATA, data=np.frombuffer(blob, dtype=np.uint8))
        f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)


def read_array(path: Path, dpath: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[dpath][()]


def write_array(path: Path, dpath: str, data: np.ndarray, **create_kwargs: Any) -> None:
    """Replace a dataset by ``data`` (any shape and dtype; h5py ``create_dataset`` keywords such
    as ``chunks`` pass through) and record its shape, dtype and SHA-256 in the manifest."""
    data = np.asarray(data)
    with h5py.File(path, "r+") as f:
        if dpath in f:
            del f[dpath]
        f.create_dataset(dpath, data=data, **create_kwargs)

    def fix(doc: dict) -> None:
        rec = doc["datasets"].setdefault(dpath, {})
        rec.update(shape=list(data.shape), dtype=data.dtype.str, sha256=array_sha256(data))

    edit_metadata(path, fix)


def edit_array(path: Path, dpath: str, change: Callable[[np.ndarray], Any]) -> np.ndarray:
    """Read a dataset, let ``change(array)`` edit it in place, write it back with a fresh
    checksum; returns the new array."""
    a = read_array(path, dpath)
    change(a)
    write_array(path, dpath, a)
    return a


def hollow_dataset(
    path: Path, dpath: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str = "<f8"
) -> None:
    """Replace a dataset by a chunked one that is never written (every element the fill value,
    zero) with the given chunk shape, and record it (shape, dtype, the checksum of its zeros) in
    the manifest: a few hundred bytes on disk that HDF5 would expand chunk by chunk."""
    with h5py.File(path, "r+") as f:
        if dpath in f:
            del f[dpath]
        f.create_dataset(dpath, shape=shape, dtype=dtype, chunks=chunks, fillvalue=0)
    zeros = np.zeros(shape, dtype=dtype)
    edit_metadata(
        path,
        lambda doc: doc["datasets"]
        .setdefault(dpath, {})
        .update(shape=list(shape), dtype=np.dtype(dtype).str, sha256=array_sha256(zeros)),
    )
