"""Names of a package imported on first use (PEP 562), so that importing one light module of a
package (e.g. ``wmass_archive.model.budget``) does not import its heavy siblings (JAX)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, names: dict[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``names`` (public name ->
    (relative module, attribute)) when first asked for, and keeps them in the package."""

    def __getattr__(name: str) -> Any:
        try:
            module, attr = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module, package), attr)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
