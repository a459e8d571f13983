"""Combine's ``autoMCStats``: which bins get one Barlow-Beeston-lite parameter and which get
per-process parameters, with Combine's own rules (``CMSHistErrorPropagator::setupBinPars`` as
documented in ``docs/part2/bin-wise-stats.md`` of HiggsAnalysis-CombinedLimit).

Per bin, with the yields ``v_i`` and MC errors ``e_i`` of the processes at their nominal
normalisation (signals left out of the two sums unless ``include-signal``):

* ``e_tot = sqrt(sum e_i^2) = 0``: no parameter;
* ``n_eff = round(n_tot^2 / e_tot^2) <= threshold``: one parameter per process with ``e_i > 0``
  and ``v_i >= 0`` (signals included): Poisson-constrained yield multiplier with
  ``tau = round(v_i^2 / e_i^2)`` when ``v_i >= 0.999 e_i`` and that ``tau <= threshold``;
  otherwise a Gaussian parameter ``x`` adding ``x e_i`` to the yield;
* otherwise a single Gaussian Barlow-Beeston-lite parameter x adding ``x e`` to the bin's
  total yield, ``e = sqrt(sum_p (e_p c_p)^2)`` over *all* processes (signals too, whatever
  include-signal says) with their current normalisations ``c_p`` (the archive's
  ``mc_stat = "combine"``, fed with the per-process sumw2 of the bin; module
  ``wmass_archive.fit.likelihood``).

A negative threshold creates no parameter at all (Combine's ``-1``: the histogram classes
without bin-wise uncertainties; the planner handles it before this module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ProcessStat:
    """A per-process parameter of bin ``bin``: ``kind`` "poisson" (``tau`` = effective events,
    the yield multiplier ``1 + theta / sqrt(tau)``) or "gaussian" (adds ``theta * error``)."""

    bin: int
    process: str
    kind: str
    error: float
    tau: float | None = None


@dataclass
class StatsPlan:
    """The classification of a channel's bins: ``lite`` (n_bins,) True where the bin has one
    Barlow-Beeston-lite parameter; ``per_process`` the parameters of the other bins."""

    lite: np.ndarray
    per_process: list[ProcessStat] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        """Bins without any parameter (zero background error) or with per-process ones."""
        return int((~self.lite).sum())


def _round(x: np.ndarray | float) -> np.ndarray:
    """Combine's rounding of effective counts: int(0.5 + x) (x >= 0)."""
    return np.floor(0.5 + np.asarray(x, dtype=np.float64))


def classify_bins(
    values: Mapping[str, np.ndarray],
    errors: Mapping[str, np.ndarray],
    signals: Sequence[str],
    threshold: float,
    include_signal: bool = False,
) -> StatsPlan:
    """Classify the bins of a channel. ``values``/``errors``: {process: (n_bins,)} nominal
    yields (events) and MC errors (events, sqrt of sumw2), in the channel's process order."""
    procs = list(values)
    n_bins = len(next(iter(values.values()))) if procs else 0
    v = np.array([values[p] for p in procs], dtype=np.float64).reshape(len(procs), n_bins)
    e = np.array([errors[p] for p in procs], dtype=np.float64).reshape(len(procs), n_bins)
    use = np.array([include_signal or p not in signals for p in procs], dtype=bool)
    sub_sum = (v * use[:, None]).sum(axis=0)
    sub_err = np.sqrt((e**2 * use[:, None]).sum(axis=0))
    tot_err = np.sqrt((e**2).sum(axis=0))
    lite = np.zeros(n_bins, dtype=bool)
    out: list[ProcessStat] = []
    for j in range(n_bins):
        if not sub_err[j] > 0:
            continue
        n = float(_round(sub_sum[j] ** 2 / sub_err[j] ** 2))
        if n > threshold:
            lite[j] = tot_err[j] > 0
            continue
        for i, p in enumerate(procs):
            vp, ep = float(v[i, j]), float(e[i, j])
            if ep <= 0 or vp < 0:
                continue
            if vp > 0 and vp >= 0.999 * ep:
                n_p = float(_round(vp * vp / (ep * ep)))
                if n_p <= threshold:
                    out.append(ProcessStat(j, p, "poisson", ep, tau=n_p))
                    continue
            out.append(ProcessStat(j, p, "gaussian", ep))
    return StatsPlan(lite, out)
