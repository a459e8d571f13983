"""Redefinitions of the parameters of interest: split a mass POI into several POIs, each acting
on a set of reco bins ("mW+ vs mW-", "eta < 0 vs eta > 0", "barrel vs endcap").

A split is a list of (name, bin mask) over the concatenated bins of all channels (channel
order of the archive, each channel C-ordered over its axes). The masks must partition the bins.
The new POIs replace the split POI in place in the parameter list and inherit its unit, central
value, scale and blinding offset. On a folded process the yield of bin b is interpolated
between the mass points with the POI whose mask holds b; the logk entries of the POI on plain
processes act likewise bin by bin.

Predefined splits (:func:`poi_split`), from the channels' axes:

* ``"mw"``: no split;
* ``"mw-charge"``: ``<poi>_plus`` / ``<poi>_minus`` from an axis named ``charge`` (or ``q``;
  categories or bin centres, sign), or a channel name containing ``plus``/``minus``;
* ``"mw-eta"``: ``<poi>_etaneg`` (bin centre eta < 0) / ``<poi>_etapos`` (eta >= 0) from an
  axis named ``eta``;
* ``"mw-barrel-endcap"``: ``<poi>_barrel`` (|eta| bin centre < 0.9, the CMS muon barrel) /
  ``<poi>_endcap`` (|eta| >= 0.9); the boundary is the ``barrel_eta`` argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..archive.models import ArchiveMetadata
from ..errors import ArchiveError

PREDEFINED = ("mw", "mw-charge", "mw-eta", "mw-barrel-endcap")
CHARGE_AXES = ("charge", "q", "qmu", "muon_charge")
ETA_AXES = ("eta", "muon_eta", "etamu")


@dataclass(frozen=True)
class POISplit:
    """Split the POI ``poi`` into ``parts``: (name, mask of shape (n_bins,)) pairs."""

    poi: str
    parts: tuple[tuple[str, np.ndarray], ...]

    def validate(self, meta: ArchiveMetadata) -> None:
        names = [p.name for p in meta.pois]
        if self.poi not in names:
            raise ArchiveError(f"cannot split POI '{self.poi}': no such POI ({names})")
        poi = meta.pois[names.index(self.poi)]
        if poi.kind != "mass":
            raise ArchiveError(f"only a mass POI can be split; '{self.poi}' is a {poi.kind} POI")
        n = meta.n_bins
        cover = np.zeros(n, dtype=int)
        for name, mask in self.parts:
            m = np.asarray(mask, dtype=bool)
            if m.shape != (n,):
                raise ArchiveError(f"mask of POI '{name}' has shape {m.shape}, expected ({n},)")
            if not m.any():
                raise ArchiveError(f"POI '{name}' of the split of '{self.poi}' acts on no bin")
            cover += m
        if np.any(cover != 1):
            raise ArchiveError(
                f"the masks of the split of '{self.poi}' must partition the {n} bins "
                f"({int(np.sum(cover == 0))} bins in no part, {int(np.sum(cover > 1))} in several)"
            )
        taken = {n.name for n in meta.nuisances} | (set(names) - {self.poi})
        clash = [name for name, _ in self.parts if name in taken]
        if clash or len({name for name, _ in self.parts}) != len(self.parts):
            raise ArchiveError(f"POI split names must be new and unique: {clash}")

    def part_of_bin(self) -> np.ndarray:
        """Index of the part holding each bin, shape (n_bins,)."""
        out = np.full(len(self.parts[0][1]), -1, dtype=np.int64)
        for i, (_, mask) in enumerate(self.parts):
            out[np.asarray(mask, dtype=bool)] = i
        return out


def axis_bin_values(meta: ArchiveMetadata, names: Sequence[str]) -> np.ndarray | None:
    """Per bin (concatenated channels) the value of the first axis whose name is in ``names``
    (case-insensitive): category value for an integer category axis, bin centre otherwise.
    None when a channel has no such axis."""
    want = {n.lower() for n in names}
    out = []
    for ch in meta.channels:
        idx = next((i for i, a in enumerate(ch.axes) if a.name.lower() in want), None)
        if idx is None:
            return None
        ax = ch.axes[idx]
        if ax.type == "category_int":
            vals = np.asarray(ax.categories, dtype=np.float64)
        elif ax.type == "category_str":
            return None
        else:
            vals = ax.centers()
        grid = np.indices(ch.shape)[idx].reshape(-1)
        out.append(vals[grid])
    return np.concatenate(out)


def _charge_per_bin(meta: ArchiveMetadata) -> np.ndarray:
    q = axis_bin_values(meta, CHARGE_AXES)
    if q is not None:
        return np.sign(q)
    out = []
    for ch in meta.channels:
        low = ch.name.lower()
        if "plus" in low or "pos" in low or low.endswith("+"):
            out.append(np.ones(ch.n_bins))
        elif "minus" in low or "neg" in low or low.endswith("-"):
            out.append(-np.ones(ch.n_bins))
        else:
            raise ArchiveError(
                f"cannot tell the muon charge of channel '{ch.name}': no axis named "
                f"{'/'.join(CHARGE_AXES)} and no plus/minus in its name"
            )
    return np.concatenate(out)


def _eta_per_bin(meta: ArchiveMetadata) -> np.ndarray:
    eta = axis_bin_values(meta, ETA_AXES)
    if eta is None:
        raise ArchiveError(f"no axis named {'/'.join(ETA_AXES)} in every channel")
    return eta


def poi_split(
    meta: ArchiveMetadata, kind: str = "mw", poi: str | None = None, barrel_eta: float = 0.9
) -> POISplit | None:
    """A predefined split (see the module docstring) of the mass POI ``poi`` (default: the
    first mass POI); None for ``"mw"``."""
    kind = kind.lower()
    if kind not in PREDEFINED:
        raise ArchiveError(f"unknown POI definition '{kind}' (choose from {', '.join(PREDEFINED)})")
    if kind == "mw":
        return None
    if poi is None:
        mass = [p.name for p in meta.pois if p.kind == "mass"]
        if not mass:
            raise ArchiveError("the archive has no mass POI to split")
        poi = mass[0]
    if kind == "mw-charge":
        q = _charge_per_bin(meta)
        parts = ((f"{poi}_plus", q > 0), (f"{poi}_minus", q <= 0))
    elif kind == "mw-eta":
        eta = _eta_per_bin(meta)
        parts = ((f"{poi}_etaneg", eta < 0), (f"{poi}_etapos", eta >= 0))
    else:
        eta = np.abs(_eta_per_bin(meta))
        parts = ((f"{poi}_barrel", eta < barrel_eta), (f"{poi}_endcap", eta >= barrel_eta))
    split = POISplit(poi, tuple((n, np.asarray(m, dtype=bool)) for n, m in parts))
    split.validate(meta)
    return split
