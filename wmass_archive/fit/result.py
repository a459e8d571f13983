"""Typed fit results (pydantic), serialisable to JSON.

Parameter values and errors are in theta units (a nuisance's one-sigma prior shift, a POI's
``scale``); POIs are also given in physical units, ``central + scale * theta +
blinding_offset`` (e.g. MeV for the W mass). Impacts are given in physical units of the POI.
The covariance is a numpy array (n_params, n_params) ordered as ``parameter_names``; it goes
into JSON only when asked (``to_dict(covariance=True)``).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ArchiveError
from ..model.info import ModelInfo
from .minimize import MinimizeInfo


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class POIResult(_Model):
    """A parameter of interest: theta and physical value with their Hessian uncertainty,
    and the likelihood-based (MINOS / profile) interval when computed."""

    name: str
    kind: Literal["mass", "rate", "parameter"]
    unit: str
    value: float = Field(description="theta at the minimum")
    error: float = Field(description="Hessian uncertainty of theta")
    physical_value: float = Field(description="central + scale * theta + blinding_offset")
    physical_error: float = Field(description="scale * error, in unit")
    scale: float
    blinding_offset: float = 0.0
    interval: tuple[float, float] | None = Field(
        default=None, description="(lower, upper) theta where 2 dNLL = 1, when computed"
    )
    physical_interval: tuple[float, float] | None = None
    at_bound: bool = Field(default=False, description="the minimum is on a bound of its range")
    bounds: tuple[float | None, float | None] | None = Field(
        default=None,
        description="the range allowed in the fit, physical units (None: unbounded on that side)",
    )


class ParameterResult(_Model):
    """Every parameter: value, Hessian error, pull (value - theta0) and constraint (error,
    in units of the prior sigma = 1) for gaussian-constrained nuisances."""

    name: str
    kind: Literal["poi", "nuisance", "pdf"]
    value: float
    error: float
    prefit: float = Field(description="theta0, the constraint centre (0 unless toys/Asimov)")
    constrained: bool
    frozen: bool
    pull: float | None = None
    constraint: float | None = None


class ImpactTable(_Model):
    """Impacts on one POI in physical units: per group and per nuisance (signed for global
    impacts: the POI shift per +1 sigma shift of the nuisance's global observable)."""

    kind: Literal["nominal", "global"]
    poi: str
    unit: str
    total: float
    groups: dict[str, float]
    nuisances: dict[str, float] = Field(default_factory=dict)
    sum_in_quadrature: float | None = Field(
        default=None, description="global: sqrt of the sum of squares of all sources"
    )
    definition: str = ""


class GoodnessOfFit(_Model):
    """Saturated-model test: chi2 = 2 (nll - nll_saturated) with nll_saturated = 0;
    ndof = n_bins - n_free_pois - n_free_unconstrained_nuisances (rabbit's convention)."""

    chi2: float
    ndof: int
    p_value: float
    nll: float


class ScanResult(_Model):
    """A likelihood scan of one POI: 2 (nll_profiled - nll_min) at each value."""

    poi: str
    values: list[float] = Field(description="theta")
    physical_values: list[float]
    two_delta_nll: list[float]
    converged: list[bool]


class Timing(_Model):
    """Wall-clock seconds of each step."""

    build: float = 0.0
    compile: float = 0.0
    fit: float = 0.0
    covariance: float = 0.0
    impacts: float = 0.0
    intervals: float = 0.0
    total: float = 0.0


class Versions(_Model):
    wmass_archive: str
    jax: str
    numpy: str
    python: str
    iminuit: str | None = None


def current_versions(with_iminuit: bool = False) -> Versions:
    import jax

    from .._version import __version__

    imv = None
    if with_iminuit:
        import iminuit

        imv = iminuit.__version__
    return Versions(
        wmass_archive=__version__,
        jax=jax.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
        iminuit=imv,
    )


class FitResult(_Model):
    """Everything a fit gives; see the module docstring for units."""

    model: ModelInfo
    minimizer: Literal["newton", "minuit"]
    asimov: bool = False
    status: str
    converged: bool
    edm: float
    nll: float
    minimize: MinimizeInfo
    pois: list[POIResult]
    parameters: list[ParameterResult]
    impacts: list[ImpactTable] = Field(default_factory=list)
    gof: GoodnessOfFit | None = None
    scans: list[ScanResult] = Field(default_factory=list)
    timing: Timing = Field(default_factory=Timing)
    versions: Versions
    covariance: Any = Field(default=None, exclude=True)
    covariance_mode: Literal["full", "pois"] = Field(
        default="full", description="full: the covariance matrix; pois: its POI columns only"
    )
    covariance_pois: Any = Field(
        default=None, exclude=True, description="C[:, :n_pois], (n_params, n_pois)"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="numerical diagnostics: near-degenerate parameters, values not computed",
    )

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def poi(self, name: str | None = None) -> POIResult:
        """A POI by name (default the first)."""
        if name is None:
            return self.pois[0]
        for p in self.pois:
            if p.name == name:
                return p
        raise KeyError(name)

    def parameter(self, name: str) -> ParameterResult:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def impact(self, kind: str = "global", poi: str | None = None) -> ImpactTable:
        poi = poi or self.pois[0].name
        for t in self.impacts:
            if t.kind == kind and t.poi == poi:
                return t
        raise KeyError((kind, poi))

    @property
    def values(self) -> np.ndarray:
        return np.array([p.value for p in self.parameters])

    @property
    def errors(self) -> np.ndarray:
        return np.array([p.error for p in self.parameters])

    def correlation(self) -> np.ndarray:
        """Correlation matrix (n_params, n_params); 0 rows/columns for fixed parameters."""
        if self.covariance is None:
            raise ArchiveError(
                f"no full covariance in this result (covariance_mode {self.covariance_mode!r}): "
                "fit with covariance='full'"
            )
        c = np.asarray(self.covariance)
        s = np.sqrt(np.clip(np.diag(c), 0.0, None))
        inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)
        return c * inv[:, None] * inv[None, :]

    def to_dict(self, covariance: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; ``covariance=True`` adds the covariance matrix (as nested lists)
        and the parameter names that order it."""
        out = self.model_dump(mode="json")
        if covariance and self.covariance is not None:
            out["covariance"] = {
                "parameters": self.parameter_names,
                "matrix": np.asarray(self.covariance).tolist(),
            }
        return out

    def to_json(
        self, path: str | Path | None = None, covariance: bool = False, indent: int | None = 1
    ) -> str:
        """The result as JSON text (NaN written as null); written to ``path`` when given."""
        text = json.dumps(_nan_to_none(self.to_dict(covariance)), indent=indent)
        if path is not None:
            Path(path).write_text(text)
        return text

    def summary(self) -> str:
        """A few lines for a terminal (archive strings escaped: :mod:`wmass_archive.text`)."""
        from ..text import printable_lines

        lines = [
            f"fit of {self.model.archive} ({self.minimizer}, PDF {self.model.pdf_set}, "
            f"BB {self.model.bb}{', Asimov' if self.asimov else ''}): {self.status}, "
            f"edm {self.edm:.2g}, nll {self.nll:.6g}"
        ]
        for p in self.pois:
            lines.append(
                f"  {p.name} = {p.physical_value:.3f} +- {p.physical_error:.3f} {p.unit}"
                + (f" (blinded by {p.blinding_offset:+g})" if p.blinding_offset else "")
            )
        if self.gof is not None:
            g = self.gof
            lines.append(f"  saturated GoF: chi2/ndof = {g.chi2:.2f}/{g.ndof}, p = {g.p_value:.3f}")
        for t in self.impacts:
            top = sorted(t.groups.items(), key=lambda kv: -kv[1])[:8]
            lines.append(
                f"  {t.kind} impacts on {t.poi} ({t.unit}), total {t.total:.3f}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in top)
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        tm = self.timing
        lines.append(
            f"  time: build {tm.build:.2f} s, compile {tm.compile:.2f} s, fit {tm.fit:.2f} s, "
            f"covariance {tm.covariance:.2f} s, impacts {tm.impacts:.2f} s, total {tm.total:.2f} s"
        )
        return printable_lines(lines)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj
