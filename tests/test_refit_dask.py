"""The fits of PDF sweeps, bias studies and toys run on a local dask cluster by default (one
single-threaded worker process per core, when there is more than one fit): the same results as
in this process, the options that choose where they run, and the cluster's clean end."""

from __future__ import annotations

import os

import pytest

from wmass_archive.refit import RefitError, refit
from wmass_archive.refit.tasks import (
    WORKER_ENV,
    FitTask,
    ModelSpec,
    TaskExecutor,
    n_cores,
)


def where_and_how(task: FitTask) -> dict:
    """Where a task runs: process, XLA flags, SIGINT disposition (no fit)."""
    import signal

    return {
        "label": task.label,
        "pid": os.getpid(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "sigint_ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
    }


def test_options_are_checked():
    for kwargs, match in (
        ({"workers": 0}, ">= 1"),
        ({"scheduler": "tcp://host:8786", "workers": 2}, "own workers"),
        ({"scheduler": "local:3", "workers": 2}, "disagree"),
        ({"scheduler": "local:x"}, "local:N"),
    ):
        with pytest.raises(RefitError, match=match):
            TaskExecutor(**kwargs)
    assert TaskExecutor(workers=1).in_process(10)
    assert TaskExecutor(scheduler="none").in_process(10)
    assert TaskExecutor().in_process(1)  # a single fit never starts a cluster
    assert TaskExecutor().in_process(10) == (n_cores() < 2)
    assert TaskExecutor(scheduler="local:2").workers == 2


def test_local_cluster_workers(capsys):
    """Worker processes of one thread for XLA that ignore SIGINT; a progress bar names them."""
    spec = ModelSpec("unused.h5")
    tasks = [FitTask(label=str(i), spec=spec) for i in range(4)]
    with TaskExecutor(workers=2, progress=True) as ex:
        outs = ex.run(tasks, "fits", where_and_how)
        assert ex.used == "local dask cluster, 2 workers"
        assert ex.run(tasks[:1], "again", where_and_how)[0]["pid"] in {o["pid"] for o in outs}
    assert [o["label"] for o in outs] == ["0", "1", "2", "3"]
    assert os.getpid() not in {o["pid"] for o in outs}
    assert all(WORKER_ENV["XLA_FLAGS"] in o["xla_flags"] and o["sigint_ignored"] for o in outs)
    assert "fits (local dask cluster, 2 workers)" in capsys.readouterr().err
    assert ex._cluster is None and ex._client is None  # closed


def _compare(arcs, **kw):
    """``refit`` on the local cluster (the default; 2 workers where there is 1 core) and in
    this process (``workers=1``): the same numbers."""
    workers = None if n_cores() >= 2 else 2
    dist = refit(arcs["tiny"], workers=workers, impacts="none", **kw)
    local = refit(arcs["tiny"], workers=1, impacts="none", **kw)
    assert any("local dask cluster" in n for n in dist.notes)
    assert not any("dask" in n for n in local.notes)
    return dist, local


# 30 s (a local cluster started, JAX compiled in its workers); in the fast set, tasks on a local
# cluster: test_local_cluster_workers, tests/test_pseudo_processing.py::
# test_dask_local_cluster_equals_local_run; the same toys on dask bit for bit:
# tests/test_concurrency.py::test_dask_toys_match_in_process_toys (slow as well)
@pytest.mark.slow
def test_toys_on_the_default_cluster(arcs):
    dist, local = _compare(arcs, toys=2, seed=4)
    assert dist.toys.n_converged == local.toys.n_converged == 2
    assert dist.toys.std_mev == pytest.approx(local.toys.std_mev, rel=1e-8)
    assert dist.toys.mean_unc_mev == pytest.approx(local.toys.mean_unc_mev, rel=1e-8)
    assert dist.toys.pull_mean == pytest.approx(local.toys.pull_mean, rel=1e-8, abs=1e-10)


@pytest.mark.slow
def test_pdf_sweep_and_bias_on_the_default_cluster(arcs):
    dist, local = _compare(arcs, pdf_sweep=True, pdf_bias=True)
    for a, b in zip(local.sweep, dist.sweep, strict=True):
        assert a.pdf == b.pdf and b.converged
        assert b.scaled_shift_mev == pytest.approx(a.scaled_shift_mev, abs=1e-6)
        assert b.scaled_unc_mev == pytest.approx(a.scaled_unc_mev, rel=1e-8)
        assert b.pdf_unc_mev == pytest.approx(a.pdf_unc_mev, rel=1e-6, abs=1e-9)
    for a, b in zip(local.bias, dist.bias, strict=True):
        assert b.bias_mev == pytest.approx(a.bias_mev, abs=1e-6)
        assert b.scale_needed == a.scale_needed
