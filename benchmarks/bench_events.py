"""Throughput of the pseudo-analysis' event processing, per stage and per core; prints a table.

    python benchmarks/bench_events.py [--events 1e6] [--repeat 3] [--workers 2]

Stages, on one chunk of --events W -> mu nu events from the analytic production model
(:func:`signal.analytic_cell_densities`), each timed as the best of --repeat runs in this
process (one core): generation (W events, decay, FSR), detector (smearing, recoil, mT,
efficiency, selection), templating of the nominal (yields, sumw2, mass templates, the
3 x 2880 x 1440 response tensor) and of the 317 event-level variations, and the whole chain.
With --workers > 1 the full :func:`processing.process` is also run on a local process pool
(wall time, so including process start-up and the transfer of the 100 MB chunk results).
"""

from __future__ import annotations

import argparse
import os
import time

from wmass_archive.producers.pseudo.detector import DetectorModel, simulate
from wmass_archive.producers.pseudo.processing import (
    ProcessingConfig,
    SignalSource,
    chunk_rngs,
    process,
)
from wmass_archive.producers.pseudo.signal import analytic_cell_densities
from wmass_archive.producers.pseudo.templates import fill, variation_specs


def best(repeat: int, fn):
    """(fastest time in s, last result) of ``repeat`` calls of ``fn()``."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=float, default=1e6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="also run process() on a pool")
    a = ap.parse_args()
    n = int(a.events)
    det = DetectorModel()
    src = SignalSource(analytic_cell_densities(), n)
    specs = variation_specs(det, signal=True)
    rg, rd = chunk_rngs(1, 0)
    src.generate(0, 1, rg)  # warm-up (tables, page faults)

    t_gen, ev = best(a.repeat, lambda: src.generate(0, 1, chunk_rngs(1, 0)[0]))
    t_det, reco = best(a.repeat, lambda: simulate(ev.truth, det, chunk_rngs(1, 0)[1]))
    t_nom, _ = best(a.repeat, lambda: fill(ev, reco, det, []))
    t_all, _ = best(a.repeat, lambda: fill(ev, reco, det, specs))
    t_var = max(t_all - t_nom, 0.0)

    def chain():
        g, d = chunk_rngs(1, 0)
        e = src.generate(0, 1, g)
        return fill(e, simulate(e.truth, det, d), det, specs)

    t_chain, h = best(a.repeat, chain)
    m = src.n_events
    print(f"{m:,} W events per chunk, {h.n_selected:,} selected, {len(specs)} variations")
    print(f"{'stage':<34}{'s / chunk':>12}{'events/s/core':>16}")
    rows = [
        ("signal generation", t_gen),
        ("detector", t_det),
        ("templating: nominal + response", t_nom),
        ("templating: variations", t_var),
        ("templating: all", t_all),
        ("whole chain (gen + det + tpl)", t_chain),
    ]
    for name, t in rows:
        print(f"{name:<34}{t:>12.3f}{m / t:>16,.0f}")
    if a.workers > 1:
        cfg = ProcessingConfig(
            chunk_size=n, workers=a.workers, progress=False, start_method="spawn"
        )
        src_n = SignalSource(src.densities, n * 2 * a.workers)
        t0 = time.perf_counter()
        process(src_n, 1.0, det, cfg)
        t = time.perf_counter() - t0
        print(
            f"process() on {a.workers} workers ({os.cpu_count()} cores here): "
            f"{src_n.n_events / t:,.0f} events/s, {src_n.n_events / t / a.workers:,.0f} per worker"
        )


if __name__ == "__main__":
    main()
