"""The long fuzz run: thousands of damaged archives, counts by outcome; print a table.

    python benchmarks/fuzz_long.py [--examples 3000] [--kinds all|bytes|structured]
                                   [--seed N] [--no-cli] [--timeout 120] [--work DIR]

The same damage and the same checks as tests/test_fuzz_archive.py (tests/_fuzz.py,
tests/_fuzz_worker.py), many more examples and no shrinking: each case is a fresh copy of a
small valid archive, damaged by hypothesis, then opened, validated, modelled and fitted in a
worker process under a wall-clock limit and RLIMIT_AS, with ``wmass-archive validate`` and
``wmass-refit --archive`` through click's runner (``--no-cli`` skips them), while inotify
watches the files outside the archive that links point at. Prints the outcomes (the first
stage that refused the file, and the error class) by damage family, and every case that went
wrong (a crash, a hang, a foreign exception, a bad CLI line, a file outside read); exits 1 if
there is one. docs/reliability.md quotes its output.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _fuzz import apply_ops, cases, make_bases, new_case_path  # noqa: E402
from _fuzz_worker import AccessWatch, Worker, label, problems  # noqa: E402


def family(ops) -> str:
    """The damage family of a case: its op kinds (one, or several joined by '+')."""
    return "+".join(sorted({o.kind for o in ops}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=3000)
    ap.add_argument("--kinds", choices=["all", "bytes", "structured"], default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cli", action="store_true", help="skip the two command-line tools")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    ap.add_argument("--work", type=Path, default=None, help="folder for the files (temporary)")
    args = ap.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="wmass-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    bases = make_bases(work / "bases")
    watch = AccessWatch(bases[0].outside)
    for b in bases[1:]:
        watch.add(b.outside)
    (work / "cases").mkdir(exist_ok=True)
    worker = Worker(work / "worker.log")
    counter = [0]
    outcomes: Counter = Counter()
    by_family: dict[str, Counter] = defaultdict(Counter)
    seconds: list[float] = []
    failures: list[str] = []
    fitted = skipped_ops = 0
    t_start = time.perf_counter()

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def run(data):
        nonlocal fitted, skipped_ops
        base, ops = data.draw(cases(bases, args.kinds))
        path = new_case_path(work / "cases", base, counter)
        applied, skipped = apply_ops(path, base, ops)
        skipped_ops += len(skipped)
        watch.drain()
        t0 = time.perf_counter()
        result = worker.run(path, timeout=args.timeout, cli=not args.no_cli)
        seconds.append(time.perf_counter() - t0)
        found = problems(applied, result, watch.drain())
        name = label(result)
        outcomes[name] += 1
        by_family[family(ops)][name] += 1  # the damage attempted
        fitted += result.get("stages", {}).get("fit", {}).get("status") == "ok"
        if found:
            damage = ", ".join(repr(o)[:160] for o in applied)
            failures.append(f"{base.name} [{damage}]: " + " | ".join(found)[:3000])
            print(f"PROBLEM {failures[-1][:500]}", file=sys.stderr, flush=True)
        path.unlink()
        if counter[0] % 250 == 0:
            print(f"{counter[0]} cases, {time.perf_counter() - t_start:.0f} s", file=sys.stderr)

    try:
        run()
    finally:
        worker.close()
        watch.close()
    total = time.perf_counter() - t_start

    n = sum(outcomes.values())
    print(f"fuzz_long: {n} cases ({args.kinds}, seed {args.seed}) in {total:.0f} s")
    print(
        f"per case: median {statistics.median(seconds):.3f} s, max {max(seconds):.1f} s; "
        f"worker restarts {worker.restarts}; fits that ran {fitted}; ops not applicable "
        f"{skipped_ops}"
    )
    print()
    print("| outcome | cases |\n|---|---:|")
    for name, k in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {k} |")
    print()
    names = [k for k, _ in sorted(outcomes.items(), key=lambda kv: -kv[1])]
    short = [k.replace("Error", "").replace("Archive", "") for k in names]
    print("| damage | cases | " + " | ".join(short) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for fam in sorted(by_family, key=lambda f: (f.count("+"), f)):
        c = by_family[fam]
        if fam.count("+") and sum(c.values()) < 5:
            continue
        row = " | ".join(str(c.get(k, "")) for k in names)
        print(f"| {fam} | {sum(c.values())} | {row} |")
    multi = sum(sum(c.values()) for f, c in by_family.items() if f.count("+"))
    print(f"\n(cases with several kinds of damage: {multi}; rows of fewer than 5 left out)")
    print(f"\nproblems: {len(failures)}")
    for f in failures:
        print("  " + f)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
