"""Real boards: ``cabinwatch monitor`` against the emulator, publishing to a real Mosquitto.

Each test starts the emulator (a pty, real time), a private broker and one or
more ``cabinwatch monitor`` processes with a ``[station]`` table, and kills
them all by process group at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from common import station_wire as wire
from hil.scenario import load_scenario
from tests.station.mqtt_watch import Watch, kind, status
from tests.support.runtime_helpers import (
    CLI,
    EmulatorProcess,
    monitor_config,
    query,
    run_cli,
    write_toml,
)

pytestmark = [pytest.mark.slow]

SCENARIO = "nominal"
STATION = "iss"
#: This checkout: the boards run its code whatever the installed package points at.
ROOT = Path(__file__).resolve().parents[2]


class Board:
    """One ``cabinwatch monitor`` with ``[station]``, in its own process group."""

    def __init__(self, work: Path, urls: dict[str, str], broker_url: str, node: str = "b1"):
        self.work = work
        self.out = work / "out"
        data = monitor_config(load_scenario(SCENARIO), urls, self.out, control_socket="ctl.sock")
        data["health"]["stale_periods"] = 10.0  # a loaded machine: samples can be late
        data["outputs"]["telemetry_rate_hz"] = 2.0
        data["station"] = {"url": broker_url, "station": STATION, "node": node}
        self.data = data
        self.config = write_toml(work / "monitor.toml", data)
        self.proc: subprocess.Popen | None = None

    def start(self, *args: str) -> Board:
        self.proc = subprocess.Popen(
            [*CLI, "monitor", "--config", str(self.config), "--no-display", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.work,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> float:
        """Signal the process group; the monotonic time it was sent."""
        t = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        return t

    def wait(self, timeout: float = 30) -> str:
        """Its exit; its stderr."""
        _, err = self.proc.communicate(timeout=timeout)
        return err

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
            self.proc.communicate(timeout=10)


@pytest.fixture
def emulator():
    emu = EmulatorProcess(SCENARIO, "--pty", "--speed", "1", "--duration", "600")
    try:
        yield emu, emu.endpoints(load_scenario(SCENARIO).link_names)
    finally:
        emu.kill()


@pytest.fixture
def boards():
    made: list[Board] = []

    def make(*args, **kw) -> Board:
        b = Board(*args, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def _strict(payload: bytes) -> dict:
    def bad(name):
        raise AssertionError(f"non-JSON number {name} on the wire")

    return json.loads(payload.decode("utf-8"), parse_constant=bad)


@pytest.mark.timeout(90)
def test_board_birth_schema_and_will_on_sigkill(tmp_path, broker, emulator, boards):
    """A real board: retained birth (session 1, version, volumes, hatches), estimates of
    every volume and hatch states, all strict JSON of schema 1 with the content type;
    SIGKILL: its Will (offline, session 1) within a second; restarted: session 2."""
    _, urls = emulator
    watch = Watch(broker.port)
    try:
        board = boards(tmp_path, urls, broker.url).start()
        birth = watch.wait(status("b1", online=True), 30).msg
        scenario = load_scenario(SCENARIO)
        names = {v.name for v in scenario.volumes}
        assert birth.session == 1 and birth.version
        assert set(birth.volumes) == names and len(birth.hatches) == len(scenario.hatches)
        for v in names:
            watch.wait(lambda r, v=v: r.topic.endswith(f"/volume/{v}/estimate"), 20)
        watch.wait(kind(wire.TopicKind.HATCH), 5)
        time.sleep(1.0)  # a few more estimates
        seen = watch.matching(lambda r: True)
        for r in seen:
            d = _strict(r.payload)
            assert d["schema"] == wire.SCHEMA_VERSION, r.topic
            assert r.content_type == "application/json", r.topic
            r.msg  # decodes as its topic's message  # noqa: B018
        estimates = [r for r in seen if r.kind is wire.TopicKind.ESTIMATE]
        assert all(r.expiry_s == 3 and r.qos == 0 and not r.retain for r in estimates)
        e = watch.wait(
            lambda r: r.kind is wire.TopicKind.ESTIMATE and r.msg.pressure_pa is not None, 30
        ).msg
        assert e.session == 1 and e.node == "b1" and e.healthy_sensors >= 1
        assert 90_000 < e.pressure_pa < 110_000 and e.group_volume_m3 > 0
        assert abs(e.t_unix - time.time()) < 5
        # SIGKILL: the kernel closes the socket, the broker sends the Will at once
        killed = board.kill()
        will = watch.wait(status("b1", online=False), 5)
        assert will.msg.session == 1
        will_s = will.t_mono - killed
        assert will_s < 1.0, will_s
        board.wait()
        again = boards(tmp_path, urls, broker.url).start()
        assert watch.wait(status("b1", online=True, session=2), 30).msg.online
        again.kill(signal.SIGTERM)
        err = again.wait()
        assert "Traceback" not in err
        # a clean stop says so itself: offline, session 2 (retained)
        watch.wait(status("b1", online=False, session=2), 5)
    finally:
        watch.close()
    print(f"\nWill {will_s:.3f} s after SIGKILL")


@pytest.mark.timeout(120)
def test_broker_restart_mid_run_leaves_the_board_unaffected(
    tmp_path, broker_factory, emulator, boards
):
    """The broker crashes (SIGKILL) for 2 s and comes back empty: the board's loop and
    archive carry on without a gap, the failure is the advisory OUTPUT_FAILED on
    ``station`` (one stderr line), and the board reconnects and republishes its birth,
    its alarm states and its hatches."""
    _, urls = emulator
    b = broker_factory(persistence=False)
    watch = Watch(b.port)
    board = boards(tmp_path, urls, b.url).start("--duration", "14")
    try:
        watch.wait(status("b1", online=True, session=1), 30)
        watch.wait(kind(wire.TopicKind.ESTIMATE), 20)
    finally:
        watch.close()
    time.sleep(2.0)
    b.kill()
    time.sleep(2.0)
    b.start()
    back = time.monotonic()
    again = Watch(b.port, client_id="after")
    try:
        r = again.wait(status("b1", online=True), 15)
        birth_s = r.t_mono - back
        for k in (wire.TopicKind.HATCH, wire.TopicKind.ALARM, wire.TopicKind.ESTIMATE):
            again.wait(kind(k), 10)
    finally:
        again.close()
    err = board.wait(60)
    assert board.proc.returncode == 0, err
    assert "output station failed" in err and "output station written again" in err
    assert "Traceback" not in err
    db = board.out / "archive.sqlite"
    rows = query(db, "SELECT volume, t_s FROM estimates ORDER BY volume, t_s")
    by_volume: dict[str, list[float]] = {}
    for v, t in rows:
        by_volume.setdefault(v, []).append(t)
    for v, ts in by_volume.items():
        gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
        assert len(ts) >= 10 and max(gaps) < 1.6, (v, max(gaps), len(ts))
    events = query(db, "SELECT source, kind, transition FROM events WHERE kind='OUTPUT_FAILED'")
    assert ("station", "OUTPUT_FAILED", "RAISED") in events
    meta = dict(query(db, "SELECT key, value FROM meta"))
    health = json.loads(meta["station_health"])
    loop = json.loads(meta["loop_health"])
    assert health["connects"] >= 2 and health["session"] == 1
    assert loop["overruns"] <= 2, loop
    print(f"\nbirth {birth_s:.2f} s after the broker came back; loop {loop}")
    assert birth_s < 5.0


@pytest.mark.timeout(90)
def test_sessions_grow_and_operator_hatch_is_published(tmp_path, broker, emulator, boards):
    """Three clean starts of one board: sessions 1, 2, 3 (the file in the outputs
    directory); an operator's hatch command is published retained with source operator."""
    _, urls = emulator
    watch = Watch(broker.port)
    try:
        for n in (1, 2):
            board = boards(tmp_path, urls, broker.url).start("--duration", "1")
            watch.wait(status("b1", online=True, session=n), 30)
            assert board.wait() is not None and board.proc.returncode == 0
            watch.wait(status("b1", online=False, session=n), 5)
        board = boards(tmp_path, urls, broker.url).start()
        watch.wait(status("b1", online=True, session=3), 30)
        sock = board.out / "ctl.sock"
        r = run_cli("ctl", "--socket", sock, "hatch", "lab-node1", "closed", timeout=30)
        assert r.returncode == 0, r.stderr
        h = watch.wait(
            lambda r: r.kind is wire.TopicKind.HATCH and r.msg.source == "operator", 10
        ).msg
    finally:
        watch.close()
    assert (h.hatch, h.position, h.node) == ("lab-node1", "closed", "b1")
    assert (board.out / "station-session").read_text().strip() == "3"
    assert math.isfinite(h.t_unix)
