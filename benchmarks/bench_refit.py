"""Benchmark ``wmass-refit`` end to end, as a user runs it: each measurement is a fresh process.

    python benchmarks/bench_refit.py                          # likelihoods/default.h5 if built,
                                                              # else a small pseudo-analysis
    python benchmarks/bench_refit.py --archive my.h5 --pdf NNPDF31
    python benchmarks/bench_refit.py --no-sweep               # skip the --pdf-sweep row

Rows: the interpreter start-up and import of the command; the plain ``wmass-refit`` with an
empty cache folder (cold: JAX compiles every kernel) and again with the cache filled by the
first run (warm: JAX's persistent compilation cache in ``$XDG_CACHE_HOME/wmass-archive/jax``);
``--pdf NAME``; the same without impacts; ``--pdf-sweep`` (every PDF set of the archive,
original and scaled uncertainty) on the default local dask cluster, first with the workers'
kernels not yet cached (they compile with their own XLA flags), then warm, and in the process
(``--workers 1``). Columns: wall-clock seconds of the process, the steps the command reports in
its JSON (``timing_s``): build (read + model), JIT compilation, fit, impacts (the
MC-statistics impact is one more fit), PDF sweep; and the 1-minute load average of the machine
when the row started (the machine may be shared: compare rows with a similar load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CMD = [sys.executable, "-m", "wmass_archive.cli.refit_cmd"]


def run(args: list[str], env: dict[str, str], json_path: Path | None) -> tuple[float, dict]:
    """Wall seconds of one process and its JSON timing (empty without ``--json``)."""
    full = CMD + args + (["--json", str(json_path)] if json_path else []) + ["-q"]
    t0 = time.perf_counter()
    p = subprocess.run(full, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(full)}\n{p.stderr[-2000:]}")
    timing = json.loads(json_path.read_text())["timing_s"] if json_path else {}
    return wall, timing


def small_archive(folder: Path, pdf_path: str) -> Path:
    out = folder / "small.h5"
    print(f"building a small pseudo-analysis archive in {out} ...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "wmass_archive.cli.archive_cmd",
            "build-demo",
            "--small",
            "-q",
            "-o",
            str(out),
            "--pdf-path",
            pdf_path,
        ],
        check=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--archive",
        default=None,
        help="archive (default: likelihoods/default.h5, "
        "else a small pseudo-analysis built for the benchmark)",
    )
    ap.add_argument(
        "--pdf", default=None, help="PDF set to refit with (default: the archive's second set)"
    )
    ap.add_argument("--pdf-path", default=str(ROOT.parent / "shared" / "pdfsets"))
    ap.add_argument("--no-sweep", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-refit-"))
    archive = Path(a.archive) if a.archive else ROOT / "likelihoods" / "default.h5"
    if not archive.is_file():
        archive = small_archive(work, a.pdf_path)
    from wmass_archive.archive import open_archive

    with open_archive(archive) as arc:
        sets = [s.name for s in arc.pdf_sets]
        n_bins, n_nuis = arc.metadata.n_bins, len(arc.nuisances)
    pdf = a.pdf or (sets[1] if len(sets) > 1 else sets[0])
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "LHAPDF_DATA_PATH": a.pdf_path}
    env.pop("WMASS_JAX_CACHE", None)
    base = ["--archive", str(archive)]
    rows: list[tuple[str, float, dict]] = []

    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import wmass_archive.cli.refit_cmd"], env=env, check=True
    )
    rows.append(
        ("start-up: python + import wmass_archive.cli.refit_cmd", time.perf_counter() - t0, {})
    )
    t0 = time.perf_counter()
    subprocess.run(CMD + ["--help"], env=env, check=True, capture_output=True)
    rows.append(("wmass-refit --help", time.perf_counter() - t0, {}))
    j = work / "r.json"
    cases = [
        ("wmass-refit (cold cache: JIT compiles)", []),
        ("wmass-refit (warm compilation cache)", []),
        (f"--pdf {pdf} (warm)", ["--pdf", pdf]),
        ("--impacts none (warm)", ["--impacts", "none"]),
    ]
    if not a.no_sweep:
        sweep = f"--pdf-sweep ({len(sets)} sets"
        cases += [
            (f"{sweep}, local cluster, 1st: workers compile)", ["--pdf-sweep"]),
            (f"{sweep}, local cluster, warm)", ["--pdf-sweep"]),
            (f"{sweep}, --workers 1: in process)", ["--pdf-sweep", "--workers", "1"]),
        ]
    for name, args in cases:
        load = os.getloadavg()[0]
        wall, timing = run(base + args, env, j)
        rows.append((name, wall, {**timing, "load": load}))

    print(
        f"\nwmass-refit on {archive.name}: {n_bins} bins, {n_nuis} stored nuisances, PDF sets "
        f"{', '.join(sets)}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}\n"
    )
    cols = ("wall", "build", "compile", "fit", "impacts", "sweep", "load")
    print(f"| {'command':<56} | " + " | ".join(f"{c:>7}" for c in cols) + " |")
    print(f"|{'-' * 58}|" + "|".join("-" * 9 for _ in cols) + "|")
    for name, wall, t in rows:
        cells = [f"{wall:7.2f}"] + [f"{t[c]:7.2f}" if t.get(c) else f"{'':>7}" for c in cols[1:]]
        print(f"| {name:<56} | " + " | ".join(cells) + " |")
    print(
        "\nseconds; build = read the archive (SHA-256 checked) + build the model; compile = JAX "
        "JIT of the fit's kernels (impacts compile more kernels, counted under impacts); load = "
        "1-minute load average when the row started"
    )


if __name__ == "__main__":
    main()
