"""``wmass-archive import rabbit``: a rabbit input tensor (HDF5) as an archive."""

from __future__ import annotations

from pathlib import Path

import click

from ..text import printable_lines
from ._errors import one_line_errors


@click.command(name="rabbit", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("tensor", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Archive to write."
)
@click.option("--title", default=None, help="Title of the archive (default: from the file name).")
@click.option(
    "--synthetic", is_flag=True, help="Mark the archive synthetic (its numbers are not real data)."
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option(
    "--noi-as-nuisance",
    is_flag=True,
    help="Keep rabbit's nuisances of interest nuisances (default: the unconstrained ones become "
    "POIs of kind parameter).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@one_line_errors
def rabbit(
    tensor: Path,
    output: Path,
    title: str | None,
    synthetic: bool,
    overwrite: bool,
    noi_as_nuisance: bool,
    quiet: bool,
) -> None:
    """Import the rabbit input tensor TENSOR (written by rabbit's TensorWriter) as an archive.

    The tensor is read with h5py only: its pickled 'meta' group is never loaded, so the
    unmasked bins become one flat channel 'ch0' (masked channels are left out) and the
    log-normal systematic type is assumed. Signals become rate POIs (mu = 1 + theta),
    unconstrained nuisances of interest (noi=True, e.g. the W-mass shift) POIs of kind
    parameter (massShiftW100MeV: the shift in MeV, 100 MeV per unit theta), systematics
    gaussian or unconstrained nuisances in rabbit's groups; the Barlow-Beeston-lite constraint
    is rabbit's (gamma, k = (sum hsumw)^2 / sum hsumw2 per bin). Tensors of 'wmass-archive
    export rabbit' keep their channels.

    \b
    Examples:
      wmass-archive import rabbit rabbit_input.hdf5 -o imported.h5
      wmass-refit --archive imported.h5
      wmass-refit --archive imported.h5 --poi massShiftW100MeV --scan 21
    """
    from ..interop.rabbit.importer import import_rabbit

    report = import_rabbit(
        tensor,
        output,
        title=title,
        synthetic=synthetic,
        overwrite=overwrite,
        noi_pois=not noi_as_nuisance,
    )
    if not quiet:
        click.echo(printable_lines(report.summary().split("\n")))
