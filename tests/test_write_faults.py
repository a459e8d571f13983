"""Faults while writing (issue 7, part 2; docs/reliability.md): writers killed with SIGKILL at
random points, file-size limits and full disks at random byte offsets.

tests/test_atomic_write.py kills one writer at a few fixed delays and fills the disk at three
stages; here many writers die at random points: a *zygote* process prepares the content of a
new archive once and forks one writer per trial, which dies either after a random delay
(uniform over the duration of a write, measured first, or of its disk phase; the test says when,
and the zygote sends SIGKILL to its own child, not yet reaped) or by itself at a random
instrumented point (after the k-th dataset built in memory, after creating its temporary file,
after the k-th 32 KiB written to it, after its fsync, just before or just after the rename).
After every trial the target path holds either the previous archive, byte for byte, or the
complete new one (the writer's output is deterministic: its SHA-256 is known), and anything
else in the folder is the dead writer's hidden temporary file ``.NAME.tmp-PID-HEX``, which is
either unfinished (and refused as an archive) or the complete new archive, unpublished.

The fast set runs 50 SIGKILL trials (``WRITE_TRIALS`` changes the number), ``pytest -m slow``
runs 500.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from wmass_archive import validate_archive
from wmass_archive.archive import serialize
from wmass_archive.errors import ArchiveError
from wmass_archive.producers.demo import DemoConfig, build_demo_archive

N_TRIALS = int(os.environ.get("WRITE_TRIALS", "50"))  # the fast set's; 500 under -m slow
NAME = "likelihood.h5"
OLD = DemoConfig(n_eta=6, n_pt=5)  # the archive at the target before each trial
NEW = DemoConfig()  # what the writers write (0.9 MB, 27 datasets)
TEMP = re.compile(rf"^\.{re.escape(NAME)}\.tmp-(\d+)-[0-9a-f]{{8}}$")

ZYGOTE = r"""
import json, os, resource, signal, sys, traceback
from wmass_archive.archive import serialize, writer
from wmass_archive.errors import ArchiveError
from wmass_archive.producers.demo import DemoConfig

captured = []
real_write = writer.ArchiveWriter.write
writer.ArchiveWriter.write = lambda self, *a, **k: captured.append(self)
from wmass_archive.producers.demo import build_demo_archive
build_demo_archive("unused.h5", DemoConfig(**json.loads(sys.argv[1])))
writer.ArchiveWriter.write = real_write
W = captured[0]
serialize._CHUNK = 1 << 15  # 32 KiB per write(): many points at which to die


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def after(obj, name, k, first=None):
    # die just after the k-th call of obj.name (or just before it, with first="before")
    real, n = getattr(obj, name), [0]
    def wrapped(*args, **kwargs):
        n[0] += 1
        if first == "before" and n[0] == k:
            die()
        out = real(*args, **kwargs)
        if first != "before" and n[0] == k:
            die()
        return out
    setattr(obj, name, wrapped)


def child(req):
    point, k = req["point"], req["k"]
    if point == "dataset":
        after(serialize, "_write_dataset", k)
    elif point == "create":
        def create_then_die(tmp, image):
            open(tmp, "xb").close()
            die()
        serialize._write_file = create_then_die
    elif point == "chunk":
        after(serialize, "_write_chunk", k)
    elif point == "fsync":
        after(serialize.os, "fsync", 1)
    elif point == "before-rename":
        after(serialize.os, "replace", 1, "before")
    elif point == "after-rename":
        after(serialize.os, "replace", 1)
    elif point == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (k, hard))
    try:
        W.write(req["target"])
        return 0
    except ArchiveError as exc:
        if point == "fsize":  # lift the limit again to write the report
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        with open(req["report"], "w") as fh:
            fh.write(f"{type(exc).__name__}: {exc}")
        return 3
    except BaseException:
        with open(req["report"], "w") as fh:
            fh.write(traceback.format_exc())
        return 4


print("READY", flush=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    req = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 4
        try:
            code = child(req)
        finally:
            os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    # the test says when: "kill" it (not yet reaped, so the pid is still this child's) or "wait"
    if sys.stdin.readline().strip() == "kill":
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": status}), flush=True)
"""


class Zygote:
    """A process holding a prepared :class:`ArchiveWriter`; :meth:`trial` forks one writer."""

    def __init__(self, folder: Path):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        cfg = json.dumps({"n_eta": NEW.n_eta, "n_pt": NEW.n_pt})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, cfg],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self._get(300) == "READY"

    def _pump(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.q.put(line.strip())
        self.q.put("EOF")

    def _get(self, timeout: float) -> str:
        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the zygote did not answer") from None
        if line == "EOF":
            raise AssertionError(f"the zygote died: {self.proc.stderr.read()[-3000:]}")
        return line

    def trial(
        self, target: Path, point: str, k: int = 0, delay: float | None = None, anchor: str = ""
    ) -> dict:
        """Fork a writer of ``target``; kill it after ``delay`` s when given, counted from the
        fork or, with ``anchor="file"``, from the moment its temporary file appears. Returns
        the pid, the wait status, the seconds it lived (from the fork, and from the temporary
        file when anchored) and what it reported."""
        report = target.parent.parent / "report.txt"
        report.unlink(missing_ok=True)
        req = {"target": str(target), "point": point, "k": k, "report": str(report)}
        self._send(json.dumps(req))
        pid = json.loads(self._get(60))["pid"]
        t0 = t_file = time.monotonic()
        if anchor == "file":
            while not any(TEMP.match(p.name) for p in target.parent.iterdir()):
                if _exited(pid) or time.monotonic() - t0 > 120:
                    break  # it finished (or failed) before we saw its file
                time.sleep(0.0005)
            t_file = time.monotonic()
        if delay is not None:
            time.sleep(delay)
            self._send("kill")  # the zygote kills its own, not yet reaped, child
        else:
            while not _exited(pid) and time.monotonic() - t0 < 120:
                time.sleep(0.0005)
            self._send("wait")
        t_end = time.monotonic()
        status = json.loads(self._get(120))["status"]
        return {
            "pid": pid,
            "status": status,
            "seconds": t_end - t0,
            "from_file": t_end - t_file,
            "report": report.read_text() if report.exists() else "",
        }

    def _send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.communicate(timeout=60)  # closes stdin (the end), reads and closes the rest


def _exited(pid: int) -> bool:
    """Whether the zygote's child ``pid`` has ended (a zombie until the zygote reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(zygote, folder, old bytes, old sha, new sha, new size, seconds of a complete write)."""
    root = tmp_path_factory.mktemp("faults")
    folder = root / "target"
    folder.mkdir()
    old_path = root / "old.h5"
    build_demo_archive(old_path, OLD)
    old = old_path.read_bytes()
    z = Zygote(root)
    # a complete write first: the new archive's bytes, and how long a write takes
    target = folder / NAME
    target.write_bytes(old)
    times, disk = [], []
    for _ in range(3):
        r = z.trial(target, "none", anchor="file")
        assert r["status"] == 0, r["report"]
        times.append(r["seconds"])
        disk.append(r["from_file"])
    new_sha, new_size = sha256_file(target), target.stat().st_size
    validate_archive(target)
    assert new_sha != hashlib.sha256(old).hexdigest()
    old_sha = hashlib.sha256(old).hexdigest()
    yield z, folder, old, old_sha, new_sha, new_size, (min(times), min(disk))
    z.close()


def check_folder(folder: Path, pid: int, old_sha: str, new_sha: str, new_size: int) -> str:
    """Assert the state after a trial and return its name: ``kept`` (the previous archive, no
    leftover), ``kept+partial``, ``kept+complete`` (and the dead writer's temporary file),
    ``published`` (the complete new archive at the target)."""
    target = folder / NAME
    names = sorted(p.name for p in folder.iterdir())
    others = [n for n in names if n != NAME]
    assert NAME in names, names
    assert [p.name for p in folder.glob("*.h5")] == [NAME]
    got = sha256_file(target)
    assert got in (old_sha, new_sha), "the target holds neither the previous nor the new archive"
    state = "kept" if got == old_sha else "published"
    assert len(others) <= 1, others
    for n in others:
        m = TEMP.match(n)
        assert m and int(m.group(1)) == pid, n
        leftover = folder / n
        if leftover.stat().st_size == new_size and sha256_file(leftover) == new_sha:
            state += "+complete"
        else:
            with pytest.raises(ArchiveError):
                validate_archive(leftover)
            state += "+partial"
        leftover.unlink()
    return state


#: where the writers die: at an instrumented point, or killed by the test after a random delay
#: from the fork ("timer") or from the moment their temporary file appears ("timer-disk")
POINTS = (
    "dataset",
    "create",
    "chunk",
    "fsync",
    "before-rename",
    "after-rename",
    "timer",
    "timer-disk",
    "timer-disk",
)


@pytest.mark.parametrize("n_trials", [N_TRIALS, pytest.param(500, marks=pytest.mark.slow)])
def test_writers_killed_at_random_points(setup, n_trials):
    z, folder, old, old_sha, new_sha, new_size, (t_write, t_disk) = setup
    rng = random.Random(int(os.environ.get("WRITE_SEED", "20250101")))
    n_chunks = -(-new_size // (1 << 15))
    target = folder / NAME
    states: Counter = Counter()
    for i in range(n_trials):
        target.write_bytes(old)
        point = POINTS[i % len(POINTS)]
        k = {"dataset": rng.randint(1, 27), "chunk": rng.randint(1, n_chunks)}.get(point, 0)
        delay = None
        if point.startswith("timer"):
            delay = rng.uniform(0.0, 1.3 * (t_write if point == "timer" else t_disk))
        anchor = "file" if point == "timer-disk" else ""
        r = z.trial(target, "none" if delay is not None else point, k, delay, anchor)
        killed = os.WIFSIGNALED(r["status"]) and os.WTERMSIG(r["status"]) == signal.SIGKILL
        if delay is None:
            assert killed, (point, k, r)
        else:
            assert killed or r["status"] == 0, r
        state = check_folder(folder, r["pid"], old_sha, new_sha, new_size)
        expected = {
            "dataset": "kept",
            "create": "kept+partial",
            "chunk": "kept+partial",
            "fsync": "kept+complete",
            "before-rename": "kept+complete",
            "after-rename": "published",
        }.get(point)
        if point == "chunk" and k == n_chunks:  # all written, unless the tail was buffered
            expected = state if state in ("kept+partial", "kept+complete") else "?"
        assert expected is None or state == expected, (point, k, state)
        states[f"{point}: {state}"] += 1
    timer = {s.split(": ")[1] for s in states if s.startswith("timer")}
    print(dict(states))
    # the random delays land in more than one phase of the write
    if n_trials >= 50:
        assert len(timer) >= 2, states


def test_file_size_limit_at_random_offsets(setup):
    """RLIMIT_FSIZE (a quota or a full disk, as the kernel reports it) at random sizes: one
    clear error line, the previous archive intact, no temporary file left."""
    z, folder, old, old_sha, new_sha, new_size, _ = setup
    rng = random.Random(7)
    target = folder / NAME
    limits = [0, 1, 4096, new_size - 1] + [rng.randint(1, new_size - 1) for _ in range(6)]
    for limit in limits:
        target.write_bytes(old)
        r = z.trial(target, "fsize", limit)
        assert r["status"] == 3 << 8, r  # exit status 3: the ArchiveError path of the child
        msg = r["report"]
        assert msg.startswith(f"ArchiveError: cannot write {target}: File too large"), msg
        assert "\n" not in msg
        assert sorted(p.name for p in folder.iterdir()) == [NAME]
        assert sha256_file(target) == old_sha


class FullDisk:
    """The file object of a disk with ``room`` bytes left: a write past it writes what fits and
    raises ENOSPC; with ``at_close`` the close reports it instead (as NFS does)."""

    def __init__(self, real, room: int, at_close: bool):
        self.real, self.room, self.at_close, self.written = real, room, at_close, 0

    def write(self, b) -> int:
        fit = max(0, min(len(b), self.room - self.written))
        self.real.write(bytes(b[:fit]))
        self.written += fit
        if fit < len(b) and not self.at_close:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(b)

    def flush(self) -> None:
        self.real.flush()

    def fileno(self) -> int:
        return self.real.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.real.close()
        if self.at_close and exc[0] is None:
            raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "room,at_close",
    [(0, False), (1, False), (32768, False), (100_000, False), (10**9, True)]
    + [(random.Random(i).randint(1, 900_000), False) for i in range(3)],
)
def test_disk_full_at_random_offsets(tmp_path, monkeypatch, room, at_close):
    """ENOSPC at a byte offset of the disk write (or reported at close): one ArchiveError line
    naming the file and the OS error, the previous archive byte-identical, no temporary file."""
    target = tmp_path / NAME
    build_demo_archive(target, OLD)
    before = sha256_file(target)
    monkeypatch.setattr(serialize, "_CHUNK", 1 << 15)
    monkeypatch.setattr(
        serialize, "open", lambda p, mode: FullDisk(open(p, mode), room, at_close), raising=False
    )
    with pytest.raises(ArchiveError) as ei:
        build_demo_archive(target, NEW)
    msg = str(ei.value)
    assert msg == f"cannot write {target}: No space left on device", msg
    assert isinstance(ei.value.__cause__, OSError) and ei.value.__cause__.errno == errno.ENOSPC
    monkeypatch.undo()
    assert sha256_file(target) == before
    validate_archive(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]


def test_full_disk_then_a_successful_write(tmp_path, monkeypatch):
    """After a failed write the next one (space freed) replaces the archive normally."""
    target = tmp_path / NAME
    build_demo_archive(target, OLD)
    monkeypatch.setattr(
        serialize, "open", lambda p, mode: FullDisk(open(p, mode), 5000, False), raising=False
    )
    with pytest.raises(ArchiveError, match="No space left"):
        build_demo_archive(target, NEW)
    monkeypatch.undo()
    build_demo_archive(target, NEW)
    assert validate_archive(target).n_datasets == 27
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]
