"""Theory grids from PDF members: one member, every member of a set, and the in-cell densities
the event simulation draws from.

A grid cell (charge q, |y| bin i, pT bin j) holds, in pb,

    UL: int_i dsigma/d|y| d|y| * int_j g_i(pT) dpT
    A0 = A2: int_i dsigma/d|y| d|y| * int_j g_i(pT) A0(pT) dpT
    A1, A3, A4: int_i D(|y|) dsigma/d|y| d|y| * int_j g_i(pT) k(pT) dpT * (constants)

(:mod:`.wproduction` for dsigma/d|y| and the dilution D, :mod:`.ptspectrum` for the pT density
g_i of |y| bin i, :mod:`.angular` for the pT kernels k). Both one-dimensional integrals use
24-point Gauss-Legendre rules in every cell, so a cell integral is exact to < 1e-9 for these
smooth integrands. The pT part does not depend on the PDF, so a set's grids cost one PDF
evaluation per member (192 |y| nodes) and a few array products.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from tqdm.auto import tqdm

from ..errors import ArchiveError
from .angular import charge_sign, pt_kernels
from .generator import (
    ABS_Y_EDGES,
    CHARGES,
    GRID_SHAPE,
    N_PT,
    N_Y,
    PT_EDGES,
    CellDensities,
)
from .grid import GridProvenance, TheoryGrid, TheoryGridMeta
from .lhapdf import (
    PDFMember,
    PDFSet,
    PDFSetInfo,
    PDFSetNotFoundError,
    load_pdf_set,
)
from .params import TheoryParameters
from .ptspectrum import pt_model
from .wproduction import (
    RapidityNodes,
    WRapidity,
    parton_values,
    rapidity_from_partons,
    rapidity_nodes,
    w_rapidity,
)

__all__ = [
    "assemble_grid",
    "cell_densities",
    "compute_grid",
    "compute_set_grid",
    "compute_set_values",
    "grid_values",
    "open_pdf_set",
    "parse_members",
    "pt_cell_integrals",
    "rapidity_cell_integrals",
]

_PT_NODES_PER_CELL = 24
_Y_NODES = rapidity_nodes()


def _pt_nodes(n: int = _PT_NODES_PER_CELL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(n)
    pts, wts, cells = [], [], []
    for j in range(N_PT):
        lo, hi = PT_EDGES[j], PT_EDGES[j + 1]
        pts.append(lo + 0.5 * (t + 1.0) * (hi - lo))
        wts.append(0.5 * w * (hi - lo))
        cells.append(np.full(n, j))
    return np.concatenate(pts), np.concatenate(wts), np.concatenate(cells)


_PT, _PT_W, _PT_CELL = _pt_nodes()


@lru_cache(maxsize=32)
def _node_densities(key: tuple[float, ...]) -> np.ndarray:
    from .params import PT_MODEL_FIELDS

    params = TheoryParameters(**dict(zip(PT_MODEL_FIELDS, key, strict=True)))
    out = pt_model(params).densities(_PT)
    out.flags.writeable = False
    return out


def pt_cell_integrals(params: TheoryParameters) -> np.ndarray:
    """int_{pT cell} g_i(pT) k(pT) dpT for every |y| bin i, pT bin and kernel k of
    :func:`~wmass_archive.theory.angular.pt_kernels`: shape (N_Y, N_PT, 4). Column 0 is
    the probability of the pT cell."""
    g = _node_densities(params.pt_key())  # (N_Y, n)
    k = pt_kernels(_PT, params)  # (4, n)
    prod = g[:, None, :] * k[None, :, :] * _PT_W  # (N_Y, 4, n)
    out = np.zeros((N_Y, N_PT, 4))
    for j in range(N_PT):
        out[:, j, :] = prod[:, :, _PT_CELL == j].sum(axis=-1)
    return out


def rapidity_cell_integrals(wr: WRapidity, nodes: RapidityNodes = _Y_NODES) -> np.ndarray:
    """int_{|y| cell} dsigma/d|y| and int D dsigma/d|y| (pb) from values at ``nodes``:
    shape (..., 2, N_Y, 2) (charge, |y| bin, [sigma, D-weighted sigma])."""
    lead = wr.dsigma.shape[:-1]
    out = np.zeros(lead + (N_Y, 2))
    ws = wr.dsigma * nodes.weights
    wd = ws * wr.dilution
    for i in range(N_Y):
        sel = nodes.cell == i
        out[..., i, 0] = ws[..., sel].sum(axis=-1)
        out[..., i, 1] = wd[..., sel].sum(axis=-1)
    return out


def assemble_grid(ycell: np.ndarray, ptcell: np.ndarray, params: TheoryParameters) -> np.ndarray:
    """The grid (..., 2, N_Y, N_PT, 9) from :func:`rapidity_cell_integrals` (..., 2, N_Y, 2)
    and :func:`pt_cell_integrals` (N_Y, N_PT, 4)."""
    y1 = ycell[..., 0][..., None]  # (..., 2, N_Y, 1)
    yd = ycell[..., 1][..., None]
    sq = np.array([charge_sign(c) for c in CHARGES], dtype=np.float64)[:, None, None]
    p = params
    out = np.zeros(ycell.shape[:-1] + (N_PT, 9))
    out[..., 0] = y1 * ptcell[..., 0]
    out[..., 1] = y1 * ptcell[..., 1]
    out[..., 2] = p.ai_mur_factor * p.a1_kappa * yd * ptcell[..., 2]
    out[..., 3] = out[..., 1]
    out[..., 4] = p.ai_mur_factor * p.a3_kappa * 2.0 * sq * yd * ptcell[..., 2]
    out[..., 5] = p.a4_mur_factor * 2.0 * sq * yd * ptcell[..., 3]
    return out


def grid_values(member: PDFMember, params: TheoryParameters | None = None) -> np.ndarray:
    """The theory grid (2, 8, 10, 9) in pb of one PDF member."""
    params = params or TheoryParameters()
    wr = w_rapidity(member, _Y_NODES.abs_y, params)
    return assemble_grid(rapidity_cell_integrals(wr), pt_cell_integrals(params), params)


def compute_grid(
    member: PDFMember, params: TheoryParameters | None = None, *, description: str = ""
) -> TheoryGrid:
    """The :class:`TheoryGrid` of one PDF member (validated)."""
    params = params or TheoryParameters()
    values = grid_values(member, params)[None]
    meta = TheoryGridMeta(
        pdf_set=member.set_name,
        pdf_members=[member.member],
        pdf_error_type=member.info.error_type,
        pdf_conf_level=member.info.error_conf_level,
        parameters=params,
        provenance=GridProvenance(pdf_path=str(member.path.parent)),
        description=description,
    )
    return TheoryGrid(values, meta).validate()


def _fine_pt() -> np.ndarray:
    return np.unique(
        np.concatenate(
            [np.arange(0.0, 20.0, 0.1), np.arange(20.0, 40.0, 0.25), np.arange(40.0, 100.01, 0.5)]
        ).round(6)
    )


def cell_densities(
    member: PDFMember, params: TheoryParameters | None = None, *, y_step: float = 0.02
) -> CellDensities:
    """The grid and the in-cell densities of one member for the event simulation.

    ``abs_y``: 0 to 5 in steps of ``y_step`` (cell edges included); ``dsigma_dy``: pb per unit
    |y|; ``pt``: 0-20 GeV in 0.1, 20-40 in 0.25, 40-100 in 0.5 GeV steps; ``dsigma_dpt[q, i]``:
    pb/GeV, the |y|-bin cross section times the bin's pT density, so that integrating the
    linear interpolation of ``dsigma_dpt`` over a pT cell gives the grid's UL entry to ~1e-4."""
    params = params or TheoryParameters()
    grid = grid_values(member, params)
    n = int(round(ABS_Y_EDGES[-1] / y_step))
    abs_y = np.linspace(0.0, ABS_Y_EDGES[-1], n + 1)
    dsy = w_rapidity(member, abs_y, params).dsigma
    pt = _fine_pt()
    g = pt_model(params).densities(pt)  # (N_Y, n_pt)
    sigma_y = grid[..., 0].sum(axis=2) / pt_cell_integrals(params)[..., 0].sum(axis=1)
    return CellDensities(
        grid=grid,
        abs_y=abs_y,
        dsigma_dy=dsy,
        pt=pt,
        dsigma_dpt=sigma_y[:, :, None] * g[None],
    )


# ------------------------------------------------------------------------------------------
# whole sets
# ------------------------------------------------------------------------------------------

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_members(spec: str | int | Sequence[int] | None, n_available: int) -> list[int]:
    """Member numbers from ``"all"``/None, an int, a sequence, or text such as ``"0"``,
    ``"0-10"`` (inclusive) or ``"0,3,5-7"``. Raises ValueError naming the problem."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return list(range(n_available))
    if isinstance(spec, (int, np.integer)):
        out = [int(spec)]
    elif isinstance(spec, str):
        out = []
        for part in spec.split(","):
            m = _RANGE.match(part)
            if m is None:
                raise ValueError(
                    f"members {spec!r}: {part.strip()!r} is not N or N-M (use e.g. all, 0, 0-10)"
                )
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) is not None else lo
            if hi < lo:
                raise ValueError(f"members {spec!r}: range {lo}-{hi} is empty")
            out.extend(range(lo, hi + 1))
    else:
        out = [int(i) for i in spec]
    if not out:
        raise ValueError("no members selected")
    bad = [i for i in out if not 0 <= i < n_available]
    if bad:
        raise ValueError(
            f"member {bad[0]} is not available (the set has members 0-{n_available - 1})"
        )
    return list(dict.fromkeys(out))


def open_pdf_set(name_or_path: str | os.PathLike[str] | PDFSet, paths=None) -> PDFSet:
    """A :class:`PDFSet` from a set, a folder, or a name searched on ``paths`` then
    LHAPDF_DATA_PATH; a name that matches no set exactly is resolved as every command resolves
    ``--pdf`` (:func:`~wmass_archive.theory.pdfnames.find_lhapdf_name`: case and ' .-_'
    ignored, CMS short names such as ``NNPDF4.0``, a unique prefix); a set that is not there
    gives one line naming the LHAPDF set to install and how."""
    from .pdfnames import find_lhapdf_name, missing_set_hint

    if isinstance(name_or_path, PDFSet):
        return name_or_path
    try:
        return load_pdf_set(name_or_path, paths)
    except PDFSetNotFoundError:
        if isinstance(name_or_path, os.PathLike) or os.sep in str(name_or_path):
            raise
        try:
            found = find_lhapdf_name(str(name_or_path), paths)
        except ArchiveError as exc:  # ambiguous
            raise PDFSetNotFoundError(str(exc)) from None
        if found is not None:
            return load_pdf_set(found, paths)
        hint = missing_set_hint(str(name_or_path), paths)
        raise PDFSetNotFoundError(f"unknown PDF set '{name_or_path}': {hint}") from None


def compute_set_values(
    pdf: str | os.PathLike[str] | PDFSet,
    params: TheoryParameters | None = None,
    *,
    paths=None,
    members: str | int | Sequence[int] | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, PDFSetInfo]:
    """Grids of the members of a PDF set: an array (n_members, 2, 8, 10, 9) in pb and the set's
    :class:`PDFSetInfo`. ``pdf``: a set, a folder, or a name (see :func:`open_pdf_set`);
    ``members``: see :func:`parse_members` (default all available). Members are read one at a
    time (not kept), with a tqdm progress bar on stderr when ``progress``."""
    values, info, _ = _set_values(pdf, params, paths, members, progress)
    return values, info


def _set_values(pdf, params, paths, members, progress):
    params = params or TheoryParameters()
    pset = open_pdf_set(pdf, paths)
    numbers = parse_members(members, len(pset))
    nodes = _Y_NODES
    fa = np.empty((len(numbers), 10, nodes.abs_y.size))
    fo = np.empty_like(fa)
    dil = params.dilution_mu_f_factor != 1.0
    fad = np.empty_like(fa) if dil else None
    fod = np.empty_like(fa) if dil else None
    with tqdm(total=len(numbers), desc=pset.name, unit="member", disable=not progress) as bar:
        for row, i in enumerate(numbers):
            m = pset.member(i, cache=False)
            fa[row], fo[row] = parton_values(m, nodes.abs_y, params)
            if dil:
                fad[row], fod[row] = parton_values(  # type: ignore[index]
                    m, nodes.abs_y, params, params.dilution_mu_f_factor
                )
            bar.update(1)
    wr = rapidity_from_partons(nodes.abs_y, fa, fo, params, fad, fod)
    values = assemble_grid(rapidity_cell_integrals(wr, nodes), pt_cell_integrals(params), params)
    assert values.shape[1:] == GRID_SHAPE
    return values, pset.info, (pset, numbers)


def compute_set_grid(
    pdf: str | os.PathLike[str] | PDFSet,
    params: TheoryParameters | None = None,
    *,
    paths=None,
    members: str | int | Sequence[int] | None = None,
    progress: bool = True,
    description: str = "",
    command: str = "",
) -> TheoryGrid:
    """As :func:`compute_set_values`, as a validated :class:`TheoryGrid`."""
    params = params or TheoryParameters()
    values, info, (pset, numbers) = _set_values(pdf, params, paths, members, progress)
    meta = TheoryGridMeta(
        pdf_set=info.name,
        pdf_members=numbers,
        pdf_n_members=len(pset),
        pdf_error_type=info.error_type,
        pdf_conf_level=info.error_conf_level,
        parameters=params,
        provenance=GridProvenance(pdf_path=str(pset.path), command=command),
        description=description,
    )
    return TheoryGrid(values, meta).validate()
