"""Importers: another fitter's published likelihood written as an archive.

* :func:`import_pyhf`: a pyhf JSON workspace (optionally one patch of a patchset), every pyhf
  modifier mapped with pyhf's semantics (docs/pyhf.md); the report maps the archive's
  parameters onto pyhf's (``value = offset + scale * theta``).

    >>> from wmass_archive.importers import import_pyhf
    >>> print(import_pyhf("workspace.json", "imported.h5").summary())

* :func:`import_combine`: a CMS Combine datacard with its ROOT shapes (read with uproot), with
  Combine's default physics model (docs/combine.md);
* :func:`import_rabbit`: a rabbit input tensor written by rabbit's TensorWriter, read with h5py
  only (docs/rabbit.md).
"""

from __future__ import annotations

from .combine import CombineImportError, CombineImportReport, import_combine
from .pyhf import ParameterMapping, PyhfImportError, PyhfImportReport, import_pyhf
from .rabbit import RabbitImportError, RabbitImportReport, import_rabbit

__all__ = [
    "CombineImportError",
    "CombineImportReport",
    "import_combine",
    "ParameterMapping",
    "PyhfImportError",
    "PyhfImportReport",
    "import_pyhf",
    "RabbitImportError",
    "RabbitImportReport",
    "import_rabbit",
]
