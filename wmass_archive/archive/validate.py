"""Full validation of an archive: every rule of ``docs/format.md`` checked, every checksum
verified. The first problem found is raised as an :class:`ArchiveError` with one line naming
it; a valid archive returns a :class:`ValidationReport`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import ArchiveError, CorruptArchiveError, HostileArchiveError
from . import layout
from .expected import expected_datasets, folded_pairs, response_paths
from .hardened_read import h5_error_text
from .reader import Archive, ReadLimits, open_archive


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
    """Read every dataset through the reader's accessors: each verifies the checksum and the
    value rules of module ``plausibility`` (finite, non-negative yields and sumw2, ranges),
    the order of sparse entries, the extended modifiers' rules, and the folding of every
    response at every mass point. The fitter, the exports and the API read through the same
    accessors, so they refuse what this refuses."""
    m = a.metadata
    for ch in m.channels:
        a.data(ch.name)
        for p in ch.processes:
            a.nominal(p, ch.name)
            a.sumw2(p, ch.name)
        a.logk(ch.name)
        if ch.modifiers:
            a.modifiers(ch.name)
    if m.theory is not None:
        a.theory_nominal()
        for s in m.theory.pdf_sets:
            a.pdf_members(s.name)
            if s.n_eigenvectors:
                a.pdf_eigenvectors(s.name)
        a.theory_variations()
        for ch_name, p in folded_pairs(m):
            a.response(p, ch_name, dense=False)


def _fmt(shape: tuple) -> str:
    return (
        "("
        + ", ".join("n" if s is None else str(s) for s in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )
