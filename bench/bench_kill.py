"""Durability on SIGKILL: what a killed monitor leaves in its archive and telemetry.

``.venv/bin/python -m bench kill`` (or ``python -m bench.bench_kill``).

Each round starts ``cabinwatch emulate nominal --pty`` and ``cabinwatch monitor``
in real time (8 volumes, the loop at 10 Hz as in the example configuration, or
``--loop-hz``; telemetry at 0.1 Hz), waits ``--warmup`` s,
sends five ``cabinwatch ctl ack``, waits a random 0-1 s (the kill's phase
against the once-a-second estimates) and SIGKILLs the monitor
(``tests.support.runtime_helpers.kill_monitor_once``).  Reported: the median
and maximum age of the newest archived estimate at the kill (s), how many of
the answered acknowledgements the archive (``operator_actions``) and the
telemetry (``operator`` lines) kept, and the archive's integrity check.

``--before REV`` also runs git revision ``REV`` (a temporary ``git worktree``),
the two trees alternating round by round; a tree without the
``operator_actions`` table shows its acknowledgements as ``-``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
from pathlib import Path

from bench.common import REPO_ROOT, checkout, machine


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_kill")
    ap.add_argument("--kills", type=int, default=6, help="kills per tree (default 6)")
    ap.add_argument("--warmup", type=float, default=3.0, help="s of monitoring before the acks")
    ap.add_argument("--before", metavar="REV", help="also kill git revision REV, alternating")
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill phases")
    ap.add_argument("--loop-hz", type=float, default=10.0, help="the loop's rate (default 10)")
    args = ap.parse_args([] if argv is None else argv)
    from tests.support.runtime_helpers import kill_monitor_once

    print(f"machine: {machine()}")
    rng = random.Random(args.seed)
    results: dict[str, list] = {}
    with contextlib.ExitStack() as stack:
        trees: dict[str, str | None] = {"after": None}
        if args.before:
            trees = {"before": stack.enter_context(checkout(args.before)), **trees}
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cw-kill-")))
        for i in range(args.kills):
            phase = rng.random()
            for name, tree in trees.items():
                r = kill_monitor_once(
                    work / f"{name}-{i}",
                    warmup_s=args.warmup,
                    kill_phase_s=phase,
                    tree=tree,
                    loop_rate_hz=args.loop_hz,
                )
                results.setdefault(name, []).append(r)
                print(
                    f"  {name:>6} kill {i + 1}: phase {phase:.2f} s, newest estimate "
                    f"{r.estimate_age_s:.2f} s old, acks kept {_n(r.acks_archived)}/"
                    f"{r.acks_sent} archive, {_n(r.acks_in_telemetry)}/{r.acks_sent} "
                    f"telemetry, integrity {r.integrity}",
                    flush=True,
                )
    print(
        f"SIGKILL {args.kills} times per tree, loop at {args.loop_hz:g} Hz, 5 acks answered "
        "0-1 s before each kill:"
    )
    out = {}
    for name, rs in results.items():
        ages = [r.estimate_age_s for r in rs]
        label = f"{name} ({args.before})" if name == "before" else name
        kept_a = _kept([r.acks_archived for r in rs], rs)
        kept_t = _kept([r.acks_in_telemetry for r in rs], rs)
        ok = all(r.integrity == "ok" for r in rs)
        out[name] = {
            "age_median_s": statistics.median(ages),
            "age_max_s": max(ages),
            "acks_archived": kept_a,
            "acks_telemetry": kept_t,
            "integrity_ok": ok,
        }
        print(
            f"  {label:>24}: newest estimate median {statistics.median(ages):.2f} s, "
            f"max {max(ages):.2f} s old; acks kept: archive {kept_a}, telemetry {kept_t}; "
            f"integrity {'ok' if ok else 'FAILED'}"
        )
    return out


def _n(x: int | None) -> str:
    return "-" if x is None else str(x)


def _kept(counts: list[int | None], rs: list) -> str:
    if any(c is None for c in counts):
        return "-"
    return f"{sum(counts)}/{sum(r.acks_sent for r in rs)}"


if __name__ == "__main__":
    sys.path.insert(0, REPO_ROOT)
    main(sys.argv[1:])
