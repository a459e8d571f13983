"""``wmass-archive pdf``: LHAPDF sets (``pdf install NAME``), a thin layer over
:func:`wmass_archive.theory.install.install_pdf_set`."""

from __future__ import annotations

from pathlib import Path

import click

from ..text import printable
from ._errors import one_line_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def pdf() -> None:
    """LHAPDF sets: install one where `--pdf` finds it."""


@pdf.command("install")
@click.argument("name")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to install into [default: the first writable folder of LHAPDF_DATA_PATH, "
    "else ~/.local/share/wmass-archive/lhapdf].",
)
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="Where the tarball is: a base URL holding NAME.tar.gz, or the tarball's URL "
    "[default: $LHAPDF_CVMFSBASE when present, then $LHAPDF_URLBASE or LHAPDF's web site].",
)
@click.option("--force", is_flag=True, help="Reinstall a set that is already there.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or messages; errors only.")
@one_line_errors
def install(name: str, dest: Path | None, url: str | None, force: bool, quiet: bool) -> None:
    """Download, verify and unpack the LHAPDF set NAME.

    NAME is any name `--pdf` takes: the LHAPDF name (NNPDF40_nnlo_as_01180), a loose form
    (NNPDF4.0) or a CMS short name (NNPDF40, CT18Z, MSHT20). The tarball's .sha256/.md5 is
    checked when the source publishes one (LHAPDF's site publishes none: the output says so);
    members outside NAME/ are refused and the set is unpacked atomically.

    \b
    Examples:
      wmass-archive pdf install NNPDF40
      wmass-archive pdf install CT18Z --dest ~/lhapdf && export LHAPDF_DATA_PATH=~/lhapdf
    """
    from ..theory.install import install_pdf_set

    def log(line: str) -> None:
        click.echo(printable(line), err=True)

    folder = install_pdf_set(
        name, dest, url=url, progress=not quiet, force=force, log=None if quiet else log
    )
    if not quiet:
        click.echo(f"installed {printable(folder.name)} in {printable(folder)}")
