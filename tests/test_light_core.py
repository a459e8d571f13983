"""A core install (``pip install wmass-archive``, no extras) reads, refits and runs
``wmass-refit``; a feature whose extra is missing stops with one line naming the extra.

The optional packages are made unimportable in a subprocess by a ``sys.meta_path`` finder
(:data:`DRIVER`), so this runs in the test environment, where every extra is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wmass_archive._optional import require
from wmass_archive.errors import ArchiveError, MissingExtraError

ROOT = Path(__file__).resolve().parents[1]

#: the extras' packages (and what they bring that the code could reach for)
BLOCKED = [
    "pyhf",
    "jsonpatch",
    "jsonpointer",
    "uproot",
    "awkward",
    "hepdata_lib",
    "hepdata_validator",
    "yaml",
    "matplotlib",
    "mplhep",
    "dask",
    "distributed",
    "psutil",
    "lhapdf_management",
]

#: python DRIVER.py BLOCKED_JSON (wmass-refit|wmass-archive ARGS... | -c CODE)
DRIVER = r"""
import json, sys

BLOCKED = set(json.loads(sys.argv[1]))


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
for m in [m for m in sys.modules if m.partition(".")[0] in BLOCKED]:
    del sys.modules[m]

what, args = sys.argv[2], sys.argv[3:]
if what == "-c":
    exec(args[0])
    sys.exit(0)
if what == "wmass-refit":
    from wmass_archive.cli.refit_cmd import main
else:
    from wmass_archive.cli.archive_cmd import main
main(args=args, prog_name=what)
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("light") / "driver.py"
    p.write_text(DRIVER)
    return p


def run(driver: Path, *args: str, blocked=BLOCKED) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("WMASS_ARCHIVE_DEBUG", None)
    return subprocess.run(
        [sys.executable, str(driver), json.dumps(blocked), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_require_names_the_extra():
    with pytest.raises(MissingExtraError) as e:
        require("wmass_archive_no_such_package.sub", "plot", "wmass-refit --plot")
    assert str(e.value) == (
        'wmass-refit --plot needs wmass_archive_no_such_package: pip install "wmass-archive[plot]"'
    )
    assert isinstance(e.value, ArchiveError) and isinstance(e.value, ImportError)
    assert require("json", "plot", "x").dumps([]) == "[]"


def test_core_imports_without_the_extras(driver):
    code = f"""
import importlib
for m in {BLOCKED!r}:
    try:
        importlib.import_module(m)
    except ImportError:
        continue
    raise SystemExit(f"{{m}} is not blocked")
import wmass_archive
from wmass_archive.refit import refit, Refitter
import wmass_archive.cli.refit_cmd, wmass_archive.cli.archive_cmd
for m in ("build_cmd", "export_cmd", "export_pyhf", "export_hepdata", "import_cmd",
          "import_pyhf", "import_combine", "import_rabbit", "theory_cmd", "pdf_cmd"):
    importlib.import_module("wmass_archive.cli." + m)
for m in ("refit.plots", "refit.tasks", "interop.pyhf", "interop.combine", "interop.rabbit",
          "producers.pseudo.processing", "export"):
    importlib.import_module("wmass_archive." + m)
from wmass_archive.errors import MissingExtraError
try:
    import wmass_archive.export.hepdata
except MissingExtraError as exc:
    print(exc)
"""
    r = run(driver, "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        'wmass-archive export hepdata needs hepdata-lib: pip install "wmass-archive[hepdata]"'
    )


def test_core_refits_and_sweeps_without_dask(driver, demo_archive_master):
    """wmass-refit on the demo archive; the PDF sweep asked for 2 workers runs in the process
    (same results, one warning naming the extra)."""
    r = run(
        driver,
        "wmass-refit",
        "--archive",
        str(demo_archive_master),
        "--impacts",
        "none",
        "--pdf-sweep",
        "--workers",
        "2",
    )
    assert r.returncode == 0, r.stderr
    assert "mW - 80360.0 MeV =" in r.stdout and "PDF sweep" in r.stdout
    assert (
        "warning: dask is not installed: the 2 tasks (PDF sweep) run one after the other in "
        'this process (pip install "wmass-archive[dask]" runs them in parallel)'
    ) in r.stderr.splitlines()


def _pyhf_workspace(path: Path) -> Path:
    ws = {
        "channels": [{"name": "c", "samples": [{"name": "s", "data": [1.0], "modifiers": []}]}],
        "observations": [{"name": "c", "data": [1.0]}],
        "measurements": [{"name": "m", "config": {"poi": "", "parameters": []}}],
        "version": "1.0.0",
    }
    path.write_text(json.dumps(ws))
    return path


@pytest.mark.parametrize(
    "what, args, line",
    [
        (
            "wmass-refit",
            ["--archive", "{demo}", "--plot", "{tmp}/plots"],
            'wmass-refit --plot needs matplotlib: pip install "wmass-archive[plot]"',
        ),
        (
            "wmass-archive",
            ["export", "pyhf", "{demo}", "-o", "{tmp}/ws.json"],
            'wmass-archive export pyhf needs pyhf: pip install "wmass-archive[interop]"',
        ),
        (
            "wmass-archive",
            ["import", "pyhf", "{ws}", "{tmp}/imported.h5"],
            'wmass-archive import pyhf needs pyhf: pip install "wmass-archive[interop]"',
        ),
        (
            "wmass-archive",
            ["export", "hepdata", "{demo}", "-o", "{tmp}/hepdata"],
            'wmass-archive export hepdata needs hepdata-lib: pip install "wmass-archive[hepdata]"',
        ),
        (
            "wmass-refit",
            ["--archive", "{demo}", "--pdf-sweep", "--scheduler", "tcp://127.0.0.1:9"],
            '--scheduler tcp://127.0.0.1:9 needs distributed: pip install "wmass-archive[dask]"',
        ),
        (
            "wmass-archive",
            ["build-demo", "--small", "--scheduler", "tcp://127.0.0.1:9", "-o", "{tmp}/b.h5"],
            "wmass-archive build-demo --scheduler needs distributed: "
            'pip install "wmass-archive[dask]"',
        ),
    ],
    ids=[
        "refit-plot",
        "export-pyhf",
        "import-pyhf",
        "export-hepdata",
        "refit-scheduler",
        "build-demo-scheduler",
    ],
)
def test_missing_extra_is_one_line(driver, demo_archive_master, tmp_path, what, args, line):
    ws = _pyhf_workspace(tmp_path / "ws.json")
    fill = dict(demo=str(demo_archive_master), tmp=str(tmp_path), ws=str(ws))
    r = run(driver, what, *[a.format(**fill) for a in args])
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.splitlines() == [f"error: {line}"]
    assert not (tmp_path / "plots").exists()  # refused before the fit, the folder not made
