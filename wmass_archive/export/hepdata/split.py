"""The charge split of the HEPData export: mW+ and mW- fitted as two POIs (``wmass-refit --poi
mw-charge``), their difference with its uncertainty and correlation, and their correlation
matrix, from the refit result's ``pois``, ``poi_differences`` and ``poi_covariance``
(wmass_archive/refit/poicov.py; never recomputed here). Units: MeV.

Blinding as the ``mW result`` table: while blinded each part is written as its shift plus the
hidden offset (the parts inherit the split mW's offset); the difference carries no offset (it
cancels), and a difference withheld by the refit (offsets that differ) is written as ``-``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ...archive.models import ArchiveMetadata
from ...errors import ArchiveError
from ...model.poi import poi_split
from ...refit.api import refit
from ...refit.schema import RefitResult
from .context import ExportContext
from .tables import MASS_OBS, _fit_sentence
from .variables import hd, new_table, numbers, strings

SPLIT = "mw-charge"
#: LaTeX of the parts of the charge split of mW
PART_LATEX = {"mW_plus": "$m_{W^{+}}$", "mW_minus": "$m_{W^{-}}$"}
NO_OFFSET = "no offset: the parts' blinding offsets cancel in the difference"
NO_OFFSET_CORR = "no offset: correlations do not depend on it"


def can_split(meta: ArchiveMetadata) -> str | None:
    """None when the archive's mass POI can be split by muon charge, else why not."""
    try:
        poi_split(meta, SPLIT)
    except ArchiveError as exc:
        return str(exc)
    return None


def split_fit(
    archive: str | os.PathLike[str], main: RefitResult, *, unblind: bool, progress: bool
) -> RefitResult:
    """The fit with mW+ and mW- as POIs (:func:`~wmass_archive.refit.refit` with ``poi=
    "mw-charge"``) on the theory of the main fit ``main`` (its resolved PDF set, reused), the
    covariance only (no impacts)."""
    return refit(
        Path(archive),
        pdf=main.resolved_theory,
        poi=SPLIT,
        impacts="none",
        unblind=unblind,
        scheduler="none",
        progress=progress,
    )


def _header(ctx: ExportContext, name: str) -> str:
    sym = PART_LATEX.get(name, f"${name}$")
    return ctx.mass_header(sym) if ctx.blinded else sym


def _corr(cov: list[list[float | None]], i: int, j: int) -> float | None:
    """Correlation of entries i, j of a covariance matrix (None where undefined)."""
    c, vi, vj = cov[i][j], cov[i][i], cov[j][j]
    if c is None or vi is None or vj is None or not (vi > 0 and vj > 0):
        return None
    return c / math.sqrt(vi * vj)


def split_tables(ctx: ExportContext) -> list[hd.Table]:
    """``mW for each W charge`` (one row: both parts, their difference and correlation) and
    ``Correlation of mW_plus and mW_minus`` (the 2 x 2 matrix); none without a split fit."""
    s = ctx.split
    if s is None or s.poi_covariance is None or not s.poi_differences:
        return []
    names = s.poi_covariance.names
    parts = [s.pois[n] for n in names]
    corr_name = f"Correlation of {names[0]} and {names[1]}"
    if len(corr_name) > 64:  # an archive's long POI name
        corr_name = "Correlation of mW for each W charge"
    diff = s.poi_differences[0]
    fit = (
        f"Fit with one mW for each muon charge (wmass-refit --poi {SPLIT}): {names[0]} acts on "
        f"the bins of positive and {names[1]} on those of negative muon charge; same archive, "
        "data and PDF set as the main fit."
    )
    t = new_table(
        ctx,
        "mW for each W charge",
        f"{fit} mW of each charge with its total (Hessian) uncertainty, their difference "
        f"{diff.name} with its uncertainty sqrt(v_+ + v_- - 2 c), and their correlation "
        "c / sqrt(v_+ v_-), from the fit covariance, in MeV. The difference carries no "
        "blinding offset: the two parts inherit the offset of mW, which cancels. Correlation "
        f"matrix: table '{corr_name}'. {_fit_sentence(ctx)}",
        MASS_OBS,
        ("Charge Dependence",),
    )
    t.add_variable(strings("Fit", [f"mW split by muon charge ({SPLIT})"]))
    for p in parts:
        blinded = ctx.blinded
        t.add_variable(
            numbers(
                ctx,
                _header(ctx, p.name),
                [p.shift_mev if blinded else p.value_mev],
                units="MeV",
                digits=5 if blinded else 8,
                errors={"total": [p.unc_mev]},
            )
        )
    t.add_variable(
        numbers(
            ctx,
            " - ".join(PART_LATEX.get(n, f"${n}$") for n in names),
            [diff.value],
            units=diff.unit,
            errors={"total": [diff.uncertainty]},
            blinding=NO_OFFSET,
        )
    )
    t.add_variable(
        numbers(
            ctx,
            f"Correlation of {names[0]} and {names[1]}",
            [diff.correlation],
            digits=4,
            blinding=NO_OFFSET_CORR,
        )
    )
    k = len(names)
    c = new_table(
        ctx,
        corr_name,
        f"{fit} Correlation matrix of {', '.join(names)} from the fit covariance (Hessian): "
        "every pair; symmetric, 1 on the diagonal. Covariance in MeV^2: the correlation times "
        f"the uncertainties of table 'mW for each W charge'. {_fit_sentence(ctx)}",
        ("CORR",),
        ("Charge Dependence",),
    )
    c.add_variable(strings("Parameter", [names[i] for i in range(k) for _ in range(k)]))
    c.add_variable(strings("Parameter", [names[j] for _ in range(k) for j in range(k)]))
    cov = s.poi_covariance.matrix
    c.add_variable(
        numbers(
            ctx,
            "Correlation",
            [_corr(cov, i, j) for i in range(k) for j in range(k)],
            digits=5,
            blinding=NO_OFFSET_CORR,
        )
    )
    return [t, c]
