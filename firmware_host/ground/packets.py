"""Build the CCSDS Space Packets (PUS-C TM) of a tick and of an alarm event.

Each packet is a CCSDS 133.0-B-2 Space Packet built by ``spacepackets``'
``PusTm``: the 6-octet primary header (version 0, type TM, secondary header
present, the APID, sequence flags "unsegmented", a 14-bit sequence count per
APID), the PUS-C TM secondary header (ECSS-E-ST-70-41C: PUS version 2, time
reference status 0, service, message subtype, a 16-bit message type counter
per (service, subtype), destination ID 0, the CUC time ``cuc``), the source
data, and the CRC-16/CCITT-FALSE of all that (the packet error control).

* TM[3,25] housekeeping: source data = SID (uint16) + the structure of
  ``layout`` (``VOLUME_FIELDS`` per volume, ``LOOP_FIELDS`` + link fields for
  SID 0), at the configured rate;
* TM[5,s] events, s by level (``EventSubtype``): ``EVENT_STRUCT``.

Packet times are ``gps_origin_s + t_s`` (s since the GPS epoch, ``cuc``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from spacepackets.ecss.tm import PusTm

from firmware_host.alarms import AlarmEvent, Transition
from firmware_host.ground import cuc
from firmware_host.ground.layout import (
    EVENT_IDS,
    EVENT_STRUCT,
    REGIME_CODES,
    SERVICE_EVENT,
    SERVICE_HK,
    SID_SYSTEM,
    SUBTYPE_HK_REPORT,
    TRANSITION_CODES,
    VOLUME_FIELDS,
    EventSubtype,
    GroundLayout,
    struct_of,
)
from firmware_host.stages.health import HealthState

#: The 14-bit sequence count and the 16-bit message type counter wrap here.
SEQ_MODULO = 1 << 14
COUNTER_MODULO = 1 << 16
_VOLUME_STRUCT = struct_of(VOLUME_FIELDS)


@dataclass(frozen=True)
class Packet:
    """One packet: its bytes and what it is (for sinks, logs and tests)."""

    apid: int
    service: int
    subtype: int
    seq_count: int
    data: bytes


class PacketBuilder:
    """Packets of ``layout`` with per-APID sequence counts.

    ``gps_origin_s`` is the GPS time (s since the GPS epoch) of ``t_s = 0``.
    The builder follows the events it is given to know each volume's highest
    raised alarm level (an alarm counts from RAISED to RETURN_TO_NORMAL).
    """

    def __init__(self, layout: GroundLayout, *, gps_origin_s: float = 0.0):
        self.layout = layout
        self.gps_origin_s = gps_origin_s
        self._seq: dict[int, int] = {}
        self._counter: dict[tuple[int, int], int] = {}
        self._raised: dict[str, tuple[str, int]] = {}  # key -> (source, level)
        self._system_struct = struct_of(layout.system_fields)

    def _pack(self, apid: int, service: int, subtype: int, t_s: float, data: bytes) -> Packet:
        seq = self._seq.get(apid, 0)
        self._seq[apid] = (seq + 1) % SEQ_MODULO
        counter = self._counter.get((service, subtype), 0)
        self._counter[(service, subtype)] = (counter + 1) % COUNTER_MODULO
        tm = PusTm(
            service=service,
            message_subtype=subtype,
            apid=apid,
            seq_count=seq,
            message_counter=counter,
            timestamp=cuc.encode(self.gps_origin_s + t_s),
            source_data=data,
        )
        return Packet(apid, service, subtype, seq, bytes(tm.pack()))

    # -- events ----------------------------------------------------------
    def event(self, ev: AlarmEvent) -> Packet:
        """TM[5, subtype by level] of one alarm transition."""
        if ev.transition is Transition.RAISED:
            self._raised[ev.key] = (ev.source, int(ev.level))
        elif ev.transition is Transition.RETURN_TO_NORMAL:
            self._raised.pop(ev.key, None)
        data = EVENT_STRUCT.pack(
            EVENT_IDS[ev.kind],
            self.layout.source_code(ev.source),
            TRANSITION_CODES[ev.transition],
            int(ev.level),
            float(ev.value),
            float(ev.limit),
        )
        subtype = EventSubtype.of(ev.level)
        return self._pack(self.layout.apid_events, SERVICE_EVENT, subtype, ev.t_s, data)

    def volume_alarm_level(self, volume: str) -> int:
        """0 or the highest ``AlarmLevel`` of the volume's raised alarms."""
        return max((lv for src, lv in self._raised.values() if src == volume), default=0)

    # -- housekeeping ----------------------------------------------------
    def housekeeping(self, result, loop_health=None) -> list[Packet]:
        """TM[3,25] of every volume (none before the first estimate) and of the system."""
        hk = self.layout.apid_hk
        out = []
        for i, v in enumerate(result.volumes):
            j = next((k for k, w in enumerate(v.dpdt) if w.window_s == v.best_window_s), None)
            slope = v.dpdt[j] if j is not None else None
            data = _VOLUME_STRUCT.pack(
                i + 1,
                v.pressure_pa,
                v.pressure_comp_pa,
                v.temperature_k,
                v.best_window_s,
                slope.dpdt_comp_pa_s if slope else math.nan,
                slope.stderr_comp_pa_s if slope else math.nan,
                v.mass_rate_kg_day,
                v.mass_rate_sigma_kg_day,
                v.hole_mm,
                v.reserve_s_linear,
                v.reserve_s_orifice,
                REGIME_CODES[v.regime],
                int(v.state),
                self.volume_alarm_level(v.volume),
                min(v.n_healthy_sensors, 255),
            )
            out.append(self._pack(hk, SERVICE_HK, SUBTYPE_HK_REPORT, result.t_s, data))
        out.append(
            self._pack(
                hk, SERVICE_HK, SUBTYPE_HK_REPORT, result.t_s, self._system(result, loop_health)
            )
        )
        return out

    def _system(self, result, loop_health) -> bytes:
        sensors = {s.sensor_id: s for s in result.sensors}
        values: list = [
            result.tick % (1 << 32),
            loop_health.overruns % (1 << 32) if loop_health else 0,
            loop_health.lateness_p99_s if loop_health else math.nan,
            loop_health.worst_tick_s if loop_health else math.nan,
        ]
        healthy = {sid for sid, s in sensors.items() if s.health is HealthState.OK}
        values += [len(healthy), len(self.layout.sensors)]
        for link in self.layout.links:
            ids = [sid for sid, _, lk in self.layout.sensors if lk == link]
            ages = [sensors[sid].last_sample_age_s for sid in ids if sid in sensors]
            ages = [a for a in ages if math.isfinite(a)]
            values += [
                min(sum(1 for sid in ids if sid in healthy), 255),
                min(len(ids), 255),
                max(ages) if ages else math.nan,
            ]
        return self._system_struct.pack(SID_SYSTEM, *values)

    def tick_packets(self, result, *, hk: bool, loop_health=None) -> Iterable[Packet]:
        """The events of a tick, then (``hk``) its housekeeping."""
        for ev in result.events:
            yield self.event(ev)
        if hk:
            yield from self.housekeeping(result, loop_health)
