"""Format 1.1 in the archive layer (docs/format.md section 15): the extended modifiers, the
poisson constraint and ``mc_stat`` are written, read back exactly, validated, and refused with
one-line messages; archives without them stay format 1.0.0, byte for byte."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import h5py
import hist
import numpy as np
import pytest

from wmass_archive.archive import POI, ArchiveWriter, Axis, layout, open_archive, validate_archive
from wmass_archive.archive.checksums import array_sha256, bytes_sha256
from wmass_archive.archive.models import ArchiveMetadata, Channel, Nuisance
from wmass_archive.errors import ArchiveError, ContentError, CorruptArchiveError, MetadataError

ROOT = Path(__file__).resolve().parent.parent
NB = 4  # bins of channel "a"
NOM = {"s": np.array([5.0, 8.0, 6.0, 2.0]), "b": np.array([20.0, 15.0, 0.0, 9.0])}
UP = np.array([22.0, 15.0, 1.5, 8.0])
DOWN = np.array([19.0, 14.0, 0.0, 9.5])
SIGMA = np.array([1.0, 2.0])  # theory grid of the folded process "f", pb


def writer(**kwargs) -> ArchiveWriter:
    created = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    return ArchiveWriter(
        title="format 1.1 test",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "tests", "producer_version": "0", "created": created},
        **kwargs,
    )


def base(w: ArchiveWriter, folded: bool = False) -> ArchiveWriter:
    """Channel "a" (4 bins, processes s, b, and the folded f when ``folded``) and channel "c"
    (2 bins, process b); a rate POI mu on s; nuisances n1..n3."""
    w.add_channel("a", np.array([30.0, 25.0, 8.0, 12.0]), axes=[Axis.regular(NB, 0, 4, name="x")])
    w.add_channel("c", np.array([3.0, 4.0]), axes=[Axis.regular(2, 0, 2, name="y")])
    w.add_process("s", kind="signal")
    w.add_process("b")
    for p, v in NOM.items():
        w.set_yield(p, "a", v, sumw2=0.1 * v)
    w.set_yield("b", "c", [3.0, 3.5], sumw2=[0.0, 0.0])  # sumw2 may be all zeros
    w.add_poi(POI(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "s"}]))
    for n in ("n1", "n2", "n3"):
        w.add_nuisance(n)
    if folded:
        w.set_theory([Axis.regular(2, 0, 2, name="g")], SIGMA, nominal_pdf="P")
        w.add_pdf_set(name="P", lhapdf_name="P_t", error_type="symmhessian", members=[SIGMA])
        w.add_process("f", folded=True)
        r = np.array([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]]])
        w.set_yield("f", "a", r[0] @ SIGMA, sumw2=np.zeros(NB))
        w.set_response("f", "a", r)
    return w


def full_writer(folded: bool = False, mc_stat: str | None = "normal") -> ArchiveWriter:
    """Every kind of modifier, each code, the default ``down``/``lo``, hist inputs, a poisson
    nuisance and ``mc_stat``."""
    w = base(writer(mc_stat=mc_stat, luminosity=1.0 if folded else None), folded)
    w.add_nuisance("g0", constraint="poisson", tau=16.0)
    ax = Axis.regular(NB, 0, 4, name="x").to_hist()
    h_up = hist.Hist(ax)
    h_up.view()[:] = UP
    w.add_additive("n1", "b", "a", up=h_up, down=DOWN, code=4)
    w.add_additive("n2", "b", "a", up=UP, code=0)  # symmetric
    w.add_additive("n1", "s", "a", up=NOM["s"] * 1.1, down=NOM["s"] * 0.95, code=2)
    w.add_multiplicative("n1", "b", "a", hi=1.1, lo=0.8, code=4)
    w.add_multiplicative("n2", "s", "a", hi=[1.1, 1.2, 1.0, 0.9], code=4)  # lo = 1/hi
    w.add_multiplicative("n3", "s", "a", hi=1.05, code=0)  # lo = 2 - hi
    w.add_multiplicative("n3", "b", "c", hi=1.2, lo=0.9, code=1)
    w.add_linear("g0", "b", "a", coeff=0.25, bins=[3, 0])
    w.add_linear("n3", "b", "a", coeff=[0.1, 0.0, 0.2, 0.3])  # the zero is dropped
    return w


@pytest.fixture(scope="module")
def v11_archive(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v11") / "v11.h5"
    full_writer(folded=True).write(path)
    return path


def damaged(src: Path, tmp_path: Path, dpath: str, data: np.ndarray) -> Path:
    """A copy of ``src`` with the dataset ``dpath`` replaced by ``data`` and the manifest and
    metadata checksums updated, so that only the value rules can catch it."""
    dst = tmp_path / "damaged.h5"
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        del f[dpath]
        f.create_dataset(dpath, data=data)
        doc = json.loads(f[layout.METADATA][()].tobytes())
        doc["datasets"][dpath].update(shape=list(data.shape), sha256=array_sha256(data))
        blob = json.dumps(doc).encode()
        del f[layout.METADATA]
        f.create_dataset(layout.METADATA, data=np.frombuffer(blob, dtype=np.uint8))
        f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)
    return dst


def edit_metadata(path: Path, mutate) -> None:
    with h5py.File(path, "r+") as f:
        doc = json.loads(f[layout.METADATA][()].tobytes())
        mutate(doc)
        blob = json.dumps(doc).encode()
        del f[layout.METADATA]
        f.create_dataset(layout.METADATA, data=np.frombuffer(blob, dtype=np.uint8))
        f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)
        f.attrs[layout.ATTR_VERSION] = doc["format_version"]


def raw_metadata(path: Path) -> bytes:
    with h5py.File(path, "r") as f:
        return f[layout.METADATA][()].tobytes()


# ----------------------------------------------------------------------------- round trip
def test_round_trip_of_every_dataset(v11_archive):
    assert validate_archive(v11_archive).format_version == "1.1.0"
    with open_archive(v11_archive) as a:
        m = a.metadata
        assert m.format_version == "1.1.0" and m.mc_stat == "normal"
        assert m.channel("a").modifiers == ["additive", "multiplicative", "linear"]
        assert m.channel("c").modifiers == ["multiplicative"]
        g0 = m.nuisance("g0")
        assert (g0.constraint, g0.tau, g0.prior_scale) == ("poisson", 16.0, 1.0)
        par = {n: m.parameter_index(n) for n in m.parameter_names}
        proc = {p.name: m.process_index(p.name) for p in m.processes}
        t = a.modifiers("a")
        # additive rows sorted by (parameter, process): (n1, s), (n1, b), (n2, b)
        assert t.additive.parameter.tolist() == [par["n1"], par["n1"], par["n2"]]
        assert t.additive.process.tolist() == [proc["s"], proc["b"], proc["b"]]
        assert t.additive.code.tolist() == [2, 4, 0]
        np.testing.assert_array_equal(t.additive.up[0], NOM["s"] * 1.1 - NOM["s"])
        np.testing.assert_array_equal(t.additive.down[0], NOM["s"] * 0.95 - NOM["s"])
        np.testing.assert_array_equal(t.additive.up[1], UP - NOM["b"])
        np.testing.assert_array_equal(t.additive.down[1], DOWN - NOM["b"])
        np.testing.assert_array_equal(t.additive.down[2], NOM["b"] - UP)  # symmetric
        mu = t.multiplicative
        assert mu.code.tolist() == [4, 4, 0]  # (n1, b), (n2, s), (n3, s)
        np.testing.assert_array_equal(mu.hi[0], [1.1] * NB)
        np.testing.assert_array_equal(mu.lo[0], [0.8] * NB)
        np.testing.assert_array_equal(mu.lo[1], 1.0 / np.array([1.1, 1.2, 1.0, 0.9]))
        np.testing.assert_array_equal(mu.lo[2], [2.0 - 1.05] * NB)
        lin = t.linear  # sorted by (parameter, process, bin), zero coefficient dropped
        assert lin.parameter.tolist() == [par["n3"]] * 3 + [par["g0"]] * 2
        assert lin.bin.tolist() == [0, 2, 3, 0, 3]
        np.testing.assert_array_equal(lin.coeff, [0.1, 0.2, 0.3, 0.25, 0.25])
        tc = a.modifiers("c")
        assert tc.additive.n_rows == 0 and tc.linear.nnz == 0 and tc.additive.up.shape == (0, 2)
        np.testing.assert_array_equal(tc.multiplicative.lo, [[0.9, 0.9]])
        # the datasets of the kinds a channel lists, and no others
        paths = set(m.datasets)
        assert layout.modifier("c", "multiplicative", "hi") in paths
        assert not any(p.startswith("channels/c/modifiers/additive") for p in paths)
        assert m.datasets[layout.modifier("a", "additive", "up")].shape == [3, NB]
        assert m.datasets[layout.modifier("a", "linear", "bin")].dtype == "<i4"


def test_without_v11_content_the_archive_is_1_0_0_byte_for_byte(tmp_path):
    """The metadata bytes of a 1.0 archive are those the 1.0 writer wrote (SHA-256 recorded
    with the writer before format 1.1 was added): no 1.1 field appears, not even a default."""
    created = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    w = ArchiveWriter(
        title="t",
        synthetic=True,
        citation={"title": "c"},
        provenance={"producer": "p", "producer_version": "0", "created": created},
    )
    w.add_group("g")
    w.add_channel("ch", np.array([5.0, 6, 7]), axes=[Axis.regular(3, 0, 3, name="x")])
    w.add_process("s", kind="signal")
    w.add_process("b")
    w.set_yield("s", "ch", [1.0, 2, 3], sumw2=[0.1, 0.2, 0.3])
    w.set_yield("b", "ch", [4.0, 4, 4], sumw2=[0.0, 0, 0])
    w.add_poi(POI(name="mu", kind="rate", central=1, scale=1, acts_on=[{"process": "s"}]))
    w.add_nuisance("n1", groups=["g"], constraint="none", prior_scale=0.5)
    w.add_variation("n1", "b", "ch", kappa=1.1)
    w.write(tmp_path / "v10.h5")
    blob = raw_metadata(tmp_path / "v10.h5")
    assert hashlib.sha256(blob).hexdigest() == (
        "2cb927ed20dab920f564e890bd37e1179ea8108c983a5a3a751807802e9e4b20"
    )
    doc = json.loads(blob)
    assert doc["format_version"] == "1.0.0" and "mc_stat" not in doc
    assert "modifiers" not in doc["channels"][0] and "tau" not in doc["nuisances"][0]


@pytest.mark.parametrize("what", ["mc_stat", "poisson", "linear"])
def test_any_v11_content_makes_the_archive_1_1_0(tmp_path, what):
    w = base(writer(mc_stat="gamma" if what == "mc_stat" else None))
    if what == "poisson":
        w.add_nuisance("g", constraint="poisson", tau=4.0)
    if what == "linear":
        w.add_linear("n1", "b", "c", coeff=0.0)  # no entry, but the kind is listed
    w.write(tmp_path / "x.h5")
    with open_archive(tmp_path / "x.h5") as a:
        assert a.format_version == "1.1.0"
        if what == "linear":
            assert a.metadata.channel("c").modifiers == ["linear"]
            assert a.modifiers("c").linear.nnz == 0
    validate_archive(tmp_path / "x.h5")


def test_default_archive_still_validates():
    path = ROOT / "likelihoods" / "default.h5"
    if not path.exists():
        pytest.skip("likelihoods/default.h5 is not in this checkout")
    assert validate_archive(path).format_version == "1.0.0"


def test_v11_metadata_satisfies_published_schema(v11_archive):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs/schema/archive-metadata-v1.json").read_text())
    doc = json.loads(raw_metadata(v11_archive))
    jsonschema.Draft7Validator(schema).validate(doc)
    doc["nuisances"][-1]["constraint"] = "lognormal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(doc)


# ----------------------------------------------------------------------------- metadata rules
@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(constraint="poisson"), "needs tau"),
        (dict(constraint="poisson", tau=4.0, prior_scale=2.0), "needs prior_scale 1"),
        (dict(constraint="gaussian", tau=4.0), "tau is for a poisson constraint only"),
        (dict(constraint="poisson", tau=0.0), "greater than 0"),
        (dict(constraint="poisson", tau=float("inf")), "finite"),
    ],
)
def test_nuisance_rules(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Nuisance(name="g", **kwargs)
    w = base(writer())
    with pytest.raises(ContentError, match=needle) as ei:
        w.add_nuisance("g", **kwargs)
    assert "\n" not in str(ei.value)


def test_channel_modifier_kinds_unique_and_known():
    ax = [Axis.regular(2, 0, 2, name="x")]
    with pytest.raises(ValueError, match="duplicate modifier kinds"):
        Channel(name="c", axes=ax, processes=["p"], modifiers=["linear", "linear"])
    with pytest.raises(ValueError, match="modifiers"):
        Channel(name="c", axes=ax, processes=["p"], modifiers=["shape"])


def test_1_0_0_archive_with_v11_fields_is_refused(v11_archive, tmp_path):
    path = tmp_path / "lying.h5"
    path.write_bytes(v11_archive.read_bytes())
    edit_metadata(path, lambda d: d.update(format_version="1.0.0"))
    with pytest.raises(MetadataError) as ei:
        open_archive(path)
    msg = str(ei.value)
    assert "\n" not in msg and "format_version 1.0.0 does not allow" in msg and "1.1.0" in msg
    # one 1.1 field is enough
    doc = json.loads(raw_metadata(v11_archive))
    doc["format_version"] = "1.0.0"
    for c in doc["channels"]:
        c["modifiers"] = []
    doc["nuisances"] = [n for n in doc["nuisances"] if n["constraint"] != "poisson"]
    with pytest.raises(ValueError, match="mc_stat"):
        ArchiveMetadata.model_validate(doc)
    doc["mc_stat"] = None
    doc["datasets"] = {}
    assert ArchiveMetadata.model_validate(doc).v11_features == []


def test_newer_1_1_patch_reads_without_warning(v11_archive, tmp_path, recwarn):
    path = tmp_path / "patch.h5"
    path.write_bytes(v11_archive.read_bytes())
    edit_metadata(path, lambda d: d.update(format_version="1.1.7"))
    with open_archive(path) as a:
        assert a.modifiers("a").additive.n_rows == 3
    assert not [w for w in recwarn if "newer" in str(w.message)]


# ----------------------------------------------------------------------------- writer refusals
def _refuse(call, *needles):
    with pytest.raises(ContentError) as ei:
        call()
    msg = str(ei.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


def test_writer_refusals():
    w = full_writer(folded=True)
    _refuse(lambda: w.add_additive("n1", "f", "a", up=np.ones(NB)), "'f' is folded")
    _refuse(lambda: w.add_linear("mu", "s", "a", coeff=1.0), "'mu' is a POI")
    _refuse(lambda: w.add_additive("n1", "b", "a", up=UP), "additive", "added twice")
    _refuse(lambda: w.add_multiplicative("n1", "b", "a", hi=1.2), "added twice")
    _refuse(lambda: w.add_linear("n3", "b", "a", coeff=0.1), "added twice")
    _refuse(lambda: w.add_additive("n3", "b", "a", up=UP, code=1), "code 1")
    _refuse(lambda: w.add_multiplicative("n3", "b", "a", hi=1.1, code=3), "code 3")
    _refuse(lambda: w.add_multiplicative("n2", "b", "a", hi=-0.5, code=1), "> 0")
    _refuse(lambda: w.add_multiplicative("n2", "b", "a", hi=0.0, code=4), "> 0", "code 4")
    _refuse(lambda: w.add_multiplicative("n2", "b", "a", hi=2.0, lo=0.0, code=1), "> 0")
    _refuse(lambda: w.add_multiplicative("n2", "b", "a", hi=np.inf, code=0), "non-finite")
    _refuse(lambda: w.add_multiplicative("n2", "b", "a", hi=[1.0, 2.0], code=0), "shape (2,)")
    _refuse(lambda: w.add_additive("n3", "b", "a", up=[1.0, np.nan, 1, 1]), "non-finite")
    _refuse(lambda: w.add_linear("n2", "b", "a", coeff=1.0, bins=[4]), "out of range")
    _refuse(lambda: w.add_linear("n2", "b", "a", coeff=1.0, bins=[1, 1]), "repeated bin")
    _refuse(lambda: w.add_linear("n2", "b", "a", coeff=[1.0, 2.0], bins=[1]), "coeff has shape")
    _refuse(lambda: w.add_linear("n2", "s", "c", coeff=1.0), "set the nominal yield")
    _refuse(lambda: w.add_linear("n2", "s", "nowhere", coeff=1.0), "unknown channel")
    _refuse(lambda: w.set_mc_stat("poisson"), "mc_stat must be")
    _refuse(lambda: writer(mc_stat="bogus"), "mc_stat must be")


def test_unknown_parameter_is_refused_at_write(tmp_path):
    w = base(writer())
    w.add_linear("undeclared", "b", "a", coeff=0.1)
    _refuse(lambda: w.write(tmp_path / "x.h5"), "channel 'a'", "unknown parameter 'undeclared'")
    assert not (tmp_path / "x.h5").exists()


# ----------------------------------------------------------------------------- validator
def _index_of(path: Path, kind: str) -> tuple[dict, dict]:
    with open_archive(path) as a:
        m = a.metadata
        return (
            {n: m.parameter_index(n) for n in m.parameter_names},
            {p.name: m.process_index(p.name) for p in m.processes},
        )


@pytest.mark.parametrize(
    "dpath,change,exc,needle",
    [
        ("additive/code", lambda v, par, proc: np.array([2, 3, 0], np.int32), ContentError, "3"),
        (
            "multiplicative/hi",
            lambda v, par, proc: np.where(np.arange(NB) == 1, -1.0, v),
            ContentError,
            "> 0 for codes 1 and 4",
        ),
        (
            "multiplicative/lo",
            lambda v, par, proc: np.where(np.arange(NB) == 1, np.inf, v),
            ContentError,
            "non-finite",
        ),
        (
            "additive/parameter",
            lambda v, par, proc: np.array([par["n1"]] * 3, np.int32),
            ContentError,
            "repeated",
        ),
        (
            "additive/parameter",
            lambda v, par, proc: np.array([par["mu"], par["n1"], par["n2"]], np.int32),
            ContentError,
            "'mu' is a POI",
        ),
        (
            "additive/process",
            lambda v, par, proc: np.array([proc["f"], proc["b"], proc["b"]], np.int32),
            ContentError,
            "'f' is folded",
        ),
        (
            "linear/bin",
            lambda v, par, proc: np.array([2, 0, 3, 0, 3], np.int32),
            ContentError,
            "not sorted",
        ),
        (
            "linear/bin",
            lambda v, par, proc: np.array([0, 2, 9, 0, 3], np.int32),
            CorruptArchiveError,
            "out of range",
        ),
        (
            "linear/process",
            lambda v, par, proc: np.array([0, 0, 0, 7, 7], np.int32),
            CorruptArchiveError,
            "out of range",
        ),
        (
            "linear/bin",
            lambda v, par, proc: np.array([0.0, 2.5, 3.0, 0.0, 3.0]),
            CorruptArchiveError,
            "not integers",
        ),
    ],
)
def test_validator_refusals(v11_archive, tmp_path, dpath, change, exc, needle):
    par, proc = _index_of(v11_archive, "a")
    kind, field = dpath.split("/")
    full = layout.modifier("a", kind, field)
    with h5py.File(v11_archive, "r") as f:
        old = f[full][()]
    new = change(old if old.ndim == 1 else old[0], par, proc)
    if old.ndim == 2:
        new = np.concatenate([new[None], old[1:]])
    bad = damaged(v11_archive, tmp_path, full, new)
    if new.dtype.kind == "f" and old.dtype.kind == "i":  # a float index: manifest dtype too
        edit_metadata(bad, lambda d: d["datasets"][full].update(dtype="<f8"))
    with pytest.raises(exc) as ei:
        validate_archive(bad)
    msg = str(ei.value)
    assert "\n" not in msg and needle in msg, msg
    if exc is CorruptArchiveError:  # index problems: the reader itself refuses
        with pytest.raises(CorruptArchiveError), open_archive(bad) as a:
            a.modifiers("a")


def test_dataset_of_an_unlisted_kind_or_a_missing_one(v11_archive, tmp_path):
    path = tmp_path / "unlisted.h5"
    path.write_bytes(v11_archive.read_bytes())
    edit_metadata(path, lambda d: d["channels"][0].update(modifiers=["additive", "linear"]))
    with pytest.raises(CorruptArchiveError, match="unexpected dataset 'channels/a/modifiers/mul"):
        validate_archive(path)
    path2 = tmp_path / "missing.h5"
    path2.write_bytes(v11_archive.read_bytes())
    edit_metadata(path2, lambda d: d["channels"][1].update(modifiers=["multiplicative", "linear"]))
    with pytest.raises(CorruptArchiveError, match="lacks dataset 'channels/c/modifiers/linear"):
        validate_archive(path2)
    with pytest.raises(ArchiveError), open_archive(path2) as a:
        a.modifiers("c")
