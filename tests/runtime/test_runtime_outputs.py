"""Outputs degrade, never die: a failing archive, telemetry or capture raises the
ADVISORY OUTPUT_FAILED, is buffered within its bound, retried with backoff and
recovers; the loop keeps ticking throughout (issue 18, R12)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from common.outputguard import OutputGuard, OutputStatus
from drivers.capture import RotatingCapture, read_capture
from firmware_host.alarms import AlarmKind, AlarmLevel, Transition
from firmware_host.runtime.app import MonitorApp, ScaledClock
from firmware_host.runtime.archive import Archive
from firmware_host.runtime.runconfig import load_runtime_config
from firmware_host.runtime.telemetry import TelemetryWriter
from hil.scenario import load_scenario
from tests.support.runtime_helpers import CLI, monitor_config, query, run_ticks, write_toml


class FakeWall:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- the guard ---------------------------------------------------------------


def test_guard_backoff_doubles_from_1_s_to_30_s_and_resets():
    wall = FakeWall()
    g = OutputGuard("archive", clock=wall)
    assert g.ready() and g.status is OutputStatus.OK and g.error is None
    delays = []
    for _ in range(8):
        g.failed(OSError(errno.ENOSPC, "No space left on device"))
        delays.append(g.retry_delay_s)
        assert not g.ready()
        wall.t = g.retry_at_s
        assert g.ready()
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert g.error == "[Errno 28] No space left on device" and g.failures == 8
    g.succeeded()
    assert g.status is OutputStatus.OK and g.error is None and g.ready()
    g.failed(sqlite3.OperationalError("database or disk is full"))
    assert g.retry_delay_s == 1 and g.error == "database or disk is full"


def test_guard_call_keeps_any_exception():
    g = OutputGuard("telemetry", clock=FakeWall())
    assert g.call(lambda: None)

    def boom():
        raise RuntimeError("bug in an output")

    assert not g.call(boom)
    assert g.status is OutputStatus.FAILING and g.error == "bug in an output"


# -- the advisory -----------------------------------------------------------


def test_report_output_raises_and_clears_the_advisory():
    core, results, _ = run_ticks("nominal", 5.0)
    t = results[-1].t_s
    raised = core.report_output("archive", "database or disk is full", t)
    assert [(e.kind, e.level, e.transition, e.source) for e in raised] == [
        (AlarmKind.OUTPUT_FAILED, AlarmLevel.ADVISORY, Transition.RAISED, "archive")
    ]
    assert raised[0].key == "archive:OUTPUT_FAILED"
    assert "database or disk is full" in raised[0].message
    assert core.report_output("archive", "database or disk is full", t + 1) == []
    active = {a.key: a for a in core.active_alarms()}
    assert active["archive:OUTPUT_FAILED"].level is AlarmLevel.ADVISORY
    nxt = core.tick(t + 1)  # reported with the next tick, as acknowledgements are
    assert raised[0] in nxt.events
    cleared = core.report_output("archive", None, t + 2)
    assert [e.transition for e in cleared] == [Transition.RETURN_TO_NORMAL]
    assert core.report_output("telemetry", None, t + 2) == []  # never failed: nothing
    core.acknowledge("archive:OUTPUT_FAILED", t + 3)
    assert "archive:OUTPUT_FAILED" not in {a.key for a in core.active_alarms()}


# -- the archive --------------------------------------------------------------


class _Disk:
    """A switch for the monkeypatched sqlite3: while ``full``, every commit fails."""

    full = False
    connects = 0


@pytest.fixture
def flaky_sqlite(monkeypatch):
    disk = _Disk()
    real_connect = sqlite3.connect

    class FlakyConnection(sqlite3.Connection):
        def commit(self):
            if disk.full:
                raise sqlite3.OperationalError("database or disk is full")
            return super().commit()

    def connect(*args, **kwargs):
        disk.connects += 1
        if disk.full and disk.connects > 1:
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(*args, factory=FlakyConnection, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    return disk


def test_archive_buffers_within_bound_and_reopens(tmp_path, flaky_sqlite):
    _, results, _ = run_ticks("nominal", 40.0)
    wall = FakeWall()
    guard = OutputGuard("archive", clock=wall)
    path = tmp_path / "a.sqlite"
    archive = Archive(path, wall_clock=wall, guard=guard, max_pending_rows=20)
    n_vol = len(results[0].volumes)
    for r in results[:5]:
        wall.t += 1.0
        archive.record_tick(r)
    assert guard.status is OutputStatus.OK
    flaky_sqlite.full = True
    for r in results[5:30]:
        wall.t += 1.0
        archive.record_tick(r)  # never raises
    assert guard.error in ("database or disk is full", "unable to open database file")
    assert archive._pending["estimates"].maxlen is None
    assert len(archive._pending["estimates"]) == 20  # the bound
    assert archive.rows_dropped["estimates"] == 25 * n_vol - 20
    connects = flaky_sqlite.connects
    flaky_sqlite.full = False
    wall.t += 31.0  # past any backoff
    for r in results[30:]:
        wall.t += 1.0
        archive.record_tick(r)
    assert guard.status is OutputStatus.OK
    assert flaky_sqlite.connects == connects + 1  # a new connection
    archive.close()
    rows = query(path, "SELECT t_s FROM estimates ORDER BY t_s")
    assert len(rows) == 5 * n_vol + 20 + len(results[30:]) * n_vol
    assert rows[-1][0] == pytest.approx(results[-1].t_s)
    meta = dict(query(path, "SELECT key, value FROM meta"))
    assert json.loads(meta["rows_dropped"])["estimates"] == 25 * n_vol - 20


def test_archive_commits_promptly(tmp_path):
    """An estimate row is committed within ``URGENT_GAP_S`` of wall time, events every
    0.5 s, an operator action at once (a reader sees them without close)."""
    _, results, _ = run_ticks("nominal", 3.0, loop_rate_hz=10.0)
    wall = FakeWall()
    path = tmp_path / "p.sqlite"
    archive = Archive(path, wall_clock=wall)
    wall.t += 0.1
    archive.record_tick(results[0])
    assert query(path, "SELECT count(*) FROM estimates")[0][0] == len(results[0].volumes)
    archive.record_operator_action(1.0, "control", "ack", "*", True, {"ok": True})
    assert query(path, "SELECT origin, action, target, ok FROM operator_actions") == [
        ("control", "ack", "*", 1)
    ]
    archive.close()


# -- telemetry -----------------------------------------------------------------


def test_telemetry_to_dev_full_keeps_a_bounded_backlog_and_recovers(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    _, results, _ = run_ticks("nominal", 30.0)
    wall = FakeWall()
    guard = OutputGuard("telemetry", clock=wall)
    tel = TelemetryWriter("/dev/full", rate_hz=1.0, guard=guard, max_backlog_bytes=4000)
    for r in results:
        tel.record_tick(r)  # never raises
        wall.t += 1.0
    assert guard.status is OutputStatus.FAILING and "No space left" in guard.error
    assert 0 < tel._backlog_bytes <= 4000 and tel.lines_dropped > 0
    tel._path = tmp_path / "t.jsonl"  # space returns (another device)
    wall.t += 31.0
    tel.record_loop(99.0, _Health())
    assert guard.status is OutputStatus.OK and tel.backlog_lines == 0
    tel.close()
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert lines[0] == {"type": "output", "output": "telemetry", "lines_dropped": tel.lines_dropped}
    assert lines[-1]["type"] == "loop"


class _Health:
    def to_json_dict(self) -> dict:
        return {"ticks": 1}


def test_telemetry_lines_reach_the_file_at_once(tmp_path):
    """No buffering: a reader (or a SIGKILL) sees every line as soon as it is written."""
    path = tmp_path / "t.jsonl"
    tel = TelemetryWriter(path, rate_hz=0.1)
    tel.record_operator_action(5.0, "control", "ack", "*", True, {"ok": True})
    tel.record_link_event(6.0, "bus0", "CONNECTED")
    got = [json.loads(x) for x in path.read_text().splitlines()]
    assert [g["type"] for g in got] == ["operator", "link"]
    assert got[0]["action"] == "ack" and got[0]["ok"] is True
    tel.close()


def test_telemetry_ends_a_cut_line_before_writing_again(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"type": "estimate", "t_s": 1')  # cut by a full disk
    tel = TelemetryWriter(path)
    tel.record_link_event(2.0, "bus0", "CONNECTED")
    tel.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "link" and len(lines) == 2


# -- capture -----------------------------------------------------------------------


def test_capture_full_disk_at_close_does_not_raise(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    cap = RotatingCapture(tmp_path / "c" / "bus0", max_bytes=1 << 20)
    cap.write(b"x" * 100)
    cap.flush()
    cap._fh.close()
    cap._fh = open("/dev/full", "wb")  # noqa: SIM115 - the disk fills under the open file
    cap.write(b"y" * 100)  # buffered by the file object: fails only on flush
    cap.close()  # no OSError
    assert cap.guard.status is OutputStatus.FAILING and "No space left" in cap.guard.error
    assert cap.bytes_dropped == 100


def test_capture_holds_at_most_its_buffer_and_recovers(tmp_path, monkeypatch):
    import drivers.capture as capture_mod

    wall = FakeWall()
    guard = OutputGuard("capture:bus0", clock=wall)
    prefix = tmp_path / "c" / "bus0"
    cap = RotatingCapture(prefix, max_bytes=10_000, buffer_bytes=1000, guard=guard)
    cap.write(b"a" * 10)
    cap.flush()
    cap._fh.close()
    cap._fh = None  # the next chunk opens a new file: the disk is full by then
    disk = {"full": True}

    def no_space(*args, **kwargs):
        if disk["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(*args, **kwargs)

    monkeypatch.setattr(capture_mod, "open", no_space, raising=False)
    for _ in range(30):
        cap.write(b"b" * 100)  # never raises
        wall.t += 0.5
    assert guard.status is OutputStatus.FAILING and "No space left" in guard.error
    assert cap._held_bytes == 1000 and cap.bytes_dropped == 30 * 100 - 1000
    disk["full"] = False
    wall.t += 31.0
    cap.write(b"c" * 10)  # held first: the bound drops one more chunk of b
    assert guard.status is OutputStatus.OK and cap._held_bytes == 0
    cap.close()
    assert read_capture(prefix) == b"a" * 10 + b"b" * 900 + b"c" * 10


# -- the monitor app ----------------------------------------------------------------


def _app(tmp_path: Path, **outputs) -> MonitorApp:
    scenario = load_scenario("rapid-depress")
    data = monitor_config(scenario, {"bus0": "socket://127.0.0.1:9"}, tmp_path / "out")
    data["outputs"].update(outputs)
    cfg = write_toml(tmp_path / "monitor.toml", data)
    # ten times real time: the outputs' commits and retries run on wall time
    return MonitorApp(load_runtime_config(cfg), clock=ScaledClock(10.0))


def _events(app: MonitorApp, for_s: float) -> list:
    """The OUTPUT_FAILED events of ``for_s`` more clock seconds of the loop."""
    got = []
    app._extra_on_tick = lambda r: got.extend(r.events)
    app.run(until_s=app.clock.now_ns() / 1e9 + for_s)
    return [e for e in got if e.kind is AlarmKind.OUTPUT_FAILED]


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_app_keeps_ticking_through_a_full_archive(tmp_path, flaky_sqlite):
    app = _app(tmp_path)
    try:
        assert _events(app, 3.0) == []
        flaky_sqlite.full = True
        evs = _events(app, 7.0)
        assert app.loop.health().ticks >= 9  # the loop went on
        assert [(e.source, e.transition) for e in evs] == [("archive", Transition.RAISED)]
        assert "disk is full" in evs[0].message or "unable to open" in evs[0].message
        snap = app.core.snapshot()
        assert "archive:OUTPUT_FAILED" in [a["key"] for a in snap["active_alarms"]]
        flaky_sqlite.full = False
        evs = _events(app, 15.0)  # 1.5 s of wall time: the first retry is 1 s after the failure
        assert [(e.source, e.transition) for e in evs] == [("archive", Transition.RETURN_TO_NORMAL)]
    finally:
        app.close()
    db = tmp_path / "out" / "archive.sqlite"
    t = [r[0] for r in query(db, "SELECT DISTINCT t_s FROM estimates ORDER BY t_s")]
    # every second's estimates: buffered while full, then written
    assert t[0] <= 1.0 and t[-1] >= 24.0 and len(t) >= 24
    kinds = query(db, "SELECT source, transition FROM events WHERE kind='OUTPUT_FAILED'")
    assert kinds == [("archive", "RAISED"), ("archive", "RETURN_TO_NORMAL")]


@pytest.mark.timeout(30)
def test_app_starts_with_unopenable_outputs(tmp_path, capsys):
    """An archive that cannot be created and a telemetry file that cannot be opened:
    the monitor runs, and says so with two advisories (before: exit 2)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    app = _app(
        tmp_path,
        archive=str(blocker / "archive.sqlite"),
        telemetry=str(blocker / "t.jsonl"),
    )
    try:
        evs = _events(app, 5.0)
        assert app.loop.health().ticks >= 4
    finally:
        app.close()
    assert sorted((e.source, e.transition) for e in evs) == [
        ("archive", Transition.RAISED),
        ("telemetry", Transition.RAISED),
    ]
    err = capsys.readouterr().err
    assert "output archive failed" in err and "monitoring continues" in err


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_monitor_command_with_telemetry_on_dev_full(tmp_path):
    """``monitor --telemetry /dev/full``: runs to --duration, exit 0, says so (before:
    the loop died within 2 s)."""
    scenario = load_scenario("rapid-depress")
    data = monitor_config(scenario, {"bus0": "socket://127.0.0.1:9"}, tmp_path / "out")
    cfg = write_toml(tmp_path / "monitor.toml", data)
    proc = subprocess.run(
        [*CLI, "monitor", "--config", cfg, "--duration", "3", "--no-display"]
        + ["--telemetry", "/dev/full"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "output telemetry failed ([Errno 28] No space left on device)" in proc.stderr
    rows = query(tmp_path / "out" / "archive.sqlite", "SELECT source, kind FROM events")
    assert ("telemetry", "OUTPUT_FAILED") in rows


# -- a real full disk: a tiny tmpfs --------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 MiB tmpfs at ``tmp_path/disk`` (root only; skipped where mount is refused)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)


@pytest.mark.slow  # 5 s of real time
@pytest.mark.timeout(60)
def test_a_real_full_disk_raises_advisories_and_recovers(tmp_path, tiny_disk):
    app = _app(
        tmp_path,
        directory=str(tiny_disk),
        telemetry="t.jsonl",
        telemetry_rate_hz=1.0,
    )
    try:
        assert _events(app, 3.0) == []
        _fill(tiny_disk / "filler")
        evs = _events(app, 40.0)
        assert app.loop.health().ticks >= 40
        assert {(e.source, e.transition) for e in evs} == {
            ("telemetry", Transition.RAISED),
            ("archive", Transition.RAISED),
        }
        (tiny_disk / "filler").unlink()
        for g in app.guards.values():
            g.retry_at_s = 0.0  # skip whatever backoff the failures built up
        evs = _events(app, 5.0)
        assert all(e.transition is Transition.RETURN_TO_NORMAL for e in evs)
        assert all(g.status is OutputStatus.OK for g in app.guards.values())
    finally:
        app.close()
    t = [r[0] for r in query(tiny_disk / "archive.sqlite", "SELECT DISTINCT t_s FROM estimates")]
    assert max(t) >= 47.0 and len(t) >= 47  # nothing lost: buffered, then written
    lines = (tiny_disk / "t.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "loop"


@pytest.mark.timeout(30)
def test_operator_actions_are_on_disk_when_applied(tmp_path):
    """Display keys and control commands that change the monitor: in the archive's
    ``operator_actions`` (committed) and the telemetry (written) as they are applied,
    before any reply; ``status`` is not an action."""
    app = _app(tmp_path, telemetry="t.jsonl")
    try:
        app.run(until_s=app.clock.now_ns() / 1e9 + 2.0)
        hatch = next(iter(app.core.hatch_open))
        app._keys("a1", 2.5)
        reply = app._operator({"cmd": "limits", "name": "nope"}, 2.6)
        app._operator({"cmd": "status"}, 2.7)
        db = tmp_path / "out" / "archive.sqlite"
        rows = query(db, "SELECT t_s, origin, action, target, ok FROM operator_actions")
        lines = (tmp_path / "out" / "t.jsonl").read_text().splitlines()
    finally:
        app.close()
    assert reply["ok"] is False
    assert rows == [
        (2.5, "keys", "ack", "*", 1),
        (2.5, "keys", "hatch", hatch, 1),
        (2.6, "control", "limits", "nope", 0),
    ]
    ops = [json.loads(x) for x in lines if '"operator"' in x]
    assert [(o["origin"], o["action"], o["ok"]) for o in ops] == [
        ("keys", "ack", True),
        ("keys", "hatch", True),
        ("control", "limits", False),
    ]
    assert app.core.hatch_open[hatch] is False


@pytest.mark.timeout(10)
def test_telemetry_to_a_named_pipe(tmp_path):
    """A FIFO cannot seek: it is written as before, no failure."""
    import threading

    fifo = tmp_path / "t.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    guard = OutputGuard("telemetry")
    tel = TelemetryWriter(fifo, guard=guard)
    tel.record_link_event(1.0, "bus0", "CONNECTED")
    tel.close()
    reader.join(5)
    assert guard.status is OutputStatus.OK
    assert json.loads(got[0])["kind"] == "CONNECTED"


def test_capture_whose_folder_cannot_be_made_at_start_recovers(tmp_path):
    wall = FakeWall()
    blocker = tmp_path / "capture"
    blocker.write_text("a file where the folder goes")
    guard = OutputGuard("capture:bus0", clock=wall)
    cap = RotatingCapture(blocker / "bus0", guard=guard)  # no exception
    assert guard.status is OutputStatus.FAILING
    cap.write(b"abc")
    assert cap._held_bytes == 3
    blocker.unlink()
    wall.t += 2.0
    cap.write(b"def")
    cap.close()
    assert guard.status is OutputStatus.OK
    assert read_capture(blocker / "bus0") == b"abcdef"
