"""Pieces every importer shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fitted_thetas(result: Any) -> dict[str, tuple[float, float]]:
    """{archive parameter: (theta, error)} from a fit result of an imported archive (a
    :class:`~wmass_archive.fit.FitResult`) or from such a mapping given directly."""
    if isinstance(result, Mapping):
        return {k: (float(v[0]), float(v[1])) for k, v in result.items()}
    return {p.name: (p.value, p.error) for p in result.parameters}
