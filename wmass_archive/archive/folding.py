"""Folding a theory grid through a response tensor: nu[b] = lumi * sum_g R[point, b, g] sigma[g].

Numpy here serves the writer and the validator; the fitter has its own JAX version.
"""

from __future__ import annotations

import numpy as np

from ..errors import ContentError
from .sparse import SparseTensor

#: the folded nominal yield must reproduce the stored one to this relative precision
FOLDING_RTOL = 1e-6


def fold_point(response: np.ndarray | SparseTensor, point: int, sigma: np.ndarray) -> np.ndarray:
    """R[point] @ sigma, shape (n_bins,), for a dense (n_pts, n_bins, n_gen) array or a
    :class:`SparseTensor` of that shape."""
    if isinstance(response, SparseTensor):
        sel = response.coords[0] == point
        out = np.zeros(response.shape[1])
        np.add.at(out, response.coords[1][sel], response.values[sel] * sigma[response.coords[2][sel]])
        return out
    return response[point] @ sigma


def check_folding(folded: np.ndarray, nominal: np.ndarray, what: str) -> None:
    """Raise when ``folded`` differs from ``nominal`` by more than FOLDING_RTOL, relative to the
    bin or (for near-empty bins) to the largest yield."""
    floor = FOLDING_RTOL * max(float(np.max(np.abs(nominal), initial=0.0)), 1e-300)
    dev = np.abs(folded - nominal)
    excess = dev - np.maximum(floor, FOLDING_RTOL * np.abs(nominal))
    worst = int(np.argmax(excess)) if excess.size else 0
    if excess.size and excess[worst] > 0:
        raise ContentError(f"{what}: folding with the nominal theory gives {folded[worst]:.9g} "
                           f"in bin {worst}, the stored nominal yield is {nominal[worst]:.9g} "
                           f"(tolerance {FOLDING_RTOL:g} relative)")
