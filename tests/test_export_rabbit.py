"""Export to rabbit's input tensor: rabbit's datasets, shapes and dtypes; the unfolded nominal
and logk against our model; our h5py-only reader of the tensor against the model at random
theta (within the log-normal approximation); rate POIs; the tensor back as an archive; one-line
errors. (Fitting with rabbit itself is benchmarks/bench_rabbit.py: TensorFlow is not a
dependency.)"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from wmass_archive.archive import POI, ArchiveWriter, Axis
from wmass_archive.cli.export_cmd import export
from wmass_archive.interop import ExportError
from wmass_archive.interop.rabbit import export_rabbit, read_rabbit_tensor, tensor_to_archive
from wmass_archive.model import build_model
from wmass_archive.model.synthetic import write_counting_archive, write_folded_archive

STRING_SETS = ("hprocs", "hsignals", "hsysts", "hsystsnoconstraint", "hsystgroups")


@pytest.fixture(scope="module")
def demo_export(demo_archive_master, tmp_path_factory):
    out = tmp_path_factory.mktemp("rabbit") / "demo_rabbit.hdf5"
    report = export_rabbit(demo_archive_master, out)
    return demo_archive_master, out, report


@pytest.fixture(scope="module")
def demo_model(demo_archive_master):
    return build_model(demo_archive_master)


def _aligned(tensor, model, theta):
    """(ours, rabbit's) expected yields per process (n_proc, n_bins) in our process order."""
    t, mu = tensor.parameters_from(model.parameter_names, theta)
    idx = [tensor.procs.index(p) for p in model.info.processes]
    return model.expected_by_process(theta), tensor.expected_by_process(t, mu)[:, idx].T


def _orig(ds):
    return tuple(int(x) for x in ds.attrs["original_shape"])


@pytest.mark.parametrize("sparse", [True, False])
def test_rabbit_datasets_shapes_dtypes(demo_archive_master, demo_model, tmp_path, sparse):
    out = tmp_path / "t.hdf5"
    rep = export_rabbit(demo_archive_master, out, sparse=sparse)
    nb, nproc, nsyst = 240, 5, demo_model.n_params
    assert (rep.n_bins, len(rep.procs), len(rep.systs)) == (nb, nproc, nsyst)
    with h5py.File(out, "r") as f:
        for k in STRING_SETS + ("hpseudodatanames",):
            assert h5py.check_string_dtype(f[k].dtype) is not None, k
        systs = [s.decode() for s in f["hsysts"][...]]
        assert systs[0] == "mW" and set(systs) == set(demo_model.parameter_names)
        assert [s.decode() for s in f["hsystsnoconstraint"][...]] == systs[:2]
        assert f["hnoiidxs"].dtype == np.int32 and list(f["hnoiidxs"][...]) == [0]
        assert f["hsignals"].shape == (0,) and f["hprocs"].shape == (nproc,)
        groups = [g.decode() for g in f["hsystgroups"][...]]
        assert "pdfDemoHessian" in groups and len(f["hsystgroupidxs"]) == len(groups)
        cw = f["hconstraintweights"][...]
        assert cw.dtype == np.float64 and list(cw[:3]) == [0.0, 0.0, 1.0] and cw.shape == (nsyst,)
        assert f["hdata_obs"].shape == (nb,) and f["hdata_obs"].dtype == np.float64
        assert _orig(f["hpseudodata"]) == (nb, 0)
        for k in ("hsumw", "hsumw2"):
            assert f[k].dtype == np.float64 and _orig(f[k]) == (nb, nproc)
        if sparse:
            assert "hnorm" not in f and "hlogk" not in f
            ni, li = f["hnorm_sparse/indices"], f["hlogk_sparse/indices"]
            nnz = _orig(ni)[0]
            assert ni.dtype == np.int64 and _orig(ni) == (nnz, 2) and nnz == rep.nnz_norm
            assert tuple(f["hnorm_sparse"].attrs["dense_shape"]) == (nb, nproc)
            assert tuple(f["hlogk_sparse"].attrs["dense_shape"]) == (nnz, 2 * nsyst)
            assert li.dtype == np.int64 and _orig(li) == (rep.nnz_logk, 2)
            for g, width in (("hnorm_sparse", nproc), ("hlogk_sparse", 2 * nsyst)):
                ij = f[f"{g}/indices"][...].reshape(-1, 2)
                assert np.all(np.diff(ij[:, 0] * width + ij[:, 1]) > 0), "canonical order"
            assert f["hnorm_sparse/values"].dtype == np.float64
        else:
            assert _orig(f["hnorm"]) == (nb, nproc)
            assert _orig(f["hlogk"]) == (nb, nproc, 2, nsyst) and f["hlogk"].dtype == np.float64
        assert f["meta"].attrs["narf_h5py_pickle_protocol_version"] == 1
        assert f["meta/pickle_data"].dtype == np.uint8  # written for rabbit; never loaded here
        info = json.loads(f.attrs["wmass_archive_export"])
    assert info["channels"][0]["name"] == "mu" and info["pdf_set"] == "DemoHessian"
    poi = info["parameters"][0]
    assert (poi["name"], poi["rabbit_name"], poi["role"], poi["kind"]) == (
        "mW",
        "mW",
        "noi",
        "mass",
    )
    assert (poi["central"], poi["scale"], poi["unit"]) == (80360.0, 100.0, "MeV")
    assert not list(tmp_path.glob(".*tmp-*")), "temporary file left behind"


def test_nominal_equals_model_at_theta_zero(demo_export, demo_model):
    _, out, _ = demo_export
    with h5py.File(out, "r") as f:
        idx = f["hnorm_sparse/indices"][...].reshape(-1, 2)
        per_bin = np.bincount(idx[:, 0], weights=f["hnorm_sparse/values"][...], minlength=240)
        data = f["hdata_obs"][...]
    np.testing.assert_allclose(per_bin, demo_model.expected(), rtol=1e-12)
    np.testing.assert_array_equal(data, demo_model.data)
    t = read_rabbit_tensor(out)
    np.testing.assert_allclose(t.expected(), demo_model.expected(), rtol=1e-12)


@pytest.mark.parametrize("name", ["pdfDemoHessianEV2", "pTModeling_np", "mW"])
def test_logk_is_log_of_folded_ratio(demo_export, demo_model, name):
    _, out, _ = demo_export
    t, m = read_rabbit_tensor(out), demo_model
    p = m.info.processes.index("Wmunu")
    k, j = t.systs.index(name), t.procs.index("Wmunu")
    rows = np.arange(t.n_bins) * t.n_proc + j
    avg = t.logk_avg[rows, k].toarray().ravel()
    hd = t.logk_halfdiff[rows, k].toarray().ravel()
    nu = {}
    for v in (-1.0, 0.0, 1.0):
        th = np.zeros(m.n_params)
        th[m.index(name)] = v
        nu[v] = m.expected_by_process(th)[p]
    on = nu[0.0] > 0
    assert np.any(avg != 0)
    np.testing.assert_allclose((avg + hd)[on], np.log(nu[1.0] / nu[0.0])[on], atol=1e-13)
    np.testing.assert_allclose((hd - avg)[on], np.log(nu[-1.0] / nu[0.0])[on], atol=1e-13)


def test_reader_reproduces_model_within_lognormal(demo_export, demo_model):
    _, out, _ = demo_export
    t, m = read_rabbit_tensor(out), demo_model
    for k in range(m.n_params):  # one parameter at +-1: exact
        for v in (1.0, -1.0):
            th = np.zeros(m.n_params)
            th[k] = v
            a, b = _aligned(t, m, th)
            np.testing.assert_allclose(b, a, rtol=1e-10, err_msg=m.parameter_names[k])
    rng = np.random.default_rng(5)
    for _ in range(3):  # random theta: the log-normal approximation of the theory nuisances
        th = rng.normal(0.0, 0.7, m.n_params)
        a, b = _aligned(t, m, th)
        rel = np.abs(b - a) / np.where(a > 0, a, 1.0)
        assert rel.max() < 2e-3 and np.all(b[a == 0] == 0)


@pytest.mark.parametrize(
    "kw",
    [
        dict(two_channels=True, sparse_response=True),
        dict(pdf_type="replicas", pdf_interpolation="multiplicative", pdf_members=8),
        dict(pdf_type="symmhessian", variation_interpolation="additive"),
        dict(mass_points=(-2.0, -1.0, 0.0, 1.0, 2.0)),
    ],
)
def test_folded_variants_exact_at_unit_shifts(tmp_path, kw):
    src, out = tmp_path / "f.h5", tmp_path / "f.hdf5"
    write_folded_archive(src, **kw)
    rep = export_rabbit(src, out)
    t, m = read_rabbit_tensor(out), build_model(src)
    assert [c["name"] for c in t.export_info["channels"]] == m.info.channels
    for k in range(m.n_params):
        for v in (1.0, -1.0):
            th = np.zeros(m.n_params)
            th[k] = v
            a, b = _aligned(t, m, th)
            np.testing.assert_allclose(b, a, rtol=1e-10, err_msg=m.parameter_names[k])
    assert any("theory" in a for a in rep.approximations)


def test_rate_poi_becomes_signal_strength(tmp_path):
    src, out = tmp_path / "c.h5", tmp_path / "c.hdf5"
    write_counting_archive(src)
    rep = export_rabbit(src, out)
    assert rep.signals == ["sig"] and rep.procs[0] == "sig" and rep.noi == []
    assert rep.parameters[0].role == "signal" and rep.parameters[0].physical(1.2) == 1.2
    t, m = read_rabbit_tensor(out), build_model(src)
    th = np.random.default_rng(1).normal(0, 0.5, m.n_params)
    a, b = _aligned(t, m, th)
    np.testing.assert_allclose(b, a, rtol=1e-12)


def test_rate_poi_on_two_processes_is_lognormal_noi(tmp_path):
    src, out = tmp_path / "r.h5", tmp_path / "r.hdf5"
    w = ArchiveWriter(
        title="two processes, one rate",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "test", "producer_version": "0"},
    )
    w.add_channel("ch", np.array([10.0, 12.0, 9.0]), axes=[Axis.regular(3, 0, 3, name="x")])
    for p, y in (("a", [4.0, 5.0, 3.0]), ("b", [6.0, 7.0, 5.0])):
        w.add_process(p)
        w.set_yield(p, "ch", np.array(y), sumw2=0.01 * np.array(y))
    w.add_poi(
        POI(
            name="r",
            kind="rate",
            central=2.0,
            scale=0.5,
            acts_on=[{"process": "a"}, {"process": "b"}],
        )
    )
    w.write(src)
    rep = export_rabbit(src, out)
    assert rep.signals == [] and rep.noi == ["r"] and rep.parameters[0].role == "noi-lognormal"
    assert any("log-normal NOI" in a for a in rep.approximations)
    t, m = read_rabbit_tensor(out), build_model(src)
    for v in (-1.0, 0.0, 1.0):
        a, b = _aligned(t, m, np.array([v]))
        np.testing.assert_allclose(b, a, rtol=1e-12)


def test_tensor_back_to_archive_and_fit(demo_export, tmp_path):
    from wmass_archive.fit import fit

    src, out, _ = demo_export
    rep = tensor_to_archive(out, tmp_path / "ln.h5")
    t, m = read_rabbit_tensor(out), build_model(rep.path)
    assert m.info.pois[0].kind == "mass" and m.parameter_names[0] == "mW"
    th = np.random.default_rng(3).normal(0, 0.7, m.n_params)
    a, b = _aligned(t, m, th)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    exact, lognormal = fit(src, impacts=(), gof=False), fit(m, impacts=(), gof=False)
    p, q = exact.pois[0], lognormal.pois[0]
    # the log-normal approximation of the theory nuisances moves mW by far less than 0.1 MeV
    assert abs(p.physical_value - q.physical_value) < 0.05
    assert abs(p.physical_error - q.physical_error) < 0.05


def test_other_pdf_set(demo_archive_master, tmp_path):
    out = tmp_path / "rep.hdf5"
    rep = export_rabbit(demo_archive_master, out, pdf="DemoReplicas")
    assert rep.pdf_set == "DemoReplicas" and "pdfDemoReplicas" in rep.groups
    m = build_model(demo_archive_master, pdf="DemoReplicas")
    t = read_rabbit_tensor(out)
    assert set(t.systs) == set(m.parameter_names)
    np.testing.assert_allclose(t.expected(), m.expected(), rtol=1e-12)


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_cli_writes_and_reports(demo_archive_master, tmp_path):
    r = CliRunner().invoke(export, ["rabbit", str(demo_archive_master), "-o", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    assert "rabbit input tensor" in r.output and (tmp_path / "x").is_file()


def test_cli_bad_inputs_one_line(demo_archive_master, tmp_path):
    run = CliRunner().invoke
    out = str(tmp_path / "o.hdf5")
    assert "no archive" in _one_line_error(
        run(export, ["rabbit", str(tmp_path / "no.h5"), "-o", out])
    )
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    _one_line_error(run(export, ["rabbit", str(junk), "-o", out]))
    msg = _one_line_error(
        run(export, ["rabbit", str(demo_archive_master), "-o", out, "--pdf", "X"])
    )
    assert "X" in msg
    msg = _one_line_error(
        run(export, ["rabbit", str(demo_archive_master), "-o", str(tmp_path / "no" / "o")])
    )
    assert "does not exist" in msg
    assert not (tmp_path / "o.hdf5").exists() and not list(tmp_path.glob(".*tmp-*"))


def test_reader_refuses_non_tensors(demo_archive_master, tmp_path):
    with pytest.raises(ExportError, match="not a rabbit tensor"):
        read_rabbit_tensor(demo_archive_master)
    junk = tmp_path / "j.hdf5"
    junk.write_bytes(b"junk")
    with pytest.raises(ExportError, match="not an HDF5 file"):
        read_rabbit_tensor(junk)
    with pytest.raises(ExportError, match="no rabbit tensor"):
        read_rabbit_tensor(tmp_path / "missing.hdf5")


@pytest.mark.parametrize("kind", ["linear", "poisson"])
def test_export_refuses_format_1_1_content(tmp_path, kind):
    """Extended modifiers and poisson constraints have no rabbit equivalent: a clear refusal."""
    w = ArchiveWriter(
        title="1.1",
        synthetic=True,
        citation={"title": "test"},
        provenance={"producer": "test", "producer_version": "0"},
    )
    w.add_channel("c", np.array([5.0, 6.0]), axes=[Axis.regular(2, 0, 2, name="x")])
    w.add_process("b")
    w.set_yield("b", "c", np.array([4.0, 4.0]), sumw2=np.zeros(2))
    if kind == "poisson":
        w.add_nuisance("g", constraint="poisson", tau=100.0)
    else:
        w.add_nuisance("g")
    w.add_linear("g", "b", "c", coeff=0.1)
    w.write(tmp_path / "a.h5")
    with pytest.raises(ExportError, match="format 1.1"):
        export_rabbit(tmp_path / "a.h5", tmp_path / "t.hdf5")
    assert not (tmp_path / "t.hdf5").exists()
