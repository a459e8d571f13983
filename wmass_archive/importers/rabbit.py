"""Import a rabbit input tensor (CMS's TensorFlow fitter, PyPI ``rabbit-fit``) as an archive.

    >>> from wmass_archive.importers import import_rabbit
    >>> report = import_rabbit("rabbit_input.hdf5", "imported.h5")
    >>> print(report.summary())

The tensor is read with h5py only (:func:`wmass_archive.export.read_rabbit_tensor`); the
pickled ``meta`` group is never loaded. What rabbit keeps only in that pickle is therefore
unknown: the channels (the unmasked bins become one flat channel ``ch0`` with an axis ``obs``,
as rabbit itself names them without the pickle; bins of masked channels, which do not enter
the likelihood, are left out) and the systematic type (``log_normal``, TensorWriter's default,
is assumed). Tensors written by ``wmass-archive export rabbit`` carry their channels in a JSON
attribute and are written back exactly (:func:`~wmass_archive.export.tensor_to_archive`).

The model is rabbit's: ``nu[b, p] = norm[b, p] * mu_p * exp(sum_k theta_k (logkavg + alpha(theta_k)
logkhalfdiff))``, the format's log-normal (docs/format.md section 7.3); signals are rate POIs
(mu = 1 + theta), systematics are gaussian nuisances (constraint weight w: prior scale
1/sqrt(w)) or unconstrained ones (``hsystsnoconstraint``), groups are rabbit's, and the
Barlow-Beeston-lite constraint is rabbit's default gamma (``mc_stat = "gamma"``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..archive import ArchiveWriter, Axis
from ..archive.checksums import file_sha256
from ..archive.models import Citation, InputRecord, Provenance
from ..archive.writer import WriteReport
from ..errors import ArchiveError
from ..export._common import ExportError
from ..export.rabbit_read import (
    RabbitTensor,
    _entries_by_syst,
    read_rabbit_tensor,
    tensor_to_archive,
)
from ._common import fitted_thetas

__all__ = ["RabbitImportError", "RabbitImportReport", "RabbitParameterMap", "import_rabbit"]

SAFE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,199}$"
PARAMETER_NAME = r"^[^\s/]{1,300}$"
CHANNEL = "ch0"


class RabbitImportError(ArchiveError):
    """A rabbit tensor cannot be imported."""


@dataclass(frozen=True)
class RabbitParameterMap:
    """An archive parameter and rabbit's: ``rabbit value = offset + scale * theta``.
    ``kind``: "signal" (a rate POI, rabbit's signal strength), "noi" (a nuisance of
    interest), "nuisance"."""

    name: str
    rabbit_name: str
    kind: str
    constraint: str
    offset: float = 0.0
    scale: float = 1.0

    def rabbit_value(self, theta: float) -> float:
        """rabbit's value of the parameter at the archive's ``theta``."""
        return self.offset + self.scale * theta


@dataclass
class RabbitImportReport:
    """What :func:`import_rabbit` wrote."""

    path: Path
    tensor: Path
    n_bins: int
    n_masked: int
    processes: list[str]
    signals: list[str]
    parameters: list[RabbitParameterMap]
    groups: list[str]
    sparse: bool
    symmetric: bool
    exported: bool
    notes: list[str] = field(default_factory=list)
    write: WriteReport | None = None

    def rabbit_values(self, result: Any) -> dict[str, tuple[float, float]]:
        """{rabbit parameter: (value, uncertainty)} from a fit result of the archive (a
        :class:`~wmass_archive.fit.FitResult`) or a {name: (theta, error)} mapping."""
        got = fitted_thetas(result)
        return {
            p.rabbit_name: (p.rabbit_value(got[p.name][0]), abs(p.scale) * got[p.name][1])
            for p in self.parameters
            if p.name in got
        }

    def summary(self) -> str:
        """Human-readable lines."""
        kinds = {k: sum(p.kind == k for p in self.parameters) for k in ("signal", "noi")}
        lines = [
            f"imported {self.tensor} into {self.path}"
            + (" (a tensor of wmass-archive export rabbit)" if self.exported else ""),
            f"  {self.n_bins} bins"
            + (f" ({self.n_masked} masked bins left out)" if self.n_masked else "")
            + f", {len(self.processes)} processes ({len(self.signals)} signals), "
            f"{len(self.parameters)} parameters ({kinds['signal']} POIs, {kinds['noi']} "
            f"nuisances of interest), {'sparse' if self.sparse else 'dense'} "
            f"{'symmetric' if self.symmetric else 'asymmetric'} tensor",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        if self.write is not None:
            lines.append(f"  {self.write.summary()}")
        return "\n".join(lines)


def import_rabbit(
    tensor: str | os.PathLike,
    output: str | os.PathLike,
    *,
    title: str | None = None,
    synthetic: bool = False,
    citation: Citation | dict | None = None,
    overwrite: bool = False,
) -> RabbitImportReport:
    """Write the archive of the rabbit input tensor ``tensor`` (HDF5, dense or sparse).

    ``title``/``citation``: of the archive (default from the file name); ``synthetic``:
    whether the tensor's numbers are not real data; ``overwrite``: replace ``output``."""
    src, out = Path(tensor), Path(output)
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise RabbitImportError(f"the output {out} would overwrite the tensor")
    if out.exists() and not overwrite:
        raise RabbitImportError(f"{out} exists (pass overwrite=True to replace it)")
    try:
        t = read_rabbit_tensor(src)
    except ExportError as exc:
        raise RabbitImportError(str(exc)) from None
    if t.export_info is not None:
        return _exported(t, out)
    plan = _plan(t)
    writer = _writer(t, plan, title, synthetic, citation)
    try:
        wrep = writer.write(out, overwrite=overwrite)
    except ArchiveError as exc:
        raise RabbitImportError(f"{src.name}: {exc}") from None
    return RabbitImportReport(
        path=out,
        tensor=src,
        n_bins=plan["n_data"],
        n_masked=t.n_bins - plan["n_data"],
        processes=list(t.procs),
        signals=list(t.signals),
        parameters=plan["parameters"],
        groups=plan["groups"],
        sparse=t.sparse,
        symmetric=t.symmetric,
        exported=False,
        notes=plan["notes"],
        write=wrep,
    )


def _exported(t: RabbitTensor, out: Path) -> RabbitImportReport:
    """A tensor of ``wmass-archive export rabbit``: written back with its channels and roles."""
    try:
        wrep = tensor_to_archive(t, out)
    except ArchiveError as exc:
        raise RabbitImportError(f"{t.path.name}: {exc}") from None
    params = []
    for p in t.export_info["parameters"]:
        if p["role"] == "signal":
            params.append(
                RabbitParameterMap(
                    p["name"], p["rabbit_name"], "signal", "none", 1.0, p["scale"] / p["central"]
                )
            )
        else:
            params.append(RabbitParameterMap(p["name"], p["rabbit_name"], "noi", "none"))
    named = {p.rabbit_name for p in params}
    for k, s in enumerate(t.systs):
        if s not in named:
            cons = "none" if t.constraint_weights[k] == 0 else "gaussian"
            params.append(RabbitParameterMap(s, s, "nuisance", cons))
    return RabbitImportReport(
        path=out,
        tensor=t.path,
        n_bins=int(t.data_obs.size),
        n_masked=0,
        processes=list(t.procs),
        signals=list(t.signals),
        parameters=params,
        groups=list(t.groups),
        sparse=t.sparse,
        symmetric=t.symmetric,
        exported=True,
        notes=list(t.export_info.get("approximations", [])),
        write=wrep,
    )


def _plan(t: RabbitTensor) -> dict[str, Any]:
    """The archive's content for a foreign tensor: parameters, groups, logk entries."""
    name = t.path.name
    notes: list[str] = []
    for p in t.procs:
        if not re.match(SAFE_NAME, p):
            raise RabbitImportError(f"{name}: process name '{p}' is not a valid archive name")
    for s in t.systs:
        if not re.match(PARAMETER_NAME, s):
            raise RabbitImportError(f"{name}: systematic name '{s}' is not a valid parameter name")
    clash = set(t.signals) & set(t.systs)
    if clash:
        raise RabbitImportError(f"{name}: '{sorted(clash)[0]}' is both a signal and a systematic")
    n_data = int(t.data_obs.size)
    if n_data < t.n_bins:
        notes.append(
            f"{t.n_bins - n_data} bins of masked channels left out (they have no data and do "
            "not enter the likelihood)"
        )
    norm = t.norm[:n_data]
    if np.any(norm < 0):
        raise RabbitImportError(
            f"{name}: negative expected yields (allow_negative_expectation) cannot be imported"
        )
    if np.any(t.sumw2[:n_data] < 0):
        raise RabbitImportError(f"{name}: negative hsumw2")
    if np.any(t.data_obs < 0):
        raise RabbitImportError(f"{name}: negative observed counts in hdata_obs")
    import h5py

    with h5py.File(t.path, "r") as f:  # two plain datasets only; "meta" is never opened
        if "hdata_cov_inv" in f:
            notes.append(
                "the tensor's data covariance (hdata_cov_inv, for rabbit's --covarianceFit) is "
                "not imported: the archive holds the Poisson likelihood"
            )
        if f.get("hpseudodata") is not None and f["hpseudodata"].size:
            notes.append("the tensor's pseudodata are not imported")
    params = [RabbitParameterMap(s, s, "signal", "none", 1.0, 1.0) for s in t.signals]
    noc = set(t.systs_noconstraint)
    for k, s in enumerate(t.systs):
        w = float(t.constraint_weights[k])
        if not (math.isfinite(w) and w >= 0):
            raise RabbitImportError(f"{name}: constraint weight {w} of '{s}'")
        cons = "none" if (w == 0 or s in noc) else "gaussian"
        scale = 1.0 if cons == "none" else 1.0 / math.sqrt(w)
        kind = "noi" if s in t.noi else "nuisance"
        params.append(RabbitParameterMap(s, s, kind, cons, 0.0, scale))
    if any(p.scale != 1.0 for p in params if p.kind != "signal"):
        notes.append("constraint weights other than 1 are prior scales 1/sqrt(w)")
    groups = []
    for g in t.groups:
        if re.match(SAFE_NAME, g):
            groups.append(g)
        else:
            notes.append(f"group '{g}' left out: not a valid archive group name")
    return {"n_data": n_data, "parameters": params, "groups": groups, "notes": notes}


def _writer(
    t: RabbitTensor,
    plan: dict[str, Any],
    title: str | None,
    synthetic: bool,
    citation: Citation | dict | None,
) -> ArchiveWriter:
    """An :class:`ArchiveWriter` holding the tensor's model (errors name the tensor)."""
    from .. import __version__

    name = t.path.name
    n = plan["n_data"]
    notes = "; ".join(plan["notes"])
    try:
        w = ArchiveWriter(
            title=title or f"{name} (imported from a rabbit input tensor)",
            synthetic=synthetic,
            citation=citation or {"title": title or name},
            provenance=Provenance(
                producer="wmass_archive.importers.rabbit",
                producer_version=__version__,
                inputs=[
                    InputRecord(
                        name="rabbit input tensor", location=str(t.path), sha256=file_sha256(t.path)
                    )
                ],
                notes=notes,
            ),
            description=(
                f"rabbit input tensor {name}: one flat channel (rabbit keeps its channels only "
                "in a pickle, never read); signal strengths are rate POIs mu = 1 + theta."
                + (f" Notes: {notes}." if notes else "")
            ),
            mc_stat="gamma",
        )
        for g in plan["groups"]:
            w.add_group(g, description=f"rabbit group '{g}'")
        w.add_channel(
            CHANNEL,
            t.data_obs,
            axes=[Axis.regular(n, 0.0, float(n), name="obs", label="rabbit bin")],
            label="all unmasked bins of the tensor",
        )
        for p in t.procs:
            w.add_process(p, kind="signal" if p in t.signals else "background")
        for j, p in enumerate(t.procs):
            w.set_yield(p, CHANNEL, t.norm[:n, j], sumw2=t.sumw2[:n, j])
        member = {s: [g for g in plan["groups"] if s in t.groups[g]] for s in t.systs}
        for pm in plan["parameters"]:
            label = f"rabbit {pm.rabbit_name} = {pm.offset:g} + {pm.scale:.10g} * theta"
            if pm.kind == "signal":
                w.add_poi(
                    name=pm.name,
                    kind="rate",
                    central=1.0,
                    scale=1.0,
                    acts_on=[{"process": pm.rabbit_name}],
                    unit="",
                    label=f"rabbit signal strength of '{pm.rabbit_name}'",
                )
            else:
                w.add_nuisance(
                    pm.name,
                    groups=member[pm.rabbit_name],
                    constraint=pm.constraint,
                    prior_scale=pm.scale,
                    label=label + (" (nuisance of interest)" if pm.kind == "noi" else ""),
                )
        entries = _entries_by_syst(t.logk_avg.tocoo(), t.logk_halfdiff.tocoo())
        for k, (slot, a, h) in entries.items():
            b_all, pr_all = slot // t.n_proc, slot % t.n_proc
            for j, p in enumerate(t.procs):
                sel = (pr_all == j) & (b_all < n)
                if np.any(sel):
                    w.add_variation(
                        t.systs[k],
                        p,
                        CHANNEL,
                        logk_up=(a + h)[sel],
                        logk_down=(h - a)[sel],
                        bins=b_all[sel],
                    )
    except RabbitImportError:
        raise
    except ArchiveError as exc:
        raise RabbitImportError(f"{name}: {exc}") from None
    return w
