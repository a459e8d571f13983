"""Import a pyhf JSON workspace (optionally patched from a patchset) as an archive.

    >>> from wmass_archive.importers import import_pyhf
    >>> report = import_pyhf("workspace.json", "imported.h5")
    >>> print(report.summary())
    >>> from wmass_archive.fit import fit
    >>> r = fit("imported.h5", impacts=())
    >>> report.pyhf_values(r)          # {pyhf parameter name: value} comparable with pyhf's fit

The workspace is validated with pyhf's own schema and model builder; every modifier type maps
with pyhf's semantics (module :mod:`wmass_archive.importers._pyhf_map`, docs/pyhf.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..archive import ArchiveWriter, Axis
from ..archive.models import Citation, InputRecord, Provenance
from ..archive.writer import WriteReport
from ..errors import ArchiveError
from ._common import fitted_thetas
from ._pyhf_load import LoadedWorkspace, PyhfImportError, load_workspace
from ._pyhf_map import ImportPlan, plan_import
from ._pyhf_params import ParameterMapping

__all__ = ["ParameterMapping", "PyhfImportError", "PyhfImportReport", "import_pyhf"]


@dataclass
class PyhfImportReport:
    """What :func:`import_pyhf` wrote, and how the archive's parameters map onto pyhf's."""

    path: Path
    source: str
    sha256: str
    measurement: str
    patch: str | None
    poi: str | None
    modifier_settings: dict[str, dict[str, str]]
    channels: dict[str, str]  # archive name -> pyhf name
    processes: dict[str, str]  # archive name -> pyhf sample name
    parameters: list[ParameterMapping]
    fixed: dict[str, float]  # pyhf parameters folded into the yields -> value
    notes: list[str] = field(default_factory=list)
    n_bins: int = 0
    write: WriteReport | None = None

    def parameter(self, name: str) -> ParameterMapping:
        """The mapping of an archive parameter (by its name or by its pyhf name)."""
        for p in self.parameters:
            if name in (p.name, p.pyhf_name):
                return p
        raise KeyError(f"no parameter '{name}' in the import of {self.source}")

    def pyhf_values(self, result: Any) -> dict[str, tuple[float, float]]:
        """{pyhf parameter name: (value, uncertainty)} from a fit result of the archive (a
        :class:`~wmass_archive.fit.FitResult`) or a {archive name: (theta, error)} mapping."""
        got = fitted_thetas(result)
        out = {}
        for p in self.parameters:
            if p.name in got:
                th, err = got[p.name]
                out[p.pyhf_name] = (p.pyhf_value(th), abs(p.scale) * err)
        return out

    def summary(self) -> str:
        """Human-readable lines."""
        n_poi = sum(p.kind == "poi" for p in self.parameters)
        lines = [
            f"imported {self.source} (measurement '{self.measurement}'"
            + (f", patch '{self.patch}'" if self.patch else "")
            + f") into {self.path}",
            f"  {len(self.channels)} channels, {self.n_bins} bins, {len(self.processes)} "
            f"processes, {len(self.parameters)} parameters ({n_poi} POI"
            + (f" '{self.poi}'" if n_poi else "")
            + f"), {len(self.fixed)} fixed pyhf parameters folded into the yields",
            "  interpolation: "
            + ", ".join(
                f"{k} {v.get('interpcode')}" for k, v in sorted(self.modifier_settings.items())
            ),
        ]
        renamed = {k: v for k, v in {**self.channels, **self.processes}.items() if k != v}
        if renamed:
            lines.append(
                "  renamed: " + ", ".join(f"'{v}' -> '{k}'" for k, v in sorted(renamed.items()))
            )
        lines += [f"  note: {n}" for n in self.notes]
        if self.write is not None:
            lines.append(f"  {self.write.summary()}")
        return "\n".join(lines)


def import_pyhf(
    workspace_or_path: Any,
    output: str | os.PathLike,
    *,
    measurement: str | None = None,
    patch: str | None = None,
    patchset: Any = None,
    title: str | None = None,
    modifier_settings: Mapping[str, Mapping[str, str]] | None = None,
    synthetic: bool = False,
    citation: Citation | dict | None = None,
    overwrite: bool = False,
) -> PyhfImportReport:
    """Write the archive of a pyhf workspace (a JSON path, a dict or a ``pyhf.Workspace``).

    ``measurement``: the measurement to use (default the first); ``patchset`` (a path, dict
    or ``pyhf.PatchSet``) and ``patch`` (a patch name): apply that patch first;
    ``modifier_settings``: pyhf's ``Model(modifier_settings=...)`` (default pyhf's: normsys
    code4, histosys code4p); ``synthetic``: whether the workspace's numbers are not real data;
    ``title``/``citation``: of the archive (default from the file name)."""
    lw = load_workspace(
        workspace_or_path,
        measurement=measurement,
        patchset=patchset,
        patch=patch,
        modifier_settings=modifier_settings,
    )
    out = Path(output)
    if isinstance(workspace_or_path, str | os.PathLike):
        if out.exists() and out.resolve() == Path(workspace_or_path).resolve():
            raise PyhfImportError(f"the output {out} would overwrite the workspace")
    plan = plan_import(lw)
    writer = _writer(lw, plan, title, synthetic, citation)
    try:
        wrep = writer.write(out, overwrite=overwrite)
    except PyhfImportError:
        raise
    except ArchiveError as exc:
        raise PyhfImportError(f"{lw.source}: {exc}") from None
    poi = next((p.pyhf_name for p in plan.parameters if p.kind == "poi"), None)
    return PyhfImportReport(
        path=out,
        source=lw.source,
        sha256=lw.sha256,
        measurement=lw.measurement["name"],
        patch=lw.patch,
        poi=poi,
        modifier_settings=lw.modifier_settings,
        channels=plan.channel_names,
        processes=plan.processes,
        parameters=plan.parameters,
        fixed=plan.fixed,
        notes=plan.notes,
        n_bins=sum(c["n_bins"] for c in plan.channels),
        write=wrep,
    )


def _writer(
    lw: LoadedWorkspace,
    plan: ImportPlan,
    title: str | None,
    synthetic: bool,
    citation: Citation | dict | None,
) -> ArchiveWriter:
    """An :class:`ArchiveWriter` holding the plan (errors name the workspace)."""
    import pyhf

    from .. import __version__

    name = Path(lw.source).name if not lw.source.startswith("<") else "pyhf workspace"
    inputs = [
        InputRecord(
            name="pyhf workspace",
            location=lw.source,
            sha256=lw.sha256,
            description=f"measurement '{lw.measurement['name']}'"
            + ("" if not lw.source.startswith("<") else " (sha256 of pyhf.utils.digest)"),
        )
    ]
    if lw.patch is not None:
        inputs.append(
            InputRecord(
                name="pyhf patchset",
                location=lw.patchset_source or "",
                sha256=lw.patchset_sha256,
                description=f"patch '{lw.patch}' applied",
            )
        )
    codes = ", ".join(f"{k} {v['interpcode']}" for k, v in sorted(lw.modifier_settings.items()))
    notes = "; ".join([f"pyhf interpolation: {codes}", *plan.notes])
    try:
        w = ArchiveWriter(
            title=title or f"{name} (imported from pyhf)",
            synthetic=synthetic,
            citation=citation or {"title": title or name},
            provenance=Provenance(
                producer="wmass_archive.importers.pyhf",
                producer_version=__version__,
                inputs=inputs,
                software={"pyhf": pyhf.__version__},
                notes=notes,
            ),
            description=(
                f"pyhf workspace {lw.source}, measurement '{lw.measurement['name']}'"
                + (f", patch '{lw.patch}'" if lw.patch else "")
                + f". {notes}. Parameter labels give pyhf's value as offset + scale * theta."
            ),
            mc_stat="none",
        )
        for g in sorted({g for p in plan.parameters for g in p.groups if p.kind == "nuisance"}):
            w.add_group(g, description=f"pyhf {g} modifiers")
        for c in plan.channels:
            n = c["n_bins"]
            w.add_channel(
                c["name"],
                c["data"],
                axes=[Axis.regular(n, 0.0, float(n), name="bin", label="pyhf bin")],
                label=c["pyhf_name"],
            )
        for p, pyhf_name in plan.processes.items():
            w.add_process(p, label=pyhf_name, kind="signal" if p in plan.signal else "background")
        for (p, ch), nom in plan.yields.items():
            w.set_yield(p, ch, nom, sumw2=np.zeros_like(nom))
        for pm in plan.parameters:
            label = f"pyhf {pm.pyhf_name} = {pm.offset:.10g} + {pm.scale:.10g} * theta"
            if pm.kind == "poi":
                w.add_poi(
                    name=pm.name,
                    kind="rate",
                    central=1.0,
                    scale=1.0,
                    acts_on=plan.poi_acts_on,
                    unit="",
                    label=label,
                )
            else:
                w.add_nuisance(
                    pm.name,
                    groups=pm.groups,
                    constraint=pm.constraint,
                    prior_scale=pm.prior_scale,
                    tau=pm.tau,
                    label=label,
                )
        for par, p, ch, hi, lo, code in plan.multiplicative:
            w.add_multiplicative(par, p, ch, hi=hi, lo=lo, code=code)
        for par, p, ch, up, down, code in plan.additive:
            w.add_additive(par, p, ch, up=up, down=down, code=code)
        for par, p, ch, bins, coeff in plan.linear:
            w.add_linear(par, p, ch, coeff=coeff, bins=bins)
    except PyhfImportError:
        raise
    except ArchiveError as exc:
        raise PyhfImportError(f"{lw.source}: {exc}") from None
    return w
