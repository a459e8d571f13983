"""The generator-level binning of the W theory grid and the decay's angular polynomials.

This is the contract between the theory grid (one number per generator bin and PDF member,
computed by :mod:`wmass_archive.theory.compute`, held and stored by
:class:`wmass_archive.theory.grid.TheoryGrid`) and the event processing of the pseudo-analysis,
which fills the response tensor ``R[point, reco bin, generator bin]`` in the same bins.

Generator bins are the product of four axes, in this order (C order when flattened):

``qW``
    W charge, categories ``[-1, +1]`` (W- first).
``absYW``
    |y^W|, the absolute W rapidity, edges :data:`ABS_Y_EDGES`. The theory is symmetric under
    y -> -y in pp collisions with the Collins-Soper z axis oriented along the W's
    longitudinal direction, so the grid holds |y|; the event processing fills both signs.
``ptW``
    W transverse momentum in GeV, edges :data:`PT_EDGES`.
``helicity``
    ``UL, A0, ..., A7``: the helicity cross sections of the decomposition below.

The W -> mu nu decay distribution in the Collins-Soper frame (theta, phi of the charged
lepton) is exactly

    dsigma / (dpT dy dcos dphi) = 3/(16 pi) sigma_UL(pT, y) [ P_UL + sum_i A_i(pT, y) P_i ]

with the polynomials of :func:`angular_polynomials`. The grid entry of a cell for helicity
``UL`` is sigma_UL integrated over the cell (pb, times the branching fraction W -> mu nu),
and for ``Ai`` it is the cell integral of sigma_UL * A_i (pb). Inside a cell the A_i are
taken constant (their cell averages ``sigma_Ai / sigma_UL``), which makes folding exact:
an event's weight splits into one weight per helicity term whose sum is the event weight.

The generator phase space is |y^W| < 5 and pT^W < 100 GeV; W bosons outside it are not
part of the folded signal (they are <1% of it after the muon selection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..archive.axes import Axis

#: |y^W| bin edges: 8 bins, 0.5 wide up to |y| = 3.5 where muons still reach |eta| < 2.4
ABS_Y_EDGES: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 5.0)
#: pT^W bin edges in GeV: 10 bins, fine where the spectrum peaks (also the 10 pT^W bins in
#: which the A_i scale variations are uncorrelated)
PT_EDGES: tuple[float, ...] = (0.0, 3.0, 5.0, 7.0, 9.0, 12.0, 15.0, 20.0, 27.0, 40.0, 100.0)
#: W charges, W- first
CHARGES: tuple[int, ...] = (-1, 1)
#: helicity terms of the decomposition, in grid order
HELICITIES: tuple[str, ...] = ("UL", "A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7")

N_CHARGE = len(CHARGES)
N_Y = len(ABS_Y_EDGES) - 1
N_PT = len(PT_EDGES) - 1
N_HEL = len(HELICITIES)
#: shape of the theory grid (qW, absYW, ptW, helicity)
GRID_SHAPE: tuple[int, int, int, int] = (N_CHARGE, N_Y, N_PT, N_HEL)
N_GEN = int(np.prod(GRID_SHAPE))

#: Physical constants used throughout the pseudo-analysis (GeV)
MW_GEV = 80.360
GAMMA_W_GEV = 2.085


def generator_axes() -> list[Axis]:
    """The four named axes of the W theory grid, in storage order."""
    return [
        Axis.category([int(c) for c in CHARGES], name="qW", label="W charge"),
        Axis.variable(ABS_Y_EDGES, name="absYW", label="|y^W|"),
        Axis.variable(PT_EDGES, name="ptW", label="p_T^W", unit="GeV"),
        Axis.category(list(HELICITIES), name="helicity", label="helicity term"),
    ]


def cell_index(charge: np.ndarray, abs_y: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Flat index of the (qW, absYW, ptW) cell of each W (the helicity axis excluded),
    ``-1`` outside the generator phase space. Shapes: (n,) each; charge in {-1, +1}."""
    iq = (np.asarray(charge) > 0).astype(np.int64)
    iy = np.searchsorted(ABS_Y_EDGES, np.asarray(abs_y), side="right") - 1
    ip = np.searchsorted(PT_EDGES, np.asarray(pt), side="right") - 1
    ok = (iy >= 0) & (iy < N_Y) & (ip >= 0) & (ip < N_PT)
    flat = (iq * N_Y + iy) * N_PT + ip
    return np.where(ok, flat, -1)


def angular_polynomials(cos_theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """The nine polynomials (P_UL, P_0, ..., P_7) of the decay distribution at Collins-Soper
    angles (cos theta, phi in radians) of the charged lepton. Shape (9, n).

    P_UL = 1 + c^2, P_0 = (1 - 3c^2)/2, P_1 = sin 2theta cos phi, P_2 = sin^2 theta cos 2phi / 2,
    P_3 = sin theta cos phi, P_4 = c, P_5 = sin^2 theta sin 2phi / 2,
    P_6 = sin 2theta sin phi, P_7 = sin theta sin phi.
    """
    c = np.asarray(cos_theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    s2 = np.clip(1.0 - c * c, 0.0, None)
    s = np.sqrt(s2)
    sin2t = 2.0 * s * c
    return np.stack(
        [
            1.0 + c * c,
            0.5 * (1.0 - 3.0 * c * c),
            sin2t * np.cos(phi),
            0.5 * s2 * np.cos(2.0 * phi),
            s * np.cos(phi),
            c,
            0.5 * s2 * np.sin(2.0 * phi),
            sin2t * np.sin(phi),
            s * np.sin(phi),
        ]
    )


def angular_density(coeffs: np.ndarray, cos_theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Normalised decay density 3/(16 pi) [P_UL + sum_i A_i P_i] in (cos theta, phi).

    ``coeffs``: (8, n) or (8,) angular coefficients A_0..A_7. Shape of the result: (n,).
    The density integrates to 1 over cos theta in [-1, 1], phi in [0, 2 pi)."""
    p = angular_polynomials(cos_theta, phi)
    a = np.asarray(coeffs, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    return 3.0 / (16.0 * np.pi) * (p[0] + np.sum(a * p[1:], axis=0))


@dataclass(frozen=True)
class CellDensities:
    """What the event processing needs from a W production model besides the grid: the
    shapes of the spectra *inside* the generator cells, tabulated on fine points.

    ``grid``       (2, N_Y, N_PT, 9) pb: the theory grid (sigma_UL and sigma_UL * A_i per cell).
    ``abs_y``      (n_y,) fine |y| points covering [0, 5];
    ``dsigma_dy``  (2, n_y) d sigma / d|y| at those points for W-, W+ (any normalisation);
    ``pt``         (n_pt,) fine pT points covering [0, 100] GeV;
    ``dsigma_dpt`` (2, N_Y, n_pt) d sigma / d pT at those points per charge and |y| bin.

    Events are drawn cell by cell: |y| and pT inside a cell from these tabulated densities
    (linear between the points), the decay angles from the cell's A_i.
    """

    grid: np.ndarray
    abs_y: np.ndarray
    dsigma_dy: np.ndarray
    pt: np.ndarray
    dsigma_dpt: np.ndarray

    def __post_init__(self) -> None:
        if self.grid.shape != GRID_SHAPE:
            raise ValueError(f"grid has shape {self.grid.shape}, expected {GRID_SHAPE}")
        if self.dsigma_dy.shape != (N_CHARGE, self.abs_y.size):
            raise ValueError("dsigma_dy must have shape (2, len(abs_y))")
        if self.dsigma_dpt.shape != (N_CHARGE, N_Y, self.pt.size):
            raise ValueError("dsigma_dpt must have shape (2, N_Y, len(pt))")
        for name in ("grid", "dsigma_dy", "dsigma_dpt"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} has non-finite values")
        if np.any(self.grid[..., 0] < 0) or np.any(self.dsigma_dy < 0):
            raise ValueError("cross sections must be non-negative")

    def coefficients(self) -> np.ndarray:
        """Cell-average angular coefficients A_0..A_7, shape (2, N_Y, N_PT, 8)."""
        ul = self.grid[..., :1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ul > 0, self.grid[..., 1:] / np.where(ul > 0, ul, 1.0), 0.0)
