"""Reading LHAPDF member grids and interpolating them: the ``.dat`` parser, LHAPDF's
log-bicubic kernels (:class:`_Grid`), the continuation extrapolation helper and alpha_s.

Part of :mod:`wmass_archive.theory.lhapdf` (import from there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._lhapdf_info import (
    _CHUNK,
    PDFFormatError,
    PDFRangeError,
    PDFSetInfo,
    _parse_metadata,
)

# ----------------------------------------------------------------------------------------------
# reading member grids
# ----------------------------------------------------------------------------------------------


def _member_path(set_dir: Path, member: int) -> Path:
    return set_dir / f"{set_dir.name}_{member:04d}.dat"


def _parse_member_file(
    path: Path,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, tuple, np.ndarray]:
    """Read one ``.dat`` file: (header metadata, x knots, Q2 knots of all subgrids stacked,
    pids, grid[ix, iq2, flavour]). Raises :class:`PDFFormatError` naming the file and line."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise PDFFormatError(f"{path}: cannot read member file: {exc}") from exc
    lines = text.splitlines()
    # (line number, stripped text) of every meaningful line; '#' lines are comments (LHAPDF)
    seps = [i for i, ln in enumerate(lines) if ln.strip() == "---"]
    if not seps:
        raise PDFFormatError(f"{path}: no '---' separator: not an lhagrid1 member file")
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last != seps[-1]:
        raise PDFFormatError(
            f"{path}: not properly terminated (truncated?): the last line must be '---', "
            f"line {last + 1} is {lines[last].strip()[:40]!r}"
        )
    header = _parse_metadata("\n".join(lines[: seps[0]]), str(path))
    fmt = header.get("Format", "lhagrid1")
    if fmt != "lhagrid1":
        raise PDFFormatError(f"{path}: Format {fmt!r} is not supported; expected lhagrid1")
    if len(seps) < 2:
        raise PDFFormatError(f"{path}: no subgrid block after the header")

    xs = None
    pids: tuple[int, ...] | None = None
    q2_parts: list[np.ndarray] = []
    grid_parts: list[np.ndarray] = []
    for b, (start, stop) in enumerate(zip(seps[:-1], seps[1:], strict=True), start=1):
        body = [
            (i + 1, ln)
            for i in range(start + 1, stop)
            if (ln := lines[i].strip()) and not ln.startswith("#")
        ]
        if len(body) < 4:
            raise PDFFormatError(
                f"{path}: subgrid {b} (lines {start + 2}-{stop}) has {len(body)} lines; "
                "expected x knots, Q knots, flavours and data rows"
            )
        (lx, tx), (lq, tq), (lf, tf) = body[0], body[1], body[2]
        try:
            bx = np.array(tx.split(), dtype=float)
        except ValueError:
            raise PDFFormatError(f"{path}: line {lx}: x knots are not numbers") from None
        try:
            bq = np.array(tq.split(), dtype=float)
        except ValueError:
            raise PDFFormatError(f"{path}: line {lq}: Q knots are not numbers") from None
        try:
            bp = tuple(21 if int(t) == 0 else int(t) for t in tf.split())
        except ValueError:
            raise PDFFormatError(f"{path}: line {lf}: flavour ids are not integers") from None
        if bx.size < 4 or not np.all(np.isfinite(bx)) or np.any(bx <= 0) or np.any(bx > 1):
            raise PDFFormatError(
                f"{path}: line {lx}: need at least 4 finite x knots in (0, 1], found {bx.size}"
            )
        if np.any(np.diff(bx) <= 0):
            raise PDFFormatError(f"{path}: line {lx}: x knots are not strictly increasing")
        if bq.size < 2 or not np.all(np.isfinite(bq)) or np.any(bq <= 0):
            raise PDFFormatError(
                f"{path}: line {lq}: need at least 2 finite positive Q knots, found {bq.size}"
            )
        if np.any(np.diff(bq) <= 0):
            raise PDFFormatError(f"{path}: line {lq}: Q knots are not strictly increasing")
        if not bp or len(set(bp)) != len(bp):
            raise PDFFormatError(f"{path}: line {lf}: empty or repeated flavour ids")
        if xs is None:
            xs, pids = bx, bp
        else:
            # LHAPDF >= 6.3 requires every subgrid to repeat the first one's x knots and flavours
            if bx.shape != xs.shape or np.any(bx != xs):
                raise PDFFormatError(f"{path}: line {lx}: x knots differ from subgrid 1's")
            if bp != pids:
                raise PDFFormatError(f"{path}: line {lf}: flavours differ from subgrid 1's")
            prev_top = math.sqrt(q2_parts[-1][-1])
            if bq[0] < prev_top:
                raise PDFFormatError(
                    f"{path}: line {lq}: subgrid {b} starts at Q={bq[0]:g} below the previous "
                    f"subgrid's top Q={prev_top:g}"
                )
        nx, nq, nf = bx.size, bq.size, len(bp)
        rows = body[3:]
        if len(rows) != nx * nq:
            raise PDFFormatError(
                f"{path}: subgrid {b} has {len(rows)} data rows but {nx} x knots * {nq} Q knots "
                f"= {nx * nq} expected (line {rows[-1][0]})"
            )
        for lineno, row in rows:
            if len(row.split()) != nf:
                raise PDFFormatError(
                    f"{path}: line {lineno}: {len(row.split())} values but {nf} flavours"
                )
        try:
            vals = np.array(" ".join(r for _, r in rows).split(), dtype=float)
        except ValueError:
            for lineno, row in rows:
                try:
                    np.array(row.split(), dtype=float)
                except ValueError:
                    raise PDFFormatError(
                        f"{path}: line {lineno}: not a number in {row[:60]!r}"
                    ) from None
            raise PDFFormatError(f"{path}: subgrid {b}: unreadable values") from None
        if not np.all(np.isfinite(vals)):
            bad = int(np.flatnonzero(~np.isfinite(vals))[0]) // nf
            raise PDFFormatError(f"{path}: line {rows[bad][0]}: non-finite value")
        q2_parts.append(bq * bq)
        grid_parts.append(vals.reshape(nx, nq, nf))  # rows: x outer, Q inner
    assert xs is not None and pids is not None
    q2s = np.concatenate(q2_parts)
    grid = np.ascontiguousarray(np.concatenate(grid_parts, axis=1))
    return header, xs, q2s, pids, grid


# ----------------------------------------------------------------------------------------------
# interpolation kernels
# ----------------------------------------------------------------------------------------------


def _knot_derivatives(logk: np.ndarray, values: np.ndarray) -> np.ndarray:
    """d(values)/d(logk) at every knot along axis 0: the mean of the left and right slopes
    inside, the one-sided slope at the two ends (LHAPDF ``GridPDF.cc`` ``_ddx``,
    ``KnotArray.h`` ``ddlogq_*``)."""
    shape = (-1,) + (1,) * (values.ndim - 1)
    slopes = np.diff(values, axis=0) / np.diff(logk).reshape(shape)
    out = np.empty_like(values)
    out[0] = slopes[0]
    out[-1] = slopes[-1]
    out[1:-1] = (slopes[:-1] + slopes[1:]) / 2.0
    return out


def _hermite(t, vl, vdl, vh, vdh):
    """Cubic Hermite on [0, 1] with end values vl, vh and end slopes (times the interval) vdl,
    vdh (LHAPDF's ``_interpolateCubic``)."""
    t2 = t * t
    t3 = t2 * t
    return (
        (2 * t3 - 3 * t2 + 1) * vl
        + (t3 - 2 * t2 + t) * vdl
        + (-2 * t3 + 3 * t2) * vh
        + (t3 - t2) * vdh
    )


def _index_below(knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """LHAPDF's ``indexbelow``: ``upper_bound - 1``, clipped to the last interval."""
    i = np.searchsorted(knots, values, side="right")
    np.minimum(i, knots.size - 1, out=i)
    i -= 1
    np.maximum(i, 0, out=i)
    return i


class _Grid:
    """The numeric core of one member: knots, values and the precomputed cubic coefficients in
    log x (``GridPDF::_computePolynomialCoefficients``), evaluated for many points at once."""

    def __init__(self, xs: np.ndarray, q2s: np.ndarray, grid: np.ndarray):
        self.xs = xs
        self.q2s = q2s
        self.logxs = np.log(xs)
        self.logq2s = np.log(q2s)
        self.grid = grid  # (nx, nq, nf)
        nq = q2s.size
        dlogx = np.diff(self.logxs)[:, None, None]
        ddx = _knot_derivatives(self.logxs, grid)
        vl, vh = grid[:-1], grid[1:]
        vdl, vdh = ddx[:-1] * dlogx, ddx[1:] * dlogx
        coeffs = np.empty((xs.size - 1, nq, 4, grid.shape[2]))
        coeffs[:, :, 0] = vdh + vdl - 2 * vh + 2 * vl
        coeffs[:, :, 1] = 3 * vh - 3 * vl - 2 * vdl - vdh
        coeffs[:, :, 2] = vdl
        coeffs[:, :, 3] = vl
        self.coeffs = coeffs  # (nx-1, nq, 4, nf)
        # Q2 knots that open / close a subgrid (duplicated boundary knots mark the joins)
        same_prev = np.zeros(nq, dtype=bool)
        same_prev[1:] = q2s[1:] == q2s[:-1]
        self.lower_edge = same_prev.copy()
        self.lower_edge[0] = True  # interval iq starts a subgrid
        same_next = np.zeros(nq, dtype=bool)
        same_next[:-1] = same_prev[1:]
        upper = np.zeros(nq, dtype=bool)  # interval iq (iq -> iq+1) ends a subgrid
        upper[nq - 2] = True
        upper[: nq - 2] |= same_next[1 : nq - 1]
        self.upper_edge = upper
        dl = np.diff(self.logq2s)
        with np.errstate(divide="ignore"):
            inv = np.where(dl > 0, 1.0 / np.where(dl > 0, dl, 1.0), 0.0)
        self.dlogq = np.append(dl, 0.0)  # dlogq[iq] = logq2[iq+1] - logq2[iq]
        self.inv_dlogq_prev = np.concatenate(([0.0], inv))  # 1/(logq2[iq] - logq2[iq-1])
        self.inv_dlogq_next = np.concatenate((inv[1:], [0.0, 0.0]))  # 1/(lq[iq+2] - lq[iq+1])

    def interpolate(self, x: np.ndarray, q2: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """xf at in-range points (1-D x, q2 of equal length) for flavour columns ``cols``:
        shape (n, len(cols))."""
        n = x.size
        out = np.empty((n, cols.size))
        coeffs = (
            self.coeffs
            if cols.size == self.coeffs.shape[3] and np.all(cols == np.arange(cols.size))
            else self.coeffs[..., cols]
        )
        for s in range(0, n, _CHUNK):
            sl = slice(s, min(n, s + _CHUNK))
            out[sl] = self._block(x[sl], q2[sl], coeffs, cols)
        return out

    def _block(self, x, q2, coeffs, cols):
        nq = self.q2s.size
        ix = _index_below(self.xs, x)
        iq = _index_below(self.q2s, q2)
        logx = np.log(x)
        logq2 = np.log(q2)
        tx = (logx - self.logxs[ix]) / (self.logxs[ix + 1] - self.logxs[ix])
        tq = (logq2 - self.logq2s[iq]) / self.dlogq[iq]
        lower = self.lower_edge[iq]
        upper = self.upper_edge[iq]
        rows = np.clip(iq[:, None] + np.arange(-1, 3), 0, nq - 1)  # iq-1 .. iq+2
        c = coeffs[ix[:, None], rows]  # (n, 4 rows, 4 coeffs, nf)
        t = tx[:, None, None]
        t2 = t * t
        t3 = t2 * t
        v = c[:, :, 0] * t3 + c[:, :, 1] * t2 + c[:, :, 2] * t + c[:, :, 3]  # (n, 4, nf)
        at_top = tx == 1.0  # x on the last knot: return the knot value itself, not a+b+c+d
        if at_top.any():
            v[at_top] = self.grid[ix[at_top, None] + 1, rows[at_top]][..., cols]
        vll, vl, vh, vhh = v[:, 0], v[:, 1], v[:, 2], v[:, 3]
        dq1 = self.dlogq[iq][:, None]
        diff = vh - vl
        vdl = np.where(
            lower[:, None], diff, (diff + (vl - vll) * dq1 * self.inv_dlogq_prev[iq][:, None]) * 0.5
        )
        vdh = np.where(
            upper[:, None], diff, (diff + (vhh - vh) * dq1 * self.inv_dlogq_next[iq][:, None]) * 0.5
        )
        res = _hermite(tq[:, None], vl, vdl, vh, vdh)
        both = lower & upper  # a two-knot subgrid: LHAPDF falls back to bilinear
        if both.any():
            res[both] = self._bilinear(logx[both], logq2[both], ix[both], iq[both], cols)
        return res

    def _bilinear(self, logx, logq2, ix, iq, cols):
        g = self.grid
        fx = ((logx - self.logxs[ix]) / (self.logxs[ix + 1] - self.logxs[ix]))[:, None]
        f_ql = g[ix, iq][:, cols] + fx * (g[ix + 1, iq][:, cols] - g[ix, iq][:, cols])
        f_qh = g[ix, iq + 1][:, cols] + fx * (g[ix + 1, iq + 1][:, cols] - g[ix, iq + 1][:, cols])
        fq = ((logq2 - self.logq2s[iq]) / (self.logq2s[iq + 1] - self.logq2s[iq]))[:, None]
        return f_ql + fq * (f_qh - f_ql)


def _extrapolate_linear(x, xl, xh, yl, yh):
    """LHAPDF ``ContinuationExtrapolator`` ``_extrapolateLinear``: linear in log(x), of log(y)
    when both anchors are above 1e-3, of y otherwise."""
    fx = (np.log(x) - np.log(xl)) / (np.log(xh) - np.log(xl))
    pos = (yl > 1e-3) & (yh > 1e-3)
    with np.errstate(divide="ignore", invalid="ignore"):
        logy = np.exp(np.log(yl) + fx * (np.log(yh) - np.log(yl)))
    return np.where(pos, logy, yl + fx * (yh - yl))


# ----------------------------------------------------------------------------------------------
# alpha_s
# ----------------------------------------------------------------------------------------------


class AlphaSIpol:
    """alpha_s(Q) interpolated from a set's ``AlphaS_Qs``/``AlphaS_Vals`` table as LHAPDF's
    ``AlphaS_Ipol``: cubic Hermite in log Q2 with finite-difference knot derivatives, the table
    split into subgrids at repeated Q values (flavour thresholds); below the first Q a power law
    continuing the first interval's log-log slope, above the last Q the last value. (LHAPDF's
    guard that turns a result with |alpha_s| >= 2 into DBL_MAX is not reproduced; a two-point
    subgrid, where LHAPDF reads past the subgrid, is interpolated with its one slope.)"""

    def __init__(self, qs: Sequence[float], values: Sequence[float]):
        q = np.asarray(qs, dtype=float)
        a = np.asarray(values, dtype=float)
        if q.ndim != 1 or q.size < 2 or q.size != a.size:
            raise ValueError("alpha_s table needs at least two (Q, value) pairs of equal length")
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(a)) and np.all(q > 0)):
            raise ValueError("alpha_s table has non-finite or non-positive Q values")
        if np.any(np.diff(q) < 0):
            raise ValueError("alpha_s table Q values are not increasing")
        self.q2s = q * q
        self.values = a
        self.logq2s = np.log(self.q2s)
        rep = np.abs(np.diff(self.q2s)) < np.finfo(float).eps
        # subgrid boundaries: a repeated Q2 closes one subgrid and opens the next
        starts = np.concatenate(([0], np.flatnonzero(rep) + 1))
        ends = np.concatenate((np.flatnonzero(rep), [q.size - 1]))
        if np.any(ends - starts < 1):
            raise ValueError("alpha_s table has a subgrid with a single point")
        deriv = np.empty_like(a)
        for s, e in zip(starts, ends, strict=True):
            deriv[s : e + 1] = _knot_derivatives(self.logq2s[s : e + 1], a[s : e + 1])
        self.derivs = deriv
        # power law below the table, from the first two distinct points (log10 as LHAPDF)
        nxt = 1
        while self.q2s[nxt] == self.q2s[0]:
            nxt += 1
        self._low_grad = math.log10(a[nxt] / a[0]) / math.log10(self.q2s[nxt] / self.q2s[0])

    def alphasQ2(self, q2):
        q2 = np.asarray(q2, dtype=float)
        scalar = q2.ndim == 0
        flat = np.atleast_1d(q2).ravel()
        if np.any(~np.isfinite(flat)) or np.any(flat < 0):
            raise PDFRangeError("alpha_s: Q2 must be finite and >= 0")
        out = np.empty_like(flat)
        lo = flat < self.q2s[0]
        hi = flat > self.q2s[-1]
        mid = ~(lo | hi)
        out[lo] = self.values[0] * (flat[lo] / self.q2s[0]) ** self._low_grad
        out[hi] = self.values[-1]
        if mid.any():
            qm = flat[mid]
            i = _index_below(self.q2s, qm)
            dl = self.logq2s[i + 1] - self.logq2s[i]
            t = (np.log(qm) - self.logq2s[i]) / dl
            out[mid] = _hermite(
                t, self.values[i], self.derivs[i] * dl, self.values[i + 1], self.derivs[i + 1] * dl
            )
        out = out.reshape(q2.shape) if not scalar else out
        return float(out[0]) if scalar else out

    def alphasQ(self, q):
        q = np.asarray(q, dtype=float)
        return self.alphasQ2(q * q)

    __call__ = alphasQ


def _alphas_from_info(info: PDFSetInfo) -> AlphaSIpol:
    if not info.has_alphas_table:
        raise NotImplementedError(
            f"PDF set {info.name}: no AlphaS_Qs/AlphaS_Vals table (AlphaS_Type "
            f"{info.alphas_type!r}); only the interpolated ('ipol') alpha_s is supported"
        )
    try:
        return AlphaSIpol(info.alphas_qs or (), info.alphas_vals or ())
    except ValueError as exc:
        raise PDFFormatError(f"PDF set {info.name}: {exc}") from None
