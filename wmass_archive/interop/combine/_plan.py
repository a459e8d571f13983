"""The mapping of a parsed Combine card onto the archive's modifiers (docs/combine.md): which
yield, log-normal, additive and linear entries, and which nuisances, reproduce Combine's
model.

* ``rate`` (-1: the template's integral) times the template normalised to unit integral is
  the nominal yield; ``rateParam`` initial values and ``gmN`` (``alpha * N``) are folded in;
* ``lnN`` ``k`` or ``kd/ku``: a log-normal entry (format section 7: Combine's ``AsymPow``);
* ``shape`` with scale ``s``: Combine morphs the templates normalised to the nominal integral
  with ``x = s * theta`` and the smoothing region ``|x| < q``, ``q = min(1, smallest scale of
  the process's morphs)``, and multiplies by ``AsymPow(kd^s, ku^s)(theta)`` with
  ``ku = N_up / N_nom``, ``kd = N_down / N_nom`` (dropped when both are within 1e-3 of 1). The
  archive's additive code 4 has the region ``|t| < 1``: with ``t = (s/q) theta`` (the
  nuisance's ``prior_scale``) and the shifts times ``q`` it is Combine's morph exactly;
* ``autoMCStats``: :mod:`._combine_stats` (Barlow-Beeston-lite bins: ``mc_stat =
  "combine"``); ``gmN N``: a poisson nuisance (tau = N);
* ranges: the POI r gets Combine's default range [0, 20] (or the importer's ``r_range``) and a
  ``rateParam`` its ``[MIN,MAX]``, as format 1.2 bounds (theta units for the nuisance);
* ``shapeN``: log-normal entries per bin (approximate: Combine renormalises the morphed
  template and uses a smoothing region |x| < 1 instead of 1/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...archive import Axis
from ._card import CombineImportError, Datacard, Systematic
from ._morph import lnn_under_prior, morph_shifts
from ._shapes import Histogram, ShapeReader
from ._stats import StatsPlan, classify_bins

#: a shape's normalisation effect is dropped when both kappas are within this of 1 (Combine)
KAPPA_TOLERANCE = 1e-3
#: the name of Combine's implicit group of the per-process autoMCStats parameters
AUTO_MC_STATS_GROUP = "autoMCStats"
SAFE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,199}$"


@dataclass
class CombineParameter:
    """An archive parameter and the Combine parameter it stands for: ``combine value = offset
    + scale * theta`` (and Combine uncertainty = scale * error)."""

    name: str
    kind: str  # "poi" or "nuisance"
    source: str  # "r", "lnN", "shape", "shapeN", "gmN", "rateParam", "autoMCStats"
    constraint: str = "gaussian"
    prior_scale: float = 1.0
    tau: float | None = None
    offset: float = 0.0
    scale: float = 1.0
    groups: list[str] = field(default_factory=list)
    range: tuple[float, float] | None = None  # Combine's range (Combine's units)

    def combine_value(self, theta: float) -> float:
        """Combine's value of the parameter at the archive's ``theta``."""
        return self.offset + self.scale * theta

    def theta_of(self, value: float) -> float:
        """The archive's theta at Combine's ``value``."""
        return (value - self.offset) / self.scale

    @property
    def theta_bounds(self) -> tuple[float, float] | None:
        """``range`` in theta (the archive's nuisance bounds, format 1.2), or None."""
        if self.range is None:
            return None
        a, b = sorted((self.theta_of(self.range[0]), self.theta_of(self.range[1])))
        return a, b


@dataclass
class ChannelPlan:
    """A channel: its axis, observed counts, processes with nominal yields and sumw2."""

    name: str
    axis: Axis
    data: np.ndarray
    processes: list[str]
    nominal: dict[str, np.ndarray]
    sumw2: dict[str, np.ndarray]
    counting: bool
    stats: StatsPlan | None = None


@dataclass
class CombinePlan:
    """Everything the archive will hold, in the writer's terms."""

    channels: list[ChannelPlan]
    processes: list[str]
    signals: list[str]
    parameters: dict[str, CombineParameter]
    groups: list[str]
    lognormal: list[tuple[str, str, str, dict[str, Any]]]
    additive: list[tuple[str, str, str, np.ndarray, np.ndarray, int]]
    linear: list[tuple[str, str, str, np.ndarray, np.ndarray | None]]
    mc_stat: str
    notes: list[str]

    @property
    def n_bins(self) -> int:
        return sum(c.data.size for c in self.channels)


@dataclass
class _Column:
    """A (channel, process) while planning: the scale from the template to yields (rate /
    integral times rateParam initial values), the raw nominal and its MC variance."""

    scale: float
    raw: np.ndarray
    variance: np.ndarray
    template: Histogram | None


#: Combine's default range of the POI r (``PhysicsModel``: ``r[1,0,20]``)
R_RANGE = (0.0, 20.0)


def plan_import(
    card: Datacard, reader: ShapeReader, r_range: tuple[float, float] | None = R_RANGE
) -> CombinePlan:
    """Map the card (its shapes read through ``reader``) onto archive content; ``r_range``:
    the range of the POI r (Combine's default [0, 20]; None: unbounded)."""
    return _Planner(card, reader, r_range).plan()


class _Planner:
    def __init__(
        self, card: Datacard, reader: ShapeReader, r_range: tuple[float, float] | None = R_RANGE
    ):
        self.card = card
        self.reader = reader
        self.r_range = r_range
        self.name = card.path.name
        self.notes: list[str] = []
        self.params: dict[str, CombineParameter] = {}
        self.priors: dict[str, dict[tuple[str, str], float]] = {}
        self.lognormal: list[tuple[str, str, str, dict[str, Any]]] = []
        self.additive: list[tuple[str, str, str, np.ndarray, np.ndarray, int]] = []
        self.linear: list[tuple[str, str, str, np.ndarray, np.ndarray | None]] = []
        self.columns: dict[tuple[str, str], _Column] = {}
        self.morphed: set[tuple[str, str]] = set()

    def fail(self, msg: str) -> CombineImportError:
        return CombineImportError(f"{self.name}: {msg}")

    # ------------------------------------------------------------------ driver
    def plan(self) -> CombinePlan:
        import re

        card = self.card
        for what, names in (("channel", card.bins), ("process", card.processes)):
            for n in names:
                if not re.match(SAFE_NAME, n):
                    raise self.fail(
                        f"{what} name '{n}' is not a valid archive name (letters, digits, _ . + -)"
                    )
        gmn = self._gmn_columns()
        channels = [self._channel(b, gmn) for b in card.bins]
        present = [p for p in card.processes if any(p in c.processes for c in channels)]
        self._parameters(channels)
        self._systematics(channels)
        self._rate_params(channels)
        for ch in channels:
            self._auto_mc_stats(ch)
        groups = self._groups()
        lite = any(c.stats is not None and c.stats.lite.any() for c in channels)
        return CombinePlan(
            channels=channels,
            processes=present,
            signals=[p for p in card.signals if p in present],
            parameters=self.params,
            groups=groups,
            lognormal=self.lognormal,
            additive=self.additive,
            linear=self.linear,
            mc_stat="combine" if lite else "none",
            notes=self.notes,
        )

    # ------------------------------------------------------------------ yields
    def _gmn_columns(self) -> dict[tuple[str, str], tuple[Systematic, float]]:
        out: dict[tuple[str, str], tuple[Systematic, float]] = {}
        for s in self.card.systematics:
            if s.kind != "gmN":
                continue
            for col, alpha in s.effects.items():
                if col in out:
                    raise self.fail(
                        f"line {s.line}: two gmN uncertainties on process '{col[1]}' in "
                        f"bin '{col[0]}' ('{out[col][0].name}' and '{s.name}')"
                    )
                assert isinstance(alpha, float) and s.n_events is not None
                rate = self.card.rates[col]
                if abs(alpha * s.n_events - rate) > max(0.05 * max(rate, 1.0), alpha):
                    raise self.fail(
                        f"line {s.line}: gmN '{s.name}': N = {s.n_events} and alpha = {alpha:g} "
                        f"do not match the rate {rate:g} of '{col[1]}' in bin '{col[0]}'"
                    )
                out[col] = (s, alpha * s.n_events)
        return out

    def _channel(self, b: str, gmn: dict) -> ChannelPlan:
        card, reader = self.card, self.reader
        procs = [p for p in card.processes_in(b) if card.rates[(b, p)] != 0 or (b, p) in gmn]
        if not procs:
            raise self.fail(f"bin '{b}' has no process with a non-zero rate")
        rate_scale = self._rate_param_scale(b)
        counting = reader.is_fake(b, "data_obs") if card.shapes else True
        nominal, sumw2 = {}, {}
        if counting:
            if card.observation is None or b not in card.observation:
                raise self.fail(f"counting bin '{b}' has no observation")
            data = np.array([card.observation[b]], dtype=np.float64)
            axis = Axis.regular(1, 0.0, 1.0, name="count", label=f"{b} (counting)")
            for p in procs:
                if card.shapes and not reader.is_fake(b, p):
                    raise self.fail(f"process '{p}' has a shape in counting bin '{b}'")
                rate = gmn[(b, p)][1] if (b, p) in gmn else card.rates[(b, p)]
                if rate < 0:
                    raise self.fail(f"negative rate {rate:g} of '{p}' in bin '{b}'")
                scale = rate * rate_scale.get(p, 1.0)
                self.columns[(b, p)] = _Column(scale, np.array([1.0]), np.zeros(1), None)
                nominal[p], sumw2[p] = np.array([scale]), np.zeros(1)
        else:
            hd = reader.read(b, "data_obs")
            data = hd.values
            if np.any(data < 0):
                raise self.fail(f"data_obs of bin '{b}' has negative counts")
            self._check_observation(b, hd)
            axis = _axis(hd.edges, hd.title)
            for p in procs:
                if reader.is_fake(b, p):
                    raise self.fail(f"process '{p}' has no shape (FAKE) in shape bin '{b}'")
                h = reader.read(b, p)
                if h.values.size != data.size or not np.allclose(h.edges, hd.edges, rtol=1e-9):
                    raise self.fail(
                        f"the histogram of '{p}' in bin '{b}' has another binning than data_obs"
                    )
                if h.integral <= 0:
                    raise self.fail(f"the histogram of '{p}' in bin '{b}' has integral <= 0")
                rate = self._rate(b, p, h.integral, gmn)
                scale = rate / h.integral * rate_scale.get(p, 1.0)
                self.columns[(b, p)] = _Column(scale, h.values, h.variances, h)
                raw = scale * h.values
                if np.any(raw < 0):
                    self.notes.append(
                        f"'{p}' in bin '{b}': {int((raw < 0).sum())} negative bins set to 0 "
                        "(Combine crops them too)"
                    )
                nominal[p] = np.maximum(raw, 0.0)
                sumw2[p] = scale * scale * h.variances
        return ChannelPlan(b, axis, data, procs, nominal, sumw2, counting)

    def _rate(self, b: str, p: str, integral: float, gmn: dict) -> float:
        """The yield of a shape column: the card's rate (-1: the integral; gmN: alpha * N)
        times the normalised template; in autoMCStats channels Combine's histogram classes
        keep the template's own integral (the rate is only checked against it)."""
        rate = self.card.rates[(b, p)]
        if rate < 0 and rate != -1:
            raise self.fail(f"negative rate {rate:g} of '{p}' in bin '{b}'")
        if rate > 0 and abs(integral - rate) > 0.01 * max(1.0, rate):
            raise self.fail(
                f"the rate {rate:g} of '{p}' in bin '{b}' differs from its histogram's "
                f"integral {integral:g} by more than 1% (Combine refuses it too)"
            )
        if b in self.card.auto_mc_stats:
            return integral
        if (b, p) in gmn:
            return gmn[(b, p)][1]
        return integral if rate == -1 else rate

    def _check_observation(self, b: str, hd: Histogram) -> None:
        obs = (self.card.observation or {}).get(b)
        norm = hd.integral
        if obs is None or obs == -1 or norm == 0:
            return
        if (obs == 0 and norm > 0.01) or (obs > 0 and abs(norm / obs - 1) > 0.005):
            raise self.fail(
                f"observation {obs:g} of bin '{b}' differs from the data_obs integral {norm:g}"
            )

    def _rate_param_scale(self, b: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.card.rate_params:
            if r.bin == b:
                out[r.process] = out.get(r.process, 1.0) * r.initial
        return out

    # ------------------------------------------------------------------ parameters
    def _parameters(self, channels: list[ChannelPlan]) -> None:
        card = self.card
        if any(p in c.processes for c in channels for p in card.signals):
            self.params["r"] = CombineParameter(
                "r", "poi", "r", "none", offset=1.0, range=self.r_range
            )
        for s in card.systematics:
            if s.name in self.params:
                raise self.fail(f"line {s.line}: systematic '{s.name}' clashes with the POI 'r'")
            if s.kind == "gmN":
                n = float(s.n_events or 0)
                self.params[s.name] = CombineParameter(
                    s.name, "nuisance", "gmN", "poisson", tau=n, offset=n, scale=math.sqrt(n)
                )
            else:
                source = "lnN" if s.kind == "lnN" else s.kind.rstrip("?")
                self.params[s.name] = CombineParameter(s.name, "nuisance", source)
        initial: dict[str, float] = {}
        ranges: dict[str, tuple[float, float] | None] = {}
        for r in card.rate_params:
            if r.name in self.params and self.params[r.name].source != "rateParam":
                raise self.fail(f"line {r.line}: rateParam '{r.name}' clashes with a parameter")
            if initial.setdefault(r.name, r.initial) != r.initial:
                raise self.fail(
                    f"line {r.line}: rateParam '{r.name}' has two initial values "
                    f"({initial[r.name]:g} and {r.initial:g})"
                )
            if r.initial <= 0:
                raise self.fail(
                    f"line {r.line}: rateParam '{r.name}' has initial value {r.initial:g} "
                    "(only positive initial values can be written)"
                )
            # Combine creates the variable on its first line; later ranges are ignored
            rng = ranges.setdefault(r.name, r.range)
            if r.range != rng:
                note = (
                    f"rateParam '{r.name}': the range {_fmt_range(r.range)} of line {r.line} "
                    f"is ignored, Combine keeps the first one {_fmt_range(rng)}"
                )
                if note not in self.notes:
                    self.notes.append(note)
            self.params[r.name] = CombineParameter(
                r.name,
                "nuisance",
                "rateParam",
                "none",
                offset=r.initial,
                scale=r.initial,
                range=rng,
            )

    def _systematics(self, channels: list[ChannelPlan]) -> None:
        by_name = {c.name: c for c in channels}
        for s in self.card.systematics:
            if s.kind == "gmN":
                for (b, p), _alpha in s.effects.items():
                    if p in by_name[b].processes:
                        coeff = 1.0 / math.sqrt(float(s.n_events or 1))
                        self.linear.append((s.name, p, b, np.array([coeff]), None))
            elif s.kind == "lnN":
                for (b, p), v in s.effects.items():
                    if p in by_name[b].processes:
                        self._lnn(s.name, b, p, v)
        for ch in channels:
            if not ch.counting:
                for p in ch.processes:
                    self._morphs(ch, p)
            else:
                self._ignored_shapes(ch)
        for name, cols in self.priors.items():
            values = sorted(set(cols.values()))
            if values and values[-1] - values[0] > 1e-12 * values[-1]:
                raise self.fail(
                    f"systematic '{name}': its shape scales give it different prior scales "
                    f"({values[0]:g}, {values[-1]:g}) in different processes; Combine's per-"
                    "process smoothing region cannot be written exactly"
                )
            if values:
                self.params[name].prior_scale = values[0]
        self._apply_lnn_priors()

    def _lnn(self, name: str, b: str, p: str, v: Any) -> None:
        kd, ku = (1.0 / v, v) if isinstance(v, float) else v
        self.lognormal.append((name, p, b, {"kappa": (kd, ku)}))

    def _apply_lnn_priors(self) -> None:
        out = []
        for name, p, b, spec in self.lognormal:
            prior = self.params[name].prior_scale
            if "kappa" in spec:
                kd, ku = lnn_under_prior(*spec["kappa"], prior, f"'{name}' of '{p}' in '{b}'")
                spec = {"kappa": (kd, ku)}
            out.append((name, p, b, spec))
        self.lognormal = out

    def _ignored_shapes(self, ch: ChannelPlan) -> None:
        """Shape systematics on a counting channel: ``shape?`` is an lnN there (Combine's
        "lnN in disguise"), ``shape``/``shapeN`` have no effect."""
        for s in self.card.systematics:
            if s.kind == "shape?":
                for (b, p), v in s.effects.items():
                    if b == ch.name and p in ch.processes and v != 1.0:
                        self._lnn(s.name, b, p, v)
            elif s.kind in ("shape", "shapeN"):
                hit = [p for (b, p) in s.effects if b == ch.name and p in ch.processes]
                if hit:
                    self.notes.append(
                        f"'{s.name}' ({s.kind}) on counting bin '{ch.name}' has no effect "
                        "(as in Combine)"
                    )

    def _morphs(self, ch: ChannelPlan, p: str) -> None:
        b = ch.name
        col = self.columns[(b, p)]
        assert col.template is not None
        morphs: list[tuple[Systematic, float, Histogram, Histogram]] = []
        algo = None
        for s in self.card.systematics:
            if s.kind not in ("shape", "shape?", "shapeN") or (b, p) not in s.effects:
                continue
            v = s.effects[(b, p)]
            if s.kind == "shape?" and not self.reader.has_systematic(b, p, s.name):
                if not (isinstance(v, float) and v == 1.0):
                    self._lnn(s.name, b, p, v)
                continue
            if not isinstance(v, float):
                raise self.fail(f"line {s.line}: '{s.name}' has an asymmetric value on a shape")
            kind = "shapeN" if s.kind == "shapeN" else "shape"
            if algo is not None and algo != kind:
                raise self.fail(
                    f"line {s.line}: process '{p}' in bin '{b}' mixes shape and shapeN "
                    "morphing (Combine refuses it too)"
                )
            algo = kind
            up = self.reader.read(b, p, s.name + "Up")
            down = self.reader.read(b, p, s.name + "Down")
            for h, d in ((up, "Up"), (down, "Down")):
                if h.values.size != col.raw.size or not np.allclose(
                    h.edges, col.template.edges, rtol=1e-9
                ):
                    raise self.fail(
                        f"the {s.name}{d} histogram of '{p}' in bin '{b}' has another binning"
                    )
                if not h.integral > 0:
                    raise self.fail(
                        f"the {s.name}{d} histogram of '{p}' in bin '{b}' has integral "
                        f"{h.integral:g} (Combine needs > 0)"
                    )
            morphs.append((s, v, up, down))
        if not morphs:
            return
        q = min(1.0, min(v for _, v, _, _ in morphs))
        opts = self.card.auto_mc_stats.get(b)
        mode = opts.hist_mode if opts is not None else 1
        if mode not in (1, 2):
            raise self.fail(
                f"line {opts.line}: autoMCStats hist-mode {mode} on bin '{b}', which has "  # type: ignore[union-attr]
                f"shape systematics ('{morphs[0][0].name}' on '{p}'): Combine sets the "
                "morphing templates only for hist-mode 1 or 2 (with another value its "
                "CMSHistFunc morphs empty templates); use 1 or 2"
            )
        nom = ch.nominal[p]
        for s, v, up, down in morphs:
            if algo == "shapeN":
                self._shape_n(s, v, b, p, col, up, down, mode)
                continue
            du, dd, kd, ku = morph_shifts(col.template, up, down, v, mode)
            prior = v / q
            self.priors.setdefault(s.name, {})[(b, p)] = prior
            self.additive.append(
                (s.name, p, b, nom + q * col.scale * du, nom + q * col.scale * dd, 4)
            )
            self.morphed.add((b, p))
            if abs(ku - 1) < KAPPA_TOLERANCE and abs(kd - 1) < KAPPA_TOLERANCE:
                continue
            self.lognormal.append((s.name, p, b, {"kappa": (kd**v, ku**v)}))

    def _shape_n(self, s, v, b, p, col, up, down, mode) -> None:
        t = col.template
        with np.errstate(divide="ignore", invalid="ignore"):
            h_n = t.values / t.integral
            lu = np.log(up.values / up.integral / h_n)
            ld = np.log(down.values / down.integral / h_n)
        ok = np.isfinite(lu) & np.isfinite(ld)
        lu, ld = np.where(ok, lu, 0.0), np.where(ok, ld, 0.0)
        self.lognormal.append((s.name, p, b, {"logk_up": v * lu, "logk_down": v * ld}))
        kd, ku = down.integral / t.integral, up.integral / t.integral
        if mode == 2:
            self.notes.append(f"'{s.name}' (shapeN) in hist-mode 2 bin '{b}': treated as mode 1")
        if not (abs(ku - 1) < KAPPA_TOLERANCE and abs(kd - 1) < KAPPA_TOLERANCE):
            self.lognormal.append((s.name, p, b, {"kappa": (kd**v, ku**v)}))
        note = (
            f"shapeN '{s.name}' is imported approximately (per-bin log-normal without "
            "Combine's renormalisation of the morphed template)"
        )
        if note not in self.notes:
            self.notes.append(note)

    def _rate_params(self, channels: list[ChannelPlan]) -> None:
        by_name = {c.name: c for c in channels}
        done = set()
        for r in self.card.rate_params:
            if r.process in by_name[r.bin].processes and (r.name, r.bin, r.process) not in done:
                done.add((r.name, r.bin, r.process))
                self.linear.append((r.name, r.process, r.bin, np.array([1.0]), None))

    # ------------------------------------------------------------------ autoMCStats
    def _auto_mc_stats(self, ch: ChannelPlan) -> None:
        opts = self.card.auto_mc_stats.get(ch.name)
        zero = {p: np.zeros_like(ch.sumw2[p]) for p in ch.processes}
        if opts is None or ch.counting:
            if opts is not None:
                self.notes.append(f"autoMCStats on counting bin '{ch.name}' has no effect")
            ch.sumw2 = zero
            return
        if opts.threshold < 0:  # Combine's histogram classes without bin-wise parameters
            ch.stats = StatsPlan(np.zeros(ch.data.size, dtype=bool))
            ch.sumw2 = zero
            return
        errors = {p: np.sqrt(ch.sumw2[p]) for p in ch.processes}
        stats = classify_bins(
            ch.nominal, errors, self.card.signals, opts.threshold, opts.include_signal
        )
        ch.stats = stats
        ch.sumw2 = {p: np.where(stats.lite, ch.sumw2[p], 0.0) for p in ch.processes}
        n_bins = ch.data.size
        for st in stats.per_process:
            name = f"prop_bin{ch.name}_bin{st.bin}_{st.process}"
            if name in self.params:
                raise self.fail(f"autoMCStats parameter '{name}' clashes with another parameter")
            nom = ch.nominal[st.process]
            if st.kind == "poisson":
                assert st.tau is not None
                self.params[name] = CombineParameter(
                    name,
                    "nuisance",
                    "autoMCStats",
                    "poisson",
                    tau=st.tau,
                    offset=1.0,
                    scale=1.0 / math.sqrt(st.tau),
                    groups=[AUTO_MC_STATS_GROUP],
                )
                coeff = np.array([1.0 / math.sqrt(st.tau)])
                self.linear.append((name, st.process, ch.name, coeff, np.array([st.bin])))
                continue
            self.params[name] = CombineParameter(
                name, "nuisance", "autoMCStats", groups=[AUTO_MC_STATS_GROUP]
            )
            v = float(nom[st.bin])
            if v > 0 and (ch.name, st.process) not in self.morphed:
                coeff = np.array([st.error / v])
                self.linear.append((name, st.process, ch.name, coeff, np.array([st.bin])))
            else:  # an additive shift of +-error, unaffected by the morphing (as Combine)
                shift = np.zeros(n_bins)
                shift[st.bin] = st.error
                self.additive.append((name, st.process, ch.name, nom + shift, nom - shift, 0))

    # ------------------------------------------------------------------ groups
    def _groups(self) -> list[str]:
        import re

        groups = list(self.card.groups)
        for g in groups:
            if not re.match(SAFE_NAME, g):
                raise self.fail(f"group name '{g}' is not a valid archive name")
            for m in self.card.groups[g]:
                if m in self.params:
                    self.params[m].groups.append(g)
        if any(AUTO_MC_STATS_GROUP in p.groups for p in self.params.values()):
            if AUTO_MC_STATS_GROUP not in groups:
                groups.append(AUTO_MC_STATS_GROUP)
        return groups


def _fmt_range(r: tuple[float, float] | None) -> str:
    return "none" if r is None else f"[{r[0]:g},{r[1]:g}]"


def _axis(edges: np.ndarray, title: str) -> Axis:
    """The channel's axis from the histogram's edges (regular when equally spaced)."""
    n = edges.size - 1
    label = title if len(title) <= 500 else title[:500]
    if n >= 1 and np.allclose(np.diff(edges), (edges[-1] - edges[0]) / n, rtol=1e-12, atol=0):
        return Axis.regular(n, float(edges[0]), float(edges[-1]), name="x", label=label)
    return Axis.variable(edges, name="x", label=label)
