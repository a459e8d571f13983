"""Import a pyhf JSON workspace (optionally patched from a patchset) as an archive.

    >>> from wmass_archive.interop.pyhf import import_pyhf
    >>> report = import_pyhf("workspace.json", "imported.h5")
    >>> print(report.summary())
    >>> from wmass_archive.fit import fit
    >>> r = fit("imported.h5", impacts=())
    >>> report.pyhf_values(r)          # {pyhf parameter name: value} comparable with pyhf's fit
    >>> import_pyhf("BkgOnly.json", "s.h5", patches=["patch.sbottom_1000_200.json"])

The workspace is validated with pyhf's own schema and model builder; every modifier type maps
with pyhf's semantics (module :mod:`wmass_archive.interop.pyhf._map`, docs/pyhf.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...archive import ArchiveWriter, Axis
from ...archive.models import Citation, InputRecord, Provenance
from ...archive.writer import WriteReport
from ...errors import ArchiveError
from .._common import fitted_thetas
from ._load import AppliedPatch, LoadedWorkspace, PyhfImportError, load_workspace, pyhf_module
from ._map import ImportPlan, plan_import
from ._params import ParameterMapping

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
    patches: list[AppliedPatch] = field(default_factory=list)  # in the order applied
    signed: bool = False  # written with sample_yields 'signed' (format 1.2)

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
            + "".join(
                f", patch '{p.name}'" if p.name else f", JSON Patch {p.source}"
                for p in self.patches
            )
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
    patches: Sequence[Any] = (),
    poi: str | None = None,
    bounds: bool = True,
    title: str | None = None,
    modifier_settings: Mapping[str, Mapping[str, str]] | None = None,
    synthetic: bool = False,
    citation: Citation | dict | None = None,
    overwrite: bool = False,
) -> PyhfImportReport:
    """Write the archive of a pyhf workspace (a JSON path, a dict or a ``pyhf.Workspace``).

    ``measurement``: the measurement to use (default the first); ``patchset`` (a path, dict
    or ``pyhf.PatchSet``) and ``patch`` (a patch name): apply that patch first; ``patches``:
    then apply each of these in order: a JSON Patch (RFC 6902, a file or a list of operations,
    as HEPData's per-signal-point patch files), a pyhf patchset file of one patch, or the name
    of a patch of ``patchset``; ``poi``: the parameter of interest (default the measurement's,
    ``""`` for none; it must exist once patched, and becomes the archive's rate POI if it is a
    free normfactor); ``bounds``: store pyhf's parameter bounds (``suggested_bounds``: the
    measurement's or pyhf's defaults) in the archive (format 1.2); ``modifier_settings``:
    pyhf's ``Model(modifier_settings=...)`` (default pyhf's: normsys code4, histosys code4p);
    ``synthetic``: whether the workspace's numbers are not real data; ``title``/``citation``:
    of the archive (default from the file name).

    A sample's yield may be negative in a bin (pyhf sums them; only a negative total is
    refused, where pyhf's likelihood is undefined): the archive is then written with signed
    sample yields (format 1.2)."""
    pyhf_module("wmass-archive import pyhf")
    lw = load_workspace(
        workspace_or_path,
        measurement=measurement,
        patchset=patchset,
        patch=patch,
        patches=patches,
        poi=poi,
        modifier_settings=modifier_settings,
    )
    out = Path(output)
    if isinstance(workspace_or_path, str | os.PathLike):
        if out.exists() and out.resolve() == Path(workspace_or_path).resolve():
            raise PyhfImportError(f"the output {out} would overwrite the workspace")
    plan = plan_import(lw)
    plan.notes[:0] = lw.notes
    writer = _writer(lw, plan, title, synthetic, citation, bounds)
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
        patches=lw.applied,
        signed=plan.signed,
    )


def _writer(
    lw: LoadedWorkspace,
    plan: ImportPlan,
    title: str | None,
    synthetic: bool,
    citation: Citation | dict | None,
    bounds: bool = True,
) -> ArchiveWriter:
    """An :class:`ArchiveWriter` holding the plan (errors name the workspace)."""
    pyhf = pyhf_module()

    from ..._version import __version__

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
    for i, p in enumerate(lw.applied):
        inputs.append(
            InputRecord(
                name="pyhf patchset" if p.kind == "patchset" else "JSON Patch",
                location=p.source,
                sha256=p.sha256,
                description=(f"patch '{p.name}'" if p.name else f"{p.n_ops} operations")
                + f" applied (step {i + 1} of {len(lw.applied)})",
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
                producer="wmass_archive.interop.pyhf.importer",
                producer_version=__version__,
                inputs=inputs,
                software={"pyhf": pyhf.__version__},
                notes=notes,
            ),
            description=(
                f"pyhf workspace {lw.source}, measurement '{lw.measurement['name']}'"
                + "".join(f", {p.describe()}" for p in lw.applied)
                + f". {notes}. Parameter labels give pyhf's value as offset + scale * theta."
            ),
            mc_stat="none",
            # pyhf clips nothing (no sample, no normfactor at mu < 0): a 1.2 archive says so;
            # without bounds (1.1) only where a sample is negative
            sample_yields="signed" if plan.signed or bounds else None,
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
                    bounds=pm.bounds if bounds else None,  # physical value = mu
                )
            else:
                w.add_nuisance(
                    pm.name,
                    groups=pm.groups,
                    constraint=pm.constraint,
                    prior_scale=pm.prior_scale,
                    tau=pm.tau,
                    label=label,
                    bounds=pm.theta_bounds() if bounds else None,
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
