"""Options shared by the ``wmass-archive export`` commands: the bounds on output and memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..export._bounds import DEFAULT_MAX_OUTPUT_GB


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
