"""rabbit (CMS's TensorFlow fitter, PyPI ``rabbit-fit``) and our fitter side by side, on the
same model.

    python benchmarks/bench_rabbit.py                       # likelihoods/default.h5
    python benchmarks/bench_rabbit.py --archive demo.h5     # another archive
    python benchmarks/bench_rabbit.py --no-install          # never pip-install rabbit
    python benchmarks/bench_rabbit.py --json out.json       # also write the numbers
    python benchmarks/bench_rabbit.py --dense               # rabbit's dense tensor (~1 GB)

What it does:

1. a virtual environment ``benchmarks/.venv-rabbit`` with ``rabbit-fit`` and ``tf_keras`` (pip),
   created when missing after checking the free disk (TensorFlow: ~2.5 GB installed);
2. exports the archive to rabbit's input tensor
   (:func:`wmass_archive.interop.rabbit.export_rabbit`) and writes that tensor back as a plain
   log-normal archive
   (:func:`wmass_archive.interop.rabbit.tensor_to_archive`): rabbit's model in our format;
3. three fits, each in a fresh process whose wall time and peak RSS (``os.wait4``) are measured:
   ours on the archive (the exact folded model), ours on the log-normal archive, and
   ``rabbit_fit TENSOR -t 0 --unblind --doImpacts --globalImpacts`` (fit, covariance, nominal
   and global impacts; ours with ``impacts=("nominal", "global")``). rabbit's result is read
   with rabbit's own reader (``rabbit.io_tools``) inside its environment;
4. one table: wall time, peak memory, mW and its uncertainty (MeV: the mass POI is 100 MeV per
   unit theta; values as reported, i.e. blinded), the speed ratio, and the differences
   rabbit - ours(log-normal) (the fitters, same model), ours(log-normal) - ours(exact) (the
   export's log-normal approximation of the theory nuisances) and rabbit - ours(exact).

If rabbit cannot be installed or run (no network, disk or time), it says so and runs our side.
The machine's load average is printed: other jobs only add wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _rabbit_env import (  # noqa: E402  (shared with bench_cms_like.py)
    ensure_rabbit,
    fit_rabbit,
    rabbit_versions,
    run_measured,
    tail,
)


# --------------------------------------------------------------------------- our side
def child_ours(archive: str, out: str) -> None:
    """One fit of ours in this process (called through ``--child``)."""
    from wmass_archive.fit import fit

    r = fit(archive, impacts=("nominal", "global"))
    p = r.pois[0]
    glob = next((t for t in r.impacts if t.kind == "global" and t.poi == p.name), None)
    nom = next((t for t in r.impacts if t.kind == "nominal" and t.poi == p.name), None)
    res = dict(
        value=p.value,
        error=p.error,
        physical=p.physical_value,
        physical_error=p.physical_error,
        scale=p.scale,
        converged=r.converged,
        nll=r.nll,
        timing=r.timing.model_dump(),
        impacts_grouped={k: v / p.scale for k, v in (nom.groups if nom else {}).items()},
        global_impacts_grouped={k: v / p.scale for k, v in (glob.groups if glob else {}).items()},
    )
    Path(out).write_text(json.dumps(res))


def fit_ours(archive: Path, work: Path, tag: str, timeout: float) -> dict[str, Any]:
    out = work / f"ours_{tag}.json"
    cmd = [sys.executable, __file__, "--child", str(archive), str(out)]
    m = run_measured(cmd, work / f"ours_{tag}.log", timeout)
    if m["rc"] == 0 and out.is_file():
        m.update(json.loads(out.read_text()))
    else:
        m["error_text"] = tail(work / f"ours_{tag}.log")
    return m


# --------------------------------------------------------------------------- report
def table(rows: list[tuple[str, dict[str, Any]]], poi: dict[str, Any]) -> str:
    """The comparison table; values in MeV (physical: central + scale * theta + blinding)."""
    scale = poi["scale"]

    def phys(theta: float) -> float:
        return poi["central"] + scale * theta + poi["blinding_offset"]

    ref_wall = rows[0][1].get("wall_s")
    head = (
        f"{'fitter / model':40s} {'wall [s]':>9s} {'peak RSS [MB]':>14s} "
        f"{'mW [MeV] (blinded)':>19s} {'sigma(mW) [MeV]':>16s} {'wall / ours':>11s}"
    )
    lines = [head, "-" * len(head)]
    for label, r in rows:
        if "value" not in r:
            why = "timed out" if r.get("timed_out") else f"failed (exit {r.get('rc')})"
            lines.append(f"{label:40s} {why}")
            continue
        ratio = r["wall_s"] / ref_wall if ref_wall else float("nan")
        lines.append(
            f"{label:40s} {r['wall_s']:9.1f} {r['peak_rss_mb']:14.0f} "
            f"{phys(r['value']):19.4f} {scale * r['error']:16.4f} {ratio:11.2f}"
        )
    return "\n".join(lines)


def differences(res: dict[str, dict[str, Any]], scale: float) -> list[str]:
    out = []
    pairs = [
        ("rabbit", "lognormal", "rabbit - ours(log-normal): the two fitters, same model"),
        ("lognormal", "exact", "ours(log-normal) - ours(exact): the export's approximation"),
        ("rabbit", "exact", "rabbit - ours(exact): total"),
    ]
    for a, b, what in pairs:
        if "value" in res.get(a, {}) and "value" in res.get(b, {}):
            dv = scale * (res[a]["value"] - res[b]["value"])
            de = scale * (res[a]["error"] - res[b]["error"])
            ok = "yes" if abs(dv) <= 0.1 and abs(de) <= 0.1 else "NO"
            out.append(f"  {what:58s} dmW {dv:+.5f} MeV, dsigma {de:+.5f} MeV (<= 0.1: {ok})")
    return out


def impacts_table(res: dict[str, dict[str, Any]], scale: float) -> list[str]:
    """Nominal and global impacts per group, rabbit and ours on the same (log-normal) model."""
    a, b = res.get("rabbit", {}), res.get("lognormal", {})
    lines = []
    for kind, key in (("nominal", "impacts_grouped"), ("global", "global_impacts_grouped")):
        ga, gb = a.get(key), b.get(key)
        if not ga or not gb:
            continue
        lines.append(f"{kind} impacts on mW per group [MeV]: rabbit vs ours (log-normal model)")
        for g in sorted(set(ga) & set(gb), key=lambda k: -abs(gb[k])):
            lines.append(f"  {g:22s} {scale * ga[g]:9.4f} {scale * gb[g]:9.4f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archive", default=str(HERE.parent / "likelihoods" / "default.h5"))
    ap.add_argument("--no-install", action="store_true", help="never pip-install rabbit")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per fit")
    ap.add_argument("--workdir", default=None, help="keep the tensor, logs and outputs here")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    ap.add_argument("--dense", action="store_true", help="dense hlogk (~1 GB) instead of sparse")
    ap.add_argument("--child", nargs=2, metavar=("ARCHIVE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_ours(*args.child)
        return

    from wmass_archive.interop.rabbit import export_rabbit, tensor_to_archive

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_rabbit_"))
    work.mkdir(parents=True, exist_ok=True)
    archive = work / Path(args.archive).name  # a snapshot: all fits read the same bytes
    if archive.resolve() != Path(args.archive).resolve():
        shutil.copyfile(args.archive, archive)
    load0 = os.getloadavg()
    print(f"archive {archive}; work folder {work}; {os.cpu_count()} cores, load {load0[0]:.2f}")
    ok, msg = ensure_rabbit(not args.no_install)
    print(f"rabbit: {msg}" + (f" ({rabbit_versions()})" if ok else ""))

    t0 = time.perf_counter()
    tensor = work / f"{archive.stem}_rabbit.hdf5"
    rep = export_rabbit(archive, tensor, sparse=not args.dense)
    print(rep.summary())
    lognormal = work / f"{archive.stem}_lognormal.h5"
    tensor_to_archive(tensor, lognormal)
    print(f"export + log-normal archive: {time.perf_counter() - t0:.1f} s")
    poi = next(p for p in rep.parameters if p.kind == "mass")

    res: dict[str, dict[str, Any]] = {}
    res["exact"] = fit_ours(archive, work, "exact", args.timeout)
    res["lognormal"] = fit_ours(lognormal, work, "lognormal", args.timeout)
    if ok:
        res["rabbit"] = fit_rabbit(tensor, poi.rabbit_name, work, args.timeout)
    load1 = os.getloadavg()

    rows = [
        (f"ours: {archive.name} (exact, folded)", res["exact"]),
        ("ours: log-normal archive (rabbit model)", res["lognormal"]),
    ]
    if ok:
        rows.append((f"rabbit: {tensor.name}", res["rabbit"]))
    print()
    print(
        table(
            rows,
            {"central": poi.central, "scale": poi.scale, "blinding_offset": poi.blinding_offset},
        )
    )
    print("\n".join(differences(res, poi.scale)))
    if ok and "value" in res["rabbit"]:
        rb, ex = res["rabbit"], res["exact"]
        print(
            f"speed: rabbit wall / ours wall = {rb['wall_s'] / ex['wall_s']:.2f} (rabbit's own "
            f"total {rb.get('rabbit_total_s', float('nan')):.1f} s; ours: fit "
            f"{ex['timing']['fit']:.1f} s, compile {ex['timing']['compile']:.1f} s)"
        )
    for line in impacts_table(res, poi.scale):
        print(line)
    for k, r in res.items():
        if "error_text" in r:
            print(f"\n{k} failed:\n{r['error_text']}")
    if not ok:
        print(f"\nrabbit NOT run: {msg}")
    print(f"load average: {load0[0]:.2f} before, {load1[0]:.2f} after ({os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"results": res, "load": [load0, load1], "export": rep.summary()},
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
