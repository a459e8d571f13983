"""The base of the archive's metadata models: a closed, frozen pydantic model, the name patterns,
and the helpers the models share (uniqueness of names, a validation error as one line)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from ..text import printable

#: names used as HDF5 group names (channels, processes, PDF sets): no '/', no '.' first
SAFE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,199}$"
#: names of nuisances and POIs: printable, no whitespace
PARAM_NAME = r"^[^\s/]{1,300}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _require_unique(names: list, what: str) -> None:
    seen: set = set()
    dup = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dup:
        raise ValueError(f"duplicate {what}: {', '.join(map(str, dup[:5]))}")


def validation_message(exc: ValidationError, limit: int = 3) -> str:
    """A pydantic validation error as one line: ``field.path: message; ...``."""
    errs = exc.errors()
    parts = []
    for e in errs[:limit]:
        # a location can hold a key of the document (a dict key): escaped, cut, one line
        loc = ".".join(printable(x, max_len=80) for x in e.get("loc", ()))
        parts.append(f"{loc + ': ' if loc else ''}{e.get('msg', '')}")
    more = f" (and {len(errs) - limit} more)" if len(errs) > limit else ""
    return "; ".join(parts) + more
