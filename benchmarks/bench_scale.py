"""Benchmark the fitter beyond the default archive: fit + covariance wall time and peak memory of
synthetic models up to 10 000 bins x 10 000 nuisances and 3 000 bins x 20 000 nuisances, with
the full covariance (``covariance="full"``, n_params^2 doubles) and with the POIs' columns only
(``covariance="pois"``).

    python benchmarks/bench_scale.py                         # the whole ladder (~5 min quiet)
    python benchmarks/bench_scale.py --sizes 3000x5000 10000x10000 --modes pois
    python benchmarks/bench_scale.py --impacts               # also global impacts
    python benchmarks/bench_scale.py --keep /tmp/scale       # keep (and reuse) the archives

The models are demonstration archives (``wmass_archive.producers.demo``) with CMS's structure:
reco bins eta x pT x charge (pT: 30 bins up to 3 000 bins, 50 above), a folded W signal with
responses at three mass points over 1440 generator bins, four backgrounds, a Hessian PDF set
with 250 eigenvector pairs and 18 theory nuisances acting on the generator-level grid (dense),
five wide normalisations (dense), and sparse nuisances: a muon-momentum scale per eta row
(both charges) and efficiency nuisances, ``k`` per (step, eta, charge) row for five steps, where
``k`` sets the total. Each measurement runs in a fresh process (peak RSS and JIT are those of
one fit): build the model, ``fit(model, covariance=mode, impacts=(), gof=False)``. Times are
wall-clock seconds, with the CPU seconds of the process beside them (far less sensitive to other
load on a shared machine); the 1-minute load average is printed with each row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ("reco", "tracking", "idip", "trigger", "iso")
DEFAULT_SIZES = (
    "2880x2500",
    "3000x5000",
    "3000x10000",
    "3000x20000",
    "5000x10000",
    "10000x10000",
)
PDF_PAIRS = 250


def config(bins: int, nuisances: int):
    """A DemoConfig with about ``bins`` reco bins and ``nuisances`` nuisance parameters."""
    from wmass_archive.producers.demo import DEMO_SIZES

    n_pt = 30 if bins <= 3000 else 50
    n_eta = max(1, round(bins / (2 * n_pt)))
    fixed = n_eta + 5 + 2 + 2 * 8 + PDF_PAIRS  # muon scale, normalisations, theory, PDF
    k = max(1, round((nuisances - fixed) / (len(STEPS) * 2 * n_eta)))
    return dataclasses.replace(
        DEMO_SIZES["large"],
        n_eta=n_eta,
        n_pt=n_pt,
        eff_steps=STEPS,
        eff_params=k,
        n_hessian_pairs=PDF_PAIRS,
        n_replicas=10,
        n_pdf_sets_extra=0,
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_s() -> float:
    """CPU seconds (user + system) of this process: less sensitive than wall time to other
    load on a shared machine (JAX runs these kernels on one thread here)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child(archive: str, mode: str, impacts: bool) -> dict:
    """One measurement in this process; returns the numbers as a dict."""
    from wmass_archive.fit import fit
    from wmass_archive.model import build_model

    cpu0 = cpu_s()
    t0 = time.perf_counter()
    model = build_model(archive)
    t_build = time.perf_counter() - t0
    rss_model = rss_mb()
    r = fit(
        model,
        covariance=mode,
        impacts=("global",) if impacts else (),
        gof=False,
        strict=False,
    )
    p = r.poi()
    lay = model.layout
    sizes = [int((b.cols < lay.n_sparse).sum(axis=1).max()) for b in lay.buckets]
    return {
        "archive": Path(archive).name,
        "mode": mode,
        "n_bins": model.n_bins,
        "n_params": model.n_params,
        "n_dense": lay.n_dense,
        "n_sparse": lay.n_sparse,
        "n_blocks": sum(b.n_blocks for b in lay.buckets),
        "largest_block": max(sizes, default=0),
        "build": t_build,
        "compile": r.timing.compile,
        "fit": r.timing.fit,
        "covariance": r.timing.covariance,
        "impacts": r.timing.impacts,
        "total": t_build + r.timing.total,
        "cpu": cpu_s() - cpu0,
        "iterations": r.minimize.n_iterations,
        "status": r.status,
        "poi": f"{p.physical_value:.3f} +- {p.physical_error:.4f} {p.unit}",
        "rss_model_mb": rss_model,
        "peak_rss_mb": rss_mb(),
        "warnings": len(r.warnings),
    }


def measure(archive: Path, mode: str, impacts: bool, timeout: float, repeat: int) -> dict:
    """The best of ``repeat`` fresh processes: minimum of each time, maximum of the RSS."""
    rows = [measure_once(archive, mode, impacts, timeout) for _ in range(repeat)]
    ok = [r for r in rows if "n_params" in r]
    if not ok:
        return rows[0]
    best = dict(ok[0])
    for k, v in ok[0].items():
        if isinstance(v, float) and k != "load_avg":
            vals = [r[k] for r in ok]
            best[k] = max(vals) if k.endswith("_mb") else min(vals)
    best["load_avg"] = max(r["load_avg"] for r in ok)
    return best


def measure_once(archive: Path, mode: str, impacts: bool, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(archive), "--modes", mode]
    if impacts:
        cmd.append("--impacts")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"archive": archive.name, "mode": mode, "status": f"timeout {timeout:.0f} s"}
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"archive": archive.name, "mode": mode, "status": f"failed: {tail}"}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["load_avg"] = os.getloadavg()[0]
    return row


COLUMNS = [
    ("n_bins", "bins", "{:>6d}"),
    ("n_params", "params", "{:>6d}"),
    ("n_dense", "dense", "{:>5d}"),
    ("largest_block", "block", "{:>5d}"),
    ("mode", "cov", "{:>4s}"),
    ("build", "build", "{:>6.1f}"),
    ("compile", "JIT", "{:>6.1f}"),
    ("fit", "fit", "{:>6.1f}"),
    ("covariance", "cov_s", "{:>6.1f}"),
    ("impacts", "imp_s", "{:>6.1f}"),
    ("total", "total", "{:>6.1f}"),
    ("cpu", "cpu_s", "{:>6.1f}"),
    ("iterations", "iter", "{:>4d}"),
    ("rss_model_mb", "RSS0 MB", "{:>7.0f}"),
    ("peak_rss_mb", "peak MB", "{:>7.0f}"),
]


def print_table(rows: list[dict]) -> None:
    print(" ".join(f"{h:>{len(f.format(0 if 'd}' in f else ('x' if 's}' in f else 0.0)))}}"
                   for _, h, f in COLUMNS) + "  POI")  # fmt: skip
    for r in rows:
        if "n_params" not in r:
            print(f"{r['archive']} ({r['mode']}): {r['status']}")
            continue
        print(
            " ".join(f.format(r[k]) for k, _, f in COLUMNS)
            + f"  {r['poi']} ({r['status']}, load {r['load_avg']:.1f})"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=list(DEFAULT_SIZES),
                    help="BINSxNUISANCES, e.g. 10000x10000")  # fmt: skip
    ap.add_argument("--modes", nargs="*", default=["full", "pois"], choices=["full", "pois"])
    ap.add_argument("--impacts", action="store_true", help="also global impacts")
    ap.add_argument("--keep", help="folder for the archives (kept, and reused if present)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    ap.add_argument("--repeat", type=int, default=1, help="processes per row (best is kept)")
    ap.add_argument("--json", help="write all rows to this JSON file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.modes[0], args.impacts)))
        return 0

    from wmass_archive.producers.demo import build_demo_archive

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            bins, nuis = (int(x) for x in size.lower().split("x"))
            path = folder / f"scale_{bins}x{nuis}.h5"
            if not path.exists():
                t0 = time.perf_counter()
                rep = build_demo_archive(path, config(bins, nuis))
                print(f"built {path.name}: {rep.file_bytes / 1e6:.0f} MB in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
            for mode in args.modes:
                rows.append(measure(path, mode, args.impacts, args.timeout, args.repeat))
                print_table(rows[-1:])
                sys.stdout.flush()
            if not args.keep:
                path.unlink()
    print("\nall rows:")
    print_table(rows)
    print(
        "\ncolumns: bins, parameters, dense parameters, largest sparse block, covariance mode; "
        "seconds for model build, JIT compilation, fit (minimisation), covariance, global "
        "impacts (with --impacts), total "
        "(build + fit call) and CPU seconds of the process for them; Newton iterations; RSS after "
        "the model build and peak RSS of the process (MB); with --repeat, the best of the runs"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
