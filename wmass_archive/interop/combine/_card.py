"""The CMS Combine datacard parser: the text of a card into a :class:`Datacard` (no ROOT, no
files read besides the card).

It reads the directives of Combine's datacard documentation (``docs/part2/
settinguptheanalysis.md`` of ``cms-analysis/HiggsAnalysis-CombinedLimit``): ``imax``/``jmax``/
``kmax``, ``shapes``, ``bin``/``observation``, the ``bin``/``process``/``process``/``rate`` block
(process index <= 0: signal), systematic lines ``lnN`` (``1.05``, ``0.9/1.1``, ``-``),
``shape``, ``shape?``, ``shapeN``, ``gmN``, and the lines ``rateParam``, ``group``,
``autoMCStats``. Directives whose model the archive format cannot hold exactly (``param``,
``nuisance edit``, ``lnU``, ``flatParam``, ``extArg``, ``discrete``, formula ``rateParam``, ...)
are refused with a one-line :class:`CombineImportError` naming the card, the line and the item.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ArchiveError

#: systematic types imported (per (bin, process) column values)
COLUMN_TYPES = ("lnN", "shape", "shape?", "shapeN", "gmN")
#: directives refused, with the reason printed
REFUSED = {
    "lnU": "log-uniform priors have no equivalent in the archive format",
    "gmM": "gamma-with-mean priors are not supported",
    "trG": "truncated gaussians are not supported",
    "unif": "uniform priors are not supported",
    "dFD": "dFD priors are not supported",
    "dFD2": "dFD2 priors are not supported",
    "param": "'param' constraints are not supported (edit the card into an lnN or shape)",
    "constr": "'constr' constraints are not supported",
    "flatParam": "'flatParam' parameters of parametric models are not supported",
    "extArg": "'extArg' workspace parameters are not supported",
    "discrete": "'discrete' pdf indices are not supported",
    "edit": "'nuisance edit' lines are not supported (apply them to the card first)",
    "shapeU": "unconstrained 'shapeU' morphing is not supported",
    "shapeN2": "'shapeN2' morphing is not supported",
    "shape2": "'shape2' morphing is not supported",
    "shape*": "'shape*' morphing is not supported",
}


class CombineImportError(ArchiveError):
    """A Combine datacard (or a shape file it names) cannot be imported."""


@dataclass(frozen=True)
class ShapeRule:
    """One ``shapes PROCESS CHANNEL FILE HIST [HIST_SYST]`` line (``*`` wildcards kept)."""

    process: str
    channel: str
    file: str
    hist: str | None
    hist_syst: str | None
    line: int


@dataclass
class Systematic:
    """A systematic line: ``kind`` is one of :data:`COLUMN_TYPES`; ``effects`` maps (bin,
    process) to the column value (a number, or ``(kappa_down, kappa_up)`` for an asymmetric
    lnN); columns with no effect (``-``, ``0``, lnN ``1``) are left out. ``n_events``: the N of
    a ``gmN`` line."""

    name: str
    kind: str
    effects: dict[tuple[str, str], float | tuple[float, float]]
    line: int
    n_events: int | None = None


@dataclass(frozen=True)
class RateParam:
    """``NAME rateParam BIN PROCESS INITIAL [MIN,MAX]`` for one (bin, process) pair."""

    name: str
    bin: str
    process: str
    initial: float
    range: tuple[float, float] | None
    line: int


@dataclass(frozen=True)
class AutoMCStats:
    """``CHANNEL autoMCStats THRESHOLD [INCLUDE_SIGNAL] [HIST_MODE]``."""

    threshold: float  # negative: no bin-wise parameters (Combine's -1)
    include_signal: bool = False
    hist_mode: int = 1
    line: int = 0


@dataclass
class Datacard:
    """A parsed card. ``columns``: the (bin, process) pairs of the rate block in card order;
    ``rates``: their ``rate`` values (-1: the shape's integral); ``observation``: per bin
    (None where the card gives no observation line)."""

    path: Path
    bins: list[str]
    processes: list[str]
    signals: list[str]
    columns: list[tuple[str, str]]
    rates: dict[tuple[str, str], float]
    observation: dict[str, float] | None
    shapes: list[ShapeRule] = field(default_factory=list)
    systematics: list[Systematic] = field(default_factory=list)
    rate_params: list[RateParam] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    auto_mc_stats: dict[str, AutoMCStats] = field(default_factory=dict)

    def processes_in(self, channel: str) -> list[str]:
        """Processes with a column in ``channel``, in card order."""
        return [p for b, p in self.columns if b == channel]

    def is_signal(self, process: str) -> bool:
        return process in self.signals


def parse_datacard(path: str | Path) -> Datacard:
    """Parse the Combine datacard at ``path`` (text); raises :class:`CombineImportError`."""
    p = Path(path)
    if not p.is_file():
        raise CombineImportError(f"no datacard at {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CombineImportError(f"cannot read datacard {p}: {exc}") from None
    return _Parser(p, text).parse()


def parse_datacard_text(text: str, path: str | Path = "datacard.txt") -> Datacard:
    """Parse a card given as text; ``path`` names it in messages and anchors relative files."""
    return _Parser(Path(path), text).parse()


class _Parser:
    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()
        self.n = 0  # current line number (1-based)

    def fail(self, msg: str) -> CombineImportError:
        return CombineImportError(f"{self.path.name}: line {self.n}: {msg}")

    def parse(self) -> Datacard:
        imax = jmax = kmax = None
        shapes: list[ShapeRule] = []
        obs: list[float] | None = None
        obs_bins: list[str] = []
        binline: list[str] = []
        names: list[str] = []
        ids: list[str] = []
        rates: list[str] | None = None
        body: list[tuple[int, list[str]]] = []
        for n, raw in enumerate(self.lines, start=1):
            self.n = n
            line = _strip(raw)
            f = line.split()
            if not f or raw.startswith("--"):
                continue
            key = f[0]
            if rates is not None:
                body.append((self.n, f))
                continue
            if key in ("imax", "jmax", "kmax"):
                value = self._count(f)
                imax, jmax, kmax = (
                    value if key == "imax" else imax,
                    value if key == "jmax" else jmax,
                    value if key == "kmax" else kmax,
                )
            elif key == "shapes":
                shapes.append(self._shapes(f))
            elif key == "bin":
                binline = f[1:]
                for b in binline:
                    if re.match(r"[0-9]", b):
                        raise self.fail(f"bin '{b}' starts with a digit (Combine refuses it)")
            elif key.lower() == "observation":
                obs = [self._float(x, "observation") for x in f[1:]]
                if len(binline) != len(obs):
                    raise self.fail(
                        f"{len(obs)} observations for {len(binline)} bins on the 'bin' line"
                    )
                obs_bins = list(binline)
            elif key == "process":
                if not names:
                    names = f[1:]
                    if len(names) != len(binline):
                        raise self.fail("'process' line and 'bin' line differ in length")
                else:
                    ids = f[1:]
                    if _is_int(names[0]) and not _is_int(ids[0]):
                        names, ids = ids, names
                    if len(ids) != len(names):
                        raise self.fail("the two 'process' lines differ in length")
            elif key == "rate":
                if not names or not ids:
                    raise self.fail("'rate' line before the two 'process' lines")
                rates = f[1:]
                if len(rates) != len(names):
                    raise self.fail(f"{len(rates)} rates for {len(names)} process columns")
                rate_line = self.n
            # other header lines (e.g. combineCards.py's "Combination of ...") are ignored
        if rates is None:
            raise CombineImportError(f"{self.path.name}: no 'rate' line (not a datacard?)")
        self.n = rate_line
        columns, signals, procs, bins = self._columns(binline, names, ids)
        if obs is not None and obs_bins and set(obs_bins) != set(bins):
            raise self.fail(f"observation bins {obs_bins} differ from the process bins {bins}")
        self._check_count("imax", imax, len(bins), "bins")
        self._check_count("jmax", None if jmax is None else jmax + 1, len(procs), "processes")
        card = Datacard(
            path=self.path,
            bins=bins,
            processes=procs,
            signals=signals,
            columns=columns,
            rates={c: self._float(r, "rate") for c, r in zip(columns, rates, strict=True)},
            observation=None if obs is None else dict(zip(obs_bins, obs, strict=True)),
            shapes=shapes,
        )
        if len(set(columns)) != len(columns):
            raise self.fail("a (bin, process) pair appears twice in the rate block")
        seen: set[tuple[str, str]] = set()
        for r in shapes:
            if (r.process, r.channel) in seen:
                self.n = r.line
                raise self.fail(f"shapes for process '{r.process}' in '{r.channel}' given twice")
            seen.add((r.process, r.channel))
        for n, f in body:
            self.n = n
            self._body_line(card, f)
        card.systematics = [s for s in card.systematics if s.effects]
        if kmax is not None and kmax != len(card.systematics):
            raise CombineImportError(
                f"{self.path.name}: kmax = {kmax} but the card has {len(card.systematics)} "
                "systematics with an effect"
            )
        self._check_groups(card)
        return card

    # ------------------------------------------------------------------ header
    def _count(self, f: list[str]) -> int | None:
        if len(f) < 2:
            raise self.fail(f"'{f[0]}' without a value")
        if f[1] == "*":
            return None
        if not _is_int(f[1]):
            raise self.fail(f"'{f[0]} {f[1]}': expected an integer or *")
        return int(f[1])

    def _check_count(self, key: str, declared: int | None, found: int, what: str) -> None:
        if declared is not None and declared != found:
            raise CombineImportError(
                f"{self.path.name}: {key} declares {declared if key != 'jmax' else declared - 1}"
                f" but the card has {found} {what}"
            )

    def _shapes(self, f: list[str]) -> ShapeRule:
        if len(f) < 4:
            raise self.fail("malformed 'shapes' line: shapes PROCESS CHANNEL FILE [HIST [SYST]]")
        if len(f) > 6:
            raise self.fail("'shapes' line with more than 5 fields")
        hist = f[4] if len(f) > 4 else None
        if f[3] != "FAKE" and hist is None:
            raise self.fail(f"'shapes {f[1]} {f[2]} {f[3]}': no histogram name")
        return ShapeRule(f[1], f[2], f[3], hist, f[5] if len(f) > 5 else None, self.n)

    def _columns(self, binline: list[str], names: list[str], ids: list[str]) -> tuple:
        if len(binline) != len(names):
            raise self.fail("the 'bin' line before 'process' differs in length")
        columns = list(zip(binline, names, strict=True))
        kind: dict[str, bool] = {}
        for p, i in zip(names, ids, strict=True):
            if not _is_int(i):
                raise self.fail(f"process index '{i}' of '{p}' is not an integer")
            sig = int(i) <= 0
            if kind.setdefault(p, sig) != sig:
                raise self.fail(f"process '{p}' is a signal in some bins, a background in others")
        procs = list(dict.fromkeys(names))
        bins = list(dict.fromkeys(binline))
        return columns, [p for p in procs if kind[p]], procs, bins

    # ------------------------------------------------------------------ body
    def _body_line(self, card: Datacard, f: list[str]) -> None:
        if len(f) < 2:
            return  # as Combine: a lone word is no directive
        name, kind = f[0], f[1]
        if name == "nuisance" and kind == "edit":
            kind = "edit"
        if kind in REFUSED:
            raise self.fail(f"'{name} {kind}': {REFUSED[kind]}")
        if name.endswith("[nofloat]"):
            raise self.fail(f"'{name}': [nofloat] nuisances are not supported")
        if kind == "rateParam":
            self._rate_param(card, f)
        elif kind == "group":
            self._group(card, f)
        elif kind == "autoMCStats":
            self._auto_mc_stats(card, f)
        elif kind in COLUMN_TYPES:
            self._systematic(card, f)
        else:
            raise self.fail(f"'{name} {kind}': unsupported directive")

    def _systematic(self, card: Datacard, f: list[str]) -> None:
        name, kind = f[0], f[1]
        if any(s.name == name for s in card.systematics):
            raise self.fail(f"systematic '{name}' defined twice")
        n_events = None
        values = f[2:]
        if kind == "gmN":
            if not values or not _is_int(values[0]) or int(values[0]) < 0:
                raise self.fail(f"'{name} gmN': expected the number of events N >= 0")
            n_events, values = int(values[0]), values[1:]
        if len(values) < len(card.columns):
            raise self.fail(
                f"systematic '{name}' has {len(values)} values for {len(card.columns)} columns"
            )
        effects: dict[tuple[str, str], float | tuple[float, float]] = {}
        for col, v in zip(card.columns, values, strict=False):
            value = self._value(name, kind, col, v)
            if value is not None:
                effects[col] = value
        if kind == "gmN" and effects and n_events == 0:
            raise self.fail(
                f"'{name} gmN 0': N = 0 has no Poisson-constrained equivalent in the format"
            )
        card.systematics.append(Systematic(name, kind, effects, self.n, n_events))

    def _value(
        self, name: str, kind: str, col: tuple[str, str], v: str
    ) -> float | tuple[float, float] | None:
        where = f"systematic '{name}' for process '{col[1]}' in bin '{col[0]}'"
        if v == "-" * len(v):
            return None
        if "/" in v:
            if kind not in ("lnN", "shape?"):
                raise self.fail(f"{where}: asymmetric values '{v}' are allowed for lnN only")
            parts = v.split("/")
            if len(parts) != 2:
                raise self.fail(f"{where}: malformed value '{v}'")
            kd, ku = (self._float(x, where) for x in parts)
            if kd <= 0 or ku <= 0:
                raise self.fail(f"{where}: kappas must be > 0, got '{v}'")
            return (kd, ku)
        x = self._float(v, where)
        if x < 0:
            raise self.fail(f"{where}: negative value {v}")
        if x == 0 or (kind == "lnN" and x == 1):
            return None
        return x

    def _rate_param(self, card: Datacard, f: list[str]) -> None:
        name = f[0]
        if len(f) not in (5, 6):
            raise self.fail(
                f"'{name} rateParam': expected NAME rateParam BIN PROCESS VALUE [RANGE]"
            )
        if len(f) == 6 and not ("[" in f[5] and "]" in f[5]):
            raise self.fail(f"'{name} rateParam': formula rateParams are not supported")
        if ".root" in f[4] and ":" in f[4]:
            raise self.fail(f"'{name} rateParam': rateParams from a workspace are not supported")
        try:
            initial = float(f[4])
        except ValueError:
            raise self.fail(f"'{name} rateParam': formula rateParams are not supported") from None
        if not math.isfinite(initial):
            raise self.fail(f"'{name} rateParam': initial value '{f[4]}' is not finite")
        rng = self._range(name, f[5], initial) if len(f) == 6 else None
        pairs = [
            (b, p)
            for p in card.processes
            for b in card.bins
            if fnmatch.fnmatchcase(b, f[2]) and fnmatch.fnmatchcase(p, f[3])
        ]
        if not pairs:
            raise self.fail(f"rateParam '{name}': bin '{f[2]}' / process '{f[3]}' match nothing")
        for b, p in pairs:
            card.rate_params.append(RateParam(name, b, p, initial, rng, self.n))

    def _range(self, name: str, text: str, initial: float) -> tuple[float, float] | None:
        """A rateParam's ``[MIN,MAX]`` as Combine's ``ModelTools`` reads it (``[]``: no range);
        the initial value must lie inside it (Combine refuses the card otherwise)."""
        inner = text.strip("[]")
        if inner == "":
            return None
        parts = inner.split(",")
        what = f"'{name} rateParam': range {text}"
        if len(parts) != 2 or not text.startswith("[") or not text.endswith("]"):
            raise self.fail(f"{what}: expected [MIN,MAX]")
        lo, hi = (self._float(x, what) for x in parts)
        if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            raise self.fail(f"{what}: expected finite MIN < MAX")
        if not lo <= initial <= hi:
            raise self.fail(f"{what} does not contain the initial value {initial:g}")
        return lo, hi

    def _group(self, card: Datacard, f: list[str]) -> None:
        name = f[0]
        if len(f) < 4 or f[2] not in ("=", "+="):
            raise self.fail(f"group '{name}': expected NAME group = NUISANCE ...")
        if f[2] == "=":
            if name in card.groups:
                raise self.fail(f"group '{name}' defined twice (use += to add)")
            card.groups[name] = list(dict.fromkeys(f[3:]))
        else:
            if name not in card.groups:
                raise self.fail(f"group '{name}': += before the group is defined")
            card.groups[name] = list(dict.fromkeys(card.groups[name] + f[3:]))

    def _auto_mc_stats(self, card: Datacard, f: list[str]) -> None:
        """``CHANNEL autoMCStats THRESHOLD [INCLUDE_SIGNAL] [HIST_MODE]``, read as Combine's
        ``DatacardParser`` reads it: the threshold a float (negative: the histogram classes
        without bin-wise parameters), include-signal an integer (any non-zero value: on) and
        hist-mode an integer (2: the raw templates morph; any other value keeps the separate
        normalisation of mode 1). ``CHANNEL`` with a ``*`` is a pattern (matching nothing is no
        error, as in Combine), otherwise it must name a channel."""
        usage = "expected CHANNEL autoMCStats THRESHOLD [INCLUDE_SIGNAL] [HIST_MODE]"
        if len(f) < 3 or len(f) > 5:
            raise self.fail(f"autoMCStats: {len(f) - 2} values given, {usage}")
        thr = self._float(f[2], "autoMCStats threshold")
        if math.isnan(thr):
            raise self.fail(f"autoMCStats threshold '{f[2]}' is not a number")
        inc = self._int(f[3], "autoMCStats include-signal") != 0 if len(f) > 3 else False
        mode = self._int(f[4], "autoMCStats hist-mode") if len(f) > 4 else 1
        if "*" in f[0]:
            chans = [b for b in card.bins if fnmatch.fnmatchcase(b, f[0])]
        elif f[0] in card.bins:
            chans = [f[0]]
        else:
            raise self.fail(f"autoMCStats: no channel '{f[0]}' in the card")
        for b in chans:
            card.auto_mc_stats[b] = AutoMCStats(thr, inc, mode, self.n)

    def _check_groups(self, card: Datacard) -> None:
        known = {s.name for s in card.systematics} | {r.name for r in card.rate_params}
        for g, members in card.groups.items():
            unknown = [m for m in members if m not in known]
            if unknown:
                raise CombineImportError(
                    f"{self.path.name}: group '{g}' names unknown nuisance '{unknown[0]}'"
                )

    def _float(self, s: str, what: str) -> float:
        try:
            return float(s)
        except ValueError:
            raise self.fail(f"{what}: '{s}' is not a number") from None

    def _int(self, s: str, what: str) -> int:
        """An integer as Python's int() reads it (Combine's parser: ``int(field)``)."""
        try:
            return int(s)
        except ValueError:
            raise self.fail(f"{what}: '{s}' is not an integer") from None


def _strip(line: str) -> str:
    """The line without a trailing comment (a '#' after the first character, as Combine)."""
    if line.lstrip().startswith("#"):
        return ""
    i = line.find("#")
    return (line[:i] if i > 0 else line).rstrip()


def _is_int(s: str) -> bool:
    return re.fullmatch(r"[+-]?[0-9]+", s) is not None
