"""The verified theory-grid cache (wmass_archive.theory.cache, used by ``wmass-refit --pdf``):
keys from the content of the LHAPDF files and the code's version, entries verified on load,
damaged or edited entries recomputed with a warning and replaced (issue 14)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from wmass_archive.theory import cache as tc
from wmass_archive.theory.cache import GridCache, GridCacheWarning, grid_cache_key
from wmass_archive.theory.compute import compute_set_grid, open_pdf_set
from wmass_archive.theory.grid import TheoryGrid
from wmass_archive.theory.params import TheoryParameters

PDF_DIR = Path(__file__).resolve().parents[2] / "shared" / "pdfsets"
if not PDF_DIR.is_dir():
    PDF_DIR = Path("/work/shared/pdfsets")
SET = "NNPDF31_nnlo_as_0118_mc"  # one member: a grid in a fraction of a second
PARAMS = TheoryParameters()
BINNING = "generator-binning"


@pytest.fixture
def set_dir(tmp_path: Path) -> Path:
    """A private copy of the one-member set, which a test may edit."""
    dst = tmp_path / "sets" / SET
    shutil.copytree(PDF_DIR / SET, dst)
    return dst


@pytest.fixture
def cache(tmp_path: Path) -> GridCache:
    return GridCache(tmp_path / "cache" / "theory-grids")


class Counter:
    """A compute function that counts its calls."""

    def __init__(self, set_dir: Path):
        self.pset = open_pdf_set(str(set_dir))
        self.calls = 0

    def __call__(self) -> TheoryGrid:
        self.calls += 1
        return compute_set_grid(self.pset, PARAMS, progress=False)


def _get(cache: GridCache, set_dir: Path, fn: Counter) -> tc.CacheResult:
    key = cache.key(set_dir, BINNING, PARAMS)
    assert key == grid_cache_key(set_dir, BINNING, PARAMS)
    return cache.get(SET, key, fn, n_members=len(fn.pset))


def _entry(cache: GridCache) -> tuple[Path, Path, dict]:
    (sidecar,) = cache.folder.glob(f"{SET}-*.json")
    (data,) = cache.folder.glob("*.h5")
    return sidecar, data, json.loads(sidecar.read_text())


def _rewrite_values(data: Path, change) -> None:
    with h5py.File(data, "r+") as f:
        v = f["values"][()]
        change(v)
        f["values"][...] = v


def _resign(cache: GridCache, sidecar: Path, data: Path) -> None:
    """Make the sidecar match the data file again with the cache's own secret, as the cache's
    own code (or someone holding its secret) would: only the checks after the checksums can
    then refuse the entry."""
    record = json.loads(sidecar.read_text())
    blob = data.read_bytes()
    with h5py.File(data, "r") as f:
        values = f["values"][()]
        meta_json = f["metadata"][()].decode()
    record.update(
        data_size=len(blob),
        data_sha256=hashlib.sha256(blob).hexdigest(),
        values_sha256=hashlib.sha256(np.ascontiguousarray(values, "<f8").tobytes()).hexdigest(),
        values_shape=list(values.shape),
        metadata_sha256=hashlib.sha256(meta_json.encode()).hexdigest(),
    )
    new_data = data.with_name(f"{sidecar.stem}.{record['data_sha256'][:12]}.h5")
    data.rename(new_data)
    record["data_file"] = new_data.name
    record["hmac_sha256"] = cache._mac(cache._secret(create=False), record)
    sidecar.write_text(json.dumps(record))


def _assert_recomputed(cache: GridCache, set_dir: Path, fn: Counter, match: str) -> None:
    calls = fn.calls
    with pytest.warns(GridCacheWarning, match=match):
        got = _get(cache, set_dir, fn)
    assert not got.cached and fn.calls == calls + 1
    # the bad entry was replaced by a good one: the next look-up is a silent hit
    again = _get(cache, set_dir, fn)
    assert again.cached and fn.calls == calls + 1
    np.testing.assert_array_equal(again.grid.values, got.grid.values)
    assert len(list(cache.folder.glob("*.h5"))) == 1


def test_warm_hit_returns_the_cold_arrays(cache, set_dir):
    fn = Counter(set_dir)
    cold = _get(cache, set_dir, fn)
    warm = _get(cache, set_dir, fn)
    assert not cold.cached and warm.cached and fn.calls == 1
    assert warm.path == cold.path and warm.path is not None and warm.path.is_file()
    np.testing.assert_array_equal(warm.grid.values, cold.grid.values)
    assert warm.grid.values.dtype == cold.grid.values.dtype == np.float64
    assert warm.grid.meta == cold.grid.meta
    # the entry is a TheoryGrid file and a JSON sidecar; nothing is pickled
    sidecar, data, record = _entry(cache)
    assert TheoryGrid.load(data).meta == cold.grid.meta
    assert record["key"] in sidecar.name and record["data_file"] == data.name
    assert (cache.folder / tc.KEY_FILE).stat().st_mode & 0o077 == 0


def test_values_changed_without_new_checksum_are_recomputed(cache, set_dir):
    fn = Counter(set_dir)
    cold = _get(cache, set_dir, fn)
    _, data, _ = _entry(cache)
    _rewrite_values(data, lambda v: v.__imul__(1.01))
    _assert_recomputed(cache, set_dir, fn, r"data file .*\.h5: SHA-256 does not match")
    np.testing.assert_array_equal(_get(cache, set_dir, fn).grid.values, cold.grid.values)


def test_values_changed_with_checksums_recomputed_in_sidecar_are_recomputed(cache, set_dir):
    """An attacker edits the grid and recomputes every checksum the entry carries: the
    sidecar's authentication code, keyed by the cache's secret, no longer matches."""
    fn = Counter(set_dir)
    cold = _get(cache, set_dir, fn)
    sidecar, data, record = _entry(cache)
    _rewrite_values(data, lambda v: v.__imul__(1.01))
    blob = data.read_bytes()
    with h5py.File(data, "r") as f:
        values = f["values"][()]
    record.update(
        data_size=len(blob),
        data_sha256=hashlib.sha256(blob).hexdigest(),
        values_sha256=hashlib.sha256(values.astype("<f8").tobytes()).hexdigest(),
    )
    new_data = data.with_name(f"{sidecar.stem}.{record['data_sha256'][:12]}.h5")
    data.rename(new_data)
    record["data_file"] = new_data.name
    # without the secret: a plain SHA-256 of the record in place of the HMAC
    body = json.dumps({k: record[k] for k in tc._SIDECAR_FIELDS}, sort_keys=True)
    record["hmac_sha256"] = hashlib.sha256(body.encode()).hexdigest()
    sidecar.write_text(json.dumps(record))
    _assert_recomputed(cache, set_dir, fn, "authentication code does not match")
    np.testing.assert_array_equal(_get(cache, set_dir, fn).grid.values, cold.grid.values)


@pytest.mark.parametrize(
    ("which", "problem"), [("data", r"has \d+ bytes, not \d+"), ("sidecar", "not valid JSON")]
)
def test_truncated_entry_is_recomputed(cache, set_dir, which, problem):
    fn = Counter(set_dir)
    _get(cache, set_dir, fn)
    sidecar, data, _ = _entry(cache)
    victim = data if which == "data" else sidecar
    blob = victim.read_bytes()
    victim.write_bytes(blob[: len(blob) // 2])
    _assert_recomputed(cache, set_dir, fn, problem)


def test_missing_data_file_or_secret_is_recomputed(cache, set_dir):
    fn = Counter(set_dir)
    _get(cache, set_dir, fn)
    _, data, _ = _entry(cache)
    data.unlink()
    _assert_recomputed(cache, set_dir, fn, "is missing")
    (cache.folder / tc.KEY_FILE).unlink()
    _assert_recomputed(cache, set_dir, fn, "authentication code does not match .*secret")


def test_entry_with_nan_is_recomputed(cache, set_dir):
    """A NaN stored with checksums that match (as a bug of the computation would store it)."""
    fn = Counter(set_dir)
    cold = _get(cache, set_dir, fn)
    sidecar, data, _ = _entry(cache)
    _rewrite_values(data, lambda v: v.__setitem__((0, 1, 2, 3, 4), np.nan))
    _resign(cache, sidecar, data)
    _assert_recomputed(cache, set_dir, fn, "non-finite value")
    np.testing.assert_array_equal(_get(cache, set_dir, fn).grid.values, cold.grid.values)


def test_wrong_shape_entry_is_recomputed(cache, set_dir):
    """An entry holding two members for a set of one, its checksums matching."""
    fn = Counter(set_dir)
    cold = _get(cache, set_dir, fn)
    sidecar, data, _ = _entry(cache)
    meta = cold.grid.meta.model_copy(update={"pdf_members": [0, 1], "pdf_n_members": 2})
    TheoryGrid(np.concatenate([cold.grid.values] * 2), meta).save(data)
    _resign(cache, sidecar, data)
    _assert_recomputed(cache, set_dir, fn, r"shape \[2, 2, 8, 10, 9\], expected \[1,")


def test_entry_of_another_key_is_refused(cache, set_dir):
    """An entry copied under another key's name (e.g. to pass off a grid of other
    parameters) is refused: the sidecar records its own key."""
    fn = Counter(set_dir)
    _get(cache, set_dir, fn)
    sidecar, _, _ = _entry(cache)
    other = PARAMS.replace(kt_np_gev=2.5)
    key2 = grid_cache_key(set_dir, BINNING, other)
    shutil.copyfile(sidecar, cache.sidecar(SET, key2))
    with pytest.warns(GridCacheWarning, match="sidecar is for key"):
        assert cache.load(SET, key2, n_members=1) is None


def test_content_change_keeping_size_and_mtime_gives_a_new_key(set_dir):
    member = set_dir / f"{SET}_0000.dat"
    key = grid_cache_key(set_dir, BINNING, PARAMS)
    assert grid_cache_key(set_dir, BINNING, PARAMS) == key
    st = member.stat()
    blob = bytearray(member.read_bytes())
    i = blob.rindex(b"e-0")  # one digit of a number changed, the size kept
    blob[i - 1] = ord("1") if blob[i - 1] != ord("1") else ord("2")
    member.write_bytes(bytes(blob))
    os.utime(member, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = member.stat()
    assert (st2.st_size, st2.st_mtime_ns, st2.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert grid_cache_key(set_dir, BINNING, PARAMS) != key


def test_memoised_digest_still_sees_an_edit_keeping_size_and_mtime(set_dir, short_racy_window):
    """With the file's digest memoised (its times older than the racy window), an in-place
    edit that restores size and mtime is still seen: the change time is in the memo's key."""
    member = set_dir / f"{SET}_0000.dat"
    time.sleep(0.1)
    first = tc.file_sha256(member)
    sig = (os.path.abspath(member), *tc._stat_key(member.stat()))
    assert tc._DIGESTS.get(sig) == first  # memoised
    key = grid_cache_key(set_dir, BINNING, PARAMS)
    _edit_in_place_keeping_size_and_mtime(member)
    assert tc.file_sha256(member) != first
    assert grid_cache_key(set_dir, BINNING, PARAMS) != key


def test_code_version_and_inputs_are_in_the_key(set_dir, monkeypatch):
    key = grid_cache_key(set_dir, BINNING, PARAMS)
    assert grid_cache_key(set_dir, BINNING, PARAMS, code_version=tc.GRID_CODE_VERSION + 1) != key
    monkeypatch.setattr(tc, "GRID_CODE_VERSION", tc.GRID_CODE_VERSION + 1)
    assert grid_cache_key(set_dir, BINNING, PARAMS) != key
    monkeypatch.undo()
    monkeypatch.setattr(tc, "__version__", "999.0")
    assert grid_cache_key(set_dir, BINNING, PARAMS) != key
    monkeypatch.undo()
    assert grid_cache_key(set_dir, BINNING, PARAMS) == key
    assert grid_cache_key(set_dir, BINNING + " ", PARAMS) != key
    assert grid_cache_key(set_dir, BINNING, PARAMS.replace(kt_np_gev=2.5)) != key
    assert grid_cache_key(set_dir, BINNING, PARAMS, extra=["archive"]) != key
    (set_dir / "extra_0001.dat").write_text("x")
    assert grid_cache_key(set_dir, BINNING, PARAMS) != key


@pytest.fixture
def short_racy_window(monkeypatch):
    """Memoise files older than 20 ms (instead of 2 s), so that a test can see the memos at
    work; the process's memos are emptied before and after."""
    monkeypatch.setattr(tc, "RACY_NS", 20_000_000)
    tc._DIGESTS.clear()
    tc._VERIFIED.clear()
    yield
    tc._DIGESTS.clear()
    tc._VERIFIED.clear()


def _edit_in_place_keeping_size_and_mtime(member: Path) -> None:
    st = member.stat()
    with open(member, "r+b") as fh:  # same inode
        fh.seek(st.st_size - 2)
        last = fh.read(1)
        fh.seek(st.st_size - 2)
        fh.write(b" " if last != b" " else b"\t")
    os.utime(member, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_digest_file_carries_digests_across_processes(cache, set_dir, short_racy_window):
    time.sleep(0.1)
    key = cache.key(set_dir, BINNING, PARAMS)
    digests = cache.folder / tc.DIGEST_FILE
    doc = json.loads(digests.read_text())
    member = os.path.abspath(set_dir / f"{SET}_0000.dat")
    assert member in doc["entries"]
    tc._DIGESTS.clear()  # a new process: the digests come from the file, nothing is hashed
    hashed = []
    real = hashlib.file_digest
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hashlib, "file_digest", lambda *a: hashed.append(a) or real(*a))
        assert cache.key(set_dir, BINNING, PARAMS) == key
    assert hashed == []
    # an edit keeping size and mtime changes the ctime: hashed again, a new key
    tc._DIGESTS.clear()
    _edit_in_place_keeping_size_and_mtime(Path(member))
    assert cache.key(set_dir, BINNING, PARAMS) != key


def test_edited_digest_file_is_ignored(cache, set_dir, short_racy_window):
    """Someone maps a changed file's new stat to its old digest in the digest file (without
    the cache's secret): the file is refused and the set hashed again."""
    time.sleep(0.1)
    key = cache.key(set_dir, BINNING, PARAMS)
    member = set_dir / f"{SET}_0000.dat"
    _edit_in_place_keeping_size_and_mtime(member)
    digests = cache.folder / tc.DIGEST_FILE
    doc = json.loads(digests.read_text())
    name = os.path.abspath(member)
    doc["entries"][name][:5] = list(tc._stat_key(member.stat()))
    body = json.dumps(doc["entries"], sort_keys=True, separators=(",", ":")).encode()
    doc["hmac_sha256"] = hashlib.sha256(body).hexdigest()
    digests.write_text(json.dumps(doc))
    tc._DIGESTS.clear()
    with pytest.warns(GridCacheWarning, match="authentication code does not match"):
        assert cache.key(set_dir, BINNING, PARAMS) != key


def test_verified_grid_kept_in_memory_until_the_entry_changes(cache, set_dir, short_racy_window):
    fn = Counter(set_dir)
    cold = _get(cache, set_dir, fn)
    time.sleep(0.1)
    first = _get(cache, set_dir, fn)  # verified, then kept
    sidecar, data, _ = _entry(cache)
    assert str(sidecar) in tc._VERIFIED
    first.grid.values[...] = 0.0  # a caller's edit does not reach the kept grid
    hit = _get(cache, set_dir, fn)
    assert hit.cached and fn.calls == 1
    np.testing.assert_array_equal(hit.grid.values, cold.grid.values)
    _rewrite_values(data, lambda v: v.__imul__(1.01))  # changes the data file's stat key
    _assert_recomputed(cache, set_dir, fn, "SHA-256 does not match")


def test_refit_pdf_swap_uses_and_verifies_the_cache(tmp_path, monkeypatch):
    """``resolve_theory`` of an LHAPDF set (``wmass-refit --pdf``): a second look-up is a
    verified hit; an edited entry is recomputed with a warning and the fit's grid is the
    computed one."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from refit_archives import build_tiny

    from wmass_archive.archive.reader import Archive
    from wmass_archive.theory.resolve import resolve_theory

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    arc = build_tiny(tmp_path / "tiny.h5")
    ext = "NNPDF23_lo_as_0119_qed"  # a set the tiny archive does not carry: computed
    with Archive(arc) as a:
        first = resolve_theory(a, ext, paths=[str(PDF_DIR)])
        second = resolve_theory(a, ext, paths=[str(PDF_DIR)])
        assert not first.lhapdf.cached and second.lhapdf.cached
        assert second.lhapdf.grid_file == first.lhapdf.grid_file
        np.testing.assert_array_equal(first.members, second.members)
        _rewrite_values(Path(second.lhapdf.grid_file), lambda v: v.__imul__(2.0))
        with pytest.warns(GridCacheWarning, match=ext):
            third = resolve_theory(a, ext, paths=[str(PDF_DIR)])
        assert not third.lhapdf.cached
        np.testing.assert_array_equal(third.members, first.members)
