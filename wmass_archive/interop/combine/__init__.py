"""CMS Combine datacards, read into archives (docs/combine.md).

:func:`import_combine`: a datacard with its ROOT shapes (read with uproot), with Combine's
default physics model. Modules: ``importer`` (the archive written), ``_card`` (the datacard
parser), ``_shapes`` (histograms from ROOT files), ``_stats`` (autoMCStats), ``_plan`` (what
each directive becomes in the format).

    >>> from wmass_archive.interop.combine import import_combine
    >>> print(import_combine("card.txt", "card.h5").summary())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_getattr

if TYPE_CHECKING:  # pragma: no cover
    from .importer import (
        R_RANGE,
        CombineImportError,
        CombineImportReport,
        CombineParameter,
        import_combine,
    )

# imported on first use, as the other formats' names
__getattr__ = lazy_getattr(
    __name__,
    {
        "R_RANGE": (".importer", "R_RANGE"),
        "CombineImportError": (".importer", "CombineImportError"),
        "CombineImportReport": (".importer", "CombineImportReport"),
        "CombineParameter": (".importer", "CombineParameter"),
        "import_combine": (".importer", "import_combine"),
    },
)

__all__ = [
    "R_RANGE",
    "CombineImportError",
    "CombineImportReport",
    "CombineParameter",
    "import_combine",
]
