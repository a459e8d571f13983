"""A user's own theory prediction replacing the archive's central grid of the W signal.

A prediction is a :class:`~wmass_archive.theory.TheoryGrid` (a file, HDF5 or CSV, or an object;
member 0 is used), a :class:`hist.Hist` with the generator axes, or a plain array: either flat
(``n_gen``, the archive's generator bins in C order) or shaped over named axes
(:func:`make_theory_grid`). Every form is checked against the archive's generator binning and
for sane units before a fit: sigma in pb per generator bin, sigma_UL >= 0, finite, and a total
cross section within a factor :data:`MAX_TOTAL_RATIO` of the archive's nominal one (a grid in fb
or nb, or per GeV, fails here with a one-line error saying so).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..archive.reader import Archive
from ..errors import TheoryError
from .generator import GRID_SHAPE, generator_axes
from .grid import TheoryGrid, TheoryGridError, TheoryGridMeta

#: a user grid whose total cross section differs from the archive's nominal one by more than
#: this factor is refused (wrong units)
MAX_TOTAL_RATIO = 3.0
STANDARD_AXES: tuple[str, ...] = ("qW", "absYW", "ptW", "helicity")

TheoryLike = str | os.PathLike[str] | TheoryGrid | np.ndarray | Any


@dataclass
class UserGrid:
    """A checked user prediction: ``central`` (n_gen,) pb per generator bin, where it came from,
    and its total relative to the archive's nominal grid."""

    central: np.ndarray
    source: str
    label: str
    ratio_to_nominal: float


def make_theory_grid(
    values: Any,
    axes: Sequence[str] = STANDARD_AXES,
    *,
    pdf_set: str = "user",
    description: str = "",
) -> TheoryGrid:
    """A validated :class:`TheoryGrid` (one member) from ``values`` in pb per generator bin:
    a numpy array whose dimensions are the generator axes named in ``axes`` (any order of
    ``qW``, ``absYW``, ``ptW``, ``helicity``; sizes 2, 8, 10, 9), or a :class:`hist.Hist` with
    axes of those names and binnings (``helicity`` a string category ``UL, A0..A7``)."""
    arr, names = _values_and_axes(values, axes)
    if arr.ndim != len(names):
        raise TheoryGridError(
            f"theory grid values have {arr.ndim} dimensions but {len(names)} axes are named"
        )
    if sorted(names) != sorted(STANDARD_AXES):
        raise TheoryGridError(
            f"theory grid axes are {list(names)}, expected the four generator axes "
            f"{list(STANDARD_AXES)} in any order"
        )
    arr = np.transpose(arr, [list(names).index(n) for n in STANDARD_AXES])
    if arr.shape != GRID_SHAPE:
        raise TheoryGridError(
            f"theory grid has shape {arr.shape} over {list(STANDARD_AXES)}, expected {GRID_SHAPE}"
        )
    meta = TheoryGridMeta(pdf_set=pdf_set, description=description)
    return TheoryGrid(np.ascontiguousarray(arr[None], dtype=np.float64), meta).validate()


def _values_and_axes(values: Any, axes: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    if hasattr(values, "axes") and hasattr(values, "values") and callable(values.values):
        names = tuple(ax.name for ax in values.axes)
        want = {a.name: a for a in generator_axes()}
        for ax in values.axes:
            ref = want.get(ax.name)
            if ref is None:
                continue
            if ref.is_continuous:
                edges = np.asarray(ax.edges, dtype=np.float64)
                if edges.shape != ref.bin_edges().shape or not np.allclose(edges, ref.bin_edges()):
                    raise TheoryGridError(
                        f"histogram axis '{ax.name}' has edges {edges.tolist()}, expected "
                        f"{ref.bin_edges().tolist()}"
                    )
            else:
                cats = [ax.value(i) for i in range(len(ax))]
                if [str(c) for c in cats] != [str(c) for c in ref.categories or []]:
                    raise TheoryGridError(
                        f"histogram axis '{ax.name}' has categories {cats}, expected "
                        f"{ref.categories}"
                    )
        return np.asarray(values.values(), dtype=np.float64), names
    return np.asarray(values, dtype=np.float64), tuple(axes)


def _archive_axes_standard(archive: Archive) -> bool:
    th = archive.metadata.theory
    std = generator_axes()
    return (
        th is not None
        and len(th.generator_axes) == len(std)
        and all(
            a.name == b.name and a.same_binning(b)
            for a, b in zip(th.generator_axes, std, strict=False)
        )
    )


def load_user_grid(archive: Archive, theory: TheoryLike) -> UserGrid:
    """Check a user prediction against ``archive`` and return its central grid; every problem
    raises :class:`TheoryError` (or :class:`TheoryGridError`) with one line naming it."""
    th = archive.metadata.theory
    if th is None or not any(p.folded for p in archive.metadata.processes):
        raise TheoryError(
            f"{archive.path.name} has no folded signal: a theory grid cannot replace anything"
        )
    nominal = archive.theory_nominal()
    label = "array"
    if isinstance(theory, str | os.PathLike):
        path = Path(theory)
        if not path.is_file():
            raise TheoryError(f"theory grid file {path} does not exist")
        grid = TheoryGrid.load(path)
        central, source, label = _from_grid(archive, grid, path.name)
    elif isinstance(theory, TheoryGrid):
        central, source, label = _from_grid(archive, theory.validate(), "TheoryGrid")
    elif hasattr(theory, "axes") and hasattr(theory, "values"):
        central, source, label = _from_grid(archive, make_theory_grid(theory), "histogram")
    else:
        arr = np.asarray(theory, dtype=np.float64)
        if arr.ndim == 5 and arr.shape[1:] == GRID_SHAPE:  # (members, ...): the central one
            arr = arr[0]
        if arr.ndim == 1:
            if arr.shape != (th.n_gen,):
                raise TheoryError(
                    f"theory grid has {arr.size} values, the archive has {th.n_gen} generator "
                    f"bins ({' x '.join(f'{a.name}[{a.size}]' for a in th.generator_axes)})"
                )
            central, source = arr, "array"
            _check_values(central.reshape(th.shape), [a.name for a in th.generator_axes])
        else:
            central, source, label = _from_grid(archive, make_theory_grid(arr), "array")
    total, ref = float(central.sum()), float(nominal.sum())
    ratio = total / ref if ref > 0 else float("nan")
    if not (1.0 / MAX_TOTAL_RATIO <= ratio <= MAX_TOTAL_RATIO):
        raise TheoryError(
            f"theory grid ({label}) totals {total:.6g} pb, {ratio:.3g} times the archive's nominal "
            f"{ref:.6g} pb: wrong units? (the grid must be sigma x BR in pb per generator bin, "
            "integrated over each cell)"
        )
    return UserGrid(np.ascontiguousarray(central, dtype=np.float64), source, label, ratio)


def _from_grid(archive: Archive, grid: TheoryGrid, label: str) -> tuple[np.ndarray, str, str]:
    if not _archive_axes_standard(archive):
        th = archive.metadata.theory
        got = " x ".join(f"{a.name}[{a.size}]" for a in th.generator_axes)  # type: ignore[union-attr]
        raise TheoryError(
            f"{archive.path.name} has generator axes {got}, not the TheoryGrid binning "
            "qW[2] x absYW[8] x ptW[10] x helicity[9]: pass a flat array of its generator bins"
        )
    row = grid.meta.pdf_members.index(0) if 0 in grid.meta.pdf_members else 0
    return grid.flat()[row], f"{grid.meta.pdf_set} (member {grid.meta.pdf_members[row]})", label


def _check_values(arr: np.ndarray, names: list[str]) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise TheoryError(f"theory grid has {int(bad.sum())} non-finite value(s)")
    hel = names.index("helicity") if "helicity" in names else None
    ul = np.take(arr, 0, axis=hel) if hel is not None else arr
    if np.any(ul < 0):
        raise TheoryError(
            f"theory grid has {int(np.sum(ul < 0))} negative "
            f"{'sigma_UL' if hel is not None else 'cross section'} value(s), first "
            f"{ul[ul < 0].ravel()[0]:.6g} pb"
        )


__all__ = ["MAX_TOTAL_RATIO", "UserGrid", "load_user_grid", "make_theory_grid"]
