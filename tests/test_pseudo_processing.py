"""Chunked and parallel event processing: folding closure, determinism across workers and
dask, sources."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from wmass_archive.producers.pseudo.detector import N_RECO, RECO_SHAPE, DetectorModel
from wmass_archive.producers.pseudo.processing import (
    GeneratorSource,
    ProcessingConfig,
    SampleSource,
    SignalSource,
    chunk_rngs,
    process,
    process_sample,
    process_signal,
    run_chunk,
)
from wmass_archive.producers.pseudo.signal import analytic_cell_densities
from wmass_archive.producers.pseudo.templates import Templates
from wmass_archive.producers.pseudo.truth import TruthMuons
from wmass_archive.theory.generator import N_GEN

LUMI = 16_800.0
N_EVENTS = 60_000
CHUNK = 20_000


@pytest.fixture(scope="module")
def densities():
    return analytic_cell_densities()


@pytest.fixture(scope="module")
def local_run(densities) -> Templates:
    cfg = ProcessingConfig(chunk_size=CHUNK, seed=5, progress=False)
    return process_signal(densities, N_EVENTS, LUMI, config=cfg)


def _assert_identical(a: Templates, b: Templates) -> None:
    np.testing.assert_array_equal(a.nominal, b.nominal)
    np.testing.assert_array_equal(a.sumw2, b.sumw2)
    np.testing.assert_array_equal(a.mass_templates, b.mass_templates)
    np.testing.assert_array_equal(a.response, b.response)
    assert [v.name for v in a.variations] == [v.name for v in b.variations]
    for va, vb in zip(a.variations, b.variations, strict=True):
        np.testing.assert_array_equal(va.bins, vb.bins)
        np.testing.assert_array_equal(va.logk_up, vb.logk_up)
        np.testing.assert_array_equal(va.logk_down, vb.logk_down)


def test_templates_structure(local_run, densities):
    t = local_run
    assert t.nominal.shape == RECO_SHAPE and t.sumw2.shape == RECO_SHAPE
    assert t.mass_templates.shape == (3, *RECO_SHAPE)
    assert t.response.shape == (3, N_RECO, N_GEN)
    assert t.mass_points == pytest.approx((80.26, 80.36, 80.46))
    assert t.sigma_generated == pytest.approx(densities.grid[..., 0].sum(), rel=1e-12)
    assert 0.3 < t.acceptance < 0.45
    assert np.all(t.sumw2 >= 0) and np.all((t.nominal > 0) | (t.sumw2 == 0))
    groups = [v.group for v in t.variations]
    assert groups.count("muonCalibration") == 314 and groups.count("theory_ew") == 3
    for v in t.variations:
        assert v.bins.min() >= 0 and v.bins.max() < N_RECO
        assert np.all(t.nominal.ravel()[v.bins] > 0)
        assert v.logk_up.shape == v.bins.shape == v.logk_down.shape


def test_folding_reproduces_nominal(local_run, densities):
    t = local_run
    grid = densities.grid.ravel()
    for p in range(3):
        folded = t.lumi * t.response[p] @ grid
        ref = t.mass_templates[p].ravel()
        np.testing.assert_allclose(folded, ref, rtol=1e-10, atol=1e-10 * ref.max())
    np.testing.assert_array_equal(t.mass_templates[1], t.nominal)
    # a generator bin's response: non-negative for the UL term (efficiencies x BW weights)
    assert np.all(t.response[:, :, 0::9] >= 0)


def test_bit_identical_with_a_process_pool(local_run, densities):
    cfg = ProcessingConfig(chunk_size=CHUNK, seed=5, progress=False, workers=2)
    _assert_identical(local_run, process_signal(densities, N_EVENTS, LUMI, config=cfg))


def test_dask_local_cluster_equals_local_run(local_run, densities):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        cfg = ProcessingConfig(
            chunk_size=CHUNK, seed=5, progress=False, scheduler=cluster.scheduler_address
        )
        _assert_identical(local_run, process_signal(densities, N_EVENTS, LUMI, config=cfg))


def test_seed_and_chunking(local_run, densities):
    cfg = ProcessingConfig(chunk_size=CHUNK, seed=6, progress=False)
    other = process_signal(densities, N_EVENTS, LUMI, config=cfg)
    assert not np.array_equal(other.nominal, local_run.nominal)
    # another chunking is another (statistically equivalent) sample with the same normalisation
    cfg = ProcessingConfig(chunk_size=N_EVENTS, seed=5, progress=False)
    one = process_signal(densities, N_EVENTS, LUMI, config=cfg)
    assert one.sigma_generated == pytest.approx(local_run.sigma_generated, rel=1e-12)
    assert one.nominal.sum() == pytest.approx(local_run.nominal.sum(), rel=0.02)
    # chunk generators depend on (seed, chunk) only
    a, _ = chunk_rngs(5, 2)
    b, _ = chunk_rngs(5, 2)
    assert a.random() == b.random()


def _toy_truth(n: int, rng: np.random.Generator) -> TruthMuons:
    return TruthMuons(
        pt=rng.uniform(20, 60, n),
        eta=rng.uniform(-2.5, 2.5, n),
        phi=rng.uniform(-np.pi, np.pi, n),
        charge=np.where(rng.random(n) < 0.5, -1, 1).astype(np.int8),
        weight=np.full(n, 100.0 / n),
        boson_px=rng.normal(0, 5, n),
        boson_py=rng.normal(0, 5, n),
    )


def test_background_sources():
    sample = _toy_truth(30_000, np.random.default_rng(1))
    cfg = ProcessingConfig(chunk_size=10_000, seed=3, progress=False)
    t = process_sample(sample, 10.0, config=cfg)
    assert t.response is None and t.mass_templates is None
    assert t.n_events == 30_000 and t.sigma_generated == pytest.approx(100.0)
    assert {v.group for v in t.variations} == {"muonCalibration"}
    # chunks of an existing sample: same result as one chunk only in the normalisation
    # (the detector's random numbers depend on the chunk)
    t1 = process(SampleSource(sample), 10.0, config=cfg.model_copy(update={"chunk_size": 10**6}))
    assert t1.nominal.sum() == pytest.approx(t.nominal.sum(), rel=0.02)
    # a generator function: weights rescaled so that the whole sample sums to its sigma
    gen = GeneratorSource(_toy_truth, 30_000)
    tg = process(gen, 10.0, config=cfg)
    assert tg.sigma_generated == pytest.approx(100.0)
    tg2 = process_sample(functools.partial(_toy_truth), 10.0, n_events=30_000, config=cfg)
    np.testing.assert_array_equal(tg.nominal, tg2.nominal)


def test_run_chunk_is_reproducible(densities):
    src = SignalSource(densities, 10_000)
    det = DetectorModel()
    a = run_chunk(src, det, [], 1, 0, 2)
    b = run_chunk(src, det, [], 1, 0, 2)
    np.testing.assert_array_equal(a.response, b.response)
    assert a.n_events + run_chunk(src, det, [], 1, 1, 2).n_events == src.n_events
