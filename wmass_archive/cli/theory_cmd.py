"""``wmass-archive theory-grid``: compute the W theory grid of every member of an LHAPDF set."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from ..text import printable
from ..theory.compute import compute_set_grid
from ..theory.grid import check_grid_path
from ..theory.lhapdf import LHAPDFError
from ..theory.params import TheoryParameters
from ._errors import one_line_errors


def _expected_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """PDF-set and input problems are the user's to fix: one line ``error: ...``, exit 1
    (everything else goes through :func:`one_line_errors`, as in ``wmass-archive``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (LHAPDFError, ValueError, IndexError) as exc:
            if isinstance(exc, ValidationError):
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"]) or "parameters"
                msg = f"--set {loc}: {err['msg']}"
            else:
                msg = " ".join(str(exc).split())
            click.echo(printable(f"error: {msg}"), err=True)
            sys.exit(1)

    return wrapper


def _parameters(overrides: tuple[str, ...]) -> TheoryParameters:
    fields = TheoryParameters.model_fields
    changes: dict[str, float] = {}
    for item in overrides:
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set kt_np_gev=2.5")
        if key not in fields:
            raise ValueError(
                f"--set {key}: unknown theory parameter; known: {', '.join(sorted(fields))}"
            )
        try:
            changes[key] = float(val)
        except ValueError:
            raise ValueError(f"--set {key}={val!r}: the value must be a number") from None
    return TheoryParameters(**changes)


@click.command(
    "theory-grid",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--pdf",
    "pdf",
    required=True,
    metavar="NAME|DIR",
    help="LHAPDF set name (searched in --pdf-path, then LHAPDF_DATA_PATH; case and "
    "'.-_ ' are forgiven when that finds one set) or the set's folder.",
)
@click.option(
    "--pdf-path",
    "pdf_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Folder holding LHAPDF sets, searched before LHAPDF_DATA_PATH (repeatable).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file, .h5 or .csv [default: <NAME>_grid.h5].",
)
@click.option(
    "--members",
    default="all",
    show_default=True,
    metavar="SPEC",
    help="Members to compute: all, 0, 0-10 or 0,3,5-7 (inclusive ranges).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Change a theory parameter (repeatable), e.g. --set kt_np_gev=2.5 --set k_factor=1.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@one_line_errors
@_expected_errors
def theory_grid(
    pdf: str,
    pdf_paths: tuple[Path, ...],
    output: Path | None,
    members: str,
    overrides: tuple[str, ...],
    quiet: bool,
) -> None:
    """Compute the W theory grid of each member of an LHAPDF PDF set.

    The grid is sigma x BR(W -> mu nu) in pb per generator bin: W charge (2) x |y^W| (8 bins
    to 5) x pT^W (10 bins to 100 GeV) x helicity term (UL, A0..A7), from leading-order parton
    luminosities of the set at 13 TeV, normalised to NNLO totals, with the package's pT^W and
    angular-coefficient model (docs/theory.md). One grid per member goes into one file: HDF5
    (.h5) or CSV (.csv, one row per bin and member); both are read by TheoryGrid.load.

    \b
    Examples:
      wmass-archive theory-grid --pdf CT10nlo --pdf-path ../shared/pdfsets
      LHAPDF_DATA_PATH=~/lhapdf wmass-archive theory-grid --pdf NNPDF31_nnlo_as_0118 -o nn.csv
      wmass-archive theory-grid --pdf ./sets/MySet --members 0 --set kt_np_gev=2.5

    Exit status 0 on success; otherwise 1 with one line on stderr naming the problem.
    """
    params = _parameters(overrides)
    if output is not None:
        check_grid_path(output)  # a bad name fails before the computation
    command = " ".join(["wmass-archive", "theory-grid", *sys.argv[1:]])[:500]
    grid = compute_set_grid(
        pdf,
        params,
        paths=[str(p) for p in pdf_paths] or None,
        members=members,
        progress=not quiet,
        command=command,
    )
    out = output if output is not None else Path(f"{grid.meta.pdf_set}_grid.h5")
    grid.save(out)
    if not quiet:
        tot = grid.totals()[0] / 1000.0
        click.echo(
            f"wrote {grid.n_members} member grid(s) of {grid.meta.pdf_set} to {out}; "
            f"member {grid.meta.pdf_members[0]}: W+ {tot[1]:.3f} nb, W- {tot[0]:.3f} nb "
            f"(|y| < 5, pT < 100 GeV, x BR), W+/W- {tot[1] / tot[0]:.4f}"
        )


main = theory_grid

if __name__ == "__main__":  # pragma: no cover
    theory_grid()
