"""The fuzzer's harness (a helper module of tests/test_fuzz_archive.py and
benchmarks/fuzz_long.py, not a test file; the damage itself is in tests/_fuzz.py).

* :class:`Worker`: a separate process (under ``RLIMIT_AS``) that runs ``open_archive``,
  ``validate_archive`` and, when the file opens, ``build_model`` and a fit on each damaged file,
  plus ``wmass-archive validate`` and ``wmass-refit --archive`` through click's runner; the
  parent applies a wall-clock limit, so that a hang or a crash of the HDF5 library is seen as
  such and the worker is restarted.
* :class:`AccessWatch`: inotify on the sentinels' folders: any open or read of a file outside
  the archive, by any process, is seen, without strace and without relying on file permissions
  (root ignores them).
* :func:`problems`: what is wrong with one outcome (anything but success or a one-line
  ``ArchiveError``); :func:`label`: the outcome's name for the tables.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _fuzz import Op

HERE = Path(__file__).resolve()
#: address-space limit of the worker: JAX needs about 2 GiB of it
RLIMIT_AS = 4 * 2**30
#: longest acceptable error message (one line that names the problem, not a file dump)
MAX_MESSAGE = 1000


# ============================================================================ access watch
class AccessWatch:
    """inotify (Linux) on a folder: which of its files anyone opened or read since
    :meth:`drain`."""

    IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x1, 0x20, 0o4000

    def __init__(self, folder: Path):
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(self.IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.wds: dict[int, Path] = {}
        self.add(folder)

    def add(self, folder: Path) -> None:
        wd = self._libc.inotify_add_watch(
            self.fd, str(folder).encode(), self.IN_ACCESS | self.IN_OPEN
        )
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")
        self.wds[wd] = folder

    def drain(self) -> list[str]:
        """Names of the files accessed since the last call."""
        names = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return names
            i = 0
            while i < len(buf):
                wd, mask, _cookie, n = np.frombuffer(buf[i : i + 16], dtype="<i4,<u4,<u4,<u4")[0]
                name = buf[i + 16 : i + 16 + n].rstrip(b"\0").decode(errors="replace")
                names.append(f"{self.wds.get(int(wd), '?')}/{name}")
                i += 16 + int(n)

    def close(self) -> None:
        os.close(self.fd)


# ============================================================================ the worker
def _emit(stream: Any, tag: str, payload: Any) -> None:
    stream.write(f"@@{tag} {json.dumps(payload)}\n")
    stream.flush()


def worker_main() -> None:  # pragma: no cover - runs in the worker process
    """Read requests ``{"path", "cli", "fit"}`` on stdin, answer ``@@RESULT {...}`` lines."""
    import resource
    import warnings

    limit = int(os.environ.get("FUZZ_RLIMIT_AS", RLIMIT_AS))
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints of libraries go to the log, not into the protocol
    warnings.simplefilter("ignore")
    from wmass_archive.refit.paths import enable_compilation_cache

    enable_compilation_cache()
    _emit(out, "READY", os.getpid())
    for line in sys.stdin:
        _emit(out, "RESULT", _run_case(json.loads(line), out))


def _stage(res: dict, name: str, fn: Any, out: Any) -> Any:
    """Run one stage of a case, recording how it ended; returns its value (None if it raised)."""
    import traceback

    from wmass_archive.errors import ArchiveError

    _emit(out, "STAGE", name)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"status": "ok"}
    value = None
    try:
        value = fn()
    except ArchiveError as exc:
        rec.update(status="refused", error=type(exc).__name__, message=str(exc))
    except Exception as exc:  # noqa: BLE001 - what the fuzzer is looking for
        msg = " ".join(str(exc).split())[:500]
        rec.update(status="foreign", error=type(exc).__name__, message=msg)
        rec["traceback"] = traceback.format_exc()[-4000:]
    rec["seconds"] = time.perf_counter() - t0
    res["stages"][name] = rec
    return value


def _run_case(req: dict, out: Any) -> dict:  # pragma: no cover - runs in the worker process
    from click.testing import CliRunner

    from wmass_archive import open_archive, validate_archive
    from wmass_archive.cli.archive_cmd import main as archive_main
    from wmass_archive.cli.refit_cmd import main as refit_main
    from wmass_archive.fit import fit
    from wmass_archive.model.build import build_model
    from wmass_archive.refit.tasks import clear_model_cache

    path = req["path"]
    res: dict[str, Any] = {"stages": {}}
    if req.get("selftest") == "abort":  # the harness's own test: a crash of the worker
        _emit(out, "STAGE", "selftest")
        os.abort()

    def opened() -> None:
        with open_archive(path) as a:
            repr(a)

    _stage(res, "open", opened, out)
    _stage(res, "validate", lambda: validate_archive(path).summary(), out)
    if res["stages"]["open"]["status"] == "ok" and req.get("fit", True):
        model = _stage(res, "build", lambda: build_model(path), out)
        if model is not None:
            r = _stage(res, "fit", lambda: fit(model), out)
            if r is not None:
                res["poi"] = [r.pois[0].value, r.pois[0].error]
    if req.get("cli", True):
        for name, cmd, args in (
            ("cli_validate", archive_main, ["validate", path]),
            ("cli_refit", refit_main, ["--archive", path]),
        ):
            _emit(out, "STAGE", name)
            clear_model_cache()
            r = CliRunner().invoke(cmd, args)
            exc, lines = r.exception, r.stderr.splitlines()
            res[name] = {
                "exit": r.exit_code,
                "stderr_lines": [x[:300] for x in lines[:5]],
                "n_stderr_lines": len(lines),
                "longest_line": max((len(x) for x in lines), default=0),
                "traceback": "Traceback" in r.stdout + r.stderr,
                "exception": None if exc is None or isinstance(exc, SystemExit) else repr(exc),
            }
    return res


class Worker:
    """The parent's handle on a worker process; restarts it after a crash or a timeout."""

    def __init__(
        self,
        log: Path,
        *,
        rlimit_as: int = RLIMIT_AS,
        start_timeout: float = 600.0,
        grace: float = 240.0,
    ):
        """``grace``: seconds added to the limit of a worker's first case (it compiles the fit's
        kernels, or loads them from JAX's persistent cache)."""
        self.log = log
        self.rlimit_as = rlimit_as
        self.start_timeout = start_timeout
        self.grace = grace
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._fresh = True

    def _start(self) -> None:
        env = dict(os.environ, FUZZ_RLIMIT_AS=str(self.rlimit_as), PYTHONUNBUFFERED="1")
        self._logfh = open(self.log, "ab")  # noqa: SIM115 - kept open for the worker's life
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._logfh,
            text=True,
            bufsize=1,
            env=env,
        )
        self.q: queue.Queue = queue.Queue()
        self._pumper = threading.Thread(target=self._pump, args=(self.proc, self.q), daemon=True)
        self._pumper.start()
        tag, _ = self._next(self.start_timeout)
        if tag != "READY":
            raise RuntimeError(f"the fuzz worker did not start: {tag}; see {self.log}")
        self._fresh = True

    @staticmethod
    def _pump(proc: subprocess.Popen, q: queue.Queue) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("@@"):
                tag, _, payload = line[2:].partition(" ")
                q.put((tag, json.loads(payload)))
        q.put(("EOF", None))

    def _next(self, timeout: float) -> tuple[str, Any]:
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return "TIMEOUT", None

    def run(
        self,
        path: Path,
        *,
        timeout: float = 120.0,
        cli: bool = True,
        fit: bool = True,
        selftest: str | None = None,
    ):
        """The worker's result dict for ``path``, or ``{"fatal": ..., "stage": ...}`` when it
        crashed or ran past ``timeout`` seconds (and was killed and will be restarted)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        limit = timeout + (self.grace if self._fresh else 0.0)
        self._fresh = False
        req = {"path": str(path), "cli": cli, "fit": fit, "selftest": selftest}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        stage = "start"
        t_end = time.monotonic() + limit
        while True:
            tag, payload = self._next(max(0.0, t_end - time.monotonic()))
            if tag == "STAGE":
                stage = payload
            elif tag == "RESULT":
                return payload
            elif tag == "TIMEOUT":
                self._kill()
                return {"fatal": f"timeout after {limit:.0f} s", "stage": stage}
            else:  # EOF: the worker died
                rc = self.proc.wait()
                self._kill()
                return {"fatal": f"crash (exit status {rc})", "stage": stage}

    def _release(self) -> None:
        """Close the ended worker's pipes (after its output pump has seen the end) and log."""
        assert self.proc is not None
        self._pumper.join(timeout=30)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except BrokenPipeError:  # unflushed input to a dead worker
                pass
        self._logfh.close()
        self.proc = None

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._release()
        self.restarts += 1

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self._release()


# ============================================================================ judging
def label(result: dict) -> str:
    """The outcome's name: ``valid``, ``open:<Error>``, ``validate:<Error>`` or a failure."""
    if "fatal" in result:
        return f"FAIL {result['fatal'].split(' (')[0].split(' after')[0]} in {result['stage']}"
    st_ = result["stages"]
    for name in ("open", "validate"):
        s = st_[name]
        if s["status"] == "foreign":
            return f"FAIL {name}:{s['error']}"
        if s["status"] == "refused":
            return f"{name}:{s['error']}"
    return "valid"


def problems(ops: list[Op], result: dict, accessed: list[str]) -> list[str]:
    """Everything wrong with one outcome (empty: the archive was read or refused cleanly)."""
    out = []
    if accessed:
        out.append(f"files outside the archive were opened or read: {sorted(set(accessed))}")
    if "fatal" in result:
        return [*out, f"{result['fatal']} in stage {result['stage']}"]
    stages = result["stages"]
    for name, s in stages.items():
        if s["status"] == "foreign":
            out.append(f"{name}: {s['error']}: {s['message']}\n{s.get('traceback', '')}")
        elif s["status"] == "refused" and ("\n" in s["message"] or not s["message"].strip()):
            out.append(f"{name}: message is not one non-empty line: {s['message'][:300]!r}")
        elif s["status"] == "refused" and len(s["message"]) > MAX_MESSAGE:
            out.append(f"{name}: message of {len(s['message'])} characters: {s['message'][:200]}")
    if stages.get("fit", {}).get("status") == "ok" and not np.all(np.isfinite(result["poi"])):
        out.append(f"the fit succeeded with a non-finite POI {result['poi']}")
    if len(ops) == 1 and ops[0].hostile:
        target = ops[0].args[0]
        s = stages["validate"]
        if s["status"] != "refused":
            out.append(f"validate accepted a file with {ops[0]}")
        elif s["error"] != "HostileArchiveError" or f"'{target}'" not in s["message"]:
            out.append(f"validate's error does not name the link '{target}': {s['message']}")
    for name in ("cli_validate", "cli_refit"):
        c = result.get(name)
        if c is None:
            continue
        if c["exception"] is not None:
            out.append(f"{name}: uncaught {c['exception']}")
        if c["traceback"]:
            out.append(f"{name}: traceback printed")
        if c["exit"] not in (0, 1):
            out.append(f"{name}: exit status {c['exit']}")
        if c["exit"] == 1:
            lines = c["stderr_lines"]
            if c["n_stderr_lines"] != 1 or not lines[0].startswith("error: "):
                out.append(f"{name}: stderr is not one 'error: ' line: {lines}")
            elif lines[0].startswith("error: unexpected "):
                out.append(f"{name}: a foreign exception reached the CLI: {lines[0]}")
            elif c["longest_line"] > MAX_MESSAGE:
                out.append(f"{name}: error line of {c['longest_line']} characters")
    cv = result.get("cli_validate")
    # the command also applies wmass-refit's memory bound to a valid archive (issue 14)
    memory = cv is not None and any("the model would need" in x for x in cv["stderr_lines"])
    if (
        cv is not None
        and (cv["exit"] == 0) != (stages["validate"]["status"] == "ok")
        and not (memory and stages["validate"]["status"] == "ok")
    ):
        out.append(f"wmass-archive validate exit {cv['exit']} disagrees with validate_archive")
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker_main()
