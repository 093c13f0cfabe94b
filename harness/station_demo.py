"""``cabinwatch demo --station``: the closed loop on the bench.

Starts, each in its own process group, with its output in ``--out``:

1. a private Mosquitto on 127.0.0.1 and a free port (``harness.broker``);
2. the emulator (``cabinwatch emulate SCENARIO --pty --control 127.0.0.1:0``),
   one pseudo-terminal per link, its truth in ``truth.jsonl``;
3. one ``cabinwatch monitor`` per board of the scenario's ``[[boards]]``, each on
   its own links only, publishing to the broker (its ``[station]`` table);
4. the aggregator, ``cabinwatch station --config station.toml --json --no-view``
   (its JSON lines kept in ``station.jsonl``);
5. the scripted crew (``harness.crew``) following the advisor's proposals.

It prints the hunt (each new assessment, each crew action) and a summary; with
``json`` the output is JSON lines (``{"type": "assessment"|"action", ...}``)
ending with ONE summary object (``"type": "summary"``).  Everything is stopped on
exit, on Ctrl-C/SIGTERM and on errors: the processes by their process groups,
the broker and its folder.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from common.errors import CabinwatchError
from harness.children import guarded, stop_group
from harness.station_split import split_for_station

CLI = [sys.executable, "-m", "firmware_host.cli"]
#: The station's name on the broker.
STATION = "iss"
#: Simulated seconds the run goes on after the advisor located the leak (a
#: located volume that then changes is a false location).
AFTER_LOCATED_S = 300.0
#: Wall seconds each process gets to start (its endpoints, its control socket).
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class StationDemoOptions:
    """``scenario`` a split scenario (``[[boards]]``); ``speed`` x real time;
    ``duration_s`` simulated s to run at most; ``reaction_s`` the crew's (simulated s);
    ``out`` the folder for configurations, logs, archives and truth; ``join_s`` the
    simulated time at which the aggregator and the crew join the running boards;
    ``start_s`` the scenario time the emulator starts at (fast-forwarded to it),
    ``duration_s`` counted from there.  A scenario without ``[[boards]]`` gets one
    board per gas group and its scripted hatch events are left to the crew
    (``harness.station_split``)."""

    scenario: str
    out: Path
    speed: float = 60.0
    duration_s: float | None = None
    start_s: float = 0.0
    reaction_s: float = 60.0
    join_s: float = 0.0
    caution_kg_day: float = 5.0
    json: bool = False


@dataclass
class Proc:
    """A child process in its own process group, stdout read line by line by a thread."""

    name: str
    popen: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    log: IO[str] | None = None
    on_line: object = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _eof: bool = False

    def pump(self) -> None:
        try:
            for line in self.popen.stdout:
                if self.log is not None:
                    self.log.write(line)
                    self.log.flush()
                if self.on_line is not None:
                    self.on_line(line.rstrip("\n"))
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def wait_for(self, predicate, timeout_s: float):
        """The first value ``predicate(lines)`` gives that is not None, or None at EOF."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                got = predicate(self.lines)
                if got is not None or self._eof:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        stop_group(self.popen, timeout_s=timeout_s)


class Children:
    """Every process the demo started; ``stop_all()`` ends them, last started first."""

    def __init__(self, out: Path):
        self.out = out
        self.procs: list[Proc] = []
        self.starting = False  # a child between Popen and ``procs``: Ctrl-C waits
        self.interrupted = False  # a Ctrl-C/SIGTERM that waited for it

    def interrupt(self) -> None:
        """The demo's signal handler: KeyboardInterrupt now, or once the child
        being started is in ``procs`` (else it would be left running)."""
        if self.starting:
            self.interrupted = True
            return
        raise KeyboardInterrupt

    def start(self, name: str, argv: list[str], *, keep_stdout: bool = True, on_line=None) -> Proc:
        err = open(self.out / f"{name}.stderr.log", "w", encoding="utf-8")  # noqa: SIM115
        log = open(self.out / f"{name}.stdout.log", "w", encoding="utf-8") if keep_stdout else None  # noqa: SIM115
        self.starting = True
        try:
            try:
                popen = subprocess.Popen(
                    guarded(argv),  # ends with the demo even if it is killed outright
                    stdout=subprocess.PIPE,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,
                )
            finally:
                err.close()  # (the child has its own copy)
            p = Proc(name, popen, log=log, on_line=on_line)
            self.procs.append(p)
            self.record(name, popen.pid)
        finally:
            self.starting = False
        if self.interrupted:
            raise KeyboardInterrupt
        threading.Thread(target=p.pump, name=f"pump-{name}", daemon=True).start()
        return p

    def record(self, name: str, pid: int) -> None:
        """``out/processes.txt``: one ``NAME PID`` line per process started (each the
        leader of its own process group), for an operator or a test to check."""
        with open(self.out / "processes.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{name} {pid}\n")

    def last_error(self, p: Proc) -> str:
        try:
            text = (self.out / f"{p.name}.stderr.log").read_text(errors="replace").strip()
        except OSError:
            text = ""
        return text.splitlines()[-1] if text else f"exit code {p.popen.returncode}"

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            with contextlib.suppress(Exception):
                p.stop()
            if p.log is not None:
                with contextlib.suppress(OSError):
                    p.log.close()


def _endpoints(lines: list[str], links: list[str]):
    """(link -> pty path, control (host, port)) once the emulator printed them all."""
    urls, control = {}, None
    for line in lines:
        f = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if "link" in f and "pty" in f:
            urls[f["link"]] = f["pty"]
        elif f.get("control") == "tcp" and "tcp" in f:
            host, _, port = f["tcp"].rpartition(":")
            control = (host, int(port))
    if control is not None and all(lk in urls for lk in links):
        return urls, control
    return None


def correct_volumes(scenario, volume: str) -> set[str]:
    """Where a leak in ``volume`` counts as located: that volume, and for an escape
    vehicle's volume the vehicle's other volumes (its segment: escape-vehicle
    volumes joined by hatches between two of them)."""
    ev = {v.name for v in scenario.volumes if v.escape_vehicle}
    out = {volume}
    if volume not in ev:
        return out
    grew = True
    while grew:
        grew = False
        for h in scenario.hatches:
            if h.volume_a in ev and h.volume_b in ev:
                if (h.volume_a in out) != (h.volume_b in out):
                    out |= {h.volume_a, h.volume_b}
                    grew = True
    return out


class Hunt:
    """What the crew saw and did, for the printout and the summary (thread-safe)."""

    def __init__(self, emit):
        self.emit = emit
        self.lock = threading.Lock()
        self.detected_s: float | None = None
        self.located: list[tuple[float, str]] = []  # every change of ``located``
        self._last_key = None
        self._last_located: str | None = None

    def on_assessment(self, msg, now_s: float) -> None:
        from harness.crew import assessment_state

        with self.lock:
            if msg.leaking and self.detected_s is None:
                self.detected_s = now_s
            if msg.located != self._last_located:
                self._last_located = msg.located
                if msg.located is not None:
                    self.located.append((now_s, msg.located))
            p = msg.proposal or {}
            key = (assessment_state(msg), p.get("hatch"), p.get("close"), msg.located)
            if key == self._last_key:
                return
            self._last_key = key
        self.emit(
            {
                "type": "assessment",
                "t_s": round(now_s, 1),
                "state": key[0],
                "leaking": msg.leaking,
                "proposal": msg.proposal,
                "located": msg.located,
                "message": msg.message,
            },
            f"t={now_s:8.0f} s  advisor: {msg.message or key[0]}",
        )

    def on_action(self, a) -> None:
        boards = ", ".join(f"{n}: {r}" for n, r in a.boards.items()) or "no board has it"
        self.emit(
            {"type": "action", **a.to_json_dict()},
            f"t={a.acted_s:8.0f} s  crew: {'opens' if a.open else 'closes'} {a.hatch} "
            f"(proposed at {a.seen_s:.0f} s; emulator {a.emulator}"
            + (f" at t={a.effect_s:.0f} s" if a.effect_s is not None else "")
            + f"; boards {boards}"
            + ("; state published" if a.published else "")
            + ")",
        )


def run_station_demo(opts: StationDemoOptions, stdout: IO[str] = sys.stdout) -> dict:
    """Run the closed loop; returns the summary (also printed)."""
    from harness.broker import MosquittoBroker
    from hil.scenario import load_scenario

    scenario = load_scenario(opts.scenario)
    out = opts.out.resolve()
    split = None
    if not scenario.boards:
        split = split_for_station(scenario, out)
        scenario = load_scenario(str(split.path))
    if not opts.start_s < scenario.duration_s:
        raise CabinwatchError(
            f"--start must be before the scenario's end ({scenario.duration_s:g} s)"
        )
    duration = min(opts.start_s + (opts.duration_s or scenario.duration_s), scenario.duration_s)

    def emit(obj: dict, text: str) -> None:
        stdout.write((json.dumps(obj) if opts.json else text) + "\n")
        stdout.flush()

    def say(text: str) -> None:
        if not opts.json:
            stdout.write(text + "\n")
            stdout.flush()

    say(f"demo --station: {scenario.name}: {scenario.description}")
    if split is not None:
        say(
            f"  one board per gas group: {len(split.boards)} board(s) ({split.path.name}); "
            f"{split.dropped_hatch_events} scripted hatch event(s) left to the crew"
        )
    children = Children(out)
    broker = MosquittoBroker()
    stop = threading.Event()
    old = {}

    def on_signal(signum, frame):
        stop.set()
        children.interrupt()

    with contextlib.suppress(ValueError):  # (not the main thread: a test)
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, on_signal)
    try:
        broker.start()
        children.record("mosquitto", broker.proc.pid)
        say(f"  broker: mosquitto at {broker.url}")
        return _run(opts, scenario, duration, out, broker, children, emit, say, stop, split)
    finally:
        stop.set()
        children.stop_all()
        broker.stop()
        for sig, h in old.items():
            signal.signal(sig, h)


def start_emulator(
    children: Children, scenario, speed: float, duration_s: float, out: Path, start_s: float = 0.0
):
    """The emulator on ptys with its control path, fast-forwarded to ``start_s``
    (scenario s) -> (link -> pty path, (host, port))."""
    start = ["--start", repr(start_s)] if start_s > 0 else []
    emu = children.start(
        "emulator",
        [
            *CLI,
            "emulate",
            scenario.path,
            "--pty",
            "--speed",
            repr(speed),
            "--duration",
            repr(duration_s),
            "--truth",
            str(out / "truth.jsonl"),
            "--control",
            "127.0.0.1:0",
            *start,
        ],
    )
    # fast-forwarding: about 0.1 wall s per simulated hour here (10 h of soyuz-ms09-2018
    # in 1.0 s); 2 s per hour leaves room for a slower machine
    timeout = START_TIMEOUT_S + start_s / 3600.0 * 2.0
    got = emu.wait_for(lambda lines: _endpoints(lines, scenario.link_names), timeout)
    if got is None:
        raise CabinwatchError(f"the emulator did not start: {children.last_error(emu)}")
    return got


@dataclass(frozen=True)
class BoardSetup:
    """One board of the loop: its node, volumes, links, the hatches in its
    configuration, and the files it runs on."""

    node: str
    volumes: tuple[str, ...]
    links: tuple[str, ...]
    hatches: tuple[str, ...]
    config: Path
    socket: Path

    def to_json_dict(self) -> dict:
        return {
            "node": self.node,
            "volumes": list(self.volumes),
            "links": list(self.links),
            "hatches": list(self.hatches),
        }


def write_board_configs(
    scenario, ptys: dict[str, str], out: Path, speed: float, broker_url: str | None
) -> list[BoardSetup]:
    """Each board's configuration in ``out/boards/NODE.toml`` (its outputs in
    ``out/boards/NODE/``); ``broker_url`` None: no ``[station]`` table."""
    from harness.derive import BoardStation, board_config_dict, board_hatches, config_toml
    from hil.runner import quiet_sim_seconds

    boards_dir = out / "boards"
    boards_dir.mkdir(exist_ok=True)
    fastest_hz = max(s.rate_hz for s in scenario.sensors)
    setups = []
    for b in scenario.boards:
        bdir = boards_dir / b.node
        bdir.mkdir(exist_ok=True)
        links = scenario.board_links(b.node)
        station = None
        if broker_url is not None:
            station = BoardStation(
                broker=broker_url, station=STATION, node=b.node, session_file=str(bdir / "session")
            )
        data = board_config_dict(
            scenario, b.node, urls={lk: ptys[lk] for lk in links}, station=station
        )
        # the emulator's bursts and the machine's hiccups span `speed` times more
        # simulated time: staleness must not take them for silence (as `demo`)
        data["health"] = {"stale_periods": max(3.0, quiet_sim_seconds(speed) * fastest_hz)}
        data["outputs"] = {
            "directory": str(bdir),
            "telemetry": "",
            "control_socket": "cabinwatch.sock",
        }
        path = boards_dir / f"{b.node}.toml"
        path.write_text(config_toml(data), encoding="utf-8")
        setups.append(
            BoardSetup(
                b.node,
                tuple(b.volumes),
                tuple(links),
                tuple(board_hatches(scenario, b.node)),
                path,
                bdir / "cabinwatch.sock",
            )
        )
    return setups


def start_boards(children: Children, boards: list[BoardSetup], speed: float) -> None:
    """One ``cabinwatch monitor`` per board; returns once each has its control socket."""
    procs = {
        b.node: children.start(
            f"board-{b.node}",
            [*CLI, "monitor", "--config", str(b.config), "--speed", repr(speed), "--no-display"],
        )
        for b in boards
    }
    for b in boards:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not b.socket.exists():
            p = procs[b.node]
            if not p.alive():
                raise CabinwatchError(f"board {b.node} stopped: {children.last_error(p)}")
            if time.monotonic() > deadline:
                raise CabinwatchError(f"board {b.node}: no control socket within 30 s")
            time.sleep(0.05)


def emulator_clock(control: tuple[str, int], speed: float):
    """A clock of the emulator's simulated time (s): its ``status`` time now, then
    ``speed`` x the wall time since."""
    from hil.control import send_request

    status = send_request(control, {"cmd": "status"})
    if not status.get("ok"):
        raise CabinwatchError(f"the emulator's control path: {status.get('error')}")
    t0_sim, t0_wall = float(status["t_s"]), time.monotonic()

    def now() -> float:
        return t0_sim + (time.monotonic() - t0_wall) * speed

    return now


def make_crew(
    scenario,
    broker_url: str,
    control,
    boards: list[BoardSetup],
    clock,
    reaction_s,
    hunt: Hunt | None = None,
):
    from firmware_host.runtime.control import send_command
    from harness.crew import Crew, routes_for
    from hil.control import send_request

    sockets = {b.node: b.socket for b in boards}
    return Crew(
        broker=broker_url,
        station=STATION,
        routes=routes_for(
            [(h.name, h.volume_a, h.volume_b) for h in scenario.hatches],
            {b.node: list(b.hatches) for b in boards},
        ),
        hatch_open={h.name: h.open for h in scenario.hatches},
        emulator=lambda req: send_request(control, req),
        board=lambda node, req: send_command(sockets[node], req),
        clock=clock,
        reaction_s=reaction_s,
        on_action=hunt.on_action if hunt else None,
        on_assessment=hunt.on_assessment if hunt else None,
    )


def aggregator_takes_speed() -> bool:
    """Whether ``cabinwatch station`` runs on a sped-up clock (``--speed X``), as the
    boards do: the advisor's hold times and the staleness of estimates are then in
    simulated seconds."""
    r = subprocess.run(
        [*CLI, "station", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return r.returncode == 0 and "--speed" in r.stdout


def _run(opts, scenario, duration, out, broker, children, emit, say, stop, split) -> dict:
    from harness.crew import CREW_NODE
    from harness.derive import config_toml, station_file_dict

    speed = opts.speed
    # 1. the emulator, with its control path
    ptys, control = start_emulator(
        children, scenario, speed, duration + 10 * speed, out, opts.start_s
    )
    say(
        f"  emulator: {speed:g}x real time from t={opts.start_s:.0f} s, links on ptys, "
        f"control on {control[0]}:{control[1]}"
    )
    # 2. the boards
    boards = write_board_configs(scenario, ptys, out, speed, broker.url)
    start_boards(children, boards, speed)
    for b in boards:
        say(f"  board {b.node}: volumes {', '.join(b.volumes)}; links {', '.join(b.links)}")
    sim_now = emulator_clock(control, speed)
    if opts.join_s > 0:
        say(f"  aggregator and crew join at t={opts.join_s:.0f} s")
        while sim_now() < opts.join_s and not stop.is_set():
            dead = next((p for p in children.procs if not p.alive()), None)
            if dead is not None:
                raise CabinwatchError(f"{dead.name} stopped: {children.last_error(dead)}")
            stop.wait(0.05)
    # 3. the aggregator
    station_path = out / "station.toml"
    station_path.write_text(
        config_toml(
            station_file_dict(
                scenario,
                STATION,
                broker.url,
                caution_kg_day=opts.caution_kg_day,
                hatch_reporter=CREW_NODE,
            )
        ),
        encoding="utf-8",
    )
    agg_argv = [*CLI, "station", "--config", str(station_path), "--json", "--no-view"]
    if aggregator_takes_speed():
        agg_argv += ["--speed", repr(speed)]
    else:
        say(
            f"  WARNING: `cabinwatch station` has no --speed: its clock (hold times, "
            f"staleness) runs on wall time, {speed:g}x slower than the boards'"
        )
    agg = children.start("station", agg_argv)
    # 4. the crew, on the emulator's clock
    hunt = Hunt(emit)
    crew = make_crew(scenario, broker.url, control, boards, sim_now, opts.reaction_s, hunt)
    crew.start()
    try:
        say(
            f"  aggregator and crew up; running to t={duration:.0f} s "
            f"(crew reaction {opts.reaction_s:g} s)"
        )
        essential = list(children.procs)
        while not stop.is_set():
            now = sim_now()
            if now >= duration:
                break
            if hunt.located and now >= hunt.located[0][0] + AFTER_LOCATED_S:
                break
            dead = next((p for p in essential if not p.alive()), None)
            if dead is not None:
                raise CabinwatchError(f"{dead.name} stopped: {children.last_error(dead)}")
            crew.poll()
            stop.wait(0.05)
    finally:
        crew.stop()
    end_s = sim_now()
    return _summary(opts, scenario, broker, boards, hunt, crew, agg, end_s, emit, say, split)


def _summary(opts, scenario, broker, boards, hunt, crew, agg, end_s, emit, say, split) -> dict:
    """The run's summary; ``split``: the ``StationSplit`` made here, or None."""
    leak = min(scenario.leaks, key=lambda lk: lk.onset_s) if scenario.leaks else None
    right = correct_volumes(scenario, leak.volume) if leak else set()
    located_s, located_volume = hunt.located[0] if hunt.located else (None, None)
    false_locations = [{"t_s": round(t, 1), "volume": v} for t, v in hunt.located if v not in right]
    summary = {
        "type": "summary",
        "scenario": scenario.name,
        "boards": [b.to_json_dict() for b in boards],
        "broker": broker.url,
        "speed": opts.speed,
        "start_s": opts.start_s,
        "split_here": split is not None,
        "dropped_hatch_events": split.dropped_hatch_events if split else 0,
        "end_s": round(end_s, 1),
        "leak_volume": leak.volume if leak else None,
        "leak_onset_s": leak.onset_s if leak else None,
        "detected_s": None if hunt.detected_s is None else round(hunt.detected_s, 1),
        "located_volume": located_volume,
        "located_s": None if located_s is None else round(located_s, 1),
        "located_correct": located_volume in right if located_volume else False,
        "hunt_s": (
            round(located_s - hunt.detected_s, 1)
            if located_s is not None and hunt.detected_s is not None
            else None
        ),
        "detected_before_onset": (
            hunt.detected_s is not None and leak is not None and hunt.detected_s < leak.onset_s
        ),
        "hatch_actions": [a.to_json_dict() for a in crew.actions],
        "false_locations": false_locations,
        "assessments": len(crew.assessments),
        "aggregator_lines": len(agg.lines),
        "crew_errors": crew.errors,
        "out": str(opts.out),
    }
    if opts.json:
        emit(summary, "")
        return summary
    say("")
    say(f"demo --station summary: {scenario.name}")
    if leak:
        say(f"  leak {leak.name} in {leak.volume} opened at t={leak.onset_s:.0f} s")
    say(f"  detected (advisor: leaking): {_t(hunt.detected_s)}")
    say(
        f"  located: {located_volume or 'not located'} at {_t(located_s)}"
        + (
            f", {summary['hunt_s'] / 60:.1f} min after detection"
            if summary["hunt_s"] is not None
            else ""
        )
    )
    say(f"  hatch actions: {len(crew.actions)}; false locations: {len(false_locations)}")
    say(f"  files: {opts.out} (boards/, station.toml, station.stdout.log, truth.jsonl, *.log)")
    return summary


def _t(t: float | None) -> str:
    return "-" if t is None else f"t={t:.0f} s"
