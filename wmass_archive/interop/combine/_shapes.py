"""The shapes of a Combine datacard: which ``shapes`` line serves a (channel, process), the
pattern substitution ($PROCESS, $CHANNEL, $SYSTEMATIC, $MASS), the file path (``remap``
prefixes, else relative to the card) and the ROOT histograms, read with uproot.

A histogram is a TH1 of any storage type (TH1F, TH1D, TH1I, ...): its in-range bin contents,
their errors (the stored sum of squared weights, or |content| when none is stored, as ROOT's
``GetBinError``) and its bin edges. Under- and overflow bins are ignored, as in Combine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._optional import require
from ._card import CombineImportError, Datacard, ShapeRule


@dataclass(frozen=True)
class Histogram:
    """A TH1's in-range ``values`` and ``variances`` (n,) and ``edges`` (n + 1,)."""

    values: np.ndarray
    variances: np.ndarray
    edges: np.ndarray
    title: str = ""

    @property
    def integral(self) -> float:
        """Sum of the in-range contents (ROOT's ``TH1::Integral()``)."""
        return float(self.values.sum())


def find_rule(card: Datacard, channel: str, process: str) -> ShapeRule:
    """The ``shapes`` line that serves (channel, process), with Combine's precedence: the
    channel's own lines before the ``*`` channel, the process's own line before ``*``."""
    by_channel: dict[str, dict[str, ShapeRule]] = {}
    for r in card.shapes:
        by_channel.setdefault(r.channel, {})[r.process] = r
    entry = by_channel.get(channel, by_channel.get("*"))
    star = by_channel.get("*", {})
    if entry is not None:
        for rule in (entry.get(process), entry.get("*"), star.get(process), star.get("*")):
            if rule is not None:
                return rule
    raise CombineImportError(
        f"{card.path.name}: no 'shapes' line for process '{process}' in channel '{channel}'"
    )


class ShapeReader:
    """Reads the histograms a card names, opening each ROOT file once.

    ``remap``: {old prefix: new prefix} applied to the file paths after substitution (longest
    prefix first); relative paths are taken relative to the card's folder. ``mass``: the value
    of $MASS (Combine's ``-m``)."""

    def __init__(self, card: Datacard, remap: Mapping[str, str] | None = None, mass: Any = None):
        self.card = card
        self.remap = sorted((remap or {}).items(), key=lambda kv: -len(kv[0]))
        self.mass = mass
        self._files: dict[Path, Any] = {}
        self.inputs: dict[Path, str] = {}  # resolved path -> the pattern in the card

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> ShapeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_fake(self, channel: str, process: str) -> bool:
        """True when (channel, process) has no shape: a counting column (no ``shapes`` line at
        all in the card, or a ``FAKE`` one)."""
        if not self.card.shapes:
            return True
        return find_rule(self.card, channel, process).file == "FAKE"

    def has_systematic(self, channel: str, process: str, syst: str) -> bool:
        """Whether the up and down histograms of ``syst`` exist (for ``shape?``)."""
        rule = find_rule(self.card, channel, process)
        if rule.hist_syst is None:
            return False
        try:
            for d in ("Up", "Down"):
                self._get(rule, channel, process, syst + d, quiet=True)
        except _Missing:
            return False
        return True

    def read(self, channel: str, process: str, syst: str = "") -> Histogram:
        """The histogram of (channel, process), nominal or ``syst`` + "Up"/"Down"."""
        rule = find_rule(self.card, channel, process)
        if syst and rule.hist_syst is None:
            raise CombineImportError(
                f"{self.card.path.name}: line {rule.line}: the shapes line for '{process}' in "
                f"'{channel}' has no systematics pattern, needed for '{syst}'"
            )
        return self._get(rule, channel, process, syst)

    # ------------------------------------------------------------------ internals
    def _substitute(self, s: str, channel: str, process: str, syst: str, line: int) -> str:
        out = s.replace("$PROCESS", process).replace("$CHANNEL", channel)
        out = out.replace("$SYSTEMATIC", syst)
        if "$MASS" in out:
            if self.mass is None:
                raise CombineImportError(
                    f"{self.card.path.name}: line {line}: '{s}' uses $MASS: give the mass "
                    "(mass= or --mass)"
                )
            m = float(self.mass)
            out = out.replace("$MASS", f"{int(m)}" if m.is_integer() else str(self.mass))
        if "$" in out:
            raise CombineImportError(
                f"{self.card.path.name}: line {line}: unknown keyword in '{s}' (only $PROCESS, "
                "$CHANNEL, $SYSTEMATIC and $MASS are supported)"
            )
        return out

    def resolve(self, pattern: str) -> Path:
        """The file path of a (substituted) shapes-line file name."""
        for old, new in self.remap:
            if pattern.startswith(old):
                pattern = new + pattern[len(old) :]
                break
        p = Path(pattern).expanduser()
        return p if p.is_absolute() else self.card.path.parent / p

    def _open(self, rule: ShapeRule, name: str) -> Any:
        path = self.resolve(name)
        if path in self._files:
            return self._files[path]
        where = f"{self.card.path.name}: line {rule.line}"
        if not path.is_file():
            hint = " (use --remap OLD=NEW for absolute paths)" if Path(name).is_absolute() else ""
            raise CombineImportError(f"{where}: shape file {path} does not exist{hint}")
        uproot = require("uproot", "interop", "ROOT shape files (wmass-archive import combine)")

        try:
            f = uproot.open(path)
        except Exception as exc:  # uproot raises many types for a non-ROOT file
            msg = " ".join(str(exc).split())[:200]
            raise CombineImportError(f"{where}: {path} is not a ROOT file ({msg})") from None
        self._files[path] = f
        self.inputs[path] = rule.file
        return f

    def _get(
        self, rule: ShapeRule, channel: str, process: str, syst: str, quiet: bool = False
    ) -> Histogram:
        fname = self._substitute(rule.file, channel, process, syst, rule.line)
        pattern = rule.hist_syst if syst else rule.hist
        assert pattern is not None
        key = self._substitute(pattern, channel, process, syst, rule.line)
        where = f"{self.card.path.name}: line {rule.line}"
        if ":" in key:
            raise CombineImportError(
                f"{where}: '{key}' is a RooFit workspace object; only TH1 histograms are supported"
            )
        f = self._open(rule, fname)
        try:
            obj = f[key]
        except Exception:
            if quiet:
                raise _Missing() from None
            raise CombineImportError(
                f"{where}: no histogram '{key}' in {self.resolve(fname).name} "
                f"(process '{process}', channel '{channel}'"
                + (f", systematic '{syst}')" if syst else ")")
            ) from None
        return _histogram(obj, f"'{key}' in {self.resolve(fname).name}")


class _Missing(Exception):
    """A histogram that is allowed to be absent (``shape?``)."""


def _histogram(obj: Any, what: str) -> Histogram:
    cls = getattr(obj, "classname", type(obj).__name__)
    if not cls.startswith("TH1") or cls.startswith(("TH1K",)):
        raise CombineImportError(f"{what} is a {cls}, not a one-dimensional TH1 histogram")
    values = np.asarray(obj.values(flow=False), dtype=np.float64)
    sumw2 = obj.member("fSumw2", none_if_missing=True)
    n = values.size
    if sumw2 is not None and len(sumw2) == n + 2:
        variances = np.asarray(sumw2, dtype=np.float64)[1:-1]
    else:
        variances = np.abs(values)
    edges = np.asarray(obj.axis().edges(flow=False), dtype=np.float64)
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(variances))):
        raise CombineImportError(f"{what} has non-finite bin contents or errors")
    title = str(obj.member("fTitle", none_if_missing=True) or "")
    return Histogram(values, variances, edges, title)
