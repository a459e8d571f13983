"""Options shared by several commands: the bound on a model's memory (``wmass-refit``,
``wmass-archive validate``), the export commands' bounds on output and memory, and the PDF
set (``--pdf``, ``--pdf-path``, ``--pdf-scale``: ``wmass-refit`` and every export)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..interop._bounds import DEFAULT_MAX_OUTPUT_GB


def bound_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--max-output-gb`` and ``--max-memory-gb`` (floats, GB; passed on as
    ``max_output_gb`` and ``max_memory_gb``, None for the default memory bound)."""
    fn = click.option(
        "--max-memory-gb",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        metavar="GB",
        help="Refuse, before any work, an export whose estimated peak memory is larger "
        "[default: half of this machine's memory; inf: no bound].",
    )(fn)
    return click.option(
        "--max-output-gb",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_MAX_OUTPUT_GB,
        show_default=True,
        metavar="GB",
        help="Refuse, before any work, an export whose estimated output is larger (inf: no bound).",
    )(fn)


#: ``--max-memory GB`` (passed on as ``max_memory``): the bound on a model's estimated memory
max_memory_option = click.option(
    "--max-memory",
    "max_memory",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="GB",
    help="Refuse a model whose estimated memory (parameters x bins, dense blocks, "
    "covariance; checked before it is built) is over GB [default: 2 GiB, "
    "ReadLimits.max_model_bytes].",
)


def pdf_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--pdf NAME``, ``--pdf-path DIR`` (repeatable) and ``--pdf-scale X``, the same in every
    command that takes a PDF set (passed on as ``pdf``, ``pdf_paths``, ``pdf_scale``)."""
    fn = click.option(
        "--pdf-scale",
        type=float,
        default=None,
        metavar="X",
        help="Factor of the PDF set's one-sigma uncertainty [default: the archive's factor "
        "for its sets, 1 for others].",
    )(fn)
    fn = click.option(
        "--pdf-path",
        "pdf_paths",
        multiple=True,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        metavar="DIR",
        help="Folder with LHAPDF sets, searched before LHAPDF_DATA_PATH (repeatable).",
    )(fn)
    return click.option(
        "--pdf",
        default=None,
        metavar="NAME",
        help="PDF set: the archive's name, LHAPDF name or alias (NNPDF40, NNPDF4.0, ...); "
        "a set the archive lacks is computed from LHAPDF and cached.",
    )(fn)


def resolved_pdf(
    archive: Path | None, pdf: str | None, pdf_paths: tuple[Path, ...], pdf_scale: float | None
) -> Any:
    """What an export takes as its PDF set: None when no PDF option is given (the archive's
    nominal set), else the theory resolved once (:func:`~wmass_archive.theory.resolve.
    resolve_theory`) with the search path and scale factor, as ``wmass-refit`` resolves it.
    An archive without theory is left to the export, which says --pdf does not apply."""
    if pdf is None and not pdf_paths and pdf_scale is None:
        return None
    from ..archive.reader import open_archive
    from ..theory.resolve import has_theory, resolve_theory

    if archive is None:
        from ..refit.paths import default_archive_path

        archive = default_archive_path()
    with open_archive(archive) as a:
        if not has_theory(a.metadata):
            return pdf
        paths = [str(p) for p in pdf_paths] or None
        return resolve_theory(a, pdf, paths=paths, scale=pdf_scale)
