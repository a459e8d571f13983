"""``wmass-archive export pyhf``: an archive as a pyhf JSON workspace and a mass patchset."""

from __future__ import annotations

from pathlib import Path

import click

from ..text import printable, printable_lines
from ._errors import one_line_errors
from ._options import bound_options, pdf_options, resolved_pdf


def _mass_points(text: str | None) -> list[float] | str:
    """'auto', a comma-separated list, or START:STOP:STEP (STOP included)."""
    if text is None or text == "auto":
        return "auto"
    try:
        if ":" in text:
            a, b, s = (float(x) for x in text.split(":"))
            if not s > 0 or b < a:
                raise ValueError
            n = int(round((b - a) / s))
            return [a + s * i for i in range(n + 1)]
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"'{text}': give auto, values like 80340,80360,80380 or START:STOP:STEP",
            param_hint="--mass-points",
        ) from None


@click.command(name="pyhf", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("archive", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Workspace JSON to write (the model at the nominal mass).",
)
@click.option(
    "--patchset-out",
    type=click.Path(path_type=Path),
    default=None,
    help="Patchset JSON of the mass points [default: OUTPUT's stem + _patchset.json].",
)
@pdf_options
@click.option(
    "--mass-points",
    default=None,
    metavar="auto|LIST|START:STOP:STEP",
    help="Values of the mass POI (its unit, blinding offset included, as wmass-refit reports "
    "them), one patch each [default: auto, 13 points over the fitted value +- 3 sigma].",
)
@click.option(
    "--inspire", default=None, help="INSPIRE record insNNNNNNN for the patchset's references."
)
@bound_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@one_line_errors
def pyhf(
    archive: Path,
    output: Path,
    patchset_out: Path | None,
    pdf: str | None,
    pdf_paths: tuple[Path, ...],
    pdf_scale: float | None,
    mass_points: str | None,
    inspire: str | None,
    max_output_gb: float,
    max_memory_gb: float | None,
    quiet: bool,
) -> None:
    """Write ARCHIVE as a pyhf workspace, its mass POI as a patchset (one patch per mass).

    Folded processes are unfolded into plain templates; log-normal variations become normsys
    (flat) or histosys (shapes), MC statistics a staterror per channel, a rate POI a
    normfactor. pyhf has no continuous mass parameter: profile the likelihood over the
    patches (wmass_archive.interop.pyhf.pyhf_mass_scan). Fit with pyhf's modifier_settings normsys
    code1, histosys code4p. The approximations are printed and listed in docs/pyhf.md.
    The output size and peak memory are estimated first: past --max-output-gb or
    --max-memory-gb the export is refused in one line.

    \b
    Examples:
      wmass-archive export pyhf tiny.h5 -o tiny.json
      wmass-archive export pyhf tiny.h5 -o tiny.json --mass-points 80330:80390:10
    """
    from ..interop.pyhf.exporter import export_pyhf

    def say(msg: str) -> None:
        if not quiet:
            click.echo(printable(msg, backslash=False), err=True)

    report = export_pyhf(
        archive,
        output,
        pdf=resolved_pdf(archive, pdf, pdf_paths, pdf_scale),
        mass_points=_mass_points(mass_points),
        patchset_output=patchset_out,
        inspire=inspire,
        progress=say,
        max_output_gb=max_output_gb,
        max_memory_gb=max_memory_gb,
    )
    if not quiet:
        click.echo(printable_lines(report.summary().split("\n"), backslash=False))
