"""The exports' size and memory estimates (wmass_archive/interop/_bounds.py) against real runs,
printing a table.

    python benchmarks/bench_export_estimate.py              # small archives, about a minute
    python benchmarks/bench_export_estimate.py --medium     # and a 960-bin demo archive
    python benchmarks/bench_export_estimate.py --default    # and the default archive's refusal

Each export runs in a fresh Python process (the peak resident memory, ``ru_maxrss``, is the
process's own, imports included) with its bounds switched off; the estimate is computed in the
same process before the export. Columns: output bytes estimated / written (``est``, ``real``,
ratio) and peak memory estimated / measured (MB, ratio). ``--default`` times the refusal of
``wmass-archive export pyhf likelihoods/default.h5`` under the default bounds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, math, resource, sys, time
from pathlib import Path
from wmass_archive import open_archive
from wmass_archive.interop import _bounds
kind, src, out, extra = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4])
with open_archive(src) as a:
    if kind == "pyhf":
        est = _bounds.estimate_pyhf(a, None, len(extra["masses"]))
    else:
        est = _bounds.estimate_rabbit(a, None, extra["sparse"])
t0 = time.perf_counter()
if kind == "pyhf":
    from wmass_archive.interop.pyhf import export_pyhf
    rep = export_pyhf(src, out, mass_points=extra["masses"], max_output_gb=math.inf,
                      max_memory_gb=math.inf)
    real = rep.size_bytes + rep.patchset_bytes
else:
    from wmass_archive.interop.rabbit import export_rabbit
    rep = export_rabbit(src, out, sparse=extra["sparse"], max_output_gb=math.inf,
                        max_memory_gb=math.inf)
    real = rep.size_bytes
print(json.dumps(dict(est_out=est.output_bytes, est_mem=est.memory_bytes, real_out=real,
                      real_mem=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      seconds=time.perf_counter() - t0)))
"""


def build(tmp: Path, medium: bool) -> list[tuple[str, Path, list[float]]]:
    """(name, archive, mass points) of the archives measured."""
    from wmass_archive.model.synthetic import write_folded_archive
    from wmass_archive.producers.demo import DemoConfig, build_demo_archive

    out = []
    p = tmp / "folded.h5"
    write_folded_archive(p, two_channels=True)
    out.append(("folded 2 ch", p, [80350.0, 80360.0, 80370.0]))
    p = tmp / "demo.h5"
    build_demo_archive(p, DemoConfig())
    out.append(("demo small", p, [80340.0 + 10 * i for i in range(5)]))
    if medium:
        p = tmp / "demo_m.h5"
        build_demo_archive(p, DemoConfig(n_eta=24, n_pt=20))
        out.append(("demo 24x20", p, [80350.0, 80360.0, 80370.0]))
    return out


def run(kind: str, src: Path, out: Path, extra: dict) -> dict:
    """One export in a fresh process; its JSON line."""
    r = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(src), str(out), json.dumps(extra)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"{kind} export of {src.name} failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--medium", action="store_true", help="also a 960-bin demo archive")
    ap.add_argument("--default", action="store_true", help="time the default archive's refusal")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-export-estimate-") as d:
        tmp = Path(d)
        for name, src, masses in build(tmp, args.medium):
            for kind, extra in (
                ("pyhf", {"masses": masses}),
                ("rabbit sparse", {"sparse": True}),
                ("rabbit dense", {"sparse": False}),
            ):
                r = run(kind.split()[0], src, tmp / f"{src.stem}.{kind[:5]}.out", extra)
                label = kind + (f" ({len(masses)} patches)" if kind == "pyhf" else "")
                rows.append((name, label, r))
    head = (
        f"{'archive':<12} {'export':<22} {'out est MB':>10} {'out MB':>9} {'ratio':>6} "
        f"{'mem est MB':>10} {'peak MB':>8} {'ratio':>6} {'s':>6}"
    )
    print(head)
    print("-" * len(head))
    for name, label, r in rows:
        print(
            f"{name:<12} {label:<22} {r['est_out'] / 1e6:>10.3f} {r['real_out'] / 1e6:>9.3f} "
            f"{r['est_out'] / r['real_out']:>6.2f} {r['est_mem'] / 1e6:>10.0f} "
            f"{r['real_mem'] / 1e6:>8.0f} {r['est_mem'] / r['real_mem']:>6.2f} "
            f"{r['seconds']:>6.1f}"
        )
    if args.default:
        default = REPO / "likelihoods" / "default.h5"
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            r = subprocess.run(
                ["wmass-archive", "export", "pyhf", str(default), "-o", f"{d}/ws.json"],
                capture_output=True,
                text=True,
                check=False,
            )
            dt = time.perf_counter() - t0
        print(f"\ndefault archive, export pyhf: exit {r.returncode} after {dt:.1f} s (wall clock)")
        print("  " + r.stderr.strip())


if __name__ == "__main__":
    main()
