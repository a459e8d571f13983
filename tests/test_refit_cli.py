"""``wmass-refit`` from the command line: the result block, JSON, plots, and every bad input as
one line on stderr with exit status 1 (2 for usage errors), never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from refit_archives import pdf_dir

from wmass_archive.cli.refit_cmd import main
from wmass_archive.theory import compute_set_grid


def run(args, env=None):
    res = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
    return res


def assert_one_line_error(res, code=1, match=None):
    assert res.exit_code == code, res.output
    err = res.stderr.strip()
    assert "Traceback" not in res.output
    if code == 1:
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    if match is not None:
        assert match in err, err
    return err


def test_no_argument_refits_the_default_archive(arcs):
    res = run([], env={"WMASS_ARCHIVE_DEFAULT": str(arcs["tiny"])})
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "tiny.h5" in out and "CT10nlo" in out and "SYNTHETIC" in out and "BLINDED" in out
    assert "mW - 80360.0 MeV = " in out and "(stat " in out
    assert "nominal   global" in out and "Goodness of fit" in out


def test_missing_default_archive(tmp_path):
    res = run([], env={"WMASS_ARCHIVE_DEFAULT": str(tmp_path / "default.h5")})
    assert_one_line_error(res, 1, "build-demo")


def test_json_and_plots(arcs, tmp_path):
    pytest.importorskip("matplotlib")
    js = tmp_path / "out" / "r.json"
    js.parent.mkdir()
    plots = tmp_path / "plots"
    res = run(
        [
            "--archive",
            arcs["tiny"],
            "--pdf",
            "CT10",
            "--unblind",
            "--scan",
            "5",
            "--json",
            js,
            "--plot",
            plots,
            "--impacts",
            "nominal",
        ]
    )
    assert res.exit_code == 0, res.output
    d = json.loads(js.read_text())
    assert d["blinded"] is False and d["pdf"]["name"] == "CT10nlo"
    assert d["impacts"]["global"] == {} and d["impacts"]["nominal"]["muonCalibration"] > 0
    assert "mW = 803" in res.stdout and "BLINDED" not in res.stdout
    jsonschema = pytest.importorskip("jsonschema")
    from wmass_archive.refit.schema import json_schema

    jsonschema.validate(d, json_schema())
    names = {p.name for p in plots.iterdir()}
    for stem in (
        "postfit_unrolled",
        "postfit_plus_pt",
        "postfit_minus_eta",
        "pulls_impacts",
        "impacts_groups",
        "scan_mW",
        "genlevel_plus_ptW",
        "genlevel_minus_absYW_coeffs",
    ):
        assert f"{stem}.png" in names and f"{stem}.pdf" in names, names


def test_unknown_pdf_set(arcs):
    res = run(["--archive", arcs["tiny"], "--pdf", "NNPDF40", "--pdf-path", pdf_dir()])
    err = assert_one_line_error(res, 1, "unknown PDF set 'NNPDF40'")
    assert "CT10nlo" in err and "NNPDF31" in err and "NNPDF23_lo_as_0119_qed" in err


def test_theory_grid_errors(arcs, tmp_path):
    grid = compute_set_grid("CT10nlo", paths=[str(pdf_dir())], members=0, progress=False)
    good = tmp_path / "g.csv"
    grid.save(good)
    lines = good.read_text().splitlines()
    # wrong axes: a |y| bin edge that is not the generator binning's
    bad_axes = tmp_path / "axes.csv"
    bad_axes.write_text(
        "\n".join(
            x.replace(",0,0.5,", ",0,0.6,", 1) if i > 3 else x
            for i, x in enumerate(lines[:1] + lines[3:])
        )
        + "\n"
    )
    res = run(["--archive", arcs["tiny"], "--theory-grid", bad_axes])
    assert_one_line_error(res, 1)
    # negative cross section
    neg = grid.values.copy()
    neg[0, 0, 0, 0, 0] = -1.0
    with h5py.File(tmp_path / "g.h5", "w") as f:  # written behind TheoryGrid's back
        f.attrs["format"] = "wmass-theory-grid"
        f.attrs["format_version"] = "1.0"
        f.create_dataset("metadata", data=grid.meta.model_dump_json())
        f.create_dataset("values", data=neg)
        f.create_dataset("members", data=np.array([0]))
    res = run(["--archive", arcs["tiny"], "--theory-grid", tmp_path / "g.h5"])
    assert_one_line_error(res, 1, "negative sigma_UL")
    # units: a grid in fb
    fb = grid.values * 1000.0
    from wmass_archive.theory import TheoryGrid

    TheoryGrid(fb, grid.meta).save(tmp_path / "fb.h5")
    res = run(["--archive", arcs["tiny"], "--theory-grid", tmp_path / "fb.h5"])
    assert_one_line_error(res, 1, "wrong units")
    res = run(["--archive", arcs["tiny"], "--theory-grid", tmp_path / "missing.csv"])
    assert_one_line_error(res, 2)


def test_damaged_archive(arcs, tmp_path):
    bad = tmp_path / "damaged.h5"
    shutil.copyfile(arcs["tiny"], bad)
    with h5py.File(bad, "r+") as f:
        f["channels/mu/data"][0] += 1.0
    for extra in ([], ["--validate"]):
        res = run(["--archive", bad, *extra])
        assert_one_line_error(res, 1, "checksum")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an archive")
    assert_one_line_error(run(["--archive", notes]), 1)


def test_unwritable_outputs(arcs, tmp_path):
    res = run(["--archive", arcs["tiny"], "--json", tmp_path / "nope" / "r.json"])
    assert_one_line_error(res, 1, "does not exist")
    res = run(["--archive", arcs["tiny"], "--json", tmp_path])  # click's usage error
    assert_one_line_error(res, 2)
    assert "is a directory" in res.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run(["--archive", arcs["tiny"], "--plot", blocker / "plots"])
    assert_one_line_error(res, 1, "plot folder")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        res = run(["--archive", arcs["tiny"], "--json", ro / "r.json"])
        assert_one_line_error(res, 1, "permission denied")


def test_usage_errors(arcs):
    res = run(["--archive", arcs["tiny"], "--poi", "mz"])  # not a POI of this archive
    assert_one_line_error(res, 1, "unknown POI 'mz'")
    assert run(["--archive", arcs["tiny"], "--workers", "0"]).exit_code == 2
    assert run(["--archive", arcs["tiny"], "--scan", "1"]).exit_code == 2
    assert run(["--archive", arcs["tiny"], "--impacts", "all"]).exit_code == 2
    res = run(["--archive", arcs["tiny"], "--freeze", "noSuchGroup"])
    assert_one_line_error(res, 1, "noSuchGroup")
    res = run(["--archive", arcs["tiny"], "--pdf-scale", "-2"])
    assert_one_line_error(res, 1, "positive")


def test_ctrl_c_in_process(arcs, monkeypatch):
    import wmass_archive.refit.api as mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(mod, "refit", interrupted)
    res = run(["--archive", arcs["tiny"]])
    assert res.exit_code == 130 and res.stderr.strip() == "interrupted"


def _refit_process(arcs, *args):
    env = {**os.environ, "WMASS_ARCHIVE_JAX_CACHE": "0"}
    cmd = [sys.executable, "-m", "wmass_archive.cli.refit_cmd", "--archive", str(arcs["tiny"])]
    return subprocess.Popen(
        [*cmd, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,  # its own process group, as a command in a terminal
        # as typed in a terminal: a shell starting this suite in the background (``pytest &``)
        # passes SIGINT on as ignored, and Python then installs no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _assert_interrupted(p):
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err, err


def test_ctrl_c_process(arcs):
    """SIGINT while fitting in the process: exit 130 and one line."""
    p = _refit_process(arcs, "--toys", "500", "--workers", "1")
    time.sleep(6.0)
    p.send_signal(signal.SIGINT)
    _assert_interrupted(p)


# 18 s (a local cluster started and fitting); in the fast set, Ctrl-C while fitting in the
# process: test_ctrl_c_process, and the cluster's workers ignoring SIGINT and closed after use:
# tests/test_refit_dask.py::test_local_cluster_workers
@pytest.mark.slow
def test_ctrl_c_local_cluster(arcs):
    """Ctrl-C (SIGINT to the whole process group) while toys run on the default local dask
    cluster: exit 130 and one line, and the cluster's worker processes are gone."""
    psutil = pytest.importorskip("psutil")
    p = _refit_process(arcs, "--toys", "5000", "--workers", "2")
    proc = psutil.Process(p.pid)
    deadline = time.monotonic() + 120
    workers: list = []
    while time.monotonic() < deadline and p.poll() is None:
        kids = proc.children(recursive=True)
        workers = [c for c in kids if "spawn_main" in " ".join(c.cmdline())]
        # fitting: past the start-up (a Ctrl-C while the workers start is not seen)
        if len(workers) >= 2 and all(w.cpu_times().user > 3.0 for w in workers):
            break
        time.sleep(0.5)
    assert len(workers) >= 2, "the local cluster did not start"
    os.killpg(p.pid, signal.SIGINT)
    _assert_interrupted(p)
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"worker processes left running: {[w.pid for w in alive]}"
