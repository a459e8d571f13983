"""Writing rabbit's input tensor (the layout of ``rabbit/tensorwriter.py`` and
``rabbit/h5pyutils.py``, rabbit-fit 0.2.x): flat chunked datasets with ``original_shape``, sparse
tensors in canonical order, the ``meta`` pickle group rabbit reads its channels from."""

from __future__ import annotations

import json
import os
import pickle
import secrets
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..._version import __version__
from .._common import EXPORT_ATTR, EXPORT_VERSION, ExportError, UnfoldedModel

_CHUNK_BYTES = 4 * 1024**2
_PICKLE_PROTOCOL_ATTR = "narf_h5py_pickle_protocol_version"  # wums.ioutils, version 1


def write_atomic(t: UnfoldedModel, out: Path, sparse: bool, archive_name: str) -> tuple[int, int]:
    """Write to a temporary file in the output's folder, then rename it into place."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with h5py.File(tmp, "w") as f:
            sizes = _write_tensor(f, t, sparse, archive_name)
        os.replace(tmp, out)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from exc
        raise
    return sizes


def _flat(group: h5py.Group, name: str, arr: np.ndarray) -> None:
    """Rabbit's layout of an array: a flat, chunked, compressed dataset with the attribute
    ``original_shape`` (all-zero chunks are left unwritten: they read as zeros)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    if flat.size == 0:
        ds = group.create_dataset(name, shape=(0,), dtype=flat.dtype)
    else:
        chunk = int(min(flat.size, max(1, _CHUNK_BYTES // flat.dtype.itemsize)))
        ds = group.create_dataset(
            name, shape=flat.shape, dtype=flat.dtype, chunks=(chunk,), compression="gzip"
        )
        for i in range(0, flat.size, chunk):
            part = flat[i : i + chunk]
            if np.count_nonzero(part):
                ds[i : i + chunk] = part
    ds.attrs["original_shape"] = np.array(arr.shape, dtype=np.int64)


def _strings(f: h5py.File, name: str, items: list[str]) -> None:
    kw: dict[str, Any] = {"compression": "gzip"} if items else {}
    ds = f.create_dataset(name, shape=(len(items),), dtype=h5py.string_dtype(), **kw)
    if items:
        ds[...] = items


def _write_tensor(
    f: h5py.File, t: UnfoldedModel, sparse: bool, archive_name: str
) -> tuple[int, int]:
    """All datasets of rabbit's input; returns (non-zero yields, logk entries)."""
    n_bins, n_proc = t.norm.shape
    n_syst = len(t.systs)
    _strings(f, "hprocs", t.procs)
    _strings(f, "hsignals", t.signals)
    _strings(f, "hsysts", t.systs)
    _strings(f, "hsystsnoconstraint", t.systs[: t.n_noconstraint])
    _strings(f, "hsystgroups", list(t.groups))
    gi = f.create_dataset("hsystgroupidxs", shape=(len(t.groups),), dtype=h5py.vlen_dtype("i4"))
    for i, idx in enumerate(t.groups.values()):
        gi[i] = np.asarray(idx, dtype=np.int32)
    f.create_dataset("hnoiidxs", data=np.asarray(t.noi, dtype=np.int32).reshape(-1))
    _strings(f, "hpseudodatanames", [])
    cw = np.ones(n_syst)
    cw[: t.n_noconstraint] = 0.0
    _flat(f, "hconstraintweights", cw)
    _flat(f, "hdata_obs", t.data)
    _flat(f, "hpseudodata", np.zeros((n_bins, 0)))
    _flat(f, "hsumw", t.sumw)
    _flat(f, "hsumw2", t.sumw2)
    sym = t.symmetric
    nz_bin, nz_proc = np.nonzero(t.norm)  # row-major: rabbit's canonical order
    if sparse:
        pos = np.full((n_bins, n_proc), -1, dtype=np.int64)
        pos[nz_bin, nz_proc] = np.arange(nz_bin.size)
        row = pos[t.e_bin, t.e_proc]
        rows = [row] if sym else [row, row]
        cols = [t.e_syst] if sym else [t.e_syst, n_syst + t.e_syst]
        vals = [t.e_avg] if sym else [t.e_avg, t.e_hd]
        row, col, val = (np.concatenate(x) for x in (rows, cols, vals))
        keep = val != 0
        row, col, val = row[keep], col[keep], val[keep]
        order = np.lexsort((col, row))
        g = f.create_group("hnorm_sparse")
        _flat(g, "indices", np.stack([nz_bin, nz_proc], axis=1).astype(np.int64))
        _flat(g, "values", t.norm[nz_bin, nz_proc])
        g.attrs["dense_shape"] = np.array([n_bins, n_proc], dtype=np.int64)
        g = f.create_group("hlogk_sparse")
        _flat(g, "indices", np.stack([row[order], col[order]], axis=1).astype(np.int64))
        _flat(g, "values", val[order])
        width = n_syst if sym else 2 * n_syst
        g.attrs["dense_shape"] = np.array([nz_bin.size, width], dtype=np.int64)
        nnz_logk = int(val.size)
    else:
        _flat(f, "hnorm", t.norm)
        shape = (n_bins, n_proc, n_syst) if sym else (n_bins, n_proc, 2, n_syst)
        logk = np.zeros(shape)
        if sym:
            logk[t.e_bin, t.e_proc, t.e_syst] = t.e_avg
        else:
            logk[t.e_bin, t.e_proc, 0, t.e_syst] = t.e_avg
            logk[t.e_bin, t.e_proc, 1, t.e_syst] = t.e_hd
        _flat(f, "hlogk", logk)
        nnz_logk = int(np.count_nonzero(logk))
        del logk
    _write_meta(f, t, sym, archive_name)
    f.attrs[EXPORT_ATTR] = json.dumps(_info(t, archive_name, sparse))
    return int(nz_bin.size), nnz_logk


def _info(t: UnfoldedModel, archive_name: str, sparse: bool) -> dict[str, Any]:
    """The JSON description stored in the root attribute ``wmass_archive_export``."""
    return dict(
        format="wmass-archive rabbit export",
        version=EXPORT_VERSION,
        producer=f"wmass_archive {__version__}",
        archive=archive_name,
        title=t.title,
        synthetic=t.synthetic,
        pdf_set=t.pdf_set,
        sparse=sparse,
        symmetric_tensor=t.symmetric,
        channels=t.channels,
        parameters=[asdict(p) for p in t.parameters],
        approximations=t.approximations,
        rabbit_fit_options=["-t", "0", "--unblind"] + (["--allowNegativePOI"] if t.signals else []),
    )


def _write_meta(f: h5py.File, t: UnfoldedModel, symmetric: bool, archive_name: str) -> None:
    """Rabbit's ``meta`` group (wums.ioutils' h5py pickle, protocol version 1: the pickle
    stream in the uint8 dataset ``pickle_data``): channels with their ``hist`` axes,
    ``symmetric_tensor`` and ``systematic_type``. Written only; this package never loads it."""
    channel_info = {
        c["name"]: {"axes": [_hist_axis(a) for a in c["axes"]], "masked": False, "flow": False}
        for c in t.channels
    }
    meta = {
        "meta_info": {"producer": f"wmass_archive {__version__}", "archive": archive_name},
        "channel_info": channel_info,
        "symmetric_tensor": symmetric,
        "systematic_type": "log_normal",
    }
    g = f.create_group("meta")
    g.attrs[_PICKLE_PROTOCOL_ATTR] = np.int64(1)
    payload = np.frombuffer(pickle.dumps(meta, protocol=5), dtype=np.uint8)
    g.create_dataset("pickle_data", data=payload, maxshape=(None,), chunks=True)


def _hist_axis(ax: dict[str, Any]) -> Any:
    """A ``hist`` axis without flow bins from an axis's JSON (rabbit counts ``axis.size``)."""
    from ...archive.axes import Axis

    return Axis.model_validate(ax).to_hist()
