"""Concurrency (issue 7, part 4; docs/reliability.md): many readers of one archive at once,
readers beside processes that hold the file open (HDF5 file locking), an archive replaced by a
writer while readers have it open, and toys on a dask cluster.

The reader opens files with HDF5 file locking off (``h5py.File(path, "r", locking=False)``):
an archive is never modified in place (the writer publishes a new file by an atomic rename), so
a reader has nothing to lock against, and it is not stopped by a process that holds the file
open for writing or by a file system without lock support.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from wmass_archive import open_archive, validate_archive
from wmass_archive.archive.checksums import array_sha256
from wmass_archive.producers.demo import DemoConfig, build_demo_archive

MINI = DemoConfig(n_eta=4, n_pt=4, n_y=2, n_ptw=2, n_replicas=6, n_hessian_pairs=1)

READER = r"""
import json, os, sys, time
path, ready, index, n, out, cache = sys.argv[1:7]
from wmass_archive import open_archive, validate_archive
from wmass_archive.fit import enable_compilation_cache, fit
from wmass_archive.model.build import build_model

enable_compilation_cache(cache)
with open_archive(path) as a:
    data = a.data(a.channels[0].name)
    open(os.path.join(ready, index), "w").close()
    t0 = time.monotonic()
    while len(os.listdir(ready)) < int(n):  # every reader holds the file open from here on
        if time.monotonic() - t0 > 600:
            sys.exit("the other readers did not open the archive")
        time.sleep(0.005)
    report = validate_archive(path)
    model = build_model(a)
res = fit(model, impacts=("nominal",))
d = res.to_dict()
d.pop("timing")
with open(out, "w") as fh:
    json.dump({"fit": d, "data": float(data.sum()), "datasets": report.n_datasets}, fh)
"""


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("concurrency") / "mini.h5"
    build_demo_archive(path, MINI)
    return path


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
    """One persistent compilation cache for the processes of this module (WMASS_JAX_CACHE,
    inherited by subprocesses and dask workers): the fit's kernels are compiled once."""
    folder = tmp_path_factory.mktemp("jax-cache")
    old = os.environ.get("WMASS_JAX_CACHE")
    os.environ["WMASS_JAX_CACHE"] = str(folder)
    yield folder
    if old is None:
        del os.environ["WMASS_JAX_CACHE"]
    else:
        os.environ["WMASS_JAX_CACHE"] = old


@pytest.mark.parametrize("n_readers", [4, pytest.param(8, marks=pytest.mark.slow)])
def test_many_processes_read_one_archive(mini, tmp_path, jax_cache, n_readers):
    """4 processes (8 under ``pytest -m slow``) open the archive, wait until all of them hold it
    open, then validate it, build the model and fit it: none blocks another, and all results are
    identical."""
    cache = jax_cache
    ready = tmp_path / "ready"
    ready.mkdir()

    def start(i: int, n: int, folder: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", READER, str(mini), str(folder), str(i), str(n)]
            + [str(tmp_path / f"out{i}.json"), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # one reader first, alone: it compiles the fit's kernels into the shared cache
    warm = tmp_path / "warm"
    warm.mkdir()
    p = start(n_readers, 1, warm)
    _, err = p.communicate(timeout=900)  # reads and closes the pipes
    assert p.returncode == 0, err[-3000:]
    procs = [start(i, n_readers, ready) for i in range(n_readers)]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    results = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(n_readers + 1)]
    assert results[0]["fit"]["converged"] and results[0]["datasets"] == 27
    texts = {json.dumps(r, sort_keys=True) for r in results}
    assert len(texts) == 1, "the readers' results differ"


HOLDER = r"""
import sys, h5py
path, mode = sys.argv[1], sys.argv[2]
f = h5py.File(path, mode)  # h5py's default: HDF5 file locking as the environment says
print("HOLDING", flush=True)
sys.stdin.read()
f.close()
"""


def _in_thread(fn, timeout: float = 120.0):
    """Run ``fn`` in a thread: its result, or an AssertionError if it blocks."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"blocked for more than {timeout} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.parametrize("mode", ["r", "r+"])
@pytest.mark.parametrize("locking", [None, "TRUE", "FALSE"])
def test_reader_beside_a_process_holding_the_file(mini, tmp_path, mode, locking):
    """Another process holds the archive open (to read, or to write, with HDF5's file lock):
    the reader opens, reads and validates it at once, whatever HDF5_USE_FILE_LOCKING says."""
    path = tmp_path / "held.h5"
    path.write_bytes(mini.read_bytes())
    digest = validate_archive(path).bytes_verified
    env = dict(os.environ)
    env.pop("HDF5_USE_FILE_LOCKING", None)
    if locking is not None:
        env["HDF5_USE_FILE_LOCKING"] = locking
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "HOLDING", holder.stderr.read()
        t0 = time.monotonic()
        report = _in_thread(lambda: validate_archive(path))
        assert report.bytes_verified == digest
        with open_archive(path) as a:
            assert a.data("mu").shape == (32,)
        assert time.monotonic() - t0 < 60
        if locking != "FALSE" and mode == "r+":
            # control: a reader that asks for HDF5's lock is refused while a writer holds it
            with pytest.raises(OSError, match="lock"):
                h5py.File(path, "r", locking=True)
    finally:
        holder.communicate(timeout=60)  # closes stdin (the holder's signal), reads the rest


def test_replacing_an_archive_under_open_readers(tmp_path):
    """A writer replaces the archive (atomic rename) while a reader has it open: the reader
    keeps reading the old file, every checksum verified against the old manifest; a reader
    opened afterwards sees the new archive."""
    path = tmp_path / "live.h5"
    build_demo_archive(path, MINI)
    old_copy = tmp_path / "old-copy.h5"
    old_copy.write_bytes(path.read_bytes())
    with open_archive(path) as a:
        first = a.data("mu")
        inode = os.stat(path).st_ino
        build_demo_archive(path, DemoConfig(n_eta=5, n_pt=4, true_shift=2.0))
        assert os.stat(path).st_ino != inode
        after = {p: a.read(p) for p in a.metadata.datasets}  # checksums verified (verify=True)
        assert np.array_equal(a.data("mu"), first)
    with h5py.File(old_copy, "r") as f:
        for p, arr in after.items():
            assert array_sha256(arr) == array_sha256(f[p][()]), p
    with open_archive(path) as b:
        assert b.data("mu").shape == (40,)
    assert validate_archive(path).n_datasets == 27


def test_refit_sees_an_archive_replaced_at_the_same_path(tmp_path, jax_cache):
    """Found here: the refit layer kept built models by path only, so that a refit in the same
    process after the archive at that path was replaced returned the old archive's result.
    The cache key now holds the file's identity (device, inode, size, modification time)."""
    from wmass_archive.refit import refit

    path = tmp_path / "replaced.h5"
    build_demo_archive(path, replace(MINI, true_shift=0.0))
    r1 = next(iter(refit(path, impacts="none").pois.values()))
    build_demo_archive(path, replace(MINI, true_shift=3.0))
    r2 = next(iter(refit(path, impacts="none").pois.values()))
    # pseudo-data 300 MeV higher: the fitted shift follows (by more than 10 sigma)
    assert r2.value_mev - r1.value_mev > 10 * r1.unc_mev, (r1.value_mev, r2.value_mev)


@pytest.mark.slow  # a dask cluster
def test_dask_toys_match_in_process_toys(mini, jax_cache):
    """Toys as dask tasks on a LocalCluster of 2 worker processes give exactly the values of
    the same tasks run in this process (each toy has its own seed), bit for bit
    (tests/test_refit_dask.py compares refit's toy statistics to 1e-8)."""
    from wmass_archive.refit.tasks import FitTask, ModelSpec, run_tasks

    spec = ModelSpec(str(mini))
    n_tasks = 8
    tasks = [
        FitTask(label=f"toys{s}", spec=spec, kind="toys", n_toys=2, seed=s)
        for s in range(0, 2 * n_tasks, 2)
    ]
    here = run_tasks(tasks, scheduler="none")
    there = run_tasks(tasks, scheduler="local:2")
    assert [o["label"] for o in there] == [t.label for t in tasks]
    for a, b in zip(here, there, strict=True):
        assert a["toys"]["converged"] == [True, True]
        assert json.dumps(a["toys"]) == json.dumps(b["toys"]), a["label"]
    values = [v for o in here for v in o["toys"]["values"]]
    assert len({json.dumps(v) for v in values}) == len(values)  # different seeds, other toys
