"""The writer's checks: what a producer gives is refused with one clear line before anything
is written: non-finite values, malformed sparse tensors, invalid models, names and titles with
unsafe characters, and the reader's plausibility rules applied to the whole archive (what the
writer writes, every reader reads)."""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..errors import ContentError
from ..text import has_unsafe_chars, printable
from . import layout
from .expected import folded_pairs
from .models import ArchiveMetadata, validation_message
from .plausibility import dataset_problem, metadata_problem, response_problem
from .sparse import SparseTensor


def _canonical_sparse(t: SparseTensor, what: str) -> SparseTensor:
    """Check a producer's sparse tensor (in range, no repeated entries, finite) and sort it."""
    coords = np.asarray(t.coords, dtype=np.int64)
    values = np.asarray(t.values, dtype=np.float64)
    shape = tuple(int(n) for n in t.shape)
    if coords.shape != (len(shape), values.shape[0]):
        raise ContentError(
            f"{what}: sparse coords have shape {coords.shape}, expected "
            f"({len(shape)}, {values.shape[0]})"
        )
    for d, n in enumerate(shape):
        if coords.shape[1] and (coords[d].min() < 0 or coords[d].max() >= n):
            raise ContentError(f"{what}: sparse coordinate {d} out of range [0, {n})")
    _check_finite(values, what)
    flat = np.ravel_multi_index(tuple(coords), shape) if coords.shape[1] else coords[0]
    order = np.argsort(flat, kind="stable")
    if np.any(np.diff(flat[order]) == 0):
        raise ContentError(f"{what}: repeated sparse entries")
    keep = order[values[order] != 0]
    return SparseTensor(coords[:, keep], values[keep], shape)


def _check_plausible(meta: ArchiveMetadata, arrays: dict[str, np.ndarray]) -> None:
    """The reader's plausibility rules (module ``plausibility``), applied before writing: what
    the writer writes, every reader reads."""
    problem = metadata_problem(meta)
    if problem is not None:
        raise ContentError(problem)
    signed = meta.sample_yields == "signed"
    for path, arr in arrays.items():
        problem = dataset_problem(path, np.asarray(arr), signed_yields=signed)
        if problem is not None:
            raise ContentError(f"{path}: {problem}")
    for ch_name, p in folded_pairs(meta):
        base = layout.response(ch_name, p)
        if base in arrays:
            r = SparseTensor.fromdense(arrays[base])
        else:
            fields = [arrays[f"{base}/{k}"] for k in ("point", "bin", "gen")]
            shape = (len(meta.mass_points_of(p)), meta.channel(ch_name).n_bins, meta.theory.n_gen)  # type: ignore[union-attr]
            r = SparseTensor(np.stack(fields).astype(np.int64), arrays[f"{base}/value"], shape)
        problem = response_problem(
            meta, p, r, arrays[layout.THEORY_NOMINAL], arrays[layout.nominal(ch_name, p)]
        )
        if problem is not None:
            raise ContentError(f"response of '{p}' in '{ch_name}': {problem}")


def _check_finite(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        flat = np.asarray(a).reshape(-1)
        bad = int(np.argmax(~np.isfinite(flat)))
        raise ContentError(f"{what} has a non-finite value ({flat[bad]}) at flat index {bad}")


def _refuse_unsafe_text(meta: ArchiveMetadata) -> None:
    """A new archive's names and title hold no control, format (bidi, zero-width), line or
    paragraph separator or lone surrogate character (issue 14: they reach terminals, plots and
    file names). Archives written before the rule are still read; their strings are escaped
    wherever they are shown."""
    named: list[tuple[str, str]] = [("title", meta.title)]
    named += [("channel name", c.name) for c in meta.channels]
    named += [("process name", p.name) for p in meta.processes]
    named += [("group name", g.name) for g in meta.groups]
    named += [("POI name", p.name) for p in meta.pois]
    named += [("nuisance name", n.name) for n in meta.nuisances]
    if meta.theory is not None:
        named += [("PDF set name", s.name) for s in meta.theory.pdf_sets]
        named += [("theory variation name", v.name) for v in meta.theory.variations]
    for what, value in named:
        bad = has_unsafe_chars(value)
        if bad is not None:
            raise ContentError(
                f"{what} '{printable(value, max_len=80)}' holds the character "
                f"U+{ord(bad):04X} ({unicodedata.category(bad)}): names and the title must not "
                "hold control, format or line-separator characters"
            )


def _is_hist(obj: Any) -> bool:
    return hasattr(obj, "axes") and hasattr(obj, "values") and hasattr(obj, "view")


def _model(cls: type, **kwargs: Any) -> Any:
    """Build a pydantic model, turning its validation error into one clear line."""
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        raise ContentError(f"{cls.__name__}: {validation_message(exc)}") from None
