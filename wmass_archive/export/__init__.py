"""Exports of an archive for publication: the HEPData submission
(:mod:`wmass_archive.export.hepdata`, docs/hepdata.md), written into a folder that is replaced
only when it holds a previous export (``_folder``).

    >>> from wmass_archive.export.hepdata import export_hepdata
    >>> print(export_hepdata("likelihoods/default.h5", "hepdata/submission").summary())

Other fitters' inputs (pyhf workspaces, rabbit tensors) are written by
:mod:`wmass_archive.interop`, next to their importers; :class:`ExportError`, the base of
every export's error (:class:`~wmass_archive.export.hepdata.HEPDataError` included), and the
exports' size and memory bounds are shared from there.
"""

from __future__ import annotations

from ..interop._common import ExportError

__all__ = ["ExportError"]
