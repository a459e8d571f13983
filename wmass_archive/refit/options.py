"""The options of a refit, checked once: impact definitions, the POI, bounds, the memory
bound. Pure functions of the archive's metadata and the user's values; each problem is a
:class:`~wmass_archive.refit.errors.RefitError` with one line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from ..archive.reader import find_pdf_set
from ..model.budget import check_model_bytes, estimate_model_bytes
from .errors import RefitError

ImpactsArg = Literal["nominal", "global", "both", "none"] | Sequence[str]
POIS = ("mw", "mw-charge", "mw-eta", "mw-barrel-endcap")
BBArg = Literal["gamma", "normal", "none", "combine"]


def impact_kinds(impacts: ImpactsArg) -> tuple[str, ...]:
    if isinstance(impacts, str):
        table = {
            "both": ("nominal", "global"),
            "none": (),
            "nominal": ("nominal",),
            "global": ("global",),
        }
        if impacts not in table:
            raise RefitError(f"impacts must be nominal, global, both or none, got '{impacts}'")
        return table[impacts]
    kinds = tuple(impacts)
    bad = [k for k in kinds if k not in ("nominal", "global")]
    if bad:
        raise RefitError(f"unknown impact definition(s) {bad} (nominal, global)")
    return kinds


def check_fit_options(
    impacts: ImpactsArg, scan: int | None, scan_values: Sequence[float] | None
) -> tuple[str, ...]:
    """The impact definitions of a fit (:func:`impact_kinds`), once its scan options are
    checked: at least 2 scan points, at least one scan value."""
    kinds = impact_kinds(impacts)
    if scan is not None and scan < 2:
        raise RefitError(f"a scan needs at least 2 points, got {scan}")
    if scan_values is not None and len(scan_values) < 1:
        raise RefitError("--scan-values needs at least one value")
    return kinds


def resolve_poi(meta, poi: str | None) -> tuple[str, str | None]:
    """(POI definition of the model, the POI chosen by name or None) for ``poi``: one of
    :data:`POIS`, an archive POI's name, the name of any nuisance (made a POI, like Combine's
    ``--redefineSignalPOIs``), or None (``mw``, which on an archive without a mass POI means
    its own POIs, named after the first)."""
    names = [p.name for p in meta.pois]
    if poi is None:
        if any(p.kind == "mass" for p in meta.pois) or not names:
            return "mw", None
        return "mw", names[0]
    if poi in POIS:
        return poi, None
    if poi in names:
        return "mw", poi
    if any(n.name == poi for n in meta.nuisances):
        return poi, poi
    raise RefitError(
        f"unknown POI '{clip(poi)}': choose {', '.join(POIS)}, a POI of the archive "
        f"({', '.join(names) or 'none'}) or one of its {len(meta.nuisances)} nuisances"
    )


def clip(text: str, n: int = 80) -> str:
    """A user- or archive-given name for a message: printable, at most ``n`` characters."""
    safe = "".join(c if c.isprintable() else "?" for c in text)
    return safe if len(safe) <= n else safe[: n - 3] + "..."


def parse_bounds(items: Sequence[str] | Mapping[str, Sequence]) -> dict:
    """{name: (low, high)} from ``NAME=LO,HI`` strings (an empty side is unbounded) or a
    mapping; one clear error for anything else."""
    if isinstance(items, Mapping):
        return {str(k): tuple(v) for k, v in items.items()}
    out: dict[str, tuple[float | None, float | None]] = {}
    for item in items:
        name, eq, rng = item.rpartition("=")
        parts = rng.split(",")
        if not eq or not name or len(parts) != 2:
            raise RefitError(f"--bounds '{clip(item)}': expected NAME=LO,HI (e.g. mu=0,10)")
        try:
            lo, hi = (float(x) if x.strip() else None for x in parts)
        except ValueError:
            raise RefitError(f"--bounds '{clip(item)}': LO and HI must be numbers") from None
        out[name] = (lo, hi)
    return out


def needs_theory(meta, name: str, **given: object) -> None:
    """One-line error when an option that changes the theory is given for an archive without
    one (e.g. imported from pyhf or Combine)."""
    if meta.theory is not None and any(p.folded for p in meta.processes):
        return
    used = [k for k, v in given.items() if v is not None and v is not False]
    if used:
        opts = ", ".join("--" + k.replace("_", "-") for k in used)
        raise RefitError(
            f"{name} has no theory (no folded process, no PDF set): {opts} do(es) not apply"
        )


def check_memory(meta, pdf, budget: dict, bound: int, name: str) -> None:
    """Refuse (ResourceLimitError, one line) a model whose estimated memory is over
    ``bound`` bytes, from the metadata only (module ``wmass_archive.model.budget``)."""
    if isinstance(pdf, str) and meta.theory is not None:
        pdf = find_pdf_set(meta.theory.pdf_sets, pdf)  # None (no PDF nuisances) if external
    check_model_bytes(estimate_model_bytes(meta, pdf=pdf, **budget), bound, archive=name)
