"""The hardened read: open an HDF5 file as an archive under the reader's limits, check its
version and metadata, and read datasets with their shapes, dtypes, sizes, chunk layouts, links
and checksums verified.

Every problem is raised as an :class:`~wmass_archive.errors.ArchiveError` with a one-line
message; no pickle is ever loaded (HDF5 object references and opaque types are refused).
:class:`ArchiveFile` is the base of :class:`~wmass_archive.archive.reader.Archive`, which
adds what the archive's content means (yields, variations, responses, theory grids).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pydantic import ValidationError

from ..errors import (
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
from . import layout
from .checksums import array_sha256, bytes_sha256
from .global_heap import check_global_heaps
from .models import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SEMVER,
    ArchiveMetadata,
    DatasetRecord,
    validation_message,
)
from .plausibility import dataset_problem, metadata_problem

READER_MAJOR, READER_MINOR = (int(x) for x in FORMAT_VERSION.split(".")[:2])


@dataclass(frozen=True)
class ReadLimits:
    """Bounds that protect a reader from hostile files."""

    max_dataset_bytes: int = 8 * 2**30
    """Largest dataset the reader will read, in bytes (declared shape x dtype size)."""
    max_total_bytes: int = 32 * 2**30
    """Largest sum over the manifest of the datasets' declared sizes, in bytes: what reading
    every array of the archive once would hold in memory (the default archive: 95 MB)."""
    max_metadata_bytes: int = 256 * 2**20
    """Largest metadata JSON document, in bytes."""
    max_model_bytes: int = 2 * 2**30
    """Largest estimated memory of a model built from the archive and its fit, in bytes
    (``wmass_archive.model.budget``: parameters x bins, dense blocks, covariance, from the
    declared sizes, checked before anything is built; ``wmass-refit --max-memory GB``)."""
    max_chunks: int = 65_536
    """Most HDF5 chunks one dataset may be stored in: HDF5 holds about 4 kB of memory per chunk
    it reads, even for chunks the file never wrote (a 1 MB file of one-element chunks would
    cost gigabytes). The archives of this package use at most a few hundred per dataset."""
    min_chunk_bytes: int = 1024
    """Smallest chunk (bytes) allowed for a dataset stored in more than 16 chunks."""


class ArchiveFile:
    """An archive file opened under :class:`ReadLimits`: root attributes, version, metadata
    (checksum, JSON, schema, plausibility) checked on opening; :meth:`read` reads one dataset
    of the manifest, checked; :meth:`close` closes the file."""

    def __init__(
        self, path: str | os.PathLike, *, verify: bool = True, limits: ReadLimits = ReadLimits()
    ):
        self.path = Path(path)
        self.verify = verify
        self.limits = limits
        self._file: h5py.File | None = None
        self._file = _open_hdf5(self.path)
        try:
            self.metadata: ArchiveMetadata = self._read_metadata()
            self._check_declared_total()
            problem = metadata_problem(self.metadata)
            if problem is not None:
                raise ContentError(f"{self.path.name}: metadata: {problem}")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    # ------------------------------------------------------------------ low level
    def read(self, path: str, expected_shape: tuple[int | None, ...] | None = None) -> np.ndarray:
        """Read one dataset listed in the manifest, checking its link type, shape, dtype and size,
        and its checksum when ``verify`` is on."""
        rec = self.metadata.datasets.get(path)
        if rec is None:
            raise CorruptArchiveError(
                f"{self.path.name}: dataset '{path}' is not in the archive's manifest"
            )
        if expected_shape is not None and (
            len(rec.shape) != len(expected_shape)
            or any(
                e is not None and e != g for e, g in zip(expected_shape, rec.shape, strict=False)
            )
        ):
            raise CorruptArchiveError(
                f"{self.path.name}: dataset '{path}' is declared with shape "
                f"{tuple(rec.shape)}, expected {_fmt_shape(expected_shape)}"
            )
        dset = self._dataset(path)
        if list(dset.shape) != rec.shape:
            raise CorruptArchiveError(
                f"{self.path.name}: dataset '{path}' has shape "
                f"{dset.shape}, expected {tuple(rec.shape)}"
            )
        if dset.dtype != np.dtype(rec.dtype):
            raise CorruptArchiveError(
                f"{self.path.name}: dataset '{path}' has dtype "
                f"{dset.dtype.str}, expected {rec.dtype}"
            )
        nbytes = _declared_bytes(rec)
        if nbytes > self.limits.max_dataset_bytes:
            raise HostileArchiveError(
                f"{self.path.name}: dataset '{path}' declares {nbytes} bytes, "
                f"over the reader's limit of {self.limits.max_dataset_bytes}"
            )
        self._check_chunks(path, dset)
        try:
            arr = dset[()] if dset.size else np.zeros(dset.shape, dset.dtype)
        except Exception as exc:  # h5py raises OSError/RuntimeError/ValueError on damaged chunks
            raise CorruptArchiveError(
                f"{self.path.name}: dataset '{path}' cannot be decoded ({h5_error_text(exc)})"
            ) from None
        arr = np.asarray(arr)
        if self.verify and array_sha256(arr) != rec.sha256:
            raise ChecksumError(
                f"{self.path.name}: checksum mismatch in dataset '{path}' "
                f"(expected sha256 {rec.sha256[:12]}..., found "
                f"{array_sha256(arr)[:12]}...): the file is damaged"
            )
        problem = dataset_problem(path, arr, signed_yields=self.metadata.sample_yields == "signed")
        if problem is not None:
            raise ContentError(f"{self.path.name}: {path}: {problem}")
        return arr

    def _dataset(self, path: str) -> h5py.Dataset:
        f = self._h5()
        # check the link of every component of the path, from the root down, so that no soft or
        # external link is ever followed (an external link on a parent group would make HDF5
        # open, and read from, another file)
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            try:
                link = f.get(sub, getlink=True)
            except Exception as exc:
                raise CorruptArchiveError(
                    f"{self.path.name}: cannot look up '{sub}' ({h5_error_text(exc)})"
                ) from None
            if link is None:
                raise CorruptArchiveError(
                    f"{self.path.name}: missing dataset '{path}' (listed in the manifest)"
                )
            if not isinstance(link, h5py.HardLink):
                raise HostileArchiveError(
                    f"{self.path.name}: '{sub}' is a "
                    f"{type(link).__name__}, not an object stored in the "
                    f"archive"
                )
        try:
            obj = f[path]
        except Exception as exc:
            raise CorruptArchiveError(
                f"{self.path.name}: cannot open '{path}' ({h5_error_text(exc)})"
            ) from None
        if not isinstance(obj, h5py.Dataset):
            raise CorruptArchiveError(
                f"{self.path.name}: '{path}' is a {type(obj).__name__}, expected a dataset"
            )
        if obj.is_virtual or obj.external:
            raise HostileArchiveError(
                f"{self.path.name}: dataset '{path}' stores its data "
                f"outside the archive (virtual or external storage)"
            )
        if obj.dtype.kind not in "fiu" or obj.dtype.hasobject:
            raise HostileArchiveError(
                f"{self.path.name}: dataset '{path}' has non-numeric dtype {obj.dtype}"
            )
        return obj

    def _check_chunks(self, path: str, dset: h5py.Dataset) -> None:
        """Refuse a chunk layout that would cost HDF5 more memory than the data: too many
        chunks (counted from the layout, before anything is read), or tiny ones."""
        chunks = dset.chunks
        if chunks is None or not dset.shape:
            return
        n = math.prod(-(-s // c) for s, c in zip(dset.shape, chunks, strict=True))
        chunk_bytes = math.prod(chunks) * dset.dtype.itemsize
        lim = self.limits
        if n > lim.max_chunks or (n > 16 and chunk_bytes < lim.min_chunk_bytes):
            raise HostileArchiveError(
                f"{self.path.name}: dataset '{path}' is stored in {n} chunks of {chunk_bytes} "
                f"bytes; the reader allows at most {lim.max_chunks} chunks "
                f"(ReadLimits.max_chunks) of at least {lim.min_chunk_bytes} bytes "
                f"(ReadLimits.min_chunk_bytes): HDF5 needs ~4 kB of memory per chunk"
            )

    def _check_declared_total(self) -> None:
        """Bound what reading every array could hold at once: the per-dataset limit alone lets
        many small compressed datasets add up to more memory than the machine has."""
        total = sum(_declared_bytes(rec) for rec in self.metadata.datasets.values())
        if total > self.limits.max_total_bytes:
            raise HostileArchiveError(
                f"{self.path.name}: the manifest declares {total} bytes of arrays in total, "
                f"over the reader's limit of {self.limits.max_total_bytes} "
                f"(ReadLimits.max_total_bytes)"
            )

    def _h5(self) -> h5py.File:
        if self._file is None:
            raise ArchiveError(f"archive {self.path} is closed")
        return self._file

    def _read_metadata(self) -> ArchiveMetadata:
        f = self._h5()
        name = self.path.name
        try:
            fmt = _attr_str(f.attrs.get(layout.ATTR_FORMAT))
            version = _attr_str(f.attrs.get(layout.ATTR_VERSION))
            sha = _attr_str(f.attrs.get(layout.ATTR_METADATA_SHA))
        except Exception as exc:
            raise CorruptArchiveError(
                f"{name}: cannot read root attributes ({h5_error_text(exc)})"
            ) from None
        if fmt != FORMAT_NAME:
            raise NotAnArchiveError(
                f"{name} is HDF5 but not a wmass-archive (root attribute "
                f"'format' is {_clip(fmt)}, expected '{FORMAT_NAME}')"
            )
        check_version(version, name)
        meta_rec_limit = self.limits.max_metadata_bytes
        try:
            link = f.get(layout.METADATA, getlink=True)
        except Exception as exc:
            raise CorruptArchiveError(
                f"{name}: cannot look up the metadata ({h5_error_text(exc)})"
            ) from None
        if link is None:
            raise CorruptArchiveError(f"{name}: missing dataset '{layout.METADATA}'")
        if not isinstance(link, h5py.HardLink):
            raise HostileArchiveError(f"{name}: '{layout.METADATA}' is a {type(link).__name__}")
        try:
            obj = f[layout.METADATA]
        except Exception as exc:
            raise CorruptArchiveError(
                f"{name}: cannot open the metadata ({h5_error_text(exc)})"
            ) from None
        if isinstance(obj, h5py.Dataset) and (obj.is_virtual or obj.external):
            raise HostileArchiveError(
                f"{name}: '{layout.METADATA}' stores its data outside the "
                f"archive (virtual or external storage)"
            )
        if not isinstance(obj, h5py.Dataset) or obj.dtype != np.uint8 or obj.ndim != 1:
            raise CorruptArchiveError(f"{name}: '{layout.METADATA}' must be a 1-d uint8 dataset")
        if obj.size > meta_rec_limit:
            raise HostileArchiveError(
                f"{name}: metadata of {obj.size} bytes exceeds the limit of {meta_rec_limit}"
            )
        self._check_chunks(layout.METADATA, obj)
        try:
            blob = obj[()].tobytes()
        except Exception as exc:
            raise CorruptArchiveError(
                f"{name}: metadata cannot be decoded ({h5_error_text(exc)})"
            ) from None
        if sha is None or bytes_sha256(blob) != sha:
            raise ChecksumError(
                f"{name}: checksum mismatch in the metadata (root attribute "
                f"'{layout.ATTR_METADATA_SHA}'): the file is damaged"
            )
        try:
            doc = json.loads(blob.decode("utf-8"), object_pairs_hook=_unique_keys)
        # ValueError: also integers of more than 4300 digits; RecursionError: deep nesting
        except (ValueError, RecursionError) as exc:
            raise MetadataError(f"{name}: metadata is not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise MetadataError(f"{name}: metadata must be a JSON object")
        if doc.get("format_version") != version:
            raise MetadataError(
                f"{name}: metadata format_version {_clip(doc.get('format_version'))} "
                f"differs from the root attribute {version!r}"
            )
        try:
            return ArchiveMetadata.model_validate(doc)
        except ValidationError as exc:
            hint = ""
            if _is_newer_minor(version):
                hint = (
                    f" (the archive is format {version}, newer than this reader's "
                    f"{FORMAT_VERSION}: upgrade wmass-archive)"
                )
            raise MetadataError(
                f"{name}: metadata does not satisfy the schema: "
                f"{validation_message(exc, limit=1)}{hint}"
            ) from None


def check_version(version: str | None, name: str) -> None:
    """Refuse a version this reader cannot read; warn for a newer minor version."""
    if version is None:
        raise NotAnArchiveError(f"{name}: root attribute '{layout.ATTR_VERSION}' is missing")
    m = SEMVER.match(version)
    if not m or len(version) > 50:  # int() of a 5000-digit part would raise ValueError
        raise UnsupportedVersionError(
            f"{name}: format version {_clip(version)} is not MAJOR.MINOR.PATCH"
        )
    major, minor = int(m.group(1)), int(m.group(2))
    if major > READER_MAJOR:
        raise UnsupportedVersionError(
            f"{name}: archive format version {version} is newer than this reader supports "
            f"({READER_MAJOR}.x); upgrade wmass-archive"
        )
    if major < 1:
        raise UnsupportedVersionError(
            f"{name}: archive format version {version} predates format 1.0 and is not supported"
        )
    if minor > READER_MINOR:
        warnings.warn(
            f"{name}: archive format {version} is newer than this reader's "
            f"{FORMAT_VERSION}; content added since may be ignored",
            stacklevel=3,
        )


def _declared_bytes(rec: DatasetRecord) -> int:
    """Bytes of a dataset as the manifest declares it (shape x item size), exact for any size."""
    return math.prod(rec.shape) * np.dtype(rec.dtype).itemsize


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a repeated key (which JSON parsers resolve differently:
    RFC 8259 section 4 leaves it undefined)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key {_clip(k)} appears twice in one object")
        out[k] = v
    return out


def _is_newer_minor(version: str) -> bool:
    m = SEMVER.match(version)
    return bool(m) and int(m.group(1)) == READER_MAJOR and int(m.group(2)) > READER_MINOR


def _open_hdf5(path: Path) -> h5py.File:
    if not path.exists():
        raise ArchiveNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise ArchiveNotFoundError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise NotAnArchiveError(f"{path}: the file is empty")
    try:
        is_h5 = h5py.is_hdf5(str(path))
    except Exception as exc:
        raise NotAnArchiveError(f"{path}: cannot be read ({h5_error_text(exc)})") from None
    if not is_h5:
        raise NotAnArchiveError(f"{path}: not an HDF5 file (no HDF5 signature)")
    try:
        f = h5py.File(path, "r", locking=False)
    except Exception as exc:
        msg = h5_error_text(exc)
        if "truncated" in msg.lower() or "eof" in msg.lower():
            raise CorruptArchiveError(f"{path}: the file is truncated ({msg})") from None
        raise CorruptArchiveError(f"{path}: HDF5 file cannot be opened ({msg})") from None
    try:
        # before HDF5 decodes a variable-length attribute: a damaged global heap would make it
        # loop for ever (global_heap.py)
        check_global_heaps(path, f.id.get_create_plist().get_sizes()[1])
    except BaseException:
        f.close()
        raise
    return f


def _check_index(idx: np.ndarray, n: int, what: str) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise CorruptArchiveError(f"{what}: index out of range [0, {n})")


def _as_index(arr: np.ndarray, n: int | None, what: str) -> np.ndarray:
    """An index array as int64: integers (or integral floats) in [0, n) when n is given."""
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise CorruptArchiveError(f"{what}: indices are not integers")
    out = arr.astype(np.int64)
    if n is not None:
        _check_index(out, n, what)
    return out


def _check_coo(coords: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    for d, n in enumerate(shape):
        _check_index(coords[d], n, f"{what} (coordinate {d})")
    if coords.shape[1] > 1:
        flat = np.ravel_multi_index(tuple(coords), shape)
        if np.any(np.diff(flat) <= 0):
            raise CorruptArchiveError(f"{what}: sparse entries are not sorted and unique")


def _clip(v: Any, n: int = 60) -> str:
    """repr(v), cut to ``n`` characters: file contents quoted in a one-line message."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def _attr_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    return v if isinstance(v, str) else repr(v)


def _fmt_shape(shape: tuple[int | None, ...]) -> str:
    return (
        "("
        + ", ".join("n" if s is None else str(s) for s in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )


def h5_error_text(exc: BaseException) -> str:
    """An h5py/HDF5 exception as one short line."""
    msg = " ".join(str(exc).split())
    return msg[:300] if msg else type(exc).__name__
