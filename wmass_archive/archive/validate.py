"""Full validation of an archive: every rule of ``docs/format.md`` checked, every checksum
verified. The first problem found is raised as an :class:`ArchiveError` with one line naming
it; a valid archive returns a :class:`ValidationReport`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import ArchiveError, ContentError, CorruptArchiveError, HostileArchiveError
from . import layout
from .expected import expected_datasets, folded_pairs, response_paths
from .folding import check_folding, fold_point
from .modifiers import modifier_problem
from .reader import Archive, ReadLimits, h5_error_text, open_archive


@dataclass
class ValidationReport:
    path: str
    format_version: str
    n_datasets: int
    bytes_verified: int
    seconds: float

    def summary(self) -> str:
        return (
            f"OK {self.path}: format {self.format_version}, {self.n_datasets} datasets, "
            f"{self.bytes_verified / 1e6:.2f} MB verified (SHA-256) in {self.seconds:.2f} s"
        )


def validate_archive(
    path: str | os.PathLike, *, limits: ReadLimits = ReadLimits()
) -> ValidationReport:
    """Open and check an archive completely. Raises on the first problem."""
    t0 = time.perf_counter()
    with open_archive(path, verify=True, limits=limits) as a:
        _check_structure(a)
        _check_contents(a)
        nbytes = sum(
            int(np.prod(r.shape, dtype=np.int64)) * np.dtype(r.dtype).itemsize
            for r in a.metadata.datasets.values()
        )
        return ValidationReport(
            str(path), a.format_version, len(a.metadata.datasets), nbytes, time.perf_counter() - t0
        )


def _check_structure(a: Archive) -> None:
    """The manifest lists exactly what the metadata implies, and the file holds exactly the
    manifest (plus the metadata), all as plain datasets stored inside the file."""
    m = a.metadata
    name = a.path.name
    want = expected_datasets(m)
    for ch, p in folded_pairs(m):
        options = response_paths(m, ch, p)
        dense = next(iter(options["dense"]))
        if dense in m.datasets:
            want.update(options["dense"])
        else:
            want.update(options["sparse"])
    for path, shape in want.items():
        rec = m.datasets.get(path)
        if rec is None:
            raise CorruptArchiveError(f"{name}: the manifest lacks dataset '{path}'")
        if len(rec.shape) != len(shape) or any(
            s is not None and s != r for s, r in zip(shape, rec.shape, strict=False)
        ):
            raise CorruptArchiveError(
                f"{name}: dataset '{path}' has shape {tuple(rec.shape)}, expected {_fmt(shape)}"
            )
    extra = sorted(set(m.datasets) - set(want))
    if extra:
        raise CorruptArchiveError(f"{name}: the manifest lists unexpected dataset '{extra[0]}'")
    found: list[str] = []
    links: list[tuple[str, object]] = []

    f = a._h5()
    try:
        _walk_links(f, "", links, name, set())
        for path, link in links:
            if not isinstance(link, h5py.HardLink):
                raise HostileArchiveError(
                    f"{name}: '{path}' is a {type(link).__name__}; archives "
                    f"hold no links to other objects or files"
                )
            if isinstance(f[path], h5py.Dataset):
                found.append(path)
    except ArchiveError:
        raise
    # h5py raises KeyError, RuntimeError or OSError on damaged groups
    except Exception as exc:  # noqa: BLE001
        raise CorruptArchiveError(
            f"{name}: the HDF5 group structure is damaged ({h5_error_text(exc)})"
        ) from None
    stray = sorted(set(found) - set(m.datasets) - {layout.METADATA})
    if stray:
        raise CorruptArchiveError(f"{name}: dataset '{stray[0]}' is not in the manifest")


def _walk_links(group: h5py.Group, prefix: str, out: list, name: str, seen: set) -> None:
    for key in group:
        path = f"{prefix}{key}"
        link = group.get(key, getlink=True)
        out.append((path, link))
        if isinstance(link, h5py.HardLink):
            obj = group[key]
            if isinstance(obj, h5py.Group):
                if obj.id in seen:  # a hard link back up the tree would recurse for ever
                    raise HostileArchiveError(
                        f"{name}: group '{path}' is a second hard link to "
                        f"a group already seen (a link cycle or alias)"
                    )
                seen.add(obj.id)
                _walk_links(obj, path + "/", out, name, seen)


def _check_contents(a: Archive) -> None:
    """Read every dataset (checksums verified) and check the value rules."""
    m = a.metadata
    name = a.path.name
    for ch in m.channels:
        d = a.data(ch.name)
        _finite_nonneg(d, f"{name}: {layout.data(ch.name)}", "observed counts")
        for p in ch.processes:
            nom, w2 = a.nominal(p, ch.name), a.sumw2(p, ch.name)
            if m.sample_yields == "signed":  # format 1.2: a process may be negative
                _finite(nom, f"{name}: {layout.nominal(ch.name, p)}")
            else:
                _finite_nonneg(nom, f"{name}: {layout.nominal(ch.name, p)}", "nominal yield")
            _finite_nonneg(w2, f"{name}: {layout.sumw2(ch.name, p)}", "sumw2")
        t = a.logk(ch.name)
        for field in ("avg", "halfdiff"):
            v = getattr(t, field)
            if not np.all(np.isfinite(v)):
                raise ContentError(f"{name}: channel '{ch.name}': logk {field} is not finite")
        _check_logk_rows(a, ch.name)
        if ch.modifiers:
            problem = modifier_problem(m, ch.name, a.modifiers(ch.name))
            if problem is not None:
                raise ContentError(f"{name}: channel '{ch.name}': {problem}")
    if m.theory is not None:
        sigma = a.theory_nominal()
        _finite(sigma, f"{name}: {layout.THEORY_NOMINAL}")
        for s in m.theory.pdf_sets:
            mem = a.pdf_members(s.name)
            _finite(mem, f"{name}: {layout.pdf_members(s.name)}")
            if s.n_eigenvectors:
                ev = a.pdf_eigenvectors(s.name)
                _finite(ev, f"{name}: {layout.pdf_eigenvectors(s.name)}")
        up, down = a.theory_variations()
        _finite(up, f"{name}: {layout.THEORY_VAR_UP}")
        _finite(down, f"{name}: {layout.THEORY_VAR_DOWN}")
        for ch_name, p in folded_pairs(m):
            r = a.response(p, ch_name, dense=False)
            _finite(r.values, f"{name}: {layout.response(ch_name, p)}")
            poi = m.mass_poi_of(p)
            folded = m.luminosity.value * fold_point(  # type: ignore[union-attr]
                r, poi.nominal_point if poi is not None else 0, sigma
            )
            check_folding(folded, a.nominal(p, ch_name), f"{name}: '{p}' in '{ch_name}'")


def _check_logk_rows(a: Archive, channel: str) -> None:
    """Sparse entries sorted and unique, and no (parameter, process) in both storages."""
    m = a.metadata
    dp = a.read(layout.logk(channel, "dense", "parameter")).astype(np.int64)
    dq = a.read(layout.logk(channel, "dense", "process")).astype(np.int64)
    sp = a.read(layout.logk(channel, "sparse", "parameter")).astype(np.int64)
    sq = a.read(layout.logk(channel, "sparse", "process")).astype(np.int64)
    sb = a.read(layout.logk(channel, "sparse", "bin")).astype(np.int64)
    n_proc = len(m.processes)
    nb = m.channel(channel).n_bins
    dense_keys = dp * n_proc + dq
    if np.unique(dense_keys).size != dense_keys.size:
        raise CorruptArchiveError(f"{a.path.name}: channel '{channel}': repeated dense logk row")
    flat = (sp * n_proc + sq) * nb + sb
    if flat.size > 1 and np.any(np.diff(flat) <= 0):
        raise CorruptArchiveError(
            f"{a.path.name}: channel '{channel}': sparse logk entries are "
            f"not sorted by (parameter, process, bin) and unique"
        )
    both = np.intersect1d(dense_keys, sp * n_proc + sq)
    if both.size:
        par = m.parameter_names[int(both[0] // n_proc)]
        raise CorruptArchiveError(
            f"{a.path.name}: channel '{channel}': parameter '{par}' has "
            f"both dense and sparse entries for one process"
        )
    pairs = np.unique(np.concatenate([dense_keys, sp * n_proc + sq]))
    for key in pairs:
        par, proc = m.parameter_names[int(key // n_proc)], m.processes[int(key % n_proc)].name
        problem = m.variation_problem(par, proc, channel)
        if problem is not None:
            raise CorruptArchiveError(
                f"{a.path.name}: channel '{channel}': variation '{par}' of '{proc}': {problem}"
            )


def _finite(v: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(v)):
        bad = int(np.argmax(~np.isfinite(v.reshape(-1))))
        raise ContentError(f"{what}: non-finite value {v.reshape(-1)[bad]} at flat index {bad}")


def _finite_nonneg(v: np.ndarray, what: str, label: str) -> None:
    _finite(v, what)
    if np.any(v < 0):
        bad = int(np.argmin(v))
        raise ContentError(f"{what}: negative {label} {v[bad]:.6g} in bin {bad}")


def _fmt(shape: tuple) -> str:
    return (
        "("
        + ", ".join("n" if s is None else str(s) for s in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )
