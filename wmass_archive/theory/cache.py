"""A verified on-disk cache of computed theory grids (``wmass-refit --pdf SET`` for a set that
an archive does not carry).

**Key.** :func:`grid_cache_key` hashes what a grid is computed from: the *content* of the LHAPDF
set's files (the ``.info`` file and every ``.dat`` file of its folder, :func:`pdf_set_digest`),
the generator binning, the theory parameters, any extra inputs of the caller, and the code: the
package version and :data:`GRID_CODE_VERSION`. A file's SHA-256 is computed once and memoised
under its path, device, inode, size, modification time *and* change time (``st_ctime``, which
``os.utime`` cannot set back): in the process, and across processes in the cache's
authenticated :class:`DigestFile`; repeated look-ups only ``stat`` the files, and an edit that
keeps a file's size and modification time still gives a new key.

**Entry.** One entry per key in the cache folder: ``<set>-<key>.<sha12>.h5``, the grid as a
:class:`~wmass_archive.theory.grid.TheoryGrid` HDF5 file whose name carries the start of its
SHA-256, and the sidecar ``<set>-<key>.json`` (SHA-256 of the data file, of the values array
and of the grid's metadata, the array's shape, the key, the versions) with an HMAC-SHA-256 of
the sidecar under a random per-cache secret (``.hmac-key``, mode 0600). Both files are written
under temporary names and renamed into place; the sidecar is renamed last, so a reader sees an
old entry or a new one, never half of one.

**Verification on load**, before the HDF5 parser sees a byte: the sidecar's size, JSON and
HMAC (an entry edited with its own checksums recomputed fails here), the key it records, the
data file's size and SHA-256; then the values' and metadata's SHA-256, the shape and
finiteness. A failing entry is reported with a :class:`GridCacheWarning` naming the entry and
the problem, recomputed, and replaced. Nothing is ever unpickled. A grid verified once is kept
in memory (:data:`MAX_VERIFIED` of them) and returned again while its two files keep their
stat keys. Files changed less than :data:`RACY_NS` before they are read are never memoised.

Deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from .generator import GRID_SHAPE
from .grid import TheoryGrid, TheoryGridError, load_theory_grid_bytes
from .params import TheoryParameters

__all__ = [
    "GRID_CODE_VERSION",
    "CacheResult",
    "DigestFile",
    "GridCache",
    "GridCacheWarning",
    "default_cache_dir",
    "file_sha256",
    "grid_cache_key",
    "pdf_set_digest",
]

#: Bump when the computation of a theory grid changes: every cached grid gets a new key.
GRID_CODE_VERSION = 1
CACHE_FORMAT = "wmass-theory-grid-cache"
CACHE_FORMAT_VERSION = 1
KEY_FILE = ".hmac-key"
DIGEST_FILE = "file-digests.json"
MAX_DIGEST_FILE_BYTES = 16 * 1024 * 1024
MAX_DIGEST_ENTRIES = 50_000
#: verified grids kept in memory per process (a repeated hit re-reads nothing while the
#: entry's files keep their stat keys)
MAX_VERIFIED = 8
MAX_SIDECAR_BYTES = 64 * 1024
MAX_DATA_BYTES = 512 * 1024 * 1024
#: a file changed this recently (ns) is hashed again at every look-up (its time stamps may
#: not yet tell a later edit apart: they tick with the kernel's coarse clock)
RACY_NS = 2_000_000_000
_SIDECAR_FIELDS = (
    "format",
    "format_version",
    "key",
    "pdf_set",
    "data_file",
    "data_size",
    "data_sha256",
    "values_sha256",
    "values_shape",
    "metadata_sha256",
    "package_version",
    "grid_code_version",
)


def default_cache_dir(create: bool = True) -> Path:
    """The package's cache folder: ``$XDG_CACHE_HOME/wmass-archive`` (``~/.cache/wmass-archive``
    when ``XDG_CACHE_HOME`` is not set), created on demand. Theory grids go to its
    ``theory-grids/``, JAX's compilation cache to ``jax/``; deleting it is always safe."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base).expanduser() / "wmass-archive"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


class GridCacheWarning(UserWarning):
    """A cached theory grid failed its verification and is recomputed."""


class _BadEntry(Exception):
    """Why a cache entry is refused (internal)."""


# --------------------------------------------------------------------------- content digests
_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()
_VERIFIED: OrderedDict[str, tuple[tuple[int, ...], Path, tuple[int, ...], TheoryGrid]] = (
    OrderedDict()
)


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: str | os.PathLike[str], memo: DigestFile | None = None) -> str:
    """The SHA-256 of a file's content, memoised for the process (and in ``memo``, a cache's
    file of digests) under its path, device, inode, size, modification and change times; a
    file changed within :data:`RACY_NS` before the hashing is not memoised."""
    name = os.path.abspath(path)
    st = os.stat(name)
    stat = _stat_key(st)
    sig = (name, *stat)
    with _DIGEST_LOCK:
        hit = _DIGESTS.get(sig)
    if hit is None and memo is not None:
        hit = memo.get(name, stat)
        if hit is not None:
            with _DIGEST_LOCK:
                _DIGESTS[sig] = hit
    if hit is not None:
        return hit
    start = time.time_ns()
    with open(name, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        same = _stat_key(os.fstat(fh.fileno())) == stat  # the file hashed is the one stat'ed
    if same and max(st.st_mtime_ns, st.st_ctime_ns) < start - RACY_NS:
        with _DIGEST_LOCK:
            _DIGESTS[sig] = digest
        if memo is not None:
            memo.put(name, stat, digest)
    return digest


def pdf_set_digest(set_dir: str | os.PathLike[str], memo: DigestFile | None = None) -> str:
    """A SHA-256 over an LHAPDF set's files: the name and content digest of its ``.info`` file
    and of every ``.dat`` file in its folder, in name order."""
    folder = os.path.abspath(set_dir)
    with os.scandir(folder) as it:
        names = sorted(e.name for e in it if e.name.endswith((".info", ".dat")) and e.is_file())
    if not any(n.endswith(".info") for n in names):
        raise FileNotFoundError(f"{folder}: no .info file")
    h = hashlib.sha256(b"lhapdf-set\0")
    for n in names:
        h.update(f"{n}\0{file_sha256(os.path.join(folder, n), memo)}\0".encode())
    return h.hexdigest()


def grid_cache_key(
    set_dir: str | os.PathLike[str],
    binning: str,
    params: TheoryParameters,
    *,
    extra: Iterable[str] = (),
    code_version: int | None = None,
    memo: DigestFile | None = None,
) -> str:
    """The cache key of a set's grid: a SHA-256 (first 32 hex digits) of the set's content
    (:func:`pdf_set_digest`), the generator ``binning`` (its JSON), the parameters, ``extra``
    inputs of the caller, the package version and the code version (default
    :data:`GRID_CODE_VERSION`)."""
    code = GRID_CODE_VERSION if code_version is None else code_version
    parts = [
        CACHE_FORMAT,
        f"package={__version__}",
        f"code={code}",
        pdf_set_digest(set_dir, memo),
        binning,
        params.model_dump_json(),
        *extra,
    ]
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


class DigestFile:
    """A cache's file of file digests (``file-digests.json``), so that a new process does not
    hash an LHAPDF set again: path -> (device, inode, size, mtime, ctime, SHA-256), read on the
    first look-up, authenticated with the cache's secret (an edited file is ignored with a
    :class:`GridCacheWarning`), written back atomically by :meth:`save`."""

    def __init__(self, path: Path, secret: bytes):
        self.path = path
        self._secret = secret
        self._entries: dict[str, list[Any]] | None = None
        self._dirty = False

    def _mac(self, entries: dict[str, list[Any]]) -> str:
        body = json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def _load(self) -> dict[str, list[Any]]:
        if self._entries is not None:
            return self._entries
        self._entries = {}
        try:
            raw, _ = _read_limited(self.path, MAX_DIGEST_FILE_BYTES)
            doc = json.loads(raw)
            entries, tag = doc["entries"], doc["hmac_sha256"]
            if not isinstance(entries, dict) or not isinstance(tag, str):
                raise _BadEntry("not a digest file")
            if not hmac.compare_digest(tag, self._mac(entries)):
                raise _BadEntry("authentication code does not match (file edited)")
            self._entries = entries
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, _BadEntry) as exc:
            warnings.warn(
                f"theory-grid cache digests {self.path}: {exc}; ignored (files are hashed again)",
                GridCacheWarning,
                stacklevel=5,
            )
            self._dirty = True
        return self._entries

    def get(self, name: str, stat: tuple[int, ...]) -> str | None:
        """The recorded digest of file ``name`` if its stat key is still ``stat``."""
        e = self._load().get(name)
        if isinstance(e, list) and len(e) == 6 and tuple(e[:5]) == stat:
            if isinstance(e[5], str) and re.fullmatch(r"[0-9a-f]{64}", e[5]):
                return e[5]
        return None

    def put(self, name: str, stat: tuple[int, ...], digest: str) -> None:
        """Record the digest of file ``name`` at stat key ``stat``."""
        entries = self._load()
        entries.pop(name, None)
        entries[name] = [*stat, digest]
        while len(entries) > MAX_DIGEST_ENTRIES:  # the oldest first
            entries.pop(next(iter(entries)))
        self._dirty = True

    def save(self) -> None:
        """Write the file back (atomically) when something changed."""
        if not self._dirty or self._entries is None:
            return
        doc = {"format": f"{CACHE_FORMAT}-digests", "entries": self._entries}
        doc["hmac_sha256"] = self._mac(self._entries)
        _write_atomic(self.path, json.dumps(doc, sort_keys=True).encode())
        self._dirty = False


def _values_sha256(values: np.ndarray) -> str:
    """SHA-256 of the values as C-ordered little-endian float64 (no copy when they are)."""
    arr = np.ascontiguousarray(values, dtype="<f8")
    return hashlib.sha256(memoryview(arr).cast("B")).hexdigest()


def _meta_sha256(grid: TheoryGrid) -> str:
    return hashlib.sha256(grid.meta.model_dump_json().encode()).hexdigest()


def _safe_name(name: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_.+-]", "_", name).lstrip(".")[:80]
    return out or "set"


# --------------------------------------------------------------------------- the cache
@dataclass
class CacheResult:
    """A grid from :meth:`GridCache.get`: the grid, its data file (None when not stored) and
    whether it came from the cache."""

    grid: TheoryGrid
    path: Path | None
    cached: bool


class GridCache:
    """The theory-grid cache in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)

    # -- paths ----------------------------------------------------------------------------
    def sidecar(self, name: str, key: str) -> Path:
        """The sidecar file of the entry ``key`` of set ``name``."""
        if not re.fullmatch(r"[0-9a-f]{8,64}", key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.folder / f"{_safe_name(name)}-{key}.json"

    def _data_path(self, sidecar: Path, data_sha: str) -> Path:
        return sidecar.with_name(f"{sidecar.stem}.{data_sha[:12]}.h5")

    # -- the secret -----------------------------------------------------------------------
    def _secret(self, create: bool) -> bytes | None:
        path = self.folder / KEY_FILE
        try:
            data = path.read_bytes()
            if len(data) == 32:
                return data
            if not create:
                return None
            warnings.warn(
                f"theory-grid cache key {path} is damaged ({len(data)} bytes); replacing it "
                "(every cached grid will be recomputed)",
                GridCacheWarning,
                stacklevel=3,
            )
            _write_atomic(path, secrets.token_bytes(32), mode=0o600)
        except FileNotFoundError:
            if not create:
                return None
            tmp = path.with_name(f"{KEY_FILE}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(tmp, path)  # never replaces a key another process made first
                except FileExistsError:
                    pass
            finally:
                tmp.unlink(missing_ok=True)
        data = path.read_bytes()
        return data if len(data) == 32 else None

    def _mac(self, secret: bytes, record: dict[str, Any]) -> str:
        body = json.dumps({k: record[k] for k in _SIDECAR_FIELDS}, sort_keys=True)
        return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()

    # -- load -----------------------------------------------------------------------------
    def key(
        self,
        set_dir: str | os.PathLike[str],
        binning: str,
        params: TheoryParameters,
        *,
        extra: Iterable[str] = (),
        code_version: int | None = None,
    ) -> str:
        """:func:`grid_cache_key`, with the set's file digests kept in this cache's
        :class:`DigestFile` across processes; :class:`OSError` when the folder cannot be
        made."""
        self.folder.mkdir(parents=True, exist_ok=True)
        secret = self._secret(create=True)
        memo = DigestFile(self.folder / DIGEST_FILE, secret) if secret else None
        key = grid_cache_key(
            set_dir, binning, params, extra=extra, code_version=code_version, memo=memo
        )
        if memo is not None:
            try:
                memo.save()
            except OSError:  # a read-only cache: the digests are computed again next time
                pass
        return key

    def load(
        self, name: str, key: str, *, n_members: int | None = None
    ) -> tuple[TheoryGrid, Path] | None:
        """The verified grid of entry ``key`` and its data file; None when there is no entry
        or it fails verification (then a :class:`GridCacheWarning` names the problem)."""
        sidecar = self.sidecar(name, key)
        start = time.time_ns()
        try:
            raw, st = _read_limited(sidecar, MAX_SIDECAR_BYTES)
        except FileNotFoundError:
            return None
        except (OSError, _BadEntry) as exc:
            _warn(sidecar, str(exc))
            return None
        memo = _recall(sidecar, st, n_members)
        if memo is not None:
            return memo
        try:
            grid, data_path, dst = self._verify(sidecar, raw, key, n_members)
        except _BadEntry as exc:
            _warn(sidecar, str(exc))
            return None
        except Exception as exc:  # whatever else a damaged entry raises: recomputed too
            _warn(sidecar, f"{type(exc).__name__}: {exc}")
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns, dst.st_mtime_ns, dst.st_ctime_ns) < start - RACY_NS:
            with _DIGEST_LOCK:
                _VERIFIED[str(sidecar)] = (_stat_key(st), data_path, _stat_key(dst), grid)
                while len(_VERIFIED) > MAX_VERIFIED:
                    _VERIFIED.popitem(last=False)
            grid = _copy(grid)
        return grid, data_path

    def _verify(
        self, sidecar: Path, raw: bytes, key: str, n_members: int | None
    ) -> tuple[TheoryGrid, Path, os.stat_result]:
        try:
            record = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _BadEntry(f"sidecar is not valid JSON ({exc})") from None
        if not isinstance(record, dict) or any(k not in record for k in _SIDECAR_FIELDS):
            raise _BadEntry("sidecar lacks fields")
        secret = self._secret(create=False)
        if secret is None:
            raise _BadEntry(f"the cache's secret {KEY_FILE} is missing or damaged")
        tag = record.get("hmac_sha256")
        if not isinstance(tag, str) or not hmac.compare_digest(tag, self._mac(secret, record)):
            raise _BadEntry(
                "sidecar authentication code does not match (entry edited, or the cache's "
                f"secret {KEY_FILE} replaced)"
            )
        if record["format"] != CACHE_FORMAT or record["format_version"] != CACHE_FORMAT_VERSION:
            raise _BadEntry(f"cache format {record['format']} {record['format_version']}")
        if record["key"] != key:
            raise _BadEntry(f"sidecar is for key {record['key']}, not {key}")
        data_sha = record["data_sha256"]
        if not isinstance(data_sha, str) or not re.fullmatch(r"[0-9a-f]{64}", data_sha):
            raise _BadEntry(f"data checksum {data_sha!r}")
        data_path = self._data_path(sidecar, data_sha)
        if record["data_file"] != data_path.name:
            raise _BadEntry(f"sidecar names data file {record['data_file']!r}")
        size = record["data_size"]
        if not isinstance(size, int) or not 0 < size <= MAX_DATA_BYTES:
            raise _BadEntry(f"data size {size!r}")
        try:
            data, dst = _read_limited(data_path, MAX_DATA_BYTES)
        except FileNotFoundError:
            raise _BadEntry(f"data file {data_path.name} is missing") from None
        except OSError as exc:
            raise _BadEntry(f"data file {data_path.name}: {exc}") from None
        if len(data) != size:
            raise _BadEntry(f"data file {data_path.name} has {len(data)} bytes, not {size}")
        if hashlib.sha256(data).hexdigest() != data_sha:
            raise _BadEntry(f"data file {data_path.name}: SHA-256 does not match")
        try:
            grid = load_theory_grid_bytes(data, data_path.name)
        except (TheoryGridError, OSError, ValueError, KeyError, TypeError) as exc:
            raise _BadEntry(str(exc)) from None
        shape = list(grid.values.shape)
        if shape != record["values_shape"] or (
            n_members is not None and shape != [n_members, *GRID_SHAPE]
        ):
            want = record["values_shape"] if n_members is None else [n_members, *GRID_SHAPE]
            raise _BadEntry(f"values have shape {shape}, expected {want}")
        if _values_sha256(grid.values) != record["values_sha256"]:
            raise _BadEntry("values SHA-256 does not match")
        if _meta_sha256(grid) != record["metadata_sha256"]:
            raise _BadEntry("metadata SHA-256 does not match")
        if not np.isfinite(grid.values).all():  # validate() checks it too: kept explicit
            raise _BadEntry("values are not finite")
        return grid, data_path, dst

    # -- store ----------------------------------------------------------------------------
    def store(self, name: str, key: str, grid: TheoryGrid) -> Path:
        """Write ``grid`` as entry ``key`` (data file, then sidecar, each atomically) and
        remove other data files of that key; returns the data file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        secret = self._secret(create=True)
        if secret is None:
            raise OSError(f"{self.folder / KEY_FILE}: cannot read the cache's secret")
        sidecar = self.sidecar(name, key)
        data = grid.to_h5_bytes()
        data_sha = hashlib.sha256(data).hexdigest()
        data_path = self._data_path(sidecar, data_sha)
        record: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "format_version": CACHE_FORMAT_VERSION,
            "key": key,
            "pdf_set": grid.meta.pdf_set,
            "data_file": data_path.name,
            "data_size": len(data),
            "data_sha256": data_sha,
            "values_sha256": _values_sha256(grid.values),
            "values_shape": list(grid.values.shape),
            "metadata_sha256": _meta_sha256(grid),
            "package_version": __version__,
            "grid_code_version": GRID_CODE_VERSION,
        }
        record["hmac_sha256"] = self._mac(secret, record)
        _write_atomic(data_path, data)
        _write_atomic(sidecar, json.dumps(record, indent=1, sort_keys=True).encode())
        for old in self.folder.glob(f"{sidecar.stem}.*.h5"):
            if old != data_path:
                old.unlink(missing_ok=True)
        return data_path

    def get(
        self,
        name: str,
        key: str,
        compute: Callable[[], TheoryGrid],
        *,
        n_members: int | None = None,
    ) -> CacheResult:
        """The verified cached grid of ``key``, else ``compute()`` stored as that entry (a
        cache that cannot be written is not an error: the grid is returned unstored)."""
        hit = self.load(name, key, n_members=n_members)
        if hit is not None:
            return CacheResult(hit[0], hit[1], True)
        grid = compute()
        try:
            path: Path | None = self.store(name, key, grid)
        except (OSError, TheoryGridError):
            path = None
        return CacheResult(grid, path, False)

    def clear(self) -> int:
        """Delete every entry (and the secret); returns the number of files removed."""
        n = 0
        with _DIGEST_LOCK:
            for k in [k for k in _VERIFIED if Path(k).parent == self.folder]:
                del _VERIFIED[k]
        if not self.folder.is_dir():
            return 0
        for p in self.folder.iterdir():
            if p.is_file() and (p.suffix in (".json", ".h5") or p.name.startswith(KEY_FILE)):
                p.unlink(missing_ok=True)
                n += 1
        return n


# --------------------------------------------------------------------------- helpers
def _warn(entry: Path, problem: str) -> None:
    warnings.warn(
        f"theory-grid cache entry {entry}: {problem}; recomputing it",
        GridCacheWarning,
        stacklevel=4,
    )


def _read_limited(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """A file's bytes and its stat; :class:`_BadEntry` when it is larger than ``limit``."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_size > limit:
            raise _BadEntry(f"{path.name} has {st.st_size} bytes, more than {limit}")
        return fh.read(limit + 1), st


def _copy(grid: TheoryGrid) -> TheoryGrid:
    return TheoryGrid(grid.values.copy(), grid.meta)


def _recall(
    sidecar: Path, st: os.stat_result, n_members: int | None
) -> tuple[TheoryGrid, Path] | None:
    """The grid verified earlier in this process for this sidecar, when neither the sidecar
    nor its data file changed since (same device, inode, size, mtime and ctime)."""
    with _DIGEST_LOCK:
        hit = _VERIFIED.get(str(sidecar))
    if hit is None or hit[0] != _stat_key(st):
        return None
    sst, data_path, dstat, grid = hit
    try:
        if _stat_key(os.stat(data_path)) != dstat:
            return None
    except OSError:
        return None
    if n_members is not None and grid.values.shape[0] != n_members:
        return None
    return _copy(grid), data_path


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` under a temporary name in ``path``'s folder, fsync, rename into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
