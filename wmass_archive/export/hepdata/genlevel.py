"""Generator-level tables of the HEPData export: what the fit learnt about W production, from the
refit result's ``generator_level`` (wmass_archive/refit/genlevel.py; never recomputed here).

Per W charge and kinematic generator axis (pT^W, |y^W|):

* the unpolarised cross section, **pb per bin** (integrated over the bin, times BR(W -> mu
  nu)), postfit and prefit, each with its one-sigma uncertainty;
* the angular coefficients A_i (dimensionless), postfit and prefit, those that are non-zero
  somewhere in the grid only (A5..A7 vanish at the grid's order: they would be empty columns);
* the postfit correlation of the cross-section bins, in HEPData's convention for correlation
  matrices (two independent variables for the bin pair, one dependent).

No blinding offset enters: mW does not act on the theory grid.
"""

from __future__ import annotations

from ...refit.schema import GenDistribution, GeneratorLevel
from ...text import safe_filename
from .context import ExportContext
from .tables import _fit_sentence
from .variables import bins, hd, new_table, numbers

#: LaTeX of the axes of the package's generator binning (any other: the archive's label)
AXIS_LATEX = {"ptW": "p_{T}^{W}", "absYW": "|y^{W}|", "yW": "y^{W}"}
#: HEPData observables and phrases of a cross section in bins of an axis
AXIS_KEYWORDS = {
    "ptW": (("DSIG/DPT",), ("Transverse Momentum Dependence",)),
    "absYW": (("DSIG/DYRAP",), ("Rapidity Dependence",)),
    "yW": (("DSIG/DYRAP",), ("Rapidity Dependence",)),
}
NO_OFFSET = "no offset: mW does not act on the theory grid"
STAGES = (
    ("Postfit", "postfit", "postfit_unc"),
    ("Prefit", "prefit", "prefit_unc"),
)


def charge_text(key: str) -> tuple[str, str]:
    """(``W plus`` for table names, ``W+`` for descriptions) of a charge key of the result
    (``plus``, ``minus``; ``all`` without a charge axis: ``W``)."""
    if key == "all":
        return "W", "W"
    sign = {"plus": "+", "minus": "-"}.get(key, f" ({key})")
    return f"W {safe_filename(key, max_len=16)}", f"W{sign}"


#: table name prefixes, long and short (the short one when an archive's long axis or charge
#: name would pass HEPData's 64 characters)
NAMES = {
    "sigma": ("Generator-level cross section", "Gen. sigma"),
    "coefficients": ("Generator-level angular coefficients", "Gen. A_i"),
    "correlation": ("Postfit correlation of cross section", "Corr. of gen. sigma"),
}


def table_name(what: str, key: str, axis: str) -> str:
    """``Generator-level cross section W plus in ptW bins``; ``what``: a key of
    :data:`NAMES`."""
    word = charge_text(key)[0]
    ax = safe_filename(axis, max_len=16)
    long, short = NAMES[what]
    name = f"{long} {word} in {ax} bins"
    return name if len(name) <= 64 else f"{short} {word} {ax}"


def axis_math(d: GenDistribution) -> str:
    """The axis in LaTeX math (without dollars): ``p_{T}^{W}``; an unknown axis by its label."""
    return AXIS_LATEX.get(d.axis.name, d.axis.label or d.axis.name)


def nonzero_coefficients(gen: GeneratorLevel) -> tuple[list[str], list[str]]:
    """(coefficients non-zero somewhere: in a value or an uncertainty, prefit or postfit, of any
    charge and axis; those zero everywhere), e.g. (["A0", .., "A4"], ["A5", "A6", "A7"])."""
    seen: dict[str, bool] = {}
    for dists in gen.charges.values():
        for d in dists.values():
            if d.quantity == "sigma":
                continue
            xs = [*d.prefit, *d.prefit_unc, *d.postfit, *d.postfit_unc]
            seen[d.quantity] = seen.get(d.quantity, False) or any(x for x in xs if x is not None)
    order = sorted(seen, key=lambda q: (len(q), q))
    return [q for q in order if seen[q]], [q for q in order if not seen[q]]


def _ranges(dists: dict[str, GenDistribution]) -> str:
    """The generator binning's range: '0 <= p_T^W < 100 GeV, 0 <= |y^W| < 5'."""
    axes = {d.axis.name: d.axis for d in dists.values()}
    return ", ".join(
        f"{a.edges[0]:g} <= {a.label} < {a.edges[-1]:g}" + (f" {a.unit}" if a.unit else "")
        for a in axes.values()
    )


def _axis_column(d: GenDistribution, index: list[int] | None = None) -> hd.Variable:
    """The independent binned column of ``d``'s axis (its bins ``index``, default all)."""
    e = d.axis.edges
    rows = range(len(e) - 1) if index is None else index
    return bins(f"${axis_math(d)}$", [(e[i], e[i + 1]) for i in rows], units=d.axis.unit)


def _qualifiers(stage: str, sign: str) -> list[tuple[str, str, str]]:
    return [("Fit stage", stage.lower(), ""), ("W charge", sign, "")]


def _about(ctx: ExportContext) -> str:
    return (
        "Prefit: every theory nuisance at 0 with its prior uncertainty (PDF eigenvectors and "
        "theory variations); postfit: the fitted values with the fit covariance. Each "
        "uncertainty is one standard deviation, sqrt(diag(J C J^T)), J the derivative of the "
        "distribution with respect to the theory nuisances (JAX autodiff), C the covariance. "
        "No blinding offset enters (mW does not act on the theory grid). "
        f"{_fit_sentence(ctx)}"
    )


def _sigma_table(ctx: ExportContext, key: str, d: GenDistribution, rng: str) -> list[hd.Table]:
    """The cross section of one charge on one axis, and its postfit correlation table."""
    sign = charge_text(key)[1]
    x = axis_math(d)
    obs, phrases = AXIS_KEYWORDS.get(d.axis.name, (("SIG",), ()))
    name = table_name("sigma", key, d.axis.name)
    corr_name = table_name("correlation", key, d.axis.name)
    t = new_table(
        ctx,
        name,
        f"Generator-level unpolarised cross section sigma_UL of {sign} production times "
        f"BR(W -> mu nu) in bins of {d.axis.label}, in pb per bin (integrated over the bin, "
        "not divided by its width), summed over the other generator axes within "
        f"{rng}: the theory grid of the fit, moved by its theory nuisances, prefit and "
        f"postfit. Postfit correlation of the bins: table '{corr_name}'. {_about(ctx)}",
        obs,
        phrases,
    )
    t.add_variable(_axis_column(d))
    for stage, val, unc in STAGES:
        t.add_variable(
            numbers(
                ctx,
                f"{stage} $d\\sigma/d{x}$",
                getattr(d, val),
                units="pb per bin",
                digits=6,
                errors={"total": getattr(d, unc)},
                qualifiers=_qualifiers(stage, sign),
                blinding=NO_OFFSET,
            )
        )
    n = len(d.postfit)
    c = new_table(
        ctx,
        corr_name,
        f"Postfit correlation of the bins of the generator-level cross section of {sign} "
        f"production in bins of {d.axis.label} (table '{name}'): every pair of bins, from "
        "J C J^T with the fit covariance C; symmetric, 1 on the diagonal. Large positive "
        "entries are a normalisation, negative ones a shape that the fit moved. "
        f"{_about(ctx)}",
        ("CORR",),
        phrases,
    )
    c.add_variable(_axis_column(d, [i for i in range(n) for _ in range(n)]))
    c.add_variable(_axis_column(d, [j for _ in range(n) for j in range(n)]))
    c.add_variable(
        numbers(
            ctx,
            "Postfit correlation",
            [d.postfit_correlation[i][j] for i in range(n) for j in range(n)],
            digits=5,
            qualifiers=_qualifiers("postfit", sign),
            blinding=NO_OFFSET,
        )
    )
    return [t, c]


def _coefficient_table(
    ctx: ExportContext,
    key: str,
    axis: str,
    dists: dict[str, GenDistribution],
    kept: list[str],
    dropped: list[str],
    rng: str,
) -> hd.Table:
    """The angular coefficients ``kept`` of one charge on one axis, postfit and prefit."""
    sign = charge_text(key)[1]
    first = dists[f"{kept[0]}_{axis}"]
    names = ", ".join(kept)
    left = (
        f" Only the coefficients that are non-zero in the theory grid are given ({names}); "
        f"{', '.join(dropped)} {'is' if len(dropped) == 1 else 'are'} zero everywhere in the grid "
        "and left out."
        if dropped
        else ""
    )
    t = new_table(
        ctx,
        table_name("coefficients", key, axis),
        f"Generator-level angular coefficients of the W -> mu nu decay of {sign} production "
        f"in bins of {first.axis.label} (dimensionless), prefit and postfit: A_i = sum "
        "sigma_UL A_i / sum sigma_UL over the grid cells of the bin (a ratio of sums: the "
        f"sigma_UL-weighted mean of the cells' A_i), summed within {rng}.{left} {_about(ctx)}",
        (),
        ("Polarization", "Angular Distribution"),
    )
    t.add_variable(_axis_column(first))
    for q in kept:
        d = dists[f"{q}_{axis}"]
        sym = f"$A_{{{q[1:]}}}$" if q[1:].isdigit() else q
        for stage, val, unc in STAGES:
            t.add_variable(
                numbers(
                    ctx,
                    f"{stage} {sym}",
                    getattr(d, val),
                    digits=5,
                    errors={"total": getattr(d, unc)},
                    qualifiers=_qualifiers(stage, sign),
                    blinding=NO_OFFSET,
                )
            )
    return t


def genlevel_tables(ctx: ExportContext) -> list[hd.Table]:
    """For each W charge and generator axis: the cross section, its postfit correlation and
    the non-zero angular coefficients; none when the result has no ``generator_level`` (an
    archive without a folded signal)."""
    gen = ctx.result.generator_level
    if gen is None:
        return []
    kept, dropped = nonzero_coefficients(gen)
    out: list[hd.Table] = []
    for key, dists in gen.charges.items():
        rng = _ranges(dists)
        axes = [d.axis.name for d in dists.values() if d.quantity == "sigma"]
        for axis in axes:
            out += _sigma_table(ctx, key, dists[f"sigma_{axis}"], rng)
        for axis in axes:
            have = [q for q in kept if f"{q}_{axis}" in dists]
            if have:
                out.append(_coefficient_table(ctx, key, axis, dists, have, dropped, rng))
    return out
