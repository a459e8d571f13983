"""The likelihood model of an archive in JAX (float64): expected yields as a jit-compiled
function of the parameters, exactly as docs/format.md sections 7, 9, 10 and 11 define them.

    >>> from wmass_archive.model import build_model
    >>> m = build_model("demo.h5", pdf="DemoReplicas", poi="mw-charge")
    >>> m.expected(theta)  # (n_bins,) expected events per bin
"""

from __future__ import annotations

from .build import BBMode, Model, ModelError, build_model
from .info import ModelInfo, ParameterInfo, POIInfo
from .poi import PREDEFINED as POI_DEFINITIONS
from .poi import POISplit, poi_split
from .theory import TheoryArrays, build_theory

__all__ = [
    "BBMode",
    "Model",
    "ModelError",
    "ModelInfo",
    "ParameterInfo",
    "POIInfo",
    "POI_DEFINITIONS",
    "POISplit",
    "TheoryArrays",
    "build_model",
    "build_theory",
    "poi_split",
]
