"""The HEPData export's exception."""

from __future__ import annotations

from ...interop._common import ExportError


class HEPDataError(ExportError):
    """The HEPData submission cannot be written: an output that cannot be written, a field
    beyond HEPData's length limits, a fit that did not converge, or a submission that
    hepdata-validator refuses. The message is one line naming the file, table or field."""
