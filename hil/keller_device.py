"""An emulated KELLER bus transmitter (Series 30/40, class 5, group 20) and its line.

``KellerDevice`` is one transmitter's state machine (../shared/TRANSDUCERS.md):

- after power-up every function but F48 answers exception 32 (not
  initialised); F48 answers class, group, firmware, BUF and STAT (0 on the
  first access since power-up, 1 after);
- F73 reads the latest conversion: CH0 and P1 in bar, TOB1 in deg C; the
  channels it does not have (P2, T, TOB2) are NaN with their STAT bit clear;
  outside the readable range (calibrated range +-10 %) P1 is +Inf/-Inf with
  its STAT bit; between the calibrated and the readable range it is the value,
  with the bit when the emulated sensor flags it out of range; a sensor that
  flags a pressure inside its range (an out-of-range fault) reads NaN with
  the bit set (channel error); warming up sets STAT bit 7;
- F69 the serial number, F30 coefficients 64/65/80/81 (P1 offset, gain, min,
  max in bar); other numbers exception 2, unknown functions exception 1;
- a power cycle (``power_up``) loses the initialisation.

``KellerLine`` is the bus: it frames the host's bytes (a frame ends when its
CRC is good; a gap longer than ``gap_s`` of emulator time drops what was
collected), stays silent on a bad CRC or a wrong length, executes broadcasts
(address 0) without answering, answers address 250 with 250 from every
device, and optionally echoes every byte first (a KELLER RS-485 converter).
"""

from __future__ import annotations

import math
import struct

from drivers.keller.fast import crc16, frame
from drivers.keller.wire import (
    BROADCAST_ADDR,
    EXCEPTION_BIT,
    TRANSPARENT_ADDR,
    Channel,
    Coefficient,
    ExceptionCode,
    Function,
    Stat,
)
from drivers.protocol import Status
from hil.polled_base import Conversion, CrcLine, CrcLineCounters, EmulatedDevice, frame_end

#: bytes of each function's request, CRC included (the device checks lengths)
REQUEST_LEN = {
    Function.INITIALISE: 4,
    Function.SERIAL_NUMBER: 4,
    Function.READ_FLOAT: 5,
    Function.READ_COEFFICIENT: 5,
}
MAX_REQUEST = 10  # ADDR FN 6 parameters CRC
PA_PER_BAR = 1e5
_NAN = struct.unpack(">f", b"\x7f\xff\xff\xff")[0]
# plain ints of the flags read per request (enum arithmetic is slow)
_STAT_POWER_UP, _STAT_P1, _STAT_CH0, _STAT_TOB1 = (
    int(Stat.POWER_UP),
    int(Stat.P1),
    int(Stat.CH0),
    int(Stat.TOB1),
)
_WARMING_UP = int(Status.WARMING_UP)
_T_OOR = int(Status.TEMPERATURE_OUT_OF_RANGE)
_P_OOR = int(Status.PRESSURE_OUT_OF_RANGE)
_CH0, _P1, _TOB1, _TOB2 = (int(c) for c in (Channel.CH0, Channel.P1, Channel.TOB1, Channel.TOB2))
_FUNCTIONS = {int(f): f for f in Function}


__all__ = ["Conversion", "KellerDevice", "KellerLine"]


class KellerDevice(EmulatedDevice):
    """One transmitter at ``addr``; ranges in Pa; firmware ``(class, group, year, week)``."""

    def __init__(
        self,
        addr: int,
        serial: int,
        range_min_pa: float,
        range_max_pa: float,
        *,
        firmware: tuple[int, int, int, int] = (5, 20, 5, 50),
        buf: int = 10,
    ):
        super().__init__(addr)
        self.serial = serial
        self.range_min_pa = range_min_pa
        self.range_max_pa = range_max_pa
        self.firmware = firmware
        self.buf = buf
        self.initialised = False
        self.first_access = True

    def power_up(self) -> None:
        """A power cycle: the initialisation is lost, the next F48 says STAT 0."""
        super().power_up()
        self.initialised = False
        self.first_access = True

    def handle(self, fn: int, params: bytes) -> bytes | None:
        """Reply data (``FN data`` without ADDR and CRC) of one request, or None (silence)."""
        self.requests += 1
        f = _FUNCTIONS.get(fn)
        if f is None:
            return _exception(fn, ExceptionCode.ILLEGAL_FUNCTION)
        if len(params) + 4 != REQUEST_LEN[f]:
            return None  # a wrong length is a transmission error: no reply
        if f is Function.INITIALISE:
            stat = 0 if self.first_access else 1
            self.initialised = True
            self.first_access = False
            cls, group, year, week = self.firmware
            return bytes((fn, cls, group, year, week, self.buf, stat))
        if not self.initialised:
            return _exception(fn, ExceptionCode.NOT_INITIALISED)
        if f is Function.SERIAL_NUMBER:
            return bytes((fn,)) + struct.pack(">I", self.serial)
        if f is Function.READ_COEFFICIENT:
            values = {
                Coefficient.P1_OFFSET: 0.0,
                Coefficient.P1_GAIN: 1.0,
                Coefficient.P1_MIN_BAR: self.range_min_pa / PA_PER_BAR,
                Coefficient.P1_MAX_BAR: self.range_max_pa / PA_PER_BAR,
            }
            if params[0] not in values:
                return _exception(fn, ExceptionCode.ILLEGAL_ADDRESS)
            return bytes((fn,)) + struct.pack(">f", values[Coefficient(params[0])])
        ch = params[0]
        if ch > _TOB2:
            return _exception(fn, ExceptionCode.ILLEGAL_ADDRESS)
        value, stat = self.read_channel(ch)
        return bytes((fn,)) + struct.pack(">fB", value, stat)

    def read_channel(self, ch: Channel | int) -> tuple[float, int]:
        """F73's (value, STAT) for channel ``ch`` from the latest conversion."""
        c = self.latest
        status = c.status
        stat = _STAT_POWER_UP if status & _WARMING_UP else 0
        p_bit = _STAT_P1 | (_STAT_CH0 if ch == _CH0 else 0)
        if status & _T_OOR or not math.isfinite(c.temperature_c):
            stat |= _STAT_TOB1
        if ch == _CH0 or ch == _P1:
            p = c.pressure_pa
            span = self.range_max_pa - self.range_min_pa
            if not math.isfinite(p):
                return _NAN, stat | p_bit
            if p > self.range_max_pa + 0.1 * span:
                return math.inf, stat | p_bit
            if p < self.range_min_pa - 0.1 * span:
                return -math.inf, stat | p_bit
            if status & _P_OOR:
                if self.range_min_pa <= p <= self.range_max_pa:
                    return _NAN, stat | p_bit  # in range but the sensor says no: channel error
                return p / PA_PER_BAR, stat | p_bit
            return p / PA_PER_BAR, stat
        if ch == _TOB1:
            if stat & _STAT_TOB1:
                return _NAN, stat
            return c.temperature_c, stat
        return _NAN, stat  # P2, T, TOB2: not fitted (NaN, STAT bit clear)


def _exception(fn: int, code: ExceptionCode) -> bytes:
    return bytes((fn | EXCEPTION_BIT, int(code)))


class KellerLine(CrcLine):
    """The devices on one RS-485 line; ``feed`` the host's bytes, get the line's answer."""

    def __init__(self, devices: list[KellerDevice], *, echo: bool = False, gap_s: float = 0.05):
        super().__init__(devices, CrcLineCounters(), echo=echo, gap_s=gap_s)

    def _drop_partial(self, buf: bytearray) -> None:
        # the gap ends the frame: a good CRC there is a wrong length, else garbage
        if len(buf) >= 4 and _crc_ok(buf, len(buf)):
            self.counters.silent_wrong_length += 1
        else:
            self.counters.bad_frames += 1

    def _frame_end(self, buf: bytearray) -> int | None:
        return frame_end(buf, REQUEST_LEN.get(buf[1]), MAX_REQUEST, _crc_ok)

    def _drop_noise(self, buf: bytearray) -> bool:
        if len(buf) < MAX_REQUEST:
            return False
        del buf[0]
        self.counters.bad_frames += 1
        return True

    def _execute(self, req: bytes, powered) -> list[bytes]:
        addr, fn, params = req[0], req[1], req[2:-2]
        if addr == BROADCAST_ADDR:
            self.counters.broadcasts += 1
            for d in self.devices.values():
                if powered(d.addr):
                    d.handle(fn, params)
            return []
        if addr == TRANSPARENT_ADDR:
            targets = [d for d in self.devices.values() if powered(d.addr)]
        elif addr in self.devices and powered(addr):
            targets = [self.devices[addr]]
        else:
            self.counters.not_for_us += 1
            return []
        out = []
        for d in targets:
            reply = d.handle(fn, params)
            if reply is None:
                self.counters.silent_wrong_length += 1
                continue
            self.counters.replies += 1
            out.append(frame(addr, reply[0], reply[1:]))
        return out


def _crc_ok(buf: bytearray, end: int) -> bool:
    return crc16(bytes(buf[: end - 2])) == (buf[end - 2] << 8 | buf[end - 1])
