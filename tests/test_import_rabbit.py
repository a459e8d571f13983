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
from wmass_archive.export import read_rabbit_tensor
from wmass_archive.fit import fit, theta_vector
from wmass_archive.importers.rabbit import RabbitImportError, import_rabbit
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
    assert [q.name for q in res.pois] == rep.signals  # the signal strengths are the POIs


def test_dense_tensor_structure(tmp_path):
    rep = import_rabbit(DATA / "rabbit_foreign_dense.hdf5", tmp_path / "d.h5")
    assert (rep.n_bins, rep.n_masked) == (10, 3)  # ch_a (6) + ch_b (4); masked ch_m left out
    assert not rep.sparse and not rep.symmetric
    a = open_archive(tmp_path / "d.h5")
    assert a.metadata.mc_stat == "gamma"
    assert [c.name for c in a.channels] == ["ch0"] and a.channels[0].axes[0].name == "obs"
    nus = {n.name: n for n in a.nuisances}
    assert nus["bkg1free"].constraint == "none" and nus["slope"].constraint == "none"
    assert nus["lumi"].constraint == "gaussian" and nus["lumi"].groups == ["lumi"]
    assert set(nus["shape_sig"].groups) == {"shapes"}
    kinds = {p.name: p.kind for p in rep.parameters}
    assert kinds["slope"] == "noi" and kinds["sig"] == "signal" and kinds["lumi"] == "nuisance"
    pois = {p.name: [s.process for s in p.acts_on] for p in a.pois}
    assert pois == {"sig": ["sig"], "sig2": ["sig2"]}


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
    from wmass_archive.export import export_rabbit

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
    r = runner.invoke(
        main, ["import", "rabbit", str(demo_archive_master), "-o", str(tmp_path / "y.h5")]
    )
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "not a rabbit tensor" in lines[0]
