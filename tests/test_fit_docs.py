"""docs/fit.md is true to the code: its Python examples run, in order, in one namespace, on the
small synthetic archive they write themselves; every fit option they document exists."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from wmass_archive.fit import fit

DOC = Path(__file__).resolve().parent.parent / "docs" / "fit.md"
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _PYTHON_BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 10
    ns: dict = {"__name__": "docs_fit"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"<fit.md python block {i + 1}>", "exec"), ns)  # noqa: S102
        except Exception as exc:  # pragma: no cover - shown on failure only
            raise AssertionError(
                f"fit.md: python block {i + 1} raised {type(exc).__name__}: {exc}\n{code}"
            ) from exc
    assert ns["result"].converged and ns["light"].covariance_mode == "pois"
    assert [q.name for q in ns["split"].pois] == ["mW_plus", "mW_minus"]
    assert (tmp_path / "fit.json").is_file()


def test_documented_options_exist():
    text = DOC.read_text(encoding="utf-8")
    params = inspect.signature(fit).parameters
    for opt in re.findall(r"`(\w+)=", text):
        if opt in ("bb", "poi", "pdf"):  # build options, passed through fit
            assert opt in params
        elif opt not in ("randomize",):  # an option of toy/run_toys
            assert opt in params, f"docs/fit.md documents fit({opt}=...), which does not exist"
