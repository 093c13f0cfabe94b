"""Helpers for the runtime tests: the CLI in a subprocess, a TOML writer, the emulator.

Every subprocess is started in its own session and killed by process group at the
end; every file goes below the test's ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from harness.children import stop_group

CLI = [sys.executable, "-m", "firmware_host.cli"]


def run_cli(*args: str, timeout: float = 60.0, cwd: str | Path | None = None):
    """``cabinwatch ARGS`` to completion; a CompletedProcess with text stdout/stderr."""
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def assert_one_line_error(proc, *needles: str) -> str:
    """Exit 2, nothing on stdout, exactly one stderr line (no traceback) holding ``needles``."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- TOML ---------------------------------------------------------------------


def to_toml(data: dict) -> str:
    """``data`` as TOML text."""
    return tomli_w.dumps(data)


def write_toml(path: Path, data: dict) -> Path:
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def monitor_config(
    scenario, urls: dict[str, str], out_dir: Path, *, speed: float = 1.0, control_socket: str = ""
) -> dict:
    """The monitor config dict for ``scenario``'s hardware on ``urls``, outputs in ``out_dir``.

    The stale threshold is raised for a sped-up emulator as ``cabinwatch demo`` does:
    its bursts and a 20 ms scheduling hiccup span ``speed`` times more simulated time.
    """
    from harness.derive import config_dict_from_scenario, link_tables
    from hil.runner import quiet_sim_seconds

    data = config_dict_from_scenario(scenario)
    fastest_hz = max(s.rate_hz for s in scenario.sensors)
    data["health"] = {"stale_periods": float(max(3.0, quiet_sim_seconds(speed) * fastest_hz))}
    data["links"] = link_tables(scenario, urls)
    data["outputs"] = {
        "directory": str(out_dir),
        "archive": "archive.sqlite",
        "telemetry": "",
        "capture": "capture",
        "control_socket": control_socket,
    }
    data["display"] = {"enabled": False}
    return data


# -- the emulator in another process ------------------------------------------


class EmulatorProcess:
    """``cabinwatch emulate ...`` in its own process group; stdout lines collected."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [*CLI, "emulate", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._eof = False
        self._new_line = threading.Condition()
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self) -> None:
        try:
            for line in self.proc.stdout:
                with self._new_line:
                    self.lines.append(line.strip())
                    self._new_line.notify_all()
        finally:
            with self._new_line:
                self._eof = True
                self._new_line.notify_all()

    def wait_line(self, pattern: str, timeout: float = 20.0) -> re.Match:
        def first_match() -> re.Match | None:
            return next((m for m in (re.search(pattern, s) for s in self.lines) if m), None)

        with self._new_line:  # until a line matches or stdout ends
            m = self._new_line.wait_for(lambda: first_match() or self._eof, timeout)
        if isinstance(m, re.Match):
            return m
        if self._eof:  # stdout closed: the emulator is exiting; its stderr tells why
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=2.0)
        err = ""
        if self.proc.poll() is not None:
            err = self.proc.stderr.read()
        raise AssertionError(f"emulator: no line {pattern!r}: {self.lines} {err}")

    def endpoints(self, links: list[str], timeout: float = 20.0) -> dict[str, str]:
        """pyserial URLs of every link: the pty alias (stable across reopen) or socket://."""
        urls = {}
        for link in links:
            m = self.wait_line(rf"^link={re.escape(link)} (\S+)=(\S+)(?: alias=(\S+))?", timeout)
            kind, value, alias = m.group(1), m.group(2), m.group(3)
            if kind == "tcp":
                urls[link] = f"socket://{value}"
            elif kind == "pty":
                urls[link] = alias or value
            else:
                raise AssertionError(f"unexpected endpoint {m.group(0)}")
        return urls

    def kill(self) -> None:
        stop_group(self.proc, timeout_s=5.0)
        for fh in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                fh.close()
        self._t.join(timeout=2)


def query(db_path: Path, sql: str, *params):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


# -- a real core fed by the in-process emulator ----------------------------------


def run_ticks(scenario_name: str, duration_s: float, loop_rate_hz: float | None = None):
    """(core, every TickResult, config): ``scenario_name`` run for ``duration_s`` simulated
    seconds through the encoded byte stream, the real decoder, loop and core."""
    from firmware_host.clock import SimClock
    from firmware_host.core import MonitorCore
    from firmware_host.loop import NS, RateLoop
    from harness.derive import config_from_scenario
    from harness.simulate import EmulatorSource
    from hil.emulator import Emulator
    from hil.scenario import load_scenario

    scenario = load_scenario(scenario_name)
    if loop_rate_hz is None:
        config = config_from_scenario(scenario)
    else:
        config = config_from_scenario(scenario, loop_rate_hz=loop_rate_hz)
    core = MonitorCore(config)
    source = EmulatorSource(
        Emulator(scenario, truth_rate_hz=0.0),
        hatch_inputs=scenario.hatch_events(),
        on_hatch=core.set_hatch,
    )
    results = []
    loop = RateLoop(core, SimClock(0), config.rate_hz, source, results.append)
    loop.start_ns = int(round(NS / config.rate_hz))
    loop.run(until_s=duration_s)
    return core, results, config


def run_core(scenario_name: str, duration_s: float):
    """(core, last TickResult, config) of ``run_ticks``."""
    core, results, config = run_ticks(scenario_name, duration_s)
    return core, results[-1], config


# -- durability: a real monitor killed with SIGKILL -------------------------------


@dataclass(frozen=True)
class KillResult:
    """What survived one SIGKILL of a monitor.

    ``estimate_age_s``: monotonic time of the kill minus the newest archived
    estimate's ``t_s`` (the monitor's clock is monotonic time, s); ``acks_sent``
    acknowledgements answered by the monitor before the kill, of them
    ``acks_archived`` in ``operator_actions`` and ``acks_in_telemetry`` as
    ``operator`` lines (None: the tree has no such record); ``integrity`` the
    archive's ``PRAGMA integrity_check``.
    """

    estimate_age_s: float
    acks_sent: int
    acks_archived: int | None
    acks_in_telemetry: int | None
    integrity: str


def kill_monitor_once(
    work: Path,
    *,
    acks: int = 5,
    warmup_s: float = 4.0,
    kill_phase_s: float = 0.0,
    ack_to_kill_s: float = 0.0,
    tree: str | Path | None = None,
    scenario_name: str = "nominal",
    loop_rate_hz: float = 10.0,
) -> KillResult:
    """Emulator on a pty and ``cabinwatch monitor`` (of ``tree``, default this one) in
    real time, its loop at ``loop_rate_hz`` (10 Hz as in the example configuration);
    after ``warmup_s`` s, ``acks`` ``cabinwatch ctl ack``; ``ack_to_kill_s`` after the
    last reply and then ``kill_phase_s`` more, SIGKILL; what survived."""
    from hil.scenario import load_scenario

    scenario = load_scenario(scenario_name)
    work.mkdir(parents=True, exist_ok=True)
    emu = EmulatorProcess(scenario_name, "--pty", "--speed", "1", "--duration", "3000")
    monitor = None
    out = work / "out"
    try:
        urls = emu.endpoints(scenario.link_names)
        data = monitor_config(scenario, urls, out, control_socket="ctl.sock")
        data["outputs"]["telemetry"] = "telemetry.jsonl"
        data["outputs"]["telemetry_rate_hz"] = 0.1
        data["loop"] = {"rate_hz": loop_rate_hz}
        cfg = write_toml(work / "monitor.toml", data)
        env = dict(os.environ)
        cwd = work
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
            cwd = Path(tree)
        monitor = subprocess.Popen(
            [*CLI, "monitor", "--config", str(cfg), "--no-display"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        sock = out / "ctl.sock"
        deadline = time.monotonic() + 30
        while not sock.exists() and monitor.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not sock.exists():
            err = monitor.stderr.read() if monitor.poll() is not None else ""
            raise AssertionError(f"the monitor's control socket never appeared: {err}")
        time.sleep(warmup_s)
        sent = 0
        for _ in range(acks):
            r = subprocess.run(
                [*CLI, "ctl", "--socket", str(sock), "ack"],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=cwd,
                env=env,
            )
            assert r.returncode == 0, r.stderr
            sent += 1
        time.sleep(ack_to_kill_s + kill_phase_s)
        killed_at = time.monotonic()
        os.killpg(monitor.pid, signal.SIGKILL)
        monitor.wait(timeout=10)
    finally:
        if monitor is not None:
            if monitor.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(monitor.pid, signal.SIGKILL)
                monitor.wait(timeout=10)
            monitor.stderr.close()
        emu.kill()
    db = out / "archive.sqlite"
    integrity = query(db, "PRAGMA integrity_check")[0][0]
    (newest,) = query(db, "SELECT max(t_s) FROM estimates")[0]
    tables = {r[0] for r in query(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    archived = None
    if "operator_actions" in tables:
        archived = query(db, "SELECT count(*) FROM operator_actions WHERE action='ack'")[0][0]
    in_telemetry = None
    if tree is None:
        lines = (out / "telemetry.jsonl").read_text(encoding="utf-8").splitlines()
        in_telemetry = sum(1 for x in lines if '"type":"operator"' in x.replace(" ", ""))
    return KillResult(
        estimate_age_s=killed_at - newest,
        acks_sent=sent,
        acks_archived=archived,
        acks_in_telemetry=in_telemetry,
        integrity=integrity,
    )


@dataclass
class MonitorRun:
    """What ``monitor_against_emulator`` ran: the links' ``urls``, the configuration
    ``data`` the monitor read, its outputs directory ``out``, exit code and stderr."""

    urls: dict[str, str]
    data: dict
    out: Path
    returncode: int
    stderr: str

    @property
    def db(self) -> Path:
        return self.out / "archive.sqlite"

    def check_estimated(self) -> None:
        """The monitor exited 0 without a traceback and archived estimates with a pressure."""
        assert self.returncode == 0, self.stderr
        assert "Traceback" not in self.stderr, self.stderr
        n, n_p = query(self.db, "SELECT count(*), count(pressure_pa) FROM estimates")[0]
        assert n > 0 and n_p > 0, (n, n_p)

    def link_health(self, link: str) -> dict:
        """The link's health as the monitor archived it at exit."""
        import json

        return json.loads(dict(query(self.db, "SELECT key, value FROM meta"))["link_health"])[link]


def write_scenario(folder: Path, text: str):
    """``text`` as ``folder/scenario.toml``: (its path, the loaded ``hil.scenario`` Scenario)."""
    from hil.scenario import load_scenario

    path = folder / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path, load_scenario(str(path))


def monitor_against_emulator(
    tmp_path: Path,
    scenario_text: str,
    where: list[str],
    monitor_s: float,
    edit=None,
    timeout: float = 90.0,
) -> MonitorRun:
    """``cabinwatch emulate`` a scenario at 1x on ``where`` (``--pty`` or ``--tcp
    127.0.0.1:0``) and ``cabinwatch monitor`` its derived configuration for
    ``monitor_s`` seconds; ``edit(data, urls)`` may change the configuration
    first (stale periods are 10 for a loaded machine).  With ``--tcp`` every
    link must be a socket on 127.0.0.1.  Both processes are stopped whatever
    happens."""
    path, scenario = write_scenario(tmp_path, scenario_text)
    emu = EmulatorProcess(str(path), *where, "--speed", "1", "--duration", "600")
    monitor = None
    out = tmp_path / "out"
    try:
        urls = emu.endpoints(scenario.link_names)
        if where[0] == "--tcp":
            assert all(u.startswith("socket://127.0.0.1:") for u in urls.values()), urls
        data = monitor_config(scenario, urls, out)
        data["health"]["stale_periods"] = 10.0  # a loaded machine: polls can be late
        if edit is not None:
            edit(data, urls)
        cfg = write_toml(tmp_path / "monitor.toml", data)
        monitor = subprocess.Popen(
            [*CLI, "monitor", "--config", str(cfg), "--duration", str(monitor_s), "--no-display"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            start_new_session=True,
        )
        _, stderr = monitor.communicate(timeout=timeout)
    finally:
        if monitor is not None and monitor.poll() is None:
            os.killpg(monitor.pid, signal.SIGKILL)
            monitor.communicate(timeout=10)
        emu.kill()
    return MonitorRun(urls, data, out, monitor.returncode, stderr)
