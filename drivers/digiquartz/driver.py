"""``DigiquartzDriver``: a ``driver = "digiquartz"`` link (docs/drivers.md, "Digiquartz").

Start-up, per device: SN, MN, VR (identification -> an ``IdentityFrame``),
UN (read, or written with ``EW`` when the link sets ``unit``), PI and TI (the
pressure and temperature integration times, ms), which set that device's
reply windows: TRANSDUCERS.md says the reply delay of P3 is about PI + TI,
so P3 waits ``reply_timeout_s`` + 1.25 (PI + TI), Q3 ``reply_timeout_s`` +
1.25 TI, a parameter ``reply_timeout_s``.

``mode = "polled"`` (default): every poll is P3 then Q3, one SAMPLE (pressure
converted from the device's unit to Pa, temperature in deg C) whose time is
the middle of the P3 transaction.  A Q3 without a valid reply reuses the
device's last temperature (a sample waits for a first one).

``mode = "continuous"``: the driver starts ``command`` (P4 or P7) once per
device and then reads lines as they come (a sample's time is its arrival,
one kept per configured period: the device's faster output is decimated).
P7 sends the temperature once, then pressure: its first line is taken as
the temperature.  P4 sends pressure only: the driver reads Q3 before starting
it.  Both are restarted every ``TEMPERATURE_REFRESH_S`` (a fresh temperature)
and after a silence of three output periods plus two poll periods
(``reinitialisations`` counts those).  A restart first reads UN: the command
stops the output, and lines still on their way cannot pass for its ``UN=``
reply.

Receive side: a line from another ID is skipped whole (``foreign_replies``);
anything else that is not the expected reply's shape is noise, dropped up to
the next ``*`` (``bytes_discarded``).  No valid reply -> a timeout, repeated
``retries`` times after a backoff; the device is then backed off.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.digiquartz import wire
from drivers.digiquartz.values import UNIT_NAMES, pa_per_unit, unit_code, unit_name
from drivers.digiquartz.wire import LineKind
from drivers.link import LinkDownError
from drivers.polled import (
    _EMPTY,
    DeviceState,
    LineBudget,
    PolledDriver,
    Scan,
    ScanStatus,
    TxResult,
    TxStatus,
    line_budget,
    wire_s,
)

log = logging.getLogger(__name__)

#: the device is ready again this long after its reply (assumed)
SILENT_S = 0.001
#: integration times assumed when a link does not say (ms)
DEFAULT_INTEGRATION_MS = 100
#: the reply delay of P3 is "about" PI + TI: the window allows this much more
DELAY_MARGIN = 1.25
#: bytes on the wire: a request ``*0100P3\r\n``; a reply ``*0001`` + 9-10 digits + CR LF
REQUEST_CHARS = 9
REPLY_CHARS = 17
#: a continuous output is restarted this often (sample-clock s) for a fresh temperature
TEMPERATURE_REFRESH_S = 60.0
MODES = ("polled", "continuous")
STREAM_COMMANDS = ("P4", "P7")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class StreamBudget(LineBudget):
    """A continuous link's budget: its lines at the baud rate, and the devices'
    output period (``command``'s integration) against the fastest sensor's period."""

    output_period_s: float = 0.0
    command: str = "P7"

    @property
    def fits(self) -> bool:
        return self.need_s <= self.cycle_s and self.output_period_s <= self.cycle_s * 1.0001

    def describe(self) -> str:
        if self.output_period_s > self.cycle_s * 1.0001:
            return (
                f"{self.link}: {self.command} outputs every {self.output_period_s * 1e3:.0f} ms "
                f"(the integration times), slower than {1 / self.cycle_s:g} Hz"
            )
        return LineBudget.describe(self)


def p3_transaction_s(baudrate: int, pi_ms: float, ti_ms: float) -> float:
    """Line time of one P3: request, reply, the integration (PI + TI), silence."""
    return wire_s(REQUEST_CHARS + REPLY_CHARS, baudrate) + (pi_ms + ti_ms) / 1e3 + SILENT_S


def q3_transaction_s(baudrate: int, ti_ms: float) -> float:
    """Line time of one Q3: request, reply, the temperature integration, silence."""
    return wire_s(REQUEST_CHARS + REPLY_CHARS, baudrate) + ti_ms / 1e3 + SILENT_S


def output_period_s(command: str, pi_ms: float, ti_ms: float) -> float:
    """Seconds between continuous lines: P4 integrates both, P7 pressure only."""
    return (pi_ms + ti_ms) / 1e3 if command == "P4" else pi_ms / 1e3


def digiquartz_budget(
    link: str, rates_hz: Sequence[float], baudrate: int, options: dict | None = None
) -> LineBudget:
    """The ``LineBudget`` of Digiquartz sensors at ``rates_hz`` on one line, with the
    link's options (mode, command, integration times)."""
    o = options or {}
    pi = float(o.get("pressure_integration_ms", DEFAULT_INTEGRATION_MS))
    ti = float(o.get("temperature_integration_ms", DEFAULT_INTEGRATION_MS))
    if o.get("mode", "polled") == "continuous":
        cmd = o.get("command", "P7")
        b = line_budget(link, rates_hz, wire_s(REPLY_CHARS, baudrate), 1, baudrate)
        return StreamBudget(
            b.link,
            b.sensors,
            b.reads,
            b.rates_hz,
            b.need_s,
            b.cycle_s,
            b.baudrate,
            output_period_s=output_period_s(cmd, pi, ti),
            command=cmd,
        )
    per_sample = p3_transaction_s(baudrate, pi, ti) + q3_transaction_s(baudrate, ti)
    return line_budget(link, rates_hz, per_sample / 2, 2, baudrate)


def link_options(t) -> dict:
    """The digiquartz keys of a ``[links.NAME]`` table (``common.tomltable.Table``)."""
    out: dict = {}
    if t.has("unit"):
        name = t.str("unit")
        code = unit_code(name)
        if code is None:
            raise t.err("unit", f"unknown unit {name!r} ({', '.join(UNIT_NAMES)})")
        out["unit"] = unit_name(code)
    mode = t.str("mode", "polled")
    if mode not in MODES:
        raise t.err("mode", f"unknown mode {mode!r} ({', '.join(MODES)})")
    out["mode"] = mode
    if t.has("command"):
        cmd = t.str("command")
        if mode != "continuous":
            raise t.err("command", 'only with mode = "continuous"')
        if cmd not in STREAM_COMMANDS:
            raise t.err("command", f"unknown command {cmd!r} ({', '.join(STREAM_COMMANDS)})")
        out["command"] = cmd
    elif mode == "continuous":
        out["command"] = "P7"
    for key in ("pressure_integration_ms", "temperature_integration_ms"):
        out[key] = t.int(key, DEFAULT_INTEGRATION_MS, lo=1, hi=60_000)
    return out


class DigiquartzDriver(PolledDriver):
    """Digiquartz transducers on one line (see the module docstring and ``PolledDriver``).

    ``unit``: a unit name to set at start-up (None: read it and convert);
    ``mode``: "polled" or "continuous" with ``command`` P4 or P7;
    ``pressure_integration_ms``/``temperature_integration_ms``: what the line
    budget assumed (the device's own PI/TI, read at start-up, set its windows).
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        unit: str | None = None,
        mode: str = "polled",
        command: str = "P7",
        pressure_integration_ms: int = DEFAULT_INTEGRATION_MS,
        temperature_integration_ms: int = DEFAULT_INTEGRATION_MS,
        **options,
    ):
        options.setdefault("silent_s", SILENT_S)
        super().__init__(name, url, **options)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (got {mode!r})")
        if command not in STREAM_COMMANDS:
            raise ValueError(f"command must be one of {STREAM_COMMANDS} (got {command!r})")
        self.unit_code = None if unit is None else unit_code(unit)
        if unit is not None and self.unit_code is None:
            raise ValueError(f"unknown unit {unit!r}")
        self.mode = mode
        self.command = command
        self.assumed_ms = (int(pressure_integration_ms), int(temperature_integration_ms))
        self._by_id = {d.addr: d for d in self.devices}
        self._stream = bytearray()

    # -- framing -------------------------------------------------------------
    def _scan(self, buf: bytearray, start: int, expect: object) -> Scan:
        dev_id, cmd = expect  # type: ignore[misc]
        ln = wire.scan_line(buf, start)
        if ln.kind is LineKind.NEED_MORE:
            return Scan(ScanStatus.NEED_MORE)
        if ln.kind is LineKind.NOISE or ln.dest != wire.HOST_ID:
            return Scan(ScanStatus.BAD, size=ln.size, reason="noise")
        if ln.src != dev_id:
            return Scan(ScanStatus.BAD, size=ln.size, reason="foreign")
        if cmd in wire.NUMERIC:
            ok = wire.parse_number(ln.payload) is not None
            data = ln.payload
        else:
            value = wire.parse_parameter(ln.payload, cmd)
            ok = value is not None
            data = value.encode("ascii") if ok else b""
        if not ok:  # the right device, not the answer to this command
            return Scan(ScanStatus.BAD, size=ln.size, reason="noise")
        return Scan(ScanStatus.REPLY, data=data, size=ln.size)

    # -- transactions ----------------------------------------------------------
    def integration_s(self, dev: DeviceState, cmd: str) -> float:
        """How long ``dev`` integrates before it answers ``cmd`` (its reply delay), s."""
        pi, ti = dev.info.get("integration_ms", self.assumed_ms)
        return {"P3": pi + ti, "Q3": ti, "P1": pi, "Q1": ti}.get(cmd, 0) / 1e3

    def window_s(self, dev: DeviceState, cmd: str) -> float:
        """The reply window of ``cmd`` to ``dev``: the link's plus its integration."""
        return self.reply_timeout_s + DELAY_MARGIN * self.integration_s(dev, cmd)

    def call(self, dev: DeviceState, cmd: str, request: bytes | None = None) -> TxResult:
        """``cmd`` to ``dev`` (or the given ``request`` line, answered as ``cmd``);
        no valid reply -> repeated ``retries`` times after a backoff."""
        req = request if request is not None else wire.command(dev.addr, cmd)
        expect = (dev.addr, cmd)
        window = self.window_s(dev, cmd)
        attempt = 0
        while True:
            r = self.transact(
                req,
                expect,
                REPLY_CHARS,
                reply_timeout_s=window,
                reply_delay_s=self.integration_s(dev, cmd),
            )
            if r.ok or r.status is TxStatus.LINK_DOWN:
                return r
            attempt += 1
            if attempt > self.retries or self._stop_poll.is_set():
                return r
            self.backoff(attempt)

    def identify(self, dev: DeviceState) -> bool:
        """SN, MN, VR -> an ``IdentityFrame``; UN (read or written); PI and TI."""
        sn = self.call(dev, "SN")
        if not sn.ok:
            return False
        mn = self.call(dev, "MN")
        vr = self.call(dev, "VR")
        if not (mn.ok and vr.ok):
            return False
        if not self._unit(dev):
            return False
        integ = []
        for cmd, assumed in zip(("PI", "TI"), self.assumed_ms, strict=True):
            r = self.call(dev, cmd)
            if r.status is TxStatus.LINK_DOWN:
                return False
            v = int(r.data) if r.ok and r.data.isdigit() else None
            integ.append(v if v is not None and 0 < v <= 600_000 else assumed)
        dev.info["integration_ms"] = tuple(integ)
        if integ[0] > self.assumed_ms[0] or integ[1] > self.assumed_ms[1]:
            log.warning(
                "link %s: device %02d integrates PI %d ms, TI %d ms: longer than the "
                "line budget assumed (%d, %d ms)",
                self.name,
                dev.addr,
                *integ,
                *self.assumed_ms,
            )
        serial = min(_int(sn.data) or 0, 2**32 - 1)
        model = mn.data.decode("ascii")
        dev.info.update(serial=serial, model=model, firmware=vr.data.decode("ascii"))
        dev.info["identified"] = True
        self.emit_identity(
            dev,
            model=f"DQ {model}"[:16],
            serial=serial,
            firmware=_firmware(vr.data.decode("ascii")),
        )
        return True

    def _unit(self, dev: DeviceState) -> bool:
        """Read UN, or write it (``EW`` + ``UN=``) and take what the device answers."""
        if self.unit_code is None:
            r = self.call(dev, "UN")
        else:
            req = wire.write_command(dev.addr, "UN", self.unit_code)
            r = self.call(dev, "UN", req)
        if not r.ok:
            return False
        code = int(r.data) if r.data.isdigit() else None
        if code is None or not 1 <= code <= 8:
            log.warning("link %s: device %02d reports unit %r", self.name, dev.addr, r.data)
            return False
        if self.unit_code is not None and code != self.unit_code:
            log.warning(
                "link %s: device %02d kept unit %s (asked for %s)",
                self.name,
                dev.addr,
                unit_name(code),
                unit_name(self.unit_code),
            )
        dev.info["unit"] = code
        dev.info["pa_per_unit"] = pa_per_unit(code)
        return True

    # -- one poll ----------------------------------------------------------------
    def _service(self, dev: DeviceState) -> bool:
        if not dev.info.get("identified") and not self.identify(dev):
            return False
        if self.mode == "continuous":
            return self._keep_streaming(dev)
        p = self.call(dev, "P3")
        if not p.ok:
            return False
        t = self.call(dev, "Q3")
        if t.ok:
            dev.info["temperature_c"] = float(t.data)
        temp = dev.info.get("temperature_c")
        if temp is None:
            return False
        self.emit_sample(dev, p.t_mid_s, float(p.data) * dev.info["pa_per_unit"], temp, 0)
        return True

    # -- continuous output ---------------------------------------------------------
    def _silence_s(self, dev: DeviceState) -> float:
        pi, ti = dev.info.get("integration_ms", self.assumed_ms)
        first = (pi + ti) / 1e3  # P7: the temperature, then the first pressure
        return (
            first + 3 * output_period_s(self.command, pi, ti) + 2 * dev.period_s / self.speed
        ) + self.reply_timeout_s

    def _keep_streaming(self, dev: DeviceState) -> bool:
        info = dev.info
        now_w = self.clock()
        now_s = self.sample_clock()
        if info.get("streaming"):
            quiet = now_w - info["last_line_w"] > self._silence_s(dev)
            if not quiet and now_s - info["started_s"] < TEMPERATURE_REFRESH_S:
                return True
            if quiet:
                self.count("reinitialisations")
            with self._rx_cond:
                info["streaming"] = False
            # any command stops the output; lines still on their way are no UN= reply
            if not self.call(dev, "UN").ok:
                return False
        if self.command == "P4":
            t = self.call(dev, "Q3")
            if not t.ok:
                return False
            info["temperature_c"] = float(t.data)
        with self._rx_cond:
            info.update(
                streaming=True,
                await_temperature=self.command == "P7",
                last_line_w=now_w,
                started_s=now_s,
            )
            self._stream.clear()
        try:
            self.link.write(wire.command(dev.addr, self.command))
        except LinkDownError:
            with self._rx_cond:
                info["streaming"] = False
            return False
        return True

    def _decode(self, data: bytes, now_s: float):
        if self.mode != "continuous":
            return super()._decode(data, now_s)
        out = []
        with self._rx_cond:
            buf = self._stream
            buf += data
            tx = self._pending
            while buf:
                ln = wire.scan_line(buf, 0)
                if ln.kind is LineKind.NEED_MORE:
                    break
                if tx is not None and (tx.echo_left or (ln.src == tx.expect[0])):
                    # the transaction's (its echo, its reply or noise among them)
                    self._rx += buf[: ln.size]
                    del buf[: ln.size]
                    self._consume(tx)
                    continue
                chunk = ln.size
                if self.echo and ln.kind is LineKind.LINE and ln.src == wire.HOST_ID:
                    pass  # the converter's echo of a start command (sent outside a transaction)
                elif ln.kind is LineKind.NOISE or ln.dest != wire.HOST_ID:
                    self._c["bytes_discarded"] += chunk
                else:
                    dev = self._by_id.get(ln.src)
                    if dev is not None and dev.info.get("streaming"):
                        sample = self._stream_line(dev, ln.payload)
                        if sample is not None:
                            out.append(sample)
                    elif dev is None:
                        self._c["foreign_replies"] += 1
                        self._c["bytes_discarded"] += chunk
                    else:
                        self._c["bytes_unsolicited"] += chunk
                del buf[:chunk]
            if len(buf) > 4 * wire.MAX_LINE:  # cannot happen (scan_line bounds a line)
                self._c["bytes_discarded"] += len(buf)
                buf.clear()
        for dev, t_s, p_pa, t_c in out:
            self.emit_sample(dev, t_s, p_pa, t_c, 0)
        return _EMPTY

    def _stream_line(self, dev: DeviceState, payload: bytes):
        """One continuous line of ``dev`` (holds ``_rx_cond``): a sample to emit, or None."""
        info = dev.info
        v = wire.parse_number(payload)
        if v is None:
            self._c["bytes_discarded"] += len(payload) + 7
            return None
        info["last_line_w"] = self.clock()
        if info.get("await_temperature"):
            info["temperature_c"] = v
            info["await_temperature"] = False
            return None
        temp = info.get("temperature_c")
        if temp is None:
            return None
        t_s = self.sample_clock()
        # faster than configured: decimated on the configured period's grid (lines
        # arriving in bursts keep the configured rate on average)
        period = dev.period_s
        due = info.get("next_emit_s", -math.inf)
        if t_s < due - 0.1 * period:
            return None
        info["next_emit_s"] = due + period if t_s - due < period else t_s + period
        return dev, t_s, v * info["pa_per_unit"], temp

    def _reset(self, now_s: float):
        with self._rx_cond:
            self._stream.clear()
        return super()._reset(now_s)


def _int(data: bytes) -> int | None:
    m = _DIGITS.search(data.decode("ascii", "replace"))
    return int(m.group()) if m else None


def _firmware(text: str) -> int:
    """``R5.10`` -> 5 << 8 | 10 (0 when it has no numbers)."""
    nums = [int(x) for x in _DIGITS.findall(text)[:2]]
    if not nums:
        return 0
    major, minor = (nums + [0])[:2]
    return (major & 0xFF) << 8 | (minor & 0xFF)
