"""Offline validation of a HEPData submission with hepdata-validator.

The validator is used with its bundled JSON schemas only: remote schemas (``data_schema``
entries of a submission, which this export never writes) are not fetched
(``autoload_remote_schemas=False``), so validation needs no network.
"""

from __future__ import annotations

import gc
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..._optional import require
from .._folder import MANIFEST
from .errors import HEPDataError


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_submission`: ``valid``, the files found valid and the
    messages by file (paths relative to the submission)."""

    valid: bool
    valid_files: list[str] = field(default_factory=list)
    messages: dict[str, list[str]] = field(default_factory=dict)

    def first_problem(self) -> str:
        """The first message, one line, with its file."""
        for f, msgs in self.messages.items():
            if msgs:
                return f"{f}: {' '.join(msgs[0].split())}"
        return "no message"


def _validator():
    with warnings.catch_warnings():  # jsonschema's deprecated RefResolver, imported there
        warnings.simplefilter("ignore", DeprecationWarning)
        validator = require(
            "hepdata_validator.full_submission_validator",
            "hepdata",
            "validating HEPData submissions",
        )

    return validator.FullSubmissionValidator(autoload_remote_schemas=False)


def validate_submission(path: str | os.PathLike[str]) -> ValidationResult:
    """Validate a submission: a folder holding ``submission.yaml`` or an archive of one
    (``.tar.gz``, ``.zip``): submission.yaml against the submission schema, every data file
    against the data schema, every referenced file present and no unreferenced file (except the
    export's manifest ``.wmass-archive-export.json``, which is not uploaded: the tarball
    leaves it out)."""
    p = Path(path)
    v = _validator()
    with warnings.catch_warnings():  # and the files it opens without closing them
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", ResourceWarning)
        ok = v.validate(directory=str(p)) if p.is_dir() else v.validate(archive=str(p))
        gc.collect()  # close the files it left open while their warnings are ignored
    base = str(p) + os.sep

    def rel(s: str) -> str:
        return s.replace(base, "")

    valid_files = [rel(f) for files in v.valid_files.values() for f in files if isinstance(f, str)]
    messages = {
        rel(f): [rel(m.message) for m in msgs] for f, msgs in v.get_messages().items() if msgs
    }
    if p.is_dir() and messages.pop(MANIFEST, None) is not None and not messages:
        ok = True  # the export's own manifest (not part of the record) is the only complaint
    return ValidationResult(valid=bool(ok), valid_files=valid_files, messages=messages)


def require_valid(path: str | os.PathLike[str]) -> ValidationResult:
    """:func:`validate_submission`, raising :class:`HEPDataError` with the first problem when
    the submission is not valid."""
    res = validate_submission(path)
    if not res.valid:
        n = sum(len(m) for m in res.messages.values())
        raise HEPDataError(
            f"hepdata-validator refuses the submission {Path(path).name} ({n} problem(s)); "
            f"first: {res.first_problem()}"
        )
    return res
