"""The writer's API for the extended modifiers of format 1.1 (docs/format.md section 15):
:class:`ModifierWriter`, a mixin of :class:`~wmass_archive.archive.writer.ArchiveWriter`.

It stores, per (parameter, process, channel) and kind, what the producer gives: additive
shifts (varied - nominal yields), multiplicative ratios (varied / nominal), linear
coefficients; :meth:`ArchiveWriter.write` turns them into the datasets of section 15.2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ContentError
from . import layout
from .modifiers import ModifierCollector, lo_default


class ModifierWriter:
    """Format 1.1 methods of the writer. The host class holds the collections (``_mods``,
    ``_mc_stat``, ``_pois``, ``_yields``) and the lookups ``_channel``, ``_process`` and
    ``_values`` (flattened values of an array or hist on a channel's axes)."""

    _mods: ModifierCollector
    _mc_stat: str | None
    _pois: dict
    _yields: dict

    def add_additive(
        self,
        parameter: str,
        process: str,
        channel: str,
        *,
        up: Any,
        down: Any = None,
        code: int = 4,
    ) -> None:
        """An additive (histosys-like) modifier: ``up``/``down`` are the VARIED YIELDS at
        t = +1/-1 (arrays of the channel's shape or hist), stored as shifts varied - nominal;
        without ``down`` the shift is symmetric (down = nominal - (up - nominal)). ``code``: 0
        (piecewise linear), 2 (quadratic inside, linear outside), 4 (pyhf code4p / Combine's
        vertical morphing); docs/format.md section 15.2."""
        what, ch, nom = self._modifier_target("additive", parameter, process, channel)
        if code not in layout.MODIFIER_CODES["additive"]:
            raise ContentError(f"{what}: interpolation code {code!r} is not 0, 2 or 4")
        du = self._values(up, ch["axes"], f"{what} (up)")[0] - nom
        dd = (
            (0.0 - du)
            if down is None
            else self._values(down, ch["axes"], f"{what} (down)")[0] - nom
        )
        _finite(du, f"{what} (up)")
        _finite(dd, f"{what} (down)")
        self._put_modifier("additive", (parameter, process, channel), (int(code), du, dd), what)

    def add_multiplicative(
        self, parameter: str, process: str, channel: str, *, hi: Any, lo: Any = None, code: int = 4
    ) -> None:
        """A multiplicative (normsys-like) modifier: ``hi``/``lo`` are the ratios varied /
        nominal at t = +1/-1, a scalar (the same in every bin) or a per-bin array; without
        ``lo``: 1/hi for codes 1 and 4, 2 - hi for codes 0 and 2. ``code``: pyhf's 0, 1, 2 or
        4 (docs/format.md section 15.2); codes 1 and 4 need hi, lo > 0."""
        what, ch, _ = self._modifier_target("multiplicative", parameter, process, channel)
        if code not in layout.MODIFIER_CODES["multiplicative"]:
            raise ContentError(f"{what}: interpolation code {code!r} is not 0, 1, 2 or 4")
        nb = int(np.prod(ch["shape"]))
        h = self._ratio(hi, ch, nb, f"{what} (hi)")
        positive = code in (1, 4)
        if positive and np.any(h <= 0):
            raise ContentError(f"{what}: hi and lo must be > 0 for interpolation code {code}")
        lw = lo_default(h, code) if lo is None else self._ratio(lo, ch, nb, f"{what} (lo)")
        if positive and np.any(lw <= 0):
            raise ContentError(f"{what}: hi and lo must be > 0 for interpolation code {code}")
        self._put_modifier(
            "multiplicative", (parameter, process, channel), (int(code), h, lw), what
        )

    def add_linear(
        self, parameter: str, process: str, channel: str, *, coeff: Any, bins: Any = None
    ) -> None:
        """A linear modifier, the factor ``1 + coeff * t`` on the yield (pyhf normfactor,
        shapefactor, lumi, staterror, shapesys; Combine rateParam): ``coeff`` a scalar or one
        value per bin of ``bins`` (flat channel indices; default all bins)."""
        what, ch, _ = self._modifier_target("linear", parameter, process, channel)
        nb = int(np.prod(ch["shape"]))
        idx = np.arange(nb) if bins is None else np.asarray(bins, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= nb):
            raise ContentError(f"{what}: bin index out of range [0, {nb})")
        if np.unique(idx).size != idx.size:
            raise ContentError(f"{what}: repeated bin indices")
        c = np.asarray(coeff, dtype=np.float64)
        c = np.full(idx.size, float(c)) if c.ndim == 0 else c.reshape(-1)
        if c.shape != idx.shape:
            raise ContentError(f"{what}: coeff has shape {c.shape}, expected {idx.shape}")
        _finite(c, what)
        order = np.argsort(idx, kind="stable")
        keep = c[order] != 0
        value = (idx[order][keep], c[order][keep])
        self._put_modifier("linear", (parameter, process, channel), value, what)

    def set_mc_stat(self, mode: str | None) -> None:
        """The Barlow-Beeston-lite constraint the likelihood is published with (format 1.1):
        "gamma", "normal" (pyhf's staterror), "combine" (Combine's autoMCStats, format 1.2)
        or "none"; None: not stated (the fitter's default, gamma)."""
        if mode not in (None, "gamma", "normal", "none", "combine"):
            raise ContentError(
                f"mc_stat must be 'gamma', 'normal', 'combine', 'none' or None, got {mode!r}"
            )
        self._mc_stat = mode

    def _modifier_target(
        self, kind: str, parameter: str, process: str, channel: str
    ) -> tuple[str, dict, np.ndarray]:
        """(description, channel record, nominal yield) of a modifier's target, checked."""
        what = f"{kind} modifier '{parameter}' of '{process}' in '{channel}'"
        ch = self._channel(channel)
        if self._process(process).folded:
            raise ContentError(f"{what}: process '{process}' is folded (plain processes only)")
        if parameter in self._pois:
            raise ContentError(f"{what}: '{parameter}' is a POI (nuisances only)")
        if (process, channel) not in self._yields:
            raise ContentError(f"{what}: set the nominal yield before modifiers")
        return what, ch, self._yields[(process, channel)][0]

    def _ratio(self, value: Any, ch: dict, nb: int, what: str) -> np.ndarray:
        v = np.asarray(value, dtype=np.float64) if np.ndim(value) == 0 else None
        out = np.full(nb, float(v)) if v is not None else self._values(value, ch["axes"], what)[0]
        _finite(out, what)
        return out

    def _put_modifier(self, kind: str, key: tuple[str, str, str], value: tuple, what: str) -> None:
        if not self._mods.put(kind, key, value):
            raise ContentError(f"{what} added twice")


def _finite(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        flat = np.asarray(a).reshape(-1)
        bad = int(np.argmax(~np.isfinite(flat)))
        raise ContentError(f"{what} has a non-finite value ({flat[bad]}) at flat index {bad}")


__all__ = ["ModifierWriter"]
