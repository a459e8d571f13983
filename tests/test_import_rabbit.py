"""``import_rabbit``: foreign rabbit input tensors into archives.

The fixtures in tests/data were written by rabbit's own TensorWriter (rabbit-fit 0.2.5) and
fitted with ``rabbit_fit FILE -t 0 --unblind`` by tests/data/make_rabbit_foreign.py; the JSON
next to them holds rabbit's best-fit values and uncertainties. Our fit of the imported archive
must reproduce them to 1e-4 (rabbit is not needed here). rabbit reports a signal strength as
its fit parameter x with mu = x^2 (without --allowNegativePOI): mu = x^2, sigma_mu = 2 x
sigma_x at the minimum.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from wmass_archive import open_archive
from wmass_archive.fit import fit, theta_vector
from wmass_archive.interop.rabbit import read_rabbit_tensor
from wmass_archive.interop.rabbit.importer import RabbitImportError, import_rabbit
from wmass_archive.model import build_model

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "rabbit_foreign.json").read_text())
TENSORS = sorted(REFERENCE["tensors"])


def _rabbit_numbers(name: str, signals: list[str]) -> dict[str, tuple[float, float]]:
    """rabbit's (value, error) per parameter, signal strengths converted from x to mu."""
    out = {}
    for p, v in REFERENCE["tensors"][name]["parameters"].items():
        x, e = v["value"], v["error"]
        out[p] = (x * x, 2 * abs(x) * e) if p in signals else (x, e)
    return out


@pytest.mark.parametrize("name", TENSORS)
def test_fit_of_imported_tensor_matches_rabbit(tmp_path, name):
    rep = import_rabbit(DATA / name, tmp_path / "t.h5")
    assert not rep.exported
    res = fit(build_model(open_archive(tmp_path / "t.h5")), impacts=(), gof=False, edm_tol=1e-12)
    ours = rep.rabbit_values(res)
    ref = _rabbit_numbers(name, rep.signals)
    assert set(ref) == set(ours)
    for p, (value, error) in ref.items():
        assert ours[p][0] == pytest.approx(value, rel=1e-4, abs=1e-4 * error), p
        assert ours[p][1] == pytest.approx(error, rel=1e-4), p
    # the signal strengths, then the unconstrained nuisances of interest, are the POIs
    noi = ["slope"] if name == "rabbit_foreign_dense.hdf5" else []
    assert [q.name for q in res.pois] == rep.signals + noi
    assert [q.kind for q in res.pois] == ["rate"] * len(rep.signals) + ["parameter"] * len(noi)


def test_dense_tensor_structure(tmp_path):
    rep = import_rabbit(DATA / "rabbit_foreign_dense.hdf5", tmp_path / "d.h5")
    assert (rep.n_bins, rep.n_masked) == (10, 3)  # ch_a (6) + ch_b (4); masked ch_m left out
    assert not rep.sparse and not rep.symmetric
    a = open_archive(tmp_path / "d.h5")
    assert a.metadata.mc_stat == "gamma"
    assert [c.name for c in a.channels] == ["ch0"] and a.channels[0].axes[0].name == "obs"
    nus = {n.name: n for n in a.nuisances}
    assert nus["bkg1free"].constraint == "none" and "slope" not in nus
    assert nus["lumi"].constraint == "gaussian" and nus["lumi"].groups == ["lumi"]
    assert set(nus["shape_sig"].groups) == {"shapes"}
    kinds = {p.name: p.kind for p in rep.parameters}
    assert kinds["slope"] == "noi" and kinds["sig"] == "signal" and kinds["lumi"] == "nuisance"
    pois = {p.name: [s.process for s in p.acts_on] for p in a.pois}
    assert pois == {"sig": ["sig"], "sig2": ["sig2"], "slope": ["sig"]}
    slope = a.metadata.pois[-1]
    assert (slope.kind, slope.central, slope.scale, slope.unit) == ("parameter", 0.0, 1.0, "")
    assert a.metadata.format_version == "1.2.0"
    # rabbit's TensorWriter (0.2.5) put the NOI in a group of its own: left out, noted
    assert "slope" not in [g.name for g in a.metadata.groups]
    assert any("group 'slope' left out" in n for n in rep.notes)


def test_expected_yields_equal_rabbits_formula(tmp_path):
    """Our model of the imported tensor against rabbit's yield formula (the h5py reader's
    independent implementation) at random parameter values, with a constraint weight of 4
    (rabbit's 1/2 w theta^2: a prior scale of 1/2 on the archive's standard theta)."""
    src = tmp_path / "w.hdf5"
    shutil.copyfile(DATA / "rabbit_foreign_sparse.hdf5", src)
    with h5py.File(src, "r+") as f:
        systs = [s.decode() for s in f["hsysts"][...]]
        cw = f["hconstraintweights"][...]
        cw[systs.index("fakenorm")] = 4.0
        f["hconstraintweights"][...] = cw
    rep = import_rabbit(src, tmp_path / "w.h5")
    a = open_archive(tmp_path / "w.h5")
    assert {n.name: n.prior_scale for n in a.nuisances}["fakenorm"] == 0.5
    t = read_rabbit_tensor(src)
    m = build_model(a)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = {
            n: float(v)
            for n, v in zip(m.parameter_names, rng.normal(0, 0.7, m.n_params), strict=True)
        }
        rv = rep.rabbit_values({k: (v, 0.0) for k, v in theta.items()})
        th_r = np.array([rv[s][0] for s in t.systs])
        mu = np.array([rv[s][0] for s in t.signals])
        np.testing.assert_allclose(
            np.asarray(m.expected(theta_vector(m, theta))), t.expected(th_r, mu), rtol=1e-12
        )


def test_pickled_meta_is_never_loaded(tmp_path):
    """A tensor whose meta group holds a pickle that would write a file when loaded imports
    without the file appearing, to the same archive content."""
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    src = tmp_path / "trap.hdf5"
    shutil.copyfile(DATA / "rabbit_foreign_sparse.hdf5", src)
    with h5py.File(src, "r+") as f:
        g = f.create_group("meta")
        g.attrs["narf_h5py_pickle_protocol_version"] = 1
        g["pickle_data"] = np.frombuffer(pickle.dumps(Trap()), dtype=np.uint8)
    import_rabbit(src, tmp_path / "trap.h5")
    import_rabbit(DATA / "rabbit_foreign_sparse.hdf5", tmp_path / "plain.h5")
    assert not marker.exists()
    a, b = open_archive(tmp_path / "trap.h5"), open_archive(tmp_path / "plain.h5")
    np.testing.assert_array_equal(a.nominal("sig", "ch0"), b.nominal("sig", "ch0"))
    assert a.logk("ch0").nnz == b.logk("ch0").nnz


def test_tensor_of_our_export_keeps_channels(demo_archive_master, tmp_path):
    from wmass_archive.interop.rabbit import export_rabbit

    export_rabbit(demo_archive_master, tmp_path / "demo_rabbit.hdf5")
    rep = import_rabbit(tmp_path / "demo_rabbit.hdf5", tmp_path / "back.h5")
    assert rep.exported
    demo, back = open_archive(demo_archive_master), open_archive(tmp_path / "back.h5")
    assert [c.name for c in back.channels] == [c.name for c in demo.channels]
    assert {p.name for p in back.pois} == {p.name for p in demo.pois}


def test_bad_input_and_cli(tmp_path, demo_archive_master):
    from wmass_archive.cli.archive_cmd import main

    with pytest.raises(RabbitImportError, match="no rabbit tensor at"):
        import_rabbit(tmp_path / "missing.hdf5", tmp_path / "x.h5")
    with pytest.raises(RabbitImportError, match=r"demo\.h5 is not a rabbit tensor: missing hprocs"):
        import_rabbit(demo_archive_master, tmp_path / "x.h5")
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(RabbitImportError, match=r"text\.hdf5 is not an HDF5 file"):
        import_rabbit(tmp_path / "text.hdf5", tmp_path / "x.h5")
    neg = tmp_path / "neg.hdf5"
    shutil.copyfile(DATA / "rabbit_foreign_dense.hdf5", neg)
    with h5py.File(neg, "r+") as f:
        v = f["hnorm"][...]
        v[3] = -1.0
        f["hnorm"][...] = v
    with pytest.raises(RabbitImportError, match=r"neg\.hdf5: negative expected yields"):
        import_rabbit(neg, tmp_path / "x.h5")
    runner = CliRunner()
    out = tmp_path / "cli.h5"
    args = ["import", "rabbit", str(DATA / "rabbit_foreign_sparse.hdf5"), "-o", str(out)]
    r = runner.invoke(main, args)
    assert r.exit_code == 0 and "imported" in r.output and out.is_file()
    r = runner.invoke(main, args)
    assert r.exit_code == 1 and "exists" in r.output
    dense = str(DATA / "rabbit_foreign_dense.hdf5")
    r = runner.invoke(main, ["import", "rabbit", dense, "-o", str(tmp_path / "p.h5")])
    assert r.exit_code == 0 and "POI slope (parameter)" in r.output, r.output
    assert [p.name for p in open_archive(tmp_path / "p.h5").pois] == ["sig", "sig2", "slope"]
    r = runner.invoke(
        main, ["import", "rabbit", dense, "-o", str(tmp_path / "n.h5"), "--noi-as-nuisance"]
    )
    assert r.exit_code == 0 and "POI slope" not in r.output, r.output
    assert [p.name for p in open_archive(tmp_path / "n.h5").pois] == ["sig", "sig2"]
    r = runner.invoke(
        main, ["import", "rabbit", str(demo_archive_master), "-o", str(tmp_path / "y.h5")]
    )
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "not a rabbit tensor" in lines[0]


# --------------------------------------------------------------------------- W-mass-like tensor
MASS_NOI = "massShiftW100MeV"


def _alpha(t):
    """rabbit's smooth step and its derivative."""
    x = 2.0 * t
    inside = np.abs(x) < 1.0
    a = np.where(inside, 0.125 * x * (x * x * (3.0 * x * x - 10.0) + 15.0), np.sign(x))
    da = np.where(inside, 2.0 * 15.0 / 8.0 * (x * x - 1.0) ** 2, 0.0)
    return a, da


def write_rabbit_tensor(path, m, sparse=True):
    """Write the model ``m`` (dict of numpy arrays, see :func:`wmass_like_model`) in the layout
    of rabbit-fit 0.2.5's TensorWriter (tensorwriter.py / h5pyutils.py): string lists as vlen
    strings, the systematics unconstrained first, ``hnoiidxs``, flat datasets with an
    ``original_shape`` attribute, a sparse ``hnorm_sparse``/``hlogk_sparse`` in row-major order
    (logk rows index the non-zero yields; halfdiff columns after the avg ones), hsumw = hnorm."""
    import scipy.sparse as sps

    n_bins, n_proc = m["norm"].shape
    systs, n_syst = m["systs"], len(m["systs"])
    st = h5py.string_dtype()

    def strings(f, name, items):
        ds = f.create_dataset(name, (len(items),), dtype=st, compression="gzip")
        if items:
            ds[...] = items

    def flat(g, name, a):
        a = np.asarray(a)
        ds = g.create_dataset(name, data=a.reshape(-1), compression="gzip")
        ds.attrs["original_shape"] = np.array(a.shape, dtype=np.int64)

    with h5py.File(path, "w") as f:
        strings(f, "hprocs", m["procs"])
        strings(f, "hsignals", m["signals"])
        strings(f, "hsysts", systs)
        strings(f, "hsystsnoconstraint", [s for s in systs if s in m["noconstraint"]])
        strings(f, "hsystgroups", list(m["groups"]))
        gi = f.create_dataset("hsystgroupidxs", (len(m["groups"]),), dtype=h5py.vlen_dtype("i4"))
        for i, members in enumerate(m["groups"].values()):
            gi[i] = np.array([systs.index(s) for s in members], dtype=np.int32)
        f.create_dataset("hnoiidxs", data=np.array([systs.index(s) for s in m["noi"]], "i4"))
        strings(f, "hpseudodatanames", [])
        flat(f, "hconstraintweights", [0.0 if s in m["noconstraint"] else 1.0 for s in systs])
        flat(f, "hdata_obs", m["data"])
        flat(f, "hpseudodata", np.zeros((n_bins, 0)))
        flat(f, "hsumw", m["norm"])
        flat(f, "hsumw2", m["sumw2"])
        avg, hd = sps.csr_matrix(m["logk_avg"]), sps.csr_matrix(m["logk_halfdiff"])
        if sparse:
            nz_bin, nz_proc = np.nonzero(m["norm"])
            pos = np.full(n_bins * n_proc, -1, dtype=np.int64)
            pos[nz_bin * n_proc + nz_proc] = np.arange(nz_bin.size)
            both = sps.hstack([avg, hd]).tocoo()
            row, col = pos[both.row], both.col
            assert np.all(row >= 0)
            order = np.lexsort((col, row))
            g = f.create_group("hnorm_sparse")
            flat(g, "indices", np.stack([nz_bin, nz_proc], axis=1).astype(np.int64))
            flat(g, "values", m["norm"][nz_bin, nz_proc])
            g.attrs["dense_shape"] = np.array([n_bins, n_proc], dtype=np.int64)
            g = f.create_group("hlogk_sparse")
            flat(g, "indices", np.stack([row[order], col[order]], axis=1).astype(np.int64))
            flat(g, "values", both.data[order])
            g.attrs["dense_shape"] = np.array([nz_bin.size, 2 * n_syst], dtype=np.int64)
        else:
            flat(f, "hnorm", m["norm"])
            logk = np.stack([avg.toarray(), hd.toarray()], axis=1)  # (bins*procs, 2, systs)
            flat(f, "hlogk", logk.reshape(n_bins, n_proc, 2, n_syst))


def wmass_like_model(seed=3, n_eff=200, n_pdf=30):
    """A model shaped like CMS's W-mass fit: 2880 bins (charge x 48 eta x 30 pt), five
    processes, the W-mass shift as an unconstrained nuisance of interest (+-100 MeV log-normal
    shape on the W processes), PDF-like shapes, local efficiency nuisances, normalisations, an
    unconstrained fake-rate normalisation; data are Poisson at a mass shift of +23 MeV."""
    import scipy.sparse as sps

    rng = np.random.default_rng(seed)
    n_q, n_eta, n_pt = 2, 48, 30
    n_bins = n_q * n_eta * n_pt
    q = np.repeat([1.0, -1.0], n_eta * n_pt)
    eta = np.tile(np.repeat(np.linspace(-2.35, 2.35, n_eta), n_pt), n_q)
    pt = np.tile(np.linspace(26.5, 55.5, n_pt), n_q * n_eta)
    jac = np.exp(-0.5 * ((pt - 40.0) / 6.0) ** 2)
    procs = ["Wmunu", "Wtaunu", "Zmumu", "Fake", "Other"]
    w_shape = (1.0 + 0.15 * q) * (0.5 + jac) * (1.0 - 0.08 * eta**2 / 5.5)
    norm = np.stack(
        [
            9000.0 * w_shape,
            700.0 * w_shape * np.exp(-(pt - 26.0) / 20.0),
            900.0 * (1.0 + 0.02 * (pt - 40.0)) ** 2 + 50.0,
            1500.0 * np.exp(-(pt - 26.0) / 9.0) * (1.0 - 0.05 * q),
            300.0 + 2.0 * pt,
        ],
        axis=1,
    )
    sumw2 = norm * np.array([0.3, 0.6, 0.8, 4.0, 1.5])[None, :]
    n_proc = len(procs)
    rows, cols, up, dn = [], [], [], []  # logk up = ln(up/nom), down = ln(down/nom)

    def add(k, proc, bins, lu, ld):
        rows.append(bins * n_proc + procs.index(proc))
        cols.append(np.full(bins.size, k))
        up.append(np.broadcast_to(lu, bins.shape).astype(float))
        dn.append(np.broadcast_to(ld, bins.shape).astype(float))

    systs, groups, noconstraint = [], {}, []

    def book(name, group=None, constrained=True):
        systs.append(name)
        for g in [group or name] if group is not False else []:
            groups.setdefault(g, []).append(name)
        if not constrained:
            noconstraint.append(name)
        return len(systs) - 1

    allb = np.arange(n_bins)
    # the W-mass shift: a Jacobian-peak shape, +-100 MeV, slightly asymmetric
    k = book(MASS_NOI, constrained=False)
    dshape = -(pt - 40.0) / 6.0 * jac * 0.0045
    for p in ("Wmunu", "Wtaunu"):
        add(k, p, allb, dshape, -0.97 * dshape)
    k = book("FakeNorm", group="fakes", constrained=False)
    add(k, "Fake", allb, np.log(1.5), -np.log(1.5))
    k = book("FakeShape", group="fakes")
    add(k, "Fake", allb, 0.05 * (pt - 40.0) / 15.0, -0.04 * (pt - 40.0) / 15.0)
    k = book("lumi")
    for p in ("Wmunu", "Wtaunu", "Zmumu", "Other"):
        add(k, p, allb, np.log(1.017), -np.log(1.017))
    for name, p, size in (("normZ", "Zmumu", 1.02), ("normOther", "Other", 1.08)):
        k = book(name, group="norms")
        add(k, p, allb, np.log(size), -np.log(size))
    for i in range(n_pdf):
        k = book(f"pdf{i + 1}", group="pdfNNPDF31")
        a = rng.normal(0, 0.004, 4)
        shape = a[0] + a[1] * eta / 2.4 + a[2] * (pt - 40.0) / 15.0 + a[3] * jac
        for p in ("Wmunu", "Wtaunu", "Zmumu"):
            add(k, p, allb, shape, -0.95 * shape)
    for i in range(n_eff):  # local efficiency statistics: one eta slice and a pt range each
        k = book(f"effStat{i}", group="muon_eff_stat")
        ie, half = i % n_eta, (i // n_eta) % 2
        bins = np.flatnonzero(np.abs(eta - np.linspace(-2.35, 2.35, n_eta)[ie]) < 1e-9)
        bins = bins[(pt[bins] < 41.0) == (half == 0)]
        size = rng.uniform(0.002, 0.006)
        for p in ("Wmunu", "Wtaunu", "Zmumu", "Other"):
            add(k, p, bins, size, -size * 1.01)
    row, col = np.concatenate(rows), np.concatenate(cols)
    lu, ld = np.concatenate(up), np.concatenate(dn)
    shape = (n_bins * n_proc, len(systs))
    # rabbit: logkup = ln(up/nom), logkdown = -ln(down/nom), avg/halfdiff their mean/half diff
    avg = sps.csr_matrix((0.5 * (lu - ld), (row, col)), shape=shape)
    hd = sps.csr_matrix((0.5 * (lu + ld), (row, col)), shape=shape)
    m = dict(
        procs=procs,
        signals=[],
        systs=systs,
        noconstraint=noconstraint,
        noi=[MASS_NOI],
        groups=groups,
        norm=norm,
        sumw2=sumw2,
        logk_avg=avg,
        logk_halfdiff=hd,
        data=np.zeros(n_bins),
    )
    truth = rng.normal(0.0, 0.4, len(systs))
    truth[systs.index(MASS_NOI)] = 0.23
    truth[systs.index("FakeNorm")] = 0.3
    m["data"] = rng.poisson(_expected(m, truth)).astype(np.float64)
    return m


def _expected(m, theta):
    """rabbit's expected yield per bin (n_bins,) at ``theta`` (n_syst,)."""
    a, _ = _alpha(theta)
    ell = m["logk_avg"] @ theta + m["logk_halfdiff"] @ (theta * a)
    return (m["norm"] * np.exp(ell).reshape(m["norm"].shape)).sum(axis=1)


def rabbit_nll(m, theta):
    """rabbit 0.2.5's negative log-likelihood (Poisson with the saturated offset,
    Barlow-Beeston-lite gamma profiled, 1/2 theta^2 of the constrained systematics) and its
    gradient, written from rabbit's fitter.py with numpy only."""
    a, da = _alpha(theta)
    ell = m["logk_avg"] @ theta + m["logk_halfdiff"] @ (theta * a)
    nu_bp = m["norm"] * np.exp(ell).reshape(m["norm"].shape)
    nu, n = nu_bp.sum(axis=1), m["data"]
    sw, sw2 = m["norm"].sum(axis=1), m["sumw2"].sum(axis=1)
    on = (sw2 > 0) & (sw != 0)
    k = np.where(on, sw**2 / np.where(on, sw2, 1.0), 1.0)
    beta = np.where(on, (n + k) / (nu + k), 1.0)
    bnu = beta * nu
    xlog = np.where(n > 0, n * np.log(np.where(n > 0, n / bnu, 1.0)), 0.0)
    phi = bnu - n + xlog + np.where(on, k * (beta - 1.0) - k * np.log(beta), 0.0)
    cons = np.array([s not in m["noconstraint"] for s in m["systs"]])
    val = phi.sum() + 0.5 * np.sum(theta[cons] ** 2)
    dphi = beta - n / nu  # envelope theorem: beta is profiled
    w = (dphi[:, None] * nu_bp).reshape(-1)
    grad = m["logk_avg"].T @ w + (m["logk_halfdiff"].T @ w) * (a + theta * da)
    return val, grad + np.where(cons, theta, 0.0)


def independent_fit(m):
    """Minimise :func:`rabbit_nll` with scipy (L-BFGS-B, then Newton steps on the Hessian by
    central differences of the analytic gradient): (theta, covariance)."""
    from scipy.optimize import minimize

    n = len(m["systs"])
    res = minimize(
        lambda x: rabbit_nll(m, x),
        np.zeros(n),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 20000, "maxcor": 50, "ftol": 1e-16, "gtol": 1e-9},
    )
    x = res.x

    def hessian(x, h=1e-5):
        cols = [
            (rabbit_nll(m, x + h * e)[1] - rabbit_nll(m, x - h * e)[1]) / (2 * h) for e in np.eye(n)
        ]
        hm = np.array(cols)
        return 0.5 * (hm + hm.T)

    for _ in range(2):
        hm = hessian(x)
        x = x - np.linalg.solve(hm, rabbit_nll(m, x)[1])
    return x, np.linalg.inv(hessian(x))


@pytest.fixture(scope="module")
def wmass_tensor(tmp_path_factory):
    d = tmp_path_factory.mktemp("wmass_rabbit")
    m = wmass_like_model()
    write_rabbit_tensor(d / "wmass.hdf5", m)
    rep = import_rabbit(d / "wmass.hdf5", d / "wmass.h5")
    return m, d, rep


def _minuit_on_jax_nll(archive):
    """An independent minimisation of the imported archive's likelihood: iminuit's MIGRAD on the
    JAX nll and gradient from theta = 0 (strategy 0; no Hessian given: iminuit 2.33 fails with a
    TypeError when a user Hessian is not positive definite at the start, as here), then HESSE
    with the exact Hessian at the minimum. Returns (parameter names, theta, covariance)."""
    from iminuit import Minuit

    from wmass_archive.fit import engine
    from wmass_archive.fit.likelihood import observation
    from wmass_archive.jax_config import jnp

    model = build_model(open_archive(archive))
    st, ar, obs = model.static, model.arrays, observation(model.data, model.n_params)

    def fcn(x):
        return float(engine.nll(st, ar, jnp.asarray(x), obs))

    def grad(x):
        return np.asarray(engine.nll_grad(st, ar, jnp.asarray(x), obs)[1])

    def hess(x):
        hs = engine.value_grad_hess(st, ar, jnp.asarray(x), obs)[2]
        return np.asarray(engine.dense_hessian(st, ar, hs))

    m = Minuit(fcn, np.zeros(model.n_params), grad=grad)
    m.errordef, m.strategy, m.tol, m.print_level = Minuit.LIKELIHOOD, 0, 1e-4, 0
    m.migrad(ncall=200000)
    assert m.valid, m.fmin
    h = Minuit(fcn, np.array(m.values), grad=grad, hessian=hess)
    h.errordef = Minuit.LIKELIHOOD
    h.hesse()
    return model.parameter_names, np.array(m.values), np.array(h.covariance)


@pytest.mark.parametrize(
    "independent",
    [
        False,
        # (2) and (3): 9 s more; in the fast set, fits of imported tensors against rabbit's own:
        # test_fit_of_imported_tensor_matches_rabbit, and our minimiser against iminuit:
        # tests/test_fit_minimize.py::test_newton_and_minuit_agree
        pytest.param(True, marks=pytest.mark.slow),
    ],
    ids=["own-fits", "independent-fits"],
)
def test_noi_of_wmass_tensor_is_a_poi(wmass_tensor, independent):
    """The W-mass shift booked as rabbit's unconstrained nuisance of interest is a POI of kind
    parameter in MeV; its fit equals (1) the fit of the same tensor imported with the NOI as a
    nuisance that build_model(poi=) makes the POI and, under ``pytest -m slow``, (2) a
    numpy/scipy minimisation of rabbit's likelihood written from rabbit's fitter.py, (3) iminuit
    on the archive's JAX nll."""
    m, d, rep = wmass_tensor
    a = open_archive(d / "wmass.h5")
    (poi,) = a.metadata.pois
    assert (poi.name, poi.kind, poi.unit, poi.central, poi.scale) == (
        MASS_NOI,
        "parameter",
        "MeV",
        0.0,
        100.0,
    )
    assert [s.process for s in poi.acts_on] == ["Wmunu", "Wtaunu"]
    assert MASS_NOI not in [n.name for n in a.nuisances] and len(a.nuisances) == len(m["systs"]) - 1
    assert {p.name: p.constraint for p in a.nuisances}["FakeNorm"] == "none"
    assert [p.name for p in rep.parameters if p.is_poi] == [MASS_NOI]
    assert "1 POIs" in rep.summary() and "100 MeV per unit theta" in rep.summary()

    res = fit(d / "wmass.h5", impacts=("nominal",))
    assert [p.name for p in res.pois] == [MASS_NOI]
    r = res.poi(MASS_NOI)
    assert (r.kind, r.unit) == ("parameter", "MeV")
    assert r.physical_value == pytest.approx(100.0 * r.value, rel=1e-12)
    assert r.physical_error == pytest.approx(100.0 * r.error, rel=1e-12)
    (imp,) = [t for t in res.impacts if t.poi == MASS_NOI]
    assert imp.unit == "MeV" and imp.total == pytest.approx(r.physical_error, rel=1e-6)
    assert {"pdfNNPDF31", "muon_eff_stat", "fakes", "lumi"} <= set(imp.groups)

    # (1) the NOI kept a nuisance, made the POI at build time
    rep_n = import_rabbit(d / "wmass.hdf5", d / "wmass_nuis.h5", noi_pois=False, overwrite=True)
    assert not any(p.is_poi for p in rep_n.parameters)
    res_n = fit(d / "wmass_nuis.h5", poi=MASS_NOI, impacts=("nominal",))
    r_n = res_n.poi(MASS_NOI)
    assert r_n.value == pytest.approx(r.value, rel=1e-9, abs=1e-9 * r.error)
    assert r_n.error == pytest.approx(r.error, rel=1e-9)
    if not independent:
        return

    # (2) rabbit's likelihood in numpy, minimised by scipy
    x, cov = independent_fit(m)
    i = m["systs"].index(MASS_NOI)
    assert r.value == pytest.approx(x[i], abs=1e-4 * r.error)
    assert r.error == pytest.approx(np.sqrt(cov[i, i]), rel=1e-4)
    theta = {p.name: p.value for p in res.parameters}
    full = np.array([theta[s] for s in m["systs"]])
    np.testing.assert_allclose(full, x, rtol=0, atol=1e-4)

    # (3) iminuit on the JAX nll of the archive
    names, xm, cm = _minuit_on_jax_nll(d / "wmass.h5")
    j = names.index(MASS_NOI)
    assert r.value == pytest.approx(xm[j], abs=1e-3 * r.error)
    assert r.error == pytest.approx(np.sqrt(cm[j, j]), rel=1e-3)


def test_wmass_refit_shows_the_noi_poi(wmass_tensor, tmp_path):
    from wmass_archive.cli.refit_cmd import main

    _, d, _ = wmass_tensor
    runner = CliRunner()
    out = tmp_path / "out.json"
    args = ["--archive", str(d / "wmass.h5"), "--impacts", "nominal", "--json", str(out)]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert MASS_NOI in r.output and "MeV" in r.output
    doc = json.loads(out.read_text())
    text = json.dumps(doc)
    assert MASS_NOI in text
    res = fit(d / "wmass.h5", impacts=())
    want = res.poi(MASS_NOI).physical_value
    r = runner.invoke(main, [*args[:2], "--poi", MASS_NOI, "--impacts", "none"])
    assert r.exit_code == 0 and "unknown POI" not in r.output, r.output
    assert f"{want:.1f}" in r.output or f"{want:.2f}" in r.output, r.output


def test_barlow_beeston_lite_is_rabbits(tmp_path):
    """rabbit 0.2.5's BB-lite (binByBinStat, lite, gamma): per bin k = (sum_p hsumw)^2 /
    sum_p hsumw2, beta fixed where either sum is 0; our model takes sum hnorm for sum hsumw,
    so a tensor whose hsumw differs from hnorm gets rescaled sumw2 and the same k."""
    src = tmp_path / "bb.hdf5"
    shutil.copyfile(DATA / "rabbit_foreign_dense.hdf5", src)
    with h5py.File(src, "r+") as f:
        shape = tuple(f["hsumw"].attrs["original_shape"])
        sumw = f["hsumw"][...].reshape(shape)
        sumw2 = f["hsumw2"][...].reshape(shape)
        sumw[2] *= 1.1
        sumw[5, 0] += 3.0
        sumw[7] = 0.0  # rabbit: kstat = 0, beta fixed
        sumw2[4, 1] = 0.0  # one process without MC variance in bin 4
        f["hsumw"][...] = sumw.reshape(-1)
        f["hsumw2"][...] = sumw2.reshape(-1)
    rep = import_rabbit(src, tmp_path / "bb.h5")
    assert any("sumw2 rescaled in 3 bins" in n for n in rep.notes), rep.notes
    assert any(n.startswith("1 bins mix processes without MC variance") for n in rep.notes)
    model = build_model(open_archive(tmp_path / "bb.h5"))
    assert model.static.bb == "gamma"
    n = rep.n_bins
    sw, sw2 = sumw[:n].sum(axis=1), sumw2[:n].sum(axis=1)
    mask = (sw2 == 0) | (sw == 0)  # rabbit's betamask
    kstat = np.where(mask, 1.0, sw**2 / np.where(mask, 1.0, sw2))
    np.testing.assert_array_equal(np.asarray(model.arrays["bb_on"]), ~mask)
    np.testing.assert_allclose(np.asarray(model.arrays["bb_k"])[~mask], kstat[~mask], rtol=1e-12)
    # a tensor of TensorWriter (hsumw = hnorm): sumw2 copied as they are
    rep = import_rabbit(DATA / "rabbit_foreign_dense.hdf5", tmp_path / "plain.h5")
    assert not any("hsumw" in x for x in rep.notes)
    t = read_rabbit_tensor(DATA / "rabbit_foreign_dense.hdf5")
    a = open_archive(tmp_path / "plain.h5")
    np.testing.assert_array_equal(a.sumw2("bkg1", "ch0"), t.sumw2[: rep.n_bins, 2])
