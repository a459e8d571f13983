"""SHA-256 of arrays, defined on their bytes so that any reader can recompute it.

The checksum of a dataset is the SHA-256 of the array converted to its declared little-endian
dtype and laid out in C (row-major) order, i.e. ``np.ascontiguousarray(a, dtype).tobytes()``.
It does not depend on HDF5 chunking, compression or filters.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

_CHUNK = 1 << 24  # hash in 16 MiB slices so a large array is never copied whole


def array_sha256(a: np.ndarray) -> str:
    """Hex SHA-256 of a C-ordered little-endian array's bytes."""
    a = np.asarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    buf = memoryview(a.reshape(-1).view(np.uint8)) if a.size else memoryview(b"")
    for start in range(0, len(buf), _CHUNK):
        h.update(buf[start : start + _CHUNK])
    return h.hexdigest()


def bytes_sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Lowercase hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
