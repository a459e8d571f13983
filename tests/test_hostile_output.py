"""Issue 14, hostile archives: strings from an archive never reach a terminal, a log or a file
name raw. Each archive here is edited as an attacker would (tests/_attacker.py: change the
metadata, recompute the checksums): escape sequences that set the window title and clear the
screen, carriage returns and newlines that forge a result line, NUL, C1 controls and a bidi
override in the title, description, POI names, labels and units and nuisance names; a 300-character
POI name and one made of ``..\\`` for the plot files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _attacker import edit_metadata
from click.testing import CliRunner
from refit_archives import build_rates

from wmass_archive.cli.archive_cmd import main as archive_main
from wmass_archive.cli.refit_cmd import main as refit_main

FAKE = " mW = 80000.0 +- 0.1 MeV"
#: a title/description/label/unit: may hold anything
TEXT = f"\x1b]0;pwned\x07\x1b[2J\x1b[H\r\n{FAKE}\n\x00\x7f\x9b31m\u202eevil\u2028"
#: a POI or nuisance name: no whitespace, no '/', anything else
NAME = "\x1b]0;pwned\x07\x1b[2J\x00\x7f\x9b31m\u202eevil"
LONG = "p" * 300
DOTS = "..\\..\\..\\tmp\\x"


def assert_clean(text: str) -> None:
    """No control character but newline, no DEL, no C1, no bidi override or line separator; the
    forged result line never starts a line."""
    for ch in text:
        o = ord(ch)
        assert o >= 0x20 or ch == "\n", repr(ch)
        assert o != 0x7F and not 0x80 <= o < 0xA0, repr(ch)
        assert ch not in "\u202e\u2028\u2029\u200b", repr(ch)
    for line in text.split("\n"):
        assert not re.match(r"\s*mW = 80000", line), line


def assert_clean_result(res) -> None:
    assert "Traceback" not in res.output
    assert_clean(res.stdout)
    assert_clean(res.stderr)


def run(cli, args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _hostile_doc(doc: dict) -> None:
    doc["title"] = "demo" + TEXT
    doc["description"] = TEXT
    doc["provenance"]["producer"] = "prod" + TEXT
    for p in doc["pois"]:
        p["label"] = TEXT
        p["unit"] = "MeV" + TEXT
    doc["pois"][0]["name"] = NAME
    varied = {v["name"] for v in (doc.get("theory") or {}).get("variations", [])}
    for n in [n for n in doc["nuisances"] if n["name"] not in varied][:2]:
        n["name"] = NAME + n["name"]
        n["label"] = TEXT
    for c in doc["channels"]:
        c["label"] = c["description"] = TEXT
        for a in c["axes"]:
            a["label"] = TEXT
            a["unit"] = "GeV\x1b[2J"
    for p in doc["processes"]:
        p["label"] = p["description"] = TEXT
    for g in doc["groups"]:
        g["description"] = TEXT


@pytest.fixture
def hostile_demo(demo_archive: Path) -> Path:
    edit_metadata(demo_archive, _hostile_doc)
    return demo_archive


@pytest.fixture(scope="module")
def rates_master(tmp_path_factory) -> Path:
    return build_rates(tmp_path_factory.mktemp("hostile") / "rates.h5")


@pytest.fixture
def rates(rates_master: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "rates.h5"
    dst.write_bytes(rates_master.read_bytes())
    return dst


# ------------------------------------------------------------------ wmass-archive
def test_inspect_escapes_archive_strings(hostile_demo):
    res = run(archive_main, ["inspect", hostile_demo])
    assert res.exit_code == 0, res.output
    assert_clean_result(res)
    assert "demo\\x1b]0;pwned\\x07\\x1b[2J" in res.stdout
    assert "\\u202eevil" in res.stdout


def test_inspect_json_is_ascii_and_exact(hostile_demo):
    res = run(archive_main, ["inspect", "--json", hostile_demo])
    assert res.exit_code == 0, res.output
    assert_clean_result(res)
    assert res.stdout.isascii()
    s = json.loads(res.stdout)
    assert s["title"] == "demo" + TEXT  # the JSON keeps the exact string, escaped
    assert s["pois"][0]["name"] == NAME


def test_validate_and_diff_escape(hostile_demo, demo_archive_master):
    res = run(archive_main, ["validate", hostile_demo])
    assert res.exit_code == 0, res.output
    assert_clean_result(res)
    res = run(archive_main, ["diff", demo_archive_master, hostile_demo])
    assert res.exit_code == 3, res.output
    assert_clean_result(res)
    assert "\\x1b" in res.stdout


@pytest.mark.parametrize("field", ["channel", "group", "process"])
def test_refused_name_error_is_one_clean_line(demo_archive, field):
    """Names of HDF5 groups must be SAFE_NAME: the reader refuses a hostile one, and the error
    line (which quotes the value) is escaped."""

    def mutate(doc):
        key = {"channel": "channels", "group": "groups", "process": "processes"}[field]
        doc[key][0]["name"] = "x" + TEXT

    edit_metadata(demo_archive, mutate)
    for cmd in ("inspect", "validate"):
        res = run(archive_main, [cmd, demo_archive])
        assert res.exit_code == 1, res.output
        assert_clean_result(res)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_error_from_path_is_one_clean_line(tmp_path):
    bad = tmp_path / f"no\x1b[2Jsuch{FAKE}\n.h5"
    res = run(archive_main, ["inspect", bad])
    assert res.exit_code == 1
    assert_clean_result(res)
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


# ------------------------------------------------------------------ wmass-refit
def test_refit_result_block_and_plots(rates, tmp_path):
    pytest.importorskip("matplotlib")
    edit_metadata(rates, _hostile_doc)
    plots = tmp_path / "plots"
    js = tmp_path / "r.json"
    res = run(
        refit_main,
        ["--archive", rates, "--scan", "3", "--impacts", "both", "--plot", plots, "--json", js],
    )
    assert res.exit_code == 0, res.output
    assert_clean_result(res)
    assert "\\x1b]0;pwned\\x07" in res.stdout
    # the JSON result keeps the exact names
    assert NAME in json.loads(js.read_text())["pois"]
    _assert_plot_files(plots)


@pytest.mark.parametrize("name", [LONG, DOTS, DOTS + "$\\frac{", LONG[1:] + "$"])
def test_plot_file_names_stay_in_the_folder(rates, tmp_path, name):
    pytest.importorskip("matplotlib")

    def mutate(doc):
        doc["pois"][0]["name"] = name

    edit_metadata(rates, mutate)
    plots = tmp_path / "a" / "plots"
    res = run(refit_main, ["--archive", rates, "--scan", "3", "--impacts", "none", "--plot", plots])
    assert res.exit_code == 0, res.output
    assert_clean_result(res)
    files = _assert_plot_files(plots)
    scans = [f for f in files if f.name.startswith("scan_")]
    assert len(scans) == 2, files  # the scan of the POI, PNG and PDF
    assert not (tmp_path / "tmp").exists() and {p.name for p in tmp_path.iterdir()} == {
        "a",
        "rates.h5",
    }


def _assert_plot_files(plots: Path) -> list[Path]:
    """Every file written is directly inside ``plots``, with a bounded, plain name."""
    files = sorted(p for p in plots.rglob("*"))
    assert files
    for f in files:
        assert f.parent == plots and f.is_file(), f
        assert len(f.name) <= 100 and re.fullmatch(r"[A-Za-z0-9_+\-][A-Za-z0-9._+\-]*", f.name), f
    return files


def test_plot_file_names_never_collide():
    """Two stems that differ only in case, or that map to the same safe name, get two files."""
    from wmass_archive.refit.plots import _file_stem

    files = [Path("scan_mw.png"), Path("scan_mw.pdf")]
    other = _file_stem("scan_MW", files)
    assert other.lower() != "scan_mw" and other.startswith("scan_MW_1-")
    first = _file_stem("scan_a/b", [])
    assert _file_stem("scan_a/b", [Path(first + ".png")]) != first
    assert _file_stem("scan_mW", files[:0]) == "scan_mW"


# ------------------------------------------------------------------ the writer's rule
def _small_writer(title: str = "t"):
    import numpy as np

    from wmass_archive import ArchiveWriter, Axis

    w = ArchiveWriter(
        title=title,
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "t", "producer_version": "0"},
    )
    w.add_channel("c", np.full(3, 5.0), axes=[Axis.regular(3, 0, 1, name="x")])
    w.add_process("s", kind="signal")
    w.set_yield("s", "c", np.full(3, 5.0), sumw2=np.ones(3))
    return w


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("title", "t\x1b[2J"),
        ("title", "two\nlines"),
        ("POI name", "mu\x00"),
        ("POI name", "mu\u202e"),
        ("nuisance name", "n\x9b"),
        ("nuisance name", "n\u200b"),
    ],
)
def test_writer_refuses_unsafe_names(tmp_path, field, bad):
    from wmass_archive.archive import POI
    from wmass_archive.errors import ContentError

    w = _small_writer(bad if field == "title" else "t")
    poi = bad if field == "POI name" else "mu"
    w.add_poi(POI(name=poi, kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "s"}]))
    if field == "nuisance name":
        w.add_nuisance(bad)
    with pytest.raises(ContentError, match=f"^{field} ") as info:
        w.write(tmp_path / "x.h5")
    assert_clean(str(info.value))
    assert not (tmp_path / "x.h5").exists()


def test_writer_accepts_unicode_names(tmp_path):
    """Letters and symbols beyond ASCII stay allowed (only unsafe categories are refused)."""
    from wmass_archive import open_archive
    from wmass_archive.archive import POI

    w = _small_writer("m_W analysis: μ, é, 中")
    w.add_poi(POI(name="μ_sig", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "s"}]))
    w.write(tmp_path / "x.h5")
    with open_archive(tmp_path / "x.h5") as a:
        assert a.metadata.pois[0].name == "μ_sig"


# ------------------------------------------------------------------ the HEPData record
def _strings(obj):
    """Every string in a loaded YAML document, keys included."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def test_hepdata_record_holds_no_control_characters(arcs, tmp_path):
    """The archive's title, description, labels and names reach the YAML escaped."""
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("hepdata_lib")
    from wmass_archive.export.hepdata import export_hepdata

    arc = tmp_path / "tiny.h5"
    arc.write_bytes(arcs["tiny"].read_bytes())

    def mutate(doc):
        doc["title"] = "tiny" + TEXT
        doc["description"] = TEXT
        for n in doc["nuisances"]:
            n["label"] = "label" + TEXT
        for c in doc["channels"]:
            c["label"] = TEXT

    edit_metadata(arc, mutate)
    out = tmp_path / "submission"
    export_hepdata(arc, out, scan_points=5, scheduler="none")
    texts = []
    for f in sorted(out.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            texts += list(_strings(doc))
    joined = "\n".join(texts)
    assert "tiny\\x1b]0;pwned\\x07" in joined and "label\\x1b" in joined
    for s in texts:
        assert_clean(s)
