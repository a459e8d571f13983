"""Plots of a refit (matplotlib; mplhep's CMS-like style when it is installed), each written as
PNG and PDF:

* ``postfit_unrolled``: every bin, postfit yields stacked by process (at the fitted parameters,
  without the Barlow-Beeston factors), the prefit total and the data, with data/prediction;
* ``postfit_<charge>_unrolled`` and ``postfit_<charge>_<axis>``: the same per muon charge,
  unrolled and projected on each other axis;
* ``pulls_impacts``: pulls and constraints of the nuisances with the largest impacts, and the
  impacts;
* ``impacts_groups``: the CMS-style group impacts, nominal and global;
* ``scan_<poi>``: likelihood scans, with the Hessian parabola;
* ``pdf_sweep`` and ``pdf_bias``: the PDF studies;
* ``genlevel_<charge>_<axis>`` and ``genlevel_<charge>_<axis>_coeffs``: the generator-level
  cross sections and angular coefficients, prefit and postfit (refit/genlevel_plots.py).

The archive's names, labels and units reach the plots through
:func:`~wmass_archive.text.plot_text` (control characters escaped, never mathtext) and the file
names through :func:`~wmass_archive.text.safe_filename` (one bounded component inside the
folder; a hash is appended to a name that had to change, and to one that differs from an
earlier file's only in case).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from .._optional import require
from ..errors import MissingExtraError
from ..text import plot_text as _t
from ..text import safe_filename
from .schema import RefitResult

N_PULLS = 30


def _style():
    """mplhep and its CMS style; without mplhep (the ``plot`` extra brings it), plain
    matplotlib, with a warning naming the extra."""
    try:
        hep = require("mplhep", "plot", "the CMS style of the plots")
        return hep, hep.style.CMS
    except MissingExtraError as exc:
        warnings.warn(f"{exc}; the plots are drawn in matplotlib's style", stacklevel=3)
        return None, {}
    except Exception:  # an mplhep that does not match this matplotlib: plain style
        return None, {}


def _figure(nrows: int = 1, ratio: bool = False, size=(10, 7)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    if ratio:
        gs = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
        ax = fig.add_subplot(gs[0])
        rax = fig.add_subplot(gs[1], sharex=ax)
        return fig, ax, rax
    axes = [fig.add_subplot(nrows, 1, i + 1) for i in range(nrows)]
    return fig, axes[0] if nrows == 1 else axes, None


def _label(ax, r: RefitResult, hep, lumi_fb: float | None) -> None:
    """'wmass-archive  Synthetic, blinded' above the axes on the left, the luminosity on the
    right (no experiment's logo: the archive says who produced it)."""
    text = ("Synthetic" if r.synthetic else "Preliminary") + (", blinded" if r.blinded else "")
    ax.text(
        0.0,
        1.01,
        f"wmass-archive: {text}",
        transform=ax.transAxes,
        ha="left",
        va="bottom",
        fontsize="small",
        fontstyle="italic",
    )
    right = (f"{lumi_fb:.3g} fb$^{{-1}}$ " if lumi_fb else "") + "(13 TeV)"
    ax.text(1.0, 1.01, right, transform=ax.transAxes, ha="right", va="bottom", fontsize="small")


def _file_stem(stem: str, files: list[Path]) -> str:
    """``stem`` (which may hold an archive's name) as a safe file name that no file written
    before has, even on a case-insensitive file system."""
    used = {p.stem.lower() for p in files}
    safe, k = safe_filename(stem), 0
    while safe.lower() in used:
        k += 1
        safe = safe_filename(f"{stem}#{k}")
    return safe


def _save(fig, out: Path, stem: str, files: list[Path]) -> None:
    stem = _file_stem(stem, files)
    for ext in ("png", "pdf"):
        p = out / f"{stem}.{ext}"
        fig.savefig(p, dpi=110 if ext == "png" else None, bbox_inches="tight")
        files.append(p)


def make_plots(result: RefitResult, folder: str | Path) -> list[Path]:
    """Write every plot the result allows into ``folder``; returns the files written."""
    mstyle = require("matplotlib.style", "plot", "the refit plots (wmass-refit --plot)")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    hep, sty = _style()
    files: list[Path] = []
    with mstyle.context(sty):
        if result.model is not None and result.fit_result is not None:
            _postfit(result, out, hep, files)
            _pulls(result, out, hep, files)
        _groups(result, out, hep, files)
        _scans(result, out, hep, files)
        _sweep(result, out, hep, files)
        _bias(result, out, hep, files)
        if result.generator_level is not None:
            from .genlevel_plots import draw_generator_level  # imports this module

            draw_generator_level(result, out, hep, files)
    return files


def _channel_info(result: RefitResult):
    from ..archive.reader import open_archive

    with open_archive(result.archive.path) as a:
        m = a.metadata
        lumi = m.luminosity.value / 1000.0 if m.luminosity is not None else None
        return list(m.channels), lumi


def _stack(ax, rax, x_edges, procs, names, data, prefit, xlabel):
    bottom = np.zeros_like(data, dtype=float)
    order = np.argsort([p.sum() for p in procs])  # small processes at the bottom
    for i in order:
        ax.stairs(
            bottom + procs[i], x_edges, baseline=bottom, fill=True, label=_t(names[i]), alpha=0.8
        )
        bottom = bottom + procs[i]
    ax.stairs(prefit, x_edges, color="k", ls="--", lw=0.8, label="prefit")
    centers = 0.5 * (x_edges[1:] + x_edges[:-1])
    ax.errorbar(
        centers, data, yerr=np.sqrt(np.maximum(data, 0)), fmt="k.", ms=2, lw=0.6, label="data"
    )
    ax.set_ylabel("events / bin")
    ax.legend(ncol=3, fontsize="x-small", loc="upper right")
    ax.set_ylim(0, 1.35 * max(float(np.max(bottom)), float(np.max(data)), 1.0))
    ax.tick_params(labelbottom=False)
    tot = np.where(bottom > 0, bottom, np.nan)
    rax.errorbar(
        centers, data / tot, yerr=np.sqrt(np.maximum(data, 0)) / tot, fmt="k.", ms=2, lw=0.6
    )
    rax.stairs(prefit / tot, x_edges, color="k", ls="--", lw=0.8)
    rax.axhline(1.0, color="grey", lw=0.8)
    rax.set_ylabel("data / pred.")
    rax.set_xlabel(xlabel)
    lo, hi = np.nanpercentile(data / tot, [1, 99]) if np.isfinite(tot).any() else (0.9, 1.1)
    pad = max(0.02, 0.2 * (hi - lo))
    rax.set_ylim(max(0.0, lo - pad), hi + pad)


def _postfit(r: RefitResult, out: Path, hep, files: list[Path]) -> None:
    model, res = r.model, r.fit_result
    theta = np.array([p.value for p in res.parameters])
    post = model.expected_by_process(theta)
    pre = model.expected(np.zeros(model.n_params))
    data = np.asarray(model.data)
    names = list(model.info.processes)
    channels, lumi = _channel_info(r)

    def draw(idx, stem, xlabel, edges=None, reduce=None):
        fig, ax, rax = _figure(ratio=True)
        procs = [post[i, idx] for i in range(len(names))]
        d, p = data[idx], pre[idx]
        if reduce is not None:
            procs, d, p = [reduce(x) for x in procs], reduce(d), reduce(p)
        e = np.arange(len(d) + 1, dtype=float) if edges is None else edges
        _stack(ax, rax, e, procs, names, d, p, xlabel)
        _label(ax, r, hep, lumi)
        _save(fig, out, stem, files)

    draw(np.arange(model.n_bins), "postfit_unrolled", "bin (channels unrolled)")
    offsets = np.cumsum([0] + [c.n_bins for c in channels])
    for c, ch in enumerate(channels):
        names_ax = [a.name.lower() for a in ch.axes]
        qi = next((i for i, n in enumerate(names_ax) if n in ("charge", "q", "qmu")), None)
        if qi is None:
            continue
        grid = np.arange(ch.n_bins).reshape(ch.shape) + offsets[c]
        qax = ch.axes[qi]
        qvals = (qax.categories if not qax.is_continuous else qax.centers().tolist()) or []
        for k, q in enumerate(qvals):
            tag = "plus" if float(q) > 0 else "minus"
            sub = np.take(grid, k, axis=qi)
            draw(
                sub.reshape(-1),
                f"postfit_{tag}_unrolled",
                _t(
                    f"bin ({' x '.join(a.name for i, a in enumerate(ch.axes) if i != qi)} unrolled)"
                ),
            )
            others = [i for i in range(len(ch.axes)) if i != qi]
            for j, ai in enumerate(others):
                ax_obj = ch.axes[ai]
                if not ax_obj.is_continuous:
                    continue
                keep = j

                def reduce(x, keep=keep, shape=sub.shape):
                    arr = x.reshape(shape)
                    return arr.sum(axis=tuple(i for i in range(arr.ndim) if i != keep))

                unit = f" [{ax_obj.unit}]" if ax_obj.unit else ""
                draw(
                    sub.reshape(-1),
                    f"postfit_{tag}_{ax_obj.name}",
                    _t(f"{ax_obj.name}{unit}"),
                    edges=ax_obj.bin_edges(),
                    reduce=reduce,
                )


def _pulls(r: RefitResult, out: Path, hep, files: list[Path]) -> None:
    res = r.fit_result
    poi = next(iter(r.pois))
    table = None
    for kind in ("nominal", "global"):
        with contextlib.suppress(KeyError):
            table = res.impact(kind, poi)
            break
    params = {p.name: p for p in res.parameters}
    if table is not None and table.nuisances:
        ranked = sorted(table.nuisances.items(), key=lambda kv: -abs(kv[1]))
    else:
        ranked = [(p.name, 0.0) for p in res.parameters if p.pull is not None]
        ranked.sort(key=lambda kv: -abs(params[kv[0]].pull or 0.0))
    ranked = [kv for kv in ranked if kv[0] in params][:N_PULLS][::-1]
    if not ranked:
        return
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 0.32 * len(ranked) + 2))
    a1 = fig.add_subplot(1, 2, 1)
    a2 = fig.add_subplot(1, 2, 2, sharey=a1)
    y = np.arange(len(ranked))
    pulls = [params[n].pull if params[n].pull is not None else params[n].value for n, _ in ranked]
    cons = [params[n].constraint if params[n].constraint is not None else 0.0 for n, _ in ranked]
    a1.axvspan(-1, 1, color="0.9")
    a1.errorbar(pulls, y, xerr=cons, fmt="ko", ms=3)
    a1.set_yticks(y, [_t(n, max_len=60) for n, _ in ranked], fontsize="xx-small")
    a1.set_xlabel("pull and constraint")
    a1.set_xlim(-2.5, 2.5)
    imp = np.array([v for _, v in ranked])
    a2.barh(y, imp, color=np.where(imp >= 0, "tab:red", "tab:blue"))
    a2.set_xlabel(_t(f"{table.kind if table else ''} impact ({table.unit if table else ''})"))
    a2.tick_params(labelleft=False)
    _save(fig, out, "pulls_impacts", files)


def _groups(r: RefitResult, out: Path, hep, files: list[Path]) -> None:
    if r.impacts is None or not r.impacts.cms:
        return
    rows = r.impacts.cms[::-1]
    fig, ax, _ = _figure(size=(9, 0.4 * len(rows) + 2))
    y = np.arange(len(rows))
    nom = [x.nominal if x.nominal is not None and np.isfinite(x.nominal) else 0 for x in rows]
    glo = [x.global_ if x.global_ is not None and np.isfinite(x.global_) else 0 for x in rows]
    ax.barh(y + 0.2, nom, height=0.4, label="nominal")
    ax.barh(y - 0.2, glo, height=0.4, label="global")
    ax.set_yticks(y, [_t(x.label, max_len=60) for x in rows], fontsize="small")
    ax.set_xlabel(_t(f"impact on {r.impacts.poi} ({r.impacts.unit}); total {r.impacts.total:.1f}"))
    ax.legend(fontsize="small")
    _save(fig, out, "impacts_groups", files)


def _scans(r: RefitResult, out: Path, hep, files: list[Path]) -> None:
    for s in r.scans:
        fig, ax, _ = _figure(size=(8, 6))
        p = r.pois.get(s.poi)
        mass = p is None or p.kind == "mass" or s.physical_values is None
        # mW: its shift from the reference; other POIs: their physical value
        x = np.array(s.shift_mev if mass else s.physical_values)
        q = np.array(s.two_delta_nll, dtype=float)
        ax.plot(x, q, "o-", label="profile likelihood")
        x0 = None if p is None else (p.shift_mev if mass else p.physical_value)
        unc = None if p is None else (p.unc_mev if mass else p.physical_unc)
        if x0 is not None and unc:
            xx = np.linspace(x.min(), x.max(), 200)
            ax.plot(xx, ((xx - x0) / unc) ** 2, "--", label="Hessian")
        ax.axhline(1.0, color="grey", lw=0.8)
        ref = p.reference_mev if p is not None else None
        unit = f" ({p.unit})" if p is not None and p.unit else ""
        ax.set_xlabel(
            _t(
                f"{s.poi} - {ref:.1f} MeV" + (" (blinded)" if r.blinded else "")
                if ref is not None
                else s.poi + unit + (" (blinded)" if r.blinded else "")
            )
        )
        ax.set_ylabel(r"$-2\Delta\ln L$")
        ax.legend()
        _save(fig, out, f"scan_{s.poi}", files)


def _sweep(r: RefitResult, out: Path, hep, files: list[Path]) -> None:
    if not r.sweep:
        return
    fig, ax, _ = _figure(size=(8, 0.6 * len(r.sweep) + 2))
    y = np.arange(len(r.sweep))[::-1]
    ax.errorbar(
        [s.shift_mev for s in r.sweep],
        y + 0.12,
        xerr=[s.unc_mev for s in r.sweep],
        fmt="o",
        label=r"original $\sigma_{PDF}$",
    )
    ax.errorbar(
        [s.scaled_shift_mev for s in r.sweep],
        y - 0.12,
        xerr=[s.scaled_unc_mev for s in r.sweep],
        fmt="s",
        label=r"scaled $\sigma_{PDF}$",
    )
    ax.set_yticks(y, [_t(f"{s.pdf} (x{s.scale:g})", max_len=60) for s in r.sweep])
    ax.set_ylim(-0.7, len(r.sweep) - 0.3)
    ax.set_xlabel("mW - ref (MeV)" + (", blinded" if r.blinded else ""))
    ax.legend(fontsize="small")
    _save(fig, out, "pdf_sweep", files)


def _bias(r: RefitResult, out: Path, hep, files: list[Path]) -> None:
    if not r.bias:
        return
    fig, ax, _ = _figure(size=(8, 0.6 * len(r.bias) + 2))
    y = np.arange(len(r.bias))[::-1]
    ax.barh(y, [b.bias_mev or 0.0 for b in r.bias], height=0.5, label="bias")
    ax.errorbar(
        np.zeros(len(y)),
        y,
        xerr=[b.pdf_unc_mev or 0.0 for b in r.bias],
        fmt="none",
        ecolor="k",
        capsize=4,
        label=r"$\sigma_{PDF}$ of the model",
    )
    ax.set_yticks(y, [_t(f"{b.pseudo_data} (s={b.scale_needed:g})", max_len=60) for b in r.bias])
    ax.set_ylim(-0.7, len(r.bias) - 0.3)
    ax.set_xlabel(_t(f"bias in mW (MeV), pseudo-data fitted with the {r.bias[0].model} model"))
    ax.legend(fontsize="small")
    _save(fig, out, "pdf_bias", files)
