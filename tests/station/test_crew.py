"""The scripted crew (harness/crew.py): its decision logic, and the whole crew against a
real Mosquitto with hand-published assessments, a fake emulator control server
(hil.control, line-JSON TCP) and a board's real control socket (firmware_host)."""

from __future__ import annotations

import threading
import time

import pytest

from common import station_wire as wire
from harness.crew import CREW_NODE, Crew, CrewLogic, HatchRoute, routes_for
from hil.control import ControlServer, send_request


def _msg(proposal=None, located=None, message="SUSPECT", t=0.0) -> wire.AssessmentMsg:
    return wire.AssessmentMsg(
        station="iss",
        t_unix=t,
        leaking=True,
        probabilities={},
        proposal=proposal,
        located=located,
        message=message,
    )


def _close(h: str) -> dict:
    return {"hatch": h, "close": True, "hold_s": 300.0, "reason": f"split at {h}"}


def test_logic_waits_the_reaction_time_and_acts_once():
    logic = CrewLogic({"a-b": True, "b-c": True}, reaction_s=60)
    logic.on_assessment(_msg(_close("a-b")), 100.0)
    assert logic.due(159.0) is None
    due = logic.due(160.0)
    assert due is not None and (due.hatch, due.open, due.seen_s) == ("a-b", False, 100.0)
    logic.done("a-b", False)
    logic.on_assessment(_msg(_close("a-b"), message="HOLDING close a-b"), 170.0)
    assert logic.due(1000.0) is None  # already closed: the advisor is holding on it


def test_logic_restarts_the_wait_when_the_proposal_changes():
    logic = CrewLogic({"a-b": True, "b-c": True}, reaction_s=60)
    logic.on_assessment(_msg(_close("a-b")), 100.0)
    logic.on_assessment(_msg(_close("b-c")), 150.0)
    assert logic.due(200.0) is None
    assert logic.due(210.0).hatch == "b-c"
    logic.on_assessment(_msg(None), 211.0)
    assert logic.due(1000.0) is None
    # the same proposal again after a gap counts from when it came back
    logic.on_assessment(_msg(_close("b-c")), 300.0)
    assert logic.due(359.0) is None and logic.due(360.0) is not None


def test_logic_reopening():
    logic = CrewLogic({"a-b": False}, reaction_s=0)
    logic.on_assessment(_msg({"hatch": "a-b", "close": False, "hold_s": 0, "reason": "r"}), 5.0)
    assert logic.due(5.0).open is True


def test_routes_publish_only_hatches_no_board_has():
    routes = routes_for(
        [("usos-rs", "usos", "rs"), ("rs-mrm1", "rs", "mrm1")], {"usos": [], "rs": ["rs-mrm1"]}
    )
    assert routes["usos-rs"] == HatchRoute("usos-rs", (), True)
    assert routes["rs-mrm1"] == HatchRoute("rs-mrm1", ("rs",), False)


class _FakeEmulator:
    """A control server on 127.0.0.1 whose loop records the hatch commands."""

    def __init__(self):
        self.commands: list[dict] = []
        self.srv = ControlServer("127.0.0.1", 0)
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _apply(self, req: dict) -> dict:
        if req.get("name") == "stuck":
            return {"ok": False, "error": "no hatch 'stuck'"}
        self.commands.append(req)
        return {"ok": True, "hatch": req["name"], "open": req["open"], "t_s": 1234.5}

    def _loop(self):
        while not self.stop.is_set():
            self.srv.service(self._apply)
            self.stop.wait(0.01)

    def close(self):
        self.stop.set()
        self.t.join(5)
        self.srv.close()


@pytest.mark.timeout(60)
def test_crew_against_mosquitto_fake_emulator_and_a_board_socket(broker, tmp_path):
    import paho.mqtt.client as mqtt

    from firmware_host.runtime.control import ControlServer as BoardControl
    from firmware_host.runtime.control import send_command

    emu = _FakeEmulator()
    board_cmds: list[dict] = []
    board = BoardControl(tmp_path / "rs.sock")
    bstop = threading.Event()

    def board_loop():
        def apply(req):
            board_cmds.append(req)
            return {"ok": True, "hatch": req["name"], "open": req["open"]}

        while not bstop.is_set():
            board.poll(apply)
            bstop.wait(0.01)

    bt = threading.Thread(target=board_loop, daemon=True)
    bt.start()
    sim = [0.0]
    actions = []
    crew = Crew(
        broker=broker.url,
        station="iss",
        routes=routes_for(
            [("usos-rs", "usos", "rs"), ("rs-mrm1", "rs", "mrm1")],
            {"usos": [], "rs": ["rs-mrm1"]},
        ),
        hatch_open={"usos-rs": True, "rs-mrm1": True},
        emulator=lambda req: send_request(emu.srv.address, req),
        board=lambda node, req: send_command(tmp_path / f"{node}.sock", req),
        clock=lambda: sim[0],
        reaction_s=60.0,
        on_action=actions.append,
    )
    # a watcher for what the crew publishes
    got: list = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, m: got.append(m)
    port = int(broker.url.rsplit(":", 1)[1])
    watcher.connect("127.0.0.1", port)
    watcher.subscribe(wire.node_root("iss", CREW_NODE) + "/hatch/+/state", qos=1)
    watcher.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        crew.start()

        def assess(msg):
            n = len(crew.assessments)  # (before the publish: it may arrive at once)
            pub.publish(wire.assessment_topic("iss"), wire.encode(msg), qos=1, retain=True)
            deadline = time.monotonic() + 30  # (a loaded 2-core machine)
            while len(crew.assessments) == n and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(crew.assessments) > n

        def poll_until(t):
            sim[0] = t
            return crew.poll()

        # 0. at start: the state of the hatch no board reports (usos-rs), open
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        # (its birth, retained, on node/crew/status)
        births: list = []
        bc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        bc.on_message = lambda c, u, m: births.append(m)
        bc.connect("127.0.0.1", port)
        bc.subscribe(wire.node_status_topic("iss", CREW_NODE), qos=1)
        bc.loop_start()
        deadline = time.monotonic() + 10
        while not births and time.monotonic() < deadline:
            time.sleep(0.01)
        bc.disconnect()
        bc.loop_stop()
        birth = wire.decode(wire.TopicKind.NODE_STATUS, births[0].payload)
        assert birth.online and birth.node == "crew" and birth.hatches == ("usos-rs",)
        first = wire.decode(wire.TopicKind.HATCH, got.pop(0).payload)
        assert (first.hatch, first.position) == ("usos-rs", "open")
        # 1. close the hatch between two boards: emulator + the crew's own retained state
        assess(_msg(_close("usos-rs"), message="SUSPECT close usos-rs"))
        assert poll_until(30.0) is None
        a = poll_until(61.0)
        assert a is not None and (a.hatch, a.open, a.effect_s, a.emulator) == (
            "usos-rs", False, 1234.5, "ok",
        )  # fmt: skip
        assert a.boards == {} and a.published and a.seen_s == 0.0 and a.acted_s == 61.0
        assert emu.commands == [{"cmd": "hatch", "name": "usos-rs", "open": False}]
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        m = got[0]
        assert m.topic == wire.hatch_topic("iss", CREW_NODE, "usos-rs") and m.retain is False
        st = wire.decode(wire.TopicKind.HATCH, m.payload)
        assert (st.node, st.hatch, st.position, st.source) == ("crew", "usos-rs", "closed", "crew")
        # retained: a client that comes later (a restarted aggregator) gets it too
        late: list = []
        lc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        lc.on_message = lambda c, u, m: late.append(m)
        lc.connect("127.0.0.1", port)
        lc.subscribe(m.topic, qos=1)
        lc.loop_start()
        deadline = time.monotonic() + 10
        while not late and time.monotonic() < deadline:
            time.sleep(0.01)
        lc.disconnect()
        lc.loop_stop()
        assert late and late[0].retain and late[0].payload == m.payload
        assert poll_until(500.0) is None  # holding: nothing more to do
        # 2. a hatch inside one board: the emulator and that board's control socket
        assess(_msg(_close("rs-mrm1"), message="SUSPECT close rs-mrm1"))
        sim[0] = 600.0
        assess(_msg(_close("rs-mrm1"), message="SUSPECT close rs-mrm1"))  # seen at 500 s
        b = poll_until(600.0)
        assert b is not None and b.hatch == "rs-mrm1" and b.boards == {"rs": "ok"}
        assert not b.published
        assert board_cmds == [{"cmd": "hatch", "name": "rs-mrm1", "open": False}]
        # 3. an emulator refusal is recorded, not retried
        crew.logic.hatch_open["stuck"] = True
        assess(_msg(_close("stuck")))
        c = poll_until(700.0)
        assert c.emulator == "no hatch 'stuck'" and c.effect_s is None
        assert poll_until(800.0) is None
        assert [x.hatch for x in actions] == ["usos-rs", "rs-mrm1", "stuck"]
        assert crew.errors == []
    finally:
        crew.stop()
        for c in (watcher, pub):
            c.disconnect()
            c.loop_stop()
        bstop.set()
        bt.join(5)
        board.close()
        emu.close()
