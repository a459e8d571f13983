"""Measure the theory-grid costs: PDF reading and evaluation, one member's grid, whole sets,
in-cell densities and the theory variations; print a table.

    python benchmarks/bench_theory.py [--pdf-path DIR] [--repeat 3]

DIR defaults to LHAPDF_DATA_PATH, else ../shared/pdfsets next to the repository. Times are the
best of --repeat runs, in a warm process (the pT^W model is cached after its first use, which is
timed separately as "cold").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from wmass_archive.theory import (
    TheoryParameters,
    available_pdf_sets,
    cell_densities,
    compute_set_values,
    grid_values,
    load_member,
    load_pdf_set,
    theory_variations,
)
from wmass_archive.theory import compute as _compute
from wmass_archive.theory import ptspectrum as _pts


def best(repeat: int, fn, *args, **kwargs) -> float:
    """Fastest of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("LHAPDF_DATA_PATH") or str(
        Path(__file__).resolve().parents[2] / "shared" / "pdfsets"
    )
    ap.add_argument("--pdf-path", default=default)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    paths = args.pdf_path
    sets = available_pdf_sets(paths)
    if not sets:
        sys.exit(f"no LHAPDF sets in {paths}")
    p = TheoryParameters()
    rows: list[tuple[str, str, str]] = []

    # cold pT model (first grid in the process)
    _pts._cached.cache_clear()
    _compute._node_densities.cache_clear()
    m0 = load_member(sets[0], 0, paths)
    t0 = time.perf_counter()
    grid_values(m0, p)
    rows.append(
        ("pT^W model, cold (first grid in a process)", "-", f"{time.perf_counter() - t0:.3f} s")
    )

    for name in sets:
        pset = load_pdf_set(name, paths)
        n = len(pset)
        t_read = best(args.repeat, pset.member, 0, cache=False)
        m = pset.member(0)
        rng = np.random.default_rng(0)
        x = np.exp(rng.uniform(np.log(1e-4), np.log(0.9), 100_000))
        q = np.full_like(x, p.mw_gev)
        t_eval = best(args.repeat, m.xfxQ_all, x, q)
        t_grid = best(args.repeat, grid_values, m, p)
        t_set = best(args.repeat, compute_set_values, name, p, paths=paths, progress=False)
        rows += [
            (f"{name}: read one member file", "1 member", f"{1e3 * t_read:.1f} ms"),
            (f"{name}: x f(x, Q), 13 partons", "100k points", f"{1e3 * t_eval:.0f} ms"),
            (f"{name}: grid of member 0 (warm)", "1 member", f"{1e3 * t_grid:.1f} ms"),
            (
                f"{name}: grids of the whole set",
                f"{n} members",
                f"{t_set:.2f} s ({1e3 * t_set / n:.1f} ms/member)",
            ),
        ]
    rows.append(
        (
            "cell densities (event-simulation input)",
            "1 member",
            f"{best(args.repeat, cell_densities, m0, p):.3f} s",
        )
    )
    rows.append(
        (
            "theory variations (46 up/down pairs)",
            "1 member",
            f"{best(1, theory_variations, m0, p):.2f} s",
        )
    )

    w = max(len(r[0]) for r in rows)
    print(f"{'operation':<{w}}  {'unit':<12}  time")
    print(f"{'-' * w}  {'-' * 12}  {'-' * 28}")
    for op, unit, t in rows:
        print(f"{op:<{w}}  {unit:<12}  {t}")
    print(f"\n(numpy {np.__version__}, {os.cpu_count()} CPU cores, best of {args.repeat})")


if __name__ == "__main__":
    main()
