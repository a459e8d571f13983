"""What changed between two archives: metadata, nuisances and groups, PDF sets, and templates
beyond a tolerance."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .reader import Archive

#: top-level metadata fields compared one by one
_FIELDS = (
    "title",
    "description",
    "synthetic",
    "license",
    "format_version",
    "luminosity",
    "citation",
)


@dataclass
class ArchiveDiff:
    """Differences found, as readable lines in sections."""

    metadata: list[str] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)
    nuisances: list[str] = field(default_factory=list)
    theory: list[str] = field(default_factory=list)
    arrays: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not any((self.metadata, self.structure, self.nuisances, self.theory, self.arrays))

    def lines(self) -> list[str]:
        out: list[str] = []
        for title, items in (
            ("metadata", self.metadata),
            ("channels and processes", self.structure),
            ("nuisances", self.nuisances),
            ("theory", self.theory),
            ("arrays", self.arrays),
        ):
            if items:
                out.append(f"{title}:")
                out.extend(f"  {x}" for x in items)
        return out or ["no differences"]


def diff_archives(a: Archive, b: Archive, *, rtol: float = 1e-9, atol: float = 0.0) -> ArchiveDiff:
    """Compare ``a`` (old) with ``b`` (new). Arrays with equal checksums are equal; others are
    read and compared with ``|b - a| <= atol + rtol |a|``."""
    ma, mb = a.metadata, b.metadata
    d = ArchiveDiff()
    for f in _FIELDS:
        va, vb = getattr(ma, f), getattr(mb, f)
        if va != vb:
            d.metadata.append(f"{f}: {_short(va)} -> {_short(vb)}")
    if ma.provenance.model_dump(exclude={"created"}) != mb.provenance.model_dump(
        exclude={"created"}
    ):
        d.metadata.append("provenance changed")
    _sets(d.structure, "channel", [c.name for c in ma.channels], [c.name for c in mb.channels])
    _sets(d.structure, "process", [p.name for p in ma.processes], [p.name for p in mb.processes])
    _sets(d.structure, "POI", [p.name for p in ma.pois], [p.name for p in mb.pois])
    for c in ma.channels:
        if c.name in {x.name for x in mb.channels}:
            cb = mb.channel(c.name)
            if len(c.axes) != len(cb.axes) or not all(
                x.same_binning(y) for x, y in zip(c.axes, cb.axes, strict=False)
            ):
                d.structure.append(f"channel '{c.name}': binning changed")
            _sets(d.structure, f"process in channel '{c.name}'", c.processes, cb.processes)
    for p in ma.pois:
        if p.name in {x.name for x in mb.pois} and p != next(
            x for x in mb.pois if x.name == p.name
        ):
            d.structure.append(f"POI '{p.name}' definition changed")
    _sets(d.nuisances, "group", [g.name for g in ma.groups], [g.name for g in mb.groups])
    _sets(d.nuisances, "nuisance", [n.name for n in ma.nuisances], [n.name for n in mb.nuisances])
    nb = {n.name: n for n in mb.nuisances}
    for n in ma.nuisances:
        if n.name in nb and n != nb[n.name]:
            d.nuisances.append(f"nuisance '{n.name}' changed: {_changed(n, nb[n.name])}")
    ta, tb = ma.theory, mb.theory
    if (ta is None) != (tb is None):
        d.theory.append("theory section " + ("added" if ta is None else "removed"))
    elif ta is not None and tb is not None:
        if ta.nominal_pdf != tb.nominal_pdf:
            d.theory.append(f"nominal PDF set: {ta.nominal_pdf} -> {tb.nominal_pdf}")
        if len(ta.generator_axes) != len(tb.generator_axes) or not all(
            x.same_binning(y) for x, y in zip(ta.generator_axes, tb.generator_axes, strict=False)
        ):
            d.theory.append("generator binning changed")
        _sets(d.theory, "PDF set", [s.name for s in ta.pdf_sets], [s.name for s in tb.pdf_sets])
        sb = {s.name: s for s in tb.pdf_sets}
        for s in ta.pdf_sets:
            if s.name in sb and s != sb[s.name]:
                d.theory.append(f"PDF set '{s.name}' changed: {_changed(s, sb[s.name])}")
        _sets(
            d.theory,
            "theory variation",
            [v.name for v in ta.variations],
            [v.name for v in tb.variations],
        )
    # arrays present in both, by path; parameter/process index arrays are compared as the
    # names they point to would be misleading, so logk tables are compared per channel below
    common = sorted(set(ma.datasets) & set(mb.datasets))
    same_params = ma.parameter_names == mb.parameter_names and [p.name for p in ma.processes] == [
        p.name for p in mb.processes
    ]
    for path in common:
        if "/logk/" in path and not same_params:
            continue
        ra, rb = ma.datasets[path], mb.datasets[path]
        if ra.sha256 == rb.sha256:
            continue
        if ra.shape != rb.shape:
            d.arrays.append(f"{path}: shape {tuple(ra.shape)} -> {tuple(rb.shape)}")
            continue
        xa, xb = a.read(path).astype(np.float64), b.read(path).astype(np.float64)
        dev = np.abs(xb - xa)
        tol = atol + rtol * np.abs(xa)
        over = dev > tol
        if np.any(over):
            i = int(np.argmax(np.where(over, dev / np.maximum(np.abs(xa), 1e-300), -1)))
            rel = dev.reshape(-1)[i] / max(abs(xa.reshape(-1)[i]), 1e-300)
            d.arrays.append(
                f"{path}: {int(over.sum())} of {xa.size} values differ, largest "
                f"relative change {rel:.3g} at flat index {i}"
            )
    if not same_params:
        for c in ma.channels:
            if c.name in {x.name for x in mb.channels}:
                if _logk_by_name(a, c.name) != _logk_by_name(b, c.name):
                    d.arrays.append(f"channel '{c.name}': variations (logk) differ")
    only = sorted(set(ma.datasets) ^ set(mb.datasets))
    for path in only:
        if "/logk/" in path:
            continue
        d.arrays.append(f"{path}: only in {'A' if path in ma.datasets else 'B'}")
    return d


def _logk_by_name(a: Archive, channel: str) -> dict[tuple[str, str, int], tuple[float, float]]:
    m = a.metadata
    t = a.logk(channel)
    names, procs = m.parameter_names, [p.name for p in m.processes]
    return {
        (names[i], procs[j], int(b)): (round(float(x), 12), round(float(y), 12))
        for i, j, b, x, y in zip(t.parameter, t.process, t.bin, t.avg, t.halfdiff, strict=False)
    }


def _sets(out: list[str], what: str, old: list[str], new: list[str]) -> None:
    added = [x for x in new if x not in set(old)]
    removed = [x for x in old if x not in set(new)]
    for label, items in (("added", added), ("removed", removed)):
        if items:
            shown = ", ".join(items[:8]) + (
                f", ... ({len(items)} in all)" if len(items) > 8 else ""
            )
            out.append(f"{what}s {label}: {shown}")


def _changed(x, y) -> str:
    dx, dy = x.model_dump(), y.model_dump()
    return ", ".join(f"{k} {_short(dx[k])} -> {_short(dy[k])}" for k in dx if dx[k] != dy.get(k))


def _short(v) -> str:
    s = str(v.model_dump() if hasattr(v, "model_dump") else v)
    return s if len(s) <= 60 else s[:57] + "..."
