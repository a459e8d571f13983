"""The writer's serialisation: an archive's metadata and arrays as one HDF5 file, written
atomically.

The file is built in memory with HDF5's core driver (every array a gzip-compressed, shuffled,
little-endian dataset with its manifest record: shape, dtype, SHA-256), written to disk under
a temporary name in the target's folder in chunks, fsync'ed, and only then renamed (or, when
nothing may be replaced, hard-linked) into place: a crash or a full disk leaves any previous
archive untouched and no temporary file behind.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import ArchiveError
from . import layout
from .checksums import array_sha256, bytes_sha256
from .models import ArchiveMetadata, DatasetRecord


def write_atomically(
    path: Path,
    meta: ArchiveMetadata,
    arrays: dict[str, np.ndarray],
    *,
    overwrite: bool,
    compression_level: int,
) -> tuple[dict[str, DatasetRecord], int]:
    """Write the archive of ``meta`` and ``arrays`` to ``path`` atomically (module docstring);
    with ``overwrite=False`` an existing file (even one created meanwhile) is never replaced.
    Returns the manifest records and the uncompressed array bytes. OS errors are raised as one
    :class:`~wmass_archive.errors.ArchiveError` line naming the file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        image, records, raw = _build_image(meta, arrays, compression_level)
        _write_file(tmp, image)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the name exists: never clobbers
            tmp.unlink()
        _fsync_dir(path.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError) and not overwrite:
            raise ArchiveError(f"{path} exists (pass overwrite=True to replace it)") from exc
        if isinstance(exc, OSError) and not isinstance(exc, ArchiveError):
            raise ArchiveError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    return records, raw


def _build_image(
    meta: ArchiveMetadata, arrays: dict[str, np.ndarray], level: int
) -> tuple[bytes, dict[str, DatasetRecord], int]:
    """The complete HDF5 file as bytes (built with HDF5's in-memory driver, so that HDF5 never
    sees a failing disk), with the manifest records and the uncompressed array bytes."""
    records: dict[str, DatasetRecord] = {}
    raw = 0
    f = h5py.File(
        f"wmass-archive-{secrets.token_hex(8)}.h5", "w", driver="core", backing_store=False
    )
    try:
        for dpath, arr in arrays.items():
            records[dpath] = _write_dataset(f, dpath, arr, level)
            raw += arr.nbytes
        final = meta.model_copy(update={"datasets": records})
        blob = final.to_json_bytes()
        ArchiveMetadata.model_validate_json(blob)  # what we write, we can read
        f.create_dataset(
            layout.METADATA,
            data=np.frombuffer(blob, dtype=np.uint8),
            compression="gzip",
            compression_opts=level,
        )
        f.attrs[layout.ATTR_FORMAT] = final.format
        f.attrs[layout.ATTR_VERSION] = final.format_version
        f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)
        f.flush()
        image = f.id.get_file_image()
    finally:
        f.close()
    return image, records, raw


#: bytes per write() call when copying the file image to disk
_CHUNK = 1 << 20


def _write_file(tmp: Path, image: bytes) -> None:
    """Write ``image`` to a new file ``tmp`` (which must not exist) and fsync it."""
    view = memoryview(image)
    with open(tmp, "xb") as fh:
        for start in range(0, len(view), _CHUNK):
            _write_chunk(fh, view[start : start + _CHUNK])
        fh.flush()
        os.fsync(fh.fileno())


def _write_chunk(fh: Any, chunk: memoryview) -> None:
    fh.write(chunk)


def _write_dataset(f: h5py.File, path: str, arr: np.ndarray, level: int) -> DatasetRecord:
    arr = np.ascontiguousarray(arr)
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    arr = arr.astype(dt, copy=False)
    kwargs: dict[str, Any] = {}
    if arr.size > 0:
        kwargs = dict(compression="gzip", compression_opts=level, shuffle=True)
    f.create_dataset(path, data=arr, **kwargs)
    return DatasetRecord(shape=list(arr.shape), dtype=dt.str, sha256=array_sha256(arr))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
