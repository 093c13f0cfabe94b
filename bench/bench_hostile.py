"""The hostile-input corpus at scale: about 1000 generated inputs over every subcommand.

The same strategies and checks as tests/runtime/test_hostile_corpus.py
(``tests.support.hostile``), with many more examples: per subcommand, how many
exited 0 and 2, how many broke the promise (exit code, more than one stderr
line, a traceback or warning, over the time bound; decode: output that is not
strict JSON), and the time.  Run: ``.venv/bin/python -m bench hostile`` (part of
``make bench``); ``CABINWATCH_HOSTILE_EXAMPLES`` sets the total (default 1000).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from bench.common import machine
from tests.support import hostile

TOTAL_EXAMPLES = int(os.environ.get("CABINWATCH_HOSTILE_EXAMPLES", "1000"))


def run_case(name: str, examples: int, root: Path, archive: Path) -> dict:
    """``examples`` inputs of subcommand ``name``: counts, failures and times."""
    counter = itertools.count()
    stats = {"examples": 0, "exit0": 0, "exit2": 0, "failures": [], "max_s": 0.0}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile.CASES[name]())
    def prop(inp):
        o = hostile.run_input(inp, root / str(next(counter)), archive)
        bad = hostile.problems(o)
        if name == "decode":
            bad += hostile.decode_output_problems(o)[:1]
        stats["examples"] += 1
        stats["exit0"] += o.code == 0
        stats["exit2"] += o.code == 2
        stats["max_s"] = max(stats["max_s"], o.seconds)
        if bad:
            stats["failures"].append((bad, o.argv, o.stderr.strip().splitlines()[-3:]))

    t0 = time.perf_counter()
    prop()
    stats["seconds"] = time.perf_counter() - t0
    return stats


def main() -> None:
    per_case = max(1, TOTAL_EXAMPLES // len(hostile.CASES))
    print(f"machine: {machine()}")
    print(f"hostile corpus: {per_case} examples per subcommand, bound {hostile.TIME_BOUND_S} s")
    total = {"examples": 0, "failures": 0, "seconds": 0.0}
    with tempfile.TemporaryDirectory(prefix="cabinwatch-hostile-") as tmp:
        root = Path(tmp)
        archive = hostile.make_archive(root / "archive")
        print(
            f"{'subcommand':<16} {'examples':>8} {'exit 0':>7} {'exit 2':>7} "
            f"{'failures':>8} {'time s':>7} {'slowest s':>9}"
        )
        for name in sorted(hostile.CASES):
            s = run_case(name, per_case, root / name, archive)
            print(
                f"{name:<16} {s['examples']:>8} {s['exit0']:>7} {s['exit2']:>7} "
                f"{len(s['failures']):>8} {s['seconds']:>7.1f} {s['max_s']:>9.2f}",
                flush=True,
            )
            for bad, argv, tail in s["failures"][:3]:
                print(f"    {bad}: {' '.join(map(repr, argv))[:300]}")
                for line in tail:
                    print(f"      {line[:300]}")
            total["examples"] += s["examples"]
            total["failures"] += len(s["failures"])
            total["seconds"] += s["seconds"]
    print(
        f"total: {total['examples']} examples, {total['failures']} failures, "
        f"{total['seconds']:.0f} s"
    )
