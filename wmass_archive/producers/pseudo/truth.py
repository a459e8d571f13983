"""Generator-level ("truth") muon events: what every process of the pseudo-analysis hands to
the detector model.

All arrays have shape (n,). Momenta in GeV, angles in radians. ``weight`` is in pb per event:
the sum of the weights of a sample is its cross section (times branching fractions) in the
generated phase space, so that yield = luminosity (pb^-1) * sum of weights.

The hadronic recoil is the transverse momentum balancing the boson: truth recoil =
-(boson pT vector). The detector model smears it and builds the missing transverse momentum
as -(reco muon pT + reco recoil), from which the transverse mass mT is computed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class TruthMuons:
    """One selected-candidate muon per event, with the boson's transverse momentum."""

    pt: np.ndarray  #: muon transverse momentum (GeV)
    eta: np.ndarray  #: muon pseudorapidity
    phi: np.ndarray  #: muon azimuth (rad)
    charge: np.ndarray  #: muon charge, int8 in {-1, +1}
    weight: np.ndarray  #: pb per event
    boson_px: np.ndarray  #: boson transverse momentum, x (GeV)
    boson_py: np.ndarray  #: boson transverse momentum, y (GeV)

    def __post_init__(self) -> None:
        n = np.asarray(self.pt).shape
        for f in fields(self):
            a = np.asarray(getattr(self, f.name))
            if a.shape != n:
                raise ValueError(f"TruthMuons.{f.name} has shape {a.shape}, expected {n}")
            setattr(self, f.name, a)

    def __len__(self) -> int:
        return int(self.pt.shape[0])

    def select(self, mask: np.ndarray) -> TruthMuons:
        """The events where ``mask`` is true (a new object)."""
        return TruthMuons(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @staticmethod
    def concatenate(parts: list[TruthMuons]) -> TruthMuons:
        """Events of several samples, in order."""
        names = [f.name for f in fields(TruthMuons)]
        return TruthMuons(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})
