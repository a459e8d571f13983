"""Combine's normalisation and morphing conventions as pure functions (docs/combine.md):
the archive kappas that give Combine's ``AsymPow`` under a nuisance's prior scale, and the
vertical-morphing shifts of a template (hist-modes 1 and 2). Used by :mod:`._plan`."""

from __future__ import annotations

import math

import numpy as np

from ._card import CombineImportError
from ._shapes import Histogram

__all__ = ["lnn_under_prior", "morph_shifts"]


def lnn_under_prior(kd: float, ku: float, prior: float, what: str) -> tuple[float, float]:
    """Archive kappas giving Combine's ``AsymPow(kd, ku)(theta)`` for a nuisance whose
    archive ``prior_scale`` is ``prior`` (t = prior * theta): unchanged for prior 1; for
    another prior only a symmetric effect (kd = 1/ku) can be written exactly."""
    if prior == 1.0:
        return kd, ku
    if abs(math.log(kd) + math.log(ku)) > 1e-12 * max(1.0, abs(math.log(ku))):
        raise CombineImportError(
            f"{what}: an asymmetric normalisation effect on a nuisance whose shape scale "
            f"gives it a prior scale of {prior:g} cannot be written exactly"
        )
    return kd ** (1.0 / prior), ku ** (1.0 / prior)


def morph_shifts(
    nominal: Histogram, up: Histogram, down: Histogram, scale: float, hist_mode: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Combine's vertical-morphing shifts of one template at x = +-1, in units of the nominal
    template (multiply by the column's scale to get events), and the normalisation kappas.

    hist-mode 1 (and channels without autoMCStats): the up/down templates renormalised to the
    nominal integral; hist-mode 2: the templates as they are (no separate normalisation:
    kappas 1)."""
    h, u, d = nominal.integral, up.integral, down.integral
    if hist_mode == 2:
        return up.values - nominal.values, down.values - nominal.values, 1.0, 1.0
    return (
        up.values * (h / u) - nominal.values,
        down.values * (h / d) - nominal.values,
        d / h,
        u / h,
    )
