"""The POIs' covariance in their physical units and the differences of the parts of a split POI
(``mW_plus - mW_minus``), from the fit's covariance in theta units.

A POI's physical value is ``central + scale * theta`` (plus its blinding offset while blinded),
so its physical covariance is ``scale_i * scale_j * C_ij``. The parts of a split (``mw-charge``,
``mw-eta``, ``mw-barrel-endcap``; model/poi.py) inherit the split POI's central value, scale
and blinding offset: their difference carries no offset and is shown while blinded. A pair with
unequal offsets (not made by the predefined splits) has its value withheld while blinded, never
the offsets themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from .schema import POICovariance, POIDifference

if TYPE_CHECKING:  # annotations only: the fitter's result imports JAX
    from ..fit.result import FitResult
    from ..model.info import POIInfo


def theta_covariance(res: FitResult, names: Sequence[str]) -> np.ndarray:
    """C_ij in theta units of the POIs ``names``, shape (k, k), symmetrised: from the fit's POI
    columns (``covariance_pois``, (n_params, n_pois), columns in the fit's POI order), else from
    its full covariance; NaN where neither was computed."""
    order = [p.name for p in res.pois]
    params = res.parameter_names
    cols = res.covariance_pois
    if cols is None and res.covariance is not None:
        cols = np.asarray(res.covariance)[:, : len(order)]
    if cols is None:
        return np.full((len(names), len(names)), np.nan)
    c = np.asarray(cols, dtype=np.float64)[
        np.ix_([params.index(n) for n in names], [order.index(n) for n in names])
    ]
    return 0.5 * (c + c.T)


def physical_covariance(theta_cov: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """``scale_i * scale_j * C_ij``: a (k, k) covariance in theta units in the POIs' units."""
    s = np.asarray(scales, dtype=np.float64)
    return np.asarray(theta_cov, dtype=np.float64) * np.outer(s, s)


def split_pairs(pois: Sequence[POIInfo]) -> list[tuple[str, str]]:
    """The (first, second) pairs of parts of the same split POI, in the model's order (one pair
    per predefined split: plus/minus, etaneg/etapos, barrel/endcap)."""
    groups: dict[str, list[str]] = {}
    for p in pois:
        if p.split_of is not None:
            groups.setdefault(p.split_of, []).append(p.name)
    return [pair for parts in groups.values() for pair in combinations(parts, 2)]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def difference(
    a: POIInfo, b: POIInfo, theta_a: float, theta_b: float, cov: np.ndarray, blinded: bool
) -> POIDifference:
    """``a - b`` in their unit; ``cov``: the (2, 2) physical covariance of (a, b). The value
    is ``(central_a + scale_a theta_a) - (central_b + scale_b theta_b)``, the offsets cancelling
    when equal; withheld (None) while ``blinded`` when they differ."""
    va, vb, cab = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    var = va + vb - 2.0 * cab
    withheld = blinded and a.blinding_offset != b.blinding_offset
    value = (a.central + a.scale * theta_a) - (b.central + b.scale * theta_b)
    corr = cab / math.sqrt(va * vb) if va > 0 and vb > 0 else math.nan
    return POIDifference(
        name=f"{a.name} - {b.name}",
        unit=a.unit,
        value=None if withheld else _finite(value),
        uncertainty=_finite(math.sqrt(var)) if var >= 0 else None,
        correlation=_finite(corr),
        blinded=withheld,
    )


def poi_covariance(
    pois: Sequence[POIInfo], res: FitResult, order: Sequence[str], blinded: bool
) -> tuple[POICovariance | None, list[POIDifference]]:
    """The physical covariance of the model's POIs ``pois`` in the result's order ``order``
    (None for fewer than 2 POIs) and the differences of the split parts (:func:`split_pairs`),
    from the fit ``res``."""
    if len(pois) < 2:
        return None, []
    by_name = {p.name: p for p in pois}
    theta = {p.name: p.value for p in res.pois}
    names = list(order)
    cov = physical_covariance(theta_covariance(res, names), [by_name[n].scale for n in names])
    out = POICovariance(names=names, matrix=cov.tolist())
    diffs = []
    for a, b in split_pairs(pois):
        i, j = names.index(a), names.index(b)
        sub = cov[np.ix_([i, j], [i, j])]
        diffs.append(difference(by_name[a], by_name[b], theta[a], theta[b], sub, blinded))
    return out, diffs
