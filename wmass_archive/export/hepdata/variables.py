"""hepdata_lib building blocks with the export's conventions: a table carries the shared
keywords, licence, location and the SYNTHETIC / BLINDED statement; a missing number is written
as ``-`` (HEPData's convention), never as NaN; numbers keep ``digits`` significant digits."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .context import ExportContext
from .limits import check_length

MISSING = "-"

with warnings.catch_warnings():  # hepdata_validator imports jsonschema's deprecated RefResolver
    warnings.simplefilter("ignore", DeprecationWarning)
    import hepdata_lib as hd


def clean(x: Any) -> int | float | str:
    """An integer, a finite float, or ``-`` for None, NaN and infinities."""
    if x is None:
        return MISSING
    if isinstance(x, int | np.integer) and not isinstance(x, bool):
        return int(x)
    v = float(x)
    return v if math.isfinite(v) else MISSING


def clean_error(x: Any) -> float | None:
    """A finite uncertainty, or None (hepdata_lib then leaves the entry out)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def new_table(
    ctx: ExportContext,
    name: str,
    description: str,
    observables: tuple[str, ...],
    phrases: tuple[str, ...] = (),
) -> hd.Table:
    """A table with the shared metadata; ``description`` is completed with the status
    statement (SYNTHETIC, BLINDED). The name is checked against HEPData's limit first."""
    check_length(name, "name", f"table '{name}'")
    t = hd.Table(name)
    status = ctx.status()
    t.description = f"{description} {status}".strip()
    t.location = ctx.location()
    t.keywords = ctx.keywords(observables, phrases)
    t.add_data_license(**ctx.license())
    return t


def strings(name: str, values: Sequence[str], independent: bool = True) -> hd.Variable:
    """A column of text values (independent by default)."""
    v = hd.Variable(
        name, is_independent=independent, is_binned=False, zero_uncertainties_warning=False
    )
    v.values = [str(x) for x in values]
    return v


def bins(name: str, edges: Sequence[tuple[float, float]], units: str = "") -> hd.Variable:
    """An independent binned column, values (low, high)."""
    v = hd.Variable(name, is_independent=True, is_binned=True, units=units)
    v.values = [(float(lo), float(hi)) for lo, hi in edges]
    return v


def numbers(
    ctx: ExportContext | None,
    name: str,
    values: Sequence[Any],
    *,
    units: str = "",
    digits: int = 5,
    errors: dict[str, Sequence[Any]] | None = None,
    qualifiers: Sequence[tuple[str, Any, str]] = (),
    independent: bool = False,
    pdf_qualifier: bool = True,
) -> hd.Variable:
    """A numeric column (dependent by default) with symmetric ``errors`` by label, the shared
    qualifiers of ``ctx`` (unless None; ``pdf_qualifier=False`` leaves out the PDF set) and
    ``qualifiers`` of its own."""
    v = hd.Variable(
        name,
        is_independent=independent,
        is_binned=False,
        units=units,
        zero_uncertainties_warning=False,
    )
    v.values = [clean(x) for x in values]
    v.digits = digits
    for label, errs in (errors or {}).items():
        u = hd.Uncertainty(label, is_symmetric=True)
        u.values = [clean_error(e) for e in errs]
        v.add_uncertainty(u)
    if not independent:
        shared = ctx.qualifiers() if ctx is not None else []
        for qname, qvalue, qunits in shared:
            if qname == "PDF set" and not pdf_qualifier:
                continue
            v.add_qualifier(qname, qvalue, qunits)
        for qname, qvalue, qunits in qualifiers:
            v.add_qualifier(qname, qvalue, qunits)
    return v


def text_column(name: str, values: Sequence[str]) -> hd.Variable:
    """A dependent column of text (labels, group names)."""
    return strings(name, values, independent=False)
