"""Sample conditioning: decoded records -> clean, host-timed sums per channel.

``SampleConditioner.ingest(link, records, host_time_s)`` takes SAMPLE records
(``drivers.frames.SAMPLE_RECORD_DTYPE``) of one link and, vectorized over
channels, maps each sensor clock to host time, detects reboots and
configuration changes, range/status faults, stuck values and spikes (median of
a register of the last ``2h+1`` valid samples, ``h`` samples of delay), and
adds each clean sample to this tick's sums.  ``ingest`` maps addresses to
channels, counts the samples and notes their arrival at once, and keeps the
batch's columns; ``flush`` (called by the core at the start of each tick)
conditions every batch kept since the last one together: all state is per
channel and each channel's samples keep their order, so this is the same as
conditioning each batch as it came, in fewer rounds (one batch per link of one
sample per channel is one round).  ``drain`` hands the sums to the window bank
once per tick.  Fault evidence seen here is kept as bit flags (``FaultKind``)
until the health stage takes it.

Units: sensor time us, host time s, pressure Pa, temperature deg C.
"""

from __future__ import annotations

import numpy as np

from drivers.protocol import Status
from firmware_host.config import MonitorConfig
from firmware_host.stages.health import FaultKind
from firmware_host.stages.topology import Channels

_TRUE = np.ones(1, dtype=bool)
_STATUS_RANGE_BITS = int(Status.PRESSURE_OUT_OF_RANGE | Status.TEMPERATURE_OUT_OF_RANGE)
_STATUS_FAULT_BITS = int(Status.SELF_TEST_FAILED | Status.ADC_SATURATED | Status.WARMING_UP)
_CONFIG_CHANGED = int(Status.CONFIG_CHANGED)


class SampleConditioner:
    """Per-channel ingest state; see module docstring.

    Arrays (``C`` channels): ``last_sample`` rows 1, host time (s), pressure
    (Pa), temperature (deg C) of each channel's newest valid sample, with
    ``has_sample``; ``reg_t``/``reg_p``/``reg_temp`` the ``(C, 2h+1)`` ring
    registers of the newest valid samples and ``reg_count`` how many were
    written; ``clock_offset`` (s) maps sensor to host time (host = offset +
    t_us / 1e6); ``stuck_run`` the run of identical pressures; ``sums`` this
    tick's (n, sum t, sum p, sum T); ``fault_flags`` the ``FaultKind`` bits seen
    since the health stage last took them; ``unknown`` samples per link from
    addresses not configured.
    """

    def __init__(self, config: MonitorConfig, channels: Channels):
        est, hc = config.estimator, config.health
        self.channels = channels
        C = self.n_channels = channels.n_channels
        self.unknown: dict[str, int] = {}
        self.last_t_us = np.zeros(C, dtype=np.int64)
        self.has_clock = np.zeros(C, dtype=bool)
        self.clock_offset = np.zeros(C)
        self.clock_updated = np.zeros(C)
        self.clock_anchor = np.full((2, C), np.nan)  # sensor s, offset at anchor
        self.stuck_run = np.zeros(C, dtype=np.int64)
        self.last_sample = np.zeros((4, C))  # rows: 1, t, p, T of the last valid sample
        self.last_sample[0] = 1.0
        self.reg_half = int(hc.spike_max_samples)
        self.reg_width = 2 * self.reg_half + 1
        self.reg_t = np.zeros((C, self.reg_width))
        self.reg_p = np.zeros((C, self.reg_width))
        self.reg_temp = np.zeros((C, self.reg_width))
        self.reg_count = np.zeros(C, dtype=np.int64)
        self.has_sample = np.zeros(C, dtype=bool)
        self._drift_allow = est.clock_drift_ppm * 1e-6
        self._range_mid = (channels.range_lo + channels.range_hi) / 2
        self._range_half = (channels.range_hi - channels.range_lo) / 2
        self._temp_mid = sum(hc.temp_range_c) / 2
        self._temp_half = (hc.temp_range_c[1] - hc.temp_range_c[0]) / 2
        self._spike_pa = hc.spike_pa
        self._spike_k = hc.spike_temp_k
        self.sums = np.zeros((4, C))  # n, sum t, sum p, sum T of this tick
        self._spare_sums = np.zeros((4, C))
        self.fault_flags = np.zeros(C, dtype=np.int64)
        self.flagged = False  # some fault_flags may be set (taken since)
        self.last_arrival = np.full(C, np.nan)
        self.n_total = np.zeros(C, dtype=np.int64)
        self.samples_pending = 0
        # batches ingested since the last flush: (channels, columns, host time s)
        self._pending: list[tuple[np.ndarray, tuple, float]] = []

    # --- per batch --------------------------------------------------------------
    def ingest(self, link: str, records: np.ndarray, host_time_s: float) -> None:
        """Take a batch of SAMPLE records of ``link`` that arrived by ``host_time_s`` (s).

        Unknown addresses are counted, the samples counted and their arrival
        noted now; the batch's columns, sorted by channel (stable), are
        conditioned at the next ``flush``.
        """
        m = len(records)
        if m == 0:
            return
        lut = self.channels.address_map.get(link)
        if lut is None:
            self.unknown[link] = self.unknown.get(link, 0) + m
            return
        ch = lut[records["addr"]]
        if np.count_nonzero(ch < 0):
            known = ch >= 0
            self.unknown[link] = self.unknown.get(link, 0) + int(m - known.sum())
            records = records[known]
            ch = ch[known]
            m = len(ch)
            if m == 0:
                return
        self.samples_pending += m
        C = self.n_channels
        counts = np.bincount(ch, minlength=C)
        self.n_total += counts
        if m == C and np.count_nonzero(counts) == C:
            # one sample of every channel (the usual batch): the stable sort by channel
            # is the inverse permutation, no argsort needed
            order = np.empty(m, dtype=np.intp)
            order[ch] = np.arange(m)
            chs = np.arange(C)
        else:
            order = np.argsort(ch, kind="stable")
            chs = ch[order]
        self.last_arrival[chs] = host_time_s
        cols = (  # (copies: the caller may reuse its buffer)
            records["t_us"][order].astype(np.int64),
            records["pressure_pa"][order],
            records["temperature_c"][order].astype(np.float64),
            records["status"][order],
        )
        self._pending.append((chs, cols, host_time_s))

    def flush(self) -> None:
        """Condition the batches ingested since the last call, together.

        The samples are cut into rounds holding at most one sample per channel
        (the r-th of each channel, in stream order), and each round is
        conditioned for all its channels at once; each sample keeps its own
        batch's host time.  One sample per channel (one batch of every channel,
        or one batch per link) is one round.
        """
        pending = self._pending
        if not pending:
            return
        self._pending = []
        host: float | np.ndarray
        if len(pending) == 1:
            chs, cols, host = pending[0]
        else:
            # each batch is sorted by channel: a stable sort of them all, one after
            # the other, keeps each channel's samples in stream order
            chs = np.concatenate([b[0] for b in pending])
            h0 = pending[0][2]
            if all(b[2] == h0 for b in pending):
                host = h0  # (the usual tick: every link read at the same time)
            else:
                host = np.concatenate([np.full(len(b[0]), b[2]) for b in pending])
            cols = tuple(np.concatenate([b[1][k] for b in pending]) for k in range(4))
            if np.count_nonzero(chs[1:] <= chs[:-1]):
                # (links of disjoint, ascending channels, one batch each, are in
                # order already: the usual tick needs no sort)
                order = np.argsort(chs, kind="stable")
                chs = chs[order]
                if isinstance(host, np.ndarray):
                    host = host[order]
                cols = tuple(c[order] for c in cols)
        m = len(chs)
        new = chs[1:] != chs[:-1]
        if np.count_nonzero(new) == m - 1:  # one sample per channel: a single round
            self._ingest_round(chs, *cols, host)
            return
        flag = np.concatenate((_TRUE, new))
        starts = np.flatnonzero(flag)
        rank = np.arange(m) - starts[np.cumsum(flag) - 1]
        for r in range(int(rank.max()) + 1):
            sel = rank == r
            h = host[sel] if isinstance(host, np.ndarray) else host
            self._ingest_round(chs[sel], *(c[sel] for c in cols), h)

    def _ingest_round(self, ch, t_us, p, temp, st, host_time_s) -> None:
        """At most one record per channel (``ch`` unique and ascending, as ``flush``
        makes it); columns as in the record, sensor time in us, host time in s (one
        number, or one per record).

        Runs every tick for every channel, so it is written for few numpy calls
        (each costs about a microsecond whatever its length): the exceptions a
        clean round does not have (status bits, reboot, first sample, out of
        range, young clock, spikes) are detected with one ``np.count_nonzero``
        each and only then handled, and registers are addressed by flat index
        ``channel * W + position``.
        """
        # A reboot (the sensor clock went backwards) raises an advisory.  A reported
        # configuration change (status bit 5) without one is what the host's own
        # SET_RATE or ZERO_OFFSET causes: the history is forgotten, since an offset
        # change would otherwise look like a pressure step, but nothing is alarmed.
        had = self.has_clock[ch]
        reboot = had & (t_us < self.last_t_us[ch])
        any_status = np.count_nonzero(st) > 0
        any_reboot = np.count_nonzero(reboot) > 0
        if any_status or any_reboot:
            reset = reboot
            if any_status:
                reset = reboot | (had & ((st & _CONFIG_CHANGED) != 0))
            if any_reboot:
                self.fault_flags[ch[reboot]] |= int(FaultKind.REBOOT)
                self.flagged = True
            if reset.any():
                self.reset_channels(ch[reset])
                had = self.has_clock[ch]
        all_had = np.count_nonzero(had) == len(ch)
        # clock mapping: lower envelope of (host arrival - sensor time), drifting up slowly
        t_sens = t_us * 1e-6
        cand = host_time_s - t_sens
        off = self.clock_offset[ch] + self._drift_allow * (host_time_s - self.clock_updated[ch])
        if all_had:
            np.minimum(off, cand, out=off)
        else:
            off = np.where(had, np.minimum(off, cand), cand)
        self.clock_offset[ch] = off
        self.clock_updated[ch] = host_time_s
        if not all_had:
            self.clock_anchor[0, ch[~had]] = t_sens[~had]
            self.clock_anchor[1, ch[~had]] = off[~had]
        # the rate reference: the lowest offset seen in the first minute
        young = (t_sens - self.clock_anchor[0, ch]) < 60.0
        if np.count_nonzero(young):
            cy = ch[young]
            self.clock_anchor[1, cy] = np.minimum(self.clock_anchor[1, cy], off[young])
        self.last_t_us[ch] = t_us
        self.has_clock[ch] = True
        th = off + t_sens

        # range and status bits
        ok = np.abs(p - self._range_mid[ch]) <= self._range_half[ch]
        ok &= np.abs(temp - self._temp_mid) <= self._temp_half
        if any_status or np.count_nonzero(ok) < len(ok):
            bad = ~ok
            oor = bad | ((st & _STATUS_RANGE_BITS) != 0)
            stat = (st & _STATUS_FAULT_BITS) != 0
            self.fault_flags[ch[oor]] |= int(FaultKind.OUT_OF_RANGE)
            self.fault_flags[ch[stat]] |= int(FaultKind.STATUS)
            self.flagged = True
            valid = ~(oor | stat)
            if not valid.all():
                ch, th, p, temp = ch[valid], th[valid], p[valid], temp[valid]
                if len(ch) == 0:
                    return

        # each channel's ring register of its last 2h+1 valid samples (t_host, p, T),
        # addressed through flat views (channel c, position j at c * W + j); a fresh
        # channel's register is filled with its first sample
        W, h = self.reg_width, self.reg_half
        Rt = self.reg_t.reshape(-1, copy=False)
        Rp = self.reg_p.reshape(-1, copy=False)
        RT = self.reg_temp.reshape(-1, copy=False)
        cnt = self.reg_count[ch]
        fresh = cnt == 0
        any_fresh = np.count_nonzero(fresh) > 0
        if any_fresh:
            cf = ch[fresh]
            self.reg_t[cf] = th[fresh, None]
            self.reg_p[cf] = p[fresh, None]
            self.reg_temp[cf] = temp[fresh, None]
        pos = cnt % W
        row = ch * W
        prev_p = Rp[row + (pos - 1) % W]
        k_new = row + pos
        Rt[k_new] = th
        Rp[k_new] = p
        RT[k_new] = temp
        n_in = cnt + 1
        self.reg_count[ch] = n_in
        # stuck: run length of identical pressures
        same = p == prev_p
        if any_fresh:
            same &= ~fresh
        self.stuck_run[ch] = np.where(same, self.stuck_run[ch] + 1, 1)
        # spikes: the middle sample is judged against the median of the register (h samples
        # of delay): up to h outliers in a row are caught, a ramp or a step never is.
        # Only registers spanning more than the threshold can hold a spike.  One sort of
        # the p and T registers stacked gives each one's spread (last - first = max - min)
        # and median (at h); four max/min reductions along the short axis cost 4x more.
        judge = n_in > h
        k_mid = row + (pos - h) % W  # flat index of the middle sample
        reg = np.empty((2, len(ch), W))  # sorted copies of the p and T registers
        self.reg_p.take(ch, axis=0, out=reg[0], mode="clip")  # (ch is in range)
        self.reg_temp.take(ch, axis=0, out=reg[1], mode="clip")
        reg.sort(axis=2)
        spread = reg[:, :, -1] - reg[:, :, 0]
        wide = (spread[0] > self._spike_pa) | (spread[1] > self._spike_k)
        wide &= judge
        emit = judge
        if np.count_nonzero(wide):
            sel = np.flatnonzero(wide)
            spike = np.zeros(len(ch), dtype=bool)
            spike[sel] = (np.abs(Rp[k_mid[sel]] - reg[0, sel, h]) > self._spike_pa) | (
                np.abs(RT[k_mid[sel]] - reg[1, sel, h]) > self._spike_k
            )
            if spike.any():
                self.fault_flags[ch[spike]] |= int(FaultKind.SPIKE)
                self.flagged = True
                emit = judge & ~spike
        n_emit = np.count_nonzero(emit)
        acc = self.sums
        if n_emit == self.n_channels:  # every channel (ch is then 0, 1, ..., C - 1)
            acc[0] += 1.0
            acc[1] += Rt[k_mid]
            acc[2] += Rp[k_mid]
            acc[3] += RT[k_mid]
        elif n_emit:
            ce = ch[emit]
            ke = k_mid[emit]
            acc[0, ce] += 1.0
            acc[1, ce] += Rt[ke]
            acc[2, ce] += Rp[ke]
            acc[3, ce] += RT[ke]
        last = self.last_sample
        if len(ch) == self.n_channels:  # every channel: rows, not scattered elements
            last[1] = th
            last[2] = p
            last[3] = temp
            self.has_sample[:] = True
        else:
            last[1, ch] = th
            last[2, ch] = p
            last[3, ch] = temp
            self.has_sample[ch] = True

    # --- per tick -----------------------------------------------------------------
    def drain(self, drop: np.ndarray) -> tuple[np.ndarray, int]:
        """This tick's sums ``(4, C)`` (channels in ``drop`` zeroed) and the number of
        samples ingested since the last call; the conditioner starts new sums.

        The returned array is valid until the next call."""
        acc = self.sums
        if np.count_nonzero(drop):  # (a third of ndarray.any()'s call overhead)
            acc[:, drop] = 0.0
        spare = self._spare_sums
        spare[:] = 0.0
        self.sums = spare
        self._spare_sums = acc
        n = self.samples_pending
        self.samples_pending = 0
        return acc, n

    def take_fault_flags(self) -> np.ndarray:
        """The ``FaultKind`` bits seen since the last call (one int per channel)."""
        flags = self.fault_flags
        self.fault_flags = np.zeros(self.n_channels, dtype=np.int64)
        self.flagged = False
        return flags

    def clock_rate_ppm(self) -> np.ndarray:
        """Each sensor clock's rate error (ppm) against the host clock, from the
        offset's change since its anchor; NaN for the first minute."""
        base = self.last_t_us * 1e-6 - self.clock_anchor[0]
        # (under the core's np.errstate(invalid="ignore", divide="ignore"))
        return np.where(
            base > 60.0, (self.clock_offset - self.clock_anchor[1]) / base * -1e6, np.nan
        )

    # --- resets -------------------------------------------------------------------
    def clear_sums(self, mask: np.ndarray) -> None:
        """Drop this tick's sums of the channels in ``mask``."""
        self.sums[:, mask] = 0.0

    def reset_channels(self, chs: np.ndarray) -> None:
        """Forget clock mapping, filter state and this tick's sums of channels ``chs``;
        the window bank is told through ``on_reset``."""
        if len(chs) == 0:
            return
        mask = np.zeros(self.n_channels, dtype=bool)
        mask[chs] = True
        self.on_reset(mask)
        self.sums[:, mask] = 0.0
        self.has_clock[mask] = False
        self.has_sample[mask] = False
        self.reg_count[mask] = 0
        self.stuck_run[mask] = 0
        self.clock_anchor[:, mask] = np.nan

    def on_reset(self, mask: np.ndarray) -> None:
        """Called with the channels being reset; the core points it at the window bank."""
