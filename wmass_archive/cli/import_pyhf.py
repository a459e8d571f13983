"""``wmass-archive import pyhf``: a pyhf JSON workspace (optionally patched) as an archive."""

from __future__ import annotations

from pathlib import Path

import click

from ._errors import one_line_errors

_CODES = {
    "normsys": ("code1", "code4"),
    "histosys": ("code0", "code2", "code4p"),
}


@click.command(name="pyhf", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Archive to write."
)
@click.option("--measurement", default=None, help="Measurement to use (default: the first).")
@click.option(
    "--patchset",
    type=click.Path(path_type=Path),
    default=None,
    help="pyhf patchset JSON holding the patch to apply (with --patch).",
)
@click.option("--patch", default=None, help="Name of the patch of --patchset to apply.")
@click.option(
    "--normsys-code",
    type=click.Choice(_CODES["normsys"]),
    default="code4",
    show_default=True,
    help="pyhf interpolation code of normsys (pyhf's default code4; code1 for workspaces "
    "written by 'wmass-archive export pyhf').",
)
@click.option(
    "--histosys-code",
    type=click.Choice(_CODES["histosys"]),
    default="code4p",
    show_default=True,
    help="pyhf interpolation code of histosys.",
)
@click.option("--title", default=None, help="Title of the archive (default: from the file name).")
@click.option(
    "--synthetic",
    is_flag=True,
    help="Mark the archive synthetic (its numbers are not real data).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@one_line_errors
def pyhf(
    workspace: Path,
    output: Path,
    measurement: str | None,
    patchset: Path | None,
    patch: str | None,
    normsys_code: str,
    histosys_code: str,
    title: str | None,
    synthetic: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Import the pyhf workspace WORKSPACE (JSON) as an archive.

    The workspace is validated with pyhf's own schema and model builder. Every pyhf modifier
    maps with pyhf's semantics (docs/pyhf.md): normsys and histosys with the chosen
    interpolation codes, staterror and lumi (gaussian), shapesys (poisson), normfactor and
    shapefactor (free); the measurement's POI becomes a rate POI whose value is pyhf's mu.
    Parameters fixed in the measurement are folded into the yields.

    \b
    Examples:
      wmass-archive import pyhf workspace.json -o imported.h5
      wmass-archive import pyhf bkgonly.json --patchset patchset.json --patch sig_1000 -o s.h5
      wmass-refit --archive imported.h5
    """
    from ..importers import import_pyhf

    report = import_pyhf(
        workspace,
        output,
        measurement=measurement,
        patchset=patchset,
        patch=patch,
        title=title,
        modifier_settings={
            "normsys": {"interpcode": normsys_code},
            "histosys": {"interpcode": histosys_code},
        },
        synthetic=synthetic,
        overwrite=overwrite,
    )
    if not quiet:
        click.echo(report.summary())
