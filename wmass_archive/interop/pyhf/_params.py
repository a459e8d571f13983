"""Pieces of the pyhf import: the parameter map, pyhf's parameter families and their centres,
the bins of per-bin parameters, and safe names (used by :mod:`._pyhf_map`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._load import PyhfImportError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+\-]")


@dataclass
class ParameterMapping:
    """One archive parameter and the pyhf parameter it stands for:
    ``pyhf value = offset + scale * theta`` (and pyhf uncertainty = scale * error)."""

    name: str
    pyhf_name: str
    pyhf_parameter: str
    pyhf_index: int
    modifier: str
    kind: Literal["poi", "nuisance"]
    constraint: Literal["gaussian", "none", "poisson"]
    offset: float
    scale: float
    prior_scale: float = 1.0
    tau: float | None = None
    groups: list[str] = field(default_factory=list)
    bounds: tuple[float, float] | None = None  # pyhf's (suggested_bounds), in pyhf's units

    def pyhf_value(self, theta: float) -> float:
        """pyhf's value of the parameter at the archive's ``theta``."""
        return self.offset + self.scale * theta

    def theta_of(self, value: float) -> float:
        """The archive's theta at pyhf's ``value``."""
        return (value - self.offset) / self.scale

    def theta_bounds(self) -> tuple[float, float] | None:
        """pyhf's bounds in the archive's theta (scale > 0)."""
        if self.bounds is None:
            return None
        return self.theta_of(self.bounds[0]), self.theta_of(self.bounds[1])


def kind_of(types: set[str], name: str, source: str) -> str:
    """The family of a pyhf parameter from the modifier types that use it."""
    if not types:
        raise PyhfImportError(f"{source}: parameter '{name}' is used by no modifier")
    if types <= {"normsys", "histosys"}:
        return "alpha"
    if len(types) == 1:
        return next(iter(types))
    raise PyhfImportError(
        f"{source}: parameter '{name}' is shared by modifiers of types {sorted(types)}"
    )


def neutral_values(ps: Any, kind: str, name: str, fixed: list[bool], source: str) -> np.ndarray:
    """pyhf's values at the archive's theta = 0 (the constraint centre, or 1 for free
    factors), checked where the archive could not express another centre."""
    n = ps.n_parameters
    if kind == "alpha":
        aux = np.asarray(ps.auxdata, dtype=float)
        if not fixed[0] and aux[0] != 0.0:
            raise PyhfImportError(
                f"{source}: parameter '{name}' has auxdata {aux[0]} (the archive's "
                "normsys/histosys constraint is centred at 0): unsupported"
            )
        return aux
    if kind in ("lumi", "staterror"):
        aux = np.asarray(ps.auxdata, dtype=float)
        bad = [i for i in range(n) if not fixed[i] and not aux[i] > 0]
        if bad:
            raise PyhfImportError(
                f"{source}: parameter '{name}' has auxdata {aux[bad[0]]}: must be > 0"
            )
        return aux
    if kind == "shapesys":
        aux, fac = np.asarray(ps.auxdata, float), np.asarray(ps.factors, float)
        bad = [i for i in range(n) if not fixed[i] and (aux[i] != fac[i] or fac[i] <= 0)]
        if bad:
            raise PyhfImportError(
                f"{source}: shapesys '{name}' bin {bad[0]} has auxdata {aux[bad[0]]} and "
                f"factor {fac[bad[0]]}: the archive's poisson constraint needs them equal"
            )
    return np.ones(n)


def components(
    kind: str, name: str, n: int, spec: dict, cfg: Any, mods: dict, source: str
) -> list[list[tuple[str, int, list[str]]]]:
    """For a per-bin parameter: for each component, the (channel, bin, samples) it acts on,
    as pyhf assigns them (staterror/shapesys: the bins of the channels holding the modifier in
    pyhf's channel order; shapefactor: bin i of every channel holding it)."""
    out: list[list[tuple[str, int, list[str]]]] = [[] for _ in range(n)]
    holders: dict[str, list[str]] = {}
    for c in sorted(spec["channels"], key=lambda c: cfg.channels.index(c["name"])):
        for s in c["samples"]:
            if (kind, name) in mods[(c["name"], s["name"])]:
                holders.setdefault(c["name"], []).append(s["name"])
    if kind == "shapefactor":
        for cname, snames in holders.items():
            if cfg.channel_nbins[cname] > n:
                raise PyhfImportError(
                    f"{source}: shapefactor '{name}' has {n} parameters but channel '{cname}' "
                    f"{cfg.channel_nbins[cname]} bins (pyhf gives the extra bins no parameter "
                    "of their own): unsupported"
                )
            for b in range(cfg.channel_nbins[cname]):
                out[b].append((cname, b, snames))
        return out
    i = 0
    for cname, snames in holders.items():
        for b in range(cfg.channel_nbins[cname]):
            if i >= n:
                raise PyhfImportError(
                    f"{source}: {kind} '{name}' acts on more bins than its {n} parameters"
                )
            out[i].append((cname, b, snames))
            i += 1
    if i != n:
        raise PyhfImportError(f"{source}: {kind} '{name}' has {n} parameters for {i} bins")
    return out


class ParamNames:
    """Archive parameter names (no whitespace, no '/', at most 300 characters), unique."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def __call__(self, pyhf_name: str) -> str:
        base = re.sub(r"[\s/]", "_", pyhf_name)[:290] or "_"
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


def unique_safe(names: list[str]) -> dict[str, str]:
    """pyhf name -> a unique safe name (docs/format.md section 3)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for n in names:
        base = _UNSAFE.sub("_", n)[:190] or "_"
        if base[0] in ".+-":
            base = "_" + base
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        out[n] = name
    return out
