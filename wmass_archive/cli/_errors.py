"""The command-line error convention shared by every ``wmass-archive``/``wmass-refit``
command: a failure is one line on stderr (``error: ...``) and exit status 1, never a
traceback (unless WMASS_ARCHIVE_DEBUG=1); warnings are printed as one line each. Both are
escaped with :func:`wmass_archive.text.printable`: an archive's strings never reach the
terminal raw."""

from __future__ import annotations

import functools
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import click

from ..errors import ArchiveError
from ..text import printable

DEBUG_ENV = "WMASS_ARCHIVE_DEBUG"


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report any failure as one line on stderr and exit 1 (no traceback unless
    WMASS_ARCHIVE_DEBUG=1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return _with_one_line_warnings(fn, args, kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except ArchiveError as exc:
            _fail(f"error: {exc}")
        except KeyError as exc:  # unknown channel/process/... names from the API
            _fail(f"error: {exc.args[0] if exc.args else exc}")
        except KeyboardInterrupt:
            _fail("interrupted")
        except Exception as exc:  # a bad file must never produce a traceback
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            msg = " ".join(str(exc).split())[:400]
            _fail(f"error: unexpected {type(exc).__name__}: {msg} (set {DEBUG_ENV}=1 for details)")

    return wrapper


def _with_one_line_warnings(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Run ``fn``, printing its warnings (e.g. a newer minor format version) as one line each
    once it has finished; a command that fails prints only its one error line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(*args, **kwargs)
        except SystemExit:  # a command's own exit status (diff: 3) is a result, not an error
            _echo_warnings(caught)
            raise
    _echo_warnings(caught)
    return result


def _echo_warnings(caught: list) -> None:
    for msg in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        click.echo(printable(f"warning: {msg}"), err=True)


def _fail(msg: str) -> None:
    """Print ``msg`` as one line, every control character escaped (it may quote an archive's
    strings: this is the last line of defence of every command), and exit 1."""
    click.echo(printable(msg), err=True)
    sys.exit(1)
