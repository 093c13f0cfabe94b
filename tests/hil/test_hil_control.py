"""Hatch commands at run time: the physics, the emulator's truth, the line-JSON control
server, and ``cabinwatch emulate --control`` against a real process (pty links)."""

from __future__ import annotations

import dataclasses
import json
import socket

import numpy as np
import pytest

from hil.control import ControlServer, apply_request, parse_address, send_request
from hil.emulator import Emulator
from hil.physics import Network
from hil.scenario import Event, load_scenario
from tests.support.runtime_helpers import EmulatorProcess, assert_one_line_error, run_cli


def _two_volumes():
    """soyuz-ms09-2018 without its scripted hatch events, and its hatch mrm1-soyuz."""
    sc = load_scenario("soyuz-ms09-2018")
    return dataclasses.replace(sc, events=()), "mrm1-soyuz"


def test_a_commanded_hatch_acts_as_a_scripted_event_at_that_time():
    sc, hatch = _two_volumes()
    t_cmd = 4 * 3600.0  # the BO hole is open from 3 h
    scripted = dataclasses.replace(sc, events=(Event(t_cmd, "hatch", hatch, open=False),))
    a, b = Network(scripted), Network(sc)
    a.run_until(t_cmd)
    while b.t < t_cmd:  # b lands on t_cmd too (run_until may step past it)
        b.step(b.next_step(t_cmd))
        b.step_cap = min(b.step_cap * 1.5, b.max_step_s)
    assert b.t == pytest.approx(a.t)
    assert b.command_hatch(hatch, False) == pytest.approx(t_cmd)
    a.run_until(t_cmd + 1800)
    b.run_until(t_cmd + 1800)
    np.testing.assert_allclose(b.m, a.m, rtol=1e-6)  # (step grids differ by one step)
    assert abs(b.mass_balance_kg()) < 1e-6
    i = b.names.index("soyuz_bo")
    # the isolated orbital module now loses pressure fast, the rest of the station not
    assert b.history()[-1][b.columns()["P"]][i] < a.history()[0][a.columns()["P"]][i] - 500


def test_unknown_hatch_is_refused():
    sc, _ = _two_volumes()
    with pytest.raises(KeyError):
        Network(sc).command_hatch("nope", False)


def test_emulator_truth_follows_the_commanded_hatch():
    sc, hatch = _two_volumes()
    emu = Emulator(sc, truth_rate_hz=1.0)
    emu.advance(100.0)
    emu.drain_truth()
    t = emu.command_hatch(hatch, False)
    assert 100.0 <= t <= 100.0 + sc.max_step_s
    assert emu.hatch_commands == [(t, hatch, False)]
    emu.advance(200.0)
    series = emu.drain_truth()
    j = series.hatch_names.index(hatch)
    assert series.hatch_open[series.t_s < t, j].all()
    assert not series.hatch_open[series.t_s >= t, j].any()
    assert emu.truth().hatches[hatch] is False
    with pytest.raises(KeyError, match="no hatch"):
        emu.command_hatch("nope", True)


def test_apply_request_replies():
    sc, hatch = _two_volumes()
    emu = Emulator(sc, truth_rate_hz=0.0)
    emu.advance(10.0)
    seen = []
    r = apply_request(
        emu, {"cmd": "hatch", "name": hatch, "open": False}, lambda *a: seen.append(a)
    )
    assert r["ok"] is True and r["open"] is False and r["t_s"] >= 10.0
    assert seen == [(r["t_s"], hatch, False)] or seen[0][1:] == (hatch, False)
    st = apply_request(emu, {"cmd": "status"})
    assert st["ok"] and st["hatches"][hatch] is False
    for req, needle in (
        ({"cmd": "hatch", "name": hatch, "open": "no"}, "open: true or false"),
        ({"cmd": "hatch", "name": "nope", "open": True}, "no hatch 'nope'"),
        ({"cmd": "hatch", "open": True}, "needs name"),
        ({"cmd": "launch"}, "unknown command"),
    ):
        r = apply_request(emu, req)
        assert r["ok"] is False and needle in r["error"] and "\n" not in r["error"]


def test_parse_address():
    assert parse_address("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_address("0") == ("127.0.0.1", 0)
    for bad in ("x:y", "127.0.0.1:70000", "abc"):
        with pytest.raises(ValueError):
            parse_address(bad)


@pytest.mark.timeout(30)
def test_server_serves_lines_in_order_and_survives_bad_clients():
    sc, hatch = _two_volumes()
    emu = Emulator(sc, truth_rate_hz=0.0)
    with ControlServer("127.0.0.1", 0, reply_timeout_s=2.0) as srv:
        import threading

        stop = threading.Event()

        def loop():
            while not stop.is_set():
                srv.service(lambda req: apply_request(emu, req))
                stop.wait(0.01)

        th = threading.Thread(target=loop, daemon=True)
        th.start()
        try:
            addr = srv.address
            assert addr[0] == "127.0.0.1"
            # one connection, three lines at once: three replies in order
            with socket.create_connection(addr, timeout=5) as s:
                s.sendall(
                    b'{"cmd":"hatch","name":"mrm1-soyuz","open":false}\ngarbage\n{"cmd":"status"}\n'
                )
                buf = b""
                while buf.count(b"\n") < 3:
                    buf += s.recv(4096)
            replies = [json.loads(x) for x in buf.splitlines()]
            assert replies[0]["ok"] and replies[0]["hatch"] == hatch
            assert replies[1] == {"ok": False, "error": "not a JSON line (JSONDecodeError)"}
            assert replies[2]["hatches"][hatch] is False
            # an over-long line: an error and the connection closed; the server goes on
            with socket.create_connection(addr, timeout=5) as s:
                s.sendall(b"x" * 10000)
                data = s.recv(4096)
                assert b"longer than" in data
            r = send_request(addr, {"cmd": "hatch", "name": hatch, "open": True})
            assert r["ok"] and r["open"] is True
        finally:
            stop.set()
            th.join(5)


@pytest.mark.timeout(30)
def test_a_command_the_loop_does_not_take_times_out():
    with ControlServer("127.0.0.1", 0, reply_timeout_s=0.3) as srv:
        r = send_request(srv.address, {"cmd": "status"}, timeout_s=5)
    assert r["ok"] is False and "within 0.3 s" in r["error"]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_emulate_control_over_tcp_with_pty_links(tmp_path):
    truth = tmp_path / "truth.jsonl"
    emu = EmulatorProcess(
        "soyuz-ms09-2018", "--pty", "--speed", "20", "--control", "127.0.0.1:0",
        "--truth", truth, "--duration", "3000",
    )  # fmt: skip
    try:
        m = emu.wait_line(r"^control=tcp tcp=127\.0\.0\.1:(\d+)")
        addr = ("127.0.0.1", int(m.group(1)))
        r = send_request(addr, {"cmd": "hatch", "name": "mrm1-soyuz", "open": False})
        assert r["ok"] is True and r["t_s"] >= 0
        emu.wait_line(r"^event=hatch hatch=mrm1-soyuz open=closed t=")
        bad = send_request(addr, {"cmd": "hatch", "name": "nope", "open": False})
        assert bad["ok"] is False and "no hatch 'nope'" in bad["error"]
        st = send_request(addr, {"cmd": "status"})
        assert st["hatches"]["mrm1-soyuz"] is False and st["t_s"] >= r["t_s"]
        # the truth records the command and the hatch_open column follows it
        emu.wait_line(r"^event=hatch", timeout=5)
    finally:
        emu.kill()
    recs = [json.loads(x) for x in truth.read_text().splitlines() if x.strip()]
    cmds = [x for x in recs if x["type"] == "hatch_command"]
    assert cmds == [
        {"type": "hatch_command", "t_s": r["t_s"], "hatch": "mrm1-soyuz", "open": False,
         "source": "control"}
    ]  # fmt: skip
    j = [h["name"] for h in recs[0]["hatches"]].index("mrm1-soyuz")
    later = [x for x in recs if x["type"] == "truth" and x["t_s"] >= r["t_s"]]
    assert later and all(x["hatch_open"][j] == 0 for x in later)


@pytest.mark.timeout(60)
def test_bad_control_address_is_one_line(tmp_path):
    proc = run_cli("emulate", "rapid-depress", "--pty", "--control", "x:y")
    assert_one_line_error(proc, "--control", "port must be a number")
