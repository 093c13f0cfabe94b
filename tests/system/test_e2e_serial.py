"""End to end: ``cabinwatch emulate`` in one process, ``cabinwatch monitor`` in another.

The monitor reaches the emulator exactly as it reaches hardware: through pyserial on a
pseudo-terminal or a ``socket://`` URL.  Both run sped up by the same factor; the
monitor's sensors' stale threshold is raised for it as ``cabinwatch demo`` does.  Every
process is killed by process group at the end, every file is in ``tmp_path``, and TCP
binds only 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from hil.scenario import load_scenario
from tests.support.runtime_helpers import (
    CLI,
    EmulatorProcess,
    assert_one_line_error,
    monitor_config,
    query,
    run_cli,
    write_toml,
)

pytestmark = pytest.mark.slow  # real time


def _run(
    tmp_path, scenario_name: str, where: list[str], speed: float, duration: float, during=None
):
    """Emulator at ``speed``, then the monitor for ``duration`` of its (sped-up) seconds.

    ``during(socket_path)``, if given, runs once the monitor's control socket is up.
    """
    scenario = load_scenario(scenario_name)
    emu = EmulatorProcess(scenario_name, *where, "--speed", speed, "--duration", "3000")
    monitor = None
    try:
        urls = emu.endpoints(scenario.link_names)
        out = tmp_path / "out"
        cfg = write_toml(
            tmp_path / "monitor.toml",
            monitor_config(
                scenario, urls, out, speed=speed, control_socket="ctl.sock" if during else ""
            ),
        )
        monitor = subprocess.Popen(
            [
                *CLI,
                "monitor",
                "--config",
                str(cfg),
                "--speed",
                str(speed),
                "--duration",
                str(duration),
                "--no-display",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            start_new_session=True,
        )
        if during is not None:
            sock = out / "ctl.sock"
            deadline = time.monotonic() + 20
            while not sock.exists() and monitor.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sock.exists(), "the monitor's control socket never appeared"
            during(sock)
        stdout, stderr = monitor.communicate(timeout=80)
        lines = list(emu.lines)
        alive = emu.proc.poll() is None
    finally:
        if monitor is not None and monitor.poll() is None:
            os.killpg(monitor.pid, signal.SIGKILL)
            monitor.communicate(timeout=10)
        emu.kill()
    assert alive, "the emulator stopped before the monitor did"
    assert monitor.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = stderr.splitlines()[-1]
    assert summary.startswith("monitor: ")
    loop = json.loads(summary.removeprefix("monitor: "))["loop"]
    assert loop["ticks"] > 0
    # it ran to the end: the last estimates are from its last seconds
    t0, t1 = query(out / "archive.sqlite", "SELECT min(t_s), max(t_s) FROM estimates")[0]
    assert t1 - t0 >= duration - 3.0, (t0, t1, loop)
    if during is not None:
        assert not (out / "ctl.sock").exists()  # removed on a clean stop
    return urls, out, lines, loop


def _check_rapid_depress(out, link: str = "bus0"):
    db = out / "archive.sqlite"
    # samples flowed: estimates with pressures, the five transducers identified
    n, n_p = query(db, "SELECT count(*), count(pressure_pa) FROM estimates")[0]
    assert n > 0 and n_p > 0
    assert (
        query(db, "SELECT count(DISTINCT volume) FROM estimates WHERE pressure_pa IS NOT NULL")[0][
            0
        ]
        == 3
    )
    idents = query(db, "SELECT link, addr, model, serial, rate_mhz FROM identities")
    assert {(r[0], r[1]) for r in idents} == {(link, a) for a in range(1, 6)}
    assert all(r[2] and r[3] > 0 and r[4] == 10_000 for r in idents)
    assert query(db, "SELECT kind FROM link_events WHERE link=? ORDER BY t_s LIMIT 1", link) == [
        ("CONNECTED",)
    ]
    # the leak was detected on node3
    alarms = query(
        db,
        "SELECT t_s, level, kind FROM events WHERE source='node3' "
        "AND transition='RAISED' AND level IN ('CAUTION', 'EMERGENCY')",
    )
    assert alarms, query(db, "SELECT t_s, source, level, kind, transition FROM events")
    meta = dict(query(db, "SELECT key, value FROM meta"))
    assert "[links.bus0]" in meta["config_toml"]
    health = json.loads(meta["link_health"])[link]
    assert health["samples_in"] > 0 and health["connects"] == 1
    # the raw capture decodes
    files = sorted((out / "capture").glob(f"{link}.*.bin"))
    assert files and files[0].stat().st_size > 0
    proc = run_cli("decode", files[0], "--quiet", "--stats", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    stats = json.loads(proc.stderr.splitlines()[-1])
    assert stats["frames"]["SAMPLE"] > 1000
    assert stats["frames"]["IDENTITY"] >= 5 and stats["frames"]["ACK"] >= 15
    assert stats["crc_errors"] == 0
    return health


@pytest.mark.timeout(90)
def test_monitor_over_a_pseudo_terminal(tmp_path):
    """Also: an operator talks to the running monitor with ``cabinwatch ctl``."""
    replies = {}

    def operator(sock):
        replies["status"] = run_cli("ctl", "--socket", sock, "status", timeout=30)
        replies["bad"] = run_cli("ctl", "--socket", sock, "hatch", "airlock", "open", timeout=30)

    urls, out, lines, _ = _run(
        tmp_path, "rapid-depress", ["--pty"], speed=10, duration=150, during=operator
    )
    assert urls["bus0"].startswith("/")
    _check_rapid_depress(out)
    status = replies["status"]
    assert status.returncode == 0, status.stderr
    snap = json.loads(status.stdout)
    assert snap["hatches"] == {"node1-node3": True, "node1-fgb": True}
    assert snap["limit_set"] == "flight" and snap["ticks"] >= 1
    assert_one_line_error(replies["bad"], "unknown hatch 'airlock'")


@pytest.mark.timeout(90)
def test_monitor_over_tcp(tmp_path):
    urls, out, lines, _ = _run(
        tmp_path, "rapid-depress", ["--tcp", "127.0.0.1:0"], speed=10, duration=150
    )
    assert urls["bus0"].startswith("socket://127.0.0.1:")
    _check_rapid_depress(out)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("where", [["--tcp", "127.0.0.1:0"], ["--pty"]], ids=["tcp", "pty"])
def test_monitor_survives_the_port_going_away(tmp_path, where):
    """link-faults takes link usos down at 600 s for 20 s: the TCP endpoint drops the client
    and closes its listener, then listens again on the same port; the pty endpoint closes
    its pseudo-terminal and opens a new one behind the same alias."""
    speed = 60.0
    urls, out, lines, _ = _run(tmp_path, "link-faults", where, speed=speed, duration=680)
    assert any(ln.startswith("event=down link=usos t=600") for ln in lines), lines
    assert any(ln.startswith("event=up link=usos t=620") for ln in lines), lines
    db = out / "archive.sqlite"
    events = query(db, "SELECT t_s, kind FROM link_events WHERE link='usos' ORDER BY t_s")
    kinds = [k for _, k in events]
    assert kinds[0] == "CONNECTED"
    assert "DISCONNECTED" in kinds and "RECONNECTED" in kinds, events
    t_down = next(t for t, k in events if k == "DISCONNECTED")
    t_up = next(t for t, k in events if k == "RECONNECTED" and t > t_down)
    assert query(db, "SELECT kind FROM link_events WHERE link='rs'") == [("CONNECTED",)]
    # the transducers were set up again after the reconnect
    again = query(db, "SELECT DISTINCT addr FROM identities WHERE link='usos' AND t_s >= ?", t_up)
    assert sorted(a for (a,) in again) == [1, 2, 3]
    # samples came back: the lab's sensors recover and its estimates resume
    stale = query(
        db,
        "SELECT source, transition, t_s FROM events WHERE kind='SENSOR_STALE' "
        "AND source LIKE 'usos:%' ORDER BY t_s",
    )
    for addr in (1, 2, 3):
        mine = [(tr, t) for s, tr, t in stale if s == f"usos:{addr}"]
        assert [tr for tr, _ in mine][-1:] == ["RETURN_TO_NORMAL"], stale
    after = query(
        db,
        "SELECT count(*) FROM estimates WHERE volume='lab' AND t_s > ? "
        "AND pressure_pa IS NOT NULL AND n_healthy > 0",
        t_up,
    )[0][0]
    assert after >= 10, (t_up, query(db, "SELECT max(t_s) FROM estimates"))
    meta = dict(query(db, "SELECT key, value FROM meta"))
    health = json.loads(meta["link_health"])
    assert health["usos"]["reconnects"] >= 1 and health["usos"]["gaps"] >= 1
    assert health["rs"]["reconnects"] == 0
