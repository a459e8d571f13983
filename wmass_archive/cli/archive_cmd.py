"""``wmass-archive``: the producers' and maintainers' command (validate, inspect, diff, ...)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .._version import __version__
from ..archive import open_archive, validate_archive
from ..archive.diff import diff_archives
from ..archive.schema import metadata_json_schema
from ..archive.summary import format_summary, summarize
from ..text import printable, printable_lines
from ._errors import DEBUG_ENV, one_line_errors  # noqa: F401  (re-exported)
from ._options import max_memory_option


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wmass-archive")
def main() -> None:
    """Build, check and inspect W-mass likelihood archives (HDF5, format v1).

    \b
    Examples:
      wmass-archive demo -o likelihoods/demo.h5      # a small synthetic archive
      wmass-archive validate likelihoods/demo.h5     # full check, all checksums
      wmass-archive inspect likelihoods/demo.h5      # what is inside
      wmass-archive diff old.h5 new.h5               # what changed
    """


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when the archive is valid.")
@max_memory_option
@one_line_errors
def validate(path: Path, quiet: bool, max_memory: float | None) -> None:
    """Check an archive completely: structure, schema, shapes, values, every SHA-256, and
    that wmass-refit could fit it within its memory bound (estimated from the metadata).

    Exit status 0 when valid; otherwise 1 with one line on stderr naming the problem.
    """
    from ..model.budget import check_model_bytes, effective_bound, estimate_model_bytes

    report = validate_archive(path)
    with open_archive(path, verify=False) as a:
        bound = effective_bound(None if max_memory is None else int(max_memory * 1e9), a.limits)
        check_model_bytes(estimate_model_bytes(a.metadata), bound, archive=a.path.name)
    if not quiet:
        click.echo(printable(report.summary()))


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@one_line_errors
def inspect(path: Path, as_json: bool) -> None:
    """Summarise an archive: channels, processes, nuisances per group, PDF sets, POIs.

    Reads the metadata only (no template is loaded), so it is fast on any archive.
    """
    with open_archive(path) as a:
        s = summarize(a)
    # JSON: ensure_ascii (the default) writes every non-ASCII and control character as \uXXXX
    click.echo(json.dumps(s, indent=2, ensure_ascii=True) if as_json else format_summary(s))


@main.command()
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--rtol", default=1e-9, show_default=True, help="Relative tolerance for arrays.")
@click.option("--atol", default=0.0, show_default=True, help="Absolute tolerance for arrays.")
@one_line_errors
def diff(old: Path, new: Path, rtol: float, atol: float) -> None:
    """Show what changed from archive OLD to archive NEW.

    Compares metadata, channels, processes, POIs, nuisances and groups, PDF sets and theory
    variations, and every array (beyond RTOL/ATOL). Exit status 0 when they are the same,
    3 when they differ, 1 on error.
    """
    with open_archive(old) as a, open_archive(new) as b:
        d = diff_archives(a, b, rtol=rtol, atol=atol)
    click.echo(printable_lines(d.lines()))
    if not d.identical:
        sys.exit(3)


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("likelihoods/demo.h5"),
    show_default=True,
    help="Where to write it.",
)
@click.option(
    "--size",
    type=click.Choice(["small", "medium", "large"]),
    default="small",
    show_default=True,
    help="small: 240 bins; medium: CMS binning (2880 bins); "
    "large: CMS binning, ~2600 nuisances, a ~37 MB file (for benchmarks).",
)
@one_line_errors
def demo(output: Path, size: str) -> None:
    """Write the small SYNTHETIC demonstration archive (every feature of the format).

    Its numbers are analytic stand-ins, not a measurement; the pseudo-analysis producer
    builds the realistic default archive.
    """
    from ..producers.demo import DEMO_SIZES, build_demo_archive

    output.parent.mkdir(parents=True, exist_ok=True)
    report = build_demo_archive(output, DEMO_SIZES[size])
    click.echo(printable(report.summary()))


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of stdout.",
)
@one_line_errors
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the archive metadata (published in docs/schema/)."""
    text = json.dumps(metadata_json_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


def _register_subcommands() -> None:
    """Commands defined in their own modules (they import this one's error handling)."""
    from .build_cmd import build_demo
    from .export_cmd import export
    from .import_cmd import import_
    from .pdf_cmd import pdf
    from .theory_cmd import theory_grid

    main.add_command(theory_grid, name="theory-grid")
    main.add_command(build_demo, name="build-demo")
    main.add_command(export, name="export")
    main.add_command(import_, name="import")
    main.add_command(pdf, name="pdf")


_register_subcommands()


if __name__ == "__main__":  # pragma: no cover
    main()
