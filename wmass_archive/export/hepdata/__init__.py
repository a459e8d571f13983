"""Export an archive's W-mass fit as a HEPData submission (hepdata_lib), validated with
hepdata-validator.

    >>> from wmass_archive.export.hepdata import export_hepdata
    >>> report = export_hepdata("likelihoods/default.h5", "hepdata/submission")
    >>> print(report.summary())

The submission holds mW (value, stat, syst, total), the group impacts (nominal and global),
the pulls, constraints and impacts of every nuisance, the correlation of mW with the nuisance
groups, mW for each PDF set (original and scaled uncertainty), the likelihood scan, the prefit
and postfit distributions, mW for each W charge (a second fit, ``poi="mw-charge"``) with their
difference and correlation, the generator-level distributions (cross sections in pb per bin and
angular coefficients per W charge, prefit and postfit, with the postfit correlations), and the
archive itself with its SHA-256. See ``docs/hepdata.md``.
"""

from __future__ import annotations

from ...archive.checksums import file_sha256 as sha256_of
from .errors import HEPDataError
from .limits import EXPORT_LIMITS, HEPDATA_LIMITS, check_submission, check_table
from .record import build_submission
from .submission import HEPDataReport, export_hepdata
from .validation import ValidationResult, require_valid, validate_submission
from .yields import YieldBands, jacobian, propagate, yield_bands

__all__ = [
    "EXPORT_LIMITS",
    "HEPDATA_LIMITS",
    "HEPDataError",
    "HEPDataReport",
    "ValidationResult",
    "YieldBands",
    "build_submission",
    "check_submission",
    "check_table",
    "export_hepdata",
    "jacobian",
    "propagate",
    "require_valid",
    "sha256_of",
    "validate_submission",
    "yield_bands",
]
