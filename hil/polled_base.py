"""What the emulated polled devices and their lines share (``hil.polled_lines``).

* ``Conversion``: a device's latest measurement, refreshed by the emulator;
* ``EmulatedDevice``: an address, that conversion, the requests it saw and
  its power-ups (a family's ``power_up`` also drops its own session state);
* ``PolledLine``: the devices of one line by address, the optional echo, the
  gap (emulator time, s) that drops a partial request, and the receive step
  every ``feed`` starts with;
* ``CrcLine``: a ``PolledLine`` of binary requests that end in a CRC (KELLER
  bus, Modbus RTU): the framing loop, with the family's frame length, noise
  policy and execution as small methods;
* ``frame_end``: the length of the CRC-framed request at the start of a buffer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Conversion:
    """The device's latest measurement: pressure in Pa, temperature in deg C, SAMPLE status bits."""

    pressure_pa: float = math.nan
    temperature_c: float = math.nan
    status: int = 0


class EmulatedDevice:
    """One device at ``addr``: its ``latest`` conversion, ``requests`` seen, ``power_ups``."""

    def __init__(self, addr: int):
        self.addr = addr
        self.latest = Conversion()
        self.requests = 0
        self.power_ups = 1

    def power_up(self) -> None:
        """A power cycle: counted (a family's device also resets its session)."""
        self.power_ups += 1


@dataclass
class LineCounters:
    """What an emulated line saw: requests framed, replies, broadcasts, echoed bytes."""

    frames: int = 0
    replies: int = 0
    broadcasts: int = 0
    not_for_us: int = 0
    bytes_echoed: int = 0


def _always(addr: int) -> bool:
    return True


class PolledLine:
    """The devices on one line by address; ``echo`` sends the host's bytes back
    first (an RS-485 converter); a gap longer than ``gap_s`` of emulator time
    drops what was collected of a request."""

    def __init__(self, devices, counters: LineCounters, *, echo: bool, gap_s: float):
        self.devices = {d.addr: d for d in devices}
        self.echo = echo
        self.gap_s = gap_s
        self.counters = counters
        self._buf = bytearray()
        self._last_t_s = -math.inf

    def _receive(self, data: bytes, t_s: float) -> list[bytes]:
        """Take the host's bytes at emulator time ``t_s`` into the buffer (after
        dropping a partial request older than the gap, ``_drop_partial``); the
        chunks to send first: the echo, if any."""
        out: list[bytes] = []
        if self.echo and data:
            out.append(bytes(data))
            self.counters.bytes_echoed += len(data)
        if t_s - self._last_t_s > self.gap_s and self._buf:
            self._drop_partial(self._buf)
            self._buf.clear()
        self._last_t_s = t_s
        self._buf += data
        return out

    def _drop_partial(self, buf: bytearray) -> None:
        """Count what a gap drops (``buf``, cleared after this)."""
        raise NotImplementedError


@dataclass
class CrcLineCounters(LineCounters):
    """A CRC-framed line's counters: also silences and why."""

    bad_frames: int = 0  # bytes dropped without a valid CRC frame (bad CRC, gap)
    silent_wrong_length: int = 0


class CrcLine(PolledLine):
    """A line of binary requests ``ADDR FN ... CRC`` (4 bytes at least)."""

    counters: CrcLineCounters

    def feed(self, data: bytes, t_s: float, powered=_always) -> list[bytes]:
        """Host bytes at emulator time ``t_s`` -> the chunks the line sends back, in order.

        ``powered(addr)``: whether that device can answer now (booting or a
        silent fault: it cannot, and does not execute the request either).
        """
        out = self._receive(data, t_s)
        buf = self._buf
        while len(buf) >= 4:
            end = self._frame_end(buf)
            if end is None:
                if self._drop_noise(buf):
                    continue
                break  # perhaps more of the frame comes
            req = bytes(buf[:end])
            del buf[:end]
            self.counters.frames += 1
            out.extend(self._execute(req, powered))
        return out

    def _frame_end(self, buf: bytearray) -> int | None:
        """The length of the request at the start of ``buf``; None: none (yet)."""
        raise NotImplementedError

    def _drop_noise(self, buf: bytearray) -> bool:
        """No request at the start of ``buf``: drop (and count) noise, True; or
        False: wait for more bytes."""
        raise NotImplementedError

    def _execute(self, req: bytes, powered) -> list[bytes]:
        """The reply frames of one request."""
        raise NotImplementedError


def frame_end(
    buf: bytearray, want: int | None, longest: int, crc_ok: Callable[[bytearray, int], bool]
) -> int | None:
    """Length of the frame at the start of ``buf``: ``want`` (its function's
    length, None: not known yet) if ``crc_ok(buf, want)``, else the shortest
    prefix of 4..``longest`` bytes with a good CRC (a wrong length, answered
    with silence); None: no frame (yet)."""
    n = len(buf)
    if want is not None and n >= want and crc_ok(buf, want):
        return want
    for end in range(4, min(n, longest) + 1):
        if end != want and crc_ok(buf, end):
            if want is not None and end < want and n < want:
                return None  # perhaps the rest of the expected request is coming
            return end
    return None
