"""The result tables of the HEPData export, each built from the refit result (never recomputed
here): mW with its uncertainties, the group impacts (nominal and global), the pulls,
constraints and impacts of every nuisance, the correlation of the POIs with the nuisance
groups, mW for each PDF set, and the likelihood scans. Units: MeV for mW and impacts; pulls and
constraints in prior sigmas (theta units)."""

from __future__ import annotations

import numpy as np

from ...refit.groups import group_impact, group_members
from ...text import safe_filename
from .context import ExportContext
from .errors import HEPDataError
from .variables import MISSING, hd, new_table, numbers, strings, text_column

MASS_OBS = ("M",)


def _fit_sentence(ctx: ExportContext) -> str:
    r = ctx.result
    data = "Asimov data" if r.fit.asimov else "the archive's (pseudo-)data"
    pdf = f", PDF set {r.pdf.name} (uncertainty x{r.pdf.scale:g})" if r.pdf is not None else ""
    return (
        f"Fit of {data} in the likelihood archive {ctx.archive_path.name} "
        f"({r.archive.n_bins} bins, {r.archive.n_nuisances} nuisance parameters{pdf}, "
        f"Barlow-Beeston lite: {r.fit.bb})."
    )


def mass_pois(ctx: ExportContext) -> list:
    """The mass POIs of the result; :class:`HEPDataError` when there is none."""
    pois = [p for p in ctx.result.pois.values() if p.kind == "mass"]
    if not pois:
        raise HEPDataError(
            f"{ctx.archive_path.name} has no mass POI: the HEPData export is for W-mass archives"
        )
    return pois


def result_table(ctx: ExportContext) -> hd.Table:
    """mW (one row per mass POI): value with stat and syst uncertainties, and the total."""
    r = ctx.result
    pois = mass_pois(ctx)
    t = new_table(
        ctx,
        "mW result",
        "The W-boson mass with its statistical (stat: the nominal impact of the data sample "
        "size) and systematic (syst: the rest, in quadrature) uncertainties, and the total "
        f"(Hessian) uncertainty, in MeV. {_fit_sentence(ctx)}",
        MASS_OBS,
    )
    t.add_variable(strings("Parameter", [p.name for p in pois]))
    extra: list[tuple[str, object, str]] = []
    if r.gof is not None:
        extra = [
            ("Saturated GoF chi2/ndof", f"{r.gof.chi2:.2f}/{r.gof.ndof}", ""),
            ("Saturated GoF p-value", round(r.gof.p_value, 4), ""),
        ]
    if ctx.blinded:
        header, values, digits = ctx.mass_header(), [p.shift_mev for p in pois], 5
    else:
        header, values, digits = "$m_{W}$", [p.value_mev for p in pois], 8
    t.add_variable(
        numbers(
            ctx,
            header,
            values,
            units="MeV",
            digits=digits,
            errors={"stat": [p.stat_mev for p in pois], "syst": [p.syst_mev for p in pois]},
            qualifiers=extra,
        )
    )
    t.add_variable(numbers(ctx, "Total uncertainty", [p.unc_mev for p in pois], units="MeV"))
    return t


def _impact_rows(ctx: ExportContext) -> list[tuple[str, str]]:
    """(label, archive group) rows: CMS's categories, then every other group of the archive
    (parts of a shown group say so)."""
    imp = ctx.result.impacts
    rows = [(row.label, row.groups[0]) for row in imp.cms]
    shown = {g for _, g in rows}
    members = group_members(ctx.result.model.info.parameters)
    for g in dict.fromkeys([*imp.nominal, *imp.global_]):
        if g in shown:
            continue
        mine = members.get(g, set())
        parent = next((s for s in shown if mine and mine <= members.get(s, set())), None)
        rows.append((f"{g} (part of {parent})" if parent else g, g))
    return rows


def impact_tables(ctx: ExportContext) -> list[hd.Table]:
    """The group impacts on each POI, nominal and global definitions, one table each."""
    r = ctx.result
    if r.impacts is None:
        raise HEPDataError(f"the refit of {ctx.archive_path.name} computed no impacts")
    rows = _impact_rows(ctx)
    about = {
        "nominal": "nominal (traditional) definition, sqrt(C_pG C_GG^-1 C_Gp) from the fit "
        "covariance C: the part of the uncertainty of mW that the group accounts for. stat: "
        "the data statistics alone (constrained nuisances fixed, Barlow-Beeston factors frozen "
        "at their postfit values); binByBinStat: the MC sample size (quadrature difference "
        "with the factors profiled and frozen, rabbit's definition). Nominal "
        "impacts do not add up in quadrature to the total",
        "global": "global definition (arXiv:2307.04007): the shift of mW per one-sigma shift "
        "of the group's global observables, in the linear approximation; stat is the "
        "remainder, so that the squares of the disjoint sources add up to the total variance",
    }
    tables = []
    for kind in ("nominal", "global"):
        t = new_table(
            ctx,
            f"{kind.capitalize()} impacts of nuisance groups",
            f"Impacts of the nuisance groups on mW in MeV, {about[kind]}. Rows: CMS's "
            "categories (arXiv:2412.13872, the archive group each shows in the second column), "
            "then the other groups of the archive, then the total uncertainty. "
            f"{_fit_sentence(ctx)}",
            MASS_OBS,
        )
        t.add_variable(strings("Source", [label for label, _ in rows] + ["Total"]))
        t.add_variable(text_column("Nuisance group", [g for _, g in rows] + [MISSING]))
        for name, imp in r.impacts_by_poi.items():
            d = imp.nominal if kind == "nominal" else imp.global_
            t.add_variable(
                numbers(
                    ctx,
                    f"Impact on {name}",
                    [d.get(g) for _, g in rows] + [imp.total],
                    units=imp.unit,
                    qualifiers=[("Impact definition", kind, "")],
                )
            )
        tables.append(t)
    return tables


def pulls_table(ctx: ExportContext) -> hd.Table:
    """Pull, constraint, nominal and global impact and correlation with each POI of every
    nuisance parameter, by decreasing nominal impact on the first POI."""
    r = ctx.result
    fit, model = r.fit_result, r.model
    labels = {n.name: n.label for n in ctx.meta.nuisances}
    info = {p.name: p for p in model.info.parameters}
    params = [p for p in fit.parameters if p.kind != "poi"]
    poi_names = list(r.pois)
    first = fit.impact("nominal", poi_names[0]).nuisances
    params.sort(key=lambda p: -abs(first.get(p.name) or 0.0))
    corr = fit.correlation()
    index = {n: i for i, n in enumerate(fit.parameter_names)}
    t = new_table(
        ctx,
        "Postfit pulls constraints and impacts",
        "Every nuisance parameter of the fit, by decreasing nominal impact on mW: pull (postfit "
        "minus prefit value, in units of the prior sigma), constraint (postfit Hessian "
        "uncertainty in units of the prior sigma; for an unconstrained parameter the shift and "
        "uncertainty in its own units), nominal impact C_pk / sqrt(C_kk) and global impact "
        "(arXiv:2307.04007) on mW in MeV (signed: the shift of mW for a one-sigma upward shift), "
        f"and the correlation with mW. {_fit_sentence(ctx)}",
        (),
    )
    t.add_variable(strings("Nuisance parameter", [p.name for p in params]))
    t.add_variable(
        text_column("Label", [ctx.labeler(p.name, labels.get(p.name, "")) for p in params])
    )
    t.add_variable(text_column("Groups", [", ".join(info[p.name].groups) for p in params]))
    t.add_variable(
        numbers(
            ctx,
            "Pull",
            [p.pull if p.pull is not None else p.value - p.prefit for p in params],
            digits=4,
        )
    )
    t.add_variable(
        numbers(
            ctx,
            "Constraint",
            [p.constraint if p.constraint is not None else p.error for p in params],
            digits=4,
        )
    )
    for name in poi_names:
        unit = r.pois[name].unit
        for kind in ("nominal", "global"):
            d = fit.impact(kind, name).nuisances
            t.add_variable(
                numbers(
                    ctx,
                    f"{kind.capitalize()} impact on {name}",
                    [d.get(p.name) for p in params],
                    units=unit,
                    digits=4,
                )
            )
        row = corr[index[name]]
        t.add_variable(
            numbers(ctx, f"Correlation with {name}", [row[index[p.name]] for p in params], digits=4)
        )
    return t


def correlation_table(ctx: ExportContext) -> hd.Table:
    """For each nuisance group and POI: the multiple correlation coefficient of the POI with
    the group, and its largest correlation with a single nuisance of the group."""
    r = ctx.result
    fit, model = r.fit_result, r.model
    cov = np.asarray(fit.covariance)
    corr = fit.correlation()
    groups = {g: idx for g, idx in model.groups().items() if idx}
    names = model.parameter_names
    t = new_table(
        ctx,
        "Correlation of mW with nuisance groups",
        "Correlation of mW with each nuisance group, from the fit covariance C: the multiple "
        "correlation coefficient R = sqrt(C_pG C_GG^-1 C_Gp / C_pp) (between 0 and 1: the "
        "largest correlation of mW with any linear combination of the group's nuisances; R "
        "times the total uncertainty is the group's nominal impact), and the largest "
        f"correlation (signed) of mW with a single nuisance of the group. {_fit_sentence(ctx)}",
        ("CORR",),
    )
    t.add_variable(strings("Nuisance group", list(groups)))
    t.add_variable(numbers(ctx, "Nuisance parameters", [len(i) for i in groups.values()], digits=6))
    for name in r.pois:
        p = names.index(name)
        sig = float(np.sqrt(cov[p, p]))
        multiple, best, which = [], [], []
        for idx in groups.values():
            multiple.append(group_impact(cov, p, idx) / sig if sig > 0 else None)
            k = idx[int(np.argmax(np.abs(corr[p, idx])))]
            best.append(corr[p, k])
            which.append(names[k])
        t.add_variable(
            numbers(ctx, f"Multiple correlation of {name} with the group", multiple, digits=4)
        )
        t.add_variable(
            numbers(ctx, f"Largest correlation of {name} with one nuisance", best, digits=4)
        )
        t.add_variable(text_column(f"Nuisance most correlated with {name}", which))
    return t


def pdf_sweep_table(ctx: ExportContext) -> hd.Table | None:
    """mW with each PDF set, with its original (x1) and its scaled uncertainty, and the scale
    factors; None when the result has no PDF sweep."""
    r = ctx.result
    rows = r.sweep or []
    if not rows:
        return None
    ref = r.pdf.name if r.pdf is not None else rows[0].pdf
    t = new_table(
        ctx,
        "mW for each PDF set",
        "mW fitted with each PDF set of the archive (and the set in use, if it is not one of "
        "them), with the set's original uncertainty (scale factor 1) and with its uncertainty "
        "scaled by the analysis' factor, in MeV. PDF uncertainty: the nominal impact of the "
        f"set's PDF nuisances. Difference: scaled mW minus the scaled mW of {ref}, the set of "
        f"the main fit. {_fit_sentence(ctx)}",
        MASS_OBS,
        ("Parton Distribution Functions",),
    )
    t.add_variable(strings("PDF set", [s.pdf for s in rows]))
    t.add_variable(text_column("LHAPDF set", [s.lhapdf_name for s in rows]))
    t.add_variable(text_column("Grid source", [s.source for s in rows]))
    t.add_variable(
        numbers(
            ctx, "Scale factor of the PDF uncertainty", [s.scale for s in rows], pdf_qualifier=False
        )
    )
    for tag, shift, unc, pdf_unc in (
        ("original", "shift_mev", "unc_mev", "pdf_unc_mev"),
        ("scaled", "scaled_shift_mev", "scaled_unc_mev", "scaled_pdf_unc_mev"),
    ):
        t.add_variable(
            numbers(
                ctx,
                f"{ctx.mass_header()}, {tag} PDF uncertainty",
                [getattr(s, shift) for s in rows],
                units="MeV",
                errors={"total": [getattr(s, unc) for s in rows]},
                pdf_qualifier=False,
            )
        )
        t.add_variable(
            numbers(
                ctx,
                f"PDF uncertainty, {tag}",
                [getattr(s, pdf_unc) for s in rows],
                units="MeV",
                pdf_qualifier=False,
            )
        )
    t.add_variable(
        numbers(
            ctx,
            f"Difference to {ref}, scaled",
            [s.delta_mev for s in rows],
            units="MeV",
            pdf_qualifier=False,
        )
    )
    return t


def scan_tables(ctx: ExportContext) -> list[hd.Table]:
    """The likelihood scan of each POI: -2 Delta ln L against mW (converged points)."""
    out = []
    for s in ctx.result.scans:
        ok = [i for i, c in enumerate(s.converged) if c]
        dropped = len(s.converged) - len(ok)
        note = f" {dropped} point(s) whose profiled fit did not converge are left out." * (
            dropped > 0
        )
        t = new_table(
            ctx,
            # the table's name is also its YAML file's name: one safe component
            f"Likelihood scan of {safe_filename(s.poi, max_len=40)}",
            f"Profile likelihood scan of {s.poi}: -2 Delta ln L (every other parameter "
            "profiled) at points over +-3 Hessian standard deviations around the minimum; it "
            f"crosses 1 at the 68% CL interval.{note} {_fit_sentence(ctx)}",
            MASS_OBS,
        )
        t.add_variable(
            numbers(
                None,
                ctx.mass_header(f"${s.poi}$" if s.poi != "mW" else "$m_{W}$"),
                [s.shift_mev[i] for i in ok],
                units="MeV",
                digits=6,
                independent=True,
            )
        )
        t.add_variable(
            numbers(ctx, "$-2\\Delta\\ln L$", [s.two_delta_nll[i] for i in ok], digits=5)
        )
        out.append(t)
    return out
