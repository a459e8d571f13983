"""The package's own exceptions.

Every problem with an archive is reported as an :class:`ArchiveError` (or a subclass) whose
message is one line naming the problem: the file, the dataset or field, and what was expected
against what was found. The command-line tools print that line and exit with status 1; they
never show a Python traceback for a bad file.
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Base class: an archive could not be read, validated or written."""

    def __init__(self, message: str):
        # one line, always: a message is printed as it is by the CLI
        super().__init__(" ".join(str(message).split()))


class ArchiveNotFoundError(ArchiveError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class NotAnArchiveError(ArchiveError):
    """The file is not HDF5 (empty, truncated before the superblock, another format) or is HDF5
    but was not written by wmass-archive."""


class UnsupportedVersionError(ArchiveError):
    """The archive's format version is one this reader cannot read (a newer major version)."""


class MetadataError(ArchiveError):
    """The embedded metadata JSON is malformed or does not satisfy the schema."""


class CorruptArchiveError(ArchiveError):
    """A dataset is missing, has the wrong shape or dtype, or cannot be decoded."""


class ChecksumError(CorruptArchiveError):
    """A dataset's SHA-256 does not match the checksum recorded when it was written."""


class HostileArchiveError(CorruptArchiveError):
    """The archive points outside itself (external links or storage, virtual datasets) or declares
    sizes beyond the reader's limits."""


class ResourceLimitError(HostileArchiveError):
    """What the archive declares would need more memory than the bound allows (a model's
    parameters x bins, dense blocks and covariance, estimated before anything is built);
    the message gives the estimate and how to raise the bound."""


class ContentError(ArchiveError, ValueError):
    """Content handed to the writer (or found by the validator) breaks a rule of the format:
    shapes, axes, finite values, non-negative yields, known names."""


class TheoryError(ArchiveError):
    """The theory a model should use cannot be resolved: an unknown or ambiguous PDF set, one
    that is not installed, a theory grid that does not fit the archive's generator binning or
    has the wrong units; the message is one line naming the problem and the way out."""


class MissingExtraError(ArchiveError, ImportError):
    """A feature needs a package outside the core install (pyhf, matplotlib, dask,
    hepdata-lib, ...); the message is one line naming the feature, the package and the extra
    that installs it: ``wmass-refit --plot needs matplotlib: pip install "wmass-archive[plot]"``.
    An :class:`ImportError` too, so that ``except ImportError`` keeps working."""
