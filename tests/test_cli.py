"""The wmass-archive command: inspect, diff, demo, schema, help."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from wmass_archive.archive.checksums import array_sha256, bytes_sha256
from wmass_archive.cli.archive_cmd import main


@pytest.fixture
def runner():
    return CliRunner()


def test_help_lists_commands(runner):
    r = runner.invoke(main, ["--help"])
    assert r.exit_code == 0
    for cmd in ("validate", "inspect", "diff", "demo", "schema"):
        assert cmd in r.output


def test_inspect_json_has_the_documented_keys(runner, demo_archive_master):
    r = runner.invoke(main, ["inspect", "--json", str(demo_archive_master)])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    for key in (
        "format_version",
        "synthetic",
        "n_bins",
        "channels",
        "processes",
        "n_nuisances",
        "nuisance_groups",
        "pdf_sets",
        "pois",
    ):
        assert key in s
    assert s["synthetic"] is True and s["n_bins"] == 240 and s["format_version"] == "1.0.0"
    assert {p["name"] for p in s["pdf_sets"]} == {"DemoHessian", "DemoReplicas"}
    for p in s["pdf_sets"]:
        assert set(p) >= {"name", "lhapdf_name", "error_type", "n_members", "scale"}
    # the nominal Hessian set (7 members) brings 3 nuisances on top of the 53 stored
    assert s["n_nuisances"] == 56 and s["nuisance_groups"]["pdfDemoHessian"] == 3
    assert s["nuisance_groups"]["muon_eff_stat"] == 24
    assert s["pois"][0]["name"] == "mW"


def test_inspect_text_says_synthetic(runner, demo_archive_master):
    r = runner.invoke(main, ["inspect", str(demo_archive_master)])
    assert r.exit_code == 0
    assert "SYNTHETIC" in r.output and "muon_eff_stat" in r.output and "DemoReplicas" in r.output


def test_validate_ok(runner, demo_archive_master):
    r = runner.invoke(main, ["validate", str(demo_archive_master)])
    assert r.exit_code == 0 and r.output.startswith("OK ")


def test_diff_identical(runner, demo_archive_master, demo_archive):
    r = runner.invoke(main, ["diff", str(demo_archive_master), str(demo_archive)])
    assert r.exit_code == 0 and "no differences" in r.output


def _rewrite(path, mutate_meta=None, arrays=None):
    """Change metadata and/or arrays of an archive in place, keeping checksums right."""
    with h5py.File(path, "r+") as f:
        meta = json.loads(f["metadata"][()].tobytes())
        for dpath, arr in (arrays or {}).items():
            del f[dpath]
            f.create_dataset(dpath, data=arr)
            meta["datasets"][dpath]["sha256"] = array_sha256(arr)
        if mutate_meta:
            mutate_meta(meta)
        blob = json.dumps(meta).encode()
        del f["metadata"]
        f.create_dataset("metadata", data=np.frombuffer(blob, np.uint8))
        f.attrs["metadata_sha256"] = bytes_sha256(blob)


def test_diff_reports_changes(runner, demo_archive_master, demo_archive):
    with h5py.File(demo_archive, "r") as f:
        nom = f["channels/mu/processes/Zmumu/nominal"][()]
    nom2 = nom.copy()
    nom2[3] *= 1.01

    def mutate(m):
        m["title"] = "changed title"
        m["nuisances"][0]["groups"] = ["experiment"]
        m["theory"]["pdf_sets"][1]["scale"] = 5.0

    _rewrite(demo_archive, mutate, {"channels/mu/processes/Zmumu/nominal": nom2})
    r = runner.invoke(main, ["diff", str(demo_archive_master), str(demo_archive)])
    assert r.exit_code == 3, r.output
    assert "title" in r.output
    assert "nuisance 'pTModeling_np' changed" in r.output
    assert "PDF set 'DemoReplicas' changed: scale 3.0 -> 5.0" in r.output
    assert "channels/mu/processes/Zmumu/nominal: 1 of 240 values differ" in r.output
    # within a loose tolerance the template change disappears
    r2 = runner.invoke(
        main, ["diff", "--rtol", "0.02", str(demo_archive_master), str(demo_archive)]
    )
    assert "Zmumu/nominal" not in r2.output


def test_diff_added_nuisances(tmp_path):
    from wmass_archive.archive import open_archive
    from wmass_archive.archive.diff import diff_archives
    from wmass_archive.producers.demo import DemoConfig, build_demo_archive

    build_demo_archive(tmp_path / "a.h5", DemoConfig(n_eta=4))
    build_demo_archive(tmp_path / "b.h5", DemoConfig(n_eta=6))
    with open_archive(tmp_path / "a.h5") as a, open_archive(tmp_path / "b.h5") as b:
        d = diff_archives(a, b)
    text = "\n".join(d.lines())
    assert not d.identical
    assert "nuisances added: muonScale_eta4" in text
    assert "channel 'mu': binning changed" in text


def test_demo_and_schema_commands(runner, tmp_path):
    out = tmp_path / "sub" / "demo.h5"
    r = runner.invoke(main, ["demo", "-o", str(out)])
    assert r.exit_code == 0 and out.exists() and "compression" in r.output
    r = runner.invoke(main, ["schema"])
    assert r.exit_code == 0 and json.loads(r.output)["title"].startswith("wmass-archive metadata")


def test_unknown_path_is_one_line(runner, tmp_path):
    r = runner.invoke(main, ["inspect", str(tmp_path / "nope.h5")])
    assert r.exit_code == 1
    assert r.output.strip().count("\n") == 0 and "no such file" in r.output
    assert "Traceback" not in r.output


def test_commands_start_without_jax():
    """The package, its commands and the model's memory estimate import without JAX (1.2 s a
    process instead of 4): only what fits or builds a model starts it."""
    import subprocess
    import sys

    code = (
        "import sys, wmass_archive, wmass_archive.cli.archive_cmd, wmass_archive.cli.refit_cmd, "
        "wmass_archive.cli.export_cmd, wmass_archive.model.budget; print('jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
