"""pyhf JSON workspaces, both ways (docs/pyhf.md).

* :func:`import_pyhf`: a workspace (optionally one patch of a patchset) as an archive, every
  pyhf modifier mapped with pyhf's semantics; the report maps the archive's parameters onto
  pyhf's (``value = offset + scale * theta``). Modules: ``importer`` (the archive written),
  ``_load`` (reading, validating and patching a workspace), ``_map`` (modifiers to the format),
  ``_params`` (parameters).
* :func:`export_pyhf`: an archive as a workspace at the nominal mass and a patchset with one
  patch per fixed mass, which :func:`pyhf_mass_scan` profiles with pyhf. Modules: ``exporter``,
  ``_spec`` (the workspace), ``_scan`` (the scan).

    >>> from wmass_archive.interop.pyhf import export_pyhf, import_pyhf, pyhf_mass_scan
    >>> print(import_pyhf("workspace.json", "imported.h5").summary())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_getattr

if TYPE_CHECKING:  # pragma: no cover
    from .exporter import (
        EXPORT_MODIFIER_SETTINGS,
        MassScan,
        PyhfExportReport,
        export_pyhf,
        pyhf_mass_scan,
    )
    from .importer import ParameterMapping, PyhfImportError, PyhfImportReport, import_pyhf

# imported on first use: the export imports JAX
__getattr__ = lazy_getattr(
    __name__,
    {
        "ParameterMapping": (".importer", "ParameterMapping"),
        "PyhfImportError": (".importer", "PyhfImportError"),
        "PyhfImportReport": (".importer", "PyhfImportReport"),
        "import_pyhf": (".importer", "import_pyhf"),
        "EXPORT_MODIFIER_SETTINGS": (".exporter", "EXPORT_MODIFIER_SETTINGS"),
        "MassScan": (".exporter", "MassScan"),
        "PyhfExportReport": (".exporter", "PyhfExportReport"),
        "export_pyhf": (".exporter", "export_pyhf"),
        "pyhf_mass_scan": (".exporter", "pyhf_mass_scan"),
    },
)

__all__ = [
    "EXPORT_MODIFIER_SETTINGS",
    "MassScan",
    "ParameterMapping",
    "PyhfExportReport",
    "PyhfImportError",
    "PyhfImportReport",
    "export_pyhf",
    "import_pyhf",
    "pyhf_mass_scan",
]
