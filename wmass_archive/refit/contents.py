"""What an archive holds, for a theorist's script: PDF sets, nuisance groups, the reco binning
and the generator binning of the theory grid (metadata only; no template is read).

    >>> from wmass_archive.refit import archive_contents
    >>> c = archive_contents("likelihoods/default.h5")
    >>> c.pdf_sets[0].name, c.nuisance_groups["muonCalibration"], c.theory_axes[2].edges
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from ..archive.axes import Axis
from ..archive.models import POI, PDFSet
from ..archive.reader import Archive, open_archive


class AxisInfo(BaseModel):
    """A named axis: its size and edges (continuous) or categories."""

    model_config = ConfigDict(extra="forbid")

    name: str
    size: int
    unit: str = ""
    label: str = ""
    edges: list[float] | None = None
    categories: list[int | str] | None = None

    @classmethod
    def of(cls, ax: Axis) -> AxisInfo:
        return cls(
            name=ax.name,
            size=ax.size,
            unit=ax.unit or "",
            label=ax.label or "",
            edges=[float(e) for e in ax.bin_edges()] if ax.is_continuous else None,
            categories=None if ax.is_continuous else list(ax.categories or []),
        )


class ArchiveContents(BaseModel):
    """The content of an archive that a refit can change or report on."""

    model_config = ConfigDict(extra="forbid")

    path: str
    title: str
    synthetic: bool
    processes: list[str]
    signal: list[str] = Field(description="folded processes (their yield comes from the grid)")
    pois: list[POI]
    binning: dict[str, list[AxisInfo]] = Field(description="channel -> reco axes (C order)")
    n_bins: int
    nuisance_groups: dict[str, int] = Field(
        description="group -> number of nuisances (the nominal PDF set's included)"
    )
    pdf_sets: list[PDFSet]
    nominal_pdf: str | None
    theory_axes: list[AxisInfo] = Field(description="generator axes of the theory grid")
    n_gen: int
    theory_variations: list[str]

    def text(self) -> str:
        """A few lines for a terminal."""
        lines = [f"{self.title}{' (SYNTHETIC)' if self.synthetic else ''}: {self.path}"]
        for ch, axes in self.binning.items():
            lines.append(f"  channel {ch}: " + " x ".join(f"{a.name}[{a.size}]" for a in axes))
        lines.append(
            "  generator axes: " + " x ".join(f"{a.name}[{a.size}]" for a in self.theory_axes)
        )
        for s in self.pdf_sets:
            lines.append(
                f"  PDF set {s.name} ({s.lhapdf_name}): {s.error_type}, {s.n_nuisances} "
                f"nuisances, scale x{s.scale:g}"
                + (" [nominal]" if s.name == self.nominal_pdf else "")
            )
        lines.append("  groups: " + ", ".join(f"{g} {n}" for g, n in self.nuisance_groups.items()))
        return "\n".join(lines)


def archive_contents(archive: str | os.PathLike[str] | Archive) -> ArchiveContents:
    """The :class:`ArchiveContents` of an archive (a path or an open :class:`Archive`)."""
    if not isinstance(archive, Archive):
        with open_archive(archive) as a:
            return archive_contents(a)
    m = archive.metadata
    groups = m.group_counts()
    th = m.theory
    if th is not None:
        nominal = th.pdf_set(th.nominal_pdf)
        if nominal.n_nuisances:
            groups[nominal.group] = groups.get(nominal.group, 0) + nominal.n_nuisances
    return ArchiveContents(
        path=str(archive.path),
        title=m.title,
        synthetic=m.synthetic,
        processes=[p.name for p in m.processes],
        signal=[p.name for p in m.processes if p.folded],
        pois=list(m.pois),
        binning={c.name: [AxisInfo.of(a) for a in c.axes] for c in m.channels},
        n_bins=m.n_bins,
        nuisance_groups=groups,
        pdf_sets=list(th.pdf_sets) if th else [],
        nominal_pdf=th.nominal_pdf if th else None,
        theory_axes=[AxisInfo.of(a) for a in th.generator_axes] if th else [],
        n_gen=th.n_gen if th else 0,
        theory_variations=[v.name for v in th.variations] if th else [],
    )
