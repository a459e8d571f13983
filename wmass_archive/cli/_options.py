"""Options shared by several commands: the bound on a model's memory (``wmass-refit``,
``wmass-archive validate``) and the export commands' bounds on output and memory."""

from __future__ import annotations

from collections.abc import Callable
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
