"""Exports of an archive's likelihood to other fitters' inputs.

* :func:`export_rabbit`: rabbit's HDF5 input tensor (CMS's TensorFlow fitter, PyPI
  ``rabbit-fit``); folded processes are unfolded into log-normal templates
  (see :mod:`wmass_archive.export.rabbit` for the approximations);
* :func:`read_rabbit_tensor`: an independent h5py-only reader of such a tensor (no pickle) that
  evaluates rabbit's expected yields, and :func:`tensor_to_archive`, which writes the exported
  (log-normal) model back as a plain archive so that our fitter can fit exactly rabbit's model.

    >>> from wmass_archive.export import export_rabbit
    >>> report = export_rabbit("likelihoods/default.h5", "default_rabbit.hdf5")
    >>> print(report.summary())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ._common import ExportError, RabbitParameter

if TYPE_CHECKING:  # pragma: no cover
    from .pyhf import PyhfExportReport, export_pyhf, pyhf_mass_scan
    from .rabbit import ExportReport, export_rabbit
    from .rabbit_read import RabbitTensor, read_rabbit_tensor, tensor_to_archive

# imported on first use: the exporters import JAX, the export commands' options do not need it
__getattr__ = lazy_getattr(
    __name__,
    {
        "PyhfExportReport": (".pyhf", "PyhfExportReport"),
        "export_pyhf": (".pyhf", "export_pyhf"),
        "pyhf_mass_scan": (".pyhf", "pyhf_mass_scan"),
        "ExportReport": (".rabbit", "ExportReport"),
        "export_rabbit": (".rabbit", "export_rabbit"),
        "RabbitTensor": (".rabbit_read", "RabbitTensor"),
        "read_rabbit_tensor": (".rabbit_read", "read_rabbit_tensor"),
        "tensor_to_archive": (".rabbit_read", "tensor_to_archive"),
    },
)

__all__ = [
    "ExportError",
    "ExportReport",
    "RabbitParameter",
    "RabbitTensor",
    "export_pyhf",
    "export_rabbit",
    "pyhf_mass_scan",
    "PyhfExportReport",
    "read_rabbit_tensor",
    "tensor_to_archive",
]
