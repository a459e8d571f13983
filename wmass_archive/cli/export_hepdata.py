"""``wmass-archive export hepdata``: a HEPData submission of an archive's W-mass fit."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..text import printable_lines
from ._errors import one_line_errors
from ._options import bound_options, pdf_options, resolved_pdf


@click.command("hepdata")
@click.argument("archive", required=False, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder of the submission (new, empty, or a previous export of this tool whose files "
    "are unchanged, which is replaced).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the output folder even when it holds files this tool did not write (or that "
    "changed since): they are deleted.",
)
@pdf_options
@click.option("--unblind", is_flag=True, help="Absolute mW values instead of the blinded shift.")
@click.option(
    "--scan-points",
    type=click.IntRange(3, 201),
    default=21,
    show_default=True,
    help="Points of the likelihood scan of mW (over +-3 sigma).",
)
@click.option(
    "--cmenergy",
    type=click.FloatRange(min=0, min_open=True),
    default=13000.0,
    show_default=True,
    help="Centre-of-mass energy in GeV (keywords and qualifiers).",
)
@click.option(
    "--tarball",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the archive to upload to HEPData (.tar.gz), validated too.",
)
@click.option(
    "--scheduler",
    default=None,
    help="Where the PDF sweep's fits run: none (this process), local, local:N or a dask "
    "scheduler address (default: as wmass-refit).",
)
@bound_options
@click.option("-q", "--quiet", is_flag=True, help="No progress lines and no summary.")
@one_line_errors
def hepdata(
    archive: Path | None,
    output: Path,
    overwrite: bool,
    pdf: str | None,
    pdf_paths: tuple[Path, ...],
    pdf_scale: float | None,
    unblind: bool,
    scan_points: int,
    cmenergy: float,
    tarball: Path | None,
    scheduler: str | None,
    max_output_gb: float,
    max_memory_gb: float | None,
    quiet: bool,
) -> None:
    """Write the HEPData submission of ARCHIVE (default: the default archive) into a folder.

    One fit of the archive (mW, nominal and global impacts, likelihood scan, PDF sweep) feeds
    every table: mW (value, stat, syst, total), group impacts, pulls/constraints/impacts of
    every nuisance, correlation of mW with the nuisance groups, mW per PDF set (original and
    scaled), the scan, prefit and postfit (eta, pT) distributions per charge; the archive is
    attached with its SHA-256. The submission is validated offline with hepdata-validator.

    \b
    Example:
      wmass-archive export hepdata likelihoods/default.h5 -o hepdata/submission
    """
    from ..export.hepdata import export_hepdata

    report = export_hepdata(
        archive,
        output,
        pdf=resolved_pdf(archive, pdf, pdf_paths, pdf_scale),
        unblind=unblind,
        scan_points=scan_points,
        cmenergy_gev=cmenergy,
        tarball=tarball,
        scheduler=scheduler,
        progress=not quiet and sys.stderr.isatty(),
        overwrite=overwrite,
        max_output_gb=max_output_gb,
        max_memory_gb=max_memory_gb,
    )
    if not quiet:
        click.echo(printable_lines(report.summary().split("\n"), backslash=False))
