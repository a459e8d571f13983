"""wmass-archive: a versioned, schema-validated archive of the W-boson mass likelihood.

Producers write templates, response tensors, theory grids and nuisance definitions once with
:class:`ArchiveWriter`; anyone reads them back lazily with :func:`open_archive`.
"""

from importlib.metadata import PackageNotFoundError, version

from .archive import (
    FORMAT_VERSION,
    Archive,
    ArchiveMetadata,
    ArchiveWriter,
    Axis,
    open_archive,
    validate_archive,
)
from .errors import ArchiveError

try:
    __version__ = version("wmass-archive")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# the theorist's API (after __version__, which its modules record in provenance); refit()
# itself is wmass_archive.refit.refit: the name wmass_archive.refit is the subpackage
from .refit import RefitResult, TheoryGrid, archive_contents  # noqa: E402

__all__ = [
    "FORMAT_VERSION",
    "Archive",
    "ArchiveError",
    "ArchiveMetadata",
    "ArchiveWriter",
    "Axis",
    "RefitResult",
    "TheoryGrid",
    "archive_contents",
    "open_archive",
    "validate_archive",
    "__version__",
]
