"""Leading-order W production from real PDFs: d sigma / d|y^W| and the quark-direction dilution.

Narrow-width LO (q qbar' -> W -> mu nu) in pp collisions at sqrt(s), tau = mW^2 / s,
x_a = sqrt(tau) e^{|y|} (the parton moving along the W's longitudinal direction) and
x_o = sqrt(tau) e^{-|y|}:

    d sigma / dy = K BR(W -> mu nu) (pi sqrt(2) G_F / 3)
                   * sum_{ij} |V_ij|^2 [x_a f_i(x_a) x_o f_j(x_o) + x_a f_j(x_a) x_o f_i(x_o)]

(times 0.3894e9 pb GeV^2), the sum over (up-type quark, down-type antiquark) pairs for W+ and
(down-type quark, up-type antiquark) pairs for W-, mu_F = mu_f_factor * mW, both beam
orderings. The distribution is symmetric in y, so d sigma / d|y| = 2 d sigma / dy.

The two terms are the quark moving along the W (L_along) or against it (L_opp). The dilution

    D(|y|) = (L_along - L_opp) / (L_along + L_opp)       (0 at y = 0, -> 1 at large |y|)

is the net probability 2 p - 1 that the quark (not the antiquark) moves along the W's
longitudinal direction, i.e. along the Collins-Soper z axis; it dilutes the V-A values of the
quark-direction-odd coefficients A1, A3, A4 (:mod:`wmass_archive.theory.angular`).

Everything is vectorised over PDF members: PDF values come in as arrays with any leading shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .generator import ABS_Y_EDGES, CHARGES, N_Y
from .lhapdf import PDFMember
from .params import TheoryParameters

__all__ = [
    "GEV2_TO_PB",
    "PDG_IDS",
    "RapidityNodes",
    "WRapidity",
    "lo_prefactor",
    "max_abs_y",
    "parton_values",
    "rapidity_from_partons",
    "rapidity_nodes",
    "total_cross_sections",
    "w_rapidity",
]

#: (hbar c)^2: 1 GeV^-2 in pb
GEV2_TO_PB: float = 0.3893793721e9
#: the partons the W needs, in the row order of :func:`parton_values`: -5..-1, 1..5
PDG_IDS: tuple[int, ...] = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)
_ROW = {pid: i for i, pid in enumerate(PDG_IDS)}
_NODES_PER_CELL = 24  # Gauss-Legendre nodes per |y| cell (the integrands are smooth)


def lo_prefactor(p: TheoryParameters) -> float:
    """K * BR * pi sqrt(2) G_F / 3 in pb: d sigma/dy = this * sum |V|^2 (x f)(x f)."""
    return p.k_factor * p.br_w_munu * math.pi * math.sqrt(2.0) * p.gf_gev2 / 3.0 * GEV2_TO_PB


@dataclass(frozen=True)
class RapidityNodes:
    """Quadrature nodes in |y^W|: ``abs_y`` (n,), ``weights`` (n,), ``cell`` (n,) the |y| bin
    of each node (-1 outside the binning)."""

    abs_y: np.ndarray
    weights: np.ndarray
    cell: np.ndarray


def rapidity_nodes(n_per_cell: int = _NODES_PER_CELL) -> RapidityNodes:
    """Gauss-Legendre nodes in every |y^W| bin of the generator binning."""
    t, w = np.polynomial.legendre.leggauss(n_per_cell)
    ys, ws, cs = [], [], []
    for i in range(N_Y):
        lo, hi = ABS_Y_EDGES[i], ABS_Y_EDGES[i + 1]
        ys.append(lo + 0.5 * (t + 1.0) * (hi - lo))
        ws.append(0.5 * w * (hi - lo))
        cs.append(np.full(n_per_cell, i))
    return RapidityNodes(np.concatenate(ys), np.concatenate(ws), np.concatenate(cs))


def _x_pair(abs_y: np.ndarray, p: TheoryParameters) -> tuple[np.ndarray, np.ndarray]:
    rt = p.mw_gev / p.sqrt_s_gev
    y = np.asarray(abs_y, dtype=np.float64)
    return rt * np.exp(y), rt * np.exp(-y)


def max_abs_y(p: TheoryParameters) -> float:
    """Kinematic limit of |y^W| at LO: ln(sqrt(s) / mW)."""
    return math.log(p.sqrt_s_gev / p.mw_gev)


def parton_values(
    member: PDFMember, abs_y: np.ndarray, p: TheoryParameters, mu_factor: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """x f(x, mu_F) of the partons :data:`PDG_IDS` at x_a and x_o of each |y|, shapes
    (10, n) each; mu_F = mu_factor * mu_f_factor * mW. Raises the member's range error when the
    set does not cover the x or Q needed."""
    xa, xo = _x_pair(abs_y, p)
    q = np.full(xa.shape, mu_factor * p.mu_f_factor * p.mw_gev)
    both = member.xfxQ_all(np.concatenate([xa, xo]), np.concatenate([q, q]), PDG_IDS)
    return both[:, : xa.size], both[:, xa.size :]


def _luminosities(
    fa: np.ndarray, fo: np.ndarray, p: TheoryParameters
) -> tuple[np.ndarray, np.ndarray]:
    """(L_along, L_opp), each (..., 2, n) with charges in :data:`CHARGES` order, from
    x f arrays (..., 10, n)."""
    along = np.zeros(fa.shape[:-2] + (2,) + fa.shape[-1:])
    opp = np.zeros_like(along)
    for (up, dn), v2 in p.ckm2().items():
        for ic, charge in enumerate(CHARGES):
            quark, anti = (up, -dn) if charge > 0 else (dn, -up)
            qa, aa = fa[..., _ROW[quark], :], fa[..., _ROW[anti], :]
            qo, ao = fo[..., _ROW[quark], :], fo[..., _ROW[anti], :]
            along[..., ic, :] += v2 * qa * ao
            opp[..., ic, :] += v2 * aa * qo
    return along, opp


@dataclass(frozen=True)
class WRapidity:
    """d sigma / d|y| (pb per unit |y|, charges W-, W+) and the dilution at |y| points.

    ``abs_y`` (n,); ``dsigma`` (..., 2, n); ``dilution`` (..., 2, n): leading axes as the PDF
    values given (e.g. members)."""

    abs_y: np.ndarray
    dsigma: np.ndarray
    dilution: np.ndarray


def rapidity_from_partons(
    abs_y: np.ndarray,
    fa: np.ndarray,
    fo: np.ndarray,
    p: TheoryParameters,
    fa_dil: np.ndarray | None = None,
    fo_dil: np.ndarray | None = None,
) -> WRapidity:
    """:class:`WRapidity` from parton values (..., 10, n) at x_a, x_o (see
    :func:`parton_values`); the dilution from ``fa_dil``/``fo_dil`` when given (parton values
    at another factorisation scale), else from the same values."""
    along, opp = _luminosities(fa, fo, p)
    total = along + opp
    dsigma = 2.0 * lo_prefactor(p) * total
    if fa_dil is not None and fo_dil is not None:
        along, opp = _luminosities(fa_dil, fo_dil, p)
        total = along + opp
    with np.errstate(divide="ignore", invalid="ignore"):
        dil = np.where(total > 0, (along - opp) / np.where(total > 0, total, 1.0), 0.0)
    return WRapidity(np.asarray(abs_y, dtype=np.float64), dsigma, dil)


def w_rapidity(member: PDFMember, abs_y: np.ndarray, p: TheoryParameters) -> WRapidity:
    """:class:`WRapidity` of one PDF member at |y| points (each < ln(sqrt(s)/mW))."""
    abs_y = np.asarray(abs_y, dtype=np.float64)
    fa, fo = parton_values(member, abs_y, p)
    if p.dilution_mu_f_factor != 1.0:
        fad, fod = parton_values(member, abs_y, p, p.dilution_mu_f_factor)
        return rapidity_from_partons(abs_y, fa, fo, p, fad, fod)
    return rapidity_from_partons(abs_y, fa, fo, p)


def total_cross_sections(member: PDFMember, p: TheoryParameters | None = None) -> np.ndarray:
    """sigma x BR(W -> mu nu) in pb over all rapidities and transverse momenta, shape (2,)
    for (W-, W+)."""
    p = p or TheoryParameters()
    ymax = max_abs_y(p)
    t, w = np.polynomial.legendre.leggauss(96)
    edges: Sequence[float] = (0.0, 2.5, 4.0, ymax)
    ys, ws = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        ys.append(lo + 0.5 * (t + 1.0) * (hi - lo))
        ws.append(0.5 * w * (hi - lo))
    y = np.concatenate(ys)
    wr = w_rapidity(member, y, p)
    return wr.dsigma @ np.concatenate(ws)
