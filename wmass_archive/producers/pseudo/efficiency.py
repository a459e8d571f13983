"""Muon efficiency scale-factor nuisances of the pseudo-analysis, per reco bin.

CMS measures the muon efficiency in steps (tracking, identification with impact-parameter
cuts, trigger, isolation) with tag-and-probe in Z -> mu mu events, per (eta, charge) bin,
and smooths the data/simulation scale factors in pT with a polynomial. The statistical
uncertainty of each smoothing fit becomes a set of eigen-variations (group
``muon_eff_stat``), uncorrelated between steps, eta bins and charges; systematic
alternatives of the method (tag selection, background model) give correlated variations
(group ``muon_eff_syst``).

Because a scale factor depends only on the reco muon's (eta, pT, charge), each variation is a
per-reco-bin factor, the same for every process with a prompt muon; no event loop is needed.
The pT shapes are Legendre polynomials in x = 2 (pT - 26)/30 - 1 (orthogonal on the pT range),
with amplitudes that fall with the order, as eigenvalues of a smoothing fit do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre
from pydantic import BaseModel, ConfigDict, Field

#: efficiency steps, in CMS's order
STEPS: tuple[str, ...] = ("tracking", "idip", "trigger", "iso")
N_ETA = 48
N_PT = 30
PT_LO, PT_HI = 26.0, 56.0


class EfficiencyUncertainties(BaseModel):
    """Sizes of the scale-factor uncertainties (relative, one sigma)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_stat_params: int = Field(default=6, ge=1, le=12, description="eigen-variations per fit")
    stat_leading: dict[str, float] = Field(
        default_factory=lambda: {
            "tracking": 6e-4,
            "idip": 8e-4,
            "trigger": 1.2e-3,
            "iso": 1.0e-3,
        },
        description="size of the leading (flat) stat eigen-variation per step",
    )
    stat_falloff: float = Field(
        default=0.6, gt=0, le=1, description="ratio of successive eigen-variation sizes"
    )
    syst_size: dict[str, float] = Field(
        default_factory=lambda: {
            "tracking": 5e-4,
            "idip": 6e-4,
            "trigger": 8e-4,
            "iso": 7e-4,
        },
        description="size of the systematic variation per step (flat part)",
    )
    syst_slope: float = Field(
        default=0.5, description="pT slope of the systematic variation, relative to its size"
    )


@dataclass(frozen=True)
class BinVariation:
    """One nuisance's effect on the reco bins it touches: relative yield factors.

    ``bins``: flat indices into the (charge, eta, pt) reco histogram, C order, shape (k,);
    ``up`` / ``down``: yield factors on those bins, shape (k,)."""

    name: str
    group: str
    bins: np.ndarray
    up: np.ndarray
    down: np.ndarray

    @property
    def logk_up(self) -> np.ndarray:
        return np.log(self.up)

    @property
    def logk_down(self) -> np.ndarray:
        return np.log(self.down)


def _pt_centers() -> np.ndarray:
    edges = np.linspace(PT_LO, PT_HI, N_PT + 1)
    return 0.5 * (edges[1:] + edges[:-1])


def legendre_shapes(n: int) -> np.ndarray:
    """Legendre polynomials P_0..P_{n-1} at the 30 reco pT bin centres. Shape (n, 30)."""
    x = 2.0 * (_pt_centers() - PT_LO) / (PT_HI - PT_LO) - 1.0
    return np.stack([legendre.legval(x, np.eye(n)[k]) for k in range(n)])


def _flat_bins(iq: int, ieta: int) -> np.ndarray:
    return (iq * N_ETA + ieta) * N_PT + np.arange(N_PT)


def efficiency_variations(cfg: EfficiencyUncertainties | None = None) -> list[BinVariation]:
    """All efficiency nuisances: ``muon_eff_stat`` (step x eta bin x charge x eigen-variation:
    4 x 48 x 2 x 6 = 2304 by default) and ``muon_eff_syst`` (step x eta bin, both charges
    together, a flat part and a pT slope: 192).

    Names: ``effStat_<step>_eta<EE>_<q>_p<k>`` and ``effSyst_<step>_eta<EE>`` with EE the
    reco eta bin (00..47) and q ``minus``/``plus``."""
    cfg = cfg or EfficiencyUncertainties()
    shapes = legendre_shapes(cfg.n_stat_params)
    x = np.linspace(-1.0, 1.0, N_PT)
    out: list[BinVariation] = []
    for step in STEPS:
        lead = cfg.stat_leading[step]
        sizes = lead * cfg.stat_falloff ** np.arange(cfg.n_stat_params)
        syst = cfg.syst_size[step] * (1.0 + cfg.syst_slope * x)
        for ieta in range(N_ETA):
            # endcaps are measured with fewer probes: larger statistical uncertainty
            eta_c = -2.4 + 0.1 * (ieta + 0.5)
            widen = 1.0 + 1.5 * max(0.0, abs(eta_c) - 1.2)
            for iq, q in enumerate(("minus", "plus")):
                bins = _flat_bins(iq, ieta)
                for k in range(cfg.n_stat_params):
                    d = widen * sizes[k] * shapes[k]
                    out.append(
                        BinVariation(
                            f"effStat_{step}_eta{ieta:02d}_{q}_p{k}",
                            "muon_eff_stat",
                            bins,
                            1.0 + d,
                            1.0 - d,
                        )
                    )
            bins = np.concatenate([_flat_bins(0, ieta), _flat_bins(1, ieta)])
            d = np.tile(widen * syst, 2)
            name = f"effSyst_{step}_eta{ieta:02d}"
            out.append(BinVariation(name, "muon_eff_syst", bins, 1.0 + d, 1.0 - d))
    return out
