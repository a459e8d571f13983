"""rabbit input tensors (CMS's TensorFlow fitter, PyPI ``rabbit-fit``), both ways
(docs/rabbit.md).

* :func:`export_rabbit`: an archive as rabbit's HDF5 input tensor; folded processes are
  unfolded into log-normal templates (module ``exporter`` for the approximations, ``_h5`` for
  the file);
* :func:`read_rabbit_tensor`: an independent h5py-only reader of such a tensor (no pickle) that
  evaluates rabbit's expected yields, and :func:`tensor_to_archive`, which writes an exported
  (log-normal) model back as a plain archive (module ``tensor``);
* :func:`import_rabbit`: any tensor written by rabbit's TensorWriter as an archive (module
  ``importer``).

    >>> from wmass_archive.interop.rabbit import export_rabbit
    >>> print(export_rabbit("likelihoods/default.h5", "default_rabbit.hdf5").summary())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_getattr

if TYPE_CHECKING:  # pragma: no cover
    from .exporter import ExportReport, export_rabbit
    from .importer import RabbitImportError, RabbitImportReport, RabbitParameterMap, import_rabbit
    from .tensor import RabbitTensor, read_rabbit_tensor, tensor_to_archive

# imported on first use: the export imports JAX
__getattr__ = lazy_getattr(
    __name__,
    {
        "ExportReport": (".exporter", "ExportReport"),
        "export_rabbit": (".exporter", "export_rabbit"),
        "RabbitImportError": (".importer", "RabbitImportError"),
        "RabbitImportReport": (".importer", "RabbitImportReport"),
        "RabbitParameterMap": (".importer", "RabbitParameterMap"),
        "import_rabbit": (".importer", "import_rabbit"),
        "RabbitTensor": (".tensor", "RabbitTensor"),
        "read_rabbit_tensor": (".tensor", "read_rabbit_tensor"),
        "tensor_to_archive": (".tensor", "tensor_to_archive"),
    },
)

__all__ = [
    "ExportReport",
    "RabbitImportError",
    "RabbitImportReport",
    "RabbitParameterMap",
    "RabbitTensor",
    "export_rabbit",
    "import_rabbit",
    "read_rabbit_tensor",
    "tensor_to_archive",
]
