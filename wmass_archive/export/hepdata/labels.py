"""Readable labels of nuisance parameters for the HEPData tables.

A nuisance's own ``label`` (archive metadata) is used when it has one. Otherwise the label is
built from the name's pattern, for the naming conventions of CMS's W-mass analysis that the
pseudo-analysis follows (``effStat_<step>_eta<NN>_<charge>_p<k>``, ``calib_A_eta<NN>``,
``fakeStat_eta<NN>_<charge>_p<k>``, ``pdf<SET>EV<k>``, ...), with the eta range of the bin
when the archive has an ``eta`` axis; a name matching no pattern is kept as it is (with its eta
range, if it names an eta bin).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

CHARGE = {"minus": "mu-", "plus": "mu+"}
EFF_STEPS = {
    "tracking": "tracking",
    "idip": "ID + IP",
    "trigger": "trigger",
    "iso": "isolation",
    "reco": "reconstruction",
}
CALIB = {
    "A": "J/psi stat. A (magnetic field)",
    "e": "J/psi stat. e (material)",
    "M": "J/psi stat. M (alignment)",
    "Zclosure": "Z closure",
    "pixel": "pixel multiplicity",
}
FIXED = {
    "lumi": "Integrated luminosity",
    "calib_ZclosureLEP": "Muon momentum scale: LEP-based Z closure",
    "calib_pixel_global": "Muon momentum scale: pixel multiplicity, global",
    "ew_fsr_rate": "Higher-order EW: FSR rate",
    "ew_fsr_hardness": "Higher-order EW: FSR hardness",
    "ew_virtual": "Higher-order EW: virtual (line-shape) correction",
    "fakePromptSubtraction": "Nonprompt: prompt-background subtraction",
}


class NuisanceLabeler:
    """``labeler(name, label="")``: the readable label of a nuisance parameter (see the module
    docstring). ``eta_edges``: bin edges of the archive's eta axis, or None."""

    def __init__(self, eta_edges: Sequence[float] | None = None):
        self.eta_edges = None if eta_edges is None else np.asarray(eta_edges, dtype=float)
        self._rules: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
            (re.compile(r"^pdf(.+)EV(\d+)$"), lambda m: f"PDF {m[1]}: eigenvector {m[2]}"),
            (
                re.compile(r"^effStat_([A-Za-z]+)_eta(\d+)_(minus|plus)_p(\d+)$"),
                lambda m: (
                    f"Muon efficiency stat. ({self._step(m[1])}): {self._eta(m[2])}, "
                    f"{CHARGE[m[3]]}, pT shape {m[4]}"
                ),
            ),
            (
                re.compile(r"^effSyst_([A-Za-z]+)_eta(\d+)$"),
                lambda m: f"Muon efficiency syst. ({self._step(m[1])}): {self._eta(m[2])}",
            ),
            (
                re.compile(r"^calib_(A|e|M|Zclosure|pixel)_eta(\d+)$"),
                lambda m: f"Muon momentum scale: {CALIB[m[1]]}, {self._eta(m[2])}",
            ),
            (
                re.compile(r"^calib_resol_([abc])_eta(\d+)-(\d+)$"),
                lambda m: f"Muon momentum resolution: term {m[1]}, {self._eta(m[2], m[3])}",
            ),
            (
                re.compile(r"^norm_(.+)$"),
                lambda m: f"Normalisation of the {m[1]} background",
            ),
            (
                re.compile(r"^fakeNorm_etaReg(\d+)_(minus|plus)$"),
                lambda m: f"Nonprompt normalisation: eta region {m[1]}, {CHARGE[m[2]]}",
            ),
            (
                re.compile(r"^fakeSlope_etaReg(\d+)$"),
                lambda m: f"Nonprompt pT slope: eta region {m[1]}",
            ),
            (
                re.compile(r"^fakeMtCorr_(minus|plus)$"),
                lambda m: f"Nonprompt mT correlation: {CHARGE[m[1]]}",
            ),
            (
                re.compile(r"^fakeStat_eta(\d+)_(minus|plus)_p(\d+)$"),
                lambda m: f"Nonprompt stat.: {self._eta(m[1])}, {CHARGE[m[2]]}, pT shape {m[3]}",
            ),
        ]

    def __call__(self, name: str, label: str = "") -> str:
        """The label of nuisance ``name`` (its archive ``label`` when not empty)."""
        if label:
            return label
        if name in FIXED:
            return FIXED[name]
        for pattern, make in self._rules:
            m = pattern.match(name)
            if m:
                return make(m)
        m = re.search(r"eta(\d+)$", name)
        if m and self._eta_range(int(m[1]), int(m[1])) is not None:
            return f"{name} ({self._eta(m[1])})"
        return name

    @staticmethod
    def _step(step: str) -> str:
        return EFF_STEPS.get(step, step)

    def _eta_range(self, first: int, last: int) -> tuple[float, float] | None:
        e = self.eta_edges
        if e is None or not (0 <= first <= last < e.size - 1):
            return None
        return float(e[first]), float(e[last + 1])

    def _eta(self, first: str, last: str | None = None) -> str:
        """'eta bin 3 [-2.10, -2.00]' or 'eta bins 2-3 [...]' (no range without an eta axis)."""
        i, j = int(first), int(last if last is not None else first)
        what = f"eta bin {i}" if i == j else f"eta bins {i}-{j}"
        rng = self._eta_range(i, j)
        return what if rng is None else f"{what} [{rng[0]:.2f}, {rng[1]:.2f}]"


def eta_edges_of(channels: Sequence) -> np.ndarray | None:
    """Bin edges of the first continuous axis named ``eta`` among the channels, or None."""
    for ch in channels:
        for ax in ch.axes:
            if ax.name.lower() == "eta" and ax.is_continuous:
                return np.asarray(ax.bin_edges(), dtype=float)
    return None


def charge_word(q: float) -> str:
    """'positive' or 'negative' for a charge category (0 counts as negative)."""
    return "positive" if float(q) > 0 else "negative"
