"""An emulated Paroscientific Digiquartz transducer and its line (../shared/TRANSDUCERS.md).

``DigiquartzDevice`` is one transducer's state machine:

- P3 / Q3: one pressure (in its unit UN) / temperature (deg C) from the
  latest conversion; P1 / Q1 a sensor period in microseconds (a made-up
  linear function of pressure / temperature: no driver uses them);
- P4 / Q4: continuous pressure every PI + TI / temperature every TI; P7:
  the temperature once (after TI), then pressure every PI;
- UN, PI, TI read ``XX=value``; written (``XX=value``) only right after
  ``EW`` in the same line, which enables exactly one write (a write without it
  is not carried out and answered with the value kept); UN 1..8, PI/TI
  1..60000 ms;
- SN, VR, MN: serial number, firmware, model;
- any command to the device stops its continuous output; a value that is not
  finite (a failed sensor) is not answered; a power cycle (``power_up``) stops
  the output too.

``DigiquartzLine`` is the line: it splits the host's bytes into lines (CR or
LF ends one; a line longer than ``MAX_COMMAND_LINE`` or a gap longer than
``gap_s`` drops what was collected), each line into its ``*`` commands, runs
each on the device with its ID (99: every powered device, each answering with
its own ID; another ID: ignored) and returns the replies at once (after an
echo of the host's bytes with ``echo``, an RS-485 converter's): the reply
delay (about PI + TI for P3) is not modelled.  ``emit(t0_s, t1_s, powered)``
returns the continuous output due in (t0_s, t1_s]: every line of a call
carries the latest conversion (the emulator refreshes it per block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.digiquartz import wire
from drivers.digiquartz.values import pa_per_unit
from hil.polled_base import EmulatedDevice, LineCounters, PolledLine

MAX_COMMAND_LINE = 128
#: at most this many continuous lines per device and ``emit`` call (a long
#: fast-forward with no host: the rest is skipped, as a full buffer would)
MAX_EMIT_LINES = 10_000
INTEGRATION_MS = (1, 60_000)


class DigiquartzDevice(EmulatedDevice):
    """One transducer at ``dev_id`` (1..98); ``unit`` a UN code; PI/TI in ms."""

    def __init__(
        self,
        dev_id: int,
        serial: int,
        *,
        unit: int = 1,
        pi_ms: int = 100,
        ti_ms: int = 100,
        model: str = "6000-16B",
        firmware: str = "R5.10",
    ):
        if not wire.MIN_ID <= dev_id <= wire.MAX_ID:
            raise ValueError(f"a device ID is 1..98 (got {dev_id})")
        super().__init__(dev_id)
        self.serial = serial
        self.unit = unit
        self.pi_ms = pi_ms
        self.ti_ms = ti_ms
        self.model = model
        self.firmware = firmware
        self.mode: str | None = None  # "P4", "Q4" or "P7" while continuous
        self.next_out_s = math.inf
        self.p7_temperature_sent = False
        self.write_enabled = False
        self.writes = 0
        self.refused_writes = 0

    def power_up(self) -> None:
        """A power cycle: the continuous output stops (UN, PI, TI are in EEPROM)."""
        super().power_up()
        self.mode = None
        self.write_enabled = False

    # -- values
    def pressure(self) -> str | None:
        p = self.latest.pressure_pa
        if not math.isfinite(p):
            return None
        return wire.format_number(p / pa_per_unit(self.unit))

    def temperature(self) -> str | None:
        t = self.latest.temperature_c
        return f"{t:.3f}" if math.isfinite(t) else None

    # -- commands
    def handle(self, cmd: str, value: str | None, t_s: float) -> str | None:
        """The reply payload of one command at emulator time ``t_s``, or None (silence)."""
        self.requests += 1
        self.mode = None  # any new command stops a continuous output
        if cmd == "EW":
            self.write_enabled = True
            return None
        enabled, self.write_enabled = self.write_enabled, False
        if cmd in ("UN", "PI", "TI"):
            if value is not None:
                self._write(cmd, value, enabled)
            return f"{cmd}={getattr(self, _ATTR[cmd])}"
        if value is not None:
            return None  # a value for a command that takes none: ignored
        if cmd == "SN":
            return f"SN={self.serial}"
        if cmd == "VR":
            return f"VR={self.firmware}"
        if cmd == "MN":
            return f"MN={self.model}"
        if cmd == "P3":
            return self.pressure()
        if cmd == "Q3":
            return self.temperature()
        if cmd == "P1":
            p = self.latest.pressure_pa
            return f"{28.0 + p * 1e-5:.6f}" if math.isfinite(p) else None
        if cmd == "Q1":
            t = self.latest.temperature_c
            return f"{5.8 + t * 1e-3:.6f}" if math.isfinite(t) else None
        if cmd in wire.CONTINUOUS:
            self.mode = cmd
            self.p7_temperature_sent = False
            first = self.ti_ms if cmd in ("Q4", "P7") else self.pi_ms + self.ti_ms
            self.next_out_s = t_s + first / 1e3
            return None
        return None  # unknown command: silence

    def _write(self, cmd: str, value: str, enabled: bool) -> None:
        if not enabled:
            self.refused_writes += 1
            return
        try:
            v = int(value)
        except ValueError:
            return
        lo, hi = (1, 8) if cmd == "UN" else INTEGRATION_MS
        if lo <= v <= hi:
            setattr(self, _ATTR[cmd], v)
            self.writes += 1

    # -- continuous output
    def period_s(self) -> float:
        """Seconds between continuous lines in the current mode."""
        if self.mode == "P4":
            return (self.pi_ms + self.ti_ms) / 1e3
        if self.mode == "Q4":
            return self.ti_ms / 1e3
        return self.pi_ms / 1e3  # P7 after its temperature

    def emit(self, t0_s: float, t1_s: float) -> list[bytes]:
        """The continuous lines due in (t0_s, t1_s]."""
        out: list[bytes] = []
        while self.mode is not None and self.next_out_s <= t1_s:
            if len(out) >= MAX_EMIT_LINES:
                k = math.ceil((t1_s - self.next_out_s) / self.period_s())
                self.next_out_s += max(1, k) * self.period_s()
                break
            if self.mode == "Q4" or (self.mode == "P7" and not self.p7_temperature_sent):
                payload = self.temperature()
                self.p7_temperature_sent = True
            else:
                payload = self.pressure()
            if payload is not None:
                out.append(wire.reply(self.addr, payload))
            self.next_out_s += self.period_s()
        return out


_ATTR = {"UN": "unit", "PI": "pi_ms", "TI": "ti_ms"}


@dataclass
class DigiquartzCounters(LineCounters):
    """What the emulated line saw (``frames``: commands carried out for at least one device)."""

    bad_commands: int = 0  # segments that are no ``DDSSCC[=v]``, overlong or cut lines
    lines_out: int = 0  # continuous lines emitted


class DigiquartzLine(PolledLine):
    """The devices on one line; ``feed`` the host's bytes, ``emit`` the continuous output."""

    counters: DigiquartzCounters

    def __init__(self, devices: list[DigiquartzDevice], *, echo: bool = False, gap_s: float = 0.5):
        super().__init__(devices, DigiquartzCounters(), echo=echo, gap_s=gap_s)
        if len(self.devices) != len(devices):
            raise ValueError("two devices at one ID")

    def _drop_partial(self, buf: bytearray) -> None:
        self.counters.bad_commands += 1

    def feed(self, data: bytes, t_s: float, powered=lambda addr: True) -> list[bytes]:
        """Host bytes at emulator time ``t_s`` -> the reply lines, in order."""
        out = self._receive(data, t_s)
        buf = self._buf
        while True:
            ends = [i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0]
            if not ends:
                break
            end = min(ends)
            line = bytes(buf[:end])
            del buf[: end + 1]
            if line:
                out.extend(self._line(line, t_s, powered))
        if len(buf) > MAX_COMMAND_LINE:
            self.counters.bad_commands += 1
            buf.clear()
        return out

    def _line(self, line: bytes, t_s: float, powered) -> list[bytes]:
        if b"*" not in line:
            self.counters.bad_commands += 1
            return []
        out = []
        touched = set()
        for c in wire.parse_commands(line):
            if c is None or c.src != wire.HOST_ID:
                self.counters.bad_commands += 1
                continue
            if c.dest == wire.BROADCAST_ID:
                self.counters.broadcasts += 1
                targets = [d for d in self.devices.values() if powered(d.addr)]
            elif c.dest in self.devices and powered(c.dest):
                targets = [self.devices[c.dest]]
            else:
                self.counters.not_for_us += 1
                continue
            self.counters.frames += 1
            for d in targets:
                touched.add(d.addr)
                payload = d.handle(c.cmd, c.value, t_s)
                if payload is not None:
                    self.counters.replies += 1
                    out.append(wire.reply(d.addr, payload))
        for a in touched:  # EW holds for the rest of its line only
            self.devices[a].write_enabled = False
        return out

    def emit(self, t0_s: float, t1_s: float, powered=lambda addr: True) -> list[bytes]:
        """The continuous output of every device in (t0_s, t1_s]; a device that is
        not powered says nothing (its lines of that time are lost)."""
        out: list[bytes] = []
        for d in self.devices.values():
            lines = d.emit(t0_s, t1_s)
            if lines and powered(d.addr):
                out.extend(lines)
        self.counters.lines_out += len(out)
        return out
