"""Import a CMS Combine datacard (counting or TH1 shapes read with uproot) as an archive.

    >>> from wmass_archive.interop.combine import import_combine
    >>> report = import_combine("card.txt", "card.h5", remap={"/eos/user/me": "inputs"})
    >>> print(report.summary())
    >>> from wmass_archive.fit import fit
    >>> r = fit("card.h5", impacts=())
    >>> report.combine_values(r)["r"]     # (value, uncertainty) in Combine's terms

Combine's default physics model is kept: one rate POI ``r`` (central 1) on every signal
process (process index <= 0). How each directive maps, and which are refused: docs/combine.md
and :mod:`wmass_archive.interop.combine._plan`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._optional import require
from ...archive import ArchiveWriter
from ...archive.checksums import file_sha256
from ...archive.models import Citation, InputRecord, Provenance
from ...archive.writer import WriteReport
from ...errors import ArchiveError
from .._common import fitted_thetas
from ._card import CombineImportError, Datacard, parse_datacard
from ._plan import R_RANGE, CombineParameter, CombinePlan, plan_import
from ._shapes import ShapeReader

__all__ = [
    "R_RANGE",
    "CombineImportError",
    "CombineImportReport",
    "CombineParameter",
    "import_combine",
]


@dataclass
class CombineImportReport:
    """What :func:`import_combine` wrote, and how the archive's parameters map onto Combine's
    (``combine value = offset + scale * theta``)."""

    path: Path
    card: Path
    channels: dict[str, int]  # channel -> number of bins
    processes: list[str]
    signals: list[str]
    parameters: list[CombineParameter]
    groups: list[str]
    mc_stat: str
    inputs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    write: WriteReport | None = None

    @property
    def n_bins(self) -> int:
        return sum(self.channels.values())

    def parameter(self, name: str) -> CombineParameter:
        """The mapping of a parameter by name (the same name in Combine and in the archive)."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"no parameter '{name}' in the import of {self.card.name}")

    def combine_values(self, result: Any) -> dict[str, tuple[float, float]]:
        """{Combine parameter: (value, uncertainty)} from a fit result of the archive (a
        :class:`~wmass_archive.fit.FitResult`) or a {name: (theta, error)} mapping."""
        got = fitted_thetas(result)
        return {
            p.name: (p.combine_value(got[p.name][0]), abs(p.scale) * got[p.name][1])
            for p in self.parameters
            if p.name in got
        }

    def summary(self) -> str:
        """Human-readable lines."""
        kinds: dict[str, int] = {}
        for p in self.parameters:
            kinds[p.source] = kinds.get(p.source, 0) + 1
        lines = [
            f"imported {self.card} into {self.path}",
            f"  {len(self.channels)} channels, {self.n_bins} bins, {len(self.processes)} "
            f"processes ({len(self.signals)} signal), {len(self.parameters)} parameters: "
            + ", ".join(f"{n} {k}" for k, n in kinds.items()),
            f"  MC statistics (autoMCStats): {self.mc_stat}; {len(self.inputs)} shape files",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        if self.write is not None:
            lines.append(f"  {self.write.summary()}")
        return "\n".join(lines)


def import_combine(
    card: str | os.PathLike,
    output: str | os.PathLike,
    *,
    remap: Mapping[str, str] | None = None,
    title: str | None = None,
    mass: float | None = None,
    synthetic: bool = False,
    citation: Citation | dict | None = None,
    overwrite: bool = False,
    r_range: tuple[float, float] | None = R_RANGE,
) -> CombineImportReport:
    """Write the archive of the Combine datacard ``card``.

    ``remap``: {old prefix: new prefix} for the shape files' paths (absolute paths of another
    machine); other relative paths are relative to the card. ``mass``: the value of $MASS in
    ``shapes`` lines (Combine's ``-m``). ``title``/``citation``: of the archive (default from the
    card's name); ``synthetic``: whether the card's numbers are not real data; ``overwrite``:
    replace an existing ``output``; ``r_range``: the range of the POI r, Combine's default
    [0, 20] (its ``--rMin``/``--rMax``; None: unbounded), written as the POI's bounds."""
    require("uproot", "interop", "wmass-archive import combine")
    path = Path(card)
    r_range = _check_r_range(r_range)
    dc = parse_datacard(path)
    out = Path(output)
    if out.exists() and out.resolve() == path.resolve():
        raise CombineImportError(f"the output {out} would overwrite the card")
    with ShapeReader(dc, remap, mass) as reader:
        plan = plan_import(dc, reader, r_range)
        inputs = sorted(reader.inputs)
    writer = _writer(dc, plan, inputs, title, synthetic, citation)
    try:
        wrep = writer.write(out, overwrite=overwrite)
    except ArchiveError as exc:
        raise CombineImportError(f"{path.name}: {exc}") from None
    return CombineImportReport(
        path=out,
        card=path,
        channels={c.name: int(c.data.size) for c in plan.channels},
        processes=plan.processes,
        signals=plan.signals,
        parameters=list(plan.parameters.values()),
        groups=plan.groups,
        mc_stat=plan.mc_stat,
        inputs=inputs,
        notes=plan.notes,
        write=wrep,
    )


def _check_r_range(r_range: Any) -> tuple[float, float] | None:
    """``r_range`` as a (low, high) pair of finite numbers with low < high, or None."""
    if r_range is None:
        return None
    try:
        lo, hi = (float(v) for v in r_range)
    except (TypeError, ValueError):
        raise CombineImportError(f"r_range must be a (low, high) pair, got {r_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise CombineImportError(f"r_range [{lo:g}, {hi:g}]: expected finite low < high")
    return lo, hi


def _writer(
    dc: Datacard,
    plan: CombinePlan,
    inputs: list[Path],
    title: str | None,
    synthetic: bool,
    citation: Citation | dict | None,
) -> ArchiveWriter:
    """An :class:`ArchiveWriter` holding the plan (errors name the card)."""
    uproot = require("uproot", "interop", "wmass-archive import combine")

    from ..._version import __version__

    name = dc.path.name
    records = [
        InputRecord(name="Combine datacard", location=str(dc.path), sha256=file_sha256(dc.path)),
        *(InputRecord(name="shape file", location=str(p), sha256=file_sha256(p)) for p in inputs),
    ]
    notes = "; ".join(plan.notes)
    try:
        w = ArchiveWriter(
            title=title or f"{name} (imported from a CMS Combine datacard)",
            synthetic=synthetic,
            citation=citation or {"title": title or name},
            provenance=Provenance(
                producer="wmass_archive.interop.combine.importer",
                producer_version=__version__,
                inputs=records,
                software={"uproot": uproot.__version__},
                notes=notes,
            ),
            description=(
                f"CMS Combine datacard {name}: default physics model (POI r on the signals). "
                "Parameter labels give Combine's value as offset + scale * theta."
                + (f" Notes: {notes}." if notes else "")
            ),
            mc_stat=plan.mc_stat,
        )
        for g in plan.groups:
            w.add_group(g, description=f"Combine group '{g}'")
        for c in plan.channels:
            w.add_channel(c.name, c.data, axes=[c.axis], label=c.name)
        for p in plan.processes:
            w.add_process(p, kind="signal" if p in plan.signals else "background")
        for c in plan.channels:
            for p in c.processes:
                w.set_yield(p, c.name, c.nominal[p], sumw2=c.sumw2[p])
        for pm in plan.parameters.values():
            label = f"Combine {pm.source} {pm.name} = {pm.offset:.10g} + {pm.scale:.10g} * theta"
            if pm.range is not None:
                label += f" (range {pm.range[0]:g}..{pm.range[1]:g})"
            if pm.kind == "poi":
                w.add_poi(
                    name=pm.name,
                    kind="rate",
                    central=1.0,
                    scale=1.0,
                    acts_on=[{"process": s} for s in plan.signals],
                    unit="",
                    label=label,
                    bounds=pm.range,
                )
            else:
                w.add_nuisance(
                    pm.name,
                    groups=pm.groups,
                    constraint=pm.constraint,
                    prior_scale=pm.prior_scale,
                    tau=pm.tau,
                    label=label,
                    bounds=pm.theta_bounds,
                )
        for par, p, ch, spec in plan.lognormal:
            w.add_variation(par, p, ch, **spec)
        for par, p, ch, up, down, code in plan.additive:
            w.add_additive(par, p, ch, up=up, down=down, code=code)
        for par, p, ch, coeff, bins in plan.linear:
            c = coeff if bins is not None else float(coeff[0])
            w.add_linear(par, p, ch, coeff=c, bins=bins)
    except CombineImportError:
        raise
    except ArchiveError as exc:
        raise CombineImportError(f"{name}: {exc}") from None
    return w
