"""docs/theory.md is true to the code: its python blocks run, in order, in an empty folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PDFSETS = Path(
    os.environ.get("WMASS_PDFSETS", Path(__file__).resolve().parents[2] / "shared" / "pdfsets")
)
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.skipif(not PDFSETS.is_dir(), reason="shared PDF sets not available")
def test_theory_page_examples_run(tmp_path, monkeypatch):
    blocks = _PYTHON_BLOCK.findall((DOCS / "theory.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(PDFSETS))
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "docs_theory"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"<theory.md python block {i + 1}>", "exec"), ns)  # noqa: S102
        except Exception as exc:  # pragma: no cover - shown on failure only
            raise AssertionError(
                f"theory.md python block {i + 1} raised {type(exc).__name__}: {exc}\n{code}"
            ) from exc
    assert (tmp_path / "CT10nlo_grid.h5").is_file() and (tmp_path / "theory_example.h5").is_file()


def test_theory_page_numbers_match_the_code():
    """The quoted defaults are the code's."""
    from wmass_archive.theory import TheoryParameters

    text = (DOCS / "theory.md").read_text(encoding="utf-8")
    for field, value in TheoryParameters().model_dump().items():
        combined = {"a1_kappa", "a3_kappa", "ai_mur_factor", "a4_mur_factor"}
        if field.startswith(("v_", "qg_")) or field in combined:  # rows with several fields
            continue
        row = re.search(rf"^\| `{field}` \| ([^|]+) \|", text, re.MULTILINE)
        assert row, f"{field} missing from the parameter table"
        assert float(row.group(1)) == pytest.approx(value), field
