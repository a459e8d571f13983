"""Damage for the fuzzer (tests/test_fuzz_archive.py, benchmarks/fuzz_long.py; a helper module,
not a test file; the process that reads the damaged files is in tests/_fuzz_worker.py).

* :func:`make_bases`: small valid archives written with ``ArchiveWriter`` ("demo": a mass POI,
  a dense response, Hessian and replica PDF sets, theory variations; "plain": two channels, a
  rate POI, no theory; "sparse": sparse responses in two channels, a Hessian set), and
  *sentinel* files outside them: ``outside/sentinel.h5`` (a copy of every object of the base
  at the same paths, so that following a link into it would pass every checksum) and raw
  copies of the datasets' bytes (for HDF5 external storage).
* :func:`cases`: a hypothesis strategy of damage, a list of :class:`Op` applied by
  :func:`apply_ops`: bytes flipped, truncated, inserted, overwritten; datasets replaced with
  other shapes, dtypes (big-endian, strings, compound, vlen, references, enum, opaque), values
  and enormous declared sizes; soft, external and hard links, virtual datasets and external
  storage pointing at the sentinels; root attributes; the ``/metadata`` JSON (wrong types,
  huge numbers, deep nesting, enormous sizes, unicode, duplicate keys, broken encodings).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from hypothesis import strategies as st

from wmass_archive import ArchiveWriter, Axis
from wmass_archive.archive import layout
from wmass_archive.archive.checksums import array_sha256, bytes_sha256

#: largest declared dataset (bytes) that the fuzzer fills in *within* the reader's limits
IN_LIMIT_BYTES = 2**26
#: declared sizes beyond the reader's default limit (8 GiB per dataset)
OVER_LIMIT_BYTES = 2**34


# ============================================================================ base archives
@dataclass(frozen=True)
class Base:
    """A valid archive to damage, with what the strategies need to aim at its parts."""

    name: str
    path: Path
    outside: Path  # folder of the sentinel files
    size: int
    datasets: tuple[str, ...]  # manifest paths
    groups: tuple[str, ...]
    regions: tuple[tuple[str, int, int], ...]  # (name, start, stop) byte ranges of the file
    json_paths: tuple[tuple[Any, ...], ...]  # paths into the metadata document


def _plain_writer() -> ArchiveWriter:
    w = ArchiveWriter(
        title="fuzz plain",
        synthetic=True,
        citation={"title": "fuzz"},
        provenance={"producer": "tests/_fuzz.py", "producer_version": "0"},
    )
    w.add_group("exp")
    w.add_poi(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "sig"}])
    w.add_process("sig", kind="signal")
    w.add_process("bkg")
    for c, shape in (("a", (3, 2)), ("b", (5,))):
        ax = [Axis.regular(n, 0.0, 1.0, name=f"x{i}") for i, n in enumerate(shape)]
        nb = int(np.prod(shape))
        sig, bkg = np.linspace(5.0, 20.0, nb), np.full(nb, 30.0)
        w.add_channel(c, np.round(sig + bkg), axes=ax)
        w.set_yield("sig", c, sig, sumw2=0.1 * sig)
        w.set_yield("bkg", c, bkg, sumw2=0.2 * bkg)
    for n in ("lumi", "shape", "stat0"):
        w.add_nuisance(n, groups=["exp"])
    for c in ("a", "b"):
        w.add_variation("lumi", "sig", c, kappa=1.02)
        w.add_variation("lumi", "bkg", c, kappa=(0.97, 1.04))
    w.add_variation("shape", "bkg", "a", logk_up=np.linspace(-0.05, 0.05, 6))
    w.add_variation("stat0", "bkg", "b", logk_up=[0.1], bins=[2])
    return w


def _sparse_writer() -> ArchiveWriter:
    from wmass_archive.archive.sparse import SparseTensor

    w = ArchiveWriter(
        title="fuzz sparse",
        synthetic=True,
        citation={"title": "fuzz"},
        provenance={"producer": "tests/_fuzz.py", "producer_version": "0"},
        luminosity=2.0,
    )
    w.add_group("exp")
    sigma = np.array([3.0, 2.0, 1.5, 1.0])
    w.set_theory([Axis.regular(4, 0.0, 4.0, name="gen")], sigma, nominal_pdf="P")
    members = sigma * np.array([[1.0], [1.03], [0.98]])
    w.add_pdf_set(name="P", lhapdf_name="P_lhapdf", error_type="hessian", members=members)
    w.add_poi(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "sig"}])
    w.add_process("sig", kind="signal", folded=True)
    w.add_process("bkg")
    w.add_nuisance("lumi", groups=["exp"])
    for c, n in (("a", 6), ("b", 4)):
        w.add_channel(c, np.full(n, 40.0), axes=[Axis.regular(n, 0.0, 1.0, name="x")])
        coords = np.array([[0] * n, list(range(n)), [i % 4 for i in range(n)]])
        r = SparseTensor(coords, np.linspace(1.0, 2.0, n), (1, n, 4))
        w.set_response("sig", c, r)
        sig = 2.0 * r.todense()[0] @ sigma
        w.set_yield("sig", c, sig, sumw2=0.05 * sig)
        w.set_yield("bkg", c, np.full(n, 30.0), sumw2=np.full(n, 3.0))
        w.add_nuisance(f"eff_{c}", groups=["exp"])
        w.add_variation(f"eff_{c}", "bkg", c, logk_up=[0.05, -0.02], bins=[0, n - 1])
        w.add_variation("lumi", "bkg", c, kappa=1.025)
    return w


def make_bases(folder: Path) -> list[Base]:
    """Write the base archives and their sentinel files under ``folder``."""
    from wmass_archive.producers.demo import DemoConfig, build_demo_archive

    out = []
    for name in ("demo", "plain", "sparse"):
        d = folder / name
        (d / "outside").mkdir(parents=True, exist_ok=True)
        path = d / f"{name}.h5"
        if name == "demo":
            cfg = DemoConfig(n_eta=4, n_pt=4, n_y=2, n_ptw=2, n_replicas=6, n_hessian_pairs=1)
            build_demo_archive(path, cfg)
        else:
            (_plain_writer() if name == "plain" else _sparse_writer()).write(path)
        out.append(_describe(name, path, d / "outside"))
    return out


def _describe(name: str, path: Path, outside: Path) -> Base:
    doc = read_doc(path)
    datasets = tuple(doc["datasets"])
    groups: list[str] = []
    regions: list[tuple[str, int, int]] = []
    size = path.stat().st_size
    with h5py.File(path, "r") as f, h5py.File(outside / "sentinel.h5", "w") as s:
        f.visit(lambda k: groups.append(k) if isinstance(f[k], h5py.Group) else None)
        for key in f:
            f.copy(key, s)
        for dpath in (*datasets, layout.METADATA):
            ds = f[dpath]
            raw = np.ascontiguousarray(ds[()])
            (outside / _raw_name(dpath)).write_bytes(raw.tobytes())
            if ds.chunks:
                for i in range(ds.id.get_num_chunks()):
                    info = ds.id.get_chunk_info(i)
                    regions.append(
                        (f"chunk {dpath}", info.byte_offset, info.byte_offset + info.size)
                    )
            elif ds.id.get_offset() is not None:
                off = ds.id.get_offset()
                regions.append((f"data {dpath}", off, off + ds.id.get_storage_size()))
    raw = path.read_bytes()
    at = raw.find(b"GCOL")
    while at >= 0:  # the global heap collections (variable-length root attributes)
        regions.append(
            ("global heap", at, min(size, at + int.from_bytes(raw[at + 8 : at + 16], "little")))
        )
        at = raw.find(b"GCOL", at + 1)
    regions += [("superblock", 0, min(size, 96)), ("head", 0, min(size, 4096))]
    regions += [("tail", max(0, size - 4096), size), ("anywhere", 0, size)]
    return Base(
        name, path, outside, size, datasets, tuple(groups), tuple(regions), _json_paths(doc)
    )


def _raw_name(dpath: str) -> str:
    return "raw-" + dpath.replace("/", "__") + ".bin"


def _json_paths(doc: Any, prefix: tuple = (), depth: int = 0) -> tuple[tuple, ...]:
    out: list[tuple] = [prefix] if prefix else []
    if depth > 6:
        return tuple(out)
    if isinstance(doc, dict):
        for k, v in doc.items():
            if prefix == ("datasets",) and len(out) > 8:  # a few manifest records suffice
                break
            out += _json_paths(v, (*prefix, k), depth + 1)
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            out += _json_paths(v, (*prefix, i), depth + 1)
    return tuple(out)


# ============================================================================ operations
@dataclass(frozen=True)
class Op:
    """One damage: ``kind`` names the function of :data:`APPLY`, ``args`` its arguments."""

    kind: str
    args: tuple

    @property
    def family(self) -> str:
        return self.kind.split("_")[0]

    @property
    def hostile(self) -> bool:
        """A link or storage pointing outside the object tree or the file."""
        if self.kind == "h5_link":
            return self.args[1] != "hard-alias"
        if self.kind == "h5_vds":  # the "self" source leaves a stray dataset, reported first
            return self.args[1] != "self"
        return self.kind == "h5_external"


BYTE_OPS = ("bytes_flip", "bytes_truncate", "bytes_insert", "bytes_overwrite")


def read_doc(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f[layout.METADATA][()].tobytes())


def store_metadata(path: Path, blob: bytes, fix_sha: bool = True) -> None:
    """Replace /metadata by ``blob`` (and its root checksum attribute when ``fix_sha``)."""
    with h5py.File(path, "r+") as f:
        del f[layout.METADATA]
        f.create_dataset(layout.METADATA, data=np.frombuffer(blob, dtype=np.uint8))
        if fix_sha:
            f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)


def _record(path: Path, dpath: str, **update: Any) -> None:
    doc = read_doc(path)
    doc["datasets"].setdefault(dpath, {}).update(update)
    store_metadata(path, json.dumps(doc).encode())


# ---------------------------------------------------------------------------- bytes
def _bytes_flip(path: Path, base: Base, flips: tuple) -> None:
    b = bytearray(path.read_bytes())
    if not b:  # truncated to nothing by an earlier op
        return
    for off, mask in flips:
        b[off % len(b)] ^= mask
    path.write_bytes(bytes(b))


def _bytes_truncate(path: Path, base: Base, length: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(length)


def _bytes_insert(path: Path, base: Base, offset: int, data: bytes) -> None:
    b = path.read_bytes()
    path.write_bytes(b[:offset] + data + b[offset:])


def _bytes_overwrite(path: Path, base: Base, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


# ---------------------------------------------------------------------------- HDF5 objects
#: replacement dtypes of :func:`_h5_dtype`
DTYPES = tuple(
    "big-endian <f4 <i8 |u1 <f2 <c16 bool S8 vlen-str vlen-int compound objref regionref enum "
    "opaque array".split()
)


def _new_dataset(f: h5py.File, dpath: str, data: Any = None, **kw: Any) -> None:
    del f[dpath]
    f.create_dataset(dpath, data=data, **kw)


def _h5_dtype(path: Path, base: Base, dpath: str, kind: str, fix: bool) -> None:
    with h5py.File(path, "r+") as f:
        a = f[dpath][()]
        n = a.shape
        if kind == "big-endian":
            new = a.astype(a.dtype.newbyteorder(">"))
            _new_dataset(f, dpath, new)
        elif kind in ("<f4", "<i8", "|u1", "<f2", "<c16"):
            new = a.astype(kind)
            _new_dataset(f, dpath, new)
        elif kind == "bool":
            new = a != 0
            _new_dataset(f, dpath, new)
        elif kind == "S8":
            new = np.array([str(x)[:8] for x in a.reshape(-1)], dtype="S8").reshape(n)
            _new_dataset(f, dpath, new)
        elif kind == "vlen-str":
            _new_dataset(f, dpath, [str(x) for x in a.reshape(-1)], dtype=h5py.string_dtype())
            new = None
        elif kind == "vlen-int":
            dt = h5py.vlen_dtype(np.int32)
            del f[dpath]
            ds = f.create_dataset(dpath, shape=(a.size,), dtype=dt)
            for i in range(min(a.size, 8)):
                ds[i] = np.arange(i + 1, dtype=np.int32)
            new = None
        elif kind == "compound":
            dt = np.dtype([("value", "<f8"), ("index", "<i4")])
            new = np.zeros(n, dtype=dt)
            new["value"] = a
            _new_dataset(f, dpath, new)
        elif kind in ("objref", "regionref"):
            dt = h5py.ref_dtype if kind == "objref" else h5py.regionref_dtype
            del f[dpath]
            ds = f.create_dataset(dpath, shape=(max(a.size, 1),), dtype=dt)
            target = f["channels"]
            ds[0] = target.ref if kind == "objref" else f[base.datasets[0]].regionref[0:1]
            new = None
        elif kind == "enum":
            dt = h5py.enum_dtype({"zero": 0, "one": 1}, basetype="i4")
            _new_dataset(f, dpath, (a != 0).astype(np.int32), dtype=dt)
            new = (a != 0).astype(np.int32)
        elif kind == "opaque":
            new = np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype="V1").copy()
            _new_dataset(f, dpath, new)
            new = None
        else:  # array
            dt = np.dtype(("<f8", (2,)))
            del f[dpath]
            f.create_dataset(dpath, shape=(max(a.size, 1),), dtype=dt)
            new = None
    if fix and new is not None and dpath != layout.METADATA:
        _record(path, dpath, dtype=new.dtype.str, shape=list(new.shape), sha256=array_sha256(new))


def _h5_shape(path: Path, base: Base, dpath: str, shape: tuple, fix: bool) -> None:
    with h5py.File(path, "r+") as f:
        a = f[dpath][()].reshape(-1)
        n = int(np.prod(shape))
        new = np.resize(a, n).reshape(shape) if a.size else np.zeros(shape, a.dtype)
        _new_dataset(f, dpath, new)
    if fix and dpath != layout.METADATA:
        _record(path, dpath, shape=list(new.shape), sha256=array_sha256(new))
    elif fix:
        with h5py.File(path, "r+") as f:
            f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(np.asarray(new).tobytes())


#: value edits of :func:`_h5_values`; "float-*" store an (index) dataset as <f8, a dtype the
#: manifest allows, with a non-integral or a NaN entry
VALUES = tuple(
    "nan inf -inf negative huge subnormal zeros permute int-edge float-half float-nan".split()
)


def _h5_values(path: Path, base: Base, dpath: str, kind: str, index: int, fix: bool) -> None:
    with h5py.File(path, "r+") as f:
        a = f[dpath][()]
        flat = a.reshape(-1).copy()
        if flat.size == 0:
            return
        i = index % flat.size
        if a.dtype.kind == "f":
            table = {
                "nan": np.nan,
                "inf": np.inf,
                "-inf": -np.inf,
                "negative": -abs(flat[i]) - 1.0,
                "huge": 1e308,
                "subnormal": 5e-324,
                "int-edge": -0.0,
            }
        else:
            info = np.iinfo(a.dtype)
            table = {
                "negative": -1,
                "huge": info.max,
                "int-edge": info.min,
                "nan": flat[i] + 1,
                "inf": flat.size,
                "-inf": -flat.size,
                "subnormal": 0,
            }
        if kind == "zeros":
            flat[:] = 0
        elif kind == "permute":
            flat = flat[::-1].copy()
        elif kind.startswith("float-"):
            flat = flat.astype("<f8")
            flat[i] = flat[i] + 0.5 if kind == "float-half" else np.nan
        else:
            flat[i] = table[kind]
        new = flat.reshape(a.shape)
        if new.dtype == a.dtype:
            f[dpath][...] = new
        else:
            _new_dataset(f, dpath, new)
    if fix and dpath != layout.METADATA:
        _record(path, dpath, dtype=new.dtype.str, sha256=array_sha256(new))
    elif fix:
        with h5py.File(path, "r+") as f:
            f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(new.tobytes())


def _h5_huge(path: Path, base: Base, dpath: str, nbytes: int, maxshape: bool, fix: bool) -> None:
    """A chunked dataset declaring ``nbytes`` of data that the file never stores (fill value):
    a few hundred bytes of file that would expand to ``nbytes`` of memory."""
    with h5py.File(path, "r+") as f:
        old = f[dpath]
        dt, shape = old.dtype, old.shape
        rest = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        n0 = max(1, nbytes // (dt.itemsize * max(rest, 1)))
        new_shape = (n0, *shape[1:]) if shape else (n0,)
        chunks = tuple(min(s, 4096) for s in new_shape) if all(new_shape) else None
        del f[dpath]
        f.create_dataset(
            dpath,
            shape=new_shape,
            dtype=dt,
            chunks=chunks or True,
            maxshape=tuple(None for _ in new_shape) if maxshape else None,
            fillvalue=0,
        )
    if not fix:
        return
    total = int(np.prod(new_shape)) * dt.itemsize
    sha = _zeros_sha256(total) if total <= IN_LIMIT_BYTES else "0" * 64
    if dpath == layout.METADATA:
        return
    _record(path, dpath, shape=list(new_shape), sha256=sha)


def _zeros_sha256(n: int) -> str:
    import hashlib

    h = hashlib.sha256()
    block = bytes(1 << 20)
    for start in range(0, n, len(block)):
        h.update(block[: min(len(block), n - start)])
    return h.hexdigest()


LINKS = ("soft", "soft-dangling", "external", "external-dangling", "self-external", "hard-alias")


def _h5_link(path: Path, base: Base, target: str, kind: str) -> None:
    with h5py.File(path, "r+") as f:
        if kind == "hard-alias":
            other = next(
                (d for d in base.datasets if d != target and f[d].shape == f[target].shape),
                base.datasets[0],
            )
            del f[target]
            f[target] = f[other]
            return
        if kind == "soft":
            f.copy(target, "stash")
        del f[target]
        if kind == "soft":
            f[target] = h5py.SoftLink("/stash")
        elif kind == "soft-dangling":
            f[target] = h5py.SoftLink("/no/such/object")
        elif kind == "external":
            f[target] = h5py.ExternalLink(str(base.outside / "sentinel.h5"), target)
        elif kind == "external-dangling":
            f[target] = h5py.ExternalLink(str(base.outside / "missing.h5"), target)
        else:
            f[target] = h5py.ExternalLink(str(path), target)


def _h5_vds(path: Path, base: Base, dpath: str, source: str) -> None:
    with h5py.File(path, "r+") as f:
        ds = f[dpath]
        shape, dt = ds.shape, ds.dtype
        if source == "self":
            f.copy(dpath, "stash")
        del f[dpath]
        src_file = {
            "sentinel": str(base.outside / "sentinel.h5"),
            "missing": str(base.outside / "missing.h5"),
            "self": ".",
        }[source]
        src_name = "stash" if source == "self" else dpath
        lay = h5py.VirtualLayout(shape=shape, dtype=dt)
        lay[...] = h5py.VirtualSource(src_file, src_name, shape=shape)
        f.create_virtual_dataset(dpath, lay, fillvalue=0)


def _h5_external(path: Path, base: Base, dpath: str) -> None:
    raw = base.outside / _raw_name(dpath)
    with h5py.File(path, "r+") as f:
        ds = f[dpath]
        shape, dt = ds.shape, ds.dtype
        del f[dpath]
        nbytes = int(np.prod(shape)) * dt.itemsize
        f.create_dataset(dpath, shape=shape, dtype=dt, external=[(str(raw), 0, max(nbytes, 1))])


STRUCT = ("delete", "group-for-dataset", "extra-dataset", "extra-group", "committed-type")


def _h5_struct(path: Path, base: Base, target: str, kind: str) -> None:
    with h5py.File(path, "r+") as f:
        if kind == "delete":
            del f[target]
        elif kind == "group-for-dataset":
            del f[target]
            f.create_group(target)
        elif kind == "extra-dataset":
            f.create_dataset(f"{target.rsplit('/', 1)[0]}/extra", data=np.zeros(3))
        elif kind == "extra-group":
            f.create_group(f"{target}_extra/inner")
        else:
            f[f"{target.rsplit('/', 1)[0]}/a_type"] = np.dtype("<f8")


#: replacement values of :func:`_h5_attr` (versions are also written into the document)
ATTR_VALUES = tuple(
    "delete int float bytes bad-utf8 empty array null-space long nul 2.0.0 0.9.9 "
    "1.99999999999999999999.0 01.0.0 1.7.0 huge-semver".split()
)


def _h5_attr(path: Path, base: Base, name: str, value: str, obj: str) -> None:
    with h5py.File(path, "r+") as f:
        o = f[obj] if obj else f
        if value == "delete":
            if name in o.attrs:
                del o.attrs[name]
            return
        v: Any = {
            "int": 7,
            "float": 1.5e300,
            "bytes": np.bytes_(b"wmass-archive"),
            "bad-utf8": np.bytes_(b"\xff\xfe\x80wmass"),
            "empty": "",
            "array": np.array(["wmass-archive", "1.0.0"], dtype=h5py.string_dtype()),
            "null-space": h5py.Empty("f8"),
            "long": "x" * (1 << 20),
            "nul": np.bytes_(b"wmass-archive\x00junk"),
            "huge-semver": "1." + "9" * 5000 + ".0",
        }.get(value, value)
        o.attrs[name] = v
        if name == layout.ATTR_VERSION and str(v)[:1].isdigit() and not obj:
            # a consistent version change: the document says the same
            doc = json.loads(f[layout.METADATA][()].tobytes())
            doc["format_version"] = v
            blob = json.dumps(doc).encode()
            del f[layout.METADATA]
            f.create_dataset(layout.METADATA, data=np.frombuffer(blob, dtype=np.uint8))
            f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)


# ---------------------------------------------------------------------------- metadata JSON
DELETE = "<delete>"


def _meta_set(path: Path, base: Base, jpath: tuple, value: Any, fix: bool) -> None:
    """Set (or delete, with the value :data:`DELETE`) the field at ``jpath`` of the document."""
    doc = read_doc(path)
    node = doc
    for k in jpath[:-1]:
        node = node[k]
    if value == DELETE:
        del node[jpath[-1]]
    else:
        node[jpath[-1]] = value
    store_metadata(path, json.dumps(doc).encode(), fix)


#: raw edits of the metadata bytes of :func:`_meta_raw`
RAW = tuple(
    "dup-key deep-array deep-object big-int huge-float nan-literal bom bad-utf8 utf16 truncated "
    "trailing empty array-root lone-surrogate nul-bytes".split()
)


def _meta_raw(path: Path, base: Base, kind: str, depth: int, fix: bool) -> None:
    text = json.dumps(read_doc(path))
    head = '{"format": "wmass-archive", '
    assert text.startswith(head)
    rest = text[len(head) :]
    blob = {
        "dup-key": lambda: head + '"title": 12, "title": "x", "channels": [], ' + rest,
        "deep-array": lambda: head + '"x": ' + "[" * depth + "]" * depth + ", " + rest,
        "deep-object": lambda: head + '"x": ' + '{"a": ' * depth + "1" + "}" * depth + ", " + rest,
        "big-int": lambda: head + '"x": ' + "9" * depth + ", " + rest,
        "huge-float": lambda: text.replace('"value": ', '"value": 1e' + str(depth), 1),
        "nan-literal": lambda: text.replace('"value": ', '"value": NaN, "v": ', 1),
        "bom": lambda: "\ufeff" + text,
        "bad-utf8": lambda: None,
        "utf16": lambda: None,
        "truncated": lambda: text[: depth % max(len(text), 1)],
        "trailing": lambda: text + " }garbage",
        "empty": lambda: "",
        "array-root": lambda: "[" + text + "]",
        "lone-surrogate": lambda: text.replace('"title": "', '"title": "\\udc80', 1),
        "nul-bytes": lambda: text.replace('"title": "', '"title": "\\u0000', 1),
    }[kind]()
    if kind == "bad-utf8":
        data = text.encode()[:40] + b"\xc3\x28\xff" + text.encode()[40:]
    elif kind == "utf16":
        data = text.encode("utf-16")
    else:
        data = blob.encode("utf-8", "surrogatepass")
    store_metadata(path, data, fix)


def _meta_size(path: Path, base: Base, bins: int, hollow: bool) -> None:
    """Declare ``bins`` bins on the first regular axis of the first channel; update the manifest
    shapes that follow (so that the only inconsistency is the real data), and with ``hollow``
    replace those datasets by never-written chunked ones of the declared shape."""
    doc = read_doc(path)
    ch = doc["channels"][0]
    ax = next((a for a in ch["axes"] if a["type"] == "regular"), ch["axes"][0])
    old_n = int(np.prod([_axis_size(a) for a in ch["axes"]]))
    ax.update(type="regular", bins=bins, lower=0.0, upper=1.0, edges=None, categories=None)
    new_n = int(np.prod([_axis_size(a) for a in ch["axes"]]))
    prefix = f"channels/{ch['name']}/"
    changed = []
    for dpath, rec in doc["datasets"].items():
        if dpath.startswith(prefix) and old_n in rec["shape"]:
            i = rec["shape"].index(old_n)
            rec["shape"][i] = new_n
            changed.append((dpath, tuple(rec["shape"]), rec["dtype"]))
    if hollow:
        with h5py.File(path, "r+") as f:
            for dpath, shape, dt in changed:
                del f[dpath]
                chunks = tuple(min(max(s, 1), 1 << 16) for s in shape)
                f.create_dataset(dpath, shape=shape, dtype=dt, chunks=chunks, fillvalue=0)
        for dpath, shape, dt in changed:
            total = int(np.prod(shape)) * np.dtype(dt).itemsize
            if total <= IN_LIMIT_BYTES:
                doc["datasets"][dpath]["sha256"] = _zeros_sha256(total)
    store_metadata(path, json.dumps(doc).encode())


def _axis_size(ax: dict) -> int:
    if ax["type"] == "regular":
        return int(ax["bins"])
    if ax["type"] == "variable":
        return len(ax["edges"]) - 1
    return len(ax["categories"])


#: the op kinds: "bytes_flip" is applied by _bytes_flip, and so on
APPLY = {
    name[1:]: fn
    for name, fn in list(globals().items())
    if name.startswith(("_bytes_", "_h5_", "_meta_")) and callable(fn)
}


def apply_ops(path: Path, base: Base, ops: list[Op]) -> tuple[list[Op], list[str]]:
    """Apply ``ops`` to the copy ``path`` of ``base`` (object and metadata edits first, bytes
    last, so that h5py in this process only ever opens files that are valid HDF5). Returns the
    ops applied and those that could not be (e.g. an edit of an object an earlier op removed),
    with the reason."""
    applied, skipped = [], []
    for op in sorted(ops, key=lambda o: o.kind in BYTE_OPS):
        try:
            APPLY[op.kind](path, base, *op.args)
            applied.append(op)
        except Exception as exc:  # noqa: BLE001 - e.g. an object an earlier op removed
            if op.kind in BYTE_OPS:
                raise
            skipped.append(f"{op}: {type(exc).__name__}: {exc}")
    return applied, skipped


# ============================================================================ strategies
def _json_values() -> st.SearchStrategy:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=20)
        | st.sampled_from(["", "x" * 100_000, "\u202e\u0000\U0001f600", "1.0.0", "mu", "-1"])
        | st.sampled_from([0, -1, 2**31, 2**63, 10**7, 10**7 + 1, 1e308, -0.0, 5e-324])
    )
    return st.recursive(
        leaves,
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=8,
    )


def _offset(base: Base) -> st.SearchStrategy[int]:
    return st.sampled_from(base.regions).flatmap(lambda r: st.integers(r[1], max(r[1], r[2] - 1)))


def _byte_ops(base: Base) -> st.SearchStrategy[Op]:
    flips = st.lists(st.tuples(_offset(base), st.integers(1, 255)), min_size=1, max_size=6)
    junk = st.binary(min_size=1, max_size=64) | st.sampled_from([bytes(512), b"\xff" * 64])
    return st.one_of(
        flips.map(lambda f: Op("bytes_flip", (tuple(f),))),
        st.integers(0, base.size - 1).map(lambda n: Op("bytes_truncate", (n,))),
        st.sampled_from(base.regions)
        .flatmap(lambda r: st.integers(r[1], max(r[1], r[2] - 1)))
        .map(lambda n: Op("bytes_truncate", (n,))),
        st.tuples(_offset(base), junk).map(lambda a: Op("bytes_insert", a)),
        st.tuples(_offset(base), junk).map(lambda a: Op("bytes_overwrite", a)),
    )


def _structured_ops(base: Base) -> st.SearchStrategy[Op]:
    ds = st.sampled_from(base.datasets)
    ds_or_meta = st.sampled_from((*base.datasets, layout.METADATA))
    anything = st.sampled_from((*base.datasets, *base.groups, layout.METADATA))
    fix = st.booleans()
    sizes = st.sampled_from([2**10, 2**16, 2**20, IN_LIMIT_BYTES, OVER_LIMIT_BYTES, 2**62])
    root_attr = st.sampled_from(
        [layout.ATTR_FORMAT, layout.ATTR_VERSION, layout.ATTR_METADATA_SHA, "extra"]
    )
    jpath = st.sampled_from(base.json_paths)
    shapes = st.lists(st.integers(0, 40), min_size=0, max_size=3).map(tuple)  # () is a scalar
    return st.one_of(
        st.tuples(ds_or_meta, st.sampled_from(DTYPES), fix).map(lambda a: Op("h5_dtype", a)),
        st.tuples(ds_or_meta, shapes, fix).map(lambda a: Op("h5_shape", a)),
        st.tuples(ds_or_meta, st.sampled_from(VALUES), st.integers(0, 10**6), fix).map(
            lambda a: Op("h5_values", a)
        ),
        st.tuples(ds_or_meta, sizes, st.booleans(), fix).map(lambda a: Op("h5_huge", a)),
        st.tuples(anything, st.sampled_from(LINKS)).map(lambda a: Op("h5_link", a)),
        st.tuples(ds_or_meta, st.sampled_from(["sentinel", "missing", "self"])).map(
            lambda a: Op("h5_vds", a)
        ),
        ds_or_meta.map(lambda d: Op("h5_external", (d,))),
        st.tuples(anything, st.sampled_from(STRUCT)).map(lambda a: Op("h5_struct", a)),
        st.tuples(root_attr, st.sampled_from(ATTR_VALUES), st.just("")).map(
            lambda a: Op("h5_attr", a)
        ),
        st.tuples(st.sampled_from(["format", "sha256", "x"]), st.sampled_from(ATTR_VALUES), ds).map(
            lambda a: Op("h5_attr", a)
        ),
        st.tuples(jpath, _json_values(), st.booleans() | st.just(True)).map(
            lambda a: Op("meta_set", a)
        ),
        st.tuples(jpath, st.just(DELETE), st.just(True)).map(lambda a: Op("meta_set", a)),
        st.tuples(
            st.sampled_from(RAW),
            st.sampled_from([1, 50, 999, 5000, 100_000, 2_000_000]),
            st.booleans() | st.just(True),
        ).map(lambda a: Op("meta_raw", a)),
        st.tuples(st.sampled_from([0, 1, 2**16, 10**7, 10**7 + 1, 2**40]), st.booleans()).map(
            lambda a: Op("meta_size", a)
        ),
    )


def cases(bases: list[Base], kinds: str = "all") -> st.SearchStrategy[tuple[Base, list[Op]]]:
    """(base, ops): one op most of the time, sometimes two or three. ``kinds``: "bytes" (byte
    damage only), "structured" (HDF5 objects, attributes, metadata) or "all"."""

    def ops_for(base: Base) -> st.SearchStrategy[tuple[Base, list[Op]]]:
        one = {
            "bytes": _byte_ops(base),
            "structured": _structured_ops(base),
            "all": _byte_ops(base) | _structured_ops(base),
        }[kinds]
        return st.tuples(st.just(base), st.lists(one, min_size=1, max_size=3) | one.map(_single))

    return st.sampled_from(bases).flatmap(ops_for)


def _single(op: Op) -> list[Op]:
    return [op]


def new_case_path(work: Path, base: Base, counter: list[int]) -> Path:
    """A fresh copy of ``base`` in ``work``, under a name never used before."""
    counter[0] += 1
    p = work / f"case{counter[0]:06d}.h5"
    shutil.copyfile(base.path, p)
    return p
