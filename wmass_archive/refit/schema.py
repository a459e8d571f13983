"""The refit result, machine-readable: pydantic models whose JSON Schema is published as
``docs/schema/refit-result-v1.json`` (regenerate with :func:`write_json_schema`; a test keeps it
current).

Units: POI values ``value``/``unc`` are in theta units (a mass POI: 1 = its ``scale``, 100 MeV
in the CMS-like archives); ``*_mev`` fields are MeV; impacts are in the POI's unit (MeV for mW);
times are seconds; ``poi_covariance`` is in the POIs' units (``scale_i * scale_j * C_ij``, MeV^2
for two masses) and ``poi_differences`` in their unit; ``generator_level`` cross sections
are pb per bin, its angular coefficients dimensionless. While the result is **blinded**
(``blinded: true``) every mW value carries the archive's hidden offset (``value_mev = central +
scale * theta + offset``; ``theta`` is shifted likewise) and ``shift_mev = value_mev -
reference_mev`` is what ``wmass-refit`` prints; differences between fits of one archive (PDF
sweep, bias, scans, toys) do not depend on it, nor do those of the parts of a split POI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..hypotests import HypotestResult, UpperLimit

SCHEMA_NAME = "wmass-refit-result"
SCHEMA_VERSION = "1.3"
SCHEMA_FILE = "refit-result-v1.json"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ArchiveInfo(_M):
    """Which archive was fitted."""

    path: str
    name: str = Field(description="file name")
    title: str
    synthetic: bool = Field(description="True: pseudo-data / simulation, not a measurement")
    format_version: str
    producer: str
    created: str = Field(description="when the archive was produced (UTC, ISO 8601)")
    n_bins: int
    n_nuisances: int = Field(description="nuisances of the fit model (PDF ones included)")


class PDFInfo(_M):
    """The PDF set in use: its description and where its grid came from."""

    name: str = Field(description="name in the archive (or the LHAPDF name of an external set)")
    lhapdf_name: str
    source: Literal["archive", "lhapdf"] = Field(
        description="archive: carried by the archive; lhapdf: grid computed from an LHAPDF set"
    )
    nominal: bool = Field(description="the archive's nominal set")
    error_type: str
    confidence_level: float = Field(description="CL of the set's eigenvectors, percent")
    scale: float = Field(description="factor applied to the one-sigma PDF uncertainty")
    archive_scale: float | None = Field(description="the archive's own factor for this set")
    n_members: int
    n_nuisances: int
    variance_kept: float | None = None
    grid_file: str | None = Field(default=None, description="cached grid of an external set")
    grid_cached: bool = False
    theory_parameters: str | None = Field(
        default=None, description="how the theory parameters of an external grid were chosen"
    )


class TheoryInfo(_M):
    """The central theory grid of the signal."""

    source: Literal["archive", "user"]
    file: str | None = None
    label: str = ""
    ratio_to_nominal: float = Field(
        default=1.0, description="total cross section relative to the archive's nominal grid"
    )


class POIValue(_M):
    """A parameter of interest. ``value``/``unc`` in theta units; the ``physical_*`` fields,
    ``stat`` and ``syst`` in its unit (every POI kind: a rate POI's ``r``, ``mu``, ...); the
    ``*_mev`` fields the same for mass POIs in MeV. ``stat``/``syst`` split the total by the
    data statistical impact (``stat``: nominal definition when computed, else global)."""

    name: str
    kind: Literal["mass", "rate", "parameter"]
    unit: str
    value: float | None = Field(description="theta (+ offset / scale if blinded)")
    unc: float | None = Field(description="Hessian uncertainty of theta (null if undefined)")
    value_mev: float | None = Field(description="central + scale * theta (+ offset if blinded)")
    unc_mev: float | None
    shift_mev: float | None = Field(description="value_mev - reference_mev")
    reference_mev: float | None = Field(description="the archive's reference value (central)")
    stat_mev: float | None = None
    syst_mev: float | None = None
    interval_mev: tuple[float, float] | None = Field(
        default=None, description="profile-likelihood 68% interval of value_mev (--minos)"
    )
    split_of: str | None = None
    central: float | None = Field(default=None, description="physical value at theta = 0")
    scale: float | None = Field(default=None, description="physical units per unit theta")
    physical_value: float | None = Field(
        default=None, description="central + scale * theta (+ offset if blinded), in unit"
    )
    physical_unc: float | None = Field(default=None, description="scale * unc, in unit")
    physical_interval: tuple[float, float] | None = Field(
        default=None, description="profile-likelihood 68% interval of physical_value (--minos)"
    )
    stat: float | None = Field(default=None, description="data statistical part, in unit")
    syst: float | None = Field(default=None, description="sqrt(physical_unc^2 - stat^2)")


class POICovariance(_M):
    """The covariance of the fitted POIs in their **physical units**: ``matrix[i][j] =
    scale_i * scale_j * C_ij`` (C: the fit's covariance in theta units), so MeV^2 between two
    mass POIs, the product of the units otherwise; rows and columns in the order of ``names``
    (that of ``pois``), symmetric, the diagonal the squared ``physical_unc``. Blinding offsets
    do not enter. Null for a fit with one POI."""

    names: list[str]
    matrix: list[list[float | None]] = Field(description="(n_pois, n_pois), unit_i * unit_j")


class POIDifference(_M):
    """The difference of two POIs of one split (``mW_plus - mW_minus``), in their unit (MeV for
    mass POIs): ``uncertainty = sqrt(v_i + v_j - 2 c_ij)``, ``correlation = c_ij /
    sqrt(v_i v_j)`` with v, c from :class:`POICovariance`. The parts of a split share their
    blinding offset, which then cancels in ``value``; when blinded with unequal offsets the
    value is withheld (null, ``blinded`` true)."""

    name: str = Field(description="'<first> - <second>', the POIs' names")
    unit: str = ""
    value: float | None = Field(description="first - second (null: withheld or undefined)")
    uncertainty: float | None
    correlation: float | None
    blinded: bool = Field(
        default=False,
        description="true: value withheld, the result is blinded and the offsets differ",
    )


class GenAxisOut(_M):
    """A generator-level axis of the theory grid: ``name`` as the archive spells it (``ptW``,
    ``absYW``), ``label`` in physics notation (``p_T^W``, ``|y^W|``), ``unit`` (``GeV``; empty
    for a dimensionless axis) and the ``edges`` of its n bins, (n + 1,)."""

    name: str
    label: str
    unit: str = ""
    edges: list[float]


class GenDistribution(_M):
    """One generator-level distribution of one W charge on one axis (n bins): the unpolarised
    cross section (``quantity`` ``sigma``: sigma_UL summed over the other generator axes, **pb
    per bin**, integrated over the bin, times BR(W -> mu nu) as the grid is) or an angular
    coefficient (``A0`` .. ``A7``: sigma_Ai / sigma_UL of the summed bins, dimensionless).
    ``prefit``/``prefit_unc``: at theta = 0 with the prior covariance; ``postfit``/
    ``postfit_unc``: at the fitted theta with the fit's covariance, one-sigma from J C J^T;
    ``postfit_correlation`` (n, n) of the bins. Null where undefined (sigma_UL = 0)."""

    quantity: str = Field(description="'sigma' (unpolarised, sigma_UL) or 'A0'..'A7'")
    unit: str = Field(description="'pb' (per bin) for sigma, '' (dimensionless) for A_i")
    axis: GenAxisOut
    prefit: list[float | None] = Field(description="(n,) at theta = 0")
    prefit_unc: list[float | None] = Field(description="(n,) one sigma, prior covariance")
    postfit: list[float | None] = Field(description="(n,) at the fitted theta")
    postfit_unc: list[float | None] = Field(description="(n,) one sigma, fit covariance")
    postfit_correlation: list[list[float | None]] = Field(description="(n, n) of the bins")


class GeneratorLevel(_M):
    """What the fit learnt about W production: the theory grid sigma(theta) (pb per generator
    bin) projected on each kinematic generator axis (pT^W, |y^W|), per W charge, prefit and
    postfit, with uncertainties propagated from the theory nuisances' covariance
    (wmass_archive/refit/genlevel.py). ``charges`` maps ``plus``/``minus`` (``all`` without a
    charge axis) to the distributions by key ``<quantity>_<axis>`` (``sigma_ptW``,
    ``A0_absYW``, ...). The grid stores per (|y|, pT) cell the cell integral of sigma_UL (term
    ``UL``) and of sigma_UL * A_i (terms ``A0``..``A7``), so A_i = sum sigma_Ai / sum
    sigma_UL over the summed cells. No blinding offset enters (mW does not act on the grid)."""

    charge_axis: str | None = Field(description="the generator axis of the W charge, if any")
    helicity_axis: str | None = Field(description="the axis of the terms UL, A0..A7, if any")
    n_theory_nuisances: int = Field(description="parameters that act on the grid")
    charges: dict[str, dict[str, GenDistribution]]


class ImpactRow(_M):
    """A line of the CMS-style impact table: a category and the archive groups it shows."""

    label: str
    groups: list[str]
    nominal: float | None = None
    global_: float | None = Field(default=None, alias="global")


class Impacts(_M):
    """Impacts on one POI (in its unit) per nuisance group, in both definitions (nominal =
    traditional sqrt(C_pG C_GG^-1 C_Gp); global = arXiv:2307.04007, squares add up to the total
    variance), and the CMS-style table."""

    poi: str
    unit: str
    nominal: dict[str, float | None] = Field(default_factory=dict)
    global_: dict[str, float | None] = Field(default_factory=dict, alias="global")
    total: float | None = None
    cms: list[ImpactRow] = Field(default_factory=list)


class GoF(_M):
    """Saturated-model goodness of fit."""

    chi2: float
    ndof: int
    p_value: float


class FitInfo(_M):
    """How the fit went."""

    status: str
    converged: bool
    edm: float | None
    nll: float | None
    minimizer: str
    bb: str = Field(description="Barlow-Beeston-lite mode")
    asimov: bool
    frozen: list[str] = Field(default_factory=list)
    n_parameters: int


class ScanOut(_M):
    """A likelihood scan of a POI: 2 (nll_profiled - nll_min) against its shift from the
    reference value (``shift_mev``: in the POI's unit, MeV for mW; blinded like the result) and
    against its physical value."""

    poi: str
    unit: str | None = None
    shift_mev: list[float]
    physical_values: list[float] | None = Field(
        default=None, description="central + shift_mev, in unit"
    )
    two_delta_nll: list[float]
    converged: list[bool]


class SweepRow(_M):
    """One PDF set of a sweep: mW with the set's original (scale 1) and scaled uncertainty."""

    pdf: str
    lhapdf_name: str
    source: Literal["archive", "lhapdf"]
    scale: float
    shift_mev: float | None = Field(description="mW - reference (blinded like the main result)")
    unc_mev: float | None
    pdf_unc_mev: float | None = Field(description="nominal impact of the set's PDF group")
    scaled_shift_mev: float | None
    scaled_unc_mev: float | None
    scaled_pdf_unc_mev: float | None
    delta_mev: float | None = Field(
        default=None, description="scaled mW minus the scaled mW of the reference set"
    )
    converged: bool = True


class BiasRow(_M):
    """A set's central prediction fitted as pseudo-data with the model of the set in use."""

    pseudo_data: str
    model: str
    bias_mev: float | None = Field(description="fitted mW minus the generated one, scale 1")
    pdf_unc_mev: float | None = Field(description="PDF uncertainty of the model, scale 1")
    total_unc_mev: float | None
    scale_needed: float | None = Field(
        description="smallest factor of the model's PDF uncertainty with |bias| <= sigma_PDF"
    )
    bias_at_scale_mev: float | None = None
    pdf_unc_at_scale_mev: float | None = None
    covered: bool | None = None


class ToysOut(_M):
    """Pseudo-experiments generated at the fitted parameters and fitted again."""

    n_toys: int
    seed: int
    n_converged: int
    poi: str
    unit: str | None = Field(default=None, description="unit of the *_mev fields (the POI's)")
    mean_bias_mev: float | None = Field(description="mean of fitted - generated")
    std_mev: float | None = Field(description="standard deviation of the fitted values")
    mean_unc_mev: float | None = Field(description="mean Hessian uncertainty")
    pull_mean: float | None
    pull_std: float | None


class TimingOut(_M):
    """Wall-clock seconds of the steps of a refit: opening the archive, the PDF set's grid, the
    model, then the main fit's own steps (those of :class:`wmass_archive.fit.Timing`, copied by
    name; a test keeps the two in step), then scans and studies. A model of its own rather than
    a subclass of the fitter's, so that reading a result (and the command's start-up) does not
    import JAX."""

    open: float = 0.0
    pdf_grid: float = 0.0
    build: float = 0.0
    compile: float = Field(0.0, description="JIT compilation of the fit's kernels")
    fit: float = 0.0
    covariance: float = 0.0
    impacts: float = 0.0
    intervals: float = Field(0.0, description="profile-likelihood intervals (--minos)")
    scan: float = 0.0
    sweep: float = 0.0
    bias: float = 0.0
    toys: float = 0.0
    generator_level: float = Field(0.0, description="the generator-level distributions")
    hypotests: float = Field(0.0, description="hypothesis tests and limits (--cls, --upper-limit)")
    total: float = 0.0


class RefitResult(_M):
    """Everything ``wmass-refit`` reports. ``to_dict()``/``to_json()`` give the documented JSON;
    the underlying :class:`~wmass_archive.fit.FitResult` (parameters, pulls, covariance) is
    ``result.fit`` and the model ``result.model`` (not serialised)."""

    schema_: Literal["wmass-refit-result"] = Field(SCHEMA_NAME, alias="schema")
    schema_version: str = SCHEMA_VERSION
    created: str
    command: str | None = None
    archive: ArchiveInfo
    pdf: PDFInfo | None
    theory: TheoryInfo | None
    synthetic: bool
    blinded: bool
    poi_definition: str
    pois: dict[str, POIValue]
    poi_covariance: POICovariance | None = Field(
        default=None, description="covariance of the POIs in their units (2 POIs or more)"
    )
    poi_differences: list[POIDifference] = Field(
        default_factory=list, description="differences of the parts of a split POI"
    )
    impacts: Impacts | None = Field(description="impacts on the first POI")
    impacts_by_poi: dict[str, Impacts] = Field(default_factory=dict)
    gof: GoF | None
    fit: FitInfo
    scans: list[ScanOut] = Field(default_factory=list)
    sweep: list[SweepRow] | None = None
    bias: list[BiasRow] | None = None
    toys: ToysOut | None = None
    hypotests: list[HypotestResult] = Field(
        default_factory=list, description="hypothesis tests of --cls (CLs, q~mu, q_mu or q0)"
    )
    upper_limits: list[UpperLimit] = Field(
        default_factory=list, description="CLs upper limits of --upper-limit"
    )
    generator_level: GeneratorLevel | None = Field(
        default=None,
        description="prefit/postfit generator-level distributions (folded signal, full covariance)",
    )
    notes: list[str] = Field(default_factory=list)
    timing_s: TimingOut
    versions: dict[str, str | None] = Field(default_factory=dict)

    _fit: Any = PrivateAttr(default=None)
    _model: Any = PrivateAttr(default=None)
    _theory: Any = PrivateAttr(default=None)

    @property
    def fit_result(self) -> Any:
        """The :class:`~wmass_archive.fit.FitResult` of the main fit (None after ``load``)."""
        return self._fit

    @property
    def model(self) -> Any:
        """The :class:`~wmass_archive.model.Model` that was fitted (None after ``load``)."""
        return self._model

    @property
    def resolved_theory(self) -> Any:
        """The :class:`~wmass_archive.theory.resolve.ResolvedTheory` of the fit (None after
        ``load`` and for an archive without theory)."""
        return self._theory

    def poi(self, name: str | None = None) -> POIValue:
        """A POI by name (default the first)."""
        if name is None:
            return next(iter(self.pois.values()))
        try:
            return self.pois[name]
        except KeyError:
            raise KeyError(f"no POI '{name}' (the result has {', '.join(self.pois)})") from None

    @property
    def mw(self) -> POIValue:
        """The first POI (mW)."""
        return self.poi()

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict of the schema (NaN written as None)."""
        return _nan_to_none(self.model_dump(mode="json", by_alias=True))

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """The JSON text; written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def summary(self) -> str:
        """The text result block of ``wmass-refit``."""
        from .report import format_result

        return format_result(self)

    @classmethod
    def load(cls, path: str | Path) -> RefitResult:
        """Read a result written by :meth:`to_json`."""
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj or obj in (float("inf"), float("-inf")):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`RefitResult` (as serialised, with aliases)."""
    s = RefitResult.model_json_schema(by_alias=True, mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://wmass-archive.github.io/schema/{SCHEMA_FILE}",
        "title": f"wmass-refit result, version {SCHEMA_VERSION}",
        **{k: v for k, v in s.items() if k != "title"},
    }


def write_json_schema(path: str | Path) -> Path:
    """Write :func:`json_schema` to ``path`` (e.g. ``docs/schema/refit-result-v1.json``)."""
    p = Path(path)
    p.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    return p
