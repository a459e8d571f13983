"""The lazy reader: open an archive, list what is in it, read the arrays you ask for.

Opening reads only the root attributes and the metadata JSON; arrays are read on demand and
their SHA-256 verified against the manifest as they are read (``verify=False`` skips that).
Every problem is raised as an :class:`~wmass_archive.errors.ArchiveError` with a one-line
message; no pickle is ever loaded (HDF5 object references and opaque types are refused).
The checked reading itself (limits, checksums, links, chunk layouts) is
:mod:`~wmass_archive.archive.hardened_read`; this module is what the content means.

    >>> with open_archive("likelihoods/demo.h5") as a:
    ...     a.metadata.n_bins, [c.name for c in a.channels]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ArchiveError, ContentError, CorruptArchiveError
from . import layout
from .hardened_read import (  # noqa: F401  (check_version, h5_error_text: importable from here)
    ArchiveFile,
    ReadLimits,
    _as_index,
    _check_coo,
    check_version,
    h5_error_text,
)
from .models import Channel, PDFSet, normalize_pdf_name
from .modifiers import ChannelModifiers, modifier_problem
from .plausibility import response_problem
from .sparse import SparseTensor


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


class Archive(ArchiveFile):
    """An open archive (opened, and its datasets read, under the checks of
    :class:`~wmass_archive.archive.hardened_read.ArchiveFile`). Use it as a context manager, or
    call :meth:`close`."""

    # ------------------------------------------------------------------ lifecycle
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
