"""Named histogram axes: the binning of channels and of the theory (generator) grid.

An :class:`Axis` follows the axis description of UHI's serialisation schema (``uhi.io``, the
one hist and boost-histogram write): ``regular`` (``bins``, ``lower``, ``upper``), ``variable``
(``edges``), ``category_int`` and ``category_str`` (``categories``). The archive keeps
in-range bins only: underflow and overflow are never stored.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ContentError

AxisType = Literal["regular", "variable", "category_int", "category_str"]


class Axis(BaseModel):
    """One named axis. Bins are the in-range bins; flow bins are not part of the archive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: AxisType
    label: str = Field(default="", max_length=500)
    unit: str = Field(default="", max_length=50, description="Unit of the axis values, e.g. GeV")
    bins: int | None = Field(default=None, ge=1, le=10_000_000, description="regular only")
    lower: float | None = Field(default=None, description="regular only")
    upper: float | None = Field(default=None, description="regular only")
    edges: list[float] | None = Field(default=None, description="variable only, increasing")
    categories: list[int] | list[str] | None = Field(default=None, description="category only")

    @model_validator(mode="after")
    def _check(self) -> Axis:
        if self.type == "regular":
            if self.bins is None or self.lower is None or self.upper is None:
                raise ValueError(f"regular axis '{self.name}' needs bins, lower and upper")
            if (
                not (np.isfinite(self.lower) and np.isfinite(self.upper))
                or self.upper <= self.lower
            ):
                raise ValueError(f"regular axis '{self.name}' needs finite lower < upper")
            if self.edges is not None or self.categories is not None:
                raise ValueError(f"regular axis '{self.name}' takes no edges or categories")
        elif self.type == "variable":
            if self.edges is None or len(self.edges) < 2:
                raise ValueError(f"variable axis '{self.name}' needs at least two edges")
            e = np.asarray(self.edges, dtype=float)
            if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
                raise ValueError(f"variable axis '{self.name}' needs finite, increasing edges")
            if self.bins is not None or self.categories is not None:
                raise ValueError(f"variable axis '{self.name}' takes edges only")
        else:
            if not self.categories:
                raise ValueError(f"category axis '{self.name}' needs categories")
            want = int if self.type == "category_int" else str
            if not all(isinstance(c, want) for c in self.categories):
                raise ValueError(f"axis '{self.name}' of type {self.type} has mixed categories")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"category axis '{self.name}' has duplicate categories")
            if self.edges is not None or self.bins is not None:
                raise ValueError(f"category axis '{self.name}' takes categories only")
        return self

    # -- derived --------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of (in-range) bins."""
        if self.type == "regular":
            return int(self.bins)  # type: ignore[arg-type]
        if self.type == "variable":
            return len(self.edges) - 1  # type: ignore[arg-type]
        return len(self.categories)  # type: ignore[arg-type]

    @property
    def is_continuous(self) -> bool:
        return self.type in ("regular", "variable")

    def bin_edges(self) -> np.ndarray:
        """Edges, shape (size + 1,), for continuous axes."""
        if self.type == "regular":
            return np.linspace(self.lower, self.upper, int(self.bins) + 1)  # type: ignore[arg-type]
        if self.type == "variable":
            return np.asarray(self.edges, dtype=np.float64)
        raise ContentError(f"axis '{self.name}' is a category axis and has no edges")

    def centers(self) -> np.ndarray:
        e = self.bin_edges()
        return 0.5 * (e[1:] + e[:-1])

    def same_binning(self, other: Axis, rtol: float = 1e-9) -> bool:
        """True when both axes have the same name, type family and bins."""
        if self.name != other.name or self.size != other.size:
            return False
        if self.is_continuous != other.is_continuous:
            return False
        if self.is_continuous:
            return bool(np.allclose(self.bin_edges(), other.bin_edges(), rtol=rtol, atol=0.0))
        return list(self.categories) == list(other.categories)  # type: ignore[arg-type]

    # -- conversion -----------------------------------------------------------------------
    @classmethod
    def regular(
        cls, bins: int, lower: float, upper: float, *, name: str, label: str = "", unit: str = ""
    ) -> Axis:
        return cls(
            name=name, type="regular", bins=bins, lower=lower, upper=upper, label=label, unit=unit
        )

    @classmethod
    def variable(cls, edges: Any, *, name: str, label: str = "", unit: str = "") -> Axis:
        return cls(
            name=name, type="variable", edges=[float(x) for x in edges], label=label, unit=unit
        )

    @classmethod
    def category(
        cls, categories: list[int] | list[str], *, name: str, label: str = "", unit: str = ""
    ) -> Axis:
        kind = "category_str" if categories and isinstance(categories[0], str) else "category_int"
        cats = (
            [str(c) for c in categories] if kind == "category_str" else [int(c) for c in categories]
        )
        return cls(name=name, type=kind, categories=cats, label=label, unit=unit)

    @classmethod
    def from_hist(cls, ax: Any) -> Axis:
        """Convert a ``hist``/``boost_histogram`` axis. The unit is read from ``ax.metadata``
        when it is a dict with a ``unit`` key (or from ``ax.unit``)."""
        import boost_histogram as bh

        name = getattr(ax, "name", "") or ""
        if not name:
            raise ContentError("histogram axes must be named (hist.axis.*(..., name='eta'))")
        label = getattr(ax, "label", "") or ""
        if label == name:
            label = ""
        meta = getattr(ax, "metadata", None)
        unit = ""
        if isinstance(meta, dict):
            unit = str(meta.get("unit", ""))
        unit = str(getattr(ax, "unit", unit) or unit)
        if isinstance(ax, bh.axis.Regular) and not getattr(ax.traits, "circular", False):
            trans = getattr(ax, "transform", None)
            if trans is None:
                return cls.regular(
                    ax.size,
                    float(ax.edges[0]),
                    float(ax.edges[-1]),
                    name=name,
                    label=label,
                    unit=unit,
                )
            return cls.variable(ax.edges, name=name, label=label, unit=unit)
        if isinstance(ax, (bh.axis.Variable, bh.axis.Regular)):
            return cls.variable(ax.edges, name=name, label=label, unit=unit)
        if isinstance(ax, (bh.axis.Integer,)):
            return cls.category(
                [int(v) for v in np.arange(ax.edges[0], ax.edges[-1])],
                name=name,
                label=label,
                unit=unit,
            )
        if isinstance(ax, bh.axis.IntCategory):
            return cls.category(
                [int(ax.value(i)) for i in range(ax.size)], name=name, label=label, unit=unit
            )
        if isinstance(ax, bh.axis.StrCategory):
            return cls.category(
                [str(ax.value(i)) for i in range(ax.size)], name=name, label=label, unit=unit
            )
        raise ContentError(f"axis '{name}': unsupported histogram axis type {type(ax).__name__}")

    def to_hist(self) -> Any:
        """A ``hist`` axis with the same binning (no flow bins)."""
        import hist

        meta = {"unit": self.unit} if self.unit else None
        kw = dict(name=self.name, label=self.label or self.name, metadata=meta)
        if self.type == "regular":
            return hist.axis.Regular(int(self.bins), self.lower, self.upper, flow=False, **kw)
        if self.type == "variable":
            return hist.axis.Variable(self.edges, flow=False, **kw)
        if self.type == "category_int":
            return hist.axis.IntCategory(list(self.categories), **kw)
        return hist.axis.StrCategory(list(self.categories), **kw)
