"""Pieces the formats share: the exports' error, the unfolded model in rabbit's terms (written
by the pyhf and rabbit exports), how POIs map, and the importers' fitted parameter values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ArchiveError

#: root attribute of an exported tensor holding the export's JSON description
EXPORT_ATTR = "wmass_archive_export"
EXPORT_VERSION = 1


class ExportError(ArchiveError):
    """The archive cannot be exported with the options given."""


@dataclass(frozen=True)
class RabbitParameter:
    """How a POI of the archive appears in rabbit.

    ``role``: ``"signal"`` (rabbit POI ``rabbit_name`` = the signal process, mu = 1 + theta *
    scale / central), ``"noi"`` (unconstrained nuisance of interest, same theta as ours),
    ``"noi-lognormal"`` (a rate POI approximated by a log-normal NOI, same theta)."""

    name: str
    rabbit_name: str
    role: str
    kind: str
    unit: str = ""
    central: float = 0.0
    scale: float = 1.0
    blinding_offset: float = 0.0

    def physical(self, rabbit_value: float) -> float:
        """Physical value (``unit``, blinding offset included) of a rabbit parameter value."""
        theta = rabbit_value
        if self.role == "signal":
            theta = (rabbit_value - 1.0) * self.central / self.scale
        return self.central + self.scale * theta + self.blinding_offset


@dataclass
class UnfoldedModel:
    """The unfolded model in rabbit's terms, processes in rabbit order (signals first)."""

    procs: list[str]
    signals: list[str]
    systs: list[str]
    n_noconstraint: int
    noi: list[int]
    groups: dict[str, list[int]]
    norm: np.ndarray  # (n_bins, n_proc)
    sumw: np.ndarray  # (n_bins, n_proc)
    sumw2: np.ndarray  # (n_bins, n_proc)
    data: np.ndarray  # (n_bins,)
    e_syst: np.ndarray  # logk entries: syst, process, bin (unique), avg, halfdiff
    e_proc: np.ndarray
    e_bin: np.ndarray
    e_avg: np.ndarray
    e_hd: np.ndarray
    channels: list[dict[str, Any]]
    parameters: list[RabbitParameter]
    approximations: list[str] = field(default_factory=list)
    pdf_set: str | None = None
    title: str = ""
    synthetic: bool = True

    @property
    def symmetric(self) -> bool:
        return not bool(np.any(self.e_hd != 0))


def fitted_thetas(result: Any) -> dict[str, tuple[float, float]]:
    """{archive parameter: (theta, error)} from a fit result of an imported archive (a
    :class:`~wmass_archive.fit.FitResult`) or from such a mapping given directly."""
    if isinstance(result, Mapping):
        return {k: (float(v[0]), float(v[1])) for k, v in result.items()}
    return {p.name: (p.value, p.error) for p in result.parameters}
