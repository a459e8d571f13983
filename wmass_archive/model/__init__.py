"""The likelihood model of an archive in JAX (float64): expected yields as a jit-compiled
function of the parameters, exactly as docs/format.md sections 7, 9, 10 and 11 define them.

    >>> from wmass_archive.model import build_model
    >>> m = build_model("demo.h5", pdf="DemoReplicas", poi="mw-charge")
    >>> m.expected(theta)  # (n_bins,) expected events per bin

The names below are imported on first use (PEP 562), so that the package's light modules
(``budget``: a model's memory, estimated from the metadata) do not start JAX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:  # pragma: no cover
    from .build import build_model
    from .info import ModelInfo, ParameterInfo, POIInfo
    from .model import BBMode, Model, ModelError
    from .poi import PREDEFINED as POI_DEFINITIONS
    from .poi import POISplit, poi_split
    from .theory import TheoryArrays, build_theory

#: public name -> (module, attribute)
_LAZY = {
    "BBMode": (".model", "BBMode"),
    "Model": (".model", "Model"),
    "ModelError": (".model", "ModelError"),
    "build_model": (".build", "build_model"),
    "ModelInfo": (".info", "ModelInfo"),
    "ParameterInfo": (".info", "ParameterInfo"),
    "POIInfo": (".info", "POIInfo"),
    "POI_DEFINITIONS": (".poi", "PREDEFINED"),
    "POISplit": (".poi", "POISplit"),
    "poi_split": (".poi", "poi_split"),
    "TheoryArrays": (".theory", "TheoryArrays"),
    "build_theory": (".theory", "build_theory"),
}

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


__getattr__ = lazy_getattr(__name__, _LAZY)
