"""The published JSON Schema of the refit result is current (regenerate with
``python -c "from wmass_archive.refit import write_json_schema as w;
w('docs/schema/refit-result-v1.json')"``)."""

from __future__ import annotations

import json
from pathlib import Path

from wmass_archive.refit.schema import SCHEMA_FILE, json_schema

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schema" / SCHEMA_FILE


def test_published_schema_is_current():
    assert SCHEMA.is_file(), f"{SCHEMA} is missing: generate it with write_json_schema"
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        f"{SCHEMA.name} is out of date: regenerate it with "
        "wmass_archive.refit.write_json_schema('docs/schema/refit-result-v1.json')"
    )


def test_schema_documents_the_required_fields():
    s = json_schema()
    props = s["properties"]
    for key in ("archive", "pdf", "synthetic", "blinded", "pois", "impacts", "gof", "timing_s"):
        assert key in props, key
    assert {"nominal", "global"} <= set(s["$defs"]["Impacts"]["properties"])
    assert "value_mev" in s["$defs"]["POIValue"]["properties"]
    assert s["$schema"].endswith("2020-12/schema") and s["$id"].endswith(SCHEMA_FILE)


def test_timing_has_every_step_of_the_fitter():
    """The refit's timing copies the main fit's steps by name (refit.api), so it must have a
    field for each of them (the two models stay separate so that reading a result does not
    import JAX)."""
    from wmass_archive.fit.result import Timing
    from wmass_archive.refit.schema import TimingOut

    assert set(Timing.model_fields) <= set(TimingOut.model_fields)
