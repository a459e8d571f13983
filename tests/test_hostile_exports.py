"""Issue 14, exports: an export replaces only a folder it can prove it wrote (its manifest
.wmass-archive-export.json lists every file with its SHA-256; anything else is refused in one
line unless --overwrite), a crash never leaves a half-written export where a good one was, and
the exports estimate their output and memory before any work and refuse past the bounds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from wmass_archive.cli.export_cmd import export
from wmass_archive.export import ExportError, _folder
from wmass_archive.export._folder import MANIFEST, check_replaceable, install_folder
from wmass_archive.export.hepdata import export_hepdata
from wmass_archive.model.synthetic import write_folded_archive


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder``."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def hepdata_cli(args: list) -> object:
    return CliRunner().invoke(
        export, ["hepdata", *[str(a) for a in args], "--scan-points", "3", "--scheduler", "none"]
    )


def refused(res, *words: str) -> str:
    """The one-line error of a refused command (exit 1), containing ``words``."""
    assert res.exit_code == 1, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in res.output
    for w in words:
        assert w in err, err
    return err


@pytest.fixture(scope="module")
def previous(arcs, tmp_path_factory) -> Path:
    """A HEPData export of the tiny archive (with its manifest); copy it before changing it."""
    out = tmp_path_factory.mktemp("previous") / "submission"
    export_hepdata(arcs["tiny"], out, scan_points=3, scheduler="none")
    return out


# ------------------------------------------------------------------------ folders, HEPData
def test_folder_with_submission_yaml_and_thesis_is_refused(arcs, tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "submission.yaml").write_text("---\ncomment: mine\n")
    (out / "thesis.tex").write_text("\\documentclass{book}\n")
    res = hepdata_cli([arcs["tiny"], "-o", out])
    err = refused(res, str(out), "submission.yaml", "--overwrite")
    assert MANIFEST in err
    assert (out / "thesis.tex").read_text() == "\\documentclass{book}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # no staging left


def test_manifest_lists_every_file(previous):
    doc = json.loads((previous / MANIFEST).read_text())
    assert doc["tool"] == "wmass-archive" and doc["command"] == "export hepdata"
    listed = {f["path"]: f["sha256"] for f in doc["files"]}
    assert listed == {k: v for k, v in snapshot(previous).items() if k != MANIFEST}
    assert "submission.yaml" in listed and "tiny.h5" in listed


def test_previous_export_is_replaced(previous, arcs, tmp_path):
    out = tmp_path / "sub"
    shutil.copytree(previous, out)
    before = (out / MANIFEST).read_text()
    res = hepdata_cli([arcs["tiny"], "-o", out, "--unblind", "-q"])
    assert res.exit_code == 0, res.output
    assert (out / MANIFEST).read_text() != before  # a new export, its own manifest
    assert check_replaceable(out) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_edited_or_extra_file_refused_then_overwritten(previous, arcs, tmp_path):
    out = tmp_path / "sub"
    shutil.copytree(previous, out)
    data = next(p for p in sorted(out.glob("*.yaml")) if p.name != "submission.yaml")
    data.write_text(data.read_text() + "# my note\n")
    refused(hepdata_cli([arcs["tiny"], "-o", out]), str(out), data.name, "changed", "--overwrite")
    shutil.rmtree(out)
    shutil.copytree(previous, out)
    (out / "notes.txt").write_text("mine")
    refused(hepdata_cli([arcs["tiny"], "-o", out]), "notes.txt", "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"
    res = hepdata_cli([arcs["tiny"], "-o", out, "--overwrite", "-q"])
    assert res.exit_code == 0, res.output
    assert not (out / "notes.txt").exists() and check_replaceable(out) is None


def test_crash_while_writing_leaves_the_previous_export(previous, arcs, tmp_path, monkeypatch):
    from wmass_archive.export.hepdata import submission

    out = tmp_path / "sub"
    shutil.copytree(previous, out)
    before = snapshot(out)

    def crash(staging, *args, **kwargs):
        (Path(staging) / "half.yaml").write_text("independent_variables: [")
        raise RuntimeError("power cut")

    monkeypatch.setattr(submission, "require_valid", crash)
    res = hepdata_cli([arcs["tiny"], "-o", out])
    assert res.exit_code == 1 and "power cut" in res.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # staging removed


# ------------------------------------------------------------------------- the folder module
def _export_folder(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    _folder.write_manifest(folder, "test")
    return folder


def test_swap_crash_restores_the_previous_folder(tmp_path, monkeypatch):
    out = _export_folder(tmp_path / "out", {"a.yaml": "old"})
    staging = _folder.staging_folder(out)
    (staging / "a.yaml").write_text("new")
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # staging -> out
            raise OSError("disk gone")
        real(src, dst)

    monkeypatch.setattr(_folder.os, "replace", flaky)
    with pytest.raises(OSError, match="disk gone"):
        install_folder(staging, out)
    assert (out / "a.yaml").read_text() == "old"
    monkeypatch.setattr(_folder.os, "replace", real)
    install_folder(staging, out)
    assert (out / "a.yaml").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_folder_rules(tmp_path):
    check_replaceable(tmp_path / "new")  # a new folder
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty")
    out = _export_folder(tmp_path / "out", {"a.yaml": "1", "sub/b.yaml": "2"})
    check_replaceable(out)
    (out / "a.yaml").unlink()  # a file of the export deleted since: nothing of the user's lost
    check_replaceable(out)
    (out / "sub" / "extra").mkdir()
    with pytest.raises(ExportError, match="sub/extra/"):
        check_replaceable(out)
    check_replaceable(out, overwrite=True)
    (out / "sub" / "extra").rmdir()
    (out / MANIFEST).write_text("{not json")
    with pytest.raises(ExportError, match="does not parse"):
        check_replaceable(out)
    # a link in the folder is not the export's, and --overwrite removes the link, not its target
    out2 = _export_folder(tmp_path / "out2", {"a.yaml": "1"})
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "thesis.tex").write_text("mine")
    (out2 / "link").symlink_to(keep)
    with pytest.raises(ExportError, match="symbolic link"):
        check_replaceable(out2)
    staging = _folder.staging_folder(out2)
    install_folder(staging, out2, overwrite=True)
    assert (keep / "thesis.tex").read_text() == "mine" and not any(out2.iterdir())
    # never a folder that holds the input archive, even with --overwrite
    arc = tmp_path / "out3" / "a.h5"
    _export_folder(tmp_path / "out3", {"a.h5": "x"})
    with pytest.raises(ExportError, match="even with --overwrite"):
        check_replaceable(tmp_path / "out3", overwrite=True, protect=(arc,))


# ------------------------------------------------------------------------------------ bounds
@pytest.fixture(scope="module")
def folded(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bounds") / "folded.h5"
    write_folded_archive(path, two_channels=True)
    return path


def test_pyhf_export_past_the_bound_is_refused(folded, tmp_path):
    out = tmp_path / "ws.json"
    args = ["pyhf", str(folded), "-o", str(out), "--mass-points", "80350,80360,80370"]
    res = CliRunner().invoke(export, [*args, "--max-output-gb", "1e-5"])
    err = refused(res, "estimated output", "GB", "--max-output-gb", "3 patches")
    assert "over the bound of 1e-05 GB" in err
    assert not out.exists() and not (tmp_path / "ws_patchset.json").exists()
    res = CliRunner().invoke(export, [*args, "--max-memory-gb", "0.01"])
    refused(res, "estimated peak memory", "--max-memory-gb")
    res = CliRunner().invoke(export, [*args, "-q"])  # the default bounds: exported
    assert res.exit_code == 0, res.output
    assert out.is_file()


def test_rabbit_export_past_the_bound_is_refused(folded, tmp_path):
    out = tmp_path / "t.hdf5"
    res = CliRunner().invoke(
        export, ["rabbit", str(folded), "-o", str(out), "--dense", "--max-memory-gb", "0.01"]
    )
    refused(res, "export rabbit of folded.h5", "estimated peak memory", "--max-memory-gb")
    assert not out.exists()


def test_estimate_follows_the_real_pyhf_export(demo_archive, folded, tmp_path):
    """The estimate is within 20 % of the bytes written on the demo archive and never far below
    them (conservative on the smallest archive; benchmarks/bench_export_estimate.py)."""
    from wmass_archive.interop.pyhf import export_pyhf

    for path, low, high in ((demo_archive, 0.8, 1.2), (folded, 0.8, 2.0)):
        rep = export_pyhf(path, tmp_path / "ws.json", mass_points=[80350.0, 80360.0])
        real = rep.size_bytes + rep.patchset_bytes
        assert rep.estimate is not None
        assert low < rep.estimate.output_bytes / real < high, (path.name, rep.estimate, real)
