"""The text result block of ``wmass-refit``: what a physicist pastes into a talk.

Blinded results (the archive has a blinding offset and ``--unblind`` was not given) show the
shift from the archive's reference value **plus the hidden offset**,
``mW - 80360.0 MeV = +12.3 +- 9.9 MeV [BLINDED]``, never the absolute value; differences between
fits of the same archive (PDF sweep deltas, biases, toy spreads) do not depend on the offset,
nor does the difference of two parts of a split POI, which share it (``mW_plus - mW_minus``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..text import printable_lines

if TYPE_CHECKING:  # annotations only: schema imports this module (RefitResult.summary)
    from .schema import Impacts, POIDifference, POIValue, RefitResult

RULE = "=" * 78
THIN = "-" * 78


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)


def decimals(unc: float | None) -> int:
    """Decimals that show an uncertainty ``unc`` with two or three significant digits (1 for
    uncertainties of 1 and more, as MeV values of mW are shown)."""
    if unc is None or not math.isfinite(unc) or unc <= 0 or unc >= 1:
        return 1
    return 2 - math.floor(math.log10(unc))


def _unit(u: str) -> str:
    return f" {u}" if u else ""


def rate_poi_line(p: POIValue, blinded: bool) -> str:
    """A POI other than a mass, in its physical value ``central + scale * theta``:
    ``r = 1.032 +- 0.154 (stat 0.120, syst 0.097)``, and theta when the scale is not 1 or
    the central value not 0 or 1."""
    d = decimals(p.physical_unc)
    if p.physical_value is None:  # a result written before the physical fields existed
        return f"{p.name} = {_f(p.value, '.5g')} +- {_f(p.unc, '.3g')}"
    fmt = f".{d}f"
    split = f" (stat {_f(p.stat, fmt)}, syst {_f(p.syst, fmt)})" if p.stat is not None else ""
    iv = ""
    if p.physical_interval is not None:
        lo, hi = p.physical_interval
        iv = f"; 68% interval [{lo:{fmt}}, {hi:{fmt}}]"
    theta = ""
    if p.scale != 1.0 or p.central not in (0.0, 1.0):
        theta = f" [theta {_f(p.value, '.4g')} +- {_f(p.unc, '.3g')}]"
    return (
        f"{p.name} = {p.physical_value:{fmt}} +- {_f(p.physical_unc, fmt)}{_unit(p.unit)}"
        f"{split}{iv}{theta}" + ("  [BLINDED]" if blinded else "")
    )


def poi_line(p: POIValue, blinded: bool, asimov: bool = False) -> str:
    """``mW = 80360.2 +- 9.9 MeV (stat 2.4, syst 9.6)`` or its blinded form; on Asimov data
    the shift from the reference without any offset (``[Asimov]``); other POIs as
    :func:`rate_poi_line` shows them."""
    split = ""
    if p.stat_mev is not None:
        split = f" (stat {_f(p.stat_mev)}, syst {_f(p.syst_mev)})"
    if p.kind != "mass" or p.value_mev is None:
        return rate_poi_line(p, blinded)
    iv = ""
    if p.interval_mev is not None:
        lo, hi = (x - (p.reference_mev or 0.0) if blinded else x for x in p.interval_mev)
        iv = (
            f"; 68% interval [{lo:+.1f}, {hi:+.1f}]"
            if blinded
            else f"; 68% interval [{lo:.1f}, {hi:.1f}]"
        )
    if blinded or asimov:
        return (
            f"{p.name} - {p.reference_mev:.1f} {p.unit} = {p.shift_mev:+.1f} +- "
            f"{_f(p.unc_mev)} {p.unit}{split}{iv}  " + ("[BLINDED]" if blinded else "[Asimov]")
        )
    return f"{p.name} = {p.value_mev:.1f} +- {_f(p.unc_mev)} {p.unit}{split}{iv}"


def difference_line(d: POIDifference) -> str:
    """``mW_plus - mW_minus = 57.0 +- 30.1 MeV (correlation -0.21)``: the difference of two
    parts of a split POI in their unit; ``blinded`` in place of a value withheld while blinded
    (the POIs' offsets differ), never the offsets."""
    fmt = f".{decimals(d.uncertainty)}f"
    value = "blinded" if d.blinded else _f(d.value, fmt)
    why = "; the POIs' blinding offsets differ" if d.blinded else ""
    return (
        f"{d.name} = {value} +- {_f(d.uncertainty, fmt)}{_unit(d.unit)} "
        f"(correlation {_f(d.correlation, '.2f')}{why})"
    )


def impact_table(imp: Impacts) -> list[str]:
    """The CMS-style impact table, nominal and global side by side (the archive's group in
    brackets after a CMS category); the total is the POI's uncertainty in both columns (the
    squares of the global impacts add up to it)."""
    cols = [c for c, d in (("nominal", imp.nominal), ("global", imp.global_)) if d]
    title = f"Impacts on {imp.poi}" + (f" ({imp.unit})" if imp.unit else "")
    fmt = f".{decimals(imp.total)}f"
    lines = [f"  {title:<34}" + "".join(f"{c:>9}" for c in cols)]
    for r in imp.cms:
        vals = {"nominal": r.nominal, "global": r.global_}
        src = "" if r.groups == [r.label] else f"  [{', '.join(r.groups)}]"
        lines.append(f"    {r.label:<32}" + "".join(f"{_f(vals[c], fmt):>9}" for c in cols) + src)
    lines.append(f"    {'Total':<32}" + "".join(f"{_f(imp.total, fmt):>9}" for _ in cols))
    return lines


def format_result(r: RefitResult) -> str:
    """The whole result block (see the module docstring), every line escaped
    (:func:`~wmass_archive.text.printable`: the archive's names, labels and units may hold
    control characters and newlines)."""
    a = r.archive
    what = (
        "W-boson mass"
        if any(p.kind == "mass" for p in r.pois.values())
        else f"fit of {', '.join(r.pois) or 'the archive'}"
    )
    lines = [RULE, f"wmass-refit: {what}", RULE]
    lines.append(f"  archive   {a.name}: {a.title}")
    lines.append(
        f"            {a.path} (format {a.format_version}, {a.n_bins} bins, "
        f"{a.n_nuisances} nuisances)"
    )
    if r.pdf is not None:
        p = r.pdf
        cl = (
            f", eigenvectors at {p.confidence_level:.4g}% CL"
            if abs(p.confidence_level - 68.27) > 0.01
            else ""
        )
        kept = f", {100 * p.variance_kept:.1f}% of the replica variance" if p.variance_kept else ""
        where = {
            "archive": "in the archive" + (", nominal" if p.nominal else ""),
            "lhapdf": "computed from LHAPDF" + (" (cached grid)" if p.grid_cached else ""),
        }
        lines.append(
            f"  PDF set   {p.name} ({p.lhapdf_name}; {where[p.source]}): {p.error_type}, "
            f"{p.n_nuisances} nuisances{cl}{kept}, uncertainty x{p.scale:g}"
            + (
                f" (archive: x{p.archive_scale:g})"
                if p.archive_scale not in (None, p.scale)
                else ""
            )
        )
    if r.theory is not None:
        t = r.theory
        lines.append(
            "  theory    "
            + (
                "the archive's nominal grid"
                if t.source == "archive"
                else f"user grid {t.label}: {t.file}, total x{t.ratio_to_nominal:.4f} of the "
                "archive's nominal"
            )
        )
    data = "Asimov (expected) data" if r.fit.asimov else "observed data"
    frozen = f"; frozen: {', '.join(r.fit.frozen)}" if r.fit.frozen else ""
    # a split (mw, mw-charge, ...) by its name, an archive POI chosen by name with the others
    pois = ", ".join(r.pois) if r.poi_definition in r.pois else r.poi_definition
    lines.append(
        f"  fit       {data}, POIs {pois}, Barlow-Beeston lite "
        f"({r.fit.bb}){frozen}; {r.fit.status} (edm {r.fit.edm:.2g})"
    )
    lines.append("")
    if r.synthetic:
        lines.append(
            "  *** SYNTHETIC archive: pseudo-data from a simulation, not a measurement ***"
        )
    if r.blinded:
        ref = next((p.reference_mev for p in r.pois.values() if p.reference_mev is not None), None)
        lines.append(
            f"  *** BLINDED: values are mW - {_f(ref)} MeV plus a hidden offset; "
            "--unblind shows mW ***"
            if ref is not None
            else "  *** BLINDED: values carry a hidden offset; --unblind shows them ***"
        )
    if r.fit.asimov:
        lines.append(
            "  *** ASIMOV: expected data, shown without blinding offset (mW - reference) ***"
        )
    if r.synthetic or r.blinded or r.fit.asimov:
        lines.append("")
    for p in r.pois.values():
        lines.append("  " + poi_line(p, r.blinded, r.fit.asimov))
    for d in r.poi_differences:
        lines.append("  " + difference_line(d))
    for imp in r.impacts_by_poi.values():
        lines.append("")
        lines += impact_table(imp)
    if r.gof is not None:
        lines.append("")
        lines.append(
            f"  Goodness of fit (saturated): chi2/ndof = {r.gof.chi2:.2f}/{r.gof.ndof}, "
            f"p = {r.gof.p_value:.3f}"
        )
    for s in r.scans:
        ok = sum(s.converged)
        p = r.pois.get(s.poi)
        if p is None or p.kind == "mass" or s.physical_values is None:
            where = f"[{s.shift_mev[0]:+.1f}, {s.shift_mev[-1]:+.1f}] {s.unit or 'MeV'}"
        else:
            d = decimals(p.physical_unc)
            x = s.physical_values
            where = f"{s.poi} in [{x[0]:.{d}f}, {x[-1]:.{d}f}]{_unit(p.unit)}"
        lines.append(
            f"  Likelihood scan of {s.poi}: {len(s.shift_mev)} points over {where}, "
            f"{ok} converged, max 2dNLL {max(s.two_delta_nll):.2f}"
        )
    if r.hypotests or r.upper_limits:
        lines += [""] + hypotest_lines(r)
    if r.sweep:
        lines += [""] + sweep_table(r)
    if r.bias:
        lines += [""] + bias_table(r)
    if r.toys is not None:
        t = r.toys
        u = "MeV" if t.unit is None else t.unit
        d = 2 if u == "MeV" else decimals(t.mean_unc_mev) + 1
        lines += [
            "",
            f"  Toys: {t.n_toys} (seed {t.seed}), {t.n_converged} converged: "
            f"{t.poi} mean bias {_f(t.mean_bias_mev, f'+.{d}f')}{_unit(u)}, spread "
            f"{_f(t.std_mev, f'.{d}f')}{_unit(u)}, mean uncertainty "
            f"{_f(t.mean_unc_mev, f'.{d}f')}{_unit(u)}, "
            f"pull mean {_f(t.pull_mean, '+.3f')}, pull width {_f(t.pull_std, '.3f')}",
        ]
    for n in r.notes:
        lines.append(f"  note: {n}")
    tm = r.timing_s
    lines.append(THIN)
    lines.append(
        f"  time {tm.total:.1f} s: build {tm.build:.1f}, compile {tm.compile:.1f}, fit "
        f"{tm.fit:.1f}, impacts {tm.impacts:.1f}"
        + (f", PDF grid {tm.pdf_grid:.1f}" if tm.pdf_grid > 0.05 else "")
        + (f", sweep {tm.sweep:.1f}" if tm.sweep else "")
        + (f", bias {tm.bias:.1f}" if tm.bias else "")
        + (f", toys {tm.toys:.1f}" if tm.toys else "")
        + (f", CLs {tm.hypotests:.1f}" if tm.hypotests else "")
        + " s"
    )
    lines.append(RULE)
    return printable_lines(lines)


STAT_NAMES = {"qtilde": "q~mu", "q": "q_mu", "q0": "q0"}


def hypotest_lines(r: RefitResult) -> list[str]:
    """The hypothesis tests (CLs or p0 with the expected band) and the upper limits."""
    lines = []
    band = ("-2s", "-1s", "median", "+1s", "+2s")
    for h in r.hypotests:
        how = "asymptotic" if h.calculator == "asymptotic" else f"{h.n_toys} toys"
        exp = ", ".join(f"{lab} {v:.4g}" for lab, v in zip(band, h.cls_exp, strict=True))
        if h.test_statistic == "q0":
            lines.append(
                f"  Discovery test of {h.poi} ({STAT_NAMES[h.test_statistic]}, {how}): "
                f"p0 = {h.cls_obs:.4g} (Z = {_f(h.significance, '.2f')}); expected {exp}"
            )
            continue
        lines.append(
            f"  CLs of {h.poi} = {h.value:g} ({STAT_NAMES[h.test_statistic]}, {how}): "
            f"{h.cls_obs:.4g} (CLs+b {h.clsb:.4g}, CLb {h.clb:.4g}); expected {exp}"
        )
    for u in r.upper_limits:
        e = u.expected
        lines.append(
            f"  {100 * u.cl:g}% CL upper limit on {u.poi} (CLs, {STAT_NAMES[u.test_statistic]}, "
            f"{u.calculator}): observed {u.observed:.4g}, expected {e[2]:.4g} "
            f"[-1s {e[1]:.4g}, +1s {e[3]:.4g}; -2s {e[0]:.4g}, +2s {e[4]:.4g}]"
        )
    return lines


def sweep_table(r: RefitResult) -> list[str]:
    """The PDF sweep as CMS shows it: mW with the original and the scaled PDF uncertainty."""
    what = "mW - ref, blinded" if r.blinded else "mW - ref"
    ref = next((p.reference_mev for p in r.pois.values() if p.reference_mev is not None), 0.0)
    lines = [
        f"  PDF sweep ({what}; ref = {_f(ref)} MeV; sigma_PDF: nominal impact of the set's "
        "PDF group)",
        f"    {'PDF set':<24}{'scale':>6}  {'original sigma_PDF':^26}  "
        f"{'scaled sigma_PDF':^26}{'delta':>8}",
        f"    {'':<24}{'':>6}  {'mW':>14}{'s_PDF':>12}  {'mW':>14}{'s_PDF':>12}{'':>8}",
    ]
    for s in r.sweep or []:
        tag = " *" if r.pdf is not None and s.pdf == r.pdf.name else ""
        src = " (LHAPDF)" if s.source == "lhapdf" else ""
        lines.append(
            f"    {(s.pdf + src + tag)[:24]:<24}{s.scale:>6.2g}  "
            f"{_f(s.shift_mev, '+.1f') + ' +- ' + _f(s.unc_mev):>14}{_f(s.pdf_unc_mev):>12}  "
            f"{_f(s.scaled_shift_mev, '+.1f') + ' +- ' + _f(s.scaled_unc_mev):>14}"
            f"{_f(s.scaled_pdf_unc_mev):>12}{_f(s.delta_mev, '+.1f'):>8}"
            + ("" if s.converged else "  (not converged)")
        )
    lines.append("    * the set in use; delta: scaled mW minus the scaled mW of the set in use")
    return lines


def bias_table(r: RefitResult) -> list[str]:
    """The bias study: each set's prediction as pseudo-data, the bias and the scale needed."""
    rows = r.bias or []
    model = rows[0].model if rows else "?"
    lines = [
        f"  PDF bias: each set's central prediction as Asimov pseudo-data, fitted with the "
        f"{model} model (PDF uncertainty x1)",
        f"    {'pseudo-data':<24}{'bias':>9}{'s_PDF':>9}{'total':>9}{'scale':>8}"
        f"{'bias(s)':>10}{'s_PDF(s)':>10}  covered",
    ]
    for b in rows:
        lines.append(
            f"    {b.pseudo_data[:24]:<24}{_f(b.bias_mev, '+.2f'):>9}{_f(b.pdf_unc_mev, '.2f'):>9}"
            f"{_f(b.total_unc_mev):>9}{_f(b.scale_needed, '.1f'):>8}"
            f"{_f(b.bias_at_scale_mev, '+.2f') if b.bias_at_scale_mev is not None else '':>10}"
            f"{_f(b.pdf_unc_at_scale_mev, '.2f') if b.pdf_unc_at_scale_mev is not None else '':>10}"
            f"  {'yes' if b.covered else ('no' if b.covered is not None else 'n/a')}"
        )
    need = max((b.scale_needed or 1.0 for b in rows), default=1.0)
    lines.append(
        f"    (MeV) scale: smallest factor of the {model} PDF uncertainty with |bias| <= "
        f"s_PDF; covering every set: x{need:.1f}"
    )
    return lines
