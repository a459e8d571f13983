"""The archive format: metadata models, HDF5 layout, writer, lazy reader, validator."""

from .axes import Axis
from .models import FORMAT_VERSION, POI, ArchiveMetadata, Citation, PDFSet, Provenance
from .modifiers import ChannelModifiers
from .reader import Archive, LogkTable, ReadLimits, Selection, find_pdf_set, open_archive
from .sparse import SparseTensor
from .validate import ValidationReport, validate_archive
from .writer import ArchiveWriter, WriteReport, replica_eigenvectors

__all__ = [
    "Axis",
    "FORMAT_VERSION",
    "ArchiveMetadata",
    "Citation",
    "PDFSet",
    "POI",
    "Provenance",
    "Archive",
    "LogkTable",
    "ChannelModifiers",
    "ReadLimits",
    "Selection",
    "find_pdf_set",
    "open_archive",
    "SparseTensor",
    "ValidationReport",
    "validate_archive",
    "ArchiveWriter",
    "WriteReport",
    "replica_eigenvectors",
]
