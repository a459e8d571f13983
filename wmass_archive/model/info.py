"""Pydantic descriptions of a built model: its parameters, POIs and settings (JSON-ready)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParameterInfo(_Model):
    """One fit parameter theta (POIs first, then the archive's nuisances, then the PDF set's)."""

    name: str
    kind: Literal["poi", "nuisance", "pdf"]
    constraint: Literal["gaussian", "none", "poisson"] = Field(
        description="gaussian: the likelihood has 1/2 (theta - theta0)^2; none: unconstrained; "
        "poisson (format 1.1): tau (gamma - gamma0 - gamma0 ln(gamma/gamma0)), "
        "gamma = 1 + theta / sqrt(tau)"
    )
    prior_scale: float = 1.0
    groups: list[str] = Field(default_factory=list)
    theory: bool = Field(default=False, description="acts on the theory grid before folding")
    bounds: tuple[float, float] | None = Field(
        default=None, description="allowed range of theta in fits (low, high); None: unbounded"
    )


class POIInfo(_Model):
    """A parameter of interest: physical value = central + scale * theta (+ blinding offset)."""

    name: str
    kind: Literal["mass", "rate", "parameter"]
    unit: str = ""
    central: float
    scale: float = Field(description="physical unit per unit theta (e.g. MeV per unit theta)")
    blinding_offset: float = 0.0
    split_of: str | None = Field(default=None, description="the archive POI this one splits")
    n_bins: int | None = Field(default=None, description="bins the split POI acts on")
    redefined_from: str | None = Field(
        default=None,
        description="'nuisance' when a nuisance of the archive was made a POI at build time "
        "(like Combine's --redefineSignalPOIs); it keeps its constraint",
    )

    def physical(self, theta: float) -> float:
        """The physical value (with the blinding offset) at theta."""
        return self.central + self.scale * theta + self.blinding_offset

    def theta_of(self, physical: float) -> float:
        """theta at a physical value (with the blinding offset)."""
        return (physical - self.central - self.blinding_offset) / self.scale


class ModelInfo(_Model):
    """What a model was built from and how."""

    archive: str
    title: str
    synthetic: bool
    pdf_set: str | None = None
    theory_grid: Literal["archive", "user", "none"] = "archive"
    poi_definition: str = "mw"
    bb: Literal["gamma", "normal", "none", "combine"] = "gamma"
    n_bins: int
    channels: list[str]
    processes: list[str]
    parameters: list[ParameterInfo]
    pois: list[POIInfo]
    structure: str = ""
