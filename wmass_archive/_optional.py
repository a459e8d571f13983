"""Packages outside the core install, imported where a feature needs them.

``pip install wmass-archive`` gives the reader, the fitter and ``wmass-refit``; the rest comes
with an extra (pyproject.toml): ``interop`` (pyhf, jsonpatch, uproot), ``hepdata``
(hepdata-lib, hepdata-validator), ``plot`` (matplotlib, mplhep), ``dask`` (dask, distributed),
``pdf`` (lhapdf-management), ``all``. Every import of one of those packages goes through
:func:`require`, so that a missing one is one line naming the extra to install, never a
traceback:

    >>> plt = require("matplotlib.pyplot", "plot", "wmass-refit --plot")
    MissingExtraError: wmass-refit --plot needs matplotlib: pip install "wmass-archive[plot]"
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

#: distribution names where pip's differs from the module's
_PIP_NAMES = {
    "hepdata_lib": "hepdata-lib",
    "hepdata_validator": "hepdata-validator",
    "lhapdf_management": "lhapdf-management",
}


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``module`` imported, or :class:`MissingExtraError`: ``{feature} needs {package}: pip
    install "wmass-archive[{extra}]"`` (and why, when the package is there but does not
    import)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.partition(".")[0]
        package = _PIP_NAMES.get(top, top)
        msg = f'{feature} needs {package}: pip install "wmass-archive[{extra}]"'
        missing = exc.name is None or exc.name.partition(".")[0] == top
        if not missing:  # installed, but one of its own imports fails
            msg += f" ({package} is installed but does not import: {exc})"
        raise MissingExtraError(msg) from None


def available(module: str) -> bool:
    """Whether ``module`` imports (it is imported: use it only where it would be used)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
