"""Studies of many fits: PDF sweep, PDF bias, toys, POI splits, and running them on dask."""

from __future__ import annotations

import numpy as np
import pytest
from refit_archives import OFFSET_MEV, pdf_dir

from wmass_archive.refit import refit
from wmass_archive.refit.tasks import FitTask, ModelSpec, run_task, run_tasks


@pytest.fixture(scope="session")
def studies(arcs):
    return refit(
        arcs["tiny"],
        pdf="NNPDF23_lo_as_0119_qed",
        pdf_path=str(pdf_dir()),
        pdf_sweep=True,
        pdf_bias=True,
        toys=4,
        seed=11,
        impacts="none",
        workers=1,  # in this process (the default local cluster: test_refit_dask.py)
    )


def test_pdf_sweep(studies):
    rows = {r.pdf: r for r in studies.sweep}
    assert list(rows) == ["CT10nlo", "NNPDF31", "NNPDF23_lo_as_0119_qed"]
    ct, nn31, nn23 = rows.values()
    assert ct.scale == 1.0 and nn31.scale == 3.0 and nn23.source == "lhapdf"
    # scale 1: the same fit twice
    assert ct.scaled_shift_mev == ct.shift_mev and ct.scaled_unc_mev == ct.unc_mev
    # NNPDF31 has its central member only: no PDF uncertainty, scaled or not
    assert nn31.pdf_unc_mev == 0.0 and nn31.scaled_unc_mev == pytest.approx(nn31.unc_mev)
    # the set in use (NNPDF23 from LHAPDF, x1) is the reference of the delta column
    assert nn23.delta_mev == 0.0
    assert nn23.shift_mev == pytest.approx(studies.mw.shift_mev, abs=1e-6)
    assert all(r.converged for r in rows.values())
    # shifts are blinded like the main result
    assert abs(ct.shift_mev - OFFSET_MEV) < 3 * ct.unc_mev
    text = studies.summary()
    assert "PDF sweep" in text and "NNPDF23_lo_as_0119_qed (LHAPDF) *"[:24] in text


def test_pdf_bias(studies):
    rows = {b.pseudo_data: b for b in studies.bias}
    assert set(rows) == {"CT10nlo", "NNPDF31", "NNPDF23_lo_as_0119_qed"}
    own = rows["NNPDF23_lo_as_0119_qed"]
    assert own.model == "NNPDF23_lo_as_0119_qed"
    assert own.bias_mev == pytest.approx(0.0, abs=1e-3) and own.scale_needed == 1.0
    for b in rows.values():
        assert b.scale_needed >= 1.0 and b.covered is not None
        if b.scale_needed > 1.0:
            assert abs(b.bias_mev) > b.pdf_unc_mev
    assert "PDF bias" in studies.summary()


def test_toys(studies):
    t = studies.toys
    assert t.n_toys == 4 and t.n_converged == 4 and t.seed == 11
    assert 0.3 * studies.mw.unc_mev < t.mean_unc_mev < 3 * studies.mw.unc_mev
    assert t.pull_std is not None


def test_poi_splits(arcs):
    r = refit(arcs["tiny"], poi="mw-charge", impacts="nominal")
    assert list(r.pois) == ["mW_plus", "mW_minus"]
    assert set(r.impacts_by_poi) == {"mW_plus", "mW_minus"}
    assert all(p.split_of == "mW" for p in r.pois.values())
    text = r.summary()
    assert "mW_plus - 80360.0 MeV" in text and "Impacts on mW_minus" in text
    r = refit(arcs["tiny"], poi="mw-barrel-endcap", impacts="none")
    assert list(r.pois) == ["mW_barrel", "mW_endcap"]


def test_tasks_on_a_dask_cluster(arcs):
    """The same fits on a dask LocalCluster (threads, so the test is quick) and in-process."""
    distributed = pytest.importorskip("distributed")
    spec = ModelSpec(str(arcs["tiny"]))
    tasks = [FitTask(label="a", spec=spec), FitTask(label="b", spec=spec, asimov=True)]
    local = [run_task(t) for t in tasks]
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        remote = run_tasks(tasks, scheduler=cluster.scheduler_address)
    for a, b in zip(local, remote, strict=True):
        assert a["label"] == b["label"]
        np.testing.assert_allclose(a["pois"]["mW"]["value"], b["pois"]["mW"]["value"], atol=1e-9)
    assert remote[1]["pois"]["mW"]["value"] == pytest.approx(0.0, abs=1e-6)


def test_toys_independent_of_chunking(arcs):
    from wmass_archive.refit.sweep import toys

    spec = ModelSpec(str(arcs["tiny"]))
    one = toys(spec, 3, seed=5, chunk=1, workers=1)
    all_ = toys(spec, 3, seed=5, chunk=3, workers=1)
    assert one.std_mev == pytest.approx(all_.std_mev, rel=1e-9)
    assert one.pull_mean == pytest.approx(all_.pull_mean, rel=1e-9)
