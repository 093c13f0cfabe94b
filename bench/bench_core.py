"""Monitor core: the full-estimation (slow) tick, the fast tick, the dP/dt step, memory.

``.venv/bin/python -m bench core`` (or ``python -m bench.bench_core``) times the
current tree; ``python -m bench.bench_core --before REV`` also times git
revision ``REV`` side by side.

Each side runs in its own process (``bench/core_worker.py``, run with
``PYTHONPATH`` at that side's tree: the current one, or a checkout of ``REV``
made with ``git worktree add --detach`` in a temporary directory and removed
afterwards), so the whole core of each revision is measured as it is, while
the measuring code and the synthetic, seeded inputs are the same on both
sides.  Both processes are pinned to the same core and run in turn, never at
once: every case runs in rounds, before and after alternating as A B B A A B
..., each round a block of steps continuing where the last one stopped, so
both sides see the same machine load.  Reported: medians over all timed
steps, and the after/before ratio of the medians (and its range over the
rounds).

Cases (see ``bench/core_worker.py``):

* slow tick: the configuration derived from the ``nominal`` scenario (16
  sensors at 1 Hz, 8 volumes, windows 10 s, 60 s, 600 s, 1800 s, 2 h, a 1 Hz
  loop, and no quiet period where the revision has one) fed a slow fall of
  every sensor: every tick runs the full estimation, health and alarms; a
  step is ``ingest`` of both links' batches + ``tick``.
* quiet tick: the same without the fall: where the revision has a quiet
  period, the full estimation runs about every tenth tick (reported apart).
* fast tick: 64 channels at 10 Hz in volumes of four, windows 10 s, 60 s,
  600 s, 2 h; a step is ``ingest`` of one shuffled batch + ``tick``.  The median
  is the 10 Hz path (9 ticks in 10); the 1 Hz full-estimation ticks of this
  core are reported apart.
* dP/dt step: that core's raw tier alone, ``push`` of one slot + the pressure
  slopes of the rapid-depressurization windows.
* memory: a fresh process with a 64-channel core at 10 Hz and a 6-hour longest
  window, every buffer page touched, after 2000 ticks: VmRSS and VmHWM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys

import numpy as np

from bench.common import checkout, pin_one_core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "bench", "core_worker.py")
#: run the worker as a script without its directory on sys.path (bench/common.py
#: would shadow the ``common`` package)
_RUN = (
    "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)

#: case -> (warm-up steps, timed steps, steps per round)
CASES = {
    "slow": (900, 3000, 300),
    "quiet": (900, 3000, 300),
    "fast64": (1500, 3000, 300),
    "dpdt64": (500, 5000, 500),
}


class Worker:
    """A ``core_worker`` process running the core of the tree at ``tree``."""

    def __init__(self, tree: str):
        env = dict(os.environ, PYTHONPATH=tree)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RUN, WORKER],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("core_worker ended early")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def memory(tree: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _RUN, WORKER, "--memory"],
        cwd=tree,
        env=dict(os.environ, PYTHONPATH=tree),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def run_cases(workers: dict[str, Worker], scale: float = 1.0) -> dict:
    """Every case on every worker, interleaved in rounds (A B, B A, A B, ...).

    Returns ``{case: {side: {"us": [...], "slow": [...], "rounds": [median, ...]}}}``."""
    names = list(workers)
    warm = {c: int(w * scale) for c, (w, _, _) in CASES.items()}
    for wk in workers.values():
        wk.ask(case="setup", warm=warm)
    res: dict = {}
    for case, (_, n, per) in CASES.items():
        n = max(per, int(n * scale))
        res[case] = {s: {"us": [], "slow": [], "rounds": []} for s in names}
        for r in range(n // per):
            for side in names if r % 2 == 0 else names[::-1]:
                out = workers[side].ask(case=case, n=per)
                d = res[case][side]
                d["us"] += out["us"]
                d["slow"] += out["slow"]
                d["rounds"].append(statistics.median(out["us"]))
    return res


def summarize(d: dict) -> dict:
    us = np.array(d["us"])
    slow = np.array(d["slow"], dtype=bool)
    out = {"median_us": float(np.median(us)), "mean_us": float(us.mean())}
    out["p99_us"] = float(np.percentile(us, 99))
    if slow.any() and not slow.all():
        out["fast_median_us"] = float(np.median(us[~slow]))
        out["slow_median_us"] = float(np.median(us[slow]))
        out["slow_share"] = float(slow.mean())
    return out


LABELS = {
    "slow": "slow tick, nominal config, full estimation every tick",
    "quiet": "quiet tick, nominal config without a leak (all ticks)",
    "fast64": "fast tick, 64 channels at 10 Hz (ingest + tick, all ticks)",
    "dpdt64": "dP/dt step, 64 channels (raw-tier push + rapid-depress slopes)",
}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_core")
    ap.add_argument("--before", metavar="REV", help="also time git revision REV, side by side")
    ap.add_argument(
        "--scale", type=float, default=1.0, help="scale the number of steps (0.2: a quick run)"
    )
    args = ap.parse_args([] if argv is None else argv)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, numpy "
        f"{np.__version__}; {pin_one_core()}",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        trees = {"after": ROOT}
        if args.before:
            trees = {"before": stack.enter_context(checkout(args.before)), "after": ROOT}
        workers = {}
        for side, tree in trees.items():
            workers[side] = Worker(tree)
            stack.callback(workers[side].close)
        raw = run_cases(workers, args.scale)
        mem = {side: memory(tree) for side, tree in trees.items()}
    res: dict = {}
    for case, sides in raw.items():
        res[case] = {side: summarize(d) for side, d in sides.items()}
        for side, s in res[case].items():
            extra = ""
            if "slow_median_us" in s:
                extra = (
                    f"; ticks without the full estimation: median {s['fast_median_us']:.1f} us, "
                    f"with it: median {s['slow_median_us']:.0f} us ({s['slow_share']:.0%} of ticks)"
                )
            tag = f"{side} ({args.before})" if side == "before" else side
            print(
                f"{LABELS[case]}, {tag}: median {s['median_us']:.1f} us, mean "
                f"{s['mean_us']:.1f} us, p99 {s['p99_us']:.0f} us{extra}"
            )
        if "before" in sides:
            b, a = sides["before"], sides["after"]
            ratio = res[case]["after"]["median_us"] / res[case]["before"]["median_us"]
            per_round = [x / y for x, y in zip(a["rounds"], b["rounds"], strict=True)]
            res[case]["ratio"] = ratio
            print(
                f"  after/before (medians): {ratio:.3f}; per round "
                f"{min(per_round):.3f}-{max(per_round):.3f} over {len(per_round)} rounds"
            )
    for side, m in mem.items():
        res.setdefault("memory", {})[side] = m
        print(
            f"memory, 64 channels at 10 Hz, 6-h window, {side}: VmRSS {m['rss_kb'] / 1024:.1f} "
            f"MiB, VmHWM {m['hwm_kb'] / 1024:.1f} MiB (ring buffer {m['ring'] / 2**20:.1f} MiB)"
        )
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
