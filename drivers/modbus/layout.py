"""Where a Modbus transmitter keeps pressure and temperature: the register layout.

A ``Layout`` says, per channel (pressure, temperature), the register, the
read function (3 holding, 4 input), the value type, the word order of 32-bit
values, a scale and offset (``value = raw * scale + offset``) and the unit the
result is in; ``plan()`` turns it into the fewest reads of at most
``max_registers`` each (pressure and temperature adjacent: one read).

The configuration keys (``[links.NAME]`` of a ``driver = "modbus"`` link, and
a scenario's ``[[links]]`` with ``protocol = "modbus"``, read by
``parse_link_options``):

    preset = "keller"          # KELLER Series 30/40 in Modbus mode: 0x0100 P1 + TOB1, one read
    max_registers = 4          # per read (KELLER 5.20 firmware: 4)
    [links.NAME.pressure]      # instead of a preset
    register = 0               # wire address 0..65535
    function = 3               # 3 (holding) or 4 (input registers)
    type = "float32"           # float32, int32, uint32, int16, uint16
    word_order = "big"         # 32-bit values: "big" (high word first) or "little"
    scale = 1.0                # value = raw * scale + offset, in `unit`
    offset = 0.0
    unit = "Pa"                # Pa, hPa, kPa, bar, mbar, psi
    [links.NAME.temperature]   # the same keys; unit C or K
    [links.NAME.devices.3]     # sensor 3 differs: preset / pressure / temperature /
                               # max_registers (the link's max_registers unless given)

``parse_link_options`` returns the validated keys in the same TOML shape
(``LinkConfig.options``, ``Link.options``), so a derived configuration can copy
them; ``layouts_from_options`` builds the ``Layout`` of every address from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import ConfigError

#: value types: registers taken, struct format of the big-endian value
TYPES: dict[str, tuple[int, str]] = {
    "float32": (2, ">f"),
    "int32": (2, ">i"),
    "uint32": (2, ">I"),
    "int16": (1, ">h"),
    "uint16": (1, ">H"),
}
#: pascal per unit
PRESSURE_UNITS = {
    "Pa": 1.0,
    "hPa": 100.0,
    "kPa": 1000.0,
    "bar": 1e5,
    "mbar": 100.0,
    "psi": 6894.757293168361,
}
#: deg C = value + offset
TEMPERATURE_UNITS = {"C": 0.0, "K": -273.15}
FUNCTIONS = (3, 4)
WORD_ORDERS = ("big", "little")
#: a Modbus RTU read carries at most 125 registers
MAX_REGISTERS = 125
MIN_ADDR, MAX_ADDR = 1, 247
BROADCAST_ADDR = 0


@dataclass(frozen=True, slots=True)
class Channel:
    """One value: ``register`` (wire address), ``function``, ``type``, ``word_order``,
    ``scale``/``offset`` (value in ``unit`` = raw * scale + offset)."""

    register: int
    function: int = 3
    type: str = "float32"
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = "Pa"

    @property
    def count(self) -> int:
        return TYPES[self.type][0]

    @property
    def is_float(self) -> bool:
        return self.type == "float32"

    def to_si(self, raw: float) -> float:
        """Raw register value -> Pa (pressure units) or deg C (temperature units)."""
        v = raw * self.scale + self.offset
        if self.unit in PRESSURE_UNITS:
            return v * PRESSURE_UNITS[self.unit]
        return v + TEMPERATURE_UNITS[self.unit]

    def from_si(self, si: float) -> float:
        """Pa or deg C -> the raw register value (the emulated device's side)."""
        if self.unit in PRESSURE_UNITS:
            v = si / PRESSURE_UNITS[self.unit]
        else:
            v = si - TEMPERATURE_UNITS[self.unit]
        return (v - self.offset) / self.scale


@dataclass(frozen=True, slots=True)
class Read:
    """One FC3/FC4 request: ``count`` registers from ``start``."""

    function: int
    start: int
    count: int


@dataclass(frozen=True)
class Layout:
    """Pressure (and temperature) channels of one device; ``model`` for its identity."""

    pressure: Channel
    temperature: Channel | None = None
    max_registers: int = MAX_REGISTERS
    model: str = "Modbus"
    preset: str | None = None
    #: the reads of a sample, pressure's first; (read index, register offset) per channel
    reads: tuple[Read, ...] = field(init=False)
    where: dict = field(init=False)

    def __post_init__(self):
        reads, where = plan(self.pressure, self.temperature, self.max_registers)
        object.__setattr__(self, "reads", reads)
        object.__setattr__(self, "where", where)


def plan(
    pressure: Channel, temperature: Channel | None, max_registers: int
) -> tuple[tuple[Read, ...], dict]:
    """The reads of one sample: one when both channels are adjacent (no gap: a
    device may refuse registers it does not map) with the same function and fit
    in ``max_registers``, else one each (pressure first)."""
    if temperature is not None and temperature.function == pressure.function:
        lo = min(pressure.register, temperature.register)
        hi = max(pressure.register + pressure.count, temperature.register + temperature.count)
        adjacent = hi - lo == pressure.count + temperature.count  # no gap, no overlap
        if adjacent and hi - lo <= max_registers:
            read = Read(pressure.function, lo, hi - lo)
            return (read,), {
                "pressure": (0, pressure.register - lo),
                "temperature": (0, temperature.register - lo),
            }
    reads = [Read(pressure.function, pressure.register, pressure.count)]
    where = {"pressure": (0, 0)}
    if temperature is not None:
        reads.append(Read(temperature.function, temperature.register, temperature.count))
        where["temperature"] = (1, 0)
    return tuple(reads), where


#: KELLER Series 30/40 (class 5.20) in Modbus mode: 0x0100 P1 (bar) + 0x0102 TOB1 (deg C)
KELLER = Layout(
    pressure=Channel(0x0100, 3, "float32", "big", 1.0, 0.0, "bar"),
    temperature=Channel(0x0102, 3, "float32", "big", 1.0, 0.0, "C"),
    max_registers=4,
    model="KELLER (Modbus)",
    preset="keller",
)
PRESETS = {"keller": KELLER}
#: KELLER firmware registers (0x020E/0x020F), read once at identification
KELLER_FIRMWARE = Read(3, 0x020E, 2)

_CHANNEL_KEYS = ("register", "function", "type", "word_order", "scale", "offset", "unit")
_LAYOUT_KEYS = ("preset", "max_registers", "pressure", "temperature")


def _parse_channel(t, which: str) -> dict:
    """One ``[pressure]``/``[temperature]`` table -> its validated keys (defaults filled)."""
    units = PRESSURE_UNITS if which == "pressure" else TEMPERATURE_UNITS
    reg = t.int("register", lo=0, hi=65535)
    fn = t.int("function", 3)
    if fn not in FUNCTIONS:
        raise t.err("function", f"must be 3 (holding) or 4 (input registers) (got {fn})")
    typ = t.str("type", "float32")
    if typ not in TYPES:
        raise t.err("type", f"unknown type {typ!r} ({', '.join(TYPES)})")
    if reg + TYPES[typ][0] - 1 > 65535:
        raise t.err("register", f"a {typ} at {reg} runs past register 65535")
    order = t.str("word_order", "big")
    if order not in WORD_ORDERS:
        raise t.err("word_order", f'must be "big" or "little" (got {order!r})')
    scale = t.num("scale", 1.0)
    if scale == 0:
        raise t.err("scale", "must not be 0")
    offset = t.num("offset", 0.0)
    unit = t.str("unit", "Pa" if which == "pressure" else "C")
    if unit not in units:
        raise t.err("unit", f"unknown {which} unit {unit!r} ({', '.join(units)})")
    t.done()
    return dict(
        register=reg,
        function=fn,
        type=typ,
        word_order=order,
        scale=float(scale),
        offset=float(offset),
        unit=unit,
    )


def _parse_layout(t, *, default_preset: str | None) -> dict:
    out: dict = {}
    preset = t.str("preset", None)
    generic = t.has("pressure") or t.has("temperature")
    if preset is not None:
        if preset not in PRESETS:
            raise t.err("preset", f"unknown preset {preset!r} ({', '.join(PRESETS)})")
        if generic:
            key = "pressure" if t.has("pressure") else "temperature"
            raise t.err(key, f"not with preset = {preset!r} (a preset sets both channels)")
        out["preset"] = preset
    elif generic:
        if not t.has("pressure"):
            raise t.err("pressure", "missing: a [pressure] table (register, type, unit...)")
        out["pressure"] = _parse_channel(t.sub("pressure"), "pressure")
        if not t.has("temperature"):
            raise t.err("temperature", "missing: a [temperature] table (register, type, unit...)")
        out["temperature"] = _parse_channel(t.sub("temperature"), "temperature")
    elif default_preset is not None:
        out["preset"] = default_preset
    else:
        raise t.err("preset", 'missing: preset = "keller" or [pressure] and [temperature] tables')
    if t.has("max_registers"):
        out["max_registers"] = t.int("max_registers", lo=1, hi=MAX_REGISTERS)
    return out


def parse_link_options(t, *, default_preset: str | None = None) -> dict:
    """The Modbus keys of a link table (``common.tomltable.Table``), validated, in
    their TOML shape; ``default_preset`` when neither a preset nor channels are given."""
    out = _parse_layout(t, default_preset=default_preset)
    if t.has("devices"):
        devs = t.sub("devices", "a table of [devices.ADDR] tables")
        per: dict = {}
        for key in devs.data:
            if not key.isdigit() or not MIN_ADDR <= int(key) <= MAX_ADDR:
                raise devs.err(key, f"must be a sensor address {MIN_ADDR}..{MAX_ADDR}")
            d = devs.sub(key)
            per[key] = _parse_layout(d, default_preset=None)
            d.done()
            if "max_registers" in out and "max_registers" not in per[key]:
                per[key]["max_registers"] = out["max_registers"]  # the link's, inherited
            _check(t, f"devices.{key}", per[key])
        devs.done()
        out["devices"] = per
    _check(t, "", out)
    return out


def _check(t, where: str, opts: dict) -> None:
    """A layout whose channels cannot be read (a float wider than max_registers)."""
    try:
        layout_from_options(opts)
    except ValueError as exc:
        key = f"{where}.max_registers" if where else "max_registers"
        raise ConfigError(t.path, t.name(key), str(exc)) from None


def _channel(keys: dict, unit: str) -> Channel:
    fields = {k: v for k, v in keys.items() if k in _CHANNEL_KEYS}
    fields.setdefault("unit", unit)
    return Channel(**fields)


def layout_from_options(opts: dict) -> Layout:
    """The ``Layout`` of one device from its validated keys (``parse_link_options``)."""
    if "preset" in opts:
        base = PRESETS[opts["preset"]]
        if "max_registers" in opts:
            base = Layout(
                base.pressure, base.temperature, opts["max_registers"], base.model, base.preset
            )
        layout = base
    else:
        p = _channel(opts["pressure"], "Pa")
        tt = opts.get("temperature")
        t = _channel(tt, "C") if tt else None
        layout = Layout(p, t, opts.get("max_registers", MAX_REGISTERS))
    for ch in (layout.pressure, layout.temperature):
        if ch is not None and ch.count > layout.max_registers:
            raise ValueError(f"a {ch.type} needs {ch.count} registers > max_registers")
    return layout


def layouts_from_options(opts: dict) -> tuple[Layout, dict[int, Layout]]:
    """The link's ``Layout`` and the per-address ones of ``[devices.ADDR]``."""
    base = layout_from_options({k: v for k, v in opts.items() if k in _LAYOUT_KEYS})
    per = {int(a): layout_from_options(o) for a, o in opts.get("devices", {}).items()}
    return base, per
