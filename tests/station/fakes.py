"""Test doubles of the station: an advisor with the interface of ``station.advisor``
(ADVISOR_API) and fake boards that publish with paho as a board's publisher would."""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common import station_wire as wire
from station.segment import SegmentEstimate


class AdvisorState(enum.Enum):
    NOMINAL = "nominal"
    SUSPECT = "suspect"
    HOLDING = "holding"
    LOCATED = "located"
    UNRESOLVED = "unresolved"


@dataclass(frozen=True)
class Proposal:
    hatch: str
    close: bool
    hold_s: float
    reason: str


@dataclass(frozen=True)
class Assessment:
    t_s: float
    state: AdvisorState
    leaking: bool
    probabilities: dict[str, float]
    proposal: Proposal | None
    located: str | None
    evidence: tuple[dict, ...]
    message: str

    def to_msg(self, station: str, t_unix: float) -> wire.AssessmentMsg:
        return wire.AssessmentMsg(
            station=station,
            t_unix=t_unix,
            leaking=self.leaking,
            probabilities=dict(self.probabilities),
            proposal=None
            if self.proposal is None
            else {
                "hatch": self.proposal.hatch,
                "close": self.proposal.close,
                "hold_s": self.proposal.hold_s,
                "reason": self.proposal.reason,
            },
            located=self.located,
            evidence=list(self.evidence),
            message=self.message,
        )


class IsolationAdvisor:
    """Leaking when a segment loses more than ``caution_kg_day``; proposes closing the
    first open hatch of that segment.  Records every call."""

    def __init__(self, graph, *, caution_kg_day, crew_volume=None, min_pressure_pa=0.0):
        self.graph, self.caution_kg_day = graph, caution_kg_day
        self.crew_volume, self.min_pressure_pa = crew_volume, min_pressure_pa
        self.calls, self.resets, self.fail = [], 0, False
        self.lock = threading.Lock()

    def update(
        self, now_s: float, hatches: Mapping[str, bool | None], segments: Sequence[SegmentEstimate]
    ) -> Assessment:
        if self.fail:
            raise RuntimeError("advisor bug")
        with self.lock:
            self.calls.append((now_s, dict(hatches), tuple(segments)))
        for s in segments:
            if s.mass_rate_kg_day is not None and s.mass_rate_kg_day > self.caution_kg_day:
                open_h = sorted(
                    h
                    for h, st in hatches.items()
                    if st and {self.graph.hatches[h].a, self.graph.hatches[h].b} <= s.volumes
                )
                prop = Proposal(open_h[0], True, 600.0, "split the segment") if open_h else None
                vols = sorted(s.volumes)
                return Assessment(
                    now_s,
                    AdvisorState.SUSPECT,
                    True,
                    {v: 1 / len(vols) for v in vols},
                    prop,
                    None,
                    (),
                    f"SUSPECT {s.mass_rate_kg_day:.1f} kg/day in {'+'.join(vols)}",
                )
        return Assessment(now_s, AdvisorState.NOMINAL, False, {}, None, None, (), "NOMINAL")

    def reset(self) -> None:
        self.resets += 1


class FakeAdvisorModule:
    """What the aggregator takes from ``station.advisor``; ``made`` holds the advisor."""

    def __init__(self):
        self.made: IsolationAdvisor | None = None

    def IsolationAdvisor(self, graph, **kw):  # noqa: N802 (the class name it stands for)
        self.made = IsolationAdvisor(graph, **kw)
        return self.made


def _props() -> Properties:
    p = Properties(PacketTypes.PUBLISH)
    p.ContentType = wire.CONTENT_TYPE
    return p


class FakeBoard:
    """A board's publisher: birth (retained) with a Will of its session, estimates,
    alarm states and hatch states under ``node/<node>/``."""

    def __init__(self, broker, station: str, node: str, session: int, *, will: bool = True):
        self.station, self.node, self.session = station, node, session
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"board-{node}-{session}", protocol=mqtt.MQTTv5
        )
        self.status_topic = wire.node_status_topic(station, node)
        if will:
            dead = wire.NodeStatus(node, session, False, 0.0)
            self.client.will_set(self.status_topic, wire.encode(dead), qos=1, retain=True)
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect("127.0.0.1", broker.port, keepalive=5)
        self.client.loop_start()
        assert connected.wait(5), "board did not connect"

    def raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def publish(self, topic: str, msg, *, retain: bool = False, qos: int = 1) -> None:
        info = self.client.publish(
            topic, wire.encode(msg), qos=qos, retain=retain, properties=_props()
        )
        if qos:
            info.wait_for_publish(5)

    def birth(self, t: float, volumes=(), hatches=()) -> None:
        msg = wire.NodeStatus(
            self.node, self.session, True, t, "test", tuple(volumes), tuple(hatches)
        )
        self.publish(self.status_topic, msg, retain=True)

    def estimate(self, volume: str, t: float, *, group=None, mass=1.0, sigma=0.5, p=101325.0,
                 healthy=2, settled=True, expiry_s=3.0, qos=1) -> None:  # fmt: skip
        group = tuple(group or (volume,))
        msg = wire.VolumeEstimateMsg(
            node=self.node, session=self.session, volume=volume, t_unix=t, group=group,
            group_volume_m3=1.0, pressure_pa=p, dpdt_comp_pa_s=-0.001,
            dpdt_comp_sigma_pa_s=0.001, mass_rate_kg_day=mass, mass_rate_sigma_kg_day=sigma,
            hole_mm=None, reserve_s=36000.0, regime="orifice", healthy_sensors=healthy,
            settled=settled, state="settled" if settled else "settling", expiry_s=expiry_s,
        )  # fmt: skip
        self.publish(wire.estimate_topic(self.station, self.node, volume), msg, qos=qos)

    def alarm(self, volume: str, t: float, level: str | None) -> None:
        msg = wire.AlarmStateMsg(
            self.node,
            self.session,
            volume,
            t,
            level,
            "leak" if level else None,
            t if level else None,
        )
        self.publish(wire.alarm_topic(self.station, self.node, volume), msg, retain=True)

    def hatch(self, name: str, t: float, position: str) -> None:
        msg = wire.HatchStateMsg(self.node, name, position, "operator", t)
        self.publish(wire.hatch_topic(self.station, self.node, name), msg, retain=True)

    def close(self) -> None:
        """A clean end: the board withdraws (its Will is not sent)."""
        self.client.disconnect()
        self.client.loop_stop()

    def die(self) -> None:
        """As if the board vanished: its socket closes without DISCONNECT (the broker
        sends the Will)."""
        self.client.loop_stop()
        self.client.socket().close()
