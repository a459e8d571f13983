"""Impacts in CMS's categories (arXiv:2412.13872, Table of the mW impacts) and group impacts
computed from a covariance matrix.

The archive's nuisance groups are mapped to CMS's categories by name (the first group of a
category's candidate list that the archive has): muon momentum scale, muon reconstruction
efficiency, W and Z angular coefficients, higher-order EW, pT^V modelling, PDF (the group of the
set in use), nonprompt background, integrated luminosity, MC sample size (``binByBinStat``) and
data sample size (``stat``). Groups that map to no category and are not contained in a shown one
(e.g. ``muon_eff_stat`` inside ``muonEfficiency``) follow as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .schema import ImpactRow

#: (label, candidate archive groups, compared ignoring case); "{pdf}" is the PDF set's group
CMS_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Muon momentum scale", ("muonCalibration", "muonScale", "muon_scale", "muonCalib")),
    ("Muon reco. efficiency", ("muonEfficiency", "muon_eff", "muonEff", "muon_eff_stat")),
    ("W and Z angular coeffs.", ("angularCoeffs", "angular_coeffs", "angularCoefficients")),
    ("Higher-order EW", ("theory_ew", "theoryEW", "ewk", "EW")),
    ("pT^V modelling", ("pTModeling", "pTModelling", "ptModeling", "resum")),
    ("PDF", ("{pdf}",)),
    ("Nonprompt background", ("Fake", "nonprompt", "fakes", "Nonprompt")),
    ("Integrated luminosity", ("luminosity", "lumi")),
    ("MC sample size", ("binByBinStat",)),
    ("Data sample size", ("stat",)),
)
SPECIAL = ("stat", "binByBinStat")


def group_members(parameters: Sequence) -> dict[str, set[str]]:
    """Group -> names of its parameters, from a model's ``ParameterInfo`` list."""
    out: dict[str, set[str]] = {}
    for p in parameters:
        for g in p.groups:
            out.setdefault(g, set()).add(p.name)
    return out


def cms_rows(
    nominal: dict[str, float | None],
    global_: dict[str, float | None],
    members: dict[str, set[str]],
    pdf_group: str | None,
) -> list[ImpactRow]:
    """The CMS-style impact rows (categories present in the archive, then other groups);
    the total is not included."""
    groups = list(dict.fromkeys([*nominal, *global_]))
    lower = {g.lower(): g for g in groups}
    rows: list[ImpactRow] = []
    shown: list[str] = []
    for label, cands in CMS_CATEGORIES:
        hit = None
        for c in cands:
            c = pdf_group if c == "{pdf}" else c
            if c is not None and c.lower() in lower:
                hit = lower[c.lower()]
                break
        if hit is None:
            continue
        shown.append(hit)
        rows.append(
            ImpactRow(
                label=label, groups=[hit], nominal=nominal.get(hit), **{"global": global_.get(hit)}
            )
        )
    others = []
    for g in groups:
        if g in shown or g in SPECIAL:
            continue
        mine = members.get(g, set())
        if mine and any(mine <= members.get(s, set()) for s in shown):
            continue  # a part of a shown group
        others.append(g)

    def size(g: str) -> float:
        v = nominal.get(g)
        v = global_.get(g) if v is None or not np.isfinite(v) else v
        return -(v if v is not None and np.isfinite(v) else 0.0)

    for g in sorted(others, key=size):
        rows.append(
            ImpactRow(label=g, groups=[g], nominal=nominal.get(g), **{"global": global_.get(g)})
        )
    return rows


def group_impact(cov: np.ndarray, poi: int, idx: Sequence[int] | np.ndarray) -> float:
    """Nominal impact of the parameters ``idx`` on parameter ``poi`` from the covariance
    ``cov``: sqrt(C_pG C_GG^-1 C_Gp) (theta units of the POI; 0 for an empty group), equal to the
    POI's variance lost when the group is fixed."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0:
        return 0.0
    c = np.asarray(cov)
    cgg = c[np.ix_(idx, idx)]
    cpg = c[poi, idx]
    try:
        x = np.linalg.solve(cgg, cpg)
    except np.linalg.LinAlgError:
        x = np.linalg.lstsq(cgg, cpg, rcond=None)[0]
    return float(np.sqrt(max(float(cpg @ x), 0.0)))
