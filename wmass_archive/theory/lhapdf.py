"""A pure-numpy reader of LHAPDF ``lhagrid1`` parton-distribution sets.

It finds sets the way LHAPDF does (``LHAPDF_DATA_PATH``, else ``LHAPATH``, plus explicit
folders), parses the set's ``.info`` metadata into a frozen :class:`PDFSetInfo`, reads member
grids (``NAME_%04d.dat``) into numpy arrays, and evaluates x*f(x, Q) vectorised over many points
with LHAPDF's default ``logcubic`` interpolation. :meth:`PDFSet.uncertainty` combines the
members with LHAPDF's conventions for Hessian, symmetric-Hessian and replica sets.

What it follows, and where it was checked (LHAPDF 6.5.2 sources, ``src/`` and
``include/LHAPDF/``; see the comments at each function):

* grid layout (``GridPDF.cc``, ``_loadData``): after the header block, each ``---``-separated
  subgrid holds a line of x knots, a line of Q knots, a line of PDG ids, then one row of
  x*f values per (x, Q) node, **x outer, Q inner**; subgrids share the x knots and are stacked
  in Q, the boundary Q knot appearing in both;
* interpolation (``LogBicubicInterpolator.cc``, ``GridPDF.cc::_computePolynomialCoefficients``):
  cubic Hermite in log x with knot derivatives from finite differences (the mean of the left
  and right slopes inside, one-sided at the ends), then cubic Hermite in log Q2 between the
  x-interpolated values with the same kind of derivatives, one-sided at a subgrid's edges;
  a subgrid with only two Q knots falls back to bilinear in (log x, log Q2);
* knot lookup (``KnotArray.h``, ``indexbelow``): the knot interval is ``upper_bound - 1``,
  clipped to the last interval, so a Q exactly on a subgrid boundary uses the upper subgrid;
* ``ForcePositive`` (``PDF.cc::xfxQ2``): 1 clips negative values to 0, 2 to 1e-10;
* flavour 0 is the gluon (21); a flavour the grid does not hold evaluates to 0;
* out of range: see :data:`EXTRAPOLATIONS` (``ContinuationExtrapolator.cc``,
  ``NearestPointExtrapolator.cc``, ``ErrExtrapolator.cc``);
* alpha_s (``AlphaS_Ipol.cc``): cubic Hermite in log Q2 over the ``AlphaS_Qs``/``AlphaS_Vals``
  table, split into subgrids at repeated Q values; a power law below the table, constant above;
* uncertainties (``PDFSet.cc::uncertainty``): see :func:`pdf_uncertainty`.

Nothing here needs LHAPDF itself; no code was copied from it. The implementation is split over
private modules (``_lhapdf_info``: errors, metadata and discovery; ``_lhapdf_grid``: member
files, interpolation and alpha_s; ``_lhapdf_uncertainty``: error conventions); this module is
the public interface and holds :class:`PDFMember` and :class:`PDFSet`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._lhapdf_grid import (
    AlphaSIpol,
    _alphas_from_info,
    _extrapolate_linear,
    _Grid,
    _member_path,
    _parse_member_file,
)
from ._lhapdf_info import (
    CL1SIGMA,
    EXTRAPOLATIONS,
    STANDARD_PIDS,
    LHAPDFError,
    PDFFormatError,
    PDFRangeError,
    PDFSetInfo,
    PDFSetNotFoundError,
    _Paths,
    available_pdf_sets,
    find_pdf_set_dir,
    pdf_search_paths,
    read_pdf_set_info,
)
from ._lhapdf_uncertainty import PDFUncertainty, cl_scale, pdf_uncertainty

__all__ = [
    "CL1SIGMA",
    "EXTRAPOLATIONS",
    "STANDARD_PIDS",
    "AlphaSIpol",
    "LHAPDFError",
    "PDFFormatError",
    "PDFMember",
    "PDFRangeError",
    "PDFSet",
    "PDFSetInfo",
    "PDFSetNotFoundError",
    "PDFUncertainty",
    "available_pdf_sets",
    "cl_scale",
    "find_pdf_set_dir",
    "load_member",
    "load_pdf_set",
    "pdf_search_paths",
    "pdf_uncertainty",
    "read_pdf_set_info",
]


# ----------------------------------------------------------------------------------------------
# one member
# ----------------------------------------------------------------------------------------------


def _check_extrapolation(mode: str) -> str:
    if mode not in EXTRAPOLATIONS:
        raise ValueError(f"extrapolation must be one of {EXTRAPOLATIONS}, not {mode!r}")
    return mode


class PDFMember:
    """One member of a PDF set: its grid and vectorised evaluation of x*f(x, Q).

    Evaluation (``xfxQ2``, ``xfxQ``, ``xfxQ2_all``, ``xfxQ_all``, ``xfxQ_dict``) follows
    LHAPDF's ``logcubic`` interpolator and ``ForcePositive`` rule (see the module docstring);
    at a grid knot it returns the stored value itself. x must lie in (0, 1] and Q2 be >= 0
    (finite), else :class:`PDFRangeError`. A point outside the grid is handled by
    ``extrapolation`` (the member's default, overridable per call): one of
    :data:`EXTRAPOLATIONS`; the default ``"error"`` raises :class:`PDFRangeError`.
    """

    def __init__(
        self,
        *,
        info: PDFSetInfo,
        member: int,
        path: Path,
        header: dict[str, Any],
        x_knots: np.ndarray,
        q2_knots: np.ndarray,
        pids: tuple[int, ...],
        grid: np.ndarray,
        extrapolation: str = "error",
    ):
        self.info = info
        self.member = member
        self.path = path
        self.header = header
        self.pids = pids
        self.extrapolation = _check_extrapolation(extrapolation)
        self._core = _Grid(x_knots, q2_knots, grid)
        for arr in (x_knots, q2_knots, grid):
            arr.flags.writeable = False
        self._col = {p: i for i, p in enumerate(pids)}
        fp = header.get("ForcePositive", info.force_positive)
        if fp not in (0, 1, 2):
            raise PDFFormatError(f"{path}: ForcePositive must be 0, 1 or 2, not {fp!r}")
        self.force_positive: int = int(fp)
        self._alphas: AlphaSIpol | None = None

    # -- description ---------------------------------------------------------------------------

    @property
    def set_name(self) -> str:
        return self.info.name

    @property
    def pdf_type(self) -> str | None:
        """The member's ``PdfType`` (central, error, replica, variation)."""
        v = self.header.get("PdfType")
        return None if v is None else str(v)

    @property
    def x_knots(self) -> np.ndarray:
        return self._core.xs

    @property
    def q2_knots(self) -> np.ndarray:
        """Q2 knots of all subgrids, stacked (a boundary knot appears twice)."""
        return self._core.q2s

    @property
    def grid(self) -> np.ndarray:
        """The stored x*f values, read-only, shape (n_x, n_q2, n_flavours) in ``pids`` order."""
        return self._core.grid

    @property
    def x_min(self) -> float:
        return float(self._core.xs[0])

    @property
    def x_max(self) -> float:
        return float(self._core.xs[-1])

    @property
    def q_min(self) -> float:
        return math.sqrt(self._core.q2s[0])

    @property
    def q_max(self) -> float:
        return math.sqrt(self._core.q2s[-1])

    def has_pid(self, pid: int) -> bool:
        return (21 if pid == 0 else pid) in self._col

    def __repr__(self) -> str:
        return (
            f"PDFMember({self.set_name!r}, member={self.member}, x=[{self.x_min:.3g}, "
            f"{self.x_max:.3g}], Q=[{self.q_min:.4g}, {self.q_max:.4g}] GeV, pids={self.pids})"
        )

    # -- evaluation ----------------------------------------------------------------------------

    def _columns(self, pids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        cols, present = [], []
        for p in pids:
            c = self._col.get(21 if int(p) == 0 else int(p))
            present.append(c is not None)
            cols.append(0 if c is None else c)
        return np.asarray(cols, dtype=np.intp), np.asarray(present, dtype=bool)

    def _evaluate(self, x, q2, pids, extrapolation):
        mode = _check_extrapolation(self.extrapolation if extrapolation is None else extrapolation)
        x = np.asarray(x, dtype=float)
        q2 = np.asarray(q2, dtype=float)
        shape = np.broadcast_shapes(x.shape, q2.shape)
        xf = np.broadcast_to(x, shape).ravel()
        qf = np.broadcast_to(q2, shape).ravel()
        bad = ~(np.isfinite(xf) & np.isfinite(qf) & (xf > 0) & (xf <= 1) & (qf >= 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PDFRangeError(
                f"{self.set_name} member {self.member}: {int(bad.sum())} unphysical point(s), "
                f"first x={xf[i]!r}, Q2={qf[i]!r} (need 0 < x <= 1, Q2 >= 0, finite)"
            )
        cols, present = self._columns(pids)
        core = self._core
        inside = (
            (xf >= core.xs[0]) & (xf <= core.xs[-1]) & (qf >= core.q2s[0]) & (qf <= core.q2s[-1])
        )
        out = np.empty((xf.size, cols.size))
        if inside.all():
            out[:] = core.interpolate(xf, qf, cols)
        else:
            out[inside] = core.interpolate(xf[inside], qf[inside], cols)
            outside = ~inside
            out[outside] = self._extrapolate(xf[outside], qf[outside], cols, mode)
        if self.force_positive == 1:
            np.maximum(out, 0.0, out=out)
        elif self.force_positive == 2:
            np.maximum(out, 1e-10, out=out)
        out[:, ~present] = 0.0
        return out.T.reshape((cols.size,) + shape)

    def _extrapolate(self, x, q2, cols, mode):
        core = self._core
        xmin, xmin1, xmax = core.xs[0], core.xs[1], core.xs[-1]
        q2min, q2max1, q2max = core.q2s[0], core.q2s[-2], core.q2s[-1]
        if mode == "error":
            i = 0
            raise PDFRangeError(
                f"{self.set_name} member {self.member}: {x.size} point(s) outside the grid "
                f"x in [{xmin:.6g}, {xmax:.6g}], Q in [{math.sqrt(q2min):.6g}, "
                f"{math.sqrt(q2max):.6g}] GeV, first x={x[i]:.6g}, Q={math.sqrt(q2[i]):.6g}; "
                "pass extrapolation='continuation' or 'nearest' to extrapolate"
            )
        if mode == "nearest":
            return core.interpolate(np.clip(x, xmin, xmax), np.clip(q2, q2min, q2max), cols)
        # LHAPDF's ContinuationExtrapolator (MSTW's prescription)
        if np.any(x > xmax):
            i = int(np.flatnonzero(x > xmax)[0])
            raise PDFRangeError(
                f"{self.set_name} member {self.member}: x={x[i]:.6g} above the last x knot "
                f"{xmax:.6g} cannot be extrapolated"
            )
        ip = core.interpolate
        out = np.empty((x.size, cols.size))

        def full(v, n):
            return np.full(n, v)

        xs_col = x[:, None]
        q2_col = q2[:, None]
        m = (x < xmin) & (q2 >= q2min) & (q2 <= q2max)  # small x only
        if m.any():
            n, qq = int(m.sum()), q2[m]
            out[m] = _extrapolate_linear(
                xs_col[m], xmin, xmin1, ip(full(xmin, n), qq, cols), ip(full(xmin1, n), qq, cols)
            )
        m = (x >= xmin) & (q2 > q2max)  # large Q2 only
        if m.any():
            n, xx = int(m.sum()), x[m]
            out[m] = _extrapolate_linear(
                q2_col[m],
                q2max,
                q2max1,
                ip(xx, full(q2max, n), cols),
                ip(xx, full(q2max1, n), cols),
            )
        m = (x < xmin) & (q2 > q2max)  # large Q2 and small x
        if m.any():
            n = int(m.sum())
            qq = q2_col[m]

            def at(xv):
                return _extrapolate_linear(
                    qq,
                    q2max,
                    q2max1,
                    ip(full(xv, n), full(q2max, n), cols),
                    ip(full(xv, n), full(q2max1, n), cols),
                )

            out[m] = _extrapolate_linear(xs_col[m], xmin, xmin1, at(xmin), at(xmin1))
        m = q2 < q2min  # small Q2 (any x <= xmax)
        if m.any():
            xx, qq = x[m], q2[m]
            n = xx.size
            f0 = np.empty((n, cols.size))
            f1 = np.empty((n, cols.size))
            low = xx < xmin
            for q_anchor, dest in ((q2min, f0), (1.01 * q2min, f1)):
                if (~low).any():
                    dest[~low] = ip(xx[~low], full(q_anchor, int((~low).sum())), cols)
                if low.any():
                    k = int(low.sum())
                    dest[low] = _extrapolate_linear(
                        xx[low][:, None],
                        xmin,
                        xmin1,
                        ip(full(xmin, k), full(q_anchor, k), cols),
                        ip(full(xmin1, k), full(q_anchor, k), cols),
                    )
            with np.errstate(divide="ignore", invalid="ignore"):
                anom = np.where(np.abs(f0) >= 1e-5, np.maximum(-2.5, (f1 - f0) / f0 / 0.01), 1.0)
            r = (qq / q2min)[:, None]
            out[m] = f0 * r ** (anom * r + 1.0 - r)
        return out

    def xfxQ2(self, pid: int, x, q2, *, extrapolation: str | None = None):
        """x*f(x, Q2) for one parton ``pid`` (PDG id; 0 and 21 are the gluon) at points x, Q2
        (numpy-broadcast against each other). A float for scalar inputs, else an array of the
        broadcast shape. A flavour the grid does not hold gives 0."""
        res = self._evaluate(x, q2, (pid,), extrapolation)[0]
        return float(res) if res.ndim == 0 else res

    def xfxQ(self, pid: int, x, q, *, extrapolation: str | None = None):
        """As :meth:`xfxQ2` with the scale Q in GeV."""
        q = np.asarray(q, dtype=float)
        return self.xfxQ2(pid, x, q * q, extrapolation=extrapolation)

    def xfxQ2_all(
        self, x, q2, pids: Sequence[int] | None = None, *, extrapolation: str | None = None
    ) -> np.ndarray:
        """x*f for many partons at once: an array of shape ``(len(pids),) + broadcast shape``.
        ``pids`` defaults to :data:`STANDARD_PIDS` (-6..-1, 21, 1..6: row ``pid + 6`` holds
        ``pid``, the gluon row 6), absent flavours giving 0, as LHAPDF's vector call."""
        return self._evaluate(x, q2, STANDARD_PIDS if pids is None else pids, extrapolation)

    def xfxQ_all(
        self, x, q, pids: Sequence[int] | None = None, *, extrapolation: str | None = None
    ) -> np.ndarray:
        """As :meth:`xfxQ2_all` with the scale Q in GeV."""
        q = np.asarray(q, dtype=float)
        return self.xfxQ2_all(x, q * q, pids, extrapolation=extrapolation)

    def xfxQ_dict(self, x, q, *, extrapolation: str | None = None) -> dict[int, np.ndarray]:
        """x*f for every flavour the grid holds, as {pid: array}."""
        vals = self.xfxQ_all(x, q, self.pids, extrapolation=extrapolation)
        return {p: vals[i] for i, p in enumerate(self.pids)}

    # -- alpha_s -------------------------------------------------------------------------------

    def alphasQ2(self, q2):
        """alpha_s(Q2) from the set's ipol table (:class:`AlphaSIpol`)."""
        if self._alphas is None:
            self._alphas = _alphas_from_info(self.info)
        return self._alphas.alphasQ2(q2)

    def alphasQ(self, q):
        q = np.asarray(q, dtype=float)
        return self.alphasQ2(q * q)

    alphas = alphasQ


def _load_member_from(
    set_dir: Path, info: PDFSetInfo, member: int, extrapolation: str
) -> PDFMember:
    if not isinstance(member, (int, np.integer)) or isinstance(member, bool) or member < 0:
        raise ValueError(f"member must be a non-negative integer, not {member!r}")
    member = int(member)
    path = _member_path(set_dir, member)
    if not path.is_file():
        if member >= info.num_members:
            raise IndexError(
                f"PDF set {info.name} has {info.num_members} members (0-{info.num_members - 1});"
                f" member {member} does not exist"
            )
        raise PDFSetNotFoundError(f"{path}: member file missing (set {info.name})")
    header, xs, q2s, pids, grid = _parse_member_file(path)
    if len(pids) != len(info.flavors):
        raise PDFFormatError(
            f"{path}: {len(pids)} flavours in the grid but {len(info.flavors)} in the set's "
            "Flavors metadata"
        )
    if info.interpolator.lower() != "logcubic":
        warnings.warn(
            f"PDF set {info.name} asks for interpolator {info.interpolator!r}; "
            "this reader always uses 'logcubic'",
            stacklevel=3,
        )
    return PDFMember(
        info=info,
        member=member,
        path=path,
        header=header,
        x_knots=xs,
        q2_knots=q2s,
        pids=pids,
        grid=grid,
        extrapolation=extrapolation,
    )


def load_member(
    set_dir_or_name: str | os.PathLike[str],
    member: int = 0,
    paths: _Paths = None,
    *,
    extrapolation: str = "error",
) -> PDFMember:
    """Read member ``member`` (``NAME_%04d.dat``) of a set given by name or folder."""
    set_dir = find_pdf_set_dir(set_dir_or_name, paths)
    info = PDFSetInfo.from_file(set_dir / f"{set_dir.name}.info")
    return _load_member_from(set_dir, info, member, _check_extrapolation(extrapolation))


# ----------------------------------------------------------------------------------------------
# a whole set
# ----------------------------------------------------------------------------------------------


class PDFSet:
    """A PDF set: its :class:`PDFSetInfo` and lazily read, cached members.

    ``len(pdfset)`` is the number of members present on disk (members 0, 1, ... without a gap):
    ``info.num_members`` for a complete set, fewer for a trimmed one (the shared
    NNPDF31_nnlo_as_0118_mc keeps only its central member although its info says 101)."""

    def __init__(self, set_dir: Path, info: PDFSetInfo, *, extrapolation: str = "error"):
        self.path = Path(set_dir)
        self.info = info
        self.extrapolation = _check_extrapolation(extrapolation)
        self._members: dict[int, PDFMember] = {}
        self._alphas: AlphaSIpol | None = None
        n = 0
        while n < info.num_members and _member_path(self.path, n).is_file():
            n += 1
        if n == 0:
            raise PDFSetNotFoundError(f"{_member_path(self.path, 0)}: central member file missing")
        self._n_available = n

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def num_members(self) -> int:
        """Members the set declares (``NumMembers``)."""
        return self.info.num_members

    @property
    def is_complete(self) -> bool:
        return self._n_available == self.info.num_members

    def __len__(self) -> int:
        return self._n_available

    def __repr__(self) -> str:
        return (
            f"PDFSet({self.name!r}, {len(self)}/{self.num_members} members, "
            f"ErrorType={self.info.error_type}, CL={self.info.error_conf_level:g}%)"
        )

    def member(self, i: int, *, cache: bool = True) -> PDFMember:
        """Member ``i``, read on first use and cached (``cache=False``: read without keeping
        it, for one pass over a large set)."""
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"member index must be an integer, not {i!r}")
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(
                f"PDF set {self.name}: member {i} not available ({len(self)} of "
                f"{self.num_members} members present)"
            )
        m = self._members.get(i)
        if m is None:
            m = _load_member_from(self.path, self.info, i, self.extrapolation)
            if cache:
                self._members[i] = m
        return m

    __getitem__ = member

    def __iter__(self) -> Iterator[PDFMember]:
        for i in range(len(self)):
            yield self.member(i)

    def members(self) -> list[PDFMember]:
        """All available members (read now if not yet)."""
        return list(self)

    def xfxQ_all_members(
        self, x, q, pids: Sequence[int] | None = None, *, extrapolation: str | None = None
    ) -> np.ndarray:
        """x*f of every available member: shape (len(set), len(pids)) + broadcast shape."""
        return np.stack([m.xfxQ_all(x, q, pids, extrapolation=extrapolation) for m in self])

    def uncertainty(self, values, cl: float = CL1SIGMA) -> PDFUncertainty:
        """:func:`pdf_uncertainty` with this set's ErrorType and ErrorConfLevel. ``values`` has
        one row per available member (``len(self)``); a Hessian set must be complete, a replica
        set may have fewer replicas than declared, a central-only set gives zero errors."""
        v = np.asarray(values, dtype=float)
        if v.ndim == 0 or v.shape[0] != len(self):
            raise ValueError(
                f"PDF set {self.name}: values must have {len(self)} rows (one per member), "
                f"got shape {v.shape}"
            )
        error_type = self.info.error_type
        if not self.is_complete and len(self) > 1:
            if self.info.error_core_type != "replicas" or "+" in error_type:
                raise ValueError(
                    f"PDF set {self.name}: only {len(self)} of {self.num_members} members "
                    f"present; a {error_type} uncertainty needs all of them"
                )
        if len(self) == 1:
            error_type = self.info.error_core_type  # no parameter variations on disk
        return pdf_uncertainty(v, error_type, set_cl=self.info.error_conf_level, cl=cl)

    def alphasQ2(self, q2):
        if self._alphas is None:
            self._alphas = _alphas_from_info(self.info)
        return self._alphas.alphasQ2(q2)

    def alphasQ(self, q):
        q = np.asarray(q, dtype=float)
        return self.alphasQ2(q * q)

    alphas = alphasQ


def load_pdf_set(
    name_or_path: str | os.PathLike[str], paths: _Paths = None, *, extrapolation: str = "error"
) -> PDFSet:
    """Open a set by name (searched as :func:`find_pdf_set_dir`) or folder; members are read
    when first used."""
    set_dir = find_pdf_set_dir(name_or_path, paths)
    info = PDFSetInfo.from_file(set_dir / f"{set_dir.name}.info")
    return PDFSet(set_dir, info, extrapolation=extrapolation)
