"""Extended modifiers (format 1.1, docs/format.md section 15): the tables of one channel as
numpy arrays, the writer's collection of them, and the value rules both the writer and the
validator apply.

* **additive** rows (one per (parameter, process)): absolute shifts ``up``/``down`` of the
  yield at t = +1 / -1 (events), interpolation ``code`` 0, 2 or 4;
* **multiplicative** rows: ratios ``hi``/``lo`` = varied / nominal at t = +1 / -1, ``code``
  0, 1, 2 or 4;
* **linear** entries (sorted by (parameter, process, bin), unique): the factor
  ``1 + coeff * t`` on the yield of a process in one bin.

Indices are those of section 7.1: parameters (POIs, then nuisances), processes of the global
list, flat bins of the channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import layout
from .models import MODIFIER_KINDS, ArchiveMetadata


@dataclass(frozen=True)
class AdditiveRows:
    """``parameter``, ``process``, ``code`` (n_rows,) int64; ``up``, ``down`` (n_rows, n_bins)
    float64: shifts of the yield at t = +1 and t = -1 (varied - nominal, events)."""

    parameter: np.ndarray
    process: np.ndarray
    code: np.ndarray
    up: np.ndarray
    down: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.parameter.shape[0])


@dataclass(frozen=True)
class MultiplicativeRows:
    """``parameter``, ``process``, ``code`` (n_rows,) int64; ``hi``, ``lo`` (n_rows, n_bins)
    float64: ratios varied / nominal at t = +1 and t = -1."""

    parameter: np.ndarray
    process: np.ndarray
    code: np.ndarray
    hi: np.ndarray
    lo: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.parameter.shape[0])


@dataclass(frozen=True)
class LinearEntries:
    """``parameter``, ``process``, ``bin`` (nnz,) int64 and ``coeff`` (nnz,) float64: the
    factor ``1 + coeff * t`` on one process in one bin."""

    parameter: np.ndarray
    process: np.ndarray
    bin: np.ndarray
    coeff: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.parameter.shape[0])


@dataclass(frozen=True)
class ChannelModifiers:
    """The extended modifiers of one channel (all three kinds; empty for a kind the channel
    does not list)."""

    n_bins: int
    additive: AdditiveRows
    multiplicative: MultiplicativeRows
    linear: LinearEntries

    @property
    def empty(self) -> bool:
        return not (self.additive.n_rows or self.multiplicative.n_rows or self.linear.nnz)

    @staticmethod
    def from_arrays(n_bins: int, tables: dict[str, dict[str, np.ndarray]]) -> ChannelModifiers:
        """From {kind: {field: array}} (missing kinds are empty); indices become int64."""

        def get(kind: str) -> list[np.ndarray]:
            index_fields, value_fields = layout.MODIFIER_FIELDS[kind]
            t = tables.get(kind, {})
            shape = (0, n_bins) if kind != "linear" else (0,)
            return [np.asarray(t[f], np.int64) if f in t else _ints() for f in index_fields] + [
                np.asarray(t[f], np.float64) if f in t else np.zeros(shape) for f in value_fields
            ]

        return ChannelModifiers(
            n_bins,
            AdditiveRows(*get("additive")),
            MultiplicativeRows(*get("multiplicative")),
            LinearEntries(*get("linear")),
        )

    def arrays(self, kind: str) -> dict[str, np.ndarray]:
        """{field: array} of one kind, indices as int32 (the written dtype)."""
        table = getattr(self, kind)
        index_fields, value_fields = layout.MODIFIER_FIELDS[kind]
        out = {f: getattr(table, f).astype(np.int32) for f in index_fields}
        out.update({f: np.asarray(getattr(table, f), np.float64) for f in value_fields})
        return out


def _ints() -> np.ndarray:
    return np.zeros(0, np.int64)


def lo_default(hi: np.ndarray, code: int) -> np.ndarray:
    """The ratio at t = -1 when only ``hi`` is given: 1/hi for codes 1 and 4 (symmetric in the
    logarithm), 2 - hi for codes 0 and 2 (symmetric shift)."""
    return 1.0 / hi if code in (1, 4) else 2.0 - hi


def modifier_problem(meta: ArchiveMetadata, channel: str, mods: ChannelModifiers) -> str | None:
    """The first violated value rule of section 15.2 in the channel's tables, or None: finite
    values, indices in range, allowed codes, hi and lo > 0 for codes 1 and 4, (parameter,
    process) pairs unique per kind, linear entries sorted and unique, and every entry on a
    plain process with a yield in the channel, driven by a nuisance."""
    ch = meta.channel(channel)
    n_par, n_proc, nb = len(meta.parameter_names), len(meta.processes), ch.n_bins
    tables = {"additive": mods.additive, "multiplicative": mods.multiplicative}
    for kind, t in tables.items():
        vals = (t.up, t.down) if kind == "additive" else (t.hi, t.lo)
        if any(v.shape != (t.n_rows, nb) for v in vals) or t.process.shape != (t.n_rows,):
            return f"{kind} rows: inconsistent shapes"
        if not all(np.all(np.isfinite(v)) for v in vals):
            return f"{kind} rows: a value is not finite"
        bad = ~np.isin(t.code, layout.MODIFIER_CODES[kind])
        if np.any(bad):
            return f"{kind} rows: interpolation code {int(t.code[bad][0])} is not allowed"
        if kind == "multiplicative":
            exp_rows = np.isin(t.code, (1, 4))
            if np.any(exp_rows[:, None] & ((t.hi <= 0) | (t.lo <= 0))):
                return "multiplicative rows: hi and lo must be > 0 for codes 1 and 4"
    lin = mods.linear
    if not (lin.process.shape == lin.bin.shape == lin.coeff.shape == (lin.nnz,)):
        return "linear entries: inconsistent shapes"
    if not np.all(np.isfinite(lin.coeff)):
        return "linear entries: a coefficient is not finite"
    for kind, t in (*tables.items(), ("linear", lin)):
        for name, idx, n in (("parameter", t.parameter, n_par), ("process", t.process, n_proc)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                return f"{kind}: {name} index out of range [0, {n})"
    if lin.nnz and (lin.bin.min() < 0 or lin.bin.max() >= nb):
        return f"linear entries: bin index out of range [0, {nb})"
    for kind, t in tables.items():
        keys = t.parameter * n_proc + t.process
        if np.unique(keys).size != keys.size:
            return f"{kind} rows: a (parameter, process) pair is repeated"
    flat = (lin.parameter * n_proc + lin.process) * nb + lin.bin
    if flat.size > 1 and np.any(np.diff(flat) <= 0):
        return "linear entries are not sorted by (parameter, process, bin) and unique"
    pairs = np.unique(
        np.concatenate([t.parameter * n_proc + t.process for t in (*tables.values(), lin)])
    )
    for key in pairs:
        par, proc = meta.parameter_names[int(key // n_proc)], meta.processes[int(key % n_proc)]
        problem = meta.modifier_problem(par, proc.name, channel)
        if problem is not None:
            return f"modifier of '{proc.name}' driven by '{par}': {problem}"
    return None


@dataclass
class ModifierCollector:
    """What the writer collects: per kind, {(parameter, process, channel): arrays}."""

    additive: dict[tuple[str, str, str], tuple[int, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )
    multiplicative: dict[tuple[str, str, str], tuple[int, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )
    linear: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def kinds(self, channel: str) -> list[str]:
        """The kinds given for ``channel``, in the canonical order."""
        return [k for k in MODIFIER_KINDS if any(key[2] == channel for key in getattr(self, k))]

    def put(self, kind: str, key: tuple[str, str, str], value: tuple) -> bool:
        """Store one modifier; False when ``key`` already has one of this kind."""
        table = getattr(self, kind)
        if key in table:
            return False
        table[key] = value
        return True

    def problem(self, meta: ArchiveMetadata, channel: str) -> str | None:
        """Why a modifier given for ``channel`` may not be written (unknown parameter, a POI,
        a folded process, no yield), or None."""
        for kind in MODIFIER_KINDS:
            for par, proc, ch in getattr(self, kind):
                problem = meta.modifier_problem(par, proc, ch) if ch == channel else None
                if problem is not None:
                    return f"{kind} modifier '{par}' of '{proc}': {problem}"
        return None

    def tables(self, meta: ArchiveMetadata, channel: str) -> ChannelModifiers:
        """The channel's tables, rows sorted by (parameter, process), entries by (parameter,
        process, bin)."""
        pidx = {n: i for i, n in enumerate(meta.parameter_names)}
        qidx = {p.name: i for i, p in enumerate(meta.processes)}
        nb = meta.channel(channel).n_bins
        out: dict[str, dict[str, np.ndarray]] = {}
        for kind in ("additive", "multiplicative"):
            rows = sorted(
                (
                    (pidx[par], qidx[proc], code, a, b)
                    for (par, proc, ch), (code, a, b) in getattr(self, kind).items()
                    if ch == channel
                ),
                key=lambda r: (r[0], r[1]),
            )
            v1, v2 = layout.MODIFIER_FIELDS[kind][1]
            out[kind] = {
                "parameter": np.array([r[0] for r in rows], np.int64),
                "process": np.array([r[1] for r in rows], np.int64),
                "code": np.array([r[2] for r in rows], np.int64),
                v1: np.array([r[3] for r in rows], np.float64).reshape(-1, nb),
                v2: np.array([r[4] for r in rows], np.float64).reshape(-1, nb),
            }
        ent = sorted(
            (
                (pidx[par], qidx[proc], bins, coeff)
                for (par, proc, ch), (bins, coeff) in self.linear.items()
                if ch == channel
            ),
            key=lambda r: (r[0], r[1]),
        )
        n = [e[2].size for e in ent]
        out["linear"] = {
            "parameter": np.repeat([e[0] for e in ent], n).astype(np.int64),
            "process": np.repeat([e[1] for e in ent], n).astype(np.int64),
            "bin": np.concatenate([e[2] for e in ent]) if ent else _ints(),
            "coeff": np.concatenate([e[3] for e in ent]) if ent else np.zeros(0),
        }
        return ChannelModifiers.from_arrays(nb, out)


__all__ = [
    "AdditiveRows",
    "ChannelModifiers",
    "LinearEntries",
    "ModifierCollector",
    "MultiplicativeRows",
    "lo_default",
    "modifier_problem",
]
