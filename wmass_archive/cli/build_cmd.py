"""``wmass-archive build-demo``: run the pseudo-analysis and write its archive."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import click

from ._errors import one_line_errors

DEFAULT_OUTPUT = Path("likelihoods") / "default.h5"


@click.command("build-demo")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Archive to write (atomically: a failed build never damages an existing file).",
)
@click.option(
    "--events",
    type=click.IntRange(min=1000),
    default=None,
    help="Simulated W -> mu nu events [default: 100000000, the committed default archive]; "
    "backgrounds are scaled in proportion.",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Master seed.")
@click.option(
    "--pdf-path",
    "pdf_paths",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder with LHAPDF sets (repeatable), searched before LHAPDF_DATA_PATH.",
)
@click.option(
    "-j",
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Local worker processes for the event processing.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run the event processing on a dask cluster (e.g. tcp://host:8786).",
)
@click.option("--small", is_flag=True, help="A small, quick build (400k W events) for tests.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@one_line_errors
def build_demo(
    output: Path,
    events: int | None,
    seed: int | None,
    pdf_paths: tuple[Path, ...],
    workers: int,
    scheduler: str | None,
    small: bool,
    quiet: bool,
) -> None:
    """Build the pseudo-analysis archive (SYNTHETIC: an event-level fast simulation modelled
    on CMS's W-mass analysis, with real PDF sets, not CMS data).

    It computes the theory grids of every PDF set (CT10nlo, NNPDF23_lo_as_0119_qed,
    NNPDF31_nnlo_as_0118_mc: found on --pdf-path or LHAPDF_DATA_PATH), simulates W -> mu nu
    and its backgrounds through a CMS-like detector model, defines ~3200 nuisances in CMS's
    groups, and draws pseudo-data at a hidden true mW. The same seed and number of events give
    identical datasets whatever --workers or --scheduler.

    \b
    Examples:
      LHAPDF_DATA_PATH=../shared/pdfsets wmass-archive build-demo -j 2
      wmass-archive build-demo --small -o /tmp/small.h5 --pdf-path ../shared/pdfsets
    """
    from .._optional import require
    from ..producers.pseudo.build import build_pseudo_analysis
    from ..producers.pseudo.config import TEST_CONFIG, PseudoAnalysisConfig

    if scheduler is not None:  # before the theory grids, not after them
        require("distributed", "dask", "wmass-archive build-demo --scheduler")

    base = PseudoAnalysisConfig(**TEST_CONFIG) if small else PseudoAnalysisConfig()
    changes: dict = {}
    if events is not None:
        f = events / base.signal_events
        changes["signal_events"] = events
        changes["background_events"] = {
            k: max(1000, int(round(v * f))) for k, v in base.background_events.items()
        }
    if seed is not None:
        changes["seed"] = seed
    cfg = base.model_copy(update=changes)
    command = "wmass-archive " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    t0 = time.perf_counter()
    rep = build_pseudo_analysis(
        output,
        cfg,
        paths=[str(p) for p in pdf_paths] or None,
        workers=workers,
        scheduler=scheduler,
        progress=not quiet,
        command=command,
    )
    w = rep.write
    bkg = ", ".join(f"{k} {100 * v:.2f}%" for k, v in rep.background_fractions.items())
    click.echo(
        f"wrote {w.path} ({w.file_bytes / 1e6:.1f} MB, {rep.n_bins} bins, {rep.n_nuisances} "
        f"nuisances) in {time.perf_counter() - t0:.0f} s\n"
        f"  SYNTHETIC pseudo-analysis: {rep.selected_signal / 1e6:.1f} M selected W -> mu nu "
        f"events expected; backgrounds: {bkg}\n"
        f"  the true mW of the pseudo-data is recorded in the provenance (fits are blinded)"
    )
