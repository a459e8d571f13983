"""What the benchmarks against rabbit-fit share (``bench_rabbit.py``, ``bench_cms_like.py``):
the rabbit environment ``benchmarks/.venv-rabbit`` (created with pip when missing), a fresh
process measured for wall time and peak RSS, ``rabbit_fit`` with fit, covariance, nominal and
global impacts, and rabbit's own reader of its result.

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _rabbit_env import ensure_rabbit, fit_rabbit, run_measured
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-rabbit"
NEED_BYTES = 4 * 1024**3  # rabbit-fit + TensorFlow + tf_keras, with margin
#: fit of the data, covariance, nominal and global impacts, every POI and NOI unblinded
RABBIT_ARGS = ["-t", "0", "--unblind", "--doImpacts", "--globalImpacts"]

# run inside the rabbit environment: rabbit's own reader of its own output file
RABBIT_READER = r"""
import json, sys
import numpy as np
from rabbit import io_tools
res = io_tools.get_fitresult(sys.argv[1])
h = res["parms"].get()
names = list(h.axes["parms"])
i = names.index(sys.argv[2])
out = {"value": float(h.values()[i]), "error": float(np.sqrt(h.variances()[i])),
       "nllvalreduced": float(res["nllvalreduced"]), "edmval": float(res["edmval"])}
for kind in ("impacts_grouped", "global_impacts_grouped"):
    if kind in res:
        hi = res[kind].get()[{"parms": sys.argv[2]}]
        out[kind] = dict(zip(list(hi.axes["impacts"]), map(float, hi.values())))
print("RESULT " + json.dumps(out))
"""


def run_measured(
    cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``cmd`` (output to ``log``); wall seconds, peak RSS (MB) of the child, exit code."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
    p.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mb": ru.ru_maxrss / 1024.0,
        "rc": p.returncode,
        "timed_out": time.perf_counter() > deadline,
    }


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_rabbit(install: bool) -> tuple[bool, str]:
    """(usable, message): the rabbit environment, created with pip when missing."""
    rabbit_fit = VENV / "bin" / "rabbit_fit"
    if rabbit_fit.is_file():
        _ignore_venv()
        return True, f"using {VENV}"
    if not install:
        return False, f"no rabbit environment at {VENV} (and --no-install)"
    free = shutil.disk_usage(HERE).free
    if free < NEED_BYTES:
        return False, (
            f"not enough disk for rabbit-fit + TensorFlow: {free / 1e9:.1f} GB free, "
            f"{NEED_BYTES / 1e9:.1f} GB needed"
        )
    print(f"creating {VENV} (pip install rabbit-fit tf_keras; ~2.5 GB, {free / 1e9:.0f} GB free)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        _ignore_venv()
        subprocess.run(
            [str(venv_python()), "-m", "pip", "install", "-q", "rabbit-fit", "tf_keras"],
            check=True,
            timeout=3600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return False, f"could not install rabbit-fit ({exc}); no network to PyPI?"
    return rabbit_fit.is_file(), f"created {VENV}"


def _ignore_venv() -> None:
    """Keep git away from the environment's 2.5 GB whatever the repository's .gitignore says."""
    ignore = VENV / ".gitignore"
    if VENV.is_dir() and not ignore.exists():
        ignore.write_text("# created by benchmarks/bench_rabbit.py\n*\n")


def rabbit_versions() -> str:
    code = (
        "import importlib.metadata as m; print('rabbit-fit', m.version('rabbit-fit'),"
        " 'tensorflow', m.version('tensorflow'))"
    )
    try:
        out = subprocess.run([str(venv_python()), "-c", code], capture_output=True, text=True)
        return out.stdout.strip()
    except OSError:
        return "?"


def quiet_tf_env() -> dict[str, str]:
    """The environment with TensorFlow's C++ start-up messages off (they only fill the log)."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def fit_rabbit(
    tensor: Path,
    poi: str,
    work: Path,
    timeout: float,
    tag: str = "",
    extra_args: list[str] | None = None,
) -> dict[str, Any]:
    """``rabbit_fit TENSOR RABBIT_ARGS [extra_args]`` in a fresh process, output in
    ``work/rabbit_out{_tag}``, log ``work/rabbit{_tag}.log``; the measured run plus the value,
    error and grouped impacts of ``poi`` read with rabbit's reader (or ``error_text``)."""
    sfx = f"_{tag}" if tag else ""
    outdir, log = work / f"rabbit_out{sfx}", work / f"rabbit{sfx}.log"
    args = [*RABBIT_ARGS, *(extra_args or [])]
    cmd = [str(VENV / "bin" / "rabbit_fit"), str(tensor), *args, "-o", str(outdir)]
    m = run_measured(cmd, log, timeout, env=quiet_tf_env())
    m["command"] = " ".join(["rabbit_fit", tensor.name, *args])
    result = outdir / "fitresults.hdf5"
    if m["rc"] != 0 or not result.is_file():
        m["error_text"] = tail(log)
        return m
    r = subprocess.run(
        [str(venv_python()), "-c", RABBIT_READER, str(result), poi],
        capture_output=True,
        text=True,
        env=quiet_tf_env(),
    )
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        m["error_text"] = r.stderr[-2000:]
        return m
    m.update(json.loads(line[len("RESULT ") :]))
    for x in log.read_text(errors="replace").splitlines():
        if "seconds total time" in x:
            m["rabbit_total_s"] = float(x.split("rabbit_fit.py:")[-1].split()[0])
    return m


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
