"""The model memory estimate against the measured peak of a refit (issue 14).

For each case a fresh process runs :func:`wmass_archive.refit.refit` (impacts, full
covariance: what ``wmass-refit`` does) with the bound lifted, and reports its peak resident
memory (``VmHWM`` of /proc/self/status) and the estimate of
:func:`wmass_archive.model.budget.estimate_model_bytes`: from the metadata alone (what the
refusal uses first) and with the model's sparsity layout (the second check of
``build_model``). The estimate should be above the peak, within about x2.

Cases: the demonstration archive (small and medium), the demo with 2 500 extra nuisances
(as an attacker adds them: metadata only), the demo as a generic model (``bb="combine"``: every
parameter dense; also with 1 000 extra nuisances), and the default archive
(likelihoods/default.h5).

    python benchmarks/bench_memory_estimate.py            # about 5 minutes on 2 busy cores
    python benchmarks/bench_memory_estimate.py --quick    # without the default archive
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

DRIVER = r"""
import json, sys
from wmass_archive.archive.reader import open_archive
from wmass_archive.model.budget import estimate_model_bytes
from wmass_archive.refit import refit

path, bb, poi = sys.argv[1], sys.argv[2] or None, sys.argv[3] or None
r = refit(path, bb=bb, poi=poi, cache=False, max_memory=1e6)
m = r._model
with open_archive(path) as a:
    kw = dict(n_pois=m.n_pois, generic=m.static.generic, bb=m.static.bb)
    e0 = estimate_model_bytes(a.metadata, **kw)
    e1 = estimate_model_bytes(a.metadata, **kw, layout=m.layout)
hwm = [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM")][0]
print("RESULT " + json.dumps(dict(
    n_params=m.n_params, n_bins=m.n_bins, n_dense=m.static.n_dense, peak=hwm,
    est_meta=e0.total, est_layout=e1.total, largest=e1.largest[0],
    converged=bool(r.fit.converged))))
"""


def _extra_nuisances(src: Path, dst: Path, n: int) -> Path:
    """A copy of ``src`` with ``n`` nuisances added to its metadata (no variations)."""
    from _attacker import edit_metadata

    shutil.copyfile(src, dst)

    def add(doc: dict) -> None:
        doc["nuisances"] += [{"name": f"extra{i}"} for i in range(n)]

    edit_metadata(dst, add)
    return dst


def _run(path: Path, bb: str = "", poi: str = "") -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, str(path), bb, poi],
        capture_output=True,
        text=True,
        check=False,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode or not line:
        raise SystemExit(f"{path.name}: failed\n{out.stderr[-2000:]}")
    res = json.loads(line[0][7:])
    res["seconds"] = time.perf_counter() - t0
    return res


def main() -> None:
    from wmass_archive.producers.demo import DEMO_SIZES, build_demo_archive

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the default archive")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        demo = tmp / "demo.h5"
        build_demo_archive(demo, DEMO_SIZES["small"])
        medium = tmp / "medium.h5"
        build_demo_archive(medium, DEMO_SIZES["medium"])
        cases = [
            ("demo (small)", demo, "", ""),
            ("demo medium", medium, "", ""),
            ("demo + 2500 nuisances", _extra_nuisances(demo, tmp / "x2k5.h5", 2500), "", ""),
            ("demo, generic (bb combine)", demo, "combine", ""),
            ("demo + 1000, generic", _extra_nuisances(demo, tmp / "x1k.h5", 1000), "combine", ""),
        ]
        default = ROOT / "likelihoods" / "default.h5"
        if not args.quick and default.exists():
            cases.append(("default archive", default, "", ""))
        head = (
            f"{'case':28s} {'params':>7s} {'bins':>5s} {'dense':>5s} {'peak GB':>8s} "
            f"{'est. meta':>9s} {'est. layout':>11s} {'ratio':>6s}  largest part"
        )
        print(head)
        print("-" * len(head))
        for name, path, bb, poi in cases:
            r = _run(path, bb, poi)
            print(
                f"{name:28s} {r['n_params']:7d} {r['n_bins']:5d} {r['n_dense']:5d} "
                f"{r['peak'] / 1e9:8.2f} {r['est_meta'] / 1e9:9.2f} {r['est_layout'] / 1e9:11.2f} "
                f"{r['est_layout'] / r['peak']:6.2f}  {r['largest']} ({r['seconds']:.0f} s)",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
