"""wmass-archive: a versioned, schema-validated archive of the W-boson mass likelihood.

Producers write templates, response tensors, theory grids and nuisance definitions once with
:class:`ArchiveWriter`; anyone reads them back lazily with :func:`open_archive`.
"""

from ._version import __version__
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

# the theorist's API; refit() itself is wmass_archive.refit.refit: the name wmass_archive.refit
# is the subpackage
from .refit import RefitResult, TheoryGrid, archive_contents

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
