"""Physical plausibility: the value rules every number of an archive must satisfy, in one place.

A checksum proves nothing against someone who edits a file (the checksums live in the file), so
the reader checks every array it returns, and the metadata when it opens an archive, against
these rules; the writer applies them before it writes and the validator reads everything
through the reader. What the fitter, the exports and the API see has therefore passed the same
rules that ``wmass-archive validate`` applies (docs/format.md section 17).

The rules are wide on purpose: they refuse what no measurement can hold (a response of 1e300,
a negative sumw2, a POI scale of 5e-324, a luminosity of 1e300 pb^-1), not what is merely
unusual. Each is one named constant below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .folding import FOLDING_ATOL_FRACTION, fold_point, folding_problem
from .models import ArchiveMetadata
from .sparse import SparseTensor

#: largest expected or observed count in a bin (events): float64 counts integers exactly to 9e15
MAX_COUNT = 1e15
#: largest sumw2 of a bin (events^2)
MAX_SUMW2 = MAX_COUNT**2
#: largest |log kappa| of a log-normal variation: kappa = e^30 = 1e13 already means "anything"
MAX_LOGK = 30.0
#: largest |response| entry: reco events per pb of cross section per pb^-1 (an efficiency times
#: an acceptance, at most ~1, or a helicity polynomial's weight, a few)
MAX_RESPONSE = 1e3
#: largest |cross section| of a theory grid entry, pb (the total W cross section is ~2e5 pb)
MAX_XSEC = 1e12
#: largest |ratio| of a multiplicative modifier and |coefficient| of a linear one
MAX_RATIO = 1e6
#: the total folded yield of a channel at any mass point, relative to the nominal point's
MASS_POINT_TOTAL_RANGE = (0.5, 2.0)
#: largest |central| and |blinding offset| of a POI, and |bound| of a POI or nuisance
MAX_PARAMETER = 1e12
#: POI scale: at least this fraction of |central| (below it, central + scale * theta loses the
#: theta to float64 rounding), and within [MIN_SCALE, MAX_PARAMETER]
MIN_SCALE_FRACTION = 1e-9
MIN_SCALE = 1e-12
#: largest |mass point| (theta units) and smallest spacing of two mass points
MAX_MASS_POINT = 1e3
MIN_MASS_POINT_SPACING = 1e-6
#: nuisance prior scale range (the effective theta is prior_scale * theta)
PRIOR_SCALE_RANGE = (1e-6, 1e3)
#: poisson constraint tau range (an effective number of MC events)
TAU_RANGE = (1e-12, 1e16)
#: luminosity range, pb^-1 (the LHC's whole Run 2 is 1.4e5 pb^-1)
LUMINOSITY_RANGE = (1e-6, 1e9)
#: range of a PDF set's scale factor of its uncertainty
PDF_SCALE_RANGE = (1e-3, 1e3)


@dataclass(frozen=True)
class _Rule:
    label: str
    low: float
    high: float
    #: the message when a value is below ``low``: "negative" rules keep the validator's wording
    negative: bool = False


_SIGNED_NOMINAL = _Rule("nominal yield", -MAX_COUNT, MAX_COUNT)
_RULES: dict[str, _Rule] = {
    "data": _Rule("observed counts", 0.0, MAX_COUNT, negative=True),
    "nominal": _Rule("nominal yield", 0.0, MAX_COUNT, negative=True),
    "sumw2": _Rule("sumw2", 0.0, MAX_SUMW2, negative=True),
    "response": _Rule("response", -MAX_RESPONSE, MAX_RESPONSE),
    "logk": _Rule("log kappa", -MAX_LOGK, MAX_LOGK),
    "additive": _Rule("additive shift", -MAX_COUNT, MAX_COUNT),
    "ratio": _Rule("ratio", -MAX_RATIO, MAX_RATIO),
    "theory": _Rule("cross section (pb)", -MAX_XSEC, MAX_XSEC),
}


def _rule_of(path: str, signed_yields: bool) -> _Rule | None:
    """The value rule of a dataset, from its path (docs/format.md section 4); None for index
    datasets, whose ranges the reader checks against the counts they index."""
    parts = path.split("/")
    last = parts[-1]
    if parts[0] == "theory":
        return _RULES["theory"]
    if parts[0] != "channels" or len(parts) < 3:
        return None
    if last == "data":
        return _RULES["data"]
    if last == "nominal":
        return _SIGNED_NOMINAL if signed_yields else _RULES["nominal"]
    if last == "sumw2":
        return _RULES["sumw2"]
    if last == "response" or (last == "value" and parts[-2] == "response"):
        return _RULES["response"]
    if parts[2] == "logk" and last in ("avg", "halfdiff"):
        return _RULES["logk"]
    if parts[2] == "modifiers":
        if last in ("up", "down"):
            return _RULES["additive"]
        if last in ("hi", "lo", "coeff"):
            return _RULES["ratio"]
    return None


def dataset_problem(path: str, values: np.ndarray, *, signed_yields: bool = False) -> str | None:
    """Why the values of the dataset at ``path`` cannot be physical, or None: every value
    finite and within the range of its kind (module constants)."""
    rule = _rule_of(path, signed_yields)
    if rule is None or values.dtype.kind != "f" or values.size == 0:
        return None
    flat = values.reshape(-1)
    finite = np.isfinite(flat)
    if not finite.all():
        bad = int(np.argmin(finite))
        return f"non-finite value {flat[bad]} at flat index {bad}"
    lo, hi = flat.min(), flat.max()
    if lo < rule.low:
        bad = int(np.argmin(flat))
        if rule.negative and rule.low == 0.0:
            return f"negative {rule.label} {flat[bad]:.6g} in bin {bad}"
        return (
            f"{rule.label} {flat[bad]:.6g} at flat index {bad} is below {rule.low:g}, "
            "the plausibility bound of docs/format.md section 17"
        )
    if hi > rule.high:
        bad = int(np.argmax(flat))
        return (
            f"{rule.label} {flat[bad]:.6g} at flat index {bad} is above {rule.high:g}, "
            "the plausibility bound of docs/format.md section 17"
        )
    return None


def metadata_problem(meta: ArchiveMetadata) -> str | None:
    """Why the numbers of the metadata cannot be physical, or None: POI centrals, scales,
    offsets and mass points, nuisance prior scales, taus and bounds, the luminosity, PDF scale
    factors (module constants)."""
    for p in meta.pois:
        what = f"POI '{p.name}'"
        for field, v in (("central", p.central), ("blinding_offset", p.blinding_offset)):
            if abs(v) > MAX_PARAMETER:
                return f"{what}: {field} {v:.6g} is beyond +-{MAX_PARAMETER:g}"
        floor = max(MIN_SCALE, MIN_SCALE_FRACTION * abs(p.central))
        if not floor <= p.scale <= MAX_PARAMETER:
            return (
                f"{what}: scale {p.scale:.6g} is outside [{floor:.3g}, {MAX_PARAMETER:g}] (at "
                f"least {MIN_SCALE_FRACTION:g} x |central| so that central + scale * theta "
                "keeps theta's digits in float64)"
            )
        pts = p.mass_points
        if any(abs(x) > MAX_MASS_POINT for x in pts):
            return f"{what}: a mass point is beyond +-{MAX_MASS_POINT:g} (theta units)"
        if any(b - a < MIN_MASS_POINT_SPACING for a, b in zip(pts, pts[1:], strict=False)):
            return f"{what}: two mass points are closer than {MIN_MASS_POINT_SPACING:g}"
        if p.bounds is not None and max(abs(x) for x in p.bounds) > MAX_PARAMETER:
            return f"{what}: bounds {p.bounds} are beyond +-{MAX_PARAMETER:g}"
    for n in meta.nuisances:
        what = f"nuisance '{n.name}'"
        problem = _outside(n.prior_scale, PRIOR_SCALE_RANGE, f"{what}: prior_scale")
        if problem is None and n.tau is not None:
            problem = _outside(n.tau, TAU_RANGE, f"{what}: tau")
        if problem is not None:
            return problem
        if n.bounds is not None and max(abs(x) for x in n.bounds) > MAX_PARAMETER:
            return f"{what}: bounds {n.bounds} are beyond +-{MAX_PARAMETER:g}"
    if meta.luminosity is not None:
        problem = _outside(meta.luminosity.value, LUMINOSITY_RANGE, "luminosity (pb^-1)")
        if problem is not None:
            return problem
    for s in meta.theory.pdf_sets if meta.theory is not None else ():
        problem = _outside(s.scale, PDF_SCALE_RANGE, f"PDF set '{s.name}': scale")
        if problem is not None:
            return problem
    return None


def _outside(v: float, rng: tuple[float, float], what: str) -> str | None:
    if rng[0] <= v <= rng[1] and math.isfinite(v):
        return None
    return f"{what} {v:.6g} is outside the plausible range [{rng[0]:g}, {rng[1]:g}]"


def response_problem(
    meta: ArchiveMetadata,
    process: str,
    response: SparseTensor,
    sigma: np.ndarray,
    nominal: np.ndarray,
) -> str | None:
    """Why the response of a folded process cannot be physical, or None. Folded with the
    archive's nominal theory grid ``sigma`` (n_gen,) and the luminosity, the nominal mass point
    must give the stored ``nominal`` yield (n_bins,); every mass point must give non-negative
    yields (rounding aside) whose channel total is within MASS_POINT_TOTAL_RANGE of the
    nominal's."""
    lumi = meta.luminosity.value  # type: ignore[union-attr]
    poi = meta.mass_poi_of(process)
    i0 = poi.nominal_point if poi is not None else 0
    n_points = response.shape[0]
    folded = [lumi * fold_point(response, k, sigma) for k in range(n_points)]
    problem = folding_problem(folded[i0], nominal)
    if problem is not None:
        return problem
    top = float(np.max(np.abs(folded[i0]), initial=0.0))
    total0 = float(folded[i0].sum())
    for k, nu in enumerate(folded):
        pt = poi.mass_points[k] if poi is not None else 0.0
        low = float(nu.min(initial=0.0))
        if low < -1e3 * FOLDING_ATOL_FRACTION * top - 1e-300:
            b = int(np.argmin(nu))
            return (
                f"folded with the nominal theory, mass point {pt:g} gives a negative yield "
                f"{low:.6g} in bin {b}"
            )
        if total0 > 0:
            ratio = float(nu.sum()) / total0
            lo, hi = MASS_POINT_TOTAL_RANGE
            if not lo <= ratio <= hi:
                return (
                    f"folded with the nominal theory, mass point {pt:g} gives {ratio:.6g} "
                    f"times the nominal total yield (plausible: [{lo:g}, {hi:g}])"
                )
    return None
