"""Length limits of the text fields of a HEPData submission, checked before anything is written.

HEPData's own limits (the submission schema of hepdata-validator 1.1.1 and the database columns
of ``hepdata/modules/submission/models.py``): a table's ``name`` at most 64 characters, its
``location`` 256, every keyword value 128, a licence's name and URL 256, an additional
resource's location 256 and type 64. HEPData stores descriptions, the record's abstract and the
qualifiers of a variable without a limit; this exporter keeps them short anyway
(:data:`EXPORT_LIMITS`: a description is a caption, a qualifier a short label), so that an
archive with an absurdly long title or name fails here with a clear message instead of producing
an unreadable record. Data files above 10 MB are refused by hepdata-validator itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import HEPDataError

#: field -> maximum number of characters enforced by HEPData (schema or database)
HEPDATA_LIMITS: dict[str, int] = {
    "name": 64,
    "location": 256,
    "keyword value": 128,
    "licence name": 256,
    "licence url": 256,
    "resource location": 256,
    "resource type": 64,
}
#: field -> maximum number of characters this exporter allows where HEPData sets no limit
EXPORT_LIMITS: dict[str, int] = {
    "description": 5000,
    "abstract": 20000,
    "resource description": 5000,
    "qualifier name": 256,
    "qualifier value": 256,
    "variable name": 256,
    "units": 64,
}
#: HEPData's limit on one uploaded submission archive (bytes)
UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024


def limit_of(field: str) -> tuple[int, str]:
    """(maximum length, who sets it) of a field name of :data:`HEPDATA_LIMITS` or
    :data:`EXPORT_LIMITS`."""
    if field in HEPDATA_LIMITS:
        return HEPDATA_LIMITS[field], "HEPData allows"
    return EXPORT_LIMITS[field], "the exporter allows"


def check_length(value: Any, field: str, where: str) -> None:
    """Raise :class:`HEPDataError` when ``str(value)`` is longer than the limit of ``field``;
    ``where`` names the table (``table 'Impacts, nominal'``) or the record."""
    text = str(value)
    limit, who = limit_of(field)
    if len(text) > limit:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise HEPDataError(
            f"{where}: {field} '{shown}' has {len(text)} characters, {who} at most {limit}"
        )


def _check_license(lic: dict | None, where: str) -> None:
    if lic:
        check_length(lic.get("name", ""), "licence name", where)
        check_length(lic.get("url", ""), "licence url", where)


def _check_resources(resources: Iterable[dict], where: str) -> None:
    for res in resources:
        check_length(res.get("location", ""), "resource location", where)
        check_length(res.get("description", ""), "resource description", where)
        if res.get("type"):
            check_length(res["type"], "resource type", where)
        _check_license(res.get("license"), where)


def check_table(table: Any) -> None:
    """Check every text field of a hepdata_lib ``Table``: name, location, description,
    keywords, licence, resources, variable names, units and qualifiers."""
    where = f"table '{table.name}'"
    check_length(table.name, "name", where)
    check_length(table.location, "location", where)
    check_length(table.description, "description", where)
    for values in table.keywords.values():
        for v in values:
            check_length(v, "keyword value", where)
    _check_license(table.data_license, where)
    _check_resources(table.additional_resources, where)
    for var in table.variables:
        check_length(var.name, "variable name", where)
        check_length(var.units, "units", where)
        for q in var.qualifiers:
            check_length(q["name"], "qualifier name", where)
            check_length(q["value"], "qualifier value", where)
            check_length(q.get("units", ""), "units", where)


def check_submission(submission: Any) -> None:
    """Check the record's abstract, licence and resources and every table (see
    :func:`check_table`)."""
    where = "submission"
    check_length(submission.comment, "abstract", where)
    _check_license(submission.get_license(), where)
    _check_resources(submission.additional_resources, where)
    for table in submission.tables:
        check_table(table)
