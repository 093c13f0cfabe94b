"""``cabinwatch analyze`` end to end: a 17-day capture of two 0.2 Hz sensors, 1 Hz loop.

``.venv/bin/python -m bench analyze`` (or ``python -m bench.bench_analyze``).

The capture is ``bench/scenarios/prk-crack.toml`` (one 87.5 m3 volume with a
slowly growing crack, two barometers at 0.2 Hz on link ``rs``) written by
``cabinwatch emulate SCENARIO --out FILE --duration S`` of this tree, once,
cached under ``build/bench-analyze/`` (the name holds the days and a hash of the
scenario).  The monitor configuration is ``bench/scenarios/prk-crack.monitor.toml``
(default windows and limits, the loop at 1 Hz: one slow tick per second).

What is timed is the wall time of the subprocess ``python -m firmware_host.cli
analyze CAPTURE --config CFG`` (start-up, decode, timeline, every tick, JSON
out), per run and per simulated day.

Options:

* ``--days N``: a shorter capture for a quick look (default 17, or
  ``CABINWATCH_BENCH_DAYS``); the time per simulated day is what scales.
* ``--before REV``: also time git revision ``REV``, checked out with ``git
  worktree add --detach`` to a temporary directory (removed after); the two
  runs alternate round by round (``--rounds``), or run at the same time with
  ``--parallel``, so both see the same machine load.  Both get the same
  capture and configuration paths, so their outputs are compared byte for byte
  (``cmp``) and the result is printed.
* ``--profile``: instead, run the current tree under cProfile and say where the
  time goes (core slow tick, the rest of the core's tick, ingest, loop and
  source, decode, timeline, start-up).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import filecmp
import hashlib
import os
import pstats
import statistics
import subprocess
import sys
import time

from bench.common import checkout, machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "bench", "scenarios", "prk-crack.toml")
CONFIG = os.path.join(ROOT, "bench", "scenarios", "prk-crack.monitor.toml")
CACHE = os.path.join(ROOT, "build", "bench-analyze")
DAY_S = 86400.0


def capture(days: float) -> str:
    """The raw capture of ``days`` simulated days (made once by this tree's emulator)."""
    with open(SCENARIO, "rb") as fh:
        tag = hashlib.sha256(fh.read()).hexdigest()[:10]
    path = os.path.join(CACHE, f"prk-crack-{days:g}d-{tag}.bin")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    tmp = path + ".part"
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "firmware_host.cli",
            "emulate",
            SCENARIO,
            "--out",
            tmp,
            "--duration",
            repr(days * DAY_S),
            "--truth",
            os.devnull,
            "--truth-rate",
            "0",
        ],
        cwd=ROOT,
        env=_env(ROOT),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    os.replace(tmp, path)
    print(
        f"capture: {path} ({os.path.getsize(path) / 1e6:.1f} MB, "
        f"{time.perf_counter() - t0:.1f} s to emulate)",
        flush=True,
    )
    return path


def _env(tree: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = tree  # this tree's packages win over an editable install
    return env


def analyze_cmd(cap: str) -> list[str]:
    return [sys.executable, "-m", "firmware_host.cli", "analyze", cap, "--config", CONFIG]


def start(tree: str, cap: str, out: str) -> tuple[subprocess.Popen, float, object]:
    fh = open(out, "wb")  # noqa: SIM115 (closed in finish)
    t0 = time.perf_counter()
    proc = subprocess.Popen(analyze_cmd(cap), cwd=tree, env=_env(tree), stdout=fh)
    return proc, t0, fh


def finish(run: tuple[subprocess.Popen, float, object]) -> tuple[float, float]:
    """(wall, CPU) seconds of a started run, once it exits."""
    _, status, usage = os.wait4(run[0].pid, 0)
    return _finished(run, status, usage)


def _finished(run, status: int, usage) -> tuple[float, float]:
    proc, t0, fh = run
    wall = time.perf_counter() - t0
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    fh.close()
    if rc != 0:
        raise SystemExit(f"analyze exited {rc}: {' '.join(proc.args)}")
    return wall, usage.ru_utime + usage.ru_stime


def side_by_side(
    trees: dict[str, str], cap: str, rounds: int, parallel: bool
) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """Median (wall, CPU) seconds per tree; outputs next to the capture, CAPTURE.NAME.out."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    outs = {name: f"{cap}.{name}.out" for name in trees}
    for r in range(rounds):
        names = list(trees) if r % 2 == 0 else list(reversed(trees))
        if parallel:
            runs = {n: start(trees[n], cap, outs[n]) for n in names}
            by_pid = {runs[n][0].pid: n for n in names}
            while by_pid:  # each run's wall time ends when it exits, in whatever order
                pid, status, usage = os.wait4(-1, 0)
                n = by_pid.pop(pid, None)
                if n is not None:
                    times[n].append(_finished(runs[n], status, usage))
        else:
            for n in names:
                times[n].append(finish(start(trees[n], cap, outs[n])))
        line = ", ".join(
            f"{n} {times[n][-1][0]:.1f} s ({times[n][-1][1]:.1f} s CPU)" for n in trees
        )
        print(f"round {r + 1}: {line}", flush=True)
    med = {
        n: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for n, ts in times.items()
    }
    return med, outs


def profile(cap: str) -> None:
    """cProfile of analyze in this process (this tree); the time by part of the pipeline."""
    from firmware_host.cli import main as cli_main

    prof = cProfile.Profile()
    argv = ["cabinwatch", "analyze", cap, "--config", CONFIG]
    saved = sys.argv, sys.stdout
    with open(os.devnull, "w") as null:
        sys.argv, sys.stdout = argv, null
        t0 = time.perf_counter()
        try:
            prof.runcall(cli_main)
        finally:
            sys.argv, sys.stdout = saved
        wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    path = os.path.join(CACHE, "analyze.prof")
    st.dump_stats(path)

    def cum(file_end: str, func: str) -> float:
        return sum(
            v[3] for (f, _, fn), v in st.stats.items() if f.endswith(file_end) and fn == func
        )

    total = cum("firmware_host/cli.py", "main")
    parts = {
        "core slow tick (MonitorCore._slow_tick)": cum("firmware_host/core.py", "_slow_tick"),
        "core tick, the rest (rapid-depress check, every tick)": cum(
            "firmware_host/core.py", "tick"
        )
        - cum("firmware_host/core.py", "_slow_tick"),
        "core ingest": cum("firmware_host/core.py", "ingest"),
        "loop and source (RateLoop.step minus the core, RecordedSource)": cum(
            "firmware_host/loop.py", "step"
        )
        - cum("firmware_host/core.py", "tick")
        - cum("firmware_host/core.py", "ingest"),
        "decode (loop.decode_capture)": cum("firmware_host/loop.py", "decode_capture"),
        "timeline (loop.capture_arrivals)": cum("firmware_host/loop.py", "capture_arrivals"),
    }
    parts["start-up, config, summary and the rest"] = total - sum(parts.values())
    print(f"profile ({wall:.1f} s wall under cProfile; stats in {path}):")
    for name, t in parts.items():
        print(f"  {name:<66} {t:8.2f} s {100 * t / total:5.1f} %")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_analyze")
    ap.add_argument(
        "--days",
        type=float,
        default=float(os.environ.get("CABINWATCH_BENCH_DAYS", "17")),
        help="simulated days of capture (default 17, or CABINWATCH_BENCH_DAYS)",
    )
    ap.add_argument("--before", metavar="REV", help="also time git revision REV, side by side")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each tree (median; default 1)")
    ap.add_argument("--parallel", action="store_true", help="run before and after at once")
    ap.add_argument("--profile", action="store_true", help="cProfile the current tree instead")
    args = ap.parse_args([] if argv is None else argv)
    print(f"machine: {machine()}")
    cap = capture(args.days)
    if args.profile:
        profile(cap)
        return {}
    res = {}
    with contextlib.ExitStack() as stack:
        trees = {"after": ROOT}
        if args.before:
            trees = {"before": stack.enter_context(checkout(args.before)), **trees}
        walls, outs = side_by_side(trees, cap, args.rounds, args.parallel)
    how = "at the same time" if args.parallel else "alternating"
    print(
        f"analyze, {args.days:g} simulated days, 2 sensors at 0.2 Hz, 1 Hz loop "
        f"({args.rounds} round(s), {how}):"
    )
    for name, (wall, cpu) in walls.items():
        label = f"{name} ({args.before})" if name == "before" else name
        res[name] = {"wall_s": wall, "cpu_s": cpu, "wall_s_per_day": wall / args.days}
        res[name]["cpu_s_per_day"] = cpu / args.days
        print(
            f"  {label:>24}: wall {wall:8.1f} s = {wall / args.days:7.1f} s per simulated day "
            f"({wall / args.days * 17 / 60:6.1f} min for 17 days); "
            f"CPU {cpu:8.1f} s = {cpu / args.days:7.1f} s per day"
        )
    if "before" in walls:
        same = filecmp.cmp(outs["before"], outs["after"], shallow=False)
        res["speedup_wall"] = walls["before"][0] / walls["after"][0]
        res["speedup_cpu"] = walls["before"][1] / walls["after"][1]
        res["identical"] = same
        verdict = "byte-identical" if same else "DIFFER"
        print(
            f"  speed-up {res['speedup_wall']:.2f}x wall, {res['speedup_cpu']:.2f}x CPU; "
            f"outputs {verdict} (cmp {outs['before']} {outs['after']})"
        )
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
