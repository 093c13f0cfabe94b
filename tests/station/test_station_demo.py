"""``cabinwatch demo --station``: the closed loop's orchestration (harness/station_demo.py).

What can run before the board's publisher, the aggregator and the advisor are in the
tree: the emulator with its control path, one monitor per board on its own ptys, the
crew's routes to them, and every process stopped at the end.  The full loop is in
test_closed_loop_leak.py and test_closed_loop_quiet.py (modules of their own, so
that the two minutes-long runs go to different workers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from common import station_wire as wire
from firmware_host.runtime.control import send_command
from harness.station_demo import (
    Children,
    Hunt,
    _endpoints,
    correct_volumes,
    start_boards,
    start_emulator,
    write_board_configs,
)
from hil.control import send_request
from hil.scenario import load_scenario
from tests.support.runtime_helpers import assert_one_line_error, run_cli

SC = "soyuz-2018-station"


def test_correct_volumes_is_the_escape_vehicle_segment():
    sc = load_scenario(SC)
    assert correct_volumes(sc, "soyuz_bo") == {"soyuz_bo", "soyuz_sa"}
    assert correct_volumes(sc, "mrm1") == {"mrm1"}


def test_endpoints_wait_for_every_link_and_the_control_line():
    lines = ["link=usos pty=/dev/pts/7 alias=/tmp/a", "link=rs pty=/dev/pts/8 alias=/tmp/b"]
    assert _endpoints(lines, ["usos", "rs"]) is None
    lines.append("control=tcp tcp=127.0.0.1:4567")
    assert _endpoints(lines, ["usos", "rs"]) == (
        {"usos": "/dev/pts/7", "rs": "/dev/pts/8"},
        ("127.0.0.1", 4567),
    )
    assert _endpoints(lines, ["usos", "rs", "soyuz"]) is None


def test_hunt_prints_changes_only_and_keeps_detection_and_locations():
    out = []
    hunt = Hunt(lambda obj, text: out.append(obj))

    def msg(message, leaking=True, proposal=None, located=None):
        return wire.AssessmentMsg("iss", 0.0, leaking, {}, proposal, located, [], message)

    hunt.on_assessment(msg("NOMINAL", leaking=False), 10.0)
    hunt.on_assessment(msg("NOMINAL", leaking=False), 11.0)
    prop = {"hatch": "usos-rs", "close": True, "hold_s": 300, "reason": "r"}
    hunt.on_assessment(msg("SUSPECT close usos-rs", proposal=prop), 700.0)
    hunt.on_assessment(msg("SUSPECT close usos-rs", proposal=prop), 701.0)
    hunt.on_assessment(msg("LOCATED soyuz_bo", located="soyuz_bo"), 1500.0)
    assert [o["state"] for o in out] == ["nominal", "suspect", "located"]
    assert hunt.detected_s == 700.0 and hunt.located == [(1500.0, "soyuz_bo")]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_emulator_and_three_boards_start_take_hatch_commands_and_stop(tmp_path):
    """Before the publisher lands the boards run without [station]: every process of the
    loop but the aggregator, the crew's two routes (emulator control, board socket)."""
    sc = load_scenario(SC)
    children = Children(tmp_path)
    try:
        ptys, control = start_emulator(children, sc, 20.0, 3600.0, tmp_path)
        assert set(ptys) == {"usos", "rs", "soyuz"}
        boards = write_board_configs(sc, ptys, tmp_path, 20.0, broker_url=None)
        for b in boards:  # each config passes `cabinwatch config check`
            r = run_cli("config", "check", b.config)
            assert r.returncode == 0, r.stderr
            assert f"on links {b.node}" in r.stdout
        start_boards(children, boards, 20.0)
        rs = next(b for b in boards if b.node == "rs")
        req = {"cmd": "hatch", "name": "rs-mrm1", "open": False}
        r = send_request(control, req)
        assert r["ok"] and r["hatch"] == "rs-mrm1"
        assert send_command(rs.socket, req)["ok"]
        st = send_command(rs.socket, {"cmd": "status"})
        assert st["ok"]
        assert "rs-mrm1" in json.dumps(st["status"])
        assert send_request(control, {"cmd": "status"})["hatches"]["rs-mrm1"] is False
        # each board hears only its own link: its sensors, no unknown address
        usos = next(b for b in boards if b.node == "usos")
        status = send_command(usos.socket, {"cmd": "status"})["status"]
        assert "soyuz_bo" not in json.dumps(status)
        pids = [p.popen.pid for p in children.procs]
        assert all(p.alive() for p in children.procs)
    finally:
        children.stop_all()
    for pid in pids:  # every process group is gone
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bad_station_demo_options_are_one_line(tmp_path):
    r = run_cli("demo", "--json")
    assert_one_line_error(r, "--json needs --station")
    r = run_cli("demo", "--station", "--scenario", "heater-steps", "--out", tmp_path / "a")
    assert_one_line_error(r, "no hatches")
    r = run_cli("demo", "--station", "--start", "30000", "--out", tmp_path / "a2")
    assert_one_line_error(r, "--start must be before the scenario's end")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("mine")
    r = run_cli("demo", "--station", "--out", tmp_path / "b")
    assert_one_line_error(r, "is not empty")
    r = run_cli("demo", "--station", "--speed", "-3", "--out", tmp_path / "c")
    assert_one_line_error(r, "--speed")
    r = run_cli("demo", "--station", "--tcp", "--out", tmp_path / "d")
    assert_one_line_error(r, "--tcp is not for --station")
    r = run_cli("demo", "--join", "60")
    assert_one_line_error(r, "--join needs --station")
    r = run_cli("demo", "--station", "--join", "-1", "--out", tmp_path / "e")
    assert_one_line_error(r, "--join")


def _require_mosquitto() -> None:
    from tests.station.conftest import _require

    _require()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ctrl_c_stops_every_process_of_the_loop(tmp_path):
    """SIGINT to the demo once it has started its processes: all of them end (today
    the run may also end at once with a one-line error, as long as nothing is left)."""
    _require_mosquitto()
    out = tmp_path / "out"
    demo = subprocess.Popen(
        [sys.executable, "-m", "firmware_host.cli", "demo", "--station", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        listed = out / "processes.txt"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and demo.poll() is None:
            if listed.exists() and "board-" in listed.read_text():
                break
            time.sleep(0.05)
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
    assert demo.returncode in (130, 2), err
    assert "Traceback" not in err
    pids = {line.split()[0]: int(line.split()[1]) for line in listed.read_text().splitlines()}
    assert {"mosquitto", "emulator", "board-usos"} <= set(pids)
    for name, pid in pids.items():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # (the group of) every process started is gone
        assert name
