"""``ModbusDriver``: a ``driver = "modbus"`` link, polled (docs/drivers.md, "Modbus RTU").

Per device, a register ``Layout`` (``drivers.modbus.layout``: the ``keller``
preset or the configured channels) and its reads: pressure and temperature
in one FC3/FC4 read when they sit within ``max_registers`` of each other
(KELLER: 0x0100, 4 registers: P1 + TOB1), else one read each.  Every poll
makes those reads and hands one SAMPLE record (pressure in Pa, temperature in
deg C, status bits from ``values``) whose time is the middle of the pressure
transaction.  The sensor clock ``t_us`` counts from the start of polling.

Identification: the ``keller`` preset reads 0x020E/0x020F (class.group and
firmware year.week) once; every device then gets an ``IdentityFrame`` (model
from the preset or "Modbus", serial 0, range NaN: Modbus has no standard
register for them) after its first good sample.

Exceptions 1-4 are counted by code and end the poll (the device is retried
after a backoff); no valid reply (silence, noise, bad CRC) is counted and
repeated ``retries`` times after a backoff; a device that stays silent is
polled ever more rarely (``PolledDriver``) and goes stale in the monitor.
Replies are matched and decoded by ``drivers.modbus.fast``;
``decode = "pymodbus"`` decodes each reply through ``drivers.modbus.adapter``
instead (the bench's comparison; same results).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers.match import MatchStatus
from drivers.modbus import fast
from drivers.modbus.layout import KELLER_FIRMWARE, Channel, Layout, Read, layouts_from_options
from drivers.modbus.values import sample_status
from drivers.modbus.wire import REQUEST_SIZE, reply_size
from drivers.polled import (
    DeviceState,
    PolledDriver,
    Scan,
    ScanStatus,
    TxResult,
    TxStatus,
    line_budget,
    scan_of_match,
    wire_s,
)

#: reply delay assumed for the line budget (a KELLER answers reads in about 2 ms)
REPLY_DELAY_S = 0.002
#: above this baud rate the silent interval is fixed (Modbus over serial line, 2.5.1.1)
FIXED_SILENCE_ABOVE_BAUD = 19200
FIXED_SILENT_S = 0.00175
DECODERS = ("fast", "pymodbus")


def silent_interval_s(baudrate: int) -> float:
    """The 3.5-character silence between frames (1.75 ms above 19200 baud)."""
    if baudrate > FIXED_SILENCE_ABOVE_BAUD:
        return FIXED_SILENT_S
    return wire_s(3.5, baudrate)


def read_transaction_s(count: int, baudrate: int) -> float:
    """Line time of one read of ``count`` registers: request, reply delay, reply, silence."""
    return (
        wire_s(REQUEST_SIZE + reply_size(count), baudrate)
        + REPLY_DELAY_S
        + silent_interval_s(baudrate)
    )


def modbus_budget(link: str, rates_hz: Sequence[float], baudrate: int, options: dict):
    """The ``LineBudget`` of Modbus sensors at ``rates_hz`` on one line (the
    slowest device layout of the link for every sensor)."""
    base, per = layouts_from_options(options) if options else (_default_layout(), {})
    worst = max([base, *per.values()], key=lambda lay: _sample_s(lay, baudrate))
    reads = len(worst.reads)
    return line_budget(link, rates_hz, _sample_s(worst, baudrate) / reads, reads, baudrate)


def _sample_s(layout: Layout, baudrate: int) -> float:
    return sum(read_transaction_s(r.count, baudrate) for r in layout.reads)


def _default_layout() -> Layout:
    from drivers.modbus.layout import KELLER

    return KELLER


@dataclass(frozen=True)
class _Plan:
    """A device's compiled reads: request bytes, expected reply, and decoders."""

    layout: Layout
    reads: tuple[Read, ...]
    requests: tuple[bytes, ...]
    pressure: tuple[int, Callable[[bytes], float], Channel, int]
    temperature: tuple[int, Callable[[bytes], float], Channel, int] | None


def _compile(addr: int, layout: Layout) -> _Plan:
    def chan(which: str, ch: Channel | None):
        if ch is None:
            return None
        i, off = layout.where[which]
        return (i, fast.value_decoder(ch, off), ch, off)

    return _Plan(
        layout,
        layout.reads,
        tuple(fast.read_request(addr, r.function, r.start, r.count) for r in layout.reads),
        chan("pressure", layout.pressure),  # type: ignore[arg-type]
        chan("temperature", layout.temperature),
    )


class ModbusDriver(PolledDriver):
    """Modbus RTU devices on one RS-485 line (see the module docstring and ``PolledDriver``).

    The layout keys (``preset``, ``pressure``, ``temperature``, ``max_registers``,
    ``devices``) are ``LinkConfig.options`` as ``drivers.modbus.layout`` validated
    them; none at all means the ``keller`` preset.
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        preset: str | None = None,
        pressure: dict | None = None,
        temperature: dict | None = None,
        max_registers: int | None = None,
        devices: dict | None = None,
        decode: str = "fast",
        **options,
    ):
        baud = int(options.get("baudrate", 115200))
        options.setdefault("silent_s", silent_interval_s(baud))
        options.setdefault("reply_delay_s", REPLY_DELAY_S)
        super().__init__(name, url, **options)
        if decode not in DECODERS:
            raise ValueError(f"decode must be one of {DECODERS} (got {decode!r})")
        opts = {
            k: v
            for k, v in dict(
                preset=preset,
                pressure=pressure,
                temperature=temperature,
                max_registers=max_registers,
                devices=devices,
            ).items()
            if v is not None
        }
        if "preset" not in opts and "pressure" not in opts:
            opts["preset"] = "keller"
        base, per = layouts_from_options(opts)
        self.plans = {t.addr: _compile(t.addr, per.get(t.addr, base)) for t in self.targets}
        self.use_pymodbus = decode == "pymodbus"
        if self.use_pymodbus:
            from drivers.modbus import adapter

            self._adapter = adapter

    # -- framing -------------------------------------------------------------
    def _scan(self, buf: bytearray, start: int, expect: object) -> Scan:
        addr, fn, count = expect  # type: ignore[misc]
        m = fast.match_reply(buf, addr, fn, count, start)
        if self.use_pymodbus and m.status is MatchStatus.REPLY:
            # the whole frame: the adapter parses it again
            return Scan(ScanStatus.REPLY, data=bytes(buf[start : start + m.size]), size=m.size)
        scan = scan_of_match(m)
        if scan is not None:
            return scan
        n = fast.frame_size(buf, start)  # another device's (or read's) complete frame
        if n:
            return Scan(ScanStatus.BAD, size=n, reason="foreign")
        return Scan(ScanStatus.BAD, size=1, reason="noise")

    # -- transactions ----------------------------------------------------------------
    def call(self, dev: DeviceState, read: Read, request: bytes | None = None) -> TxResult:
        """One read of ``dev``; no valid reply -> repeated ``retries`` times after a backoff."""
        req = request or fast.read_request(dev.addr, read.function, read.start, read.count)
        expect = (dev.addr, read.function, read.count)
        size = reply_size(read.count)
        attempt = 0
        while True:
            r = self.transact(req, expect, size)
            if r.status is not TxStatus.TIMEOUT:
                return r
            attempt += 1
            if attempt > self.retries or self._stop_poll.is_set():
                return r
            self.backoff(attempt)

    def _value(self, data: bytes, spec) -> float:
        _, decode, ch, off = spec
        if self.use_pymodbus:
            _, _, regs, _ = self._adapter.parse_reply(data)
            raw = self._adapter.channel_value(regs, ch, off)
        else:
            raw = decode(data)
        return ch.to_si(raw)

    def identify(self, dev: DeviceState, plan: _Plan) -> bool:
        """The ``keller`` preset: 0x020E/0x020F (class.group, firmware); False on no reply."""
        model, firmware = plan.layout.model, 0
        if plan.layout.preset == "keller":
            r = self.call(dev, KELLER_FIRMWARE)
            if r.status in (TxStatus.TIMEOUT, TxStatus.LINK_DOWN):
                return False
            if r.ok:
                data = r.data
                if self.use_pymodbus:
                    regs = self._adapter.parse_reply(data)[2]
                    data = b"".join(x.to_bytes(2, "big") for x in regs)
                cls, group, year, week = data[0], data[1], data[2], data[3]
                model = f"KELLER {cls}.{group} (Modbus)"
                firmware = year << 8 | week
        dev.info.update(model=model, firmware=firmware, identified=True)
        return True

    def _service(self, dev: DeviceState) -> bool:
        plan = self.plans[dev.addr]
        if not dev.info.get("identified") and not self.identify(dev, plan):
            return False
        results: list[TxResult] = []
        for read, req in zip(plan.reads, plan.requests, strict=True):
            r = self.call(dev, read, req)
            results.append(r)
            if not r.ok:
                break
        p = results[0]
        if not p.ok:
            return False
        p_pa = self._value(p.data, plan.pressure)
        t_c = math.nan
        if plan.temperature is not None:
            i = plan.temperature[0]
            if i < len(results) and results[i].ok:
                t_c = self._value(results[i].data, plan.temperature)
        if not dev.info.get("announced"):
            dev.info["announced"] = True
            self.emit_identity(
                dev, model=dev.info["model"], serial=0, firmware=dev.info["firmware"]
            )
        self.emit_sample(dev, p.t_mid_s, p_pa, t_c, sample_status(p_pa, t_c))
        return True
