"""What the packets hold: APIDs, services, the HK structures and the event IDs.

One table (``HkField``) describes each housekeeping structure; the packet
builder (``packets``) packs it with a precomputed ``struct`` and the XTCE
generator (``xtce``) describes it, so both read the same list.  The tests
decode every packet with an independent decoder reading the XTCE.

All multi-octet fields are big-endian; floats are IEEE 754 binary64 (NaN: no
estimate; +inf: a reserve time when the volume is not losing pressure).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass

from firmware_host.alarms import AlarmKind, AlarmLevel, Transition
from firmware_host.stages.estimation import EstimateState
from firmware_host.stages.regime import Regime

#: Default APIDs (0..2046; 2047 is the idle packet's).
APID_HK = 0x100
APID_EVENTS = 0x101
#: The largest APID a packet may carry (2047 = 0x7FF is reserved for idle packets).
APID_MAX = 2046

#: PUS service 3 (housekeeping), subtype 25: housekeeping parameter report.
SERVICE_HK = 3
SUBTYPE_HK_REPORT = 25
#: PUS service 5 (event reporting).
SERVICE_EVENT = 5

#: HK structure ID of the loop's and links' health; volume ``i`` has ``i + 1``.
SID_SYSTEM = 0


class EventSubtype(enum.IntEnum):
    """TM[5,x] message subtype by alarm level (ECSS-E-ST-70-41C 6.5)."""

    INFORMATIVE = 1  # ADVISORY
    LOW_SEVERITY = 2  # CAUTION
    MEDIUM_SEVERITY = 3  # WARNING
    HIGH_SEVERITY = 4  # EMERGENCY

    @classmethod
    def of(cls, level: AlarmLevel) -> EventSubtype:
        return _SUBTYPE[level]


_SUBTYPE = {
    AlarmLevel.ADVISORY: EventSubtype.INFORMATIVE,
    AlarmLevel.CAUTION: EventSubtype.LOW_SEVERITY,
    AlarmLevel.WARNING: EventSubtype.MEDIUM_SEVERITY,
    AlarmLevel.EMERGENCY: EventSubtype.HIGH_SEVERITY,
}

#: The alarm-level field: 0 no alarm, else ``AlarmLevel``'s value.
LEVEL_CHOICES = [(0, "NORMAL")] + [(int(lv), lv.name) for lv in AlarmLevel]
#: Event IDs: ``AlarmKind`` in declaration order from 1 (new kinds are appended).
EVENT_IDS: dict[AlarmKind, int] = {k: i + 1 for i, k in enumerate(AlarmKind)}
EVENT_ID_CHOICES = [(i, k.name) for k, i in EVENT_IDS.items()]
TRANSITION_CODES: dict[Transition, int] = {t: i for i, t in enumerate(Transition)}
TRANSITION_CHOICES = [(i, t.name) for t, i in TRANSITION_CODES.items()]
REGIME_CODES: dict[Regime, int] = {r: i for i, r in enumerate(Regime)}
REGIME_CHOICES = [(i, r.name) for r, i in REGIME_CODES.items()]
STATE_CHOICES = [(int(s), s.name) for s in EstimateState]
#: An event source the database does not list (an output added at run time).
SOURCE_OTHER = 0xFFFF


@dataclass(frozen=True)
class HkField:
    """One field of a structure: ``fmt`` a ``struct`` code (``d`` binary64,
    ``B``/``H``/``I`` unsigned), ``unit`` (None: none), ``choices`` for an
    enumeration."""

    name: str
    fmt: str
    unit: str | None
    description: str
    choices: tuple[tuple[int, str], ...] | None = None


def _f(name, unit, description) -> HkField:
    return HkField(name, "d", unit, description)


#: A volume's HK structure (SID = volume index + 1), after the 2-octet SID.
VOLUME_FIELDS: tuple[HkField, ...] = (
    _f("pressure_pa", "Pa", "fused pressure"),
    _f("pressure_comp_pa", "Pa", "temperature-compensated pressure"),
    _f("temperature_k", "K", "fused gas temperature"),
    _f("best_window_s", "s", "slope window the mass rate comes from (NaN: none)"),
    _f("dpdt_comp_pa_s", "Pa/s", "compensated dP/dt over the best window"),
    _f("dpdt_sigma_pa_s", "Pa/s", "1-sigma of dpdt_comp_pa_s"),
    _f("mass_rate_kg_day", "kg/day", "air mass loss rate (positive: losing)"),
    _f("mass_rate_sigma_kg_day", "kg/day", "1-sigma of mass_rate_kg_day"),
    _f("hole_mm", "mm", "equivalent sharp-edged hole diameter"),
    _f("reserve_linear_s", "s", "time to the reserve limit, straight line (+inf: none)"),
    _f("reserve_orifice_s", "s", "time to the reserve limit, orifice law (+inf: none)"),
    HkField("regime", "B", None, "leak flow regime", tuple(REGIME_CHOICES)),
    HkField("estimate_state", "B", None, "whether the estimate stands", tuple(STATE_CHOICES)),
    HkField(
        "alarm_level",
        "B",
        None,
        "highest level of the volume's raised alarms not returned to normal",
        tuple(LEVEL_CHOICES),
    ),
    HkField("n_healthy", "B", None, "healthy sensors of the volume"),
)

#: The loop's health, the head of the system structure (SID 0).
LOOP_FIELDS: tuple[HkField, ...] = (
    HkField("tick", "I", None, "monitor tick number (mod 2**32)"),
    HkField("loop_overruns", "I", None, "deadlines skipped (cycle slips; 0 without a loop)"),
    _f("loop_lateness_p99_s", "s", "99th percentile of wake-up lateness (NaN: no loop)"),
    _f("loop_worst_tick_s", "s", "longest tick (NaN: no loop)"),
    HkField("sensors_healthy", "H", None, "healthy sensors"),
    HkField("sensors_total", "H", None, "configured sensors"),
)


def link_fields(link: str) -> tuple[HkField, ...]:
    """A link's part of the system structure."""
    n = ident(link)
    return (
        HkField(f"link_{n}_healthy", "B", None, f"healthy sensors on link {link}"),
        HkField(f"link_{n}_sensors", "B", None, f"sensors on link {link}"),
        _f(f"link_{n}_age_s", "s", f"oldest last-sample age of link {link} (NaN: none yet)"),
    )


def ident(name: str) -> str:
    """A name as an XTCE-safe identifier (no ``. / : [ ]`` or spaces)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


@dataclass(frozen=True)
class GroundLayout:
    """Everything of the packets that depends on the configuration.

    ``volumes`` and ``links`` in configuration order; ``sources`` the event
    sources the database enumerates (volumes, sensor ids, links, outputs).
    """

    volumes: tuple[str, ...]
    links: tuple[str, ...]
    sensors: tuple[tuple[str, str, str], ...]  # (sensor id, volume, link)
    sources: tuple[str, ...]
    apid_hk: int = APID_HK
    apid_events: int = APID_EVENTS

    @classmethod
    def from_config(
        cls, monitor, *, apid_hk: int = APID_HK, apid_events: int = APID_EVENTS
    ) -> GroundLayout:
        """From a ``MonitorConfig``."""
        volumes = tuple(v.name for v in monitor.volumes)
        sensors = tuple((f"{s.link}:{s.addr}", s.volume, s.link) for s in monitor.sensors)
        links = tuple(dict.fromkeys(s[2] for s in sensors))
        outputs = ("archive", "telemetry", "ccsds") + tuple(f"capture:{k}" for k in links)
        sources = tuple(dict.fromkeys(volumes + tuple(s[0] for s in sensors) + links + outputs))
        return cls(volumes, links, sensors, sources, apid_hk, apid_events)

    @property
    def system_fields(self) -> tuple[HkField, ...]:
        return LOOP_FIELDS + tuple(f for link in self.links for f in link_fields(link))

    def source_code(self, source: str) -> int:
        try:
            return self.sources.index(source)
        except ValueError:
            return SOURCE_OTHER


def struct_of(fields: tuple[HkField, ...]) -> struct.Struct:
    """The big-endian layout of a structure: the 2-octet SID, then ``fields``."""
    return struct.Struct(">H" + "".join(f.fmt for f in fields))


#: An event report's source data: event ID, source, transition, level, value, limit.
EVENT_STRUCT = struct.Struct(">HHBBdd")
