"""``wmass-archive export``: write an archive's likelihood as another fitter's input."""

from __future__ import annotations

from pathlib import Path

import click

from ..text import printable_lines
from ._errors import one_line_errors
from ._options import bound_options, pdf_options, resolved_pdf


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def export() -> None:
    """Export an archive's likelihood to another fitter's input format.

    \b
    Examples:
      wmass-archive export rabbit likelihoods/default.h5 -o default_rabbit.hdf5
      rabbit_fit default_rabbit.hdf5 -t 0 --unblind --doImpacts --globalImpacts
    """


@export.command()
@click.argument("archive", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Tensor file to write."
)
@pdf_options
@click.option(
    "--dense",
    is_flag=True,
    help="Dense hnorm/hlogk instead of sparse (~1 GB in memory for 3200 nuisances x 2880 bins).",
)
@bound_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@one_line_errors
def rabbit(
    archive: Path,
    output: Path,
    pdf: str | None,
    pdf_paths: tuple[Path, ...],
    pdf_scale: float | None,
    dense: bool,
    max_output_gb: float,
    max_memory_gb: float | None,
    quiet: bool,
) -> None:
    """Write ARCHIVE as rabbit's input tensor (PyPI rabbit-fit).

    Folded processes are unfolded: their nominal is the folded yield; each theory nuisance
    (PDF eigenvectors, theory variations) and the mass POI become log-normal templates from
    the folded yields at theta = +-1 (exact there; rabbit's log-normal elsewhere). The mass
    POI is an unconstrained nuisance of interest (theta: one scale, e.g. 100 MeV); rate POIs
    are rabbit signal strengths. Fit with: rabbit_fit FILE -t 0 --unblind.
    """
    from ..interop.rabbit.exporter import export_rabbit

    report = export_rabbit(
        archive,
        output,
        pdf=resolved_pdf(archive, pdf, pdf_paths, pdf_scale),
        sparse=not dense,
        max_output_gb=max_output_gb,
        max_memory_gb=max_memory_gb,
    )
    if not quiet:
        click.echo(printable_lines(report.summary().split("\n"), backslash=False))


def _register() -> None:
    """Attach the export commands that live in their own modules (``export_<format>.py``)."""
    from .export_hepdata import hepdata
    from .export_pyhf import pyhf

    export.add_command(hepdata)
    export.add_command(pyhf)


_register()
