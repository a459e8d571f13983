"""``wmass-archive import pyhf``: a pyhf JSON workspace (optionally patched) as an archive."""

from __future__ import annotations

from pathlib import Path

import click

from ..text import printable_lines
from ._errors import one_line_errors

_CODES = {
    "normsys": ("code1", "code4"),
    "histosys": ("code0", "code2", "code4p"),
}


@click.command(name="pyhf", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path), required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Archive to write (or give it as the second argument OUT).",
)
@click.option("--measurement", default=None, help="Measurement to use (default: the first).")
@click.option(
    "--patch",
    "patches",
    multiple=True,
    metavar="FILE|NAME",
    help="JSON Patch file (RFC 6902, a list of operations, e.g. HEPData's per-signal-point "
    "patch) to apply to WORKSPACE; repeatable, applied in order. With --patchset: the name of "
    "the patch of that patchset to apply.",
)
@click.option(
    "--patchset",
    type=click.Path(path_type=Path),
    default=None,
    help="pyhf patchset JSON holding the patch named by --patch (its digest must match WORKSPACE).",
)
@click.option(
    "--poi",
    default=None,
    metavar="NAME",
    help="Parameter of interest (default: the measurement's, e.g. declared only by a signal "
    "patch; '' for none). A free normfactor becomes the archive's POI.",
)
@click.option(
    "--no-bounds",
    is_flag=True,
    help="Leave pyhf's parameter bounds out of the archive (they need format 1.2).",
)
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
    out: Path | None,
    output: Path | None,
    measurement: str | None,
    patches: tuple[str, ...],
    patchset: Path | None,
    poi: str | None,
    no_bounds: bool,
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
    shapefactor (free); the POI (a normfactor) becomes a rate POI whose value is pyhf's mu.
    Parameters fixed in the measurement are folded into the yields; pyhf's parameter bounds
    are kept; sample yields may be negative where pyhf allows it (format 1.2).

    \b
    Examples:
      wmass-archive import pyhf workspace.json imported.h5
      wmass-archive import pyhf BkgOnly.json s.h5 --patch patch.sbottom_1000_200.json
      wmass-archive import pyhf bkgonly.json -o s.h5 --patchset patchset.json --patch sig_1000
      wmass-archive import pyhf bkgonly.json -o b.h5 --poi mu_ttbar
      wmass-refit --archive imported.h5
    """
    from ..interop.pyhf.importer import PyhfImportError, import_pyhf

    if (out is None) == (output is None):
        raise PyhfImportError(
            "give the archive to write once: as the second argument OUT or with -o/--output"
        )
    report = import_pyhf(
        workspace,
        out if out is not None else output,
        measurement=measurement,
        patchset=patchset,
        patches=list(patches),
        poi=poi,
        bounds=not no_bounds,
        title=title,
        modifier_settings={
            "normsys": {"interpcode": normsys_code},
            "histosys": {"interpcode": histosys_code},
        },
        synthetic=synthetic,
        overwrite=overwrite,
    )
    if not quiet:
        click.echo(printable_lines(report.summary().split("\n")))
