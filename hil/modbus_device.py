"""An emulated Modbus RTU transmitter (KELLER in Modbus mode, or a generic layout) and its line.

``ModbusDevice`` is one transmitter's register map and state machine
(../shared/TRANSDUCERS.md), built from a ``drivers.modbus.layout.Layout``:

- the ``keller`` preset: holding registers (FC3) 0x0002 P1 (bar), 0x0004 P2,
  0x0008 TOB1 (deg C), 0x0100 P1, 0x0102 TOB1, 0x0104 P2, 0x0106 TOB2 (floats,
  high word first), 0x020C STATUS, 0x020D address, 0x020E class<<8|group,
  0x020F year<<8|week; the channels it does not have (P2, TOB2) read NaN;
- a generic layout: the pressure and temperature channels at their
  registers, under their function (3 holding, 4 input), in their type, word
  order, scale, offset and unit;
- values from the latest conversion: outside the readable range (calibrated
  range +-10 %) pressure is +Inf/-Inf; a sensor that flags a pressure inside
  its range (an out-of-range fault) reads NaN; a flagged or missing
  temperature reads NaN (integer types: clipped, NaN the lowest value);
- FC3/FC4 only (exception 1 for any other function); a register outside the
  map, a read that starts or ends inside a 32-bit value, or more than
  ``max_registers`` registers: exception 2; a count of 0 or above 125:
  exception 3.

``ModbusLine`` is the bus: it frames the host's bytes (a frame ends where the
CRC over it is 0, at its function's length; a gap longer than ``gap_s`` of
emulator time drops what was collected), stays silent on a bad CRC,
executes broadcasts (address 0) without answering, and optionally echoes
every byte first (an RS-485 converter).  The interface is the one
``hil.polled_lines`` documents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.modbus.fast import crc16, frame, value_encoder
from drivers.modbus.layout import BROADCAST_ADDR, MAX_REGISTERS, Channel, Layout
from drivers.modbus.wire import EXCEPTION_BIT, ExceptionCode
from drivers.protocol import Status
from hil.polled_base import Conversion, CrcLine, CrcLineCounters, EmulatedDevice, frame_end

PA_PER_BAR = 1e5
#: the longest frame of an unknown function looked for (its CRC is searched up to here)
MAX_UNKNOWN_FRAME = 16
_KELLER_BAR = Channel(0, 3, "float32", "big", 1.0, 0.0, "bar")

__all__ = ["Conversion", "ModbusDevice", "ModbusLine"]


def _words(b: bytes) -> list[int]:
    return [b[i] << 8 | b[i + 1] for i in range(0, len(b), 2)]


class ModbusDevice(EmulatedDevice):
    """One transmitter at ``addr`` with register ``layout``; ranges in Pa;
    ``firmware`` ``(class, group, year, week)`` (the keller preset's 0x020E/0x020F).
    Modbus keeps no session: a power cycle (the base's ``power_up``) is only counted."""

    def __init__(
        self,
        addr: int,
        layout: Layout,
        range_min_pa: float = 0.0,
        range_max_pa: float = 200_000.0,
        *,
        firmware: tuple[int, int, int, int] = (5, 20, 5, 50),
    ):
        super().__init__(addr)
        self.layout = layout
        self.range_min_pa = range_min_pa
        self.range_max_pa = range_max_pa
        self.firmware = firmware
        self.max_registers = min(layout.max_registers, MAX_REGISTERS)
        self._enc_p = value_encoder(layout.pressure)
        self._enc_t = value_encoder(layout.temperature) if layout.temperature else None
        self._enc_f = value_encoder(_KELLER_BAR)

    # -- the values ------------------------------------------------------------
    def pressure_pa(self) -> float:
        """The pressure the device reports (NaN, +-Inf per the module docstring)."""
        c = self.latest
        p = c.pressure_pa
        span = self.range_max_pa - self.range_min_pa
        if not math.isfinite(p):
            return math.nan
        if p > self.range_max_pa + 0.1 * span:
            return math.inf
        if p < self.range_min_pa - 0.1 * span:
            return -math.inf
        if c.status & Status.PRESSURE_OUT_OF_RANGE and self.range_min_pa <= p <= self.range_max_pa:
            return math.nan  # in range but the sensor says no: channel error
        return p

    def temperature_c(self) -> float:
        c = self.latest
        if c.status & Status.TEMPERATURE_OUT_OF_RANGE or not math.isfinite(c.temperature_c):
            return math.nan
        return c.temperature_c

    def register_map(self, fn: int) -> tuple[dict[int, int], set[int]]:
        """The registers function ``fn`` reads now: {address: word}, and the
        addresses inside a 32-bit value (a read must not start or end there)."""
        regs: dict[int, int] = {}
        inner: set[int] = set()

        def put(at: int, data: bytes) -> None:
            for i, w in enumerate(_words(data)):
                regs[at + i] = w
                if i:
                    inner.add(at + i)

        lay = self.layout
        if lay.preset == "keller":
            if fn != 3:
                return regs, inner
            p = self._enc_f(self.pressure_pa() / PA_PER_BAR)
            t = self._enc_f(self.temperature_c())
            nan = self._enc_f(math.nan)
            for at, v in ((0x0002, p), (0x0004, nan), (0x0008, t)):
                put(at, v)
            for at, v in ((0x0100, p), (0x0102, t), (0x0104, nan), (0x0106, nan)):
                put(at, v)
            cls, group, year, week = self.firmware
            status = 1 if self.latest.status & Status.WARMING_UP else 0
            words = (status, self.addr, cls << 8 | group, year << 8 | week)
            regs.update(zip(range(0x020C, 0x0210), words, strict=True))  # four 16-bit values
            return regs, inner
        if lay.pressure.function == fn:
            put(lay.pressure.register, self._enc_p(lay.pressure.from_si(self.pressure_pa())))
        if lay.temperature is not None and lay.temperature.function == fn:
            t = lay.temperature.from_si(self.temperature_c())
            put(lay.temperature.register, self._enc_t(t))  # type: ignore[misc]
        return regs, inner

    # -- requests ----------------------------------------------------------------
    def handle(self, fn: int, data: bytes) -> bytes | None:
        """Reply PDU (``FC data`` without ADDR and CRC) of one request, or None (silence)."""
        self.requests += 1
        if fn not in (3, 4):
            return bytes((fn | EXCEPTION_BIT, int(ExceptionCode.ILLEGAL_FUNCTION)))
        if len(data) != 4:
            return None  # a wrong length is a transmission error: no reply
        start, count = data[0] << 8 | data[1], data[2] << 8 | data[3]
        if not 1 <= count <= MAX_REGISTERS:
            return bytes((fn | EXCEPTION_BIT, int(ExceptionCode.ILLEGAL_VALUE)))
        regs, inner = self.register_map(fn)
        span = range(start, start + count)
        if (
            count > self.max_registers
            or any(a not in regs for a in span)
            or start in inner
            or (start + count) in inner
        ):
            return bytes((fn | EXCEPTION_BIT, int(ExceptionCode.ILLEGAL_ADDRESS)))
        body = b"".join(regs[a].to_bytes(2, "big") for a in span)
        return bytes((fn, 2 * count)) + body


@dataclass
class LineCounters(CrcLineCounters):
    """What the emulated line saw: also the exception replies."""

    exceptions: int = 0


def _expected_len(buf: bytearray) -> int | None:
    """The length of a request of the function at ``buf[1]``, if known (and knowable yet)."""
    fn = buf[1]
    if fn in (1, 2, 3, 4, 5, 6):
        return 8
    if fn in (15, 16):
        return 9 + buf[6] if len(buf) >= 7 else None
    return None


def _crc_zero(buf: bytearray, end: int) -> bool:
    return crc16(memoryview(buf)[:end]) == 0


def _resync(buf: bytearray) -> int:
    """The offset of the first complete request of a known length (CRC good) after
    the start of ``buf``, or 0."""
    for i in range(1, len(buf) - 3):
        rest = buf[i:]
        want = _expected_len(rest)
        if want is not None and len(rest) >= want and _crc_zero(rest, want):
            return i
    return 0


class ModbusLine(CrcLine):
    """The devices on one RS-485 line; ``feed`` the host's bytes, get the line's answer."""

    counters: LineCounters

    def __init__(self, devices: list[ModbusDevice], *, echo: bool = False, gap_s: float = 0.05):
        super().__init__(devices, LineCounters(), echo=echo, gap_s=gap_s)

    def _drop_partial(self, buf: bytearray) -> None:
        self.counters.bad_frames += 1  # the gap ends an incomplete frame

    def _frame_end(self, buf: bytearray) -> int | None:
        return frame_end(buf, _expected_len(buf), MAX_UNKNOWN_FRAME, _crc_zero)

    def _drop_noise(self, buf: bytearray) -> bool:
        skip = _resync(buf)
        if skip:  # noise before a complete request: drop the noise
            del buf[:skip]
            self.counters.bad_frames += skip
            return True
        want = _expected_len(buf)
        if len(buf) < (want if want is not None else MAX_UNKNOWN_FRAME):
            return False
        del buf[0]
        self.counters.bad_frames += 1
        return True

    def _execute(self, req: bytes, powered) -> list[bytes]:
        addr, fn, data = req[0], req[1], req[2:-2]
        if addr == BROADCAST_ADDR:
            self.counters.broadcasts += 1  # reads have no effect; never answered
            for d in self.devices.values():
                if powered(d.addr):
                    d.requests += 1
            return []
        dev = self.devices.get(addr)
        if dev is None or not powered(addr):
            self.counters.not_for_us += 1
            return []
        reply = dev.handle(fn, data)
        if reply is None:
            self.counters.silent_wrong_length += 1
            return []
        self.counters.replies += 1
        if reply[0] & EXCEPTION_BIT:
            self.counters.exceptions += 1
        return [frame(addr, reply[0], reply[1:])]
