"""The theory in the archive's metadata: the generator binning, the PDF sets and the theory
variations of the stored grids, and (format 1.3) the parameters the grids were computed with
(docs/format.md sections 3.6 and 18)."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..text import has_unsafe_chars, printable
from .axes import Axis
from .models_base import PARAM_NAME, SAFE_NAME, _Model, _require_unique


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


#: names of theory parameters: identifiers (ASCII letters, digits, '_'; not a digit first)
PARAMETER_KEY = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
#: most values one theory-parameter record holds
MAX_THEORY_PARAMETERS = 256


class TheoryParametersRecord(_Model):
    """Format 1.3: the parameters the theory grids were computed with, so that a grid can be
    recomputed (e.g. for another PDF set) with the same model: which code computed them and
    its numeric inputs by name (for ``wmass_archive.theory``: the fields of its
    ``TheoryParameters``)."""

    model: str = Field(
        min_length=1,
        max_length=200,
        description="the code that computed the grids and its version, e.g. "
        "'wmass_archive.theory 0.4.0'",
    )
    values: dict[
        Annotated[str, Field(pattern=PARAMETER_KEY)],
        Annotated[float, Field(strict=True, allow_inf_nan=False)],
    ] = Field(
        default_factory=dict,
        max_length=MAX_THEORY_PARAMETERS,
        description="the model's numeric parameters by name (identifiers), finite numbers",
        json_schema_extra={"additionalProperties": False},
    )

    @field_validator("model")
    @classmethod
    def _printable(cls, v: str) -> str:
        bad = has_unsafe_chars(v)
        if bad is not None:
            raise ValueError(
                f"'{printable(v, max_len=80)}' holds the character U+{ord(bad):04X} "
                f"({unicodedata.category(bad)}): no control, format or line-separator characters"
            )
        return v


class Theory(_Model):
    """The generator-level binning and the theory grids sigma[g] (in pb per bin)."""

    generator_axes: list[Axis] = Field(min_length=1)
    nominal_pdf: str
    pdf_sets: list[PDFSet] = Field(min_length=1)
    variations: list[TheoryVariation] = Field(default_factory=list)
    sigma_unit: Literal["pb"] = "pb"
    description: str = ""
    parameters: TheoryParametersRecord | None = Field(
        default=None,
        description="format 1.3: the parameters the grids were computed with (null: not recorded)",
    )

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


def normalize_pdf_name(name: str) -> str:
    """A PDF set name compared loosely: lower case, without ' ', '.', '-' and '_' (so
    'NNPDF4.0', 'nnpdf40' and 'NNPDF40' are the same)."""
    return "".join(ch for ch in name.lower() if ch not in " .-_")
