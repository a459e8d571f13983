"""Prefit and postfit distributions of the HEPData export: one table per channel, fit stage and
charge (when the channel has a charge axis), binned in the channel's other axes (e.g. muon eta
and pT, with low and high edges), holding the data, the total prediction with its uncertainty
and the yield of every process, in events per bin."""

from __future__ import annotations

import numpy as np

from ...archive.axes import Axis
from .context import ExportContext
from .errors import HEPDataError
from .labels import charge_word
from .variables import bins, hd, new_table, numbers, strings

CHARGE_AXES = ("charge", "q", "qmu")
STAGES = {
    "Prefit": "prefit expected yields (every nuisance at its nominal value, mW at the archive's "
    "reference); uncertainty of the total: the prior uncertainties of all constrained "
    "nuisances propagated linearly through the model, and the MC statistical uncertainty of "
    "the templates",
    "Postfit": "postfit expected yields (at the fitted parameters, without the Barlow-Beeston "
    "factors); uncertainty of the total: the fit covariance propagated linearly through the "
    "model",
}


def _axis_variable(ax: Axis, index: np.ndarray) -> hd.Variable:
    """Independent column of axis ``ax`` for rows whose bin along it is ``index``."""
    name = ax.label or ax.name
    if ax.is_continuous:
        e = ax.bin_edges()
        return bins(name, [(e[i], e[i + 1]) for i in index], units=ax.unit)
    cats = ax.categories or []
    return strings(name, [str(cats[i]) for i in index])


def _splits(ch) -> tuple[int | None, list[tuple[float | None, int | None]]]:
    """The charge axis' position and [(charge value, index along it)], or (None, [(None,
    None)]) for a channel without a charge axis of at least two bins."""
    qi = next((i for i, a in enumerate(ch.axes) if a.name.lower() in CHARGE_AXES), None)
    if qi is None or ch.axes[qi].size < 2:
        return None, [(None, None)]
    ax = ch.axes[qi]
    values = ax.categories if not ax.is_continuous else ax.centers().tolist()
    return qi, [(float(q), k) for k, q in enumerate(values or [])]


def distribution_tables(ctx: ExportContext) -> list[hd.Table]:
    """Prefit and postfit tables of every channel (and charge)."""
    b = ctx.bands
    if b is None:
        raise HEPDataError("the distribution tables need the prefit and postfit yields")
    labels = {p.name: p.label or p.name for p in ctx.meta.processes}
    tables = []
    offset = 0
    for ch in ctx.meta.channels:
        grid = np.arange(ch.n_bins).reshape(tuple(a.size for a in ch.axes)) + offset
        offset += ch.n_bins
        qi, splits = _splits(ch)
        for stage, about in STAGES.items():
            for q, k in splits:
                sub = grid if k is None else np.take(grid, k, axis=qi)
                axes = [a for i, a in enumerate(ch.axes) if k is None or i != qi]
                tables.append(_table(ctx, ch, stage, about, q, sub, axes, labels))
    return tables


def _table(ctx, ch, stage, about, q, sub, axes, labels) -> hd.Table:
    b = ctx.bands
    rows = sub.reshape(-1)
    split = q is not None
    where = f"channel {ch.name}" + (f", {charge_word(q)} muon charge ({q:+g})" if split else "")
    name = f"{stage} distribution {ch.name}" + (f" {charge_word(q)} charge" if split else "")
    dims = " and ".join(a.label or a.name for a in axes)
    t = new_table(
        ctx,
        name,
        f"Data and {about}, in events per bin, in {where}, in bins of {dims}; data "
        "uncertainty sqrt(N). The yield of each process follows the total. "
        f"Likelihood archive {ctx.archive_path.name}.",
        ("N",),
        ("Transverse Momentum Dependence", "Pseudorapidity Dependence"),
    )
    for j, ax in enumerate(axes):
        t.add_variable(_axis_variable(ax, np.unravel_index(np.arange(rows.size), sub.shape)[j]))
    data = b.data[rows]
    if np.all(data == np.round(data)):  # counts: written as integers
        data = data.astype(np.int64)
    t.add_variable(
        numbers(ctx, "Data", data, digits=7, errors={"stat": np.sqrt(np.clip(data, 0, None))})
    )
    yields = b.prefit if stage == "Prefit" else b.postfit
    unc = b.prefit_unc if stage == "Prefit" else b.postfit_unc
    total = yields[:, rows].sum(axis=0)
    t.add_variable(numbers(ctx, f"{stage} total", total, digits=6, errors={"unc": unc[rows]}))
    for i, proc in enumerate(b.processes):
        y = yields[i, rows]
        if not np.any(y != 0):
            continue
        t.add_variable(
            numbers(ctx, f"{stage} {proc}", y, digits=5, qualifiers=[("Process", labels[proc], "")])
        )
    return t
