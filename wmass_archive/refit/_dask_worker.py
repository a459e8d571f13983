"""Preloaded by the worker processes of the local dask cluster of :mod:`.tasks`: they ignore
SIGINT, so that Ctrl-C in a terminal (sent to the whole process group) interrupts the command,
which then shuts the cluster down, instead of printing a traceback from every worker."""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Called by distributed in each worker process at start-up (its main thread)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
