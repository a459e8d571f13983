"""The likelihood's content in the archive's metadata: channels, processes, nuisance groups,
nuisance parameters, parameters of interest and the luminosity (docs/format.md section 3)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .axes import Axis
from .models_base import PARAM_NAME, SAFE_NAME, _Model, _require_unique


def _check_bounds(bounds: tuple[float, float] | None, what: str) -> None:
    """Bounds (format 1.2) are a finite (low, high) pair with low < high."""
    if bounds is not None and not bounds[0] < bounds[1]:
        raise ValueError(f"{what}: bounds [{bounds[0]:g}, {bounds[1]:g}] need low < high")


#: format 1.2: a parameter's allowed range, (low, high), finite, low < high
Bounds = tuple[
    Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]
]


class Channel(_Model):
    """A set of reconstructed bins with observed data: the product of its named axes,
    flattened in C (row-major) order, last axis fastest."""

    name: str = Field(pattern=SAFE_NAME)
    axes: list[Axis] = Field(min_length=1)
    processes: list[str] = Field(min_length=1, description="processes with yields here")
    label: str = ""
    description: str = ""
    modifiers: list[Literal["additive", "multiplicative", "linear"]] = Field(
        default_factory=list,
        description="format 1.1: kinds of extended modifier stored for this channel",
    )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(ax.size for ax in self.axes)

    @property
    def n_bins(self) -> int:
        n = 1
        for ax in self.axes:
            n *= ax.size
        return n

    @model_validator(mode="after")
    def _unique(self) -> Channel:
        _require_unique([a.name for a in self.axes], f"axis names of channel '{self.name}'")
        _require_unique(self.processes, f"processes of channel '{self.name}'")
        _require_unique(self.modifiers, f"modifier kinds of channel '{self.name}'")
        return self


class Process(_Model):
    """A physics process. A *folded* process gets its expected yield from a response tensor
    and the theory grid (nu = lumi * R @ sigma); a plain one from its stored nominal yield."""

    name: str = Field(pattern=SAFE_NAME)
    label: str = ""
    kind: Literal["signal", "background"] = "background"
    folded: bool = False
    description: str = ""


class Group(_Model):
    """A named group of nuisances (impacts are quoted per group)."""

    name: str = Field(pattern=SAFE_NAME)
    description: str = ""


class Nuisance(_Model):
    """A nuisance parameter theta. With a gaussian constraint the likelihood has
    1/2 theta^2; its variations act as theta_eff = prior_scale * theta. A poisson constraint
    (format 1.1) stands for gamma = 1 + theta / sqrt(tau) with the term
    tau (gamma - 1 - ln gamma)."""

    name: str = Field(pattern=PARAM_NAME)
    groups: list[str] = Field(default_factory=list)
    constraint: Literal["gaussian", "none", "poisson"] = "gaussian"
    prior_scale: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    label: str = ""
    tau: float | None = Field(
        default=None,
        gt=0.0,
        allow_inf_nan=False,
        description="format 1.1: the poisson constraint's tau (required iff poisson)",
    )
    bounds: Bounds | None = Field(
        default=None,
        description="format 1.2: the range of theta allowed in fits (low, high), e.g. pyhf's "
        "parameter bounds; null: unbounded",
    )

    @field_validator("groups")
    @classmethod
    def _groups_unique(cls, v: list[str]) -> list[str]:
        _require_unique(v, "groups of a nuisance")
        return v

    @model_validator(mode="after")
    def _poisson(self) -> Nuisance:
        if self.constraint == "poisson":
            if self.tau is None:
                raise ValueError(f"nuisance '{self.name}': a poisson constraint needs tau")
            if self.prior_scale != 1.0:
                raise ValueError(
                    f"nuisance '{self.name}': a poisson constraint needs prior_scale 1"
                )
        elif self.tau is not None:
            raise ValueError(f"nuisance '{self.name}': tau is for a poisson constraint only")
        _check_bounds(self.bounds, f"nuisance '{self.name}'")
        return self


class ProcessSelection(_Model):
    """Processes a POI acts on, in the listed channels (all channels holding it when None)."""

    process: str
    channels: list[str] | None = None


class POI(_Model):
    """A parameter of interest, unconstrained. Its physical value is
    ``central + scale * theta`` in ``unit``; fit output shows ``+ blinding_offset`` until
    unblinded.

    * ``kind="mass"``: acts on folded processes through their response tensors stored at the
      parameter values ``mass_points`` (e.g. [-1, 0, 1] with scale 100 MeV), and on plain
      processes through log-normal variations stored in the systematics tables under its name.
    * ``kind="rate"``: multiplies the yields of the processes it acts on by its physical value.
    * ``kind="parameter"`` (format 1.2): an unconstrained parameter that acts like a nuisance,
      through the log-normal variations and extended modifiers stored under its name (e.g. a
      rabbit tensor's nuisance of interest); ``acts_on`` may be empty.

    ``bounds`` (format 1.2): the allowed range of the *physical* value in fits (e.g. a signal
    strength in [0, 10]); null: unbounded.
    """

    name: str = Field(pattern=PARAM_NAME)
    kind: Literal["mass", "rate", "parameter"]
    unit: str = ""
    central: float = Field(allow_inf_nan=False, description="physical value at theta = 0")
    scale: float = Field(gt=0.0, allow_inf_nan=False, description="physical units per unit theta")
    acts_on: list[ProcessSelection] = Field(default_factory=list)
    mass_points: list[float] = Field(
        default_factory=lambda: [0.0], description="theta values of the stored responses"
    )
    blinding_offset: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="hidden shift added to reported values, in unit",
    )
    label: str = ""
    bounds: Bounds | None = Field(
        default=None, description="format 1.2: allowed range of the physical value in fits"
    )

    @model_validator(mode="after")
    def _check(self) -> POI:
        pts = self.mass_points
        if any(b <= a for a, b in zip(pts, pts[1:], strict=False)):
            raise ValueError(f"POI '{self.name}': mass_points must be strictly increasing")
        if 0.0 not in pts:
            raise ValueError(f"POI '{self.name}': mass_points must contain 0 (the nominal)")
        if self.kind != "mass" and pts != [0.0]:
            raise ValueError(f"POI '{self.name}': a {self.kind} POI has no mass points")
        if self.kind != "parameter" and not self.acts_on:
            raise ValueError(f"POI '{self.name}': a {self.kind} POI must act on a process")
        _check_bounds(self.bounds, f"POI '{self.name}'")
        return self

    def theta_bounds(self) -> tuple[float, float] | None:
        """The bounds in theta (``(physical - central) / scale``), or None."""
        if self.bounds is None:
            return None
        lo, hi = self.bounds
        return (lo - self.central) / self.scale, (hi - self.central) / self.scale

    @property
    def nominal_point(self) -> int:
        """Index of theta = 0 in ``mass_points``."""
        return self.mass_points.index(0.0)


class Luminosity(_Model):
    """Integrated luminosity used to fold: nu = lumi * R @ sigma (sigma in pb)."""

    value: float = Field(gt=0.0, allow_inf_nan=False)
    unit: Literal["pb^-1"] = "pb^-1"
