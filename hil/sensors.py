"""Emulated pressure transducers: clock, sampling schedule, errors, faults, commands.

Per block of simulated time a sensor produces all its SAMPLEs at once as numpy
columns (times, clock, seq, pressure, temperature, status); the emulator merges
the sensors of a link and encodes them in one ``encode_samples`` call.

Measurement model, per sample at simulated time t (clock c = (t - t_on)(1 + ppm 1e-6)):

    p = lagged true P + bias + drift (t - t_on) + zero offset + noise N(0,1) + faults,
        quantized to ``resolution_pa``
    T = lagged gas temperature + temp bias + temp noise N(0,1), quantized

Pressure and temperature noise come from two generators per sensor, so the values
do not depend on how time is cut into blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.gas import KELVIN
from drivers.frames import AckFrame, CommandFrame, IdentityFrame
from drivers.protocol import BROADCAST_ADDR, AckResult, Flags, Opcode, Status
from hil.faults import SensorFaults
from hil.scenario import Sensor


@dataclass
class SampleBlock:
    """One sensor's SAMPLEs for a block, as columns."""

    t_s: np.ndarray
    addr: int
    seq: np.ndarray
    t_us: np.ndarray
    pressure_pa: np.ndarray
    temperature_c: np.ndarray
    status: np.ndarray
    #: with ``bounds``: per sample, the index of the first bound whose
    #: ``samples`` call would have produced it
    release: np.ndarray | None = None


def _empty_block(addr: int) -> SampleBlock:
    z = np.zeros(0)
    return SampleBlock(
        z,
        addr,
        np.zeros(0, np.int64),
        np.zeros(0, np.uint64),
        z,
        z.astype(np.float32),
        np.zeros(0, np.uint16),
        np.zeros(0, np.int64),
    )


class EmulatedSensor:
    """One transducer's state between blocks."""

    def __init__(
        self, cfg: Sensor, probe: int, seed_seq: np.random.SeedSequence, faults: SensorFaults
    ):
        self.cfg = cfg
        self.probe = probe
        sp, st = seed_seq.spawn(2)
        self.rng_p = np.random.Generator(np.random.PCG64(sp))
        self.rng_t = np.random.Generator(np.random.PCG64(st))
        self.faults = faults
        self.scale = 1.0 + cfg.clock_ppm * 1e-6
        self.commands_handled = 0
        self._power_up(cfg.power_on_s, boot_s=0.0)
        self.seq = 0

    # -- state changes
    def _power_up(self, t_s: float, boot_s: float) -> None:
        cfg = self.cfg
        self.epoch_s = t_s
        self.rate_mhz = int(round(cfg.rate_hz * 1000))
        self.streaming = cfg.autostart
        self.offset_pa = 0.0
        self.boot_until_s = t_s + boot_s
        self.warm_until_s = t_s + boot_s + cfg.warmup_s
        self.next_c_us = boot_s * 1e6 + self.period_us
        self.seq = 0
        self.config_changed = boot_s > 0

    @property
    def period_us(self) -> float:
        return 1e9 / self.rate_mhz

    def clock_us(self, t_s: float) -> float:
        return (t_s - self.epoch_s) * self.scale * 1e6

    def powered(self, t_s: float) -> bool:
        return t_s >= self.boot_until_s and not self.faults.silent(t_s)

    # -- commands
    def handle_command(self, cmd: CommandFrame, t_s: float) -> list[bytes]:
        """Carry out a COMMAND at ``t_s``; the IDENTITY/ACK frames it answers with."""
        cfg = self.cfg
        if cmd.addr not in (cfg.addr, BROADCAST_ADDR) or not cmd.flags & Flags.TO_DEVICE:
            return []
        if not self.powered(t_s):
            return []  # booting or silent: a dead device does not answer
        self.commands_handled += 1
        out: list[bytes] = []
        args = cmd.decoded_args()
        result = AckResult.OK
        try:
            op = Opcode(cmd.opcode)
        except ValueError:
            op = None
            result = AckResult.UNKNOWN_OPCODE
        if op is not None and args is None:
            result = AckResult.BAD_ARGUMENT
        elif op == Opcode.IDENTIFY:
            out.append(
                IdentityFrame(
                    addr=cfg.addr,
                    seq=self._next_seq(),
                    flags=0,
                    model=cfg.model,
                    serial=cfg.serial,
                    firmware=cfg.firmware,
                    range_min_pa=cfg.range_min_pa,
                    range_max_pa=cfg.range_max_pa,
                    rate_mhz=self.rate_mhz,
                ).encode()
            )
        elif op == Opcode.SET_RATE:
            rate = int(args["rate_mhz"])
            if rate <= 0 or rate > cfg.max_rate_hz * 1000:
                result = AckResult.BAD_ARGUMENT
            else:
                self.rate_mhz = rate
                self.next_c_us = self.clock_us(t_s) + self.period_us
                self.config_changed = True
        elif op == Opcode.START:
            if not self.streaming:
                self.streaming = True
                self.next_c_us = self.clock_us(t_s) + self.period_us
        elif op == Opcode.STOP:
            self.streaming = False
        elif op == Opcode.ZERO_OFFSET:
            off = float(args["offset_pa"])
            if not math.isfinite(off) or abs(off) > cfg.range_max_pa:
                result = AckResult.BAD_ARGUMENT
            else:
                self.offset_pa = off
                self.config_changed = True
        elif op == Opcode.RESET:
            self.epoch_s = t_s
            self.next_c_us = self.period_us
            self.config_changed = True
        if cmd.flags & Flags.ACK_REQUESTED:
            flags = 0 if result == AckResult.OK else int(Flags.ERROR_REPLY)
            out.append(
                AckFrame(
                    addr=cfg.addr,
                    seq=self._next_seq(),
                    flags=flags,
                    command_seq=cmd.seq,
                    opcode=cmd.opcode & 0xFF,
                    result=result,
                ).encode()
            )
        return out

    def _next_seq(self) -> int:
        s = self.seq & 0xFFFF
        self.seq += 1
        return s

    # -- sampling
    def exact_clock(self) -> bool:
        """Whether every sample clock value is an integer number of us (exact in
        floating point), so that the samples of (t0, t1] do not depend on how the
        interval is cut into ``samples`` calls, to the last bit."""
        return (
            float(self.period_us).is_integer()
            and float(self.next_c_us).is_integer()
            and float(self.cfg.boot_s * 1e6 + self.period_us).is_integer()
        )

    def samples(
        self,
        t0: float,
        t1: float,
        grid_t: np.ndarray,
        probe_p: np.ndarray,
        probe_t: np.ndarray,
        bounds: np.ndarray | None = None,
    ) -> SampleBlock:
        """SAMPLEs with simulated times in (t0, t1]; physics history on ``grid_t``.

        With ``bounds`` (increasing times in (t0, t1], the last one t1) the block
        also tells, per sample, the first bound ``b`` such that cutting (t0, t1]
        into calls ending at the bounds would have produced the sample in the
        call that ends at ``b`` (``release``; the same clock comparison as the
        cut calls make).  With ``exact_clock()`` the samples are then those of
        the cut calls, bit for bit.
        """
        cfg = self.cfg
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "c", "seq", "off", "warm")}
        rel: list[np.ndarray] = []
        flagged: list[int] = []  # sample indexes that carry CONFIG_CHANGED
        count = 0
        cuts = [t for t in self.faults.reboot_times if t0 < t <= t1]
        for b in [*cuts, t1]:
            if self.streaming and b >= cfg.power_on_s:
                c_b = self.clock_us(b)
                if c_b >= self.next_c_us:
                    n = int((c_b - self.next_c_us) // self.period_us) + 1
                    c = self.next_c_us + self.period_us * np.arange(n)
                    c = c[c <= c_b]
                    self.next_c_us += len(c) * self.period_us
                    ts = self.epoch_s + c / (self.scale * 1e6)
                    keep = self.faults.sending_mask(ts)  # nothing while silent
                    ts, c = ts[keep], c[keep]
                    k = len(ts)
                    if k:
                        cols["t"].append(ts)
                        cols["c"].append(c)
                        cols["seq"].append(self.seq + np.arange(k, dtype=np.int64))
                        cols["off"].append(np.full(k, self.offset_pa))
                        cols["warm"].append(ts < self.warm_until_s)
                        if bounds is not None:
                            # the clock comparison of clock_us, per bound, this epoch
                            c_bounds = (bounds - self.epoch_s) * self.scale * 1e6
                            rel.append(np.searchsorted(c_bounds, c, side="left"))
                        if self.config_changed:
                            flagged.append(count)
                            self.config_changed = False
                        self.seq += k
                        count += k
            if b in cuts:
                self._power_up(b, boot_s=cfg.boot_s)
        if not count:
            return _empty_block(cfg.addr)
        ts = np.concatenate(cols["t"])
        c = np.concatenate(cols["c"])
        n = count
        p_true = np.exp(np.interp(ts, grid_t, np.log(np.maximum(probe_p, 1e-3))))
        t_true = np.interp(ts, grid_t, probe_t)
        noise_p = self.rng_p.standard_normal(n)
        noise_t = self.rng_t.standard_normal(n)
        days = (ts - cfg.power_on_s) / 86400.0
        p = p_true + cfg.bias_pa + cfg.drift_pa_per_day * days + np.concatenate(cols["off"])
        p = p + cfg.noise_pa * self.faults.noise_factor(ts) * noise_p
        p = self.faults.apply_pressure(ts, p)
        tc = t_true - KELVIN + cfg.temp_bias_k + cfg.temp_noise_k * noise_t
        p, tc = self.faults.apply_stuck(ts, p, tc)
        if cfg.resolution_pa > 0:
            p = np.round(p / cfg.resolution_pa) * cfg.resolution_pa
        if cfg.temp_resolution_k > 0:
            tc = np.round(tc / cfg.temp_resolution_k) * cfg.temp_resolution_k
        bad = (p < cfg.range_min_pa) | (p > cfg.range_max_pa) | self.faults.out_of_range_mask(ts)
        status = np.where(bad, np.uint16(Status.PRESSURE_OUT_OF_RANGE), np.uint16(0))
        status |= np.where(np.concatenate(cols["warm"]), np.uint16(Status.WARMING_UP), np.uint16(0))
        status[flagged] |= np.uint16(Status.CONFIG_CHANGED)
        return SampleBlock(
            ts,
            cfg.addr,
            np.concatenate(cols["seq"]),
            np.round(c).astype(np.uint64),
            p,
            tc.astype(np.float32),
            status,
            np.concatenate(rel) if bounds is not None else None,
        )
