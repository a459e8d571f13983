"""Issue 14, hostile archives: a model's memory is bounded before it is built.

The archives are built as an attacker builds them (tests/_attacker.py): the demo archive with
40 000 nuisances added to its metadata (still ~2 MB), a Hessian PDF set declared with 20 001
members (a hollow members dataset), a generator axis of millions of bins (a response stored
sparse and empty, densified to points x bins x n_gen). ``wmass-refit`` refuses each with one
line that gives the estimate and ``--max-memory``, quickly, in a process whose address space
is limited to 4 GiB (nothing big is allocated first); raising the bound lets a larger (but
still small) model through. The estimate itself is checked against hand calculations.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _attacker import edit_metadata, hollow_dataset, write_array

from wmass_archive.archive.reader import ReadLimits, open_archive
from wmass_archive.errors import ArchiveError, HostileArchiveError, ResourceLimitError
from wmass_archive.model import budget as B
from wmass_archive.model import build_model
from wmass_archive.model.budget import estimate_model_bytes, memory_bound
from wmass_archive.refit import refit

#: address-space limit of the refusing process (JAX alone reserves about 2 GiB of it)
RLIMIT_AS = 4 * 2**30
#: wall-clock limit of a refusal (the issue: within 60 s; it takes a few seconds)
REFUSAL_SECONDS = 60.0


# ----------------------------------------------------------------------------- attackers
def add_nuisances(path: Path, n: int) -> Path:
    """``n`` more nuisances in the metadata (no variations, no arrays)."""

    def mutate(doc: dict) -> None:
        doc["nuisances"] += [{"name": f"bomb{i}"} for i in range(n)]

    edit_metadata(path, mutate)
    return path


def big_pdf_set(path: Path, n_members: int = 20_001) -> Path:
    """The nominal (Hessian) set declared with ``n_members`` members, stored hollow."""
    edit_metadata(path, lambda d: d["theory"]["pdf_sets"][0].update(n_members=n_members))
    hollow_dataset(path, "theory/pdf/DemoHessian/members", (n_members, 360), (512, 360))
    return path


def huge_generator_axis(path: Path, bins: int = 100_000) -> Path:
    """A generator axis of ``bins`` bins (n_gen = 2 x bins x 5 x 9) with the signal's response
    stored sparse and empty: a few bytes that densify to 3 x 240 x n_gen numbers."""
    import h5py

    base = "channels/mu/processes/Wmunu/response"
    with h5py.File(path, "r+") as f:
        del f[base]

    def mutate(doc: dict) -> None:
        doc["theory"]["generator_axes"][1]["bins"] = bins
        del doc["datasets"][base]

    edit_metadata(path, mutate)
    for k, dt in (("point", "<i4"), ("bin", "<i4"), ("gen", "<i4"), ("value", "<f8")):
        write_array(path, f"{base}/{k}", np.zeros(0, dtype=dt))
    return path


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (RLIMIT_AS, RLIMIT_AS))


def run_refit(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    """``wmass-refit ARGS`` in a process limited to :data:`RLIMIT_AS` of address space."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "wmass_archive.cli.refit_cmd", "-q", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory,
        check=False,
    )
    return out, time.perf_counter() - t0


def assert_refused(out: subprocess.CompletedProcess, seconds: float, what: str) -> str:
    """Exit 1, one line on stderr naming the estimate, its largest part and --max-memory."""
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in out.stderr
    assert "--max-memory" in line and "max_model_bytes" in line
    assert " GB" in line and what in line, line
    assert "unexpected" not in line and "MemoryError" not in line
    assert seconds < REFUSAL_SECONDS
    return line


# ----------------------------------------------------------------------------- the CLI
def test_forty_thousand_nuisances_refused(demo_archive):
    path = add_nuisances(demo_archive, 40_000)
    assert path.stat().st_size < 10 * 2**20
    out, sec = run_refit("--archive", str(path))
    line = assert_refused(out, sec, "Hessian and covariance")
    assert "1 + 40053 + 3 PDF parameters" in line


def test_validate_agrees_with_refit(demo_archive):
    """``wmass-archive validate`` applies wmass-refit's memory bound (from the metadata): it
    refuses the bomb with the same line, and accepts it under a raised ``--max-memory``."""
    from click.testing import CliRunner

    from wmass_archive.cli.archive_cmd import main

    path = add_nuisances(demo_archive, 40_000)
    r = CliRunner().invoke(main, ["validate", str(path)])
    assert r.exit_code == 1 and r.stderr.startswith("error: "), r.output
    assert "Hessian and covariance" in r.stderr and "--max-memory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = CliRunner().invoke(main, ["validate", str(path), "--max-memory", "100"])
    assert r.exit_code == 0 and r.output.startswith("OK "), r.output


def test_twenty_thousand_pdf_members_refused(demo_archive):
    path = big_pdf_set(demo_archive)
    assert path.stat().st_size < 10 * 2**20
    out, sec = run_refit("--archive", str(path))
    line = assert_refused(out, sec, "GB")
    assert "10000 PDF parameters" in line


def test_huge_generator_axis_refused(demo_archive):
    path = huge_generator_axis(demo_archive)
    assert path.stat().st_size < 10 * 2**20
    out, sec = run_refit("--archive", str(path))
    assert_refused(out, sec, "folding in the fit")


def test_max_memory_lowers_the_bound(demo_archive):
    """3 000 extra nuisances: refused under a 0.5 GB bound."""
    path = add_nuisances(demo_archive, 3_000)
    out, sec = run_refit("--archive", str(path), "--max-memory", "0.5")
    assert_refused(out, sec, "GB")
    assert "bound of 0.50 GB" in out.stderr


@pytest.mark.slow  # 15 s
def test_max_memory_lets_a_larger_model_through(demo_archive):
    """3 000 extra nuisances, fitted under a 1.5 GB bound (its peak is well under that, in a
    process limited to 4 GiB of address space); the API's raised bound is in CI below."""
    path = add_nuisances(demo_archive, 3_000)
    out, _ = run_refit("--archive", str(path), "--max-memory", "1.5", "--impacts", "none")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mW" in out.stdout


def test_max_memory_must_be_positive(demo_archive):
    from click.testing import CliRunner

    from wmass_archive.cli.refit_cmd import main

    r = CliRunner().invoke(main, ["--archive", str(demo_archive), "--max-memory", "0"])
    assert r.exit_code == 2 and "--max-memory" in r.output


# ----------------------------------------------------------------------------- the API
def test_api_refuses(demo_archive):
    path = add_nuisances(demo_archive, 40_000)
    t0 = time.perf_counter()
    with pytest.raises(ResourceLimitError, match="--max-memory") as exc:
        refit(path)
    assert time.perf_counter() - t0 < REFUSAL_SECONDS
    assert isinstance(exc.value, HostileArchiveError) and isinstance(exc.value, ArchiveError)
    assert "\n" not in str(exc.value)
    with pytest.raises(ResourceLimitError, match="Hessian and covariance"):
        build_model(path)
    with pytest.raises(ResourceLimitError, match="bound of 1.00 GB"):
        refit(path, max_memory=1.0)


def test_api_bound_raised(demo_archive):
    """The bound comes from the argument, else memory_bound(), else the archive's limits."""
    path = add_nuisances(demo_archive, 3_000)
    with open_archive(path) as a:
        est = estimate_model_bytes(a.metadata).total
    low = est // 2
    with pytest.raises(ResourceLimitError):
        build_model(path, max_model_bytes=low)
    with open_archive(path, limits=ReadLimits(max_model_bytes=low)) as a:
        with pytest.raises(ResourceLimitError):
            build_model(a)
        m = build_model(a, max_model_bytes=2 * est)
        assert m.n_params == 1 + 53 + 3000 + 3
        with memory_bound(2 * est):
            assert build_model(a).n_params == m.n_params
    with memory_bound(low), pytest.raises(ResourceLimitError):
        build_model(path)
    with pytest.raises(ArchiveError, match="positive"):
        refit(path, max_memory=-1.0)


def test_default_bound_passes_real_models(demo_archive):
    """The demo archive's estimate is far under the default bound; with its layout it stays
    close to the metadata's (the check of build_model passes)."""
    assert ReadLimits().max_model_bytes == B.DEFAULT_MAX_MODEL_BYTES == 2 * 2**30
    m = build_model(demo_archive)
    with open_archive(demo_archive) as a:
        e0 = estimate_model_bytes(a.metadata)
        e1 = estimate_model_bytes(a.metadata, layout=m.layout)
    assert e0.total < 0.3 * B.DEFAULT_MAX_MODEL_BYTES
    assert e1.n_dense == m.static.n_dense and e1.exact_structure
    assert e1.total < 0.3 * B.DEFAULT_MAX_MODEL_BYTES


# ----------------------------------------------------------------------------- the estimate
def _demo_meta(path: Path):
    with open_archive(path) as a:
        return a.metadata


def test_estimate_by_hand(demo_archive):
    """The demo: 1 POI, 53 nuisances, DemoHessian (7 members, 3 nuisances), 12 theory
    variations, 5 processes x 240 bins, n_gen = 2 x 4 x 5 x 9 = 360, a dense response of
    3 mass points, 9 dense logk rows and 1200 sparse entries."""
    e = estimate_model_bytes(_demo_meta(demo_archive))
    n_params, n_theory, n_gen, n_slots, n_bins = 57, 15, 360, 1200, 240
    assert (e.n_params, e.n_pois, e.n_nuisances, e.n_pdf) == (57, 1, 53, 3)
    n_dense = 1 + n_theory + 9  # POI, theory nuisances, dense logk rows
    assert e.n_dense == n_dense and not e.exact_structure
    p = e.parts
    assert p["runtime"] == 500_000_000
    assert p["parameter tables"] == 57 * 32 * 1024
    assert p["Hessian and covariance"] == 8 * (4 * n_dense**2 + 2 * n_params**2)
    assert p["dense blocks"] == 8 * 8 * (n_slots + n_bins) * n_dense
    response = 3 * 240 * 360 * 8
    assert p["response tensors"] == response
    assert p["folding in the fit"] == 2 * response + 5 * 3 * 240 * n_theory * 8
    # read: nominal + 12 up + 12 down, 7 members, 3 up + 3 down; rows: dA dH mA mH x2 + 2
    assert p["theory grids"] == n_gen * 8 * (2 * (1 + 24 + 7 + 6) + 8 * n_theory + 2 * n_theory)
    entries = 9 * 240 + 1200
    assert p["logk entries"] == 160 * entries
    yields = (2 * 5 + 1) * 240 * 8 + 2 * n_slots * 8
    assert p["inputs read"] == 2 * (yields + 28 * entries) + response
    n_sparse = n_params - n_dense
    assert p["sparse blocks"] == 8 * (4 * 5 * 1200 + 5 * n_sparse + 5 * n_sparse * n_dense)
    held = sum(p.values()) - p["inputs read"] - p["dense blocks"] - p["folding in the fit"]
    held -= p["sparse blocks"]
    fit = p["dense blocks"] + p["folding in the fit"] + p["sparse blocks"]
    assert e.total == held + max(p["inputs read"], fit)
    assert e.largest == ("runtime", 500_000_000)
    assert e.describe().startswith("1 + 53 + 3 PDF parameters, 240 bins: about 0.51 GB")


def test_estimate_scales_with_declared_counts(demo_archive):
    meta = _demo_meta(demo_archive)
    base = estimate_model_bytes(meta)
    # another PDF set: DemoReplicas, 21 members and 4 eigenvectors, 4 nuisances
    rep = estimate_model_bytes(meta, pdf="DemoReplicas")
    assert rep.n_pdf == 4 and rep.n_params == 58
    assert rep.parts["theory grids"] == 360 * 8 * (2 * (1 + 24 + 21 + 4 + 8) + 10 * 16)
    # a split POI, the generic model: every parameter dense
    assert estimate_model_bytes(meta, n_pois=2).n_params == 58
    gen = estimate_model_bytes(meta, bb="combine")
    assert gen.n_dense == 57 and gen.exact_structure
    assert gen.parts["dense blocks"] == 32 * 8 * (1200 + 240) * 57
    # no covariance: only the dense Hessian blocks
    assert estimate_model_bytes(meta, covariance=False).parts["Hessian and covariance"] == (
        8 * 4 * 25**2
    )
    # 40 000 more nuisances: the covariance's n_params^2
    add_nuisances(demo_archive, 40_000)
    big = estimate_model_bytes(_demo_meta(demo_archive))
    assert big.n_params == 40_057
    assert big.largest == ("Hessian and covariance", 8 * (4 * 25**2 + 2 * 40_057**2))
    assert big.total > 25e9 and big.total - base.total > 25e9


def test_estimate_uses_layout(demo_archive):
    m = build_model(demo_archive)
    lay = m.layout
    e = estimate_model_bytes(_demo_meta(demo_archive), layout=lay)
    blocks = sum(b.n_blocks * b.size**2 for b in lay.buckets)
    padded = sum(b.n_blocks * b.size for b in lay.buckets)
    sd = max(padded, lay.n_sparse) * lay.n_dense
    assert e.parts["sparse blocks"] == 8 * (4 * lay.flat_size + 5 * blocks + 5 * sd)
    assert e.n_dense == lay.n_dense


def test_hollow_pdf_set_estimate(demo_archive):
    e = estimate_model_bytes(_demo_meta(big_pdf_set(demo_archive)))
    assert e.n_pdf == 10_000 and e.n_dense == 1 + 10_012 + 9
    assert e.total > 4e9


# ----------------------------------------------------------------------------- structure
def test_connector_search_bounded(monkeypatch):
    """A component of many parameters on one bin: over MAX_DEGREE_PAIRS the connector search
    (a members x members product) is skipped and the component stays one block."""
    from wmass_archive.model import structure

    n = 300  # all on bin 0, plus a row each on its own bin
    param = np.concatenate([np.arange(n), np.arange(n)])
    bins = np.concatenate([np.zeros(n, int), 1 + np.arange(n)])
    assert structure._pairs(np.arange(n), np.stack([param, bins]), n, n + 1) == n * n + n
    monkeypatch.setattr(structure, "MAX_DEGREE_PAIRS", 10)
    dense = structure.classify(n, np.zeros(0, int), param, bins, n + 1, max_block=128)
    assert not dense.any()


def test_layout_bounded():
    """build_layout refuses padded blocks over max_bytes before allocating them."""
    from wmass_archive.model.structure import build_layout

    n, n_bins = 2000, 4000
    param = np.arange(n)
    slot = np.arange(n) * 2  # one bin each, 2000 blocks of size 1
    dense = np.zeros(n + 1, dtype=bool)
    dense[n] = True
    lay = build_layout(dense, param, slot, n_bins, 1, max_bytes=10**6)
    assert lay.flat_size == n
    with pytest.raises(ResourceLimitError, match="sparse blocks"):
        build_layout(dense, param, slot, n_bins, 1, max_bytes=1000)


def test_tasks_carry_the_bound_to_other_processes():
    """Fits run on dask workers in other processes (sweeps, bias studies, toys) build their
    models from the task's specs: run_tasks stamps the bound in force onto them."""
    from wmass_archive.model.budget import memory_bound
    from wmass_archive.refit.tasks import FitTask, ModelSpec, run_tasks

    tasks = [
        FitTask("a", ModelSpec("x.h5"), pseudo=ModelSpec("y.h5")),
        FitTask("b", ModelSpec("x.h5", max_model_bytes=7)),
    ]

    def seen(t):
        return {"spec": t.spec.max_model_bytes, "pseudo": t.pseudo and t.pseudo.max_model_bytes}

    with memory_bound(123):
        out = run_tasks(tasks, scheduler="none", runner=seen)
    assert out == [{"spec": 123, "pseudo": 123}, {"spec": 7, "pseudo": None}]
    assert run_tasks(tasks[:1], scheduler="none", runner=seen) == [{"spec": None, "pseudo": None}]
