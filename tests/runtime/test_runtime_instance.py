"""One monitor per configuration (docs/runtime.md R15): the output directory's lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from firmware_host.runtime.control import send_command
from firmware_host.runtime.instance import LOCK_NAME, AlreadyRunning, InstanceLock
from hil.scenario import load_scenario
from tests.support.runtime_helpers import (
    CLI,
    assert_one_line_error,
    monitor_config,
    query,
    write_toml,
)

pytestmark = pytest.mark.timeout(60)


def test_a_second_lock_names_the_first_pid_and_a_release_frees_it(tmp_path):
    first = InstanceLock.for_directory(tmp_path / "out")
    first.acquire()
    try:
        assert (tmp_path / "out" / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(AlreadyRunning) as err:
            InstanceLock.for_directory(tmp_path / "out").acquire()
        assert err.value.pid == os.getpid()
        assert f"(PID {os.getpid()})" in str(err.value) and "\n" not in str(err.value)
    finally:
        first.release()
    with InstanceLock.for_directory(tmp_path / "out") as again:
        assert again.held


def test_a_killed_holder_leaves_no_lock(tmp_path):
    """SIGKILL: the kernel drops the flock, the stale file with its PID does not block."""
    code = (
        "import sys, time; from firmware_host.runtime.instance import InstanceLock; "
        f"InstanceLock.for_directory({str(tmp_path)!r}).acquire(); print('held', flush=True); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning, match=f"PID {proc.pid}"):
            InstanceLock.for_directory(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(proc.pid)  # stale, harmless
    with InstanceLock.for_directory(tmp_path) as lock:
        assert lock.held


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_second_monitor_is_refused_and_leaves_the_first_untouched(tmp_path):
    """The second monitor on the same configuration exits 2 with one line naming the first
    one's PID; the first keeps its control socket, archive and ports; a clean stop of the
    first removes its socket and frees the directory for the next one."""
    scenario = load_scenario("rapid-depress")
    url = f"socket://127.0.0.1:{_closed_port()}"
    out = tmp_path / "out"
    cfg = write_toml(
        tmp_path / "monitor.toml",
        monitor_config(scenario, {"bus0": url}, out, speed=10, control_socket="ctl.sock"),
    )
    cmd = [*CLI, "monitor", "--config", str(cfg), "--speed", "10", "--no-display"]
    first = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    sock = out / "ctl.sock"
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists(), "the first monitor's control socket never appeared"
        inode = sock.stat().st_ino
        second = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=30)
        line = assert_one_line_error(second, f"(PID {first.pid})", str(out / LOCK_NAME))
        assert line.startswith("cabinwatch monitor: ")
        assert sock.exists() and sock.stat().st_ino == inode  # not deleted, not replaced
        reply = send_command(sock, {"cmd": "status"}, timeout_s=5)
        assert reply["ok"] and reply["status"]["ticks"] >= 1
        assert query(out / "archive.sqlite", "SELECT count(*) FROM meta WHERE key='config_source'")
        os.killpg(first.pid, signal.SIGTERM)
        _, stderr = first.communicate(timeout=20)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate(timeout=10)
    assert first.returncode == 0, stderr
    assert json.loads(stderr.splitlines()[-1].removeprefix("monitor: "))["loop"]["ticks"] >= 1
    assert not sock.exists()
    with InstanceLock.for_directory(out) as lock:  # free for the next one
        assert lock.held
