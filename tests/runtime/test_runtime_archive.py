"""The SQLite archive: a round trip through a real monitor, and what survives a kill."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from common.errors import InputFileError
from drivers.frames import IdentityFrame
from firmware_host.runtime.archive import SENSOR_PERIOD_S, Archive, open_archive
from harness.derive import config_from_scenario
from harness.simulate import run_simulation
from hil.scenario import load_scenario
from tests.support.runtime_helpers import run_ticks

SIM_S = 200.0


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """rapid-depress for 200 simulated s through the real decoder, loop and core."""
    path = tmp_path_factory.mktemp("archive") / "run.sqlite"
    scenario = load_scenario("rapid-depress")
    config = config_from_scenario(scenario)
    archive = Archive(path)
    archive.write_meta("scenario", scenario.name)
    archive.write_meta("links", {"bus0": "socket://127.0.0.1:1"})
    idents = [
        IdentityFrame(
            addr=a,
            seq=0,
            flags=0,
            model="PTB330-EMU",
            serial=100000 + a,
            firmware=0x0102,
            range_min_pa=50000.0,
            range_max_pa=110000.0,
            rate_mhz=10000,
        )
        for a in (1, 2, 3, 4, 5)
    ]
    for f in idents:
        archive.record_identity(0.5, "bus0", f)
    archive.record_link_event(0.25, "bus0", "CONNECTED", "socket://127.0.0.1:1")
    archive.record_link_event(150.0, "bus0", "DISCONNECTED", "socket disconnected")
    # journal mode while the writer is open
    probe = sqlite3.connect(str(path))
    journal = probe.execute("PRAGMA journal_mode").fetchone()[0]
    probe.close()
    result = run_simulation(scenario, config, duration_s=SIM_S, on_tick=archive.record_tick)
    archive.close()
    return path, result, idents, journal


def _same(stored, value) -> bool:
    """A stored REAL against the core's float: NULL for a non-finite one."""
    if not math.isfinite(value):
        return stored is None
    return stored == pytest.approx(value)


def _rows(path, sql, *params):
    db = open_archive(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def test_archive_is_wal(simulated):
    path, _, _, journal = simulated
    assert journal == "wal"
    assert _rows(path, "PRAGMA journal_mode")[0][0] == "wal"
    assert _rows(path, "PRAGMA integrity_check")[0][0] == "ok"


def test_estimates_once_per_second_of_t_s(simulated):
    path, result, _, _ = simulated
    volumes = [v.name for v in result.config.volumes]
    ticks = len(result.trace.t_s)
    assert ticks >= SIM_S - 1
    for vol in volumes:
        ts = [
            r[0]
            for r in _rows(path, "SELECT t_s FROM estimates WHERE volume=? ORDER BY rowid", vol)
        ]
        seconds = [math.floor(t) for t in ts]
        assert len(seconds) == len(set(seconds)), f"{vol}: two rows in one second"
        assert seconds == sorted(seconds)
        assert len(ts) == ticks, (vol, len(ts), ticks)
        assert ts[-1] == pytest.approx(result.trace.t_s[-1])
    # the values are the core's: compare with the simulation's own per-second trace
    j = result.trace.volumes.index("node3")
    est = _rows(
        path,
        "SELECT t_s, pressure_pa, mass_rate_kg_day, n_healthy, regime "
        "FROM estimates WHERE volume='node3' ORDER BY t_s",
    )
    for (t, p, m, n, regime), tt, pp, mm, rr in zip(
        est,
        result.trace.t_s,
        result.trace.pressure_pa,
        result.trace.mass_rate_kg_day,
        result.trace.regime,
        strict=True,
    ):
        assert t == pytest.approx(tt)
        assert _same(p, pp[j]) and _same(m, mm[j]) and regime == rr[j]
        if t > 60:
            assert n == 2
    # the leak shows: node3 at 200 s is well below its start and losing mass fast
    pressures = [r[1] for r in est if r[1] is not None]
    assert pressures[-1] < pressures[0] - 300
    assert est[-1][2] > 1000
    # non-finite numbers are stored as NULL, never NaN
    assert (
        _rows(
            path,
            "SELECT count(*) FROM estimates WHERE pressure_pa != pressure_pa "
            "OR hole_mm != hole_mm OR reserve_s_linear != reserve_s_linear",
        )[0][0]
        == 0
    )


def test_every_event_is_archived(simulated):
    path, result, _, _ = simulated
    got = _rows(
        path,
        "SELECT t_s, source, level, kind, transition, value, unit, message, "
        "replayed FROM events ORDER BY rowid",
    )
    assert len(result.events) > 0
    assert len(got) == len(result.events)
    for row, ev in zip(got, result.events, strict=True):
        t, source, level, kind, transition, value, unit, message, replayed = row
        assert (t, source, level, kind, transition) == (
            ev.t_s,
            ev.source,
            ev.level.name,
            ev.kind.name,
            ev.transition.name,
        )
        assert unit == ev.unit and message == ev.message and replayed == 0
        if math.isfinite(ev.value):
            assert value == pytest.approx(ev.value)
    assert any(r[1] == "node3" and r[2] == "EMERGENCY" and r[4] == "RAISED" for r in got)


def test_sensor_snapshots_once_a_minute(simulated):
    path, result, _, _ = simulated
    rows = _rows(path, "SELECT t_s, sensor_id, health FROM sensors ORDER BY t_s")
    times = sorted({r[0] for r in rows})
    assert len(times) == math.ceil(SIM_S / SENSOR_PERIOD_S)
    assert all(b - a >= SENSOR_PERIOD_S for a, b in zip(times, times[1:], strict=False))
    for t in times:
        assert sorted(r[1] for r in rows if r[0] == t) == [f"bus0:{a}" for a in range(1, 6)]


def test_identities_link_events_and_meta(simulated):
    path, _, idents, _ = simulated
    rows = _rows(
        path,
        "SELECT t_s, link, addr, model, serial, firmware, range_min_pa, "
        "range_max_pa, rate_mhz FROM identities ORDER BY addr",
    )
    assert rows == [
        (0.5, "bus0", f.addr, "PTB330-EMU", f.serial, "1.2", 50000.0, 110000.0, 10000)
        for f in idents
    ]
    assert _rows(path, "SELECT t_s, link, kind, detail FROM link_events ORDER BY t_s") == [
        (0.25, "bus0", "CONNECTED", "socket://127.0.0.1:1"),
        (150.0, "bus0", "DISCONNECTED", "socket disconnected"),
    ]
    meta = dict(_rows(path, "SELECT key, value FROM meta"))
    assert meta["scenario"] == "rapid-depress"  # a string is stored as is
    assert json.loads(meta["links"]) == {"bus0": "socket://127.0.0.1:1"}


def test_estimates_once_per_second_at_a_10_hz_loop(tmp_path):
    """Ten ticks a second, one estimate row per volume per second; events of every tick."""
    core, results, config = run_ticks("rapid-depress", 12.0, loop_rate_hz=10.0)
    assert len(results) >= 115
    path = tmp_path / "fast.sqlite"
    with Archive(path) as archive:
        for r in results:
            archive.record_tick(r)
    seconds = sorted({math.floor(r.t_s) for r in results})
    for vol in (v.name for v in config.volumes):
        ts = [
            t for (t,) in _rows(path, "SELECT t_s FROM estimates WHERE volume=? ORDER BY t_s", vol)
        ]
        assert [math.floor(t) for t in ts] == seconds
        assert ts[0] == pytest.approx(results[0].t_s)  # the first tick is archived
    n_events = sum(len(r.events) for r in results)
    assert _rows(path, "SELECT count(*) FROM events")[0][0] == n_events


def test_open_archive_missing_file(tmp_path):
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(InputFileError) as exc:
        open_archive(missing)
    msg = str(exc.value)
    assert str(missing) in msg and "\n" not in msg


@pytest.mark.parametrize("content", [b"this is not a database\n" * 100, b""])
def test_open_archive_not_an_archive(tmp_path, content):
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_bytes(content)
    with pytest.raises(InputFileError) as exc:
        open_archive(bogus)
    msg = str(exc.value)
    assert str(bogus) in msg and "not a cabinwatch archive" in msg and "\n" not in msg


def test_open_archive_other_sqlite_file(tmp_path):
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(str(other))
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(InputFileError, match="not a cabinwatch archive"):
        open_archive(other)


# -- durability ----------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from firmware_host.alarms import AlarmEvent, AlarmKind, AlarmLevel, Transition
    from firmware_host.runtime.archive import Archive

    class Tick:
        def __init__(self, t, ev):
            self.t_s, self.events, self.volumes, self.sensors = t, (ev,), (), ()

    path, mode = sys.argv[1], sys.argv[2]
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    archive = Archive(path, commit_interval_s=1.0)
    print("ready", flush=True)
    n = 0
    while not stop:
        t = time.time()
        ev = AlarmEvent(t, "cabin", AlarmLevel.ADVISORY, AlarmKind.SENSOR_STALE,
                        Transition.RAISED, 1.0, 2.0, "s", "test")
        if mode == "tick":
            archive.record_tick(Tick(t, ev))
        else:
            archive.record_event(ev)
        n += 1
    archive.close()
    print(n, flush=True)
    """
)


def _start_writer(path, mode):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def _reap(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


@pytest.mark.slow
@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["event", "tick"])
def test_sigkill_loses_at_most_the_last_second(tmp_path, mode):
    """record_event() and record_tick() both promise a commit at least once a second."""
    path = tmp_path / "kill.sqlite"
    proc = _start_writer(path, mode)
    try:
        time.sleep(2.5)
        killed_at = time.time()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        _reap(proc)
    assert proc.returncode == -signal.SIGKILL
    db = sqlite3.connect(str(path))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n, last = db.execute("SELECT count(*), max(t_s) FROM events").fetchone()
    finally:
        db.close()
    assert n > 0, "nothing committed in 2.5 s of writing"
    assert last <= killed_at
    assert killed_at - last <= 1.0 + 0.3, f"lost {killed_at - last:.2f} s of events"


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_sigterm_and_close_keep_everything(tmp_path):
    path = tmp_path / "term.sqlite"
    proc = _start_writer(path, "event")
    try:
        time.sleep(1.5)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        _reap(proc)
    assert proc.returncode == 0, err
    written = int(out.strip())
    db = sqlite3.connect(str(path))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == written
    finally:
        db.close()
    assert written > 100
    # close() checkpointed: nothing is left waiting in the write-ahead log
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
