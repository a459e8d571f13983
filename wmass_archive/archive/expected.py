"""The datasets an archive must hold, derived from its metadata alone.

Shapes use ``None`` for a length the metadata does not fix (the number of stored entries of a
sparse array). The writer produces exactly these; the validator checks a file against them.
"""

from __future__ import annotations

from . import layout
from .models import ArchiveMetadata

Shape = tuple[int | None, ...]


def expected_datasets(meta: ArchiveMetadata) -> dict[str, Shape]:
    """Every required dataset path with its expected shape, except the response tensors, whose
    storage (dense or sparse) is recorded by which paths the manifest lists; see
    :func:`response_paths`."""
    out: dict[str, Shape] = {}
    n_gen = meta.theory.n_gen if meta.theory is not None else 0
    for ch in meta.channels:
        nb = ch.n_bins
        out[layout.data(ch.name)] = (nb,)
        for p in ch.processes:
            out[layout.nominal(ch.name, p)] = (nb,)
            out[layout.sumw2(ch.name, p)] = (nb,)
        for f in layout.LOGK_FIELDS_DENSE:
            out[layout.logk(ch.name, "dense", f)] = (
                (None, nb) if f in ("avg", "halfdiff") else (None,)
            )
        for f in layout.LOGK_FIELDS_SPARSE:
            out[layout.logk(ch.name, "sparse", f)] = (None,)
        for kind in ch.modifiers:
            index_fields, value_fields = layout.MODIFIER_FIELDS[kind]
            per_bin = (None, nb) if kind != "linear" else (None,)
            for f in index_fields:
                out[layout.modifier(ch.name, kind, f)] = (None,)
            for f in value_fields:
                out[layout.modifier(ch.name, kind, f)] = per_bin
    if meta.theory is not None:
        th = meta.theory
        out[layout.THEORY_NOMINAL] = (n_gen,)
        for s in th.pdf_sets:
            out[layout.pdf_members(s.name)] = (s.n_members, n_gen)
            if s.n_eigenvectors:
                out[layout.pdf_eigenvectors(s.name)] = (s.n_eigenvectors, n_gen)
        out[layout.THEORY_VAR_UP] = (len(th.variations), n_gen)
        out[layout.THEORY_VAR_DOWN] = (len(th.variations), n_gen)
    return out


def response_paths(
    meta: ArchiveMetadata, channel: str, process: str
) -> dict[str, dict[str, Shape]]:
    """The two ways a folded process's response may be stored, with expected shapes:
    ``{"dense": {path: shape}, "sparse": {path: shape, ...}}``."""
    ch = meta.channel(channel)
    n_pts = len(meta.mass_points_of(process))
    n_gen = meta.theory.n_gen if meta.theory is not None else 0
    base = layout.response(channel, process)
    return {
        "dense": {base: (n_pts, ch.n_bins, n_gen)},
        "sparse": {f"{base}/{f}": (None,) for f in layout.RESPONSE_FIELDS_SPARSE},
    }


def folded_pairs(meta: ArchiveMetadata) -> list[tuple[str, str]]:
    """(channel, process) pairs that need a response tensor."""
    return [(ch.name, p) for ch in meta.channels for p in ch.processes if meta.process(p).folded]
