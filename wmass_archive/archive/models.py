"""The archive's metadata: pydantic v2 models, embedded in the file as one JSON document.

Everything that is not a large array lives here: channels and their axes, processes,
nuisance parameters and their groups, parameters of interest, the theory (PDF sets, theory
variations, generator binning), provenance, citation, licence, and the manifest of datasets
with their shapes, dtypes and SHA-256 checksums. Nothing is pickled; the JSON Schema of
:class:`ArchiveMetadata` is published in ``docs/schema/``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .axes import Axis

FORMAT_NAME = "wmass-archive"
#: the newest format this package reads and writes (it reads 1.0.x, 1.1.x and 1.2.x)
FORMAT_VERSION = "1.2.0"
#: the version the writer gives an archive that uses no content added in 1.1
FORMAT_VERSION_1_0 = "1.0.0"
#: the version the writer gives an archive that uses content of 1.1 but none of 1.2
FORMAT_VERSION_1_1 = "1.1.0"
#: kinds of extended modifier (format 1.1, docs/format.md section 15), in storage order
MODIFIER_KINDS = ("additive", "multiplicative", "linear")

#: names used as HDF5 group names (channels, processes, PDF sets): no '/', no '.' first
SAFE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,199}$"
#: names of nuisances and POIs: printable, no whitespace
PARAM_NAME = r"^[^\s/]{1,300}$"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_bounds(bounds: tuple[float, float] | None, what: str) -> None:
    """Bounds (format 1.2) are a finite (low, high) pair with low < high."""
    if bounds is not None and not bounds[0] < bounds[1]:
        raise ValueError(f"{what}: bounds [{bounds[0]:g}, {bounds[1]:g}] need low < high")


#: format 1.2: a parameter's allowed range, (low, high), finite, low < high
Bounds = tuple[
    Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]
]


# --------------------------------------------------------------------------- provenance
class InputRecord(_Model):
    """One input of the producer (a PDF set, a sample, a configuration file)."""

    name: str
    location: str = Field(default="", description="path, URL, DOI or dataset name")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    description: str = ""


class Provenance(_Model):
    """Who made the archive, from what, and how to make it again."""

    producer: str = Field(min_length=1, description="name of the producing code")
    producer_version: str = Field(min_length=1)
    git_commit: str | None = Field(default=None, description="commit of the producing code")
    created: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc),
        description="creation time, UTC, ISO 8601",
    )
    command: str | None = Field(default=None, description="command line that produced it")
    inputs: list[InputRecord] = Field(default_factory=list)
    seeds: dict[str, int] = Field(default_factory=dict, description="random seeds by purpose")
    software: dict[str, str] = Field(default_factory=dict, description="package -> version")
    notes: str = ""


class Citation(_Model):
    """What to cite when using the archive."""

    title: str
    authors: list[str] = Field(default_factory=list)
    doi: str | None = None
    arxiv: str | None = None
    url: str | None = None
    bibtex: str | None = None
    note: str = ""


# --------------------------------------------------------------------------- model content
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


# --------------------------------------------------------------------------- theory
class PDFSet(_Model):
    """A PDF set whose theory grid is stored member by member."""

    name: str = Field(pattern=SAFE_NAME, description="short name used in the archive")
    lhapdf_name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    error_type: Literal["hessian", "symmhessian", "replicas"]
    confidence_level: float = Field(
        default=68.268949,
        gt=0.0,
        lt=100.0,
        description="CL of the eigenvectors in percent (CT: 90)",
    )
    scale: float = Field(
        default=1.0,
        gt=0.0,
        allow_inf_nan=False,
        description="the analysis' scale factor of the PDF uncertainty",
    )
    n_members: int = Field(ge=1, description="members stored, member 0 the central/average")
    n_eigenvectors: int = Field(default=0, ge=0, description="replicas only: eigenvectors stored")
    variance_kept: float | None = Field(
        default=None, gt=0.0, le=1.0, description="replicas only: fraction of variance held"
    )
    interpolation: Literal["additive", "multiplicative"] = "additive"
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> PDFSet:
        n = self.n_members
        if self.error_type == "hessian" and n % 2 != 1:
            raise ValueError(f"hessian PDF set '{self.name}' needs 1 + 2k members, has {n}")
        if self.error_type == "replicas":
            if n > 1 and self.n_eigenvectors == 0:
                raise ValueError(f"replica set '{self.name}' needs its eigenvectors stored")
            if self.n_eigenvectors > 0 and self.variance_kept is None:
                raise ValueError(f"replica set '{self.name}': state variance_kept")
        elif self.n_eigenvectors or self.variance_kept is not None:
            raise ValueError(f"PDF set '{self.name}': eigenvectors are for replica sets only")
        return self

    @property
    def n_nuisances(self) -> int:
        """Nuisance parameters the set brings to a fit."""
        if self.error_type == "hessian":
            return (self.n_members - 1) // 2
        if self.error_type == "symmhessian":
            return self.n_members - 1
        return self.n_eigenvectors

    @property
    def group(self) -> str:
        """Group name of its nuisances, CMS-style: ``pdf<NAME>``."""
        return f"pdf{self.name}"

    @property
    def nuisance_names(self) -> list[str]:
        """Names of the nuisances the set brings to a fit: ``pdf<NAME>EV<k>``, k = 1..n, in
        the order of the eigenvector pairs (hessian), members 1..n (symmhessian) or stored
        eigenvectors (replicas)."""
        return [f"pdf{self.name}EV{k}" for k in range(1, self.n_nuisances + 1)]

    @property
    def lookup_keys(self) -> set[str]:
        """The set's names as :func:`normalize_pdf_name` makes them, for forgiving lookup."""
        return {normalize_pdf_name(x) for x in (self.name, self.lhapdf_name, *self.aliases)}


class TheoryVariation(_Model):
    """A variation of the theory grid acting before the folding, driven by the nuisance of
    the same name; stored as up/down grids computed with the nominal theory."""

    name: str = Field(pattern=PARAM_NAME)
    interpolation: Literal["additive", "multiplicative"] = "additive"
    description: str = ""


class Theory(_Model):
    """The generator-level binning and the theory grids sigma[g] (in pb per bin)."""

    generator_axes: list[Axis] = Field(min_length=1)
    nominal_pdf: str
    pdf_sets: list[PDFSet] = Field(min_length=1)
    variations: list[TheoryVariation] = Field(default_factory=list)
    sigma_unit: Literal["pb"] = "pb"
    description: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.generator_axes)

    @property
    def n_gen(self) -> int:
        n = 1
        for a in self.generator_axes:
            n *= a.size
        return n

    def pdf_set(self, name: str) -> PDFSet:
        for s in self.pdf_sets:
            if s.name == name:
                return s
        raise KeyError(name)

    @model_validator(mode="after")
    def _check(self) -> Theory:
        _require_unique([a.name for a in self.generator_axes], "generator axis names")
        _require_unique([s.name for s in self.pdf_sets], "PDF set names")
        names = [n for s in self.pdf_sets for n in s.lookup_keys]
        _require_unique(
            names,
            "PDF set names, LHAPDF names and aliases (compared ignoring case, "
            "spaces, '.', '-' and '_')",
        )
        if self.nominal_pdf not in {s.name for s in self.pdf_sets}:
            raise ValueError(f"nominal_pdf '{self.nominal_pdf}' is not among the PDF sets")
        _require_unique([v.name for v in self.variations], "theory variation names")
        return self


# --------------------------------------------------------------------------- manifest
class DatasetRecord(_Model):
    """What the writer put in one dataset: its shape, dtype (numpy string, little-endian) and
    the SHA-256 of its C-ordered bytes."""

    shape: list[Annotated[int, Field(ge=0)]]
    dtype: Literal["<f8", "<f4", "<i4", "<i8", "|u1"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------- the archive
class ArchiveMetadata(_Model):
    """Everything in an archive except its arrays."""

    format: Literal["wmass-archive"] = FORMAT_NAME
    format_version: str = Field(
        default=FORMAT_VERSION_1_0,
        description="semantic version of the format; when not given: 1.1.0 if the document "
        "uses content of format 1.1, else 1.0.0",
    )
    title: str = Field(min_length=1)
    description: str = ""
    synthetic: bool = Field(description="True when the numbers do not come from real data")
    license: str = Field(default="CC-BY-4.0", description="SPDX identifier")
    citation: Citation
    provenance: Provenance
    luminosity: Luminosity | None = None
    channels: list[Channel] = Field(min_length=1)
    processes: list[Process] = Field(min_length=1)
    groups: list[Group] = Field(default_factory=list)
    pois: list[POI] = Field(default_factory=list)
    nuisances: list[Nuisance] = Field(default_factory=list)
    theory: Theory | None = None
    mc_stat: Literal["gamma", "normal", "none", "combine"] | None = Field(
        default=None,
        description="format 1.1: the Barlow-Beeston-lite constraint of the published "
        "likelihood (null: the fitter's default, gamma); format 1.2 adds 'combine' (CMS "
        "Combine's autoMCStats lite parameter, its width following the processes' "
        "normalisations)",
    )
    sample_yields: Literal["clipped", "signed"] | None = Field(
        default=None,
        description="format 1.2: 'signed' lets the yield of a plain process in a bin be "
        "negative (stored nominal and after its modifiers), as pyhf allows: only the bin's total "
        "must be positive; null or 'clipped': each process's yield is clipped at 0 (format 1.1)",
    )
    datasets: dict[str, DatasetRecord] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "format_version" not in data:
            version = _raw_version(data)
            data = {**data, "format_version": version}
        return data

    @field_validator("format_version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SEMVER.match(v):
            raise ValueError(f"format_version '{v}' is not MAJOR.MINOR.PATCH")
        return v

    @model_validator(mode="after")
    def _cross_references(self) -> ArchiveMetadata:
        used = self.v11_features
        if self.major_minor == (1, 0) and used:
            raise ValueError(
                f"format_version {self.format_version} does not allow {used[0]} "
                f"(content of format 1.1); the archive must declare format 1.1.0"
            )
        used = self.v12_features
        if self.major_minor < (1, 2) and used:
            raise ValueError(
                f"format_version {self.format_version} does not allow {used[0]} "
                f"(content of format 1.2); the archive must declare format 1.2.0"
            )
        _require_unique([c.name for c in self.channels], "channel names")
        _require_unique([p.name for p in self.processes], "process names")
        _require_unique([g.name for g in self.groups], "group names")
        _require_unique(self.parameter_names, "parameter names (POIs and nuisances)")
        procs = {p.name: p for p in self.processes}
        chans = {c.name: c for c in self.channels}
        groups = {g.name for g in self.groups}
        for c in self.channels:
            for p in c.processes:
                if p not in procs:
                    raise ValueError(f"channel '{c.name}' lists unknown process '{p}'")
        for n in self.nuisances:
            for g in n.groups:
                if g not in groups:
                    raise ValueError(f"nuisance '{n.name}' is in unknown group '{g}'")
        mass_acting: dict[str, str] = {}
        for poi in self.pois:
            for sel in poi.acts_on:
                if sel.process not in procs:
                    raise ValueError(f"POI '{poi.name}' acts on unknown process '{sel.process}'")
                for ch in sel.channels or []:
                    if ch not in chans or sel.process not in chans[ch].processes:
                        raise ValueError(
                            f"POI '{poi.name}': process '{sel.process}' has no "
                            f"yield in channel '{ch}'"
                        )
                if poi.kind == "mass" and procs[sel.process].folded:
                    if sel.channels is not None:
                        raise ValueError(
                            f"POI '{poi.name}': a mass POI acts on a folded process "
                            f"'{sel.process}' in all its channels"
                        )
                    if sel.process in mass_acting:
                        raise ValueError(
                            f"folded process '{sel.process}' is driven by two mass "
                            f"POIs ('{mass_acting[sel.process]}', '{poi.name}')"
                        )
                    mass_acting[sel.process] = poi.name
        if any(p.folded for p in self.processes):
            if self.theory is None:
                raise ValueError("folded processes need a theory section (generator axes, grids)")
            if self.luminosity is None:
                raise ValueError("folded processes need the luminosity to fold with")
        if self.theory is not None:
            nuis = {n.name for n in self.nuisances}
            for v in self.theory.variations:
                if v.name not in nuis:
                    raise ValueError(f"theory variation '{v.name}' has no nuisance of that name")
        return self

    # -- derived views --------------------------------------------------------------------
    @property
    def parameter_names(self) -> list[str]:
        """All parameters in the order the systematics tables index them: POIs, then
        nuisances."""
        return [p.name for p in self.pois] + [n.name for n in self.nuisances]

    @property
    def n_bins(self) -> int:
        return sum(c.n_bins for c in self.channels)

    @property
    def v11_features(self) -> list[str]:
        """The content of format 1.1 this metadata uses, one phrase each (empty: a 1.0
        archive)."""
        out = [f"the modifiers of channel '{c.name}'" for c in self.channels if c.modifiers] + [
            f"the poisson constraint of nuisance '{n.name}'"
            for n in self.nuisances
            if n.constraint == "poisson" or n.tau is not None
        ]
        if self.mc_stat is not None:
            out.append("the field mc_stat")
        return out

    @property
    def v12_features(self) -> list[str]:
        """The content of format 1.2 this metadata uses, one phrase each."""
        out = [f"the bounds of '{p.name}'" for p in [*self.pois, *self.nuisances] if p.bounds]
        out += [f"the parameter POI '{p.name}'" for p in self.pois if p.kind == "parameter"]
        if self.sample_yields is not None:
            out.append("the field sample_yields")
        if self.mc_stat == "combine":
            out.append("mc_stat 'combine'")
        return out

    @property
    def major_minor(self) -> tuple[int, int]:
        m = SEMVER.match(self.format_version)
        assert m is not None
        return int(m.group(1)), int(m.group(2))

    @cached_property
    def _index(self) -> dict[str, dict]:
        return {
            "channel": {c.name: c for c in self.channels},
            "process": {p.name: p for p in self.processes},
            "process_index": {p.name: i for i, p in enumerate(self.processes)},
            "parameter_index": {n: i for i, n in enumerate(self.parameter_names)},
            "nuisance": {n.name: n for n in self.nuisances},
        }

    def channel(self, name: str) -> Channel:
        return _lookup(self._index["channel"], name, "channel")

    def process(self, name: str) -> Process:
        return _lookup(self._index["process"], name, "process")

    def process_index(self, name: str) -> int:
        return _lookup(self._index["process_index"], name, "process")

    def parameter_index(self, name: str) -> int:
        return _lookup(self._index["parameter_index"], name, "parameter")

    def nuisance(self, name: str) -> Nuisance:
        return _lookup(self._index["nuisance"], name, "nuisance")

    def mass_poi_of(self, process: str) -> POI | None:
        """The mass POI driving a folded process's response, if any."""
        for poi in self.pois:
            if poi.kind == "mass" and any(s.process == process for s in poi.acts_on):
                return poi
        return None

    def mass_points_of(self, process: str) -> list[float]:
        poi = self.mass_poi_of(process)
        return list(poi.mass_points) if poi is not None else [0.0]

    def variation_problem(self, parameter: str, process: str, channel: str) -> str | None:
        """Why ``parameter`` may not carry logk entries for ``process`` in ``channel``, or None
        when it may: nuisances always may; a POI only as a mass POI acting on a plain
        (unfolded) process in that channel (its variation at theta = +-1)."""
        if process not in self.channel(channel).processes:
            return f"process '{process}' has no yield in channel '{channel}'"
        poi = next((x for x in self.pois if x.name == parameter), None)
        if poi is None:
            return (
                None if parameter in self._index["nuisance"] else f"unknown parameter '{parameter}'"
            )
        if poi.kind == "parameter":
            return (
                f"POI '{parameter}' acts on plain processes only"
                if self.process(process).folded
                else None
            )
        if (
            poi.kind != "mass"
            or self.process(process).folded
            or not any(
                s.process == process and (s.channels is None or channel in s.channels)
                for s in poi.acts_on
            )
        ):
            return (
                f"POI '{parameter}' can carry variations only as a mass POI acting on a "
                f"plain process in this channel"
            )
        return None

    def modifier_problem(self, parameter: str, process: str, channel: str) -> str | None:
        """Why ``parameter`` may not drive an extended modifier (format 1.1) of ``process`` in
        ``channel``, or None when it may: a nuisance on a plain process with a yield there."""
        if process not in self.channel(channel).processes:
            return f"process '{process}' has no yield in channel '{channel}'"
        if self.process(process).folded:
            return f"process '{process}' is folded (extended modifiers act on plain processes)"
        if parameter in self._index["nuisance"]:
            return None
        poi = next((x for x in self.pois if x.name == parameter), None)
        if poi is not None and poi.kind == "parameter":
            return None
        if poi is not None:
            return (
                f"'{parameter}' is a POI of kind {poi.kind} (extended modifiers are driven by "
                "nuisances and POIs of kind parameter)"
            )
        return f"unknown parameter '{parameter}'"

    def to_json_bytes(self) -> bytes:
        """The document as compact UTF-8 JSON, every field written; a 1.0 document leaves out
        the fields added in 1.1 (they hold their defaults), so that 1.0 readers read it."""
        exclude: dict | None = None
        if self.major_minor < (1, 2):
            exclude = {
                "sample_yields": True,
                "pois": {"__all__": {"bounds"}},
                "nuisances": {"__all__": {"bounds"}},
            }
        if self.major_minor == (1, 0):
            exclude = {
                "mc_stat": True,
                "sample_yields": True,
                "channels": {"__all__": {"modifiers"}},
                "nuisances": {"__all__": {"tau", "bounds"}},
                "pois": {"__all__": {"bounds"}},
            }
        return self.model_dump_json(exclude=exclude).encode("utf-8")

    def group_counts(self) -> dict[str, int]:
        """Number of stored nuisances in each group (PDF nuisances not included)."""
        counts = {g.name: 0 for g in self.groups}
        for n in self.nuisances:
            for g in n.groups:
                counts[g] += 1
        return counts


def _raw_version(data: dict) -> str:
    """The oldest format version that can hold an unvalidated metadata document (dicts or
    models): used to pick the default format_version; anything malformed counts as 1.0."""

    def get(obj: Any, key: str) -> Any:
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    try:
        params = [*(data.get("pois") or []), *(data.get("nuisances") or [])]
        if (
            data.get("sample_yields") is not None
            or data.get("mc_stat") == "combine"
            or any(get(p, "bounds") is not None for p in params)
            or any(get(p, "kind") == "parameter" for p in data.get("pois") or [])
        ):
            return FORMAT_VERSION
        if _raw_uses_v11(data, get):
            return FORMAT_VERSION_1_1
    except (TypeError, AttributeError):
        pass
    return FORMAT_VERSION_1_0


def _raw_uses_v11(data: dict, get) -> bool:
    """Whether an unvalidated metadata document uses content of format 1.1."""
    try:
        return (
            data.get("mc_stat") is not None
            or any(get(c, "modifiers") for c in data.get("channels") or [])
            or any(
                get(n, "constraint") == "poisson" or get(n, "tau") is not None
                for n in data.get("nuisances") or []
            )
        )
    except (TypeError, AttributeError):
        return False


def normalize_pdf_name(name: str) -> str:
    """A PDF set name compared loosely: lower case, without ' ', '.', '-' and '_' (so
    'NNPDF4.0', 'nnpdf40' and 'NNPDF40' are the same)."""
    return "".join(ch for ch in name.lower() if ch not in " .-_")


def _require_unique(names: list, what: str) -> None:
    seen: set = set()
    dup = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dup:
        raise ValueError(f"duplicate {what}: {', '.join(map(str, dup[:5]))}")


def _lookup(table: dict, name: str, what: str):
    try:
        return table[name]
    except KeyError:
        known = ", ".join(list(table)[:10])
        raise KeyError(
            f"no {what} named '{name}' (known: {known}{', ...' if len(table) > 10 else ''})"
        ) from None


def validation_message(exc: ValidationError, limit: int = 3) -> str:
    """A pydantic validation error as one line: ``field.path: message; ...``."""
    errs = exc.errors()
    parts = []
    for e in errs[:limit]:
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc + ': ' if loc else ''}{e.get('msg', '')}")
    more = f" (and {len(errs) - limit} more)" if len(errs) > limit else ""
    return "; ".join(parts) + more
