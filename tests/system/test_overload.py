"""Overload: one link flooded (``emulate --speed max``), the other at real time.

The monitor must keep the quiet link's samples flowing, answer ``ctl status`` and
end within 2 s of SIGTERM (docs/runtime.md R16).  Two emulators on 127.0.0.1: the
``station`` link from one at real time, the ``soyuz`` link from one flat out (its
``station`` endpoint is drained by the test, so it never waits for that reader).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from firmware_host.runtime.control import send_command
from hil.scenario import load_scenario
from tests.support.runtime_helpers import CLI, EmulatorProcess, monitor_config, write_toml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCENARIO = "soyuz-ms09-2018"


def _drain(url: str, stop: threading.Event) -> None:
    """Read and discard a TCP endpoint until ``stop``: a reader that keeps up."""
    host, port = url.removeprefix("socket://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                if not s.recv(1 << 16):
                    return


def _status(sock) -> tuple[dict, float]:
    t0 = time.monotonic()
    reply = send_command(sock, {"cmd": "status"}, timeout_s=2.0)
    return reply, time.monotonic() - t0


def test_flooded_link_does_not_starve_the_other_and_sigterm_ends_it(tmp_path):
    scenario = load_scenario(SCENARIO)
    quiet = EmulatorProcess(SCENARIO, "--tcp", "127.0.0.1:0", "--speed", "1", "--duration", "3000")
    flood = EmulatorProcess(
        SCENARIO, "--tcp", "127.0.0.1:0", "--speed", "max", "--duration", "90000"
    )
    stop = threading.Event()
    monitor = None
    drainer = None
    try:
        q_urls = quiet.endpoints(scenario.link_names)
        f_urls = flood.endpoints(scenario.link_names)
        drainer = threading.Thread(target=_drain, args=(f_urls["station"], stop), daemon=True)
        drainer.start()
        out = tmp_path / "out"
        urls = {"station": q_urls["station"], "soyuz": f_urls["soyuz"]}
        cfg = write_toml(
            tmp_path / "monitor.toml",
            monitor_config(scenario, urls, out, control_socket="ctl.sock"),
        )
        monitor = subprocess.Popen(
            [*CLI, "monitor", "--config", str(cfg), "--no-display"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            start_new_session=True,
        )
        sock = out / "ctl.sock"
        deadline = time.monotonic() + 20
        while not sock.exists() and monitor.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists(), "the monitor's control socket never appeared"
        time.sleep(3.0)  # the flood builds up
        first, lat0 = _status(sock)
        latencies = [lat0]
        for _ in range(4):
            time.sleep(1.0)
            reply, lat = _status(sock)
            latencies.append(lat)
        assert reply["ok"], reply
        links0, links1 = first["status"]["links"], reply["status"]["links"]
        dt = 4.0
        station = links1["station"]["samples_in"] - links0["station"]["samples_in"]
        soyuz = links1["soyuz"]["samples_in"] - links0["soyuz"]["samples_in"]
        # the quiet link: 4 sensors at 10 Hz keep flowing into the core
        assert station >= 0.5 * 40 * dt, (station, links1["station"])
        # the flooded link really is flooded (far above its 2 x 10 Hz)
        assert soyuz > 50 * 20 * dt, (soyuz, links1["soyuz"])
        assert links1["soyuz"]["overflow_pauses"] > 0, links1["soyuz"]
        assert reply["status"]["samples"] > first["status"]["samples"]
        assert max(latencies) < 2.0, latencies

        t0 = time.monotonic()
        os.killpg(monitor.pid, signal.SIGTERM)
        _, stderr = monitor.communicate(timeout=30)
        exit_s = time.monotonic() - t0
    finally:
        stop.set()
        if monitor is not None and monitor.poll() is None:
            os.killpg(monitor.pid, signal.SIGKILL)
            monitor.communicate(timeout=10)
        quiet.kill()
        flood.kill()
        if drainer is not None:
            drainer.join(5)
    loop = json.loads(stderr.splitlines()[-1].removeprefix("monitor: "))["loop"]
    print(
        f"overload: status latency max {max(latencies):.3f} s, worst tick "
        f"{loop['worst_tick_s']:.3f} s, SIGTERM to exit {exit_s:.2f} s"
    )
    assert monitor.returncode == 0, stderr
    assert exit_s < 2.0, (exit_s, stderr[-2000:])
    assert "forced exit" not in stderr and "Traceback" not in stderr  # a clean stop
    assert loop["worst_tick_s"] < 1.0, loop


HANGING_CLOSE = """
import sys, time
from firmware_host.runtime.app import MonitorApp
from firmware_host.runtime.runconfig import load_runtime_config

app = MonitorApp(load_runtime_config(sys.argv[1]))
app.archive.close = lambda: time.sleep(60)  # an output whose close hangs
app.install_signal_handlers()
app.start()
print("running", flush=True)
try:
    app.run()
finally:
    app.close()
"""


def test_sigterm_ends_the_process_even_when_closing_hangs(tmp_path):
    """The backstop: 1.5 s after the signal the process exits, whatever close() does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_toml(
        tmp_path / "m.toml",
        monitor_config(
            load_scenario("rapid-depress"), {"bus0": f"socket://127.0.0.1:{port}"}, tmp_path / "o"
        ),
    )
    proc = subprocess.Popen(
        [CLI[0], "-c", HANGING_CLOSE, str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(1.0)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        exit_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
    assert exit_s < 2.0, (exit_s, stderr)
    assert "still stopping 1.5 s after the signal; forced exit" in stderr, stderr
