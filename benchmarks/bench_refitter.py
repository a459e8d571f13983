"""Benchmark the reusable refitter in one process: what a script pays per refit after the first.

    python benchmarks/bench_refitter.py                       # likelihoods/default.h5
    python benchmarks/bench_refitter.py --archive my.h5 --grids 20

Rows (wall seconds, best of ``--repeat`` where it says so):

* open: ``Refitter(archive)`` (the archive opened, the options checked);
* first fit: the nominal theory, fit + covariance + nominal and global impacts (builds the model,
  compiles its kernels unless JAX's persistent cache holds them);
* refit, same theory: the same fit again (the cost of one refit with impacts);
* refit with a new theory grid, no impacts: ``--grids`` user grids (the nominal grid with a
  smooth pT^W and rapidity reweighting of up to +-2 %), median and slowest;
* refit with another PDF set of the archive of the same structure (swapped in) and of another
  structure (built and compiled once), no impacts;
* PDF sweep in this process (every set at scale 1 and at its factor, the main fit reused),
  and its ratio to one refit with impacts (issue 15's goal: at most 2x).

Prints a markdown table; the machine's load average is printed with it (compare runs with a
similar load).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def grids(nominal: np.ndarray, shape: tuple[int, ...], n: int) -> list[np.ndarray]:
    """``n`` smooth reweightings of the nominal grid (pb per generator bin), up to +-2 %."""
    q, y, pt, h = shape
    ypos = np.linspace(-1.0, 1.0, y)[None, :, None, None]
    ptpos = np.linspace(-1.0, 1.0, pt)[None, None, :, None]
    out = []
    for k in range(n):
        a, b = 0.02 * np.sin(0.7 * k + 0.3), 0.02 * np.cos(1.3 * k)
        w = 1.0 + a * ptpos + b * ypos**2
        out.append((nominal.reshape(shape) * w).reshape(-1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--archive", default=str(ROOT / "likelihoods" / "default.h5"))
    ap.add_argument("--grids", type=int, default=20, help="user grids to refit with")
    ap.add_argument("--no-sweep", action="store_true", help="skip the PDF sweep rows")
    args = ap.parse_args()

    from wmass_archive.refit import Refitter
    from wmass_archive.refit.tasks import TaskExecutor

    rows: list[tuple[str, str, str]] = []
    t_open, rf = _timed(lambda: Refitter(args.archive))
    with rf:
        rows.append(("open the archive, check the options", f"{t_open:.2f}", ""))
        t, first = _timed(lambda: rf.fit())
        tm = first.timing_s
        rows.append(
            (
                "first fit (fit + covariance + nominal and global impacts)",
                f"{t:.2f}",
                f"build {tm.build:.2f}, compile {tm.compile:.2f}, fit {tm.fit:.2f}, "
                f"impacts {tm.impacts:.2f}",
            )
        )
        t_one, again = _timed(lambda: rf.fit())
        tm = again.timing_s
        rows.append(
            (
                "refit, same theory, with impacts",
                f"{t_one:.2f}",
                f"compile {tm.compile:.2f}, fit {tm.fit:.2f} "
                f"({again.fit_result.minimize.n_iterations} it.), impacts {tm.impacts:.2f}",
            )
        )
        meta = rf.metadata.theory
        nominal = rf.archive.theory_nominal()
        times, iters = [], []
        for g in grids(nominal, tuple(meta.shape), args.grids):
            t, r = _timed(lambda g=g: rf.fit(grid=g, impacts="none"))
            times.append(t)
            iters.append(r.fit_result.minimize.n_iterations)
        rows.append(
            (
                f"refit with a new theory grid, no impacts ({args.grids} grids)",
                f"{statistics.median(times):.2f}",
                f"slowest {max(times):.2f}; Newton iterations {min(iters)}-{max(iters)}",
            )
        )
        used = rf.theory()
        sets = [s for s in meta.pdf_sets if s.name != used.name]
        same = [s for s in sets if s.n_nuisances == used.pdf.n_nuisances]
        other = [s for s in sets if s.n_nuisances != used.pdf.n_nuisances]
        for label, pick in (("same structure, swapped in", same), ("another structure", other)):
            if not pick:
                continue
            s = pick[0]
            t, r = _timed(lambda s=s: rf.fit(s.name, impacts="none"))
            tm = r.timing_s
            rows.append(
                (
                    f"refit with PDF set {s.name} ({label}), no impacts",
                    f"{t:.2f}",
                    f"build {tm.build:.2f}, compile {tm.compile:.2f}, fit {tm.fit:.2f} "
                    f"({r.fit_result.minimize.n_iterations} it.)",
                )
            )
        if not args.no_sweep:
            base = rf.fit()  # the main fit of the sweep, nominal set
            with TaskExecutor(None, 1, False) as ex:
                t, sweep = _timed(lambda: rf.pdf_sweep(base, executor=ex))
            rows.append(
                (
                    f"PDF sweep in this process ({len(sweep)} sets, main fit reused)",
                    f"{t:.2f}",
                    f"x{(t_one + t) / t_one:.2f} the time of one refit with impacts "
                    "(main fit + sweep over main fit)",
                )
            )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# {Path(args.archive).name}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}, Python {sys.version.split()[0]}"
    )
    print("| step | wall [s] | detail |")
    print("|---|---:|---|")
    for name, wall, detail in rows:
        print(f"| {name} | {wall} | {detail} |")


if __name__ == "__main__":
    main()
