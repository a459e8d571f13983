"""``wmass-refit``: refit the W-mass likelihood of an archive (the default one without
arguments) with its nominal theory, another PDF set or a user's theory grid, and print a result
block to paste into a talk. A thin layer over :func:`wmass_archive.refit.refit`."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from .._version import __version__
from ..text import printable
from ._errors import one_line_errors
from ._options import max_memory_option, pdf_options

EXIT_INTERRUPTED = 130
#: the exit status when the fit did not converge (the result block and JSON are still written)
EXIT_NOT_CONVERGED = 3


def _check_output_file(path: Path, what: str) -> None:
    """Fail before any fit when ``path`` cannot be written."""
    from ..refit.errors import RefitError

    if path.is_dir():
        raise RefitError(f"cannot write {what} {path}: it is a folder")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise RefitError(f"cannot write {what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise RefitError(f"cannot write {what} {path}: permission denied")


def _check_plot_dir(path: Path) -> None:
    from .._optional import require
    from ..refit.errors import RefitError

    require("matplotlib", "plot", "wmass-refit --plot")  # before the fit, and the folder
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RefitError(f"cannot create the plot folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise RefitError(f"cannot write plots into {path}: permission denied")


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _float_list(text: str | None, option: str) -> list[float] | None:
    """Comma-separated numbers of an option (one clear error otherwise)."""
    if text is None:
        return None
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {text!r}") from None
    if not out or not all(map(math.isfinite, out)):
        raise click.BadParameter(f"expected finite numbers separated by commas, got {text!r}")
    return out


def _split_names(values: tuple[str, ...]) -> list[str]:
    return [x for v in values for x in v.split(",") if x.strip()]


class _Command(click.Command):
    """The command, which after Ctrl-C on the command line leaves at once: the interpreter's
    normal shutdown can crash (a segmentation fault after 'interrupted') while XLA's threads
    still run the computation that was interrupted. Called with ``args`` (tests, scripts) it
    exits as usual."""

    def main(self, args: Any = None, *more: Any, **kwargs: Any) -> Any:
        try:
            return super().main(args, *more, **kwargs)
        except SystemExit as exc:
            if args is None and exc.code == EXIT_INTERRUPTED:
                _release_multiprocessing()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)
            raise


def _release_multiprocessing() -> None:
    """Run multiprocessing's exit finalizers (the semaphores of a dask cluster's processes),
    which ``os._exit`` skips; its resource tracker would otherwise warn about them."""
    if "multiprocessing" in sys.modules:
        import multiprocessing.util as mp_util

        with contextlib.suppress(Exception):
            mp_util._exit_function()


@click.command(
    cls=_Command,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="wmass-refit")
@click.option(
    "--archive",
    "archive",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="Archive to refit [default: $WMASS_ARCHIVE_DEFAULT or likelihoods/default.h5].",
)
@pdf_options
@click.option(
    "--theory-grid",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    metavar="FILE",
    help="Your own prediction (TheoryGrid .h5 or .csv, pb per generator bin) replacing "
    "the signal's central grid.",
)
@click.option(
    "--pdf-sweep",
    is_flag=True,
    help="Refit with every PDF set of the archive (and --pdf): mW with the original "
    "and the scaled PDF uncertainty.",
)
@click.option(
    "--pdf-bias",
    is_flag=True,
    help="Fit each set's central prediction as pseudo-data with the model in use: the "
    "bias in mW and the scale factor that covers it.",
)
@click.option(
    "--poi",
    default=None,
    metavar="DEF|NAME",
    help="Parameters of interest: mw (one mW), mw-charge, mw-eta or mw-barrel-endcap (mW "
    "split by charge, eta sign, barrel/endcap), the name of a POI of the archive (its scan, "
    "toys, CLs), or of any nuisance, which becomes the POI [default: mw; an archive without a "
    "mass POI: its first POI].",
)
@click.option(
    "--impacts",
    type=click.Choice(["nominal", "global", "both", "none"]),
    default="both",
    show_default=True,
    help="Impact definitions to compute.",
)
@click.option(
    "--scan",
    type=click.IntRange(min=3),
    is_flag=False,
    flag_value=21,
    default=None,
    metavar="[N]",
    help="Likelihood scan of each POI over +-3 sigma (N points, 21).",
)
@click.option(
    "--scan-values",
    "scan_values",
    callback=lambda ctx, param, v: _float_list(v, "--scan-values"),
    default=None,
    metavar="V1,V2,...",
    help="Likelihood scan at these physical values of the POI (of --poi, else each POI); "
    "the JSON's scans[].physical_values are exactly these.",
)
@click.option("--minos", is_flag=True, help="Profile-likelihood 68% intervals of the POIs.")
@click.option(
    "--bounds",
    "bounds",
    multiple=True,
    metavar="NAME=LO,HI",
    help="Range of a parameter in the fit, replacing the archive's: a POI's in its physical "
    "unit (e.g. mu=0,10), any other parameter's in theta; an empty side is unbounded "
    "(repeatable).",
)
@click.option(
    "--cls",
    "cls",
    multiple=True,
    callback=lambda ctx, param, v: _float_list(",".join(v), "--cls") if v else None,
    metavar="MU",
    help="Hypothesis test of POI = MU (physical value; repeatable or comma-separated): "
    "observed and expected CLs (q0: p0), asymptotic.",
)
@click.option(
    "--test-stat",
    "test_stat",
    type=click.Choice(["qtilde", "q", "q0"]),
    default="qtilde",
    show_default=True,
    help="Test statistic of --cls and --upper-limit: q~mu (POI >= 0), q_mu, or q0 (discovery).",
)
@click.option(
    "--upper-limit",
    "upper_limit",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True, max_open=True),
    is_flag=False,
    flag_value=0.95,
    default=None,
    metavar="[CL]",
    help="CLs upper limit on the POI at confidence level CL (0.95), observed and expected "
    "(-2..+2 sigma), asymptotic.",
)
@click.option(
    "--toys-cls",
    "toys_cls",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Also compute the --cls tests from N toys per hypothesis (on the dask cluster of "
    "--workers; seeds from --seed).",
)
@click.option("--asimov", is_flag=True, help="Fit the expected (Asimov) data instead of the data.")
@click.option(
    "--toys",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Pseudo-experiments at the fitted point, fitted again.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the first toy (toy i uses seed + i).",
)
@click.option(
    "--freeze",
    "freeze",
    multiple=True,
    metavar="GROUP",
    help="Nuisance groups, names or glob patterns held fixed (repeatable or comma-separated).",
)
@click.option(
    "--unblind",
    is_flag=True,
    help="Show the absolute mW (a blinded archive otherwise shows mW - ref plus a hidden offset).",
)
@click.option(
    "--validate",
    "validate",
    is_flag=True,
    help="Run the full archive validator first (each dataset read is SHA-256 checked in any case).",
)
@click.option(
    "--bb",
    type=click.Choice(["gamma", "normal", "none", "combine"]),
    default=None,
    help="Barlow-Beeston-lite treatment of the MC statistics: gamma or normal constraint on "
    "a factor of the bin's total (rabbit), combine (CMS Combine's analytic one, imported "
    "archives) or none [default: the archive's mc_stat, else gamma].",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write the whole result as JSON (docs/schema/refit-result-v1.json).",
)
@click.option(
    "--plot",
    "plot_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Write plots (PNG and PDF): postfit distributions, pulls and impacts, scans, PDF sweep.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Worker processes of the local dask cluster that runs the fits of --pdf-sweep, "
    "--pdf-bias and --toys [default: one per CPU core]; 1: in this process.",
)
@click.option(
    "--scheduler",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Where those fits run: 'local' (alone: a local cluster, 'local:N' N workers), "
    "'none' (in this process) or a dask scheduler address [default: a local cluster when "
    "there is more than one fit].",
)
@click.option(
    "--no-cache", is_flag=True, help="Do not read or write cached theory grids of LHAPDF sets."
)
@max_memory_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@one_line_errors
def main(**opts: Any) -> None:
    """Refit the W-boson mass of an archive and print the result block.

    Without arguments: the default archive with its nominal PDF set and theory. The result
    shows mW with its total, statistical and systematic uncertainty, the impacts in CMS's
    groups (nominal and global), the goodness of fit, the archive and PDF set used, and says
    when the archive is synthetic and when the result is blinded. An archive without a W mass
    (imported from pyhf or Combine) shows its own POIs.

    \b
    Examples:
      wmass-refit                                  # the default archive, nominal theory
      wmass-refit --pdf NNPDF3.1 --json out.json   # another set of the archive
      wmass-refit --pdf MSHT20nnlo_as118 --pdf-path ~/lhapdf   # any LHAPDF set
      wmass-refit --theory-grid my_prediction.csv  # your own prediction
      wmass-refit --pdf-sweep --pdf-bias           # every set, with and without scaling
      wmass-refit --poi mw-charge --scan 31 --plot plots/
      wmass-refit --archive imported.h5 --poi mu --scan --toys 100
      wmass-refit --archive search.h5 --cls 1 --upper-limit      # CLs and a 95% CL limit
      wmass-refit --archive search.h5 --bounds mu=0,5 --scan-values 0,0.5,1,2
      wmass-refit --archive tensor.h5 --poi massShiftW100MeV     # any parameter as the POI

    Exit status: 0 done, 1 bad input (one line on stderr), 3 the fit did not converge (the
    result block and JSON are still written, with the diagnostics), 130 interrupted.
    """
    try:
        _run(**opts)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _run(
    *,
    archive: Path | None,
    pdf_paths: tuple[Path, ...],
    theory_grid: Path | None,
    freeze: tuple[str, ...],
    json_path: Path | None,
    plot_dir: Path | None,
    no_cache: bool,
    quiet: bool,
    bounds: tuple[str, ...],
    **refit_opts: Any,
) -> None:
    """Check the outputs, refit (``refit_opts``: the options named as :func:`refit`'s
    arguments), print the block, write the JSON and plots."""
    from ..refit.api import refit

    if json_path is not None:
        _check_output_file(json_path, "the JSON result")
    if plot_dir is not None:
        _check_plot_dir(plot_dir)
    progress = not quiet and sys.stderr.isatty()
    result = refit(
        archive,
        theory=theory_grid,
        pdf_path=[str(p) for p in pdf_paths] or None,
        freeze=_split_names(freeze),
        bounds=list(bounds) or None,
        progress=progress,
        cache=not no_cache,
        command="wmass-refit " + shlex.join(sys.argv[1:]),
        **refit_opts,
    )
    if plot_dir is not None:
        from ..refit.plots import make_plots

        files = make_plots(result, plot_dir)
        result.notes.append(f"{len(files)} plot files written to {plot_dir}")
    click.echo(result.summary())
    if json_path is not None:
        _write_atomic(json_path, result.to_json())
        click.echo(printable(f"result written to {json_path}"), err=True)
    if not result.fit.converged:
        click.echo(
            f"error: the fit did not converge ({result.fit.status}); exit status "
            f"{EXIT_NOT_CONVERGED}",
            err=True,
        )
        sys.exit(EXIT_NOT_CONVERGED)


if __name__ == "__main__":  # pragma: no cover
    main()
