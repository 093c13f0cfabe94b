"""Operator commands over the control socket, applied to a real MonitorCore."""

from __future__ import annotations

import copy
import socket
import threading
import time

import pytest

from firmware_host.alarms import AlarmState
from firmware_host.runtime.control import ControlServer, apply_to_core, send_command
from tests.support.runtime_helpers import assert_one_line_error, run_cli, run_core

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A control server on a socket below tmp, and a thread playing the monitor loop:
    it polls the server and applies the commands to ``state["core"]``."""
    ran = run_core("rapid-depress", 150.0)
    server = ControlServer(tmp_path_factory.mktemp("ctl") / "run" / "cabinwatch.sock")
    state = {"core": None, "now": ran[1].t_s}
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            core = state["core"]
            if core is not None:
                server.poll(lambda req, c=core: apply_to_core(c, req, state["now"]))
            stop.wait(0.01)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield ran, server, state
    finally:
        stop.set()
        t.join(5)
        server.close()
    assert not server.path.exists()  # close() removes the socket


@pytest.fixture
def monitor(served):
    """A fresh copy of a core with alarms up (rapid-depress at 150 s) behind the server."""
    ran, server, state = served
    core = copy.deepcopy(ran[0])
    state["core"] = core
    yield core, server
    state["core"] = None


def _unacked(core):
    """Alarms an acknowledgement changes: raised, or returned to normal, and not acknowledged."""
    return [
        a
        for a in core.active_alarms()
        if a.state in (AlarmState.ACTIVE_UNACK, AlarmState.RTN_UNACK)
    ]


def test_ack_one_then_all(monitor):
    core, server = monitor
    before = _unacked(core)
    assert len(before) >= 3, before
    key = next(a.key for a in before if a.key == "node3:RAPID_DEPRESS")
    reply = send_command(server.path, {"cmd": "ack", "key": key})
    assert reply == {"ok": True, "acknowledged": 1}
    states = {a.key: a.state for a in core.active_alarms()}
    assert states[key] is AlarmState.ACTIVE_ACK
    assert key not in {a.key for a in _unacked(core)}
    assert len(_unacked(core)) == len(before) - 1
    reply = send_command(server.path, {"cmd": "ack"})
    assert reply == {"ok": True, "acknowledged": len(before) - 1}
    assert _unacked(core) == []
    assert send_command(server.path, {"cmd": "ack", "key": "nosuch:LEAK"}) == {
        "ok": True,
        "acknowledged": 0,
    }


def test_hatch_close_and_open(monitor):
    core, server = monitor
    assert core.hatch_open == {"node1-node3": True, "node1-fgb": True}
    reply = send_command(server.path, {"cmd": "hatch", "name": "node1-node3", "open": False})
    assert reply == {"ok": True, "hatch": "node1-node3", "open": False}
    assert core.hatch_open["node1-node3"] is False
    status = send_command(server.path, {"cmd": "status"})["status"]
    assert status["hatches"]["node1-node3"] is False
    reply = send_command(server.path, {"cmd": "hatch", "name": "node1-node3", "open": True})
    assert reply["ok"] and core.hatch_open["node1-node3"] is True


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        ({"cmd": "hatch", "name": "airlock", "open": False}, "unknown hatch 'airlock'"),
        ({"cmd": "hatch", "name": "node1-node3"}, "open: true or false"),
        ({"cmd": "hatch", "name": "node1-node3", "open": "no"}, "open: true or false"),
        ({"cmd": "limits", "name": "lunar"}, "unknown limit set 'lunar'"),
        ({"cmd": "reboot"}, "unknown command 'reboot'"),
        ({}, "unknown command None"),
    ],
)
def test_refused_commands(monitor, request_, needle):
    core, server = monitor
    hatches = dict(core.hatch_open)
    reply = send_command(server.path, request_)
    assert reply["ok"] is False and needle in reply["error"], reply
    assert core.hatch_open == hatches  # nothing changed


def test_unknown_hatch_lists_the_known_ones(monitor):
    _, server = monitor
    reply = send_command(server.path, {"cmd": "hatch", "name": "airlock", "open": True})
    assert "node1-node3" in reply["error"] and "node1-fgb" in reply["error"]


def test_limits_switch(monitor):
    core, server = monitor
    assert send_command(server.path, {"cmd": "status"})["status"]["limit_set"] == "flight"
    reply = send_command(server.path, {"cmd": "limits", "name": "ground-test"})
    assert reply == {"ok": True, "limit_set": "ground-test"}
    assert core.limits.caution_leak_kg_day == 50.0
    assert send_command(server.path, {"cmd": "status"})["status"]["limit_set"] == "ground-test"
    send_command(server.path, {"cmd": "limits", "name": "flight"})
    assert core.limits.caution_leak_kg_day == 2.0


def test_status(monitor):
    core, server = monitor
    reply = send_command(server.path, {"cmd": "status"})
    assert reply["ok"] is True
    status = reply["status"]
    assert status["ticks"] == core.tick_count and status["t_s"] == pytest.approx(150.0)
    assert {v["volume"] for v in status["volumes"]} == {"usos", "node3", "rs"}
    assert len(status["sensors"]) == 5
    keys = {a["key"]: a["level"] for a in status["active_alarms"]}
    assert keys["node3:RAPID_DEPRESS"] == "EMERGENCY"


def _raw(path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


@pytest.mark.parametrize("payload", [b"this is not json\n", b"[1, 2, 3]\n", b"\xff\xfe\n", b""])
def test_malformed_request_gets_an_error_and_server_keeps_serving(monitor, payload):
    import json

    core, server = monitor
    errors = server.errors
    reply = json.loads(_raw(server.path, payload))
    assert reply["ok"] is False and reply["error"].startswith("bad request"), reply
    assert server.errors == errors + 1
    # still serving
    assert send_command(server.path, {"cmd": "status"})["ok"] is True
    reply = send_command(server.path, {"cmd": "hatch", "name": "node1-fgb", "open": False})
    assert reply["ok"] and core.hatch_open["node1-fgb"] is False


def test_stale_socket_file_is_replaced(tmp_path):
    """A monitor that died leaves its socket file behind: the next one binds anyway."""
    path = tmp_path / "c.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    assert path.exists()
    server = ControlServer(path)
    try:
        replies = []
        t = threading.Thread(
            target=lambda: replies.append(send_command(path, {"cmd": "status"}, timeout_s=5))
        )
        t.start()
        for _ in range(500):
            if server.poll(lambda req: {"ok": True, "echo": req["cmd"]}):
                break
            time.sleep(0.01)
        t.join(5)
        assert replies == [{"ok": True, "echo": "status"}]
    finally:
        server.close()


@pytest.mark.slow
def test_ctl_without_monitor(tmp_path):
    missing = tmp_path / "missing.sock"
    proc = run_cli("ctl", "--socket", missing, "status", timeout=30)
    line = assert_one_line_error(proc, str(missing))
    assert line == f"cabinwatch ctl: {missing}: no monitor is listening on this socket"
    assert proc.stdout == ""


@pytest.mark.slow
def test_ctl_cli_against_a_live_server(monitor):
    """``cabinwatch ctl`` end to end: a refusal is one line and exit 2, a success prints JSON."""
    core, server = monitor
    proc = run_cli("ctl", "--socket", server.path, "hatch", "node1-fgb", "closed", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert '"ok": true' in proc.stdout and core.hatch_open["node1-fgb"] is False
    proc = run_cli("ctl", "--socket", server.path, "hatch", "airlock", "open", timeout=30)
    assert_one_line_error(proc, "unknown hatch 'airlock'")
