"""Chunked, parallel event processing: generation -> detector -> histograms, summed in order.

A sample of N events is cut into K = ceil(N / chunk_size) chunks. Chunk k draws its random
numbers from ``SeedSequence(seed, spawn_key=(k,))`` (two children: generation, detector),
so its content depends only on (seed, k, K) and never on which worker ran it or when. The
chunk outputs (:class:`templates.Histograms`) are added in chunk order 0, 1, ..., K-1, so the
result is bit-identical for 1 worker, a local process pool or a dask cluster. (Changing
``chunk_size`` changes K and therefore the random numbers: a statistically equivalent,
not identical, sample.)

Where chunks run (:class:`ProcessingConfig`): in this process (``workers=1``), in a local
process pool (``workers>1``), or on a dask.distributed cluster (``scheduler`` = its address,
e.g. ``tcp://host:8786``). At most ``max_in_flight`` chunks are pending at a time, so memory
stays bounded (a signal chunk's response tensor is 100 MB).

Throughput (``benchmarks/bench_events.py``, one core, 1e6 W events per chunk): about 1e6
events/s for the whole chain (generation 2.5e6/s, detector 5.6e6/s, nominal templating with
the response tensor 7e6/s, the 317 variations 4e6/s).

Sources: :class:`SignalSource` (W events from a CellDensities), :class:`SampleSource` (an
existing TruthMuons sample, e.g. from :func:`backgrounds.generate`, cut into chunks) and
:class:`GeneratorSource` (a picklable ``fn(n, rng) -> TruthMuons`` whose weights sum to the
process's cross section, called per chunk, e.g. ``functools.partial(backgrounds.generate,
"Zmumu")``).
"""

from __future__ import annotations

import math
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from ..._optional import require
from ...theory.generator import CellDensities
from .detector import DetectorModel, simulate
from .signal import CellTables, SignalConfig, WEvents, allocate_events, chunk_counts, generate_chunk
from .templates import Histograms, Templates, VariationSpec, fill, finalize, variation_specs
from .truth import TruthMuons


class ProcessingConfig(BaseModel):
    """How to run the event processing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_size: int = Field(1_000_000, ge=1, description="events per chunk")
    seed: int = Field(20241217, ge=0)
    workers: int = Field(1, ge=1, description="local processes (1: run in this process)")
    scheduler: str | None = Field(None, description="dask.distributed scheduler address")
    max_in_flight: int | None = Field(None, ge=1, description="default 2 x workers (+2)")
    start_method: Literal["spawn", "forkserver", "fork"] = Field(
        "spawn", description="of the local pool; spawn needs the if __name__ == '__main__' guard"
    )
    progress: bool = True


class EventSource(Protocol):
    """What :func:`process` needs from a sample: its size, whether it is the folded signal,
    and chunk ``k`` of ``n_chunks`` generated with ``rng``."""

    n_events: int
    signal: bool

    def generate(self, chunk: int, n_chunks: int, rng: np.random.Generator) -> Any: ...


@dataclass
class SignalSource:
    """W -> mu nu events drawn cell by cell from ``densities`` (see :mod:`.signal`); about
    ``n_requested`` events in all (``n_events`` is the exact total of the allocation)."""

    densities: CellDensities
    n_requested: int
    config: SignalConfig = field(default_factory=SignalConfig)
    signal: bool = True

    def __post_init__(self) -> None:
        self.n_cell = allocate_events(
            self.densities.grid, self.n_requested, self.config.floor_fraction
        )
        self.n_events = int(self.n_cell.sum())
        self._tables: CellTables | None = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_tables"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _tables=None)

    def generate(self, chunk: int, n_chunks: int, rng: np.random.Generator) -> WEvents:
        if self._tables is None:
            self._tables = CellTables.build(self.densities)
        counts = chunk_counts(self.n_cell, chunk, n_chunks)
        return generate_chunk(
            self.densities, counts, self.n_cell, rng, self.config, tables=self._tables
        )


def _slice(t: TruthMuons, lo: int, hi: int) -> TruthMuons:
    return TruthMuons(**{f.name: getattr(t, f.name)[lo:hi] for f in fields(TruthMuons)})


def _chunk_range(n: int, chunk: int, n_chunks: int) -> tuple[int, int]:
    return chunk * n // n_chunks, (chunk + 1) * n // n_chunks


@dataclass
class SampleSource:
    """An existing truth sample, processed in chunks (weights as they are, pb per event)."""

    sample: TruthMuons
    signal: bool = False

    @property
    def n_events(self) -> int:
        return len(self.sample)

    def for_chunk(self, chunk: int, n_chunks: int) -> SampleSource:
        """The part of the sample chunk ``chunk`` processes (shipped to a worker alone)."""
        return SampleSource(_slice(self.sample, *_chunk_range(len(self.sample), chunk, n_chunks)))

    def generate(self, chunk: int, n_chunks: int, rng: np.random.Generator) -> TruthMuons:
        return self.sample


@dataclass
class GeneratorSource:
    """``fn(n, rng) -> TruthMuons`` with weights summing to the cross section (pb), called for
    each chunk's share n_k of ``n_events``; weights are scaled by n_k / n_events so that the
    whole sample sums to the cross section. ``fn`` must be picklable for parallel runs."""

    fn: Callable[[int, np.random.Generator], TruthMuons]
    n_events: int
    signal: bool = False

    def generate(self, chunk: int, n_chunks: int, rng: np.random.Generator) -> TruthMuons:
        lo, hi = _chunk_range(self.n_events, chunk, n_chunks)
        t = self.fn(hi - lo, rng)
        t.weight = t.weight * ((hi - lo) / self.n_events)
        return t


def chunk_rngs(seed: int, chunk: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators (generation, detector) of chunk ``chunk``, from
    ``SeedSequence(seed, spawn_key=(chunk,))``: the same whatever the number of chunks run."""
    ss = np.random.SeedSequence(seed, spawn_key=(chunk,))
    g, d = ss.spawn(2)
    return np.random.default_rng(g), np.random.default_rng(d)


def run_chunk(
    source: EventSource,
    det: DetectorModel,
    specs: list[VariationSpec],
    seed: int,
    chunk: int,
    n_chunks: int,
) -> Histograms:
    """Generate, simulate and histogram chunk ``chunk`` of ``n_chunks``."""
    rng_gen, rng_det = chunk_rngs(seed, chunk)
    events = source.generate(chunk, n_chunks, rng_gen)
    truth = events.truth if isinstance(events, WEvents) else events
    reco = simulate(truth, det, rng_det)
    return fill(events, reco, det, specs)


def _ordered(submit: Callable[[int], Any], n: int, window: int) -> Iterator[Any]:
    """Results of ``submit(0..n-1)`` (futures) in order, at most ``window`` pending."""
    pending: deque = deque()
    nxt = 0
    for k in range(n):
        while nxt < n and len(pending) < window:
            pending.append(submit(nxt))
            nxt += 1
        fut = pending.popleft()
        res = fut.result()
        if hasattr(fut, "release"):
            fut.release()
        del fut
        yield k, res


class _Immediate:
    def __init__(self, value: Any):
        self._value = value

    def result(self) -> Any:
        return self._value


def process(
    source: EventSource,
    lumi: float,
    det: DetectorModel | None = None,
    config: ProcessingConfig | None = None,
    specs: list[VariationSpec] | None = None,
    signal_config: SignalConfig | None = None,
) -> Templates:
    """Run the whole chain on ``source`` and return its :class:`Templates` for luminosity
    ``lumi`` (pb^-1). ``specs`` default to :func:`variation_specs` (with the EW ones for the
    signal). Deterministic in (source, det, specs, seed, chunk_size)."""
    det = det or DetectorModel()
    cfg = config or ProcessingConfig()
    if specs is None:
        specs = variation_specs(det, signal=source.signal)
    if signal_config is None and isinstance(source, SignalSource):
        signal_config = source.config
    n_chunks = max(1, math.ceil(source.n_events / cfg.chunk_size))
    window = cfg.max_in_flight or (2 * cfg.workers + 2)

    def payload(k: int) -> tuple:
        src = source.for_chunk(k, n_chunks) if hasattr(source, "for_chunk") else source
        return (src, det, specs, cfg.seed, k, n_chunks)

    total: Histograms | None = None
    bar = tqdm(
        total=source.n_events,
        unit="evt",
        unit_scale=True,
        disable=not cfg.progress,
        desc="events",
    )
    client = executor = None
    try:
        if cfg.scheduler is not None:
            distributed = require("distributed", "dask", "event processing on a dask cluster")
            client = distributed.Client(cfg.scheduler)

            def submit(k: int):
                return client.submit(run_chunk, *payload(k), pure=False)
        elif cfg.workers > 1:
            ctx = multiprocessing.get_context(cfg.start_method)
            executor = ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx)

            def submit(k: int):
                return executor.submit(run_chunk, *payload(k))
        else:

            def submit(k: int):
                return _Immediate(run_chunk(*payload(k)))

            window = 1
        for _, res in _ordered(submit, n_chunks, window):
            if total is None:
                total = res
            else:
                total.add(res)
            bar.update(res.n_events)
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        if client is not None:
            client.close()
    return finalize(total, specs, lumi, signal_config)


def process_signal(
    densities: CellDensities,
    n_events: int,
    lumi: float,
    det: DetectorModel | None = None,
    signal_config: SignalConfig | None = None,
    config: ProcessingConfig | None = None,
) -> Templates:
    """Signal templates (with response tensor, mass templates, calibration and EW
    variations) from about ``n_events`` W events drawn from ``densities``."""
    src = SignalSource(densities, n_events, signal_config or SignalConfig())
    return process(src, lumi, det, config)


def process_sample(
    sample: TruthMuons | Callable[[int, np.random.Generator], TruthMuons],
    lumi: float,
    n_events: int | None = None,
    det: DetectorModel | None = None,
    config: ProcessingConfig | None = None,
) -> Templates:
    """Templates (nominal, sumw2, calibration variations) of a background: an existing
    TruthMuons ``sample``, or a generator ``fn(n, rng)`` run for ``n_events`` events."""
    if isinstance(sample, TruthMuons):
        src: EventSource = SampleSource(sample)
    else:
        if n_events is None:
            raise ValueError("n_events is required with a generator function")
        src = GeneratorSource(sample, int(n_events))
    return process(src, lumi, det, config)
