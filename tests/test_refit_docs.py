"""docs/refit.md is true to the code: its Python examples run, in order, on the small test
archive (WMASS_ARCHIVE_DEFAULT) with the shared LHAPDF sets; its option table lists every
option of ``wmass-refit``."""

from __future__ import annotations

import re
from pathlib import Path

from refit_archives import pdf_dir

DOC = Path(__file__).resolve().parent.parent / "docs" / "refit.md"
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_python_examples_run(arcs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WMASS_ARCHIVE_DEFAULT", str(arcs["tiny"]))
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(pdf_dir()))
    # studies in this process, as on a 1-core machine (the cluster: test_refit_dask.py)
    monkeypatch.setattr("wmass_archive.refit.tasks.n_cores", lambda: 1)
    blocks = _PYTHON_BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    ns: dict = {"__name__": "docs_refit"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"<refit.md python block {i + 1}>", "exec"), ns)  # noqa: S102
        except Exception as exc:  # pragma: no cover - shown on failure only
            raise AssertionError(
                f"refit.md: python block {i + 1} raised {type(exc).__name__}: {exc}\n{code}"
            ) from exc
    # the tiny archive lacks NNPDF23: the external-set example ran
    assert ns["others"] == ["NNPDF23_lo_as_0119_qed"]
    assert ns["rx"].pdf.source == "lhapdf"
    assert abs(ns["rk"].mw.shift_mev - ns["mw"].shift_mev) > 0.05
    # the Refitter's loop: 20 grids, mW falls with k_T through the nominal 2.7 GeV
    assert len(ns["shifts"]) == 20 and ns["shifts"][0] > 0 > ns["shifts"][-1]
    assert abs(ns["rn"].mw.shift_mev - ns["r31"].mw.shift_mev) < 0.01
    assert (tmp_path / "my_prediction.csv").is_file() and (tmp_path / "nominal.json").is_file()


def test_option_table_is_complete():
    from wmass_archive.cli.refit_cmd import main

    text = DOC.read_text(encoding="utf-8")
    for p in main.params:
        for opt in p.opts:
            if opt.startswith("--") and opt not in ("--help", "--version"):
                assert f"`{opt}" in text, f"{opt} is not documented in docs/refit.md"
