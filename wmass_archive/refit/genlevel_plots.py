"""Plots of the generator-level distributions of a refit (``result.generator_level``; see
refit/genlevel.py), in the style of :mod:`wmass_archive.refit.plots` and written by its
:func:`~wmass_archive.refit.plots.make_plots` (``wmass-refit --plot DIR``):

* ``genlevel_<charge>_<axis>``: d sigma / d axis of the unpolarised cross section (pb per unit
  of the axis: the stored pb per bin divided by the bin width), the prefit and postfit bands,
  and a panel of both relative to the prefit value;
* ``genlevel_<charge>_<axis>_coeffs``: A_0 .. A_7 against the axis, prefit and postfit bands,
  each with a panel of postfit - prefit (a ratio would divide by coefficients that cross 0).

Everything comes from the result's JSON fields (a result read back with ``RefitResult.load``
plots the same); archive axis names reach the plots through
:func:`~wmass_archive.text.plot_text`, file names through the plots' safe file stems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..text import plot_text as _t
from .plots import _figure, _label, _save
from .schema import GenDistribution, RefitResult

#: mathtext of the axes of the package's generator binning (the archive's own label otherwise)
_MATH = {"ptW": "p_T^W", "absYW": "|y^W|", "yW": "y^W"}
_CHARGE = {"plus": "$W^{+}$", "minus": "$W^{-}$", "all": "$W^{\\pm}$"}
_PRE, _POST = "tab:blue", "tab:red"


def _arr(x: list[Any]) -> np.ndarray:
    """A JSON list (None where undefined) as floats, NaN for None."""
    return np.array([np.nan if v is None else v for v in x], dtype=np.float64)


def _axis_text(d: GenDistribution) -> tuple[str, str]:
    """(the axis in physics notation, the same with its unit: ``$p_T^W$ [GeV]``)."""
    a = d.axis
    sym = f"${_MATH[a.name]}$" if a.name in _MATH else _t(a.label or a.name, max_len=40)
    return sym, sym + (f" [{_t(a.unit, max_len=20)}]" if a.unit else "")


def _band(ax, edges: np.ndarray, v: np.ndarray, u: np.ndarray, color: str, label: str) -> None:
    """A line with its one-sigma band (stairs over the bins)."""
    ax.stairs(v + u, edges, baseline=v - u, fill=True, alpha=0.3, color=color, lw=0)
    ax.stairs(v, edges, baseline=None, color=color, lw=1.3, label=label)


def _charge_text(charge: str) -> str:
    return _CHARGE.get(charge, _t(charge, max_len=20))


def _cross_section(r: RefitResult, d: GenDistribution, charge: str, out: Path, hep, files) -> None:
    edges = np.asarray(d.axis.edges, dtype=np.float64)
    width = np.diff(edges)
    pre, pre_u = _arr(d.prefit) / width, _arr(d.prefit_unc) / width
    post, post_u = _arr(d.postfit) / width, _arr(d.postfit_unc) / width
    sym, label = _axis_text(d)
    fig, ax, rax = _figure(ratio=True, size=(8, 7))
    _band(ax, edges, pre, pre_u, _PRE, "prefit")
    _band(ax, edges, post, post_u, _POST, "postfit")
    per = f"pb/{_t(d.axis.unit, max_len=20)}" if d.axis.unit else "pb"
    dsym = sym if d.axis.name in _MATH else f"({sym})"
    ax.set_ylabel(f"$d\\sigma$ / d{dsym} [{per}]")
    pos = pre[np.isfinite(pre) & (pre > 0)]
    if pos.size and pos.max() > 30.0 * pos.min():
        ax.set_yscale("log")
    ax.legend(title=f"{_charge_text(charge)}, unpolarised", fontsize="small")
    ax.tick_params(labelbottom=False)
    _label(ax, r, hep, None)
    ref = np.where(pre != 0, pre, np.nan)
    _band(rax, edges, np.ones_like(pre), pre_u / np.abs(ref), _PRE, "prefit")
    _band(rax, edges, post / ref, post_u / np.abs(ref), _POST, "postfit")
    rax.axhline(1.0, color="grey", lw=0.8)
    rax.set_ylabel("ratio to prefit")
    rax.set_xlabel(label)
    _save(fig, out, f"genlevel_{charge}_{d.axis.name}", files)


def _coefficients(
    r: RefitResult, dists: list[GenDistribution], charge: str, out: Path, hep, files
) -> None:
    from matplotlib.figure import Figure

    ncol = min(4, len(dists))
    nrow = -(-len(dists) // ncol)
    fig = Figure(figsize=(5.0 * ncol, 5.0 * nrow))
    ratios = ([3.0, 1.2, 0.5] * nrow)[:-1]  # main, difference, a spacer before the next row
    gs = fig.add_gridspec(len(ratios), ncol, height_ratios=ratios, hspace=0.1, wspace=0.5)
    frame = fig.add_subplot(gs[0, :], frameon=False)  # carries the label over the whole row
    frame.set_xticks([])
    frame.set_yticks([])
    _label(frame, r, hep, None)
    for k, d in enumerate(dists):
        row, col = divmod(k, ncol)
        ax = fig.add_subplot(gs[3 * row, col])
        dax = fig.add_subplot(gs[3 * row + 1, col], sharex=ax)
        edges = np.asarray(d.axis.edges, dtype=np.float64)
        pre, pre_u = _arr(d.prefit), _arr(d.prefit_unc)
        post, post_u = _arr(d.postfit), _arr(d.postfit_unc)
        _band(ax, edges, pre, pre_u, _PRE, "prefit")
        _band(ax, edges, post, post_u, _POST, "postfit")
        name = _t(d.quantity, max_len=10)
        ax.set_ylabel(f"$A_{{{name[1:]}}}$" if d.quantity[1:].isdigit() else name)
        ax.tick_params(labelbottom=False, labelsize="small")
        _band(dax, edges, np.zeros_like(pre), pre_u, _PRE, "prefit")
        _band(dax, edges, post - pre, post_u, _POST, "postfit")
        dax.axhline(0.0, color="grey", lw=0.8)
        dax.set_ylabel("post-pre", fontsize="x-small")
        dax.tick_params(labelsize="x-small")
        if k + ncol >= len(dists):  # the lowest panel of its column
            dax.set_xlabel(_axis_text(d)[1])
        else:
            dax.tick_params(labelbottom=False)
        if k == 0:  # one legend over the figure, clear of the bands
            handles, labels = ax.get_legend_handles_labels()
            frame.legend(
                handles,
                [f"{_charge_text(charge)} {x}" for x in labels],
                loc="lower center",
                bbox_to_anchor=(0.5, 1.0),
                ncol=len(labels),
                frameon=False,
                fontsize="small",
            )
    _save(fig, out, f"genlevel_{charge}_{dists[0].axis.name}_coeffs", files)


def draw_generator_level(r: RefitResult, out: Path, hep, files: list[Path]) -> None:
    """Every generator-level plot of ``r`` (none without ``generator_level``) into ``out``."""
    g = r.generator_level
    if g is None:
        return
    for charge, by_key in g.charges.items():
        axes = {d.axis.name for d in by_key.values()}
        for name in sorted(axes):
            on_axis = [d for d in by_key.values() if d.axis.name == name]
            for d in on_axis:
                if d.quantity == "sigma":
                    _cross_section(r, d, charge, out, hep, files)
            coeffs = [d for d in on_axis if d.quantity != "sigma"]
            if coeffs:
                _coefficients(r, coeffs, charge, out, hep, files)
