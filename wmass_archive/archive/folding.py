"""Folding a theory grid through a response tensor: nu[b] = lumi * sum_g R[point, b, g] sigma[g].

Numpy here serves the writer and the validator; the fitter has its own JAX version.
"""

from __future__ import annotations

import numpy as np

from .sparse import SparseTensor

#: the folded nominal yield must reproduce the stored one to this relative precision
FOLDING_RTOL = 1e-6
#: absolute floor of that check, as a fraction of the largest yield of the channel
FOLDING_ATOL_FRACTION = 1e-12


def fold_point(response: np.ndarray | SparseTensor, point: int, sigma: np.ndarray) -> np.ndarray:
    """R[point] @ sigma, shape (n_bins,), for a dense (n_pts, n_bins, n_gen) array or a
    :class:`SparseTensor` of that shape."""
    if isinstance(response, SparseTensor):
        sel = response.coords[0] == point
        return np.bincount(
            response.coords[1][sel],
            weights=response.values[sel] * sigma[response.coords[2][sel]],
            minlength=response.shape[1],
        ).astype(np.float64)
    return response[point] @ sigma


def folding_problem(folded: np.ndarray, nominal: np.ndarray) -> str | None:
    """Why ``folded`` does not reproduce ``nominal`` (both (n_bins,)), or None: it must within
    FOLDING_RTOL * |nominal| + FOLDING_ATOL_FRACTION * max|nominal| in every bin (relative per
    bin, with a tiny absolute floor so that rounding in (near-)empty bins is not an error)."""
    scale = float(np.max(np.abs(nominal), initial=0.0))
    tol = FOLDING_RTOL * np.abs(nominal) + FOLDING_ATOL_FRACTION * scale
    excess = np.abs(folded - nominal) - tol
    worst = int(np.argmax(excess)) if excess.size else 0
    if excess.size and not excess[worst] <= 0:  # NaN counts as a problem
        return (
            f"folding with the nominal theory gives {folded[worst]:.9g} "
            f"in bin {worst}, the stored nominal yield is {nominal[worst]:.9g} "
            f"(tolerance {FOLDING_RTOL:g} relative)"
        )
    return None
