"""Other fitters' likelihood formats, each in one place: reading it into an archive and, where
the format allows, writing an archive out in it.

* :mod:`wmass_archive.interop.pyhf`: pyhf JSON workspaces and patchsets (docs/pyhf.md):
  :func:`import_pyhf`, :func:`export_pyhf`, :func:`pyhf_mass_scan`;
* :mod:`wmass_archive.interop.combine`: CMS Combine datacards with ROOT shapes
  (docs/combine.md): :func:`import_combine`;
* :mod:`wmass_archive.interop.rabbit`: rabbit input tensors (docs/rabbit.md):
  :func:`import_rabbit`, :func:`export_rabbit`, :func:`read_rabbit_tensor`,
  :func:`tensor_to_archive`.

    >>> from wmass_archive.interop.pyhf import import_pyhf
    >>> print(import_pyhf("workspace.json", "imported.h5").summary())

What the formats share lives here: :class:`ExportError` (what every export raises, HEPData's
included), the unfolding of folded processes into log-normal templates that the pyhf and rabbit
exports start from (:mod:`wmass_archive.interop.unfold`), and the size and memory bounds of
every export (``_bounds``). Arrows point one way: the formats import the archive, model and fit
packages; :mod:`wmass_archive.export` (HEPData) and the commands import this package; nothing
here imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ._common import ExportError, RabbitParameter

if TYPE_CHECKING:  # pragma: no cover
    from .combine import import_combine
    from .pyhf import export_pyhf, import_pyhf, pyhf_mass_scan
    from .rabbit import export_rabbit, import_rabbit, read_rabbit_tensor, tensor_to_archive

# imported on first use: the exports import JAX, the commands' options (_bounds) do not need it
__getattr__ = lazy_getattr(
    __name__,
    {
        "import_combine": (".combine.importer", "import_combine"),
        "import_pyhf": (".pyhf.importer", "import_pyhf"),
        "export_pyhf": (".pyhf.exporter", "export_pyhf"),
        "pyhf_mass_scan": (".pyhf.exporter", "pyhf_mass_scan"),
        "import_rabbit": (".rabbit.importer", "import_rabbit"),
        "export_rabbit": (".rabbit.exporter", "export_rabbit"),
        "read_rabbit_tensor": (".rabbit.tensor", "read_rabbit_tensor"),
        "tensor_to_archive": (".rabbit.tensor", "tensor_to_archive"),
    },
)

__all__ = [
    "ExportError",
    "RabbitParameter",
    "export_pyhf",
    "export_rabbit",
    "import_combine",
    "import_pyhf",
    "import_rabbit",
    "pyhf_mass_scan",
    "read_rabbit_tensor",
    "tensor_to_archive",
]
