"""Ours against pyhf on pyhf's small validation models and on generated models of the sizes of
published search likelihoods (benchmarks/_published_models.py), printing a table.

    python benchmarks/bench_pyhf.py                          # validation models + small, medium
    python benchmarks/bench_pyhf.py --sizes small medium large --timeout 600
    python benchmarks/bench_pyhf.py --no-cli                 # without the command-line rows

Columns (seconds, wall clock):

* ``cold``: a fresh Python process with an empty JAX compilation cache (``WMASS_JAX_CACHE`` =
  a new folder): import the workspace (``import_pyhf``) and fit it (``fit(path, impacts=())``),
  start-up and imports included; pyhf: a fresh process building the model and fitting it
  (``pyhf.infer.mle.fit``, numpy backend, scipy optimiser);
* ``warm``: the same with the cache the cold run filled (pyhf compiles nothing: no column);
* ``compile``: ``result.timing.compile`` of the cold run (JAX compilation of the fit's
  kernels), then of the warm run (loaded from the cache);
* ``fit``: the minimisation alone (``result.timing.fit``; pyhf: ``mle.fit`` in the process);
* ``scan``: a 21-point profile scan of the POI over +-3 sigma after the fit (pyhf: 21
  ``mle.fixed_poi_fit``);
* ``CLs``: the asymptotic q~mu test of mu = 1 with the expected band
  (``wmass_archive.fit.hypotest(model, 1.0, test_stat="qtilde")``, "n/a" where the package has
  none; pyhf: ``pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde",
  return_expected_set=True)``).

Then per generated model the command-line job as a user runs it, in fresh processes with an
empty cache: ``wmass-archive import pyhf WS.json -o OUT.h5 && wmass-refit --archive OUT.h5 --cls
1`` (``--impacts none`` instead of ``--cls`` where the command has no ``--cls``) against
``pyhf cls WS.json``. Every pyhf measurement and every command runs under ``--timeout``;
one that does not finish in time shows ``>T``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _published_models import (  # noqa: E402
    PUBLISHED_SIZES,
    published_workspace,
    validation_workspaces,
)

N_SCAN = 21


# ----------------------------------------------------------------------------- children
def child_ours(ws_path: str, out_h5: str, details: bool) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    import wmass_archive.fit as wfit
    from wmass_archive.fit import fit
    from wmass_archive.interop.pyhf import import_pyhf
    from wmass_archive.model import build_model

    t_imports = time.perf_counter() - t0
    t1 = time.perf_counter()
    import_pyhf(ws_path, out_h5, overwrite=True, synthetic=True)
    t_import = time.perf_counter() - t1
    model = build_model(out_h5)
    r = fit(model, impacts=(), gof=False, strict=False)
    out = {
        "imports": t_imports,
        "import_pyhf": t_import,
        "compile": r.timing.compile,
        "fit": r.timing.fit,
        "n_params": model.n_params,
        "converged": bool(r.converged) if hasattr(r, "converged") else None,
        "e2e_in_process": time.perf_counter() - t0,
    }
    poi = r.poi()
    out["mu"] = poi.physical_value
    if not details:
        return out
    err = poi.error if np.isfinite(poi.error) and poi.error > 0 else 1.0
    values = list(poi.value + np.linspace(-3.0, 3.0, N_SCAN) * err)
    t1 = time.perf_counter()
    fit(model, impacts=(), gof=False, strict=False)
    t_fit_again = time.perf_counter() - t1
    t1 = time.perf_counter()
    fit(model, impacts=(), gof=False, strict=False, scan_points={poi.name: values})
    out["scan"] = max(0.0, time.perf_counter() - t1 - t_fit_again)
    if hasattr(wfit, "hypotest"):
        t1 = time.perf_counter()
        h = wfit.hypotest(model, 1.0, test_stat="qtilde")
        out["cls"] = time.perf_counter() - t1
        out["cls_obs"] = float(h.cls_obs)
    return out


def child_pyhf(ws_path: str, task: str) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import pyhf

    pyhf.set_backend("numpy")
    spec = json.loads(Path(ws_path).read_text())
    ws = pyhf.Workspace(spec)
    model = ws.model()
    data = ws.data(model)
    out = {"build": time.perf_counter() - t0, "n_params": model.config.npars}
    t1 = time.perf_counter()
    best = pyhf.infer.mle.fit(data, model)
    out["fit"] = time.perf_counter() - t1
    out["mu"] = float(best[model.config.poi_index])
    if task == "scan":
        lo, hi = model.config.suggested_bounds()[model.config.poi_index]
        mus = np.linspace(max(lo, out["mu"] - 1.5), min(hi, out["mu"] + 1.5), N_SCAN)
        t1 = time.perf_counter()
        for mu in mus:
            pyhf.infer.mle.fixed_poi_fit(float(mu), data, model)
        out["scan"] = time.perf_counter() - t1
    if task == "cls":
        t1 = time.perf_counter()
        cls_obs, _ = pyhf.infer.hypotest(
            1.0, data, model, test_stat="qtilde", return_expected_set=True
        )
        out["cls"] = time.perf_counter() - t1
        out["cls_obs"] = float(cls_obs)
    out["e2e_in_process"] = time.perf_counter() - t0
    return out


# ----------------------------------------------------------------------------- parent
def run_child(args: list[str], env: dict, timeout: float) -> tuple[dict | None, float]:
    """(the child's JSON, wall seconds) or (None, wall) when it failed or timed out."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            [sys.executable, __file__, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, float("inf")
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-2000:])
        return None, wall
    return json.loads(p.stdout.strip().splitlines()[-1]), wall


def run_cmd(cmd: str, env: dict, timeout: float) -> tuple[float, bool]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, shell=True, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("inf"), False
    if p.returncode != 0:
        sys.stderr.write(p.stderr.decode()[-2000:])
    return time.perf_counter() - t0, p.returncode == 0


def fmt(x, timeout: float) -> str:
    if x is None:
        return "n/a"
    if x == float("inf"):
        return f">{timeout:.0f}"
    return f"{x:.2f}"


def measure(name: str, ws_path: Path, work: Path, timeout: float, pyhf_tasks: bool) -> list:
    env = {k: v for k, v in os.environ.items() if k != "WMASS_ARCHIVE_JAX_CACHE"}
    cache = work / f"jax-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    env["WMASS_JAX_CACHE"] = str(cache)
    h5 = work / f"{name}.h5"
    cold, w_cold = run_child(["--child", "ours", str(ws_path), str(h5)], env, timeout)
    again, w_warm = run_child(["--child", "ours", str(ws_path), str(h5)], env, timeout)
    warm, _ = run_child(["--child", "ours-details", str(ws_path), str(h5)], env, timeout)
    rows = []
    if cold is None or warm is None or again is None:
        rows.append([name, "ours", "?", "failed", "", "", "", "", ""])
    else:
        rows.append(
            [
                name,
                "ours",
                str(cold["n_params"]),
                fmt(w_cold, timeout),
                fmt(w_warm, timeout),
                f"{cold['compile']:.2f} / {again['compile']:.2f}",
                fmt(warm["fit"], timeout),
                fmt(warm.get("scan"), timeout),
                fmt(warm.get("cls"), timeout),
            ]
        )
    py_fit, w_py = run_child(["--child", "pyhf-fit", str(ws_path)], env, timeout)
    py_scan = py_cls = None
    if pyhf_tasks and py_fit is not None:
        py_scan, _ = run_child(["--child", "pyhf-scan", str(ws_path)], env, timeout)
        py_cls, _ = run_child(["--child", "pyhf-cls", str(ws_path)], env, timeout)
    inf = float("inf")
    rows.append(
        [
            name,
            "pyhf",
            str(py_fit["n_params"]) if py_fit else "?",
            fmt(w_py, timeout),
            "",
            "",
            fmt(py_fit["fit"] if py_fit else inf, timeout),
            fmt(py_scan["scan"] if py_scan else (inf if pyhf_tasks else None), timeout),
            fmt(py_cls["cls"] if py_cls else (inf if pyhf_tasks else None), timeout),
        ]
    )
    if cold is not None and py_fit is not None:
        print(
            f"# {name}: mu ours {cold['mu']:.4f}, pyhf {py_fit['mu']:.4f}"
            + (
                f"; CLs ours {warm['cls_obs']:.4f}, pyhf {py_cls['cls_obs']:.4f}"
                if warm and "cls_obs" in warm and py_cls
                else ""
            ),
            flush=True,
        )
    return rows


def cli_row(name: str, ws_path: Path, work: Path, timeout: float) -> list:
    env = {k: v for k, v in os.environ.items() if k != "WMASS_ARCHIVE_JAX_CACHE"}
    cache = work / f"jax-cli-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    env["WMASS_JAX_CACHE"] = str(cache)
    helptext = subprocess.run(
        ["wmass-refit", "--help"], capture_output=True, text=True, env=env
    ).stdout
    refit_opts = "--cls 1 --impacts none" if "--cls" in helptext else "--impacts none"
    h5 = work / f"cli-{name}.h5"
    ours = (
        f"wmass-archive import pyhf {ws_path} -o {h5} --overwrite --synthetic -q && "
        f"wmass-refit --archive {h5} {refit_opts}"
    )
    t_ours, ok_ours = run_cmd(ours, env, timeout)
    t_warm, ok_warm = run_cmd(ours, env, timeout)
    t_pyhf, ok_pyhf = run_cmd(f"pyhf cls {ws_path}", env, timeout)
    return [
        name,
        f"`wmass-archive import pyhf && wmass-refit {refit_opts}`",
        fmt(t_ours, timeout) + ("" if ok_ours else " (failed)"),
        fmt(t_warm, timeout) + ("" if ok_warm else " (failed)"),
        fmt(t_pyhf, timeout) + ("" if ok_pyhf else " (failed)"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", nargs="*", default=["small", "medium"], choices=PUBLISHED_SIZES)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per measurement")
    ap.add_argument("--no-cli", action="store_true", help="skip the command-line rows")
    ap.add_argument("--no-validation", action="store_true", help="skip pyhf's small models")
    ap.add_argument(
        "--pyhf-published",
        action="store_true",
        help="also pyhf's scan and CLs on the generated models (slow)",
    )
    ap.add_argument("--keep", type=Path, help="folder for the workspaces and archives")
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind in ("ours", "ours-details"):
            res = child_ours(rest[0], rest[1], details=kind == "ours-details")
        else:
            res = child_pyhf(rest[0], kind.split("-", 1)[1])
        print(json.dumps(res))
        return

    work = a.keep or Path(tempfile.mkdtemp(prefix="bench-pyhf-"))
    work.mkdir(parents=True, exist_ok=True)
    models: dict[str, tuple[dict, bool]] = {}
    if not a.no_validation:
        for k, spec in validation_workspaces().items():
            models[k] = (spec, True)
    for s in a.sizes:
        models[f"published-{s}"] = (published_workspace(**PUBLISHED_SIZES[s]), a.pyhf_published)
    print(
        f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; timeout "
        f"{a.timeout:.0f} s",
        flush=True,
    )
    head = [
        "model",
        "fitter",
        "params",
        "cold",
        "warm",
        "compile cold / warm",
        "fit",
        "scan",
        "CLs",
    ]
    rows = []
    for name, (spec, pyhf_tasks) in models.items():
        ws = work / f"{name}.json"
        ws.write_text(json.dumps(spec))
        rows += measure(name, ws, work, a.timeout, pyhf_tasks)
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if not a.no_cli:
        print()
        head = ["model", "ours", "cold [s]", "warm [s]", "`pyhf cls` [s]"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for s in a.sizes:
            name = f"published-{s}"
            print(
                "| " + " | ".join(cli_row(name, work / f"{name}.json", work, a.timeout)) + " |",
                flush=True,
            )
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
