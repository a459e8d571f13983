"""The archive's metadata: pydantic v2 models, embedded in the file as one JSON document.

Everything that is not a large array lives here: channels and their axes, processes,
nuisance parameters and their groups, parameters of interest, the theory (PDF sets, theory
variations, generator binning), provenance, citation, licence, and the manifest of datasets
with their shapes, dtypes and SHA-256 checksums. Nothing is pickled; the JSON Schema of
:class:`ArchiveMetadata` is published in ``docs/schema/``.

This module holds the document itself (:class:`ArchiveMetadata`, its format versions, the
dataset manifest) and is the one place to import every metadata model from; the models of its
parts live by concept in ``models_base`` (the base model, name patterns, shared helpers),
``models_provenance`` (provenance, citation), ``models_content`` (channels, processes,
groups, nuisances, POIs, luminosity) and ``models_theory`` (generator binning, PDF sets,
theory variations).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

# the models of the document's parts, importable from here as before (the façade of the
# metadata models: ``from wmass_archive.archive.models import Channel``)
from .models_base import (  # noqa: F401
    PARAM_NAME,
    SAFE_NAME,
    _Model,
    _require_unique,
    validation_message,
)
from .models_content import (  # noqa: F401
    POI,
    Bounds,
    Channel,
    Group,
    Luminosity,
    Nuisance,
    Process,
    ProcessSelection,
)
from .models_provenance import Citation, InputRecord, Provenance  # noqa: F401
from .models_theory import (  # noqa: F401
    PDFSet,
    Theory,
    TheoryParametersRecord,
    TheoryVariation,
    normalize_pdf_name,
)

FORMAT_NAME = "wmass-archive"
#: the newest format this package reads and writes (it reads 1.0.x to 1.3.x)
FORMAT_VERSION = "1.3.0"
#: the version the writer gives an archive that uses no content added in 1.1
FORMAT_VERSION_1_0 = "1.0.0"
#: the version the writer gives an archive that uses content of 1.1 but none of 1.2
FORMAT_VERSION_1_1 = "1.1.0"
#: the version the writer gives an archive that uses content of 1.2 but none of 1.3
FORMAT_VERSION_1_2 = "1.2.0"
#: kinds of extended modifier (format 1.1, docs/format.md section 15), in storage order
MODIFIER_KINDS = ("additive", "multiplicative", "linear")

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


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
        description="semantic version of the format; when not given: the oldest version that "
        "holds the document's content (1.0.0, 1.1.0, 1.2.0 or 1.3.0)",
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
        used = self.v13_features
        if self.major_minor < (1, 3) and used:
            raise ValueError(
                f"format_version {self.format_version} does not allow {used[0]} "
                f"(content of format 1.3); the archive must declare format 1.3.0"
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
    def v13_features(self) -> list[str]:
        """The content of format 1.3 this metadata uses, one phrase each."""
        if self.theory is not None and self.theory.parameters is not None:
            return ["the field theory.parameters"]
        return []

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
        the fields added in 1.1 (they hold their defaults), so that 1.0 readers read it, and
        likewise for the fields added in 1.2 and 1.3."""
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
        if self.major_minor < (1, 3) and self.theory is not None:
            exclude = {**(exclude or {}), "theory": {"parameters"}}
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
        if get(data.get("theory"), "parameters") is not None:
            return FORMAT_VERSION
        params = [*(data.get("pois") or []), *(data.get("nuisances") or [])]
        if (
            data.get("sample_yields") is not None
            or data.get("mc_stat") == "combine"
            or any(get(p, "bounds") is not None for p in params)
            or any(get(p, "kind") == "parameter" for p in data.get("pois") or [])
        ):
            return FORMAT_VERSION_1_2
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


def _lookup(table: dict, name: str, what: str):
    try:
        return table[name]
    except KeyError:
        known = ", ".join(list(table)[:10])
        raise KeyError(
            f"no {what} named '{name}' (known: {known}{', ...' if len(table) > 10 else ''})"
        ) from None
