"""Ours and rabbit-fit side by side on a generated CMS-like W-mass model (issue 15): 2880 bins,
4000 log-normal nuisances, ~9 % of the (process, bin, nuisance) entries non-zero.

    python benchmarks/bench_cms_like.py                          # the default size
    python benchmarks/bench_cms_like.py --bins 600 --nuisances 400   # a quick one
    python benchmarks/bench_cms_like.py --rabbit-tensor dense    # rabbit's dense tensor only
    python benchmarks/bench_cms_like.py --timeout 600 --json out.json --workdir /tmp/cms

What it does, each step in its own process:

1. generates the model with rabbit's own ``TensorWriter`` (``benchmarks/_cms_like_model.py``,
   run by ``benchmarks/.venv-rabbit/bin/python``; ``--bins``, ``--nuisances``, ``--density``,
   ``--seed``): ``WORK/tensor.hdf5`` (sparse) and ``WORK/tensor_dense.hdf5`` (the same model,
   rabbit's dense layout; ``--rabbit-tensor`` picks which rabbit fits, both by default);
2. imports it: ``python -m wmass_archive.cli.archive_cmd import rabbit tensor.hdf5 -o model.h5``
   and prints the model's numbers (bins, processes, nuisances, non-zero fraction read back from
   the tensor, and our fitter's Hessian structure: ``build_model(...).info.structure``);
3. fits with ours, ``wmass-refit --archive model.h5 --poi massShiftW100MeV --impacts both
   --json ours.json`` (fit, covariance, nominal and global impacts), and with
   ``rabbit_fit tensor.hdf5 -t 0 --unblind --doImpacts --globalImpacts`` (the same), measuring
   wall time and peak RSS (``os.wait4``) of each; rabbit's result is read with rabbit's own
   reader in its environment;
4. prints a markdown table (wall, peak RSS, massShiftW100MeV and its uncertainty in MeV, the
   difference rabbit - ours in MeV and in units of the uncertainty, the ratio of the wall
   times), the nominal and global impacts per group from each, and where our fitter spent its time
   (``timing_s`` of wmass-refit's JSON).

Both fitters use Barlow-Beeston lite with a gamma constraint and rabbit's k = (sum sumw)^2 /
sum sumw2 per bin (rabbit's default, ``--binByBinStatType automatic``; the import sets the
archive's ``mc_stat = gamma``), gaussian constraints of width 1 on every systematic, the NOI
unconstrained, the W signal strength free (rabbit: ``POIMode mu``, mu = x^2 >= 0; ours: a rate
POI mu = 1 + theta). Ours starts with an empty JAX compilation cache (``--warm-jax-cache``: the
user's), as rabbit compiles its graph in every run. The machine's load average is printed:
other jobs only add wall time.
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

from _rabbit_env import (  # noqa: E402  (shared with bench_rabbit.py)
    ensure_rabbit,
    fit_rabbit,
    quiet_tf_env,
    rabbit_versions,
    run_measured,
    tail,
    venv_python,
)

NOI = "massShiftW100MeV"  # the generator's nuisance of interest
MEV = 100.0  # MeV per unit theta of the NOI


def generate(args: argparse.Namespace, work: Path, dense: bool) -> dict[str, Any]:
    """Run the generator in the rabbit environment; its JSON summary (or SystemExit)."""
    name = "tensor_dense" if dense else "tensor"
    cmd = [str(venv_python()), str(HERE / "_cms_like_model.py"), "-o", str(work)]
    cmd += ["--bins", str(args.bins), "--nuisances", str(args.nuisances)]
    cmd += ["--density", str(args.density), "--seed", str(args.seed), "--outname", name]
    if dense:
        cmd.append("--dense-tensor")
    m = run_measured(cmd, work / f"generate_{name}.log", 3600.0, env=quiet_tf_env())
    if m["rc"] != 0:
        raise SystemExit(f"the generator failed:\n{tail(work / f'generate_{name}.log')}")
    info = json.loads((work / f"{name}.json").read_text())
    info["wall_s"], info["peak_rss_mb"] = m["wall_s"], m["peak_rss_mb"]
    return info


def import_tensor(tensor: Path, archive: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "wmass_archive.cli.archive_cmd", "import", "rabbit"]
    cmd += [str(tensor), "-o", str(archive), "--synthetic", "--overwrite"]
    log = archive.with_suffix(".import.log")
    m = run_measured(cmd, log, 3600.0)
    if m["rc"] != 0:
        raise SystemExit(f"the import failed:\n{tail(log)}")
    m["report"] = log.read_text(errors="replace").strip()
    return m


def model_numbers(tensor: Path, archive: Path, max_memory_gb: float) -> dict[str, Any]:
    """Bins, processes, nuisances and the non-zero fraction read back from the tensor (h5py),
    and our fitter's dense/sparse split of the Hessian for the model with the NOI as POI."""
    import numpy as np

    from wmass_archive.interop.rabbit import read_rabbit_tensor
    from wmass_archive.model import build_model

    t = read_rabbit_tensor(tensor)
    nz = (t.logk_avg != 0).maximum(t.logk_halfdiff != 0)
    n_nz = int(nz.count_nonzero())
    t0 = time.perf_counter()
    model = build_model(archive, poi=NOI, max_model_bytes=int(max_memory_gb * 1024**3))
    out = {
        "bins": t.n_bins,
        "processes": list(t.procs),
        "signals": list(t.signals),
        "nuisances": t.n_syst,
        "nonzero_entries": n_nz,
        "nonzero_fraction": n_nz / (t.n_bins * t.n_proc * t.n_syst),
        "symmetric": bool(t.symmetric),
        "parameters": len(model.info.parameters),
        "structure": model.info.structure,
        "n_dense": int(model.layout.n_dense) if model.layout is not None else None,
        "n_sparse_blocks": (
            int(sum(b.n_blocks for b in model.layout.buckets)) if model.layout is not None else None
        ),
        "build_s": time.perf_counter() - t0,
        "mc_stat_k_median": float(
            np.median(t.sumw.sum(axis=1) ** 2 / np.maximum(t.sumw2.sum(axis=1), 1e-300))
        ),
    }
    return out


def fit_ours(
    archive: Path, work: Path, timeout: float, max_memory_gb: float, warm: bool
) -> dict[str, Any]:
    """wmass-refit in a fresh process: fit, covariance, nominal and global impacts. ``warm``:
    with the user's JAX compilation cache; otherwise an empty one (a cold start, as rabbit's
    every run)."""
    out = work / "ours.json"
    cmd = [sys.executable, "-m", "wmass_archive.cli.refit_cmd", "--archive", str(archive)]
    cmd += ["--poi", NOI, "--impacts", "both", "--json", str(out), "-q"]
    cmd += ["--max-memory", f"{max_memory_gb:g}"]
    env = None
    if not warm:
        cache = work / "jax_cache_cold"
        shutil.rmtree(cache, ignore_errors=True)
        env = {**os.environ, "WMASS_JAX_CACHE": str(cache)}
    m = run_measured(cmd, work / "ours.log", timeout, env=env)
    m["jax_cache"] = "warm (the user's)" if warm else "cold (empty)"
    m["command"] = " ".join(["wmass-refit", *cmd[3:]])
    if m["rc"] in (0, 3) and out.is_file():  # 3: not converged, the JSON is still written
        d = json.loads(out.read_text())
        p = d["pois"][NOI]
        m.update(
            value=p["value"],
            error=p["unc"],
            converged=d["fit"]["converged"],
            edm=d["fit"]["edm"],
            minimizer=d["fit"].get("minimizer"),
            bb=d["fit"].get("bb"),
            timing_s=d["timing_s"],
            global_impacts_grouped={k: v / MEV for k, v in d["impacts"]["global"].items()},
            impacts_grouped={k: v / MEV for k, v in d["impacts"]["nominal"].items()},
        )
    else:
        m["error_text"] = tail(work / "ours.log")
    return m


# --------------------------------------------------------------------------- report
def _why(r: dict[str, Any]) -> str:
    return "timed out" if r.get("timed_out") else f"failed (exit {r.get('rc')})"


def table(res: dict[str, dict[str, Any]]) -> list[str]:
    """The markdown table: ours first, then each rabbit run compared with ours."""
    ours = res["ours"]
    lines = [
        f"| fitter | wall [s] | peak RSS [MB] | {NOI} [MeV] | sigma [MeV] "
        "| rabbit - ours [MeV] | (rabbit - ours) / sigma | wall rabbit / ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in res.items():
        label = "ours (wmass-refit, JAX)" if key == "ours" else f"rabbit-fit ({key[7:]} tensor)"
        if "value" not in r:
            wall = f"{r['wall_s']:.1f}" if r.get("timed_out") else ""
            lines.append(f"| {label} | {wall} | | {_why(r)} | | | | |")
            continue
        cells = [f"{r['wall_s']:.1f}", f"{r['peak_rss_mb']:.0f}"]
        cells += [f"{MEV * r['value']:+.4f}", f"{MEV * r['error']:.4f}"]
        if key == "ours" or "value" not in ours:
            cells += ["", "", ""]
        else:
            d = r["value"] - ours["value"]
            cells += [
                f"{MEV * d:+.2e}",
                f"{d / ours['error']:+.1e}",
                f"{r['wall_s'] / ours['wall_s']:.2f}",
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def impacts_table(res: dict[str, dict[str, Any]]) -> list[str]:
    """Nominal and global impacts per group, ours and each rabbit run."""
    rabbits = [k for k, r in res.items() if k != "ours" and r.get("global_impacts_grouped")]
    ours = res["ours"]
    if not ours.get("global_impacts_grouped") or not rabbits:
        return []
    lines = [f"impacts on {NOI} per group [MeV], nominal and global:", ""]
    head = "| group | ours nominal | " + " | ".join(f"rabbit ({k[7:]})" for k in rabbits)
    head += " | ours global | " + " | ".join(f"rabbit ({k[7:]})" for k in rabbits) + " |"
    lines += [head, "|---|" + "---:|" * (2 + 2 * len(rabbits))]
    glob = ours["global_impacts_grouped"]
    for g in sorted(set(glob), key=lambda k: -abs(glob[k])):
        vals = []
        for kind in ("impacts_grouped", "global_impacts_grouped"):
            for r in [ours] + [res[k] for k in rabbits]:
                v = r.get(kind, {}).get(g)
                vals.append(f"{MEV * v:.4f}" if v is not None else "")
        lines.append(f"| {g} | " + " | ".join(vals) + " |")
    lines += [
        "",
        "(nominal stat and binByBinStat: both fitters use rabbit's definition, the constrained "
        "nuisances fixed, Barlow-Beeston factors frozen at their postfit values / profiled)",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bins", type=int, default=2880, help="eta x 30 pT x 2 charge bins")
    ap.add_argument("--nuisances", type=int, default=4000, help="systematics, NOI included")
    ap.add_argument("--density", type=float, default=0.09, help="non-zero entry fraction")
    ap.add_argument("--seed", type=int, default=1, help="seed of the shapes and the data")
    ap.add_argument(
        "--rabbit-tensor",
        choices=["sparse", "dense", "both", "none"],
        default="both",
        help="rabbit's input tensor: sparse (hlogk_sparse, the one ours imports), dense (the "
        "same model; rabbit's faster layout here), both (default) or none",
    )
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per fit")
    ap.add_argument("--max-memory", type=float, default=16.0, help="GB: wmass-refit --max-memory")
    ap.add_argument(
        "--warm-jax-cache",
        action="store_true",
        help="ours with the user's JAX compilation cache (default: an empty one, cold start)",
    )
    ap.add_argument("--no-install", action="store_true", help="never pip-install rabbit")
    ap.add_argument("--workdir", default=None, help="tensors, archive, logs (default: /tmp)")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_cms_like_"))
    work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    print(f"work folder {work}; {os.cpu_count()} cores, load {load0[0]:.2f}")
    ok, msg = ensure_rabbit(not args.no_install)
    if not ok:  # the generator is rabbit's TensorWriter
        raise SystemExit(f"rabbit not available: {msg}")
    print(f"rabbit: {msg} ({rabbit_versions()})")

    gen = generate(args, work, dense=False)
    tensors = {"sparse": work / "tensor.hdf5"}
    if args.rabbit_tensor in ("dense", "both"):
        generate(args, work, dense=True)
        tensors["dense"] = work / "tensor_dense.hdf5"
    print(
        f"generated {tensors['sparse'].name} in {gen['wall_s']:.1f} s: {gen['bins']} bins "
        f"({gen['axes']}), {len(gen['processes'])} processes, {gen['nuisances']} nuisances "
        f"{gen['by_group']}, {100 * gen['density']:.2f} % non-zero (localised windows of "
        f"{gen['window_slices']['mean']:.2f} eta slices), {gen['data']:.3g} data events"
    )
    archive = work / "model.h5"
    imp = import_tensor(tensors["sparse"], archive)
    print(f"import: {imp['wall_s']:.1f} s, peak RSS {imp['peak_rss_mb']:.0f} MB")
    print("\n".join("  " + x for x in imp["report"].splitlines()))
    nums = model_numbers(tensors["sparse"], archive, args.max_memory)
    print(
        f"model: {nums['bins']} bins, {len(nums['processes'])} processes "
        f"({', '.join(nums['processes'])}; signal {', '.join(nums['signals'])}), "
        f"{nums['nuisances']} nuisances, {nums['nonzero_entries']} non-zero (process, bin, "
        f"nuisance) entries = {100 * nums['nonzero_fraction']:.2f} %, "
        f"{'symmetric' if nums['symmetric'] else 'asymmetric'} tensor"
    )
    print(
        f"our fitter's Hessian ({nums['parameters']} parameters, NOI as POI): "
        f"{nums['structure']} (built in {nums['build_s']:.1f} s)"
    )

    res: dict[str, dict[str, Any]] = {}
    print("\nfitting with ours ...", flush=True)
    res["ours"] = fit_ours(archive, work, args.timeout, args.max_memory, args.warm_jax_cache)
    for kind in ("sparse", "dense"):
        if args.rabbit_tensor in (kind, "both"):
            print(f"fitting with rabbit ({kind} tensor) ...", flush=True)
            res[f"rabbit_{kind}"] = fit_rabbit(tensors[kind], NOI, work, args.timeout, tag=kind)
    load1 = os.getloadavg()

    print()
    print("\n".join(table(res)))
    print()
    o = res["ours"]
    print(
        f"ours:   {o.get('command', '')} (minimizer {o.get('minimizer')}, BB lite "
        f"{o.get('bb')}, JAX compilation cache {o.get('jax_cache')})"
    )
    for k, r in res.items():
        if k != "ours":
            own = r.get("rabbit_total_s")
            print(
                f"rabbit: {r.get('command', '')}"
                + (f" (rabbit's own total: {own:.1f} s)" if own is not None else "")
            )
    if "timing_s" in o:
        tm = o["timing_s"]
        keys = ("open", "build", "compile", "fit", "covariance", "impacts", "total")
        print("ours, timing_s: " + ", ".join(f"{k} {tm.get(k, 0.0):.1f}" for k in keys))
        print(f"ours: converged {o['converged']}, edm {o['edm']:.1e}")
    for k, r in res.items():
        if k != "ours" and "edmval" in r:
            print(f"{k}: edm {r['edmval']:.1e}")
    print()
    for line in impacts_table(res):
        print(line)
    for k, r in res.items():
        if "error_text" in r:
            print(f"\n{k} {_why(r)}:\n{r['error_text']}")
    print(f"\nload average: {load0[0]:.2f} before, {load1[0]:.2f} after ({os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"generator": gen, "model": nums, "results": res, "load": [load0, load1]},
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
