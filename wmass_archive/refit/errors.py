"""Errors of the refit layer: one-line messages, as everywhere in the package."""

from __future__ import annotations

from ..errors import ArchiveError


class RefitError(ArchiveError):
    """A refit cannot be done with the inputs given (unknown PDF set, a theory grid that does
    not fit the archive, an output path that cannot be written, ...); the message is one line
    naming the problem."""
