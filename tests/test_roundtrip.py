"""Write an archive from hist objects and arrays, read it back, compare exactly."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from wmass_archive import ArchiveWriter, Axis, open_archive, validate_archive
from wmass_archive.archive import POI, SparseTensor
from wmass_archive.archive.reader import Archive

RNG = np.random.default_rng(7)


def _weighted(axes, values, variances):
    h = hist.Hist(*axes, storage=hist.storage.Weight())
    h.view().value = values
    h.view().variance = variances
    return h


@pytest.fixture(scope="module")
def content():
    """Everything the small archive holds, as plain arrays, to compare with what is read."""
    eta = hist.axis.Regular(4, -2.4, 2.4, name="eta", label="muon eta")
    pt = hist.axis.Variable(
        [26, 30, 35, 45, 56], name="pt", label="muon pT", metadata={"unit": "GeV"}
    )
    q = hist.axis.IntCategory([-1, 1], name="charge")
    shape = (4, 4, 2)
    gen = [
        Axis.category([-1, 1], name="qW"),
        Axis.regular(3, -2.5, 2.5, name="yW"),
        Axis.category(["UL", "A4"], name="helicity"),
    ]
    n_gen = 12
    sigma = RNG.uniform(1.0, 2.0, n_gen) * np.where(np.arange(n_gen) % 2, 0.3, 1.0)
    resp = RNG.uniform(0.0, 1.0, (3, 32, n_gen)) * (RNG.uniform(size=(3, 32, n_gen)) < 0.2)
    lumi = 100.0
    sig = lumi * resp[1] @ sigma
    bkg = RNG.uniform(5, 10, shape)
    return dict(
        eta=eta,
        pt=pt,
        q=q,
        shape=shape,
        gen=gen,
        sigma=sigma,
        resp=resp,
        lumi=lumi,
        sig=sig,
        sig_w2=sig * 0.01,
        bkg=bkg,
        bkg_w2=bkg * 0.1,
        data=RNG.poisson(sig.reshape(shape) + bkg).astype(float),
        members=sigma * RNG.uniform(0.95, 1.05, (5, n_gen)),
        replicas=sigma * RNG.uniform(0.97, 1.03, (11, n_gen)),
        var_up=sigma * 1.05,
        var_down=sigma * 0.96,
        sparse_logk=np.array([0.01, -0.02, 0.03]),
        sparse_bins=np.array([5, 1, 30]),
        dense_up=RNG.uniform(0.9, 1.1, 32),
        dense_down=RNG.uniform(0.9, 1.1, 32),
    )


def _make_writer(c: dict) -> ArchiveWriter:
    w = ArchiveWriter(
        title="round trip",
        synthetic=True,
        citation={"title": "test"},
        provenance={"producer": "tests", "producer_version": "0", "seeds": {"data": 7}},
        luminosity=c["lumi"],
    )
    w.add_group("exp", "experimental")
    w.add_group("theo")
    w.add_channel("mu", _weighted([c["eta"], c["pt"], c["q"]], c["data"], c["data"]))
    w.add_process("W", kind="signal", folded=True)
    w.add_process("Z")
    w.set_theory(c["gen"], c["sigma"], nominal_pdf="H")
    w.add_pdf_set(
        name="H",
        lhapdf_name="Hset",
        error_type="hessian",
        confidence_level=90,
        members=c["members"],
        aliases=["h-set"],
    )
    w.add_pdf_set(
        name="R",
        lhapdf_name="Rset",
        error_type="replicas",
        scale=5.0,
        members=c["replicas"],
        variance_threshold=0.9,
    )
    w.add_nuisance("theo1", groups=["theo"])
    w.add_theory_variation("theo1", c["var_up"], c["var_down"], interpolation="multiplicative")
    w.set_yield("W", "mu", c["sig"], sumw2=c["sig_w2"])
    w.set_response("W", "mu", c["resp"])
    h_z = _weighted([c["eta"], c["pt"], c["q"]], c["bkg"], c["bkg_w2"])
    w.set_yield("Z", "mu", h_z)
    w.add_poi(
        POI(
            name="mW",
            kind="mass",
            unit="MeV",
            central=80360.0,
            scale=100.0,
            mass_points=[-1, 0, 1],
            acts_on=[{"process": "W"}],
        )
    )
    w.add_nuisance("sparse1", groups=["exp"], prior_scale=2.1)
    w.add_variation("sparse1", "Z", "mu", logk_up=c["sparse_logk"], bins=c["sparse_bins"])
    w.add_nuisance("dense1", groups=["exp", "theo"])
    w.add_variation(
        "dense1",
        "Z",
        "mu",
        up=c["bkg"].reshape(-1) * c["dense_up"],
        down=c["bkg"].reshape(-1) * c["dense_down"],
    )
    w.add_nuisance("lnN", groups=["exp"], constraint="none")
    w.add_variation("lnN", "W", "mu", kappa=(0.9, 1.2))
    return w


@pytest.fixture(scope="module")
def written(content, tmp_path_factory):
    w = _make_writer(content)
    path = tmp_path_factory.mktemp("rt") / "rt.h5"
    report = w.write(path)
    return path, report, w.metadata()


def test_write_report(written):
    path, report, _ = written
    assert report.path == path and path.stat().st_size == report.file_bytes
    assert report.n_datasets > 15 and report.compression_ratio > 0
    assert "compression" in report.summary()


def test_metadata_round_trips(written):
    path, _, meta = written
    with open_archive(path) as a:
        got = a.metadata.model_dump(exclude={"datasets"})
    assert got == meta.model_dump(exclude={"datasets"})


def test_arrays_round_trip_exactly(written, content):
    c = content
    path, _, _ = written
    with open_archive(path) as a:
        np.testing.assert_array_equal(a.data("mu"), c["data"].reshape(-1))
        np.testing.assert_array_equal(a.nominal("W", "mu"), c["sig"])
        np.testing.assert_array_equal(a.sumw2("W", "mu"), c["sig_w2"])
        np.testing.assert_array_equal(a.nominal("Z", "mu"), c["bkg"].reshape(-1))
        np.testing.assert_array_equal(a.sumw2("Z", "mu"), c["bkg_w2"].reshape(-1))
        np.testing.assert_array_equal(a.response("W", "mu"), c["resp"])
        np.testing.assert_array_equal(a.theory_nominal(), c["sigma"])
        np.testing.assert_array_equal(a.pdf_members("H"), c["members"])
        np.testing.assert_array_equal(a.pdf_members("R"), c["replicas"])
        up, down = a.theory_variations()
        np.testing.assert_array_equal(up[0], c["var_up"])
        np.testing.assert_array_equal(down[0], c["var_down"])


def test_sparse_response_is_stored_sparse(written):
    path, _, _ = written
    with open_archive(path) as a:
        assert "channels/mu/processes/W/response/value" in a.metadata.datasets
        sp = a.response("W", "mu", dense=False)
        assert isinstance(sp, SparseTensor) and 0 < sp.density < 0.3


def test_variations_round_trip(written, content):
    c = content
    path, _, _ = written
    with open_archive(path) as a:
        m = a.metadata
        t = a.logk("mu")
        assert m.parameter_names[0] == "mW"  # POIs first
        by_par = {name: t.parameter == m.parameter_index(name) for name in m.parameter_names}
        # sparse, symmetric: the given entries, sorted by bin, and nothing else
        s = by_par["sparse1"]
        order = np.argsort(c["sparse_bins"])
        np.testing.assert_array_equal(t.bin[s], c["sparse_bins"][order])
        np.testing.assert_array_equal(t.logk_up[s], c["sparse_logk"][order])
        np.testing.assert_array_equal(t.logk_down[s], -c["sparse_logk"][order])
        assert "channels/mu/logk/sparse/avg" in m.datasets
        # dense, asymmetric from templates: logk = ln(varied / nominal)
        d = by_par["dense1"]
        np.testing.assert_allclose(t.logk_up[d], np.log(c["dense_up"]), rtol=0, atol=1e-15)
        np.testing.assert_allclose(t.logk_down[d], np.log(c["dense_down"]), rtol=0, atol=1e-15)
        # lnN on every bin
        k = by_par["lnN"]
        assert k.sum() == 32
        np.testing.assert_allclose(t.logk_up[k], np.log(1.2), rtol=1e-14)
        np.testing.assert_allclose(t.logk_down[k], np.log(0.9), rtol=1e-14)
        assert set(t.process[k]) == {m.process_index("W")}
        # filtering
        only = a.logk("mu", parameters=["sparse1"], processes=["Z"])
        assert only.nnz == 3


def test_nuisance_metadata(written):
    path, _, _ = written
    with open_archive(path) as a:
        n = a.metadata.nuisance("sparse1")
        assert n.prior_scale == 2.1 and n.groups == ["exp"]
        assert a.metadata.nuisance("lnN").constraint == "none"
        assert a.metadata.nuisance("dense1").groups == ["exp", "theo"]
        assert a.metadata.group_counts() == {"exp": 3, "theo": 2}


def test_replica_eigenvectors_hold_the_stated_variance(written, content):
    path, _, _ = written
    with open_archive(path) as a:
        s = next(p for p in a.pdf_sets if p.name == "R")
        ev = a.pdf_eigenvectors("R")
    reps = content["replicas"][1:]
    cov = np.cov(reps, rowvar=False)
    assert s.n_eigenvectors == ev.shape[0] and 0.9 <= s.variance_kept <= 1.0
    # the kept shifts reproduce that fraction of the total variance
    np.testing.assert_allclose((ev**2).sum() / np.trace(cov), s.variance_kept, rtol=1e-10)
    # and are orthogonal directions of the covariance
    g = ev @ ev.T
    np.testing.assert_allclose(g - np.diag(np.diag(g)), 0, atol=1e-12 * np.trace(cov))


def test_histogram_view(written, content):
    path, _, _ = written
    with open_archive(path) as a:
        h = a.histogram("Z", "mu")
        d = a.histogram(None, "mu")
    assert [ax.name for ax in h.axes] == ["eta", "pt", "charge"]
    assert h.axes["pt"].metadata == {"unit": "GeV"}
    np.testing.assert_array_equal(h.values(), content["bkg"])
    np.testing.assert_array_equal(h.variances(), content["bkg_w2"])
    np.testing.assert_array_equal(d.values(), content["data"])


def test_selection_stacks_channels_and_remaps(written, content):
    path, _, _ = written
    with open_archive(path) as a:
        sel = a.select(processes=["Z"], nuisances=["sparse1"])
        assert sel.nominal().shape == (1, 32)
        np.testing.assert_array_equal(sel.nominal()[0], content["bkg"].reshape(-1))
        t = sel.logk()
        assert sel.parameter_names == ["mW", "sparse1"]
        assert set(t.parameter) == {1} and set(t.process) == {0} and t.nnz == 3


def test_validates(written):
    path, _, _ = written
    rep = validate_archive(path)
    assert rep.n_datasets > 15 and "OK" in rep.summary()


def test_opening_reads_no_array(written, monkeypatch):
    """Opening and summarising touch the metadata only."""
    from wmass_archive.archive.summary import summarize

    path, _, _ = written

    def boom(*args, **kwargs):
        raise AssertionError("an array was read")

    monkeypatch.setattr(Archive, "read", boom)
    with open_archive(path) as a:
        s = summarize(a)
    assert s["n_bins"] == 32


def test_checksums_are_verified_on_read_and_can_be_skipped(written):
    path, _, _ = written
    with open_archive(path, verify=False) as a:
        assert a.data("mu").shape == (32,)


def test_sparse_tensor_round_trip():
    a = np.zeros((2, 3, 4))
    a[0, 1, 2] = 1.5
    a[1, 2, 3] = -2.0
    sp = SparseTensor.fromdense(a)
    assert sp.nnz == 2 and sp.density == 2 / 24
    np.testing.assert_array_equal(sp.todense(), a)


def test_write_is_deterministic_in_content(content, tmp_path):
    """The same content written twice gives the same arrays and the same metadata."""
    w = _make_writer(content)
    w.write(tmp_path / "a.h5")
    w.write(tmp_path / "b.h5")
    with open_archive(tmp_path / "a.h5") as a, open_archive(tmp_path / "b.h5") as b:
        assert a.metadata.datasets == b.metadata.datasets
        assert a.metadata == b.metadata
