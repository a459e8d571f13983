"""Where the HEPData export writes: a hidden staging folder beside the output, checked before
the fit, moved into place with its manifest once the submission is valid (replacing a previous
export only: :mod:`wmass_archive.export._folder`), and the optional upload tarball."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ...interop._common import ExportError
from .._folder import check_replaceable, install_folder, staging_folder, write_manifest
from .errors import HEPDataError


def prepare_output(out: Path, *, overwrite: bool = False, protect: tuple[Path, ...] = ()) -> Path:
    """Check that ``out`` can take the submission (a new folder, an empty one, or a previous
    export whose manifest matches its files: :mod:`wmass_archive.export._folder`; anything with
    ``overwrite``) and create the hidden staging folder beside it; fails before any fit.
    ``protect``: paths (the input archive) that must not lie inside a replaced folder."""
    try:
        check_replaceable(out, overwrite=overwrite, protect=protect)
        return staging_folder(out)
    except HEPDataError:
        raise
    except ExportError as exc:
        raise HEPDataError(str(exc)) from None


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


def install(
    staging: Path, out: Path, *, overwrite: bool = False, protect: tuple[Path, ...] = ()
) -> None:
    """Write the manifest into the validated staging folder and move it to ``out``, replacing
    a previous export (checked again: :func:`wmass_archive.export._folder.install_folder`)."""
    write_manifest(staging, "export hepdata")
    try:
        install_folder(staging, out, overwrite=overwrite, protect=protect)
    except HEPDataError:
        raise
    except ExportError as exc:
        raise HEPDataError(str(exc)) from None
