"""Where the HEPData export writes: a hidden staging folder beside the output, checked before
the fit, moved into place once the submission is valid (replacing a previous export), and the
optional upload tarball."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import HEPDataError


def prepare_output(out: Path) -> Path:
    """Check that ``out`` can take the submission (a new folder, an empty one or a previous
    export) and create the hidden staging folder beside it; fails before any fit."""
    if out.exists() and not out.is_dir():
        raise HEPDataError(f"cannot write the HEPData submission to {out}: it is a file")
    if out.is_dir():
        entries = list(out.iterdir())
        previous = (out / "submission.yaml").is_file() and all(e.is_file() for e in entries)
        if entries and not previous:
            raise HEPDataError(
                f"{out} is not empty and holds no previous HEPData export (submission.yaml "
                "and files only): choose a new or empty folder"
            )
    parent = out.resolve().parent
    if not parent.is_dir():
        raise HEPDataError(
            f"cannot write the HEPData submission to {out}: folder {parent} does not exist"
        )
    staging = parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
    except PermissionError:
        raise HEPDataError(
            f"cannot write the HEPData submission to {out}: permission denied in {parent}"
        ) from None
    except OSError as exc:
        raise HEPDataError(
            f"cannot write the HEPData submission to {out}: {exc.strerror or exc}"
        ) from None
    return staging


def check_tarball(path: Path) -> None:
    """Fail before the fit when the upload tarball cannot be written where asked."""
    if not path.name.endswith((".tar.gz", ".tgz")):
        raise HEPDataError(f"the upload tarball {path} must end in .tar.gz or .tgz")
    if path.is_dir():
        raise HEPDataError(f"cannot write the upload tarball {path}: it is a folder")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise HEPDataError(
            f"cannot write the upload tarball {path}: folder {parent} does not exist"
        )
    if not os.access(parent, os.W_OK):
        raise HEPDataError(f"cannot write the upload tarball {path}: permission denied")


@contextlib.contextmanager
def working_dir(path: Path) -> Iterator[None]:
    """Run in ``path``: hepdata_lib writes its submission.tar.gz into the working folder (the
    working folder is process-wide: do not run two exports in threads of one process)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def install(staging: Path, out: Path) -> None:
    """Move the validated staging folder to ``out``, replacing a previous export."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
