"""``cabinwatch monitor`` as a service: SIGTERM stops it cleanly, with no device attached."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

from firmware_host.cli import main
from firmware_host.runtime.archive import Archive
from hil.scenario import load_scenario
from tests.support.runtime_helpers import CLI, monitor_config, run_cli, write_toml


def _closed_port() -> int:
    """A 127.0.0.1 port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_monitor_sigterm_without_a_device(tmp_path):
    """The port never opens: the monitor keeps retrying, answers ``ctl``, and on SIGTERM
    finishes its tick, writes its health to the archive, removes its socket and exits 0."""
    scenario = load_scenario("rapid-depress")
    url = f"socket://127.0.0.1:{_closed_port()}"
    out = tmp_path / "out"
    cfg = write_toml(
        tmp_path / "monitor.toml",
        monitor_config(scenario, {"bus0": url}, out, speed=10, control_socket="ctl.sock"),
    )
    proc = subprocess.Popen(
        [*CLI, "monitor", "--config", str(cfg), "--speed", "10", "--no-display"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        sock = out / "ctl.sock"
        deadline = time.monotonic() + 20
        while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists(), proc.stderr.read() if proc.poll() is not None else "no socket"
        time.sleep(1.0)
        status = run_cli("ctl", "--socket", sock, "status", timeout=30)
        assert status.returncode == 0, status.stderr
        snap = json.loads(status.stdout)
        assert snap["ticks"] >= 1 and snap["samples"] == 0
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("monitor: {")
    assert not sock.exists()
    db = sqlite3.connect(str(out / "archive.sqlite"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        meta = dict(db.execute("SELECT key, value FROM meta"))
        n_est = db.execute("SELECT count(*) FROM estimates").fetchone()[0]
        links = db.execute("SELECT kind FROM link_events").fetchall()
    finally:
        db.close()
    loop = json.loads(meta["loop_health"])
    assert loop["ticks"] >= 1 and n_est >= 3
    health = json.loads(meta["link_health"])["bus0"]
    assert health["connects"] == 0 and health["open_failures"] >= 1
    assert health["samples_in"] == 0
    assert ("CONNECTED",) not in links
    assert json.loads(meta["links"]) == {"bus0": url}


def test_plot_of_an_archive_without_estimates(tmp_path, capsys):
    path = tmp_path / "empty.sqlite"
    Archive(path).close()
    assert main(["plot", str(path), "--out", str(tmp_path / "x.png")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"cabinwatch plot: {path}: archive holds no estimates to plot"
    ]
    assert not (tmp_path / "x.png").exists()


class FakeWall:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_sd_notify_ready_watchdog_stopping(tmp_path):
    """systemd's datagrams: READY, WATCHDOG at half WATCHDOG_USEC and only when healthy."""
    from firmware_host.runtime.sdnotify import Notifier

    path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(path))
    srv.settimeout(0.2)
    wall = FakeWall()
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"}, wall_clock=wall)

    def received() -> list[str]:
        got = []
        while True:
            try:
                got.append(srv.recv(4096).decode())
            except TimeoutError:
                return got

    try:
        assert n.enabled and n.watchdog_s == 4.0
        n.ready("monitoring 1 link(s)")
        assert received() == ["READY=1\nSTATUS=monitoring 1 link(s)"]
        n.watchdog(True)
        n.watchdog(True)  # not due again yet
        wall.t += 1.9
        n.watchdog(True)
        assert received() == ["WATCHDOG=1"]
        wall.t += 0.2  # 2.1 s since the stroke: due
        n.watchdog(False)  # but unhealthy: no stroke, systemd will restart us
        assert received() == []
        n.watchdog(True)
        n.stopping()
        assert received() == ["WATCHDOG=1", "STOPPING=1"]
        n.close()
        assert not n.enabled and n.notify("X=1") is False
    finally:
        srv.close()
    # without systemd: a no-op
    quiet = Notifier({})
    assert not quiet.enabled and quiet.watchdog_s is None
    quiet.ready()
    quiet.watchdog(True)
    quiet.close()
