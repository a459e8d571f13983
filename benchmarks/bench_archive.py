"""Measure the archive's write, open, read and validate costs; print a table.

    python benchmarks/bench_archive.py [--sizes small medium large] [--repeat 5]

'large' is CMS's reco binning (48 x 30 x 2 = 2880 bins) with a ~30 MB response tensor.
Times are the best of --repeat runs (open/list in a fresh process each time as well).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wmass_archive import open_archive, validate_archive
from wmass_archive.archive.summary import summarize
from wmass_archive.producers.demo import DEMO_SIZES, build_demo_archive


def best(repeat: int, fn, *args) -> float:
    """Fastest of ``repeat`` calls of ``fn(*args)``, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def open_and_list(path: Path) -> None:
    with open_archive(path) as a:
        summarize(a)


def read_all(path: Path, verify: bool) -> None:
    with open_archive(path, verify=verify) as a:
        for p in a.metadata.datasets:
            a.read(p)


def fresh_process_open(path: Path) -> float:
    """Wall time of `python -c 'open + summarise'` minus an empty import of the package."""
    code = (
        "import time,sys; t=time.perf_counter(); from wmass_archive import open_archive; "
        "from wmass_archive.archive.summary import summarize; t1=time.perf_counter(); "
        "a=open_archive(sys.argv[1]); summarize(a); a.close(); "
        "print(time.perf_counter()-t1, t1-t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", nargs="+", default=["small", "medium", "large"], choices=list(DEMO_SIZES)
    )
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"{size}.h5"
            t0 = time.perf_counter()
            rep = build_demo_archive(path, DEMO_SIZES[size])
            build_s = time.perf_counter() - t0
            with open_archive(path) as a:
                m = a.metadata
                n_bins, n_nuis = m.n_bins, len(m.nuisances)
            rows.append(
                dict(
                    size=size,
                    bins=n_bins,
                    nuisances=n_nuis,
                    datasets=rep.n_datasets,
                    raw_mb=rep.raw_bytes / 1e6,
                    file_mb=os.path.getsize(path) / 1e6,
                    ratio=rep.compression_ratio,
                    write_s=rep.seconds,
                    build_s=build_s,
                    open_ms=1e3 * best(args.repeat, open_and_list, path),
                    open_fresh_ms=1e3 * min(fresh_process_open(path) for _ in range(3)),
                    read_s=best(args.repeat, read_all, path, True),
                    read_noverify_s=best(args.repeat, read_all, path, False),
                    validate_s=best(max(1, args.repeat // 2), validate_archive, path),
                )
            )
    cols = [
        ("size", "{}"),
        ("bins", "{}"),
        ("nuisances", "{}"),
        ("datasets", "{}"),
        ("raw_mb", "{:.1f}"),
        ("file_mb", "{:.1f}"),
        ("ratio", "x{:.2f}"),
        ("write_s", "{:.2f}"),
        ("open_ms", "{:.1f}"),
        ("open_fresh_ms", "{:.1f}"),
        ("read_s", "{:.3f}"),
        ("read_noverify_s", "{:.3f}"),
        ("validate_s", "{:.2f}"),
    ]
    head = "| " + " | ".join(c for c, _ in cols) + " |"
    print(head)
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(f.format(r[c]) for c, f in cols) + " |")
    print(
        "\nwrite_s: validate + compress + checksum + atomic write; open_ms: open the file, parse "
        "and validate the metadata, summarise (no array read), best of the repeats in this "
        "process; open_fresh_ms: the same in a new process after import; read_s: every dataset "
        "with SHA-256 verification; validate_s: the full `wmass-archive validate`."
    )


if __name__ == "__main__":
    main()
