"""The documentation in docs/ is true to the code: the published JSON Schema is current, the
examples run, and the dataset table of the format specification matches real archives."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from wmass_archive.archive import ArchiveWriter, Axis, Citation, Provenance, models
from wmass_archive.archive.schema import metadata_json_schema

DOCS = Path(__file__).resolve().parent.parent / "docs"
FORMAT_MD = DOCS / "format.md"
USER_GUIDE_MD = DOCS / "user-guide.md"
SCHEMA_JSON = DOCS / "schema" / "archive-metadata-v1.json"

_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[str]:
    blocks = _PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))
    assert blocks, f"{path.name} has no python code block"
    return blocks


def run_blocks(blocks: list[str], name: str) -> dict:
    """Execute code blocks in order in one namespace, naming the failing block."""
    ns: dict = {"__name__": f"docs_{name}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"<{name} python block {i + 1}>", "exec"), ns)  # noqa: S102
        except Exception as exc:  # pragma: no cover - shown on failure only
            raise AssertionError(
                f"{name}: python block {i + 1} raised {type(exc).__name__}: {exc}\n---\n{code}"
            ) from exc
    return ns


def read_metadata(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f["metadata"][()].tobytes().decode("utf-8"))


def all_datasets(path: Path) -> dict[str, tuple[str, int]]:
    """Every dataset of the file (walking hard links) with its dtype string and rank."""
    out: dict[str, tuple[str, int]] = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype.str, obj.ndim)

        f.visititems(visit)
    return out


@pytest.fixture(scope="module")
def sparse_response_archive(tmp_path_factory) -> Path:
    """A tiny archive whose response tensor is stored sparse (the demo's is dense)."""
    path = tmp_path_factory.mktemp("sparse") / "sparse.h5"
    w = ArchiveWriter(
        title="sparse response",
        synthetic=True,
        citation=Citation(title="t"),
        provenance=Provenance(producer="tests", producer_version="0"),
        luminosity=10.0,
    )
    w.add_channel("c", np.array([5.0, 6.0, 7.0, 8.0]), axes=[Axis.regular(4, 0.0, 4.0, name="x")])
    w.add_process("sig", kind="signal", folded=True)
    sigma = np.array([1.0, 2.0, 3.0, 4.0])
    response = np.stack([np.diag([0.1, 0.2, 0.3, 0.4])] * 3)  # 25% non-zero: sparse
    w.set_theory([Axis.regular(4, 0.0, 4.0, name="g")], sigma, nominal_pdf="P")
    w.add_pdf_set(
        name="P",
        lhapdf_name="P_lo",
        error_type="hessian",
        members=np.stack([sigma, 1.01 * sigma, 0.99 * sigma]),
    )
    w.set_yield("sig", "c", 10.0 * response[1] @ sigma, sumw2=np.ones(4))
    w.set_response("sig", "c", response)
    w.add_poi(
        name="m",
        kind="mass",
        central=0.0,
        scale=1.0,
        mass_points=[-1.0, 0.0, 1.0],
        acts_on=[{"process": "sig"}],
    )
    w.write(path)
    assert "channels/c/processes/sig/response/value" in read_metadata(path)["datasets"]
    return path


@pytest.fixture(scope="module")
def modifiers_archive(tmp_path_factory) -> Path:
    """A tiny format 1.1 archive holding every kind of extended modifier (section 15)."""
    path = tmp_path_factory.mktemp("v11") / "v11.h5"
    w = ArchiveWriter(
        title="extended modifiers",
        synthetic=True,
        citation=Citation(title="t"),
        provenance=Provenance(producer="tests", producer_version="0"),
    )
    w.add_channel("c", np.array([5.0, 6.0]), axes=[Axis.regular(2, 0.0, 2.0, name="x")])
    w.add_process("b")
    w.set_yield("b", "c", np.array([5.0, 5.0]), sumw2=np.zeros(2))
    w.add_nuisance("n")
    w.add_additive("n", "b", "c", up=np.array([5.5, 5.0]))
    w.add_multiplicative("n", "b", "c", hi=1.1)
    w.add_linear("n", "b", "c", coeff=0.1)
    w.write(path)
    return path


# ----------------------------------------------------------------------------- (a) schema
def test_published_schema_is_current():
    published = json.loads(SCHEMA_JSON.read_text(encoding="utf-8"))
    assert published == metadata_json_schema(), (
        "docs/schema/archive-metadata-v1.json is stale: regenerate it with "
        "`wmass-archive schema -o docs/schema/archive-metadata-v1.json`"
    )


# ----------------------------------------------------------------------------- (b) jsonschema
def test_demo_metadata_satisfies_published_schema(demo_archive_master):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_JSON.read_text(encoding="utf-8"))
    # The schema declares draft 2020-12, which jsonschema 3.2 does not know; it uses no
    # keyword that differs between draft 7 and 2020-12 ($defs is reached by a JSON pointer),
    # so the draft-7 validator applies it as it is ($schema is left in place).
    validator_cls = jsonschema.Draft7Validator
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    doc = read_metadata(demo_archive_master)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert not errors, errors[:5]
    # and the schema does reject a bad document
    bad = dict(doc, channels=[dict(doc["channels"][0], unexpected=1)], synthetic="yes")
    assert len(list(validator.iter_errors(bad))) >= 2


# ----------------------------------------------------------------------------- (c) examples
def test_user_guide_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = run_blocks(python_blocks(USER_GUIDE_MD), "user-guide.md")
    assert (tmp_path / "demo.h5").is_file() and (tmp_path / "tiny.h5").is_file()
    assert ns["write_report"].n_datasets > 0


def _format_example(tmp_path: Path, monkeypatch, archive: Path) -> None:
    blocks = python_blocks(FORMAT_MD)
    for code in blocks:
        assert not re.search(r"^\s*(import|from)\s+wmass_archive", code, re.MULTILINE), (
            "the format.md example must not use wmass_archive"
        )
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(archive, tmp_path / "demo.h5")
    run_blocks(blocks, "format.md")


def test_format_example_runs_on_demo(demo_archive_master, tmp_path, monkeypatch):
    _format_example(tmp_path, monkeypatch, demo_archive_master)


def test_format_example_runs_on_sparse_response(sparse_response_archive, tmp_path, monkeypatch):
    _format_example(tmp_path, monkeypatch, sparse_response_archive)


# ----------------------------------------------------------------------------- (d) layout
def dataset_table() -> list[tuple[str, re.Pattern, str, int]]:
    """(path pattern, regex, dtype, ndim) of every row of format.md's dataset table."""
    text = FORMAT_MD.read_text(encoding="utf-8")
    m = re.search(r"<!-- BEGIN DATASET TABLE.*?-->(.*?)<!-- END DATASET TABLE -->", text, re.DOTALL)
    assert m, "format.md lacks the delimited dataset table"
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        path, shape, dtype = (c.strip("`").replace("\\|", "|") for c in cells[:3])
        path = path.lstrip("/")
        regex = re.compile(
            "^"
            + re.sub(r"<[a-z]+>", "[^/]+", re.escape(path).replace(r"\<", "<").replace(r"\>", ">"))
            + "$"
        )
        ndim = len([s for s in shape.strip("()").split(",") if s.strip()])
        rows.append((path, regex, dtype, ndim))
    assert len(rows) >= 20
    return rows


def test_dataset_table_matches_archives(
    demo_archive_master, sparse_response_archive, modifiers_archive
):
    rows = dataset_table()
    used: set[str] = set()
    for archive in (demo_archive_master, sparse_response_archive, modifiers_archive):
        manifest = read_metadata(archive)["datasets"]
        found = all_datasets(archive)
        assert set(found) == set(manifest) | {"metadata"}
        for path, (dtype, ndim) in found.items():
            matches = [r for r in rows if r[1].match(path)]
            assert len(matches) == 1, f"{archive.name}: {path} matches {len(matches)} table rows"
            pattern, _, want_dtype, want_ndim = matches[0]
            used.add(pattern)
            assert dtype == want_dtype, f"{path}: dtype {dtype}, format.md says {want_dtype}"
            assert ndim == want_ndim, f"{path}: {ndim} dimensions, format.md says {want_ndim}"
            if path in manifest:
                assert manifest[path]["dtype"] == dtype
    unused = [r[0] for r in rows if r[0] not in used]
    assert not unused, f"format.md lists dataset paths no test archive holds: {unused}"


def test_format_md_names_every_metadata_field():
    """Every field of the metadata models is documented (as `field`) in format.md."""
    text = FORMAT_MD.read_text(encoding="utf-8")
    classes = [
        models.ArchiveMetadata,
        models.Citation,
        models.Provenance,
        models.InputRecord,
        models.Channel,
        models.Process,
        models.Group,
        models.Nuisance,
        models.POI,
        models.ProcessSelection,
        models.Luminosity,
        models.Theory,
        models.PDFSet,
        models.TheoryVariation,
        models.DatasetRecord,
        Axis,
    ]
    missing = [
        f"{cls.__name__}.{name}"
        for cls in classes
        for name in cls.model_fields
        if f"`{name}`" not in text
    ]
    assert not missing, f"fields not documented in docs/format.md: {missing}"
