"""The lazy reader: open an archive, list what is in it, read the arrays you ask for.

Opening reads only the root attributes and the metadata JSON; arrays are read on demand and
their SHA-256 verified against the manifest as they are read (``verify=False`` skips that).
Every problem is raised as an :class:`~wmass_archive.errors.ArchiveError` with a one-line
message; no pickle is ever loaded (HDF5 object references and opaque types are refused).

    >>> with open_archive("likelihoods/demo.h5") as a:
    ...     a.metadata.n_bins, [c.name for c in a.channels]
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
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
    Channel,
    DatasetRecord,
    PDFSet,
    normalize_pdf_name,
    validation_message,
)
from .modifiers import ChannelModifiers, modifier_problem
from .plausibility import dataset_problem, metadata_problem, response_problem
from .sparse import SparseTensor

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


@dataclass(frozen=True)
class LogkTable:
    """Log-normal variations of a set of (channel, process) yields as COO entries.

    ``parameter``, ``process``, ``bin`` (nnz,) int64 indices: into the parameter list
    (POIs then nuisances), the process list and the (concatenated) bins; ``avg`` and
    ``halfdiff`` (nnz,) float64 with logk_up = avg + halfdiff, logk_down = halfdiff - avg."""

    parameter: np.ndarray
    process: np.ndarray
    bin: np.ndarray
    avg: np.ndarray
    halfdiff: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.avg.shape[0])

    @property
    def logk_up(self) -> np.ndarray:
        return self.avg + self.halfdiff

    @property
    def logk_down(self) -> np.ndarray:
        return self.halfdiff - self.avg

    @staticmethod
    def concatenate(tables: Sequence[LogkTable]) -> LogkTable:
        if not tables:
            z = np.zeros(0, np.int64)
            return LogkTable(z, z, z, np.zeros(0), np.zeros(0))
        return LogkTable(
            *(
                np.concatenate([getattr(t, f) for t in tables])
                for f in ("parameter", "process", "bin", "avg", "halfdiff")
            )
        )


class Archive:
    """An open archive. Use it as a context manager, or call :meth:`close`."""

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

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"<Archive {self.path.name} v{m.format_version}: {len(m.channels)} channels, "
            f"{m.n_bins} bins, {len(m.processes)} processes, {len(m.nuisances)} nuisances"
            f"{', synthetic' if m.synthetic else ''}>"
        )

    # ------------------------------------------------------------------ what is inside
    @property
    def format_version(self) -> str:
        return self.metadata.format_version

    @property
    def synthetic(self) -> bool:
        return self.metadata.synthetic

    @property
    def channels(self):
        return self.metadata.channels

    @property
    def processes(self):
        return self.metadata.processes

    @property
    def nuisances(self):
        return self.metadata.nuisances

    @property
    def pois(self):
        return self.metadata.pois

    @property
    def pdf_sets(self) -> list[PDFSet]:
        return list(self.metadata.theory.pdf_sets) if self.metadata.theory else []

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    # ------------------------------------------------------------------ arrays
    def data(self, channel: str) -> np.ndarray:
        """Observed counts, shape (n_bins,) of the channel (C-ordered over its axes)."""
        ch = self.metadata.channel(channel)
        return self.read(layout.data(channel), (ch.n_bins,))

    def nominal(self, process: str, channel: str) -> np.ndarray:
        """Nominal expected yield, shape (n_bins,)."""
        ch = self._has(process, channel)
        return self.read(layout.nominal(channel, process), (ch.n_bins,))

    def sumw2(self, process: str, channel: str) -> np.ndarray:
        """Sum of squared MC weights (MC statistical variance) per bin, shape (n_bins,)."""
        ch = self._has(process, channel)
        return self.read(layout.sumw2(channel, process), (ch.n_bins,))

    def histogram(self, process: str | None, channel: str) -> Any:
        """A ``hist.Hist`` (Weight storage) of a process's yield, or of the data when
        ``process`` is None, with the channel's named axes."""
        import hist

        ch = self.metadata.channel(channel)
        h = hist.Hist(*[a.to_hist() for a in ch.axes], storage=hist.storage.Weight())
        if process is None:
            v = self.data(channel)
            w2 = v
        else:
            v, w2 = self.nominal(process, channel), self.sumw2(process, channel)
        h.view().value = v.reshape(ch.shape)
        h.view().variance = w2.reshape(ch.shape)
        return h

    def response(
        self, process: str, channel: str, *, dense: bool = True
    ) -> np.ndarray | SparseTensor:
        """Response tensor of a folded process, shape (n_points, n_bins, n_gen): reco yield per
        unit luminosity (pb^-1) and unit cross section (pb) in each generator bin, at each of
        the mass points of its POI. ``dense=False`` returns a :class:`SparseTensor`."""
        ch = self._has(process, channel)
        if not self.metadata.process(process).folded:
            raise ArchiveError(f"process '{process}' is not folded and has no response")
        shape = (len(self.metadata.mass_points_of(process)), ch.n_bins, self.metadata.theory.n_gen)  # type: ignore[union-attr]
        base = layout.response(channel, process)
        if base in self.metadata.datasets:
            r = self.read(base, shape)
            sp = SparseTensor.fromdense(r)
            self._check_response(process, channel, sp)
            return r if dense else sp
        f = {k: self.read(f"{base}/{k}", (None,)) for k in layout.RESPONSE_FIELDS_SPARSE}
        if len({v.shape for v in f.values()}) != 1:
            raise CorruptArchiveError(
                f"{self.path.name}: sparse response '{base}': its fields "
                f"{', '.join(layout.RESPONSE_FIELDS_SPARSE)} differ in length"
            )
        what = f"{self.path.name}: {base}"
        coords = np.stack([_as_index(f[k], None, f"{what}/{k}") for k in ("point", "bin", "gen")])
        _check_coo(coords, shape, f"response of '{process}' in '{channel}'")
        sp = SparseTensor(coords, f["value"], shape)
        self._check_response(process, channel, sp)
        return sp.todense() if dense else sp

    def _check_response(self, process: str, channel: str, r: SparseTensor) -> None:
        """The plausibility of a folded response (module ``plausibility``), folded with the
        archive's own nominal grid (read here, not through :meth:`theory_nominal`, which a
        derived archive may replace)."""
        problem = response_problem(
            self.metadata,
            process,
            r,
            self.read(layout.THEORY_NOMINAL, (self._theory().n_gen,)),
            self.read(layout.nominal(channel, process), (r.shape[1],)),
        )
        if problem is not None:
            raise ContentError(
                f"{self.path.name}: response of '{process}' in '{channel}': {problem}"
            )

    def logk(
        self,
        channel: str,
        *,
        parameters: Iterable[str] | None = None,
        processes: Iterable[str] | None = None,
    ) -> LogkTable:
        """The channel's log-normal variations (dense rows and sparse entries merged) as COO
        entries with bins local to the channel, optionally restricted to some parameters and
        processes (indices stay those of the whole archive)."""
        ch = self.metadata.channel(channel)
        n_par = len(self.metadata.parameter_names)
        n_proc = len(self.metadata.processes)
        rows = {"avg": (None, ch.n_bins), "halfdiff": (None, ch.n_bins)}  # others (n_rows,)
        d = {
            k: self.read(layout.logk(channel, "dense", k), rows.get(k, (None,)))
            for k in layout.LOGK_FIELDS_DENSE
        }
        s = {
            k: self.read(layout.logk(channel, "sparse", k), (None,))
            for k in layout.LOGK_FIELDS_SPARSE
        }
        n_rows = d["parameter"].shape[0]
        for k in ("process", "avg", "halfdiff"):
            if d[k].shape[0] != n_rows:
                raise CorruptArchiveError(
                    f"{layout.logk(channel, 'dense', k)}: {d[k].shape[0]} "
                    f"rows, expected {n_rows} as in 'parameter'"
                )
        for k in ("avg", "halfdiff"):
            if d[k].shape[1:] != (ch.n_bins,):
                raise CorruptArchiveError(
                    f"{layout.logk(channel, 'dense', k)}: shape "
                    f"{d[k].shape}, expected ({n_rows}, {ch.n_bins})"
                )
        nnz = s["parameter"].shape[0]
        for k in layout.LOGK_FIELDS_SPARSE:
            if s[k].shape != (nnz,):
                raise CorruptArchiveError(
                    f"{layout.logk(channel, 'sparse', k)}: shape {s[k].shape}, expected ({nnz},)"
                )
        # float index datasets (a manifest dtype allows them): integral and finite, or refused
        name = self.path.name
        for k, n in (("parameter", n_par), ("process", n_proc)):
            d[k] = _as_index(d[k], n, f"{name}: {layout.logk(channel, 'dense', k)}")
        for k, n in (("parameter", n_par), ("process", n_proc), ("bin", ch.n_bins)):
            s[k] = _as_index(s[k], n, f"{name}: {layout.logk(channel, 'sparse', k)}")
        self._check_logk_order(channel, d, s)
        rows = np.repeat(np.arange(n_rows), ch.n_bins)
        bins = np.tile(np.arange(ch.n_bins), n_rows)
        dense_mask = (d["avg"].reshape(-1) != 0) | (d["halfdiff"].reshape(-1) != 0)
        table = LogkTable.concatenate(
            [
                LogkTable(
                    d["parameter"][rows][dense_mask].astype(np.int64),
                    d["process"][rows][dense_mask].astype(np.int64),
                    bins[dense_mask].astype(np.int64),
                    d["avg"].reshape(-1)[dense_mask],
                    d["halfdiff"].reshape(-1)[dense_mask],
                ),
                LogkTable(
                    s["parameter"].astype(np.int64),
                    s["process"].astype(np.int64),
                    s["bin"].astype(np.int64),
                    s["avg"],
                    s["halfdiff"],
                ),
            ]
        )
        keep = np.ones(table.nnz, dtype=bool)
        if parameters is not None:
            idx = [self.metadata.parameter_index(p) for p in parameters]
            keep &= np.isin(table.parameter, idx)
        if processes is not None:
            idx = [self.metadata.process_index(p) for p in processes]
            keep &= np.isin(table.process, idx)
        return LogkTable(
            *(getattr(table, f)[keep] for f in ("parameter", "process", "bin", "avg", "halfdiff"))
        )

    def _check_logk_order(
        self, channel: str, dense: dict[str, np.ndarray], sparse: dict[str, np.ndarray]
    ) -> None:
        """Dense rows unique per (parameter, process); sparse entries sorted by (parameter,
        process, bin) and unique; no (parameter, process) in both storages; every pair one that
        may carry variations (:meth:`ArchiveMetadata.variation_problem`)."""
        m = self.metadata
        name = self.path.name
        n_proc, nb = len(m.processes), m.channel(channel).n_bins
        dense_keys = dense["parameter"] * n_proc + dense["process"]
        if np.unique(dense_keys).size != dense_keys.size:
            raise CorruptArchiveError(f"{name}: channel '{channel}': repeated dense logk row")
        pair = sparse["parameter"] * n_proc + sparse["process"]
        flat = pair * nb + sparse["bin"]
        if flat.size > 1 and np.any(np.diff(flat) <= 0):
            raise CorruptArchiveError(
                f"{name}: channel '{channel}': sparse logk entries are "
                f"not sorted by (parameter, process, bin) and unique"
            )
        both = np.intersect1d(dense_keys, pair)
        if both.size:
            par = m.parameter_names[int(both[0] // n_proc)]
            raise CorruptArchiveError(
                f"{name}: channel '{channel}': parameter '{par}' has "
                f"both dense and sparse entries for one process"
            )
        names, procs = m.parameter_names, [p.name for p in m.processes]
        allowed = {x.name for x in m.nuisances}
        for key in np.unique(np.concatenate([dense_keys, pair])).tolist():
            par, proc = names[key // n_proc], procs[key % n_proc]
            if par in allowed and proc in m.channel(channel).processes:
                continue  # a nuisance on a process with a yield here: always allowed
            problem = m.variation_problem(par, proc, channel)
            if problem is not None:
                raise CorruptArchiveError(
                    f"{name}: channel '{channel}': variation '{par}' of '{proc}': {problem}"
                )

    def modifiers(self, channel: str) -> ChannelModifiers:
        """The channel's extended modifiers (format 1.1, docs/format.md section 15): additive
        and multiplicative rows, (n_rows,) indices and (n_rows, n_bins) values, and linear
        entries, (nnz,); empty tables for the kinds the channel does not list. Indices are
        checked to be integers in range and the tables' lengths to agree."""
        ch = self.metadata.channel(channel)
        nb = ch.n_bins
        n_par, n_proc = len(self.metadata.parameter_names), len(self.metadata.processes)
        tables: dict[str, dict[str, np.ndarray]] = {}
        for kind in ch.modifiers:
            index_fields, value_fields = layout.MODIFIER_FIELDS[kind]
            n = self.metadata.datasets.get(layout.modifier(channel, kind, index_fields[0]))
            n_rows = n.shape[0] if n is not None and n.shape else 0
            shape = (n_rows, nb) if kind != "linear" else (n_rows,)
            t = {f: self.read(layout.modifier(channel, kind, f), (n_rows,)) for f in index_fields}
            t.update({f: self.read(layout.modifier(channel, kind, f), shape) for f in value_fields})
            limits = {"parameter": n_par, "process": n_proc, "bin": nb}
            for f in index_fields:
                t[f] = _as_index(t[f], limits.get(f), layout.modifier(channel, kind, f))
            tables[kind] = t
        mods = ChannelModifiers.from_arrays(nb, tables)
        problem = modifier_problem(self.metadata, channel, mods) if ch.modifiers else None
        if problem is not None:
            raise ContentError(f"{self.path.name}: channel '{channel}': {problem}")
        return mods

    def theory_nominal(self) -> np.ndarray:
        """Nominal theory grid sigma[g] in pb, shape (n_gen,)."""
        th = self._theory()
        return self.read(layout.THEORY_NOMINAL, (th.n_gen,))

    def pdf_members(self, pdf: str) -> np.ndarray:
        """Theory grid of every member of a PDF set, shape (n_members, n_gen); member 0 is the
        central (or replica-average) prediction."""
        th = self._theory()
        s = self._pdf(pdf)
        return self.read(layout.pdf_members(s.name), (s.n_members, th.n_gen))

    def pdf_eigenvectors(self, pdf: str) -> np.ndarray:
        """One-sigma (68% CL, unscaled) eigenvector shifts of a replica set, (n_eig, n_gen)."""
        th = self._theory()
        s = self._pdf(pdf)
        if not s.n_eigenvectors:
            raise ArchiveError(f"PDF set '{s.name}' ({s.error_type}) has no stored eigenvectors")
        return self.read(layout.pdf_eigenvectors(s.name), (s.n_eigenvectors, th.n_gen))

    def theory_variations(self) -> tuple[np.ndarray, np.ndarray]:
        """Up and down theory grids of the theory variations, each (n_var, n_gen), in the order
        of ``metadata.theory.variations``."""
        th = self._theory()
        shape = (len(th.variations), th.n_gen)
        return self.read(layout.THEORY_VAR_UP, shape), self.read(layout.THEORY_VAR_DOWN, shape)

    def select(
        self,
        *,
        channels: Iterable[str] | None = None,
        processes: Iterable[str] | None = None,
        nuisances: Iterable[str] | None = None,
    ) -> Selection:
        """A view on part of the archive (all of it by default) whose arrays are stacked over
        the selected channels, in their order."""
        return Selection(self, channels, processes, nuisances)

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

    def _has(self, process: str, channel: str) -> Channel:
        ch = self.metadata.channel(channel)
        if process not in ch.processes:
            raise ArchiveError(
                f"process '{process}' has no yield in channel '{channel}' "
                f"(it has: {', '.join(ch.processes)})"
            )
        return ch

    def _theory(self):
        if self.metadata.theory is None:
            raise ArchiveError(f"{self.path.name} has no theory section")
        return self.metadata.theory

    def _pdf(self, name: str) -> PDFSet:
        s = find_pdf_set(self._theory().pdf_sets, name)
        if s is None:
            known = ", ".join(x.name for x in self._theory().pdf_sets)
            raise ArchiveError(f"no PDF set '{name}' in {self.path.name} (available: {known})")
        return s


class Selection:
    """Part of an archive: chosen channels, processes and nuisances, with arrays stacked over
    the channels (bins concatenated in channel order)."""

    def __init__(
        self,
        archive: Archive,
        channels: Iterable[str] | None,
        processes: Iterable[str] | None,
        nuisances: Iterable[str] | None,
    ):
        m = archive.metadata
        self.archive = archive
        self.channels = (
            [m.channel(c) for c in channels] if channels is not None else list(m.channels)
        )
        names = list(processes) if processes is not None else [p.name for p in m.processes]
        self.processes = [m.process(p) for p in names]
        nn = list(nuisances) if nuisances is not None else [n.name for n in m.nuisances]
        self.nuisances = [m.nuisance(n) for n in nn]
        self.offsets = np.cumsum([0] + [c.n_bins for c in self.channels])

    @property
    def n_bins(self) -> int:
        return int(self.offsets[-1])

    @property
    def parameter_names(self) -> list[str]:
        """POIs, then the selected nuisances: the order of :meth:`logk`'s parameter index."""
        return [p.name for p in self.archive.metadata.pois] + [n.name for n in self.nuisances]

    def data(self) -> np.ndarray:
        """Observed counts, (n_bins,)."""
        return np.concatenate([self.archive.data(c.name) for c in self.channels])

    def nominal(self) -> np.ndarray:
        """Nominal yields, (n_processes, n_bins); zero where a process has no yield."""
        return self._stack(self.archive.nominal)

    def sumw2(self) -> np.ndarray:
        """MC statistical variances, (n_processes, n_bins)."""
        return self._stack(self.archive.sumw2)

    def logk(self) -> LogkTable:
        """Variations of the selection with indices into :attr:`parameter_names`, the selected
        processes and the concatenated bins."""
        m = self.archive.metadata
        remap_par = np.full(len(m.parameter_names), -1, np.int64)
        for i, n in enumerate(self.parameter_names):
            remap_par[m.parameter_index(n)] = i
        remap_proc = np.full(len(m.processes), -1, np.int64)
        for i, p in enumerate(self.processes):
            remap_proc[m.process_index(p.name)] = i
        tables = []
        for off, ch in zip(self.offsets, self.channels, strict=False):
            t = self.archive.logk(ch.name)
            par, proc = remap_par[t.parameter], remap_proc[t.process]
            keep = (par >= 0) & (proc >= 0)
            tables.append(
                LogkTable(par[keep], proc[keep], t.bin[keep] + off, t.avg[keep], t.halfdiff[keep])
            )
        return LogkTable.concatenate(tables)

    def _stack(self, get) -> np.ndarray:
        out = None  # allocated after a first read checked the declared sizes against the file
        for off, ch in zip(self.offsets, self.channels, strict=False):
            for i, p in enumerate(self.processes):
                if p.name in ch.processes:
                    v = get(p.name, ch.name)
                    if out is None:
                        out = np.zeros((len(self.processes), self.n_bins))
                    out[i, off : off + ch.n_bins] = v
        return out if out is not None else np.zeros((len(self.processes), self.n_bins))


def open_archive(
    path: str | os.PathLike, *, verify: bool = True, limits: ReadLimits = ReadLimits()
) -> Archive:
    """Open an archive lazily (metadata only). Raises :class:`ArchiveError` subclasses with a
    one-line message for a missing, non-HDF5, damaged or unsupported file."""
    return Archive(path, verify=verify, limits=limits)


def find_pdf_set(sets: Sequence[PDFSet], name: str) -> PDFSet | None:
    """A PDF set by its archive name, LHAPDF name or alias, compared loosely (case, and the
    characters ' ', '.', '-', '_' ignored: 'NNPDF4.0', 'nnpdf40' and 'NNPDF40' are the same)."""
    want = normalize_pdf_name(name)
    return next((s for s in sets if want in s.lookup_keys), None)


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
