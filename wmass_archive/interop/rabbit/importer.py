"""Import a rabbit input tensor (CMS's TensorFlow fitter, PyPI ``rabbit-fit``) as an archive.

    >>> from wmass_archive.interop.rabbit import import_rabbit
    >>> report = import_rabbit("rabbit_input.hdf5", "imported.h5")
    >>> print(report.summary())

The tensor is read with h5py only (:func:`wmass_archive.interop.rabbit.read_rabbit_tensor`); the
pickled ``meta`` group is never loaded. What rabbit keeps only in that pickle is therefore
unknown: the channels (the unmasked bins become one flat channel ``ch0`` with an axis ``obs``,
as rabbit itself names them without the pickle; bins of masked channels, which do not enter
the likelihood, are left out) and the systematic type (``log_normal``, TensorWriter's default,
is assumed). Tensors written by ``wmass-archive export rabbit`` carry their channels in a JSON
attribute and are written back exactly (:func:`~wmass_archive.interop.rabbit.tensor_to_archive`).

The model is rabbit's: ``nu[b, p] = norm[b, p] * mu_p * exp(sum_k theta_k (logkavg + alpha(theta_k)
logkhalfdiff))``, the format's log-normal (docs/format.md section 7.3); signals are rate POIs
(mu = 1 + theta), systematics are gaussian nuisances (constraint weight w: prior scale
1/sqrt(w)) or unconstrained ones (``hsystsnoconstraint``), groups are rabbit's.

Nuisances of interest (``hnoiidxs``, TensorWriter's ``noi=True``) that are unconstrained, as
CMS books the W-mass shift, become POIs of kind ``parameter`` (format 1.2): they keep their
log-normal variations and are reported as POIs (``noi_pois=False`` keeps them nuisances). A
NOI named ``massShift<X><N>MeV`` (e.g. ``massShiftW100MeV``, the +-100 MeV variation) gets the
physical scale N MeV per unit theta (unit MeV, central 0): its physical value is the mass shift
in MeV. A constrained NOI stays a gaussian nuisance (the format's POIs are unconstrained).

Barlow-Beeston-lite is rabbit's default (``binByBinStat``, lite mode, gamma constraint): one
beta per bin multiplying the bin's total yield, ``k = (sum_p hsumw)^2 / sum_p hsumw2``, beta
fixed at 1 where that variance or sum is 0 (rabbit's ``betamask``). The archive's fitter takes
``k = (sum_p nominal)^2 / sum_p sumw2`` with nominal = ``hnorm``: where ``hsumw`` differs from
``hnorm`` (never in TensorWriter's tensors) the stored sumw2 is rescaled so that both k agree.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...archive import ArchiveWriter, Axis
from ...archive.checksums import file_sha256
from ...archive.models import Citation, InputRecord, Provenance
from ...archive.writer import WriteReport
from ...errors import ArchiveError
from .._common import ExportError, fitted_thetas
from .tensor import (
    RabbitTensor,
    _entries_by_syst,
    read_rabbit_tensor,
    tensor_to_archive,
)

__all__ = ["RabbitImportError", "RabbitImportReport", "RabbitParameterMap", "import_rabbit"]

SAFE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,199}$"
PARAMETER_NAME = r"^[^\s/]{1,300}$"
CHANNEL = "ch0"
#: a NOI named like the W-mass analysis' mass shift: massShift<boson><N>MeV, N MeV per unit theta
MASS_SHIFT = re.compile(r"^massShift([A-Za-z]*)([1-9][0-9]*)MeV$")


class RabbitImportError(ArchiveError):
    """A rabbit tensor cannot be imported."""


@dataclass(frozen=True)
class RabbitParameterMap:
    """An archive parameter and rabbit's: ``rabbit value = offset + scale * theta``.
    ``kind``: rabbit's role, "signal" (a signal strength), "noi" (a nuisance of interest),
    "nuisance"; ``archive``: the archive's, "rate" (a rate POI), "parameter" (a POI of kind
    parameter), "mass" (the mass POI of an exported tensor) or "nuisance"; ``unit``/
    ``physical_scale``: of a POI (physical value = ``physical_scale * theta`` for a NOI)."""

    name: str
    rabbit_name: str
    kind: str
    constraint: str
    offset: float = 0.0
    scale: float = 1.0
    archive: str = "nuisance"
    unit: str = ""
    physical_scale: float = 1.0

    @property
    def is_poi(self) -> bool:
        """Whether the archive holds the parameter as a POI."""
        return self.archive != "nuisance"

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
        n_poi = sum(p.is_poi for p in self.parameters)
        lines = [
            f"imported {self.tensor} into {self.path}"
            + (" (a tensor of wmass-archive export rabbit)" if self.exported else ""),
            f"  {self.n_bins} bins"
            + (f" ({self.n_masked} masked bins left out)" if self.n_masked else "")
            + f", {len(self.processes)} processes ({len(self.signals)} signals), "
            f"{len(self.parameters)} parameters ({n_poi} POIs: {kinds['signal']} signal "
            f"strengths, {kinds['noi']} nuisances of interest), "
            f"{'sparse' if self.sparse else 'dense'} "
            f"{'symmetric' if self.symmetric else 'asymmetric'} tensor",
        ]
        for p in (p for p in self.parameters if p.is_poi):
            unit = f", {p.physical_scale:g} {p.unit} per unit theta" if p.unit else ""
            lines.append(f"  POI {p.name} ({p.archive}{unit})")
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
    noi_pois: bool = True,
) -> RabbitImportReport:
    """Write the archive of the rabbit input tensor ``tensor`` (HDF5, dense or sparse).

    ``title``/``citation``: of the archive (default from the file name); ``synthetic``:
    whether the tensor's numbers are not real data; ``overwrite``: replace ``output``;
    ``noi_pois``: unconstrained nuisances of interest become POIs of kind parameter (False:
    nuisances, as before format 1.2; ``build_model(poi=NAME)`` still makes one the POI)."""
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
    plan = _plan(t, noi_pois)
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
                    p["name"],
                    p["rabbit_name"],
                    "signal",
                    "none",
                    1.0,
                    p["scale"] / p["central"],
                    archive="rate",
                    unit=p.get("unit", ""),
                    physical_scale=p["scale"],
                )
            )
        else:
            params.append(
                RabbitParameterMap(
                    p["name"],
                    p["rabbit_name"],
                    "noi",
                    "none",
                    archive="mass",
                    unit=p.get("unit", ""),
                    physical_scale=p["scale"],
                )
            )
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


def _plan(t: RabbitTensor, noi_pois: bool = True) -> dict[str, Any]:
    """The archive's content for a foreign tensor: parameters, groups, sumw2, notes."""
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
    notes += _not_imported(t.path)
    params = [
        RabbitParameterMap(s, s, "signal", "none", 1.0, 1.0, archive="rate") for s in t.signals
    ]
    noc = set(t.systs_noconstraint)
    for k, s in enumerate(t.systs):
        w = float(t.constraint_weights[k])
        if not (math.isfinite(w) and w >= 0):
            raise RabbitImportError(f"{name}: constraint weight {w} of '{s}'")
        cons = "none" if (w == 0 or s in noc) else "gaussian"
        scale = 1.0 if cons == "none" else 1.0 / math.sqrt(w)
        if s not in t.noi:
            params.append(RabbitParameterMap(s, s, "nuisance", cons, 0.0, scale))
        elif cons == "none" and noi_pois:
            m = MASS_SHIFT.match(s)
            unit, phys = ("MeV", float(m.group(2))) if m else ("", 1.0)
            params.append(
                RabbitParameterMap(
                    s, s, "noi", cons, archive="parameter", unit=unit, physical_scale=phys
                )
            )
        else:
            params.append(RabbitParameterMap(s, s, "noi", cons, 0.0, scale))
            if cons != "none":
                notes.append(
                    f"nuisance of interest '{s}' is constrained: kept a gaussian nuisance (POIs "
                    f"are unconstrained; build_model(poi='{s}') makes it the POI)"
                )
    if any(p.scale != 1.0 for p in params if p.kind != "signal"):
        notes.append("constraint weights other than 1 are prior scales 1/sqrt(w)")
    pois = {p.name for p in params if p.archive == "parameter"}
    groups = []
    for g, members in t.groups.items():
        if not re.match(SAFE_NAME, g):
            notes.append(f"group '{g}' left out: not a valid archive group name")
        elif members and set(members) <= pois:
            notes.append(f"group '{g}' left out: it holds only POIs ({', '.join(members)})")
        else:
            groups.append(g)
    sumw2, bb_notes = _bb_sumw2(t, n_data)
    notes += bb_notes
    return {
        "n_data": n_data,
        "parameters": params,
        "groups": groups,
        "notes": notes,
        "sumw2": sumw2,
    }


def _not_imported(path: Path) -> list[str]:
    """Notes on the datasets of the tensor that the archive does not hold."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:  # plain datasets only; "meta" is never opened
        if "hdata_cov_inv" in f:
            out.append(
                "the tensor's data covariance (hdata_cov_inv, for rabbit's --covarianceFit) is "
                "not imported: the archive holds the Poisson likelihood"
            )
        if f.get("hpseudodata") is not None and f["hpseudodata"].size:
            out.append("the tensor's pseudodata are not imported")
        for key, what in (
            ("hdata_var", "data variances (rabbit's chi2 fits)"),
            ("hbetavariations", "Barlow-Beeston beta variations (rabbit's full mode)"),
            ("external_terms", "external likelihood terms"),
        ):
            if key in f:
                out.append(f"the tensor's {what} ({key}) are not imported")
    return out


def _bb_sumw2(t: RabbitTensor, n_data: int) -> tuple[np.ndarray, list[str]]:
    """The archive's sumw2 (n_data, n_proc) giving rabbit's Barlow-Beeston-lite k per bin.

    rabbit (``binByBinStat``, lite): ``k = (sum_p hsumw)^2 / sum_p hsumw2``, beta fixed where
    ``sum_p hsumw2 == 0`` or ``sum_p hsumw == 0``. The archive's fitter: ``k = (sum_p nominal)^2
    / sum_p sumw2`` with nominal = ``hnorm``, beta fixed where either sum is 0. TensorWriter
    writes ``hsumw`` = ``hnorm``: the sumw2 are copied. Otherwise each bin's sumw2 are
    multiplied by ``(sum hnorm / sum hsumw)^2`` (and set to 0 where rabbit fixes beta)."""
    norm, sumw, sumw2 = t.norm[:n_data], t.sumw[:n_data], t.sumw2[:n_data]
    notes: list[str] = []
    if np.array_equal(norm, sumw):
        out = sumw2.copy()
    else:
        n_tot, w_tot = norm.sum(axis=1), sumw.sum(axis=1)
        on = (w_tot != 0) & (n_tot > 0)
        factor = np.where(on, (n_tot / np.where(on, w_tot, 1.0)) ** 2, 0.0)
        out = sumw2 * factor[:, None]
        changed = int(np.count_nonzero(~np.isclose(factor, 1.0, rtol=1e-12, atol=0.0)))
        notes.append(
            f"hsumw differs from hnorm in {int(np.sum(np.any(norm != sumw, axis=1)))} bins: "
            f"sumw2 rescaled in {changed} bins so that the Barlow-Beeston-lite k is rabbit's "
            "(sum hsumw)^2 / sum hsumw2"
        )
    zero = (sumw2 == 0) & (sumw != 0)
    mixed = int(np.sum(np.any(zero, axis=1) & np.any(sumw2 > 0, axis=1)))
    if mixed:
        notes.append(
            f"{mixed} bins mix processes without MC variance (hsumw2 = 0) with others: beta "
            "scales the bin's total (rabbit 0.2.5); rabbit's development version scales only "
            "the processes with variance there"
        )
    return out, notes


def _writer(
    t: RabbitTensor,
    plan: dict[str, Any],
    title: str | None,
    synthetic: bool,
    citation: Citation | dict | None,
) -> ArchiveWriter:
    """An :class:`ArchiveWriter` holding the tensor's model (errors name the tensor)."""
    from ..._version import __version__

    name = t.path.name
    n = plan["n_data"]
    notes = "; ".join(plan["notes"])
    try:
        w = ArchiveWriter(
            title=title or f"{name} (imported from a rabbit input tensor)",
            synthetic=synthetic,
            citation=citation or {"title": title or name},
            provenance=Provenance(
                producer="wmass_archive.interop.rabbit.importer",
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
            w.set_yield(p, CHANNEL, t.norm[:n, j], sumw2=plan["sumw2"][:, j])
        member = {s: [g for g in plan["groups"] if s in t.groups[g]] for s in t.systs}
        acting = _processes_of(t, n)
        for pm in plan["parameters"]:
            label = f"rabbit {pm.rabbit_name} = {pm.offset:g} + {pm.scale:.10g} * theta"
            if pm.archive == "parameter":
                what = (
                    f"; physical value: the mass shift in MeV, {pm.physical_scale:g} MeV per "
                    "unit theta"
                    if pm.unit == "MeV"
                    else ""
                )
                w.add_poi(
                    name=pm.name,
                    kind="parameter",
                    central=0.0,
                    scale=pm.physical_scale,
                    unit=pm.unit,
                    acts_on=[{"process": q} for q in acting.get(pm.rabbit_name, [])],
                    label=f"rabbit nuisance of interest {pm.rabbit_name} = theta" + what,
                )
            elif pm.kind == "signal":
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


def _processes_of(t: RabbitTensor, n: int) -> dict[str, list[str]]:
    """{systematic: the processes it has logk entries on in the unmasked bins}."""
    pairs = []
    for m in (t.logk_avg.tocoo(), t.logk_halfdiff.tocoo()):
        keep = (m.row // t.n_proc < n) & (m.data != 0)
        pairs.append(m.col[keep].astype(np.int64) * t.n_proc + m.row[keep] % t.n_proc)
    out: dict[str, list[str]] = {}
    for key in np.unique(np.concatenate(pairs)).tolist():  # sorted: by systematic, then process
        out.setdefault(t.systs[key // t.n_proc], []).append(t.procs[key % t.n_proc])
    return out
