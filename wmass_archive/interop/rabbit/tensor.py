"""An independent reader of rabbit input tensors, with h5py only: the pickled ``meta`` group is
never loaded (the tensor's symmetry is read from the shapes, the channels from the
``wmass_archive_export`` JSON attribute when the file was written by :func:`export_rabbit`).

:class:`RabbitTensor` evaluates rabbit's expected yields (the formula of
:mod:`wmass_archive.interop.rabbit.exporter`) and maps our model's parameter values to rabbit's;
:func:`tensor_to_archive` writes an exported tensor back as a plain archive (every process a
log-normal template), so that our fitter can fit exactly the model rabbit fits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sps

from ..._version import __version__
from ...archive import POI, ArchiveWriter, Axis, WriteReport
from .._common import EXPORT_ATTR, ExportError

REQUIRED = (
    "hprocs",
    "hsignals",
    "hsysts",
    "hsystsnoconstraint",
    "hsystgroups",
    "hsystgroupidxs",
    "hconstraintweights",
    "hdata_obs",
    "hsumw",
    "hsumw2",
)


def _alpha(t: np.ndarray) -> np.ndarray:
    """rabbit's smooth step: clip(h(2t), -1, 1), h(x) = x (3x^4 - 10x^2 + 15) / 8."""
    x = 2.0 * t
    return np.clip(0.125 * x * (x * x * (3.0 * x * x - 10.0) + 15.0), -1.0, 1.0)


@dataclass
class RabbitTensor:
    """The arrays of a rabbit input tensor. ``norm``, ``sumw``, ``sumw2``: (n_bins, n_proc);
    ``logk_avg``/``logk_halfdiff``: CSR (n_bins * n_proc, n_syst), row = bin * n_proc + proc;
    ``export_info``: the ``wmass_archive_export`` JSON, or None for a foreign tensor."""

    path: Path
    procs: list[str]
    signals: list[str]
    systs: list[str]
    systs_noconstraint: list[str]
    groups: dict[str, list[str]]
    noi: list[str]
    constraint_weights: np.ndarray
    data_obs: np.ndarray
    sumw: np.ndarray
    sumw2: np.ndarray
    norm: np.ndarray
    logk_avg: sps.csr_matrix
    logk_halfdiff: sps.csr_matrix
    symmetric: bool
    sparse: bool
    export_info: dict[str, Any] | None = None

    @property
    def n_bins(self) -> int:
        return int(self.norm.shape[0])

    @property
    def n_proc(self) -> int:
        return int(self.norm.shape[1])

    @property
    def n_syst(self) -> int:
        return len(self.systs)

    def expected_by_process(self, theta: Any = None, mu: Any = None) -> np.ndarray:
        """rabbit's expected yields (n_bins, n_proc) for nuisances ``theta`` (n_syst,) and signal
        strengths ``mu`` (n_signals,) (defaults 0 and 1)."""
        t = np.zeros(self.n_syst) if theta is None else np.asarray(theta, dtype=np.float64)
        m = np.ones(len(self.signals)) if mu is None else np.asarray(mu, dtype=np.float64)
        if t.shape != (self.n_syst,) or m.shape != (len(self.signals),):
            raise ExportError(
                f"theta must have shape ({self.n_syst},) and mu ({len(self.signals)},), "
                f"got {t.shape} and {m.shape}"
            )
        ell = self.logk_avg @ t + self.logk_halfdiff @ (t * _alpha(t))
        nu = self.norm * np.exp(ell).reshape(self.n_bins, self.n_proc)
        rate = np.ones(self.n_proc)
        rate[: m.size] = m
        return nu * rate[None, :]

    def expected(self, theta: Any = None, mu: Any = None) -> np.ndarray:
        """Expected yield per bin (n_bins,), summed over processes."""
        return self.expected_by_process(theta, mu).sum(axis=1)

    def parameters_from(self, names: Sequence[str], theta: Any) -> tuple[np.ndarray, np.ndarray]:
        """rabbit's (theta (n_syst,), mu (n_signals,)) for our model's parameter ``names`` at
        ``theta``: a mass POI is its NOI (same theta), a rate POI exported as a signal has
        mu = 1 + theta * scale / central, nuisances keep their names and values."""
        values = np.asarray(theta, dtype=np.float64).reshape(-1)
        if values.size != len(names):
            raise ExportError(f"{len(names)} names but {values.size} values")
        roles = {p["name"]: p for p in (self.export_info or {}).get("parameters", [])}
        sidx = {n: i for i, n in enumerate(self.systs)}
        t, mu = np.zeros(self.n_syst), np.ones(len(self.signals))
        for name, v in zip(names, values, strict=True):
            p = roles.get(name)
            if p is not None and p["role"] == "signal":
                mu[self.signals.index(p["rabbit_name"])] = 1.0 + v * p["scale"] / p["central"]
                continue
            key = p["rabbit_name"] if p is not None else name
            if key not in sidx:
                raise ExportError(f"parameter '{name}' has no counterpart in the rabbit tensor")
            t[sidx[key]] = v
        return t, mu


def read_rabbit_tensor(path: str | os.PathLike) -> RabbitTensor:
    """Read a rabbit input tensor (dense ``hnorm``/``hlogk`` or sparse ``hnorm_sparse``/
    ``hlogk_sparse``) without loading any pickle."""
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"no rabbit tensor at {p}")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise ExportError(f"{p.name} is not an HDF5 file ({exc})") from None
    with f:
        missing = [k for k in REQUIRED if k not in f]
        sparse = "hnorm_sparse" in f
        if not sparse and "hnorm" not in f:
            missing.append("hnorm or hnorm_sparse")
        if missing:
            raise ExportError(f"{p.name} is not a rabbit tensor: missing {', '.join(missing)}")
        procs, signals, systs = (_strings(f[k]) for k in ("hprocs", "hsignals", "hsysts"))
        noc = _strings(f["hsystsnoconstraint"])
        gnames = _strings(f["hsystgroups"])
        gidx = [np.asarray(x, dtype=np.int64) for x in f["hsystgroupidxs"][...]]
        noi_key = "hnoiidxs" if "hnoiidxs" in f else "hnoigroupidxs"  # older rabbit
        noi_idx = f[noi_key][...] if noi_key in f else np.zeros(0, np.int64)
        data = _flat(f["hdata_obs"])
        n_bins, n_proc, n_syst = _n_rows(f, sparse, data.size), len(procs), len(systs)
        sumw, sumw2 = _flat(f["hsumw"]), _flat(f["hsumw2"])
        cw = _flat(f["hconstraintweights"])
        if sparse:
            norm, avg, hd, sym = _read_sparse(f, n_bins, n_proc, n_syst)
        else:
            norm, avg, hd, sym = _read_dense(f, n_bins, n_proc, n_syst)
        raw = f.attrs.get(EXPORT_ATTR)
        info = json.loads(raw) if raw is not None else None
    for name, a in (("hsumw", sumw), ("hsumw2", sumw2), ("hnorm", norm)):
        if a.shape != (n_bins, n_proc):
            raise ExportError(f"{p.name}: {name} has shape {a.shape}, expected {(n_bins, n_proc)}")
    if cw.shape != (n_syst,) or any(i.size and i.max() >= n_syst for i in [*gidx, noi_idx]):
        raise ExportError(f"{p.name}: constraint weights or indices do not match {n_syst} systs")
    if procs[: len(signals)] != signals:
        raise ExportError(f"{p.name}: the signals are not the first processes")
    return RabbitTensor(
        path=p,
        procs=procs,
        signals=signals,
        systs=systs,
        systs_noconstraint=noc,
        groups={g: [systs[i] for i in idx] for g, idx in zip(gnames, gidx, strict=True)},
        noi=[systs[int(i)] for i in noi_idx],
        constraint_weights=cw,
        data_obs=data,
        sumw=sumw,
        sumw2=sumw2,
        norm=norm,
        logk_avg=avg,
        logk_halfdiff=hd,
        symmetric=sym,
        sparse=sparse,
        export_info=info,
    )


def _strings(ds: h5py.Dataset) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in ds[...]]


def _flat(ds: h5py.Dataset) -> np.ndarray:
    """A dataset in rabbit's layout, reshaped to its ``original_shape``."""
    a = ds[...]
    if "original_shape" in ds.attrs:
        a = a.reshape(tuple(int(x) for x in ds.attrs["original_shape"]))
    return a


def _n_rows(f: h5py.File, sparse: bool, n_data: int) -> int:
    """Rows of hnorm: the data bins, then the bins of rabbit's masked channels (no data)."""
    if sparse:
        return max(n_data, int(f["hnorm_sparse"].attrs["dense_shape"][0]))
    shape = f["hnorm"].attrs.get("original_shape", f["hnorm"].shape)
    return max(n_data, int(shape[0])) if len(shape) == 2 else n_data


def _read_sparse(f: h5py.File, n_bins: int, n_proc: int, n_syst: int) -> tuple:
    g, h = f["hnorm_sparse"], f["hlogk_sparse"]
    idx, val = _flat(g["indices"]).reshape(-1, 2), _flat(g["values"])
    norm = np.zeros((n_bins, n_proc))
    norm[idx[:, 0], idx[:, 1]] = val
    slot = idx[:, 0] * n_proc + idx[:, 1]
    li, lv = _flat(h["indices"]).reshape(-1, 2), _flat(h["values"])
    width = int(h.attrs["dense_shape"][1])
    if width not in (n_syst, 2 * n_syst) or (li.size and li[:, 0].max() >= slot.size):
        raise ExportError(f"hlogk_sparse has dense shape {tuple(h.attrs['dense_shape'])}")
    sym = width == n_syst
    row, col = slot[li[:, 0]], li[:, 1]
    shape = (n_bins * n_proc, n_syst)
    is_hd = col >= n_syst
    avg = sps.csr_matrix((lv[~is_hd], (row[~is_hd], col[~is_hd])), shape=shape)
    hd = sps.csr_matrix((lv[is_hd], (row[is_hd], col[is_hd] - n_syst)), shape=shape)
    return norm, avg, hd, sym


def _read_dense(f: h5py.File, n_bins: int, n_proc: int, n_syst: int) -> tuple:
    norm = _flat(f["hnorm"])
    logk = _flat(f["hlogk"])
    if logk.shape == (n_bins, n_proc, n_syst):
        avg, hd, sym = logk.reshape(-1, n_syst), np.zeros((n_bins * n_proc, n_syst)), True
    elif logk.shape == (n_bins, n_proc, 2, n_syst):
        avg, hd, sym = logk[:, :, 0].reshape(-1, n_syst), logk[:, :, 1].reshape(-1, n_syst), False
    else:
        raise ExportError(f"hlogk has shape {logk.shape}")
    return norm, sps.csr_matrix(avg), sps.csr_matrix(hd), sym


# --------------------------------------------------------------------------- back to an archive
def tensor_to_archive(
    tensor: RabbitTensor | str | os.PathLike, out_path: str | os.PathLike
) -> WriteReport:
    """Write a tensor made by :func:`export_rabbit` as a plain archive: every process a
    log-normal template with rabbit's norm and logk, the mass NOI a mass POI acting through logk
    entries, signal strengths rate POIs, the other parameters nuisances (PDF ones included, in
    their groups). Fitting it with our fitter fits rabbit's model; only the Barlow-Beeston
    ``k = (sum_p N)^2 / sum_p sumw2`` then takes N from ``hnorm`` instead of ``hsumw`` (equal to
    1e-6 with the archive's nominal PDF set)."""
    t = tensor if isinstance(tensor, RabbitTensor) else read_rabbit_tensor(tensor)
    info = t.export_info
    if info is None:
        raise ExportError(f"{t.path.name} was not written by wmass-archive export rabbit")
    w = ArchiveWriter(
        title=f"log-normal (rabbit) model of {info['archive']}"[:300],
        synthetic=bool(info.get("synthetic", True)),
        citation={"title": str(info.get("title") or info["archive"])},
        provenance={
            "producer": "wmass_archive.interop.rabbit.tensor_to_archive",
            "producer_version": __version__,
            "notes": f"from {t.path.name}; approximations: " + "; ".join(info["approximations"]),
        },
        description="every process a log-normal template: the model rabbit fits",
    )
    pars: Mapping[str, dict] = {p["rabbit_name"]: p for p in info["parameters"]}
    avg, hd = t.logk_avg.tocoo(), t.logk_halfdiff.tocoo()
    e = _entries_by_syst(avg, hd)
    for g in t.groups:
        w.add_group(g)
    for p in t.procs:
        w.add_process(p, kind="signal" if p in t.signals else "background")
    for ch in info["channels"]:
        off, nb = ch["offset"], ch["n_bins"]
        w.add_channel(
            ch["name"],
            t.data_obs[off : off + nb],
            axes=[Axis.model_validate(a) for a in ch["axes"]],
        )
        for p in ch["processes"]:
            j = t.procs.index(p)
            signal = p in pars and pars[p]["role"] == "signal"
            central = pars[p]["central"] if signal else 1.0
            w.set_yield(
                p, ch["name"], t.norm[off : off + nb, j] / central, t.sumw2[off : off + nb, j]
            )
    member = {s: [g for g, m in t.groups.items() if s in m] for s in t.systs}
    for k, s in enumerate(t.systs):
        p = pars.get(s)
        if p is not None and p["role"] == "noi":
            procs = sorted({t.procs[j] for j in np.unique(e[k][0] % t.n_proc)}) if k in e else []
            w.add_poi(
                POI(
                    name=p["name"],
                    kind="mass",
                    unit=p["unit"],
                    central=p["central"],
                    scale=p["scale"],
                    blinding_offset=p["blinding_offset"],
                    acts_on=[{"process": q} for q in (procs or t.procs[:1])],
                )
            )
        else:
            cons = "none" if t.constraint_weights[k] == 0 else "gaussian"
            w.add_nuisance(s, groups=member[s], constraint=cons)
    for p in info["parameters"]:
        if p["role"] == "signal":
            w.add_poi(
                POI(
                    name=p["name"],
                    kind="rate",
                    unit=p["unit"],
                    central=p["central"],
                    scale=p["scale"],
                    blinding_offset=p["blinding_offset"],
                    acts_on=[{"process": p["rabbit_name"]}],
                )
            )
    for k, (slot, a, h) in e.items():
        name = pars[t.systs[k]]["name"] if t.systs[k] in pars else t.systs[k]
        b_all, pr_all = slot // t.n_proc, slot % t.n_proc
        for ch in info["channels"]:
            off, nb = ch["offset"], ch["n_bins"]
            for q in ch["processes"]:
                sel = (pr_all == t.procs.index(q)) & (b_all >= off) & (b_all < off + nb)
                if np.any(sel):
                    w.add_variation(
                        name,
                        q,
                        ch["name"],
                        logk_up=(a + h)[sel],
                        logk_down=(h - a)[sel],
                        bins=b_all[sel] - off,
                    )
    return w.write(out_path)


def _entries_by_syst(avg: sps.coo_matrix, hd: sps.coo_matrix) -> dict[int, tuple]:
    """{syst: (slots, avg, halfdiff)} with the union of the slots of both matrices."""
    slot = np.concatenate([avg.row, hd.row]).astype(np.int64)
    col = np.concatenate([avg.col, hd.col]).astype(np.int64)
    va = np.concatenate([avg.data, np.zeros(hd.nnz)])
    vh = np.concatenate([np.zeros(avg.nnz), hd.data])
    key = col * (int(slot.max(initial=0)) + 1) + slot
    uniq, inv = np.unique(key, return_inverse=True)
    a, h = np.zeros(uniq.size), np.zeros(uniq.size)
    np.add.at(a, inv, va)
    np.add.at(h, inv, vh)
    cols = np.zeros(uniq.size, dtype=np.int64)
    slots = np.zeros(uniq.size, dtype=np.int64)
    cols[inv], slots[inv] = col, slot
    out: dict[int, tuple] = {}
    bounds = np.flatnonzero(np.diff(cols)) + 1
    for idx in np.split(np.arange(uniq.size), bounds):
        if idx.size:
            out[int(cols[idx[0]])] = (slots[idx], a[idx], h[idx])
    return out
