"""``wmass-archive import combine``: a CMS Combine datacard (counting or TH1 shapes) as an
archive."""

from __future__ import annotations

from pathlib import Path

import click

from ..text import printable_lines
from ._errors import one_line_errors


def _remap(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    out = {}
    for v in values:
        old, sep, new = v.partition("=")
        if not sep or not old:
            raise click.BadParameter(f"'{v}': expected OLD=NEW", ctx=ctx, param=param)
        out[old] = new
    return out


def _r_range(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return "default"
    if value.strip().lower() == "none":
        return None
    lo, sep, hi = value.partition(",")
    try:
        if not sep:
            raise ValueError
        return float(lo), float(hi)
    except ValueError:
        raise click.BadParameter(
            f"'{value}': expected LOW,HIGH or none", ctx=ctx, param=param
        ) from None


@click.command(name="combine", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("card", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Archive to write."
)
@click.option(
    "--remap",
    multiple=True,
    callback=_remap,
    metavar="OLD=NEW",
    help="Replace the path prefix OLD of shape files by NEW (repeatable); relative paths are "
    "taken relative to the card.",
)
@click.option("--mass", type=float, default=None, help="Value of $MASS in shapes lines (-m).")
@click.option("--title", default=None, help="Title of the archive (default: from the card name).")
@click.option(
    "--synthetic", is_flag=True, help="Mark the archive synthetic (its numbers are not real data)."
)
@click.option(
    "--r-range",
    callback=_r_range,
    metavar="LOW,HIGH",
    default=None,
    help="Range of the POI r, written as its bounds (Combine's --rMin/--rMax; default 0,20 as "
    "Combine; 'none': unbounded).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@one_line_errors
def combine(
    card: Path,
    output: Path,
    remap: dict,
    mass: float | None,
    title: str | None,
    synthetic: bool,
    r_range,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Import the CMS Combine datacard CARD as an archive.

    Histograms (TH1 of any type, with their sumw2) are read with uproot. Combine's default
    physics model is kept: a rate POI r on the signal processes (index <= 0, range 0..20 as
    Combine unless --r-range). lnN, shape,
    shape?, shapeN (approximate), gmN, rateParam, autoMCStats and group lines are imported
    (docs/combine.md); param, nuisance edit, lnU, formula rateParams and workspaces are refused.

    \b
    Examples:
      wmass-archive import combine card.txt -o card.h5
      wmass-archive import combine card.txt --remap /eos/user/me/shapes=inputs -o card.h5
      wmass-refit --archive card.h5
    """
    from ..interop.combine.importer import R_RANGE, import_combine

    report = import_combine(
        card,
        output,
        remap=remap,
        title=title,
        mass=mass,
        synthetic=synthetic,
        overwrite=overwrite,
        r_range=R_RANGE if r_range == "default" else r_range,
    )
    if not quiet:
        click.echo(printable_lines(report.summary().split("\n")))
