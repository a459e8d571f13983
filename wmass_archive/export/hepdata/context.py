"""What every table of a HEPData export shares: the refit result, the archive's metadata and
checksum, the SYNTHETIC / BLINDED statement, keywords, qualifiers and the licence."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...archive.models import ArchiveMetadata
from ...refit.schema import RefitResult
from .labels import NuisanceLabeler, eta_edges_of
from .yields import YieldBands

REACTION = "P P --> W X"
PHRASES = ("W Production", "Proton-Proton Scattering", "W Mass")


def license_info(spdx: str) -> dict[str, str]:
    """HEPData licence fields (name, url, description) of an SPDX identifier: Creative Commons
    licences point to creativecommons.org, anything else to spdx.org."""
    m = re.fullmatch(r"CC-(BY(?:-NC)?(?:-SA|-ND)?)-(\d\.\d)", spdx)
    if m:
        url = f"https://creativecommons.org/licenses/{m[1].lower()}/{m[2]}/"
    elif spdx == "CC0-1.0":
        url = "https://creativecommons.org/publicdomain/zero/1.0/"
    else:
        url = f"https://spdx.org/licenses/{spdx}.html"
    return {
        "name": spdx,
        "url": url,
        "description": f"The licence of the likelihood archive these numbers come from ({spdx}).",
    }


def location_text(archive_name: str) -> str:
    """The location field of every table: where the numbers come from."""
    return f"Refit of the likelihood archive {archive_name} with wmass-archive"


@dataclass
class ExportContext:
    """The inputs of every table (``result`` holds the fit, its model and the studies)."""

    result: RefitResult
    meta: ArchiveMetadata
    archive_path: Path
    sha256: str
    bands: YieldBands | None = None
    cmenergy_gev: float = 13000.0
    #: the fit with mW+ and mW- as POIs (``--poi mw-charge``), None without a charge split
    split: RefitResult | None = None
    labeler: NuisanceLabeler = field(init=False)

    def __post_init__(self) -> None:
        self.labeler = NuisanceLabeler(eta_edges_of(self.meta.channels))

    # ------------------------------------------------------------------ statements
    @property
    def blinded(self) -> bool:
        return self.result.blinded

    @property
    def synthetic(self) -> bool:
        return self.result.synthetic

    @property
    def reference_mev(self) -> float | None:
        """The archive's reference mW (the mass POI's ``central``), MeV."""
        return next(
            (p.reference_mev for p in self.result.pois.values() if p.reference_mev is not None),
            None,
        )

    def status(self) -> str:
        """The sentence every description ends with: SYNTHETIC and BLINDED statements, or that
        the values are unblinded."""
        parts = []
        if self.synthetic:
            parts.append(
                "SYNTHETIC: the archive holds pseudo-data from a simulation, not a measurement."
            )
        if self.blinded:
            parts.append(
                f"BLINDED: mW values are given as mW - {self.reference_mev:.1f} MeV plus a hidden "
                "offset (the archive's blinding offset); differences between fits of the "
                "archive do not depend on it."
            )
        elif any(p.kind == "mass" for p in self.result.pois.values()):
            parts.append("Unblinded values.")
        return " ".join(parts)

    def mass_header(self, what: str = "$m_{W}$") -> str:
        """Header of a shifted mW column: '$m_{W}$ - 80360.0 MeV (blinded)'."""
        ref = self.reference_mev
        head = what if ref is None else f"{what} - {ref:.1f} MeV"
        return head + (" (BLINDED, + hidden offset)" if self.blinded else "")

    # ------------------------------------------------------------------ table metadata
    def keywords(self, observables: tuple[str, ...], phrases: tuple[str, ...] = ()) -> dict:
        """HEPData keywords of a table: observables (left out when none), the reaction,
        phrases, sqrt(s) in GeV."""
        out = {"observables": list(observables)} if observables else {}
        out["reactions"] = [REACTION]
        out["phrases"] = list(dict.fromkeys([*PHRASES, *phrases]))
        out["cmenergies"] = [self.cmenergy_gev]
        return out

    def license(self) -> dict[str, str]:
        """The archive's licence as HEPData licence fields."""
        return license_info(self.meta.license)

    def location(self) -> str:
        """The table's location field (:func:`location_text`)."""
        return location_text(self.archive_path.name)

    def qualifiers(self) -> list[tuple[str, Any, str]]:
        """(name, value, units) qualifiers of every dependent variable."""
        r = self.result
        out: list[tuple[str, Any, str]] = [
            ("SQRT(S)", self.cmenergy_gev, "GeV"),
            ("Likelihood archive", self.meta.title, ""),
        ]
        if self.meta.luminosity is not None:
            out.append(("LUMINOSITY", round(self.meta.luminosity.value / 1000.0, 6), "fb$^{-1}$"))
        out.append(("Data", "pseudo-data (SYNTHETIC)" if self.synthetic else "observed", ""))
        if r.pdf is not None:
            out.append(("PDF set", f"{r.pdf.name} (uncertainty x{r.pdf.scale:g})", ""))
        if self.blinded:
            out.append(("Blinding", "mW shifted by a hidden offset", ""))
        return out
