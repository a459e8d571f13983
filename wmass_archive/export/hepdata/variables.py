"""hepdata_lib building blocks with the export's conventions: a table carries the shared
keywords, licence, location and the SYNTHETIC / BLINDED statement; a missing number is written
as ``-`` (HEPData's convention), never as NaN; numbers keep ``digits`` significant digits.

Every text that reaches the YAML here (table names and descriptions, column headers, units,
text values, qualifiers) may quote the archive's strings: control, format and separator
characters are escaped visibly (:func:`yaml_text`, issue 14); backslashes are kept (LaTeX)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._optional import require
from ...text import printable, printable_lines
from .context import ExportContext
from .limits import check_length

MISSING = "-"

with warnings.catch_warnings():  # hepdata_validator imports jsonschema's deprecated RefResolver
    warnings.simplefilter("ignore", DeprecationWarning)
    hd = require("hepdata_lib", "hepdata", "wmass-archive export hepdata")


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


def yaml_text(s: Any) -> str:
    """``s`` as one line for the record: every control, format (bidi, zero-width) and line
    separator character escaped (``\\x1b``, ``\\n``, ``\\u202e``); backslashes kept."""
    return printable(s, backslash=False)


def yaml_paragraphs(s: str) -> str:
    """A description: its own newlines kept, everything else as :func:`yaml_text` makes it."""
    return printable_lines(s.split("\n"), backslash=False)


def new_table(
    ctx: ExportContext,
    name: str,
    description: str,
    observables: tuple[str, ...],
    phrases: tuple[str, ...] = (),
) -> hd.Table:
    """A table with the shared metadata; ``description`` is completed with the status
    statement (SYNTHETIC, BLINDED). The name is checked against HEPData's limit first."""
    name = yaml_text(name)
    check_length(name, "name", f"table '{name}'")
    t = hd.Table(name)
    status = ctx.status()
    t.description = yaml_paragraphs(f"{description} {status}".strip())
    t.location = ctx.location()
    t.keywords = ctx.keywords(observables, phrases)
    t.add_data_license(**ctx.license())
    return t


def strings(name: str, values: Sequence[str], independent: bool = True) -> hd.Variable:
    """A column of text values (independent by default)."""
    v = hd.Variable(
        yaml_text(name),
        is_independent=independent,
        is_binned=False,
        zero_uncertainties_warning=False,
    )
    v.values = [yaml_text(x) for x in values]
    return v


def bins(name: str, edges: Sequence[tuple[float, float]], units: str = "") -> hd.Variable:
    """An independent binned column, values (low, high)."""
    v = hd.Variable(yaml_text(name), is_independent=True, is_binned=True, units=yaml_text(units))
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
    blinding: str | None = None,
) -> hd.Variable:
    """A numeric column (dependent by default) with symmetric ``errors`` by label, the shared
    qualifiers of ``ctx`` (unless None; ``pdf_qualifier=False`` leaves out the PDF set) and
    ``qualifiers`` of its own. ``blinding``: the value of the ``Blinding`` qualifier of a
    column that carries no offset (e.g. a difference in which it cancels), instead of the
    shared one."""
    v = hd.Variable(
        yaml_text(name),
        is_independent=independent,
        is_binned=False,
        units=yaml_text(units),
        zero_uncertainties_warning=False,
    )
    v.values = [clean(x) for x in values]
    v.digits = digits
    for label, errs in (errors or {}).items():
        u = hd.Uncertainty(yaml_text(label), is_symmetric=True)
        u.values = [clean_error(e) for e in errs]
        v.add_uncertainty(u)
    if not independent:
        shared = ctx.qualifiers() if ctx is not None else []
        for qname, qvalue, qunits in shared:
            if qname == "PDF set" and not pdf_qualifier:
                continue
            if qname == "Blinding" and blinding is not None:
                qvalue = blinding
            v.add_qualifier(*_qualifier(qname, qvalue, qunits))
        for qname, qvalue, qunits in qualifiers:
            v.add_qualifier(*_qualifier(qname, qvalue, qunits))
    return v


def _qualifier(name: str, value: Any, units: str) -> tuple[str, Any, str]:
    """A qualifier with its texts escaped (:func:`yaml_text`); numbers unchanged."""
    return yaml_text(name), yaml_text(value) if isinstance(value, str) else value, yaml_text(units)


def text_column(name: str, values: Sequence[str]) -> hd.Variable:
    """A dependent column of text (labels, group names)."""
    return strings(name, values, independent=False)
