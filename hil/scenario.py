"""Scenario files (TOML): volumes, hatches, leaks, thermal, sensors, faults, timeline.

``load_scenario(name_or_path)`` reads a shipped scenario (``hil/scenarios/NAME.toml``)
or a file, checks every key and returns frozen dataclasses.  Any mistake raises
``common.errors.ConfigError(path, key, problem)``: one line naming the file,
the key (``leaks[0].volume``) and the problem.  The format is documented in
docs/scenarios.md.

Times are seconds when given as numbers, or strings with units: ``"90s"``,
``"15min"``, ``"8h"``, ``"2d"``, ``"1d 6h 30min"``, ``"250ms"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import bounds
from common.errors import ConfigError
from common.gas import KELVIN, SECONDS_PER_DAY
from common.tomltable import REQUIRED, Table, read_toml
from drivers.families import FAMILIES
from hil.polled_lines import LINK_OPTIONS

SCENARIO_DIR = Path(__file__).with_name("scenarios")
ORBIT_PERIOD_S = 92 * 60.0
#: The shortest physics step (s): ``hil.physics`` never steps shorter between events.
MIN_STEP_S = 1e-3
#: A sensor clock's error (ppm).
CLOCK_PPM = bounds.Range(-1e4, 1e4)
#: The finest quantization step of a sensor reading (Pa or K); 0 is none.
MIN_RESOLUTION = 1e-6
#: Make-up gas: a rate (kg/s) and a total (kg).
FLOW_KG_S = bounds.Range(0.0, 1e3, lo_open=True)
TOTAL_KG = bounds.Range(0.0, 1e9, lo_open=True)

_TIME_TOKEN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|min|s|h|d)")
_TIME_FULL = re.compile(r"\s*(?:(?:\d+(?:\.\d*)?|\.\d+)\s*(?:ms|min|s|h|d)\s*)+")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

LEAK_KINDS = ("orifice", "crack")
SENSOR_FAULT_KINDS = (
    "stuck",
    "spike",
    "step",
    "drift",
    "dropout",
    "noisy",
    "reboot",
    "out_of_range",
)
LINK_FAULT_KINDS = ("bitflip", "drop", "garbage", "disconnect")
EVENT_KINDS = ("hatch", "temperature_step")


def parse_time(value: Any) -> float:
    """Seconds from a number or a string with units; ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError("a time must be a number of seconds or a string like '8h'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _TIME_FULL.fullmatch(value):
        return sum(float(n) * _UNIT_S[u] for n, u in _TIME_TOKEN.findall(value))
    raise ValueError(f"bad time {value!r}: use seconds or a string like '90s', '15min', '8h', '2d'")


# --- the model ---------------------------------------------------------------


@dataclass(frozen=True)
class Thermal:
    """Prescribed gas temperature of one volume (see hil.thermal)."""

    setpoint_c: float
    orbit_amplitude_k: float = 0.0
    orbit_period_s: float = ORBIT_PERIOD_S
    orbit_phase_deg: float = 0.0
    slow_amplitude_k: float = 0.0
    slow_period_s: float = 86400.0
    slow_phase_deg: float = 0.0
    drift_k_per_day: float = 0.0


@dataclass(frozen=True)
class Volume:
    name: str
    volume_m3: float
    pressure_pa: float
    thermal: Thermal
    #: a docked vehicle the crew may leave in (the station file's ``escape_vehicle``)
    escape_vehicle: bool = False

    @property
    def temperature_c(self) -> float:
        return self.thermal.setpoint_c


@dataclass(frozen=True)
class Hatch:
    name: str
    volume_a: str
    volume_b: str
    open: bool
    conductance_kg_s_pa: float
    #: the volume its leaf swings into (``volume_a``, ``volume_b`` or None):
    #: for the station file and its isolation advisor; the physics ignores it
    opens_into: str | None = None

    @property
    def initially_open(self) -> bool:
        return self.open


@dataclass(frozen=True)
class LeakChange:
    """From ``t_s`` the leak's parameters become these (None: unchanged).

    With ``ramp`` the change is linear from the previous change (or the onset)
    to ``t_s`` instead of a step at ``t_s``.
    """

    t_s: float
    diameter_mm: float | None = None
    cd: float | None = None
    k_kg_s_pa2: float | None = None
    ramp: bool = False


@dataclass(frozen=True)
class Leak:
    """A leak into vacuum: ``orifice`` (choked, diameter and Cd) or ``crack``
    (viscous, mdot = k P^2).  Active from ``onset_s`` until ``end_s``."""

    name: str
    volume: str
    kind: str
    onset_s: float
    end_s: float
    diameter_mm: float = 0.0
    cd: float = 0.61
    k_kg_s_pa2: float = 0.0
    changes: tuple[LeakChange, ...] = ()


@dataclass(frozen=True)
class Inflow:
    """Make-up gas: ``kg_s`` into ``volume`` from ``start_s`` to ``end_s``."""

    name: str
    volume: str
    start_s: float
    end_s: float
    kg_s: float


@dataclass(frozen=True)
class Event:
    """A timeline event: a hatch opening/closing or a temperature step."""

    t_s: float
    kind: str
    target: str
    open: bool | None = None
    delta_k: float = 0.0
    tau_s: float = 300.0


#: what the devices of a link speak: a transducer family of ``drivers.families``
LINK_PROTOCOLS = tuple(FAMILIES)


@dataclass(frozen=True)
class Link:
    """A link; ``protocol`` its devices speak (a family of ``drivers.families``);
    ``echo``: the RS-485 converter of a polled link echoes requests."""

    name: str
    baud: int = 115200
    protocol: str = "native"
    echo: bool = False
    #: the family's own settings of its emulated devices (``hil.polled_lines.LINK_OPTIONS``)
    options: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Sensor:
    name: str
    link: str
    addr: int
    volume: str
    rate_hz: float = 1.0
    noise_pa: float = 2.0
    resolution_pa: float = 0.1
    bias_pa: float = 0.0
    drift_pa_per_day: float = 0.0
    lag_s: float = 0.5
    temp_noise_k: float = 0.02
    temp_resolution_k: float = 0.01
    temp_bias_k: float = 0.0
    temp_lag_s: float = 20.0
    clock_ppm: float = 0.0
    power_on_s: float = 0.0
    warmup_s: float = 0.0
    boot_s: float = 2.0
    range_min_pa: float = 50000.0
    range_max_pa: float = 110000.0
    max_rate_hz: float = 20.0
    autostart: bool = True
    model: str = "PTB330-EMU"
    serial: int = 0
    firmware: int = 0x0102


@dataclass(frozen=True)
class SensorFault:
    sensor: str
    kind: str
    start_s: float
    end_s: float
    magnitude_pa: float = 0.0
    rate_pa_per_day: float = 0.0
    factor: float = 1.0
    count: int = 1


@dataclass(frozen=True)
class LinkFault:
    """A link fault: at ``start_s`` once (``count``/``length``), or over
    [start_s, end_s) at a rate (``rate`` per byte or ``per_hour`` bursts)."""

    link: str
    kind: str
    start_s: float
    end_s: float
    count: int = 1
    rate: float = 0.0
    per_hour: float = 0.0
    length: int = 16
    duration_s: float = 5.0


@dataclass(frozen=True)
class Board:
    """A board of a station split (``[[boards]]``): its node name and the volumes it
    watches; it reads every link whose sensors are in them.  The emulator ignores
    it; ``harness.derive`` builds each board's configuration and the station file."""

    node: str
    volumes: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    description: str
    seed: int
    duration_s: float
    max_step_s: float
    nominal_pressure_pa: float | None
    min_pressure_pa: float | None
    volumes: tuple[Volume, ...]
    hatches: tuple[Hatch, ...]
    leaks: tuple[Leak, ...]
    inflows: tuple[Inflow, ...]
    events: tuple[Event, ...]
    links: tuple[Link, ...]
    sensors: tuple[Sensor, ...]
    faults: tuple[SensorFault, ...] = ()
    link_faults: tuple[LinkFault, ...] = ()
    boards: tuple[Board, ...] = ()

    def board_links(self, node: str) -> list[str]:
        """The links board ``node`` reads (those of its volumes' sensors), in order."""
        b = next(b for b in self.boards if b.node == node)
        return list(dict.fromkeys(s.link for s in self.sensors if s.volume in b.volumes))

    def volume(self, name: str) -> Volume:
        return next(v for v in self.volumes if v.name == name)

    def hatch_events(self) -> list[tuple[float, str, bool]]:
        """Operator inputs: (t_s, hatch name, is_open), in time order."""
        return [(e.t_s, e.target, bool(e.open)) for e in self.events if e.kind == "hatch"]

    def total_volume_m3(self) -> float:
        return sum(v.volume_m3 for v in self.volumes)

    @property
    def link_names(self) -> list[str]:
        return [lk.name for lk in self.links]


# --- reading -------------------------------------------------------------------


class _Table(Table):
    """A scenario's TOML table: ``common.tomltable.Table`` with times (``"90s"``, ``"8h"``)."""

    def time(self, name: str, default: Any = REQUIRED, *, allow_negative: bool = False) -> Any:
        v = self.raw(name, default)
        if name not in self.data:
            return v
        try:
            t = parse_time(v)
        except ValueError as exc:
            raise self.err(name, str(exc)) from None
        if not math.isfinite(t):
            raise self.err(name, "must be finite")
        if t < 0 and not allow_negative:
            raise self.err(name, f"must not be before time 0 (got {t} s)")
        why = bounds.problem(t, bounds.SIGNED_TIME_S)
        if why is not None:
            raise self.err(name, why)
        return t


def list_scenarios() -> list[str]:
    """Names of the shipped scenarios."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def resolve_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        return p
    shipped = SCENARIO_DIR / f"{name_or_path}.toml"
    if shipped.exists():
        return shipped
    raise ConfigError(
        name_or_path,
        "scenario",
        "no such file and no shipped scenario of that name (shipped: "
        + ", ".join(list_scenarios())
        + ")",
    )


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or a scenario file by path."""
    path = resolve_path(name_or_path)
    return parse_scenario(read_toml(path), str(path), default_name=path.stem)


def _sensor_fields(t: _Table, defaults: dict[str, Any]) -> dict[str, Any]:
    """Sensor keys shared by ``[[sensors]]`` and ``[sensor_defaults]``."""
    out: dict[str, Any] = {}

    def pick(name: str, getter, **kw):
        if t.has(name):
            out[name] = getter(name, **kw)
        elif name in defaults:
            out[name] = defaults[name]

    for name in ("rate_hz", "max_rate_hz"):
        pick(name, t.num, positive=True, rng=bounds.RATE_HZ)
    for name, rng in (
        ("noise_pa", bounds.PRESSURE_DELTA_PA),
        ("resolution_pa", bounds.PRESSURE_DELTA_PA),
        ("lag_s", bounds.TIME_S),
        ("temp_noise_k", bounds.TEMPERATURE_DELTA_K),
        ("temp_resolution_k", bounds.TEMPERATURE_DELTA_K),
        ("temp_lag_s", bounds.TIME_S),
        ("warmup_s", bounds.TIME_S),
        ("boot_s", bounds.TIME_S),
    ):
        pick(name, t.num, min=0.0, rng=rng)
    for name, rng in (
        ("bias_pa", bounds.PRESSURE_DELTA_PA),
        ("drift_pa_per_day", bounds.PER_DAY),
        ("temp_bias_k", bounds.TEMPERATURE_DELTA_K),
        ("clock_ppm", CLOCK_PPM),
        ("range_min_pa", bounds.PRESSURE_DELTA_PA),
        ("range_max_pa", bounds.PRESSURE_DELTA_PA),
    ):
        pick(name, t.num, rng=rng)
    for name in ("resolution_pa", "temp_resolution_k"):
        if 0 < out.get(name, 0.0) < MIN_RESOLUTION and t.has(name):
            raise t.err(name, f"must be 0 (none) or >= {MIN_RESOLUTION:g} (got {out[name]:g})")
    pick("power_on_s", t.time)
    pick("autostart", t.bool)
    pick("model", t.str)
    pick("link", t.ident)
    pick("firmware", t.int, lo=0, hi=0xFFFF)
    return out


def parse_scenario(data: dict, path: str, default_name: str = "scenario") -> Scenario:
    top = _Table(path, "", data)
    meta = top.sub("scenario")
    name = meta.str("name", default_name)
    description = meta.str("description", "")
    seed = meta.int("seed", 0, lo=0, hi=2**63 - 1)
    duration_s = meta.time("duration")
    if duration_s <= 0:
        raise meta.err("duration", "must be > 0")
    max_step_s = meta.time("max_step", 15.0)
    if max_step_s < MIN_STEP_S:
        raise meta.err("max_step", f"must be >= {MIN_STEP_S:g} s (got {max_step_s:g})")
    nominal_p = meta.num("nominal_pressure_pa", None, positive=True, rng=bounds.PRESSURE_PA)
    min_p = meta.num("min_pressure_pa", None, positive=True, rng=bounds.PRESSURE_PA)
    meta.done()

    # volumes
    volumes: list[Volume] = []
    for t in top.tables("volumes"):
        vname = t.ident("name")
        if any(v.name == vname for v in volumes):
            raise t.err("name", f"duplicate volume {vname!r}")
        vol = t.num("volume_m3", positive=True, rng=bounds.VOLUME_M3)
        p = t.num("pressure_pa", nominal_p or 101325.0, positive=True, rng=bounds.PRESSURE_PA)
        dk = bounds.TEMPERATURE_DELTA_K
        th = Thermal(
            setpoint_c=t.num("temperature_c", 22.0, min=-KELVIN + 1, rng=bounds.TEMPERATURE_C),
            orbit_amplitude_k=t.num("orbit_amplitude_k", 0.0, min=0.0, rng=dk),
            orbit_period_s=t.time("orbit_period", ORBIT_PERIOD_S),
            orbit_phase_deg=t.num("orbit_phase_deg", 0.0, rng=bounds.SIGNED_FACTOR),
            slow_amplitude_k=t.num("slow_amplitude_k", 0.0, min=0.0, rng=dk),
            slow_period_s=t.time("slow_period", 86400.0),
            slow_phase_deg=t.num("slow_phase_deg", 0.0, rng=bounds.SIGNED_FACTOR),
            drift_k_per_day=t.num("drift_k_per_day", 0.0, rng=dk),
        )
        if th.orbit_period_s <= 0 or th.slow_period_s <= 0:
            raise t.err("orbit_period", "periods must be > 0")
        ev = t.bool("escape_vehicle", False)
        t.done()
        volumes.append(Volume(vname, vol, p, th, ev))
    if not volumes:
        raise ConfigError(path, "volumes", "at least one [[volumes]] table is needed")
    vnames = {v.name for v in volumes}
    vol_by_name = {v.name: v for v in volumes}

    def volume_ref(t: _Table, key: str) -> str:
        v = t.str(key)
        if v not in vnames:
            raise t.err(key, f"unknown volume {v!r} (volumes: {', '.join(sorted(vnames))})")
        return v

    # hatches
    hatches: list[Hatch] = []
    for t in top.tables("hatches"):
        hname = t.ident("name")
        if any(h.name == hname for h in hatches):
            raise t.err("name", f"duplicate hatch {hname!r}")
        a, b = volume_ref(t, "a"), volume_ref(t, "b")
        if a == b:
            raise t.err("b", "a hatch joins two different volumes")
        is_open = t.bool("open", True)
        if t.has("conductance_kg_s_pa"):
            g = t.num("conductance_kg_s_pa", positive=True)
            if t.has("area_m2"):
                raise t.err("area_m2", "give area_m2 or conductance_kg_s_pa, not both")
        else:
            area = t.num("area_m2", 0.64, positive=True)
            # Orifice flow Cd A sqrt(2 rho dP) linearised at dP = 1 kPa.
            rho = 1.2
            g = 0.61 * area * math.sqrt(2 * rho / 1000.0)
        opens_into = t.str("opens_into", None)
        if opens_into is not None and opens_into not in (a, b):
            raise t.err("opens_into", f"must be {a!r} or {b!r} (the hatch's volumes)")
        t.done()
        hatches.append(Hatch(hname, a, b, is_open, g, opens_into))
    hnames = {h.name for h in hatches}

    # leaks
    leaks: list[Leak] = []
    for t in top.tables("leaks"):
        lname = t.ident("name", f"leak{len(leaks)}")
        vname = volume_ref(t, "volume")
        kind = t.str("kind")
        if kind not in LEAK_KINDS:
            raise t.err("kind", f"unknown leak kind {kind!r} (kinds: {', '.join(LEAK_KINDS)})")
        onset = t.time("onset", 0.0)
        end = t.time("end", math.inf)
        if end <= onset:
            raise t.err("end", "must be after onset")
        p_ref = t.num(
            "p_ref_pa", vol_by_name[vname].pressure_pa, positive=True, rng=bounds.PRESSURE_PA
        )

        def leak_params(tt: _Table, required: bool, kind=kind, p_ref=p_ref):
            d = cd = k = None
            if kind == "orifice":
                d = tt.num(
                    "diameter_mm", REQUIRED if required else None, min=0.0, rng=bounds.DIAMETER_MM
                )
                cd = tt.num("cd", 0.61 if required else None, positive=True)
                if cd is not None and cd > 1.0:
                    raise tt.err("cd", "a discharge coefficient is at most 1")
            else:
                if tt.has("k_kg_s_pa2") and tt.has("kg_per_day"):
                    raise tt.err("kg_per_day", "give k_kg_s_pa2 or kg_per_day, not both")
                if tt.has("kg_per_day"):
                    k = tt.num("kg_per_day", min=0.0) / SECONDS_PER_DAY / p_ref**2
                else:
                    k = tt.num("k_kg_s_pa2", REQUIRED if required else None, min=0.0)
            return d, cd, k

        d, cd, k = leak_params(t, True)
        changes: list[LeakChange] = []
        for ct in t.tables("changes"):
            ts = ct.time("t")
            if ts < onset or ts > end:
                raise ct.err("t", "a change must fall between the leak's onset and end")
            if changes and ts < changes[-1].t_s:
                raise ct.err("t", "changes must be in time order")
            cd_, cc, ck = leak_params(ct, False)
            ramp = ct.bool("ramp", False)
            ct.done()
            changes.append(LeakChange(ts, cd_, cc, ck, ramp))
        t.done()
        if any(lk.name == lname for lk in leaks):
            raise t.err("name", f"duplicate leak {lname!r}")
        leaks.append(
            Leak(lname, vname, kind, onset, end, d or 0.0, cd or 0.61, k or 0.0, tuple(changes))
        )

    # inflows
    inflows: list[Inflow] = []
    for t in top.tables("inflows"):
        iname = t.ident("name", f"inflow{len(inflows)}")
        vname = volume_ref(t, "volume")
        start = t.time("start")
        if t.has("end") and t.has("duration"):
            raise t.err("duration", "give end or duration, not both")
        end = start + t.time("duration") if t.has("duration") else t.time("end")
        if end <= start:
            raise t.err("end", "must be after start")
        if t.has("kg_s") and t.has("total_kg"):
            raise t.err("total_kg", "give kg_s or total_kg, not both")
        if t.has("total_kg"):
            kg_s = t.num("total_kg", positive=True, rng=TOTAL_KG) / (end - start)
        else:
            kg_s = t.num("kg_s", positive=True, rng=FLOW_KG_S)
        t.done()
        inflows.append(Inflow(iname, vname, start, end, kg_s))

    # events
    events: list[Event] = []
    for t in top.tables("events"):
        ts = t.time("t")
        if ts > duration_s:
            raise t.err("t", f"after the scenario's duration ({duration_s} s)")
        kind = t.str("kind")
        if kind == "hatch":
            h = t.str("hatch")
            if h not in hnames:
                raise t.err("hatch", f"unknown hatch {h!r}")
            ev = Event(ts, kind, h, open=t.bool("open"))
        elif kind == "temperature_step":
            ev = Event(
                ts,
                kind,
                volume_ref(t, "volume"),
                delta_k=t.num("delta_k", rng=bounds.TEMPERATURE_DELTA_K),
                tau_s=t.time("tau", 300.0),
            )
        else:
            raise t.err("kind", f"unknown event kind {kind!r} (kinds: {', '.join(EVENT_KINDS)})")
        t.done()
        events.append(ev)
    events.sort(key=lambda e: e.t_s)

    # links and sensors
    links: dict[str, Link] = {}
    for t in top.tables("links"):
        lname = t.ident("name")
        if lname in links:
            raise t.err("name", f"duplicate link {lname!r}")
        baud = t.int("baud", 115200, lo=300, hi=100_000_000)
        protocol = t.str("protocol", "native")
        if protocol not in LINK_PROTOCOLS:
            raise t.err("protocol", f"unknown protocol {protocol!r} ({', '.join(LINK_PROTOCOLS)})")
        echo = t.bool("echo", False)
        if echo and not FAMILIES[protocol].polled:
            raise t.err("echo", "only for a polled link")
        parse_options = LINK_OPTIONS.get(protocol)
        options = parse_options(t) if parse_options is not None else {}
        links[lname] = Link(lname, baud, protocol, echo, options)
        t.done()
    dt_ = top.sub("sensor_defaults")
    defaults = _sensor_fields(dt_, {})
    dt_.done()
    sensors: list[Sensor] = []
    addrs: set[tuple[str, int]] = set()
    for t in top.tables("sensors"):
        fields = _sensor_fields(t, defaults)
        sname = t.ident("name", f"s{len(sensors) + 1}")
        addr = t.int("addr", lo=1, hi=247)
        vname = volume_ref(t, "volume")
        link = fields.pop("link", "bus0")
        serial = t.int("serial", 100000 + len(sensors) + 1, lo=0, hi=2**32 - 1)
        t.done()
        if (link, addr) in addrs:
            raise t.err("addr", f"address {addr} already used on link {link!r}")
        if any(s.name == sname for s in sensors):
            raise t.err("name", f"duplicate sensor {sname!r}")
        addrs.add((link, addr))
        links.setdefault(link, Link(link))
        lo, hi = FAMILIES[links[link].protocol].addresses
        if not lo <= addr <= hi:  # e.g. Digiquartz IDs 1..98
            raise t.err("addr", f"must be in {lo}..{hi} on a {links[link].protocol} link")
        s = Sensor(name=sname, link=link, addr=addr, volume=vname, serial=serial, **fields)
        if s.range_max_pa <= s.range_min_pa:
            raise t.err("range_max_pa", "must be above range_min_pa")
        if s.rate_hz > s.max_rate_hz:
            raise t.err("rate_hz", f"above max_rate_hz ({s.max_rate_hz})")
        if len(s.model.encode("ascii", "replace")) > 16:
            raise t.err("model", "at most 16 ASCII characters")
        sensors.append(s)
    snames = {s.name for s in sensors}

    faults: list[SensorFault] = []
    for t in top.tables("faults"):
        sname = t.str("sensor")
        if sname not in snames:
            raise t.err("sensor", f"unknown sensor {sname!r}")
        kind = t.str("kind")
        if kind not in SENSOR_FAULT_KINDS:
            raise t.err(
                "kind", f"unknown sensor fault {kind!r} (kinds: {', '.join(SENSOR_FAULT_KINDS)})"
            )
        start = t.time("start")
        end = start + t.time("duration") if t.has("duration") else t.time("end", math.inf)
        if end < start:
            raise t.err("end", "must not be before start")
        f = SensorFault(
            sname,
            kind,
            start,
            end,
            magnitude_pa=t.num("magnitude_pa", 0.0),
            rate_pa_per_day=t.num("rate_pa_per_day", 0.0),
            factor=t.num("factor", 10.0 if kind == "noisy" else 1.0, min=0.0),
            count=t.int("count", 1, lo=1, hi=10**6),
        )
        t.done()
        faults.append(f)

    link_faults: list[LinkFault] = []
    for t in top.tables("link_faults"):
        lname = t.str("link")
        if lname not in links:
            raise t.err("link", f"unknown link {lname!r}")
        kind = t.str("kind")
        if kind not in LINK_FAULT_KINDS:
            raise t.err(
                "kind", f"unknown link fault {kind!r} (kinds: {', '.join(LINK_FAULT_KINDS)})"
            )
        start = t.time("start")
        end = (
            start + t.time("duration_window") if t.has("duration_window") else t.time("end", start)
        )
        if end < start:
            raise t.err("end", "must not be before start")
        lf = LinkFault(
            lname,
            kind,
            start,
            end,
            count=t.int("count", 1, lo=1, hi=10**6),
            rate=t.num("rate", 0.0, min=0.0),
            per_hour=t.num("per_hour", 0.0, min=0.0),
            length=t.int("length", 16, lo=1, hi=65536),
            duration_s=t.time("duration", 5.0),
        )
        if lf.rate > 1:
            raise t.err("rate", "a per-byte probability is at most 1")
        t.done()
        link_faults.append(lf)

    if not sensors:
        raise ConfigError(path, "sensors", "at least one [[sensors]] table is needed")
    boards = _boards(top, path, volumes, sensors)
    top.done()
    return Scenario(
        name=name,
        path=path,
        description=description,
        seed=seed,
        duration_s=duration_s,
        max_step_s=max_step_s,
        nominal_pressure_pa=nominal_p,
        min_pressure_pa=min_p,
        volumes=tuple(volumes),
        hatches=tuple(hatches),
        leaks=tuple(leaks),
        inflows=tuple(inflows),
        events=tuple(events),
        links=tuple(links.values()),
        sensors=tuple(sensors),
        faults=tuple(faults),
        link_faults=tuple(link_faults),
        boards=boards,
    )


def _boards(top: _Table, path: str, volumes: list[Volume], sensors: list[Sensor]):
    """``[[boards]]``: a station split across boards (none: one board has it all).

    Every volume is watched by exactly one board, and every link is read by one
    board: all the sensors of a link are in one board's volumes."""
    vnames = [v.name for v in volumes]
    owner: dict[str, str] = {}
    boards: list[Board] = []
    for t in top.tables("boards"):
        node = t.ident("node")
        if any(b.node == node for b in boards):
            raise t.err("node", f"duplicate board {node!r}")
        vols = t.raw("volumes")
        if not isinstance(vols, list) or not vols or not all(isinstance(v, str) for v in vols):
            raise t.err("volumes", "must be a non-empty list of volume names")
        for v in vols:
            if v not in vnames:
                raise t.err("volumes", f"unknown volume {v!r} (volumes: {', '.join(vnames)})")
            if v in owner:
                raise t.err("volumes", f"volume {v!r} is already board {owner[v]!r}'s")
            owner[v] = node
        t.done()
        boards.append(Board(node, tuple(vols)))
    if not boards:
        return ()
    unwatched = [v for v in vnames if v not in owner]
    if unwatched:
        raise ConfigError(path, "boards", f"no board watches {', '.join(unwatched)}")
    link_board: dict[str, str] = {}
    for s in sensors:
        b = owner[s.volume]
        if link_board.setdefault(s.link, b) != b:
            raise ConfigError(
                path,
                "boards",
                f"link {s.link!r} has sensors of boards {link_board[s.link]!r} and {b!r}: "
                "a link is read by one board",
            )
    return tuple(boards)
