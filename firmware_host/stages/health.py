"""Sensor health: fault conditions, noise learning and exclusion.

Each slow tick ``SensorHealth.update`` turns the conditioner's fault evidence
(stale, stuck, out of range, status, reboot, spike) and the window fits (a
sensor's level or slope against its volume's median, its residual scatter
against its own usual scatter) into each sensor's standing: OK, FAULTED,
RECOVERING or NO_DATA, and the ``usable`` mask the estimates take.  A fault
holds for ``fault_hold_s`` after its last evidence, then the sensor recovers
for ``recover_s``.  A pair that disagrees is flagged but stays in (which one is
wrong?); with three or more sensors the outlier is left out.  Stuck or
outvoted data leaves the history (``corrupt``) and adds nothing until the
sensor recovers.

``learn_noise`` keeps each healthy sensor's per-sample pressure variance for
the sudden-drop test.  Units: s, Pa, Pa/s, Pa^2.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np

from firmware_host.config import MonitorConfig
from firmware_host.stages.topology import Channels


class HealthState(enum.IntEnum):
    """A sensor's standing in its volume's estimates (explicit codes: the health
    arrays hold these)."""

    NO_DATA = 0
    OK = 1
    FAULTED = 2
    RECOVERING = 3


class FaultKind(enum.IntFlag):
    """Sensor faults (bit flags).  ``column(kind)`` is the kind's column in the
    ``(C, K)`` fault arrays."""

    STALE = 1
    STUCK = 2
    OUT_OF_RANGE = 4
    STATUS = 8
    REBOOT = 16
    SPIKE = 32
    DISAGREE = 64
    NOISY = 128
    DRIFT = 256


FAULT_KINDS: tuple[FaultKind, ...] = tuple(FaultKind)


def column(kind: FaultKind) -> int:
    """The column of ``kind`` in the ``(C, K)`` fault arrays (its bit's position)."""
    return int(kind).bit_length() - 1


STALE_COL = column(FaultKind.STALE)
STUCK_COL = column(FaultKind.STUCK)
DISAGREE_COL = column(FaultKind.DISAGREE)
NOISY_COL = column(FaultKind.NOISY)
DRIFT_COL = column(FaultKind.DRIFT)
#: fault kinds reported as event flags by the conditioner
FLAG_KINDS = (FaultKind.OUT_OF_RANGE, FaultKind.STATUS, FaultKind.REBOOT, FaultKind.SPIKE)
# the flag kinds' columns and bits, as arrays (one broadcast test for all four)
_FLAG_COLS = np.array([column(k) for k in FLAG_KINDS])
_FLAG_BITS = np.array([int(k) for k in FLAG_KINDS])
#: the columns of the faults that are the sensor's own (all but disagreement and
#: drift, where a pair cannot tell which one is wrong: advisories only)
OWN_COLS = np.array(
    [column(k) for k in FAULT_KINDS if k not in (FaultKind.DISAGREE, FaultKind.DRIFT)]
)
#: How often (s) the drift test runs: it reads windows of many minutes.
DRIFT_PERIOD_S = 60.0
#: the columns of the faults a sensor shows by itself, before any comparison
SELF_COLS = np.array([column(k) for k in (FaultKind.STALE, FaultKind.STUCK, *FLAG_KINDS)])


@cache
def median_d2_white(n: int) -> float:
    """E[median of the squared successive differences of ``n`` white samples] / (2 sigma^2):
    0.455 for many samples, 0.66 for the 6 differences of a 7-sample register.
    Computed once per ``n`` (a fixed seed, 4000 draws: within about 1 %)."""
    z = np.random.default_rng(0).standard_normal((4000, n))
    return float(np.median(np.diff(z, axis=1) ** 2, axis=1).mean()) / 2.0


@dataclass(frozen=True)
class HealthSnapshot:
    """Each sensor's standing after a slow tick (copies).

    ``state`` holds ``HealthState`` codes; ``active`` the ``(C, K)`` active
    faults by ``column``.
    """

    state: np.ndarray
    active: np.ndarray


class SensorHealth:
    """Fault conditions, exclusion and noise learning of every sensor.

    ``usable`` (bool, C) are the sensors the estimates take; ``drop`` those
    whose data stays out of the history; ``rate_hz`` each sensor's measured
    sample rate; ``noise_var`` its usual per-sample pressure variance (Pa^2);
    ``drop_threshold`` the sudden-drop test's threshold (Pa, inf: not armed).
    """

    def __init__(self, config: MonitorConfig, channels: Channels, slow_period_s: float):
        self.config = config
        self.hc = config.health
        self.channels = channels
        self.slow_period_s = slow_period_s
        C = channels.n_channels
        K = len(FAULT_KINDS)
        self.stale_after_s = self.hc.stale_periods / channels.rate_hz
        self.fault_last = np.full((C, K), -np.inf)
        self.fault_value = np.zeros((C, K))
        self.state = np.zeros(C, dtype=np.int64)
        self.usable = np.zeros(C, dtype=bool)
        self.excluded_last = np.full(C, -np.inf)
        self.faulted = np.zeros(C, dtype=bool)
        self.drop = np.zeros(C, dtype=bool)  # stuck or outvoted: its data stays out
        self.period_s = np.full(C, np.nan)  # sample period (s) from the sensor clock
        self.rate_hz = channels.rate_hz.copy()
        self._rate_prev = (np.zeros(C, dtype=np.int64), np.zeros(C, dtype=np.int64))
        self.scatter_base = np.full(C, np.nan)  # usual residual scatter (Pa) of each sensor
        self.scatter_age = np.zeros(C)
        self.noise_var = np.full(C, np.nan)  # usual per-sample pressure variance (Pa^2)
        self.noise_n = np.zeros(C)  # updates of noise_var so far
        self.noise_learnt_s = np.zeros(C)  # time (s) those updates covered
        self.drop_threshold = np.full(C, np.inf)  # sudden-drop threshold (Pa)
        self.active = np.zeros((C, K), dtype=bool)
        windows_s = np.asarray(config.windows_s, dtype=float)
        self.windows_s = windows_s
        dis = np.flatnonzero(windows_s <= self.hc.disagree_window_s)
        #: the window (index) whose residual scatter tells a noisy sensor and whose
        #: level is compared; the windows (indices) whose slopes are compared
        self.noise_window = int(dis[-1]) if len(dis) else 0
        # slopes are compared over every window up to disagree_max_window_s
        self.slope_windows = np.flatnonzero(
            windows_s <= max(self.hc.disagree_max_window_s, windows_s[0])
        )
        self._tab_idx = np.maximum(channels.volume_table, 0)
        self._vol_idx = np.arange(channels.n_volumes)
        # learn_noise: each register's successor position, and the register width
        # whose white-noise calibration is cached
        self._noise_w = 0
        # check_drift: the windows longer than the disagreement test's, its result
        self.drift_windows = np.flatnonzero(windows_s > self.hc.disagree_max_window_s)
        self.drift = np.zeros(C, dtype=bool)
        self.drift_pa_s = np.full(C, np.nan)  # the drift found (Pa/s against the others)
        self.drift_window_s = np.full(C, np.nan)
        self.drift_limit_pa_s = np.full(C, np.nan)
        self._next_drift_s = -np.inf
        #: from when (host s) each channel's window history is whole (the core sets
        #: it when it clears a channel's history)
        self.history_from_s = np.full(C, -np.inf)

    def stale_limit_s(self) -> np.ndarray:
        """After how long (s) without a sample each sensor is stale: ``stale_periods``
        of its configured period, or of its measured one if it runs slower."""
        return np.fmax(self.stale_after_s, self.hc.stale_periods * self.period_s)

    def measure_rates(self, n_total, last_t_us, has_clock) -> np.ndarray:
        """Each sensor's sample rate (Hz) from its own clock, else the configured one.

        Sensor-clock time over samples counted since the last call, averaged
        slowly; a gap or a reboot moves it at most by a factor of two per call.
        A sensor's first samples only set the start: its clock ran since it
        powered up, before the monitor counted anything (a monitor started an
        hour after the sensors would measure one sample per hour).
        """
        seen = self._rate_prev[0] > 0
        dn = n_total - self._rate_prev[0]
        dts = (last_t_us - self._rate_prev[1]) * 1e-6
        self._rate_prev = (n_total.copy(), last_t_us.copy())
        ok = (dn > 0) & (dts > 0) & has_clock & seen
        # (under the core's np.errstate(invalid="ignore", divide="ignore"))
        inst = dts / dn
        p = self.period_s
        # (np.clip's bytes as the min of the max, without np.clip's per-call overhead)
        clipped = np.minimum(np.maximum(inst, 0.5 * p), 2.0 * p)
        upd = np.where(np.isfinite(p), p + 0.05 * (clipped - p), inst)
        self.period_s = np.where(ok, upd, p)
        self.rate_hz = np.where(
            np.isfinite(self.period_s), 1.0 / self.period_s, self.channels.rate_hz
        )
        return self.rate_hz

    def update(
        self, now_s, fits, flags, stuck_run, last_arrival, has_sample, step_s=None
    ) -> np.ndarray:
        """Judge every sensor at host time ``now_s`` (s) from the window fits
        (``WindowFits``), the conditioner's fault ``flags`` (``FaultKind`` bits),
        stuck runs, last arrival times (s) and which sensors have a sample;
        ``step_s``: time (s) since the last update (default ``slow_period_s``),
        the weight of this update in the slow averages.

        Returns the channels whose history has become suspect (to be cleared)."""
        hc = self.hc
        C = self.channels.n_channels
        K = len(FAULT_KINDS)
        slope_p, se_p, nsamp = fits.slope_pa_s, fits.stderr_pa_s, fits.n_samples
        level_p = fits.level_now_pa
        cond = np.zeros((C, K), dtype=bool)
        age = now_s - last_arrival
        # stale after a few periods: configured, or measured if the sensor runs slower
        cond[:, STALE_COL] = age > self.stale_limit_s()
        cond[:, STUCK_COL] = stuck_run >= hc.stuck_samples
        cond[:, _FLAG_COLS] = (flags[:, None] & _FLAG_BITS) != 0
        # disagreement with the volume median (level now, and slope), among sensors
        # not faulted for another reason
        j = self.noise_window
        others = (now_s - self.fault_last[:, OWN_COLS].max(axis=1)) >= hc.fault_hold_s
        ok = others & ~cond[:, SELF_COLS].any(axis=1) & np.isfinite(slope_p[j]) & has_sample
        scatter = se_p[j] * np.sqrt(np.maximum(nsamp[j], 1.0))  # residual scatter, Pa
        dw = self.slope_windows
        # slopes are only compared where a sensor covered the window (a gap changes
        # what a straight line makes of a curved thermal signal)
        rate = self.rate_hz
        expect = self.windows_s[dw, None] * rate[None, :]
        covered = nsamp[dw] >= 0.9 * expect
        sl = np.where(covered, slope_p[dw], np.nan)
        ok_noisy = ok & (nsamp[j] >= 0.9 * self.windows_s[j] * rate) & (nsamp[j] >= 20)
        sc = np.where(ok_noisy, scatter, np.nan)
        disagree, excl, noisy = self._disagreement(ok, sl, se_p[dw], level_p, sc)
        # noisy also against the sensor's own usual scatter (a slow average while it is
        # healthy), so sensors of different quality in one volume are not flagged
        base = self.scatter_base
        known = self.scatter_age >= hc.noisy_learn_s
        noisy &= known & (sc > hc.noisy_ratio * base)
        learn = np.isfinite(sc) & self.usable & ~noisy
        step = self.slow_period_s if step_s is None else step_s
        alpha = min(1.0, step / hc.noisy_learn_s)
        self.scatter_base = np.where(
            learn, np.where(np.isfinite(base), base + alpha * (sc - base), sc), base
        )
        self.scatter_age = self.scatter_age + np.where(learn, step, 0.0)
        cond[:, DISAGREE_COL] = disagree
        cond[:, NOISY_COL] = noisy
        cond[:, DRIFT_COL] = self.drift
        self.fault_value[:, STALE_COL] = age
        self.fault_value[:, STUCK_COL] = stuck_run
        self.fault_last[cond] = now_s
        self.excluded_last[excl] = now_s
        since = now_s - self.fault_last
        active = cond | (since < hc.fault_hold_s)
        self.active = active
        # a disagreeing pair raises advisories but stays in (which one is wrong?);
        # with three or more sensors the outlier is left out
        faulted = (
            active[:, OWN_COLS].any(axis=1)
            | ((now_s - self.excluded_last) < hc.fault_hold_s)
            | excl
        )
        last_any = np.maximum(self.fault_last[:, OWN_COLS].max(axis=1), self.excluded_last)
        recovering = ~faulted & ((now_s - last_any) < hc.recover_s)
        self.usable = ~faulted & ~recovering & has_sample
        # data that may be corrupt (stuck, outvoted) leaves the history when the fault is
        # found, and such a sensor adds nothing until it recovers
        drop = active[:, STUCK_COL] | excl | ((now_s - self.excluded_last) < hc.fault_hold_s)
        corrupt = drop & ~self.drop
        self.drop = drop
        self.faulted = faulted
        state = np.full(C, int(HealthState.OK))
        state[recovering] = int(HealthState.RECOVERING)
        state[faulted] = int(HealthState.FAULTED)
        state[~has_sample] = int(HealthState.NO_DATA)
        self.state = state
        return corrupt

    def drift_due(self, now_s: float) -> bool:
        """Whether ``check_drift`` at host time ``now_s`` (s) runs its test (every
        ``DRIFT_PERIOD_S``); before that it returns at once."""
        return now_s >= self._next_drift_s

    def check_drift(
        self,
        now_s: float,
        fits,
        group_of: np.ndarray,
        clean_from_s: np.ndarray | None,
        limit_pa_s: np.ndarray,
    ) -> None:
        """Slow drift: a sensor whose raw pressure slope over a window longer than
        ``disagree_max_window_s`` departs from its group's other sensors by more
        than ``limit_pa_s`` (Pa/s, ``(C,)``: what would move its volume's estimate
        by half the CAUTION limit) and ``disagree_sigma`` standard errors
        (``drift``, ``drift_pa_s``, ``drift_window_s``; runs every
        ``DRIFT_PERIOD_S``).

        The pressure is one across an open hatch, so every sensor of a volume
        group (``group_of``: each channel's group id) reads the same slope,
        thermal swings included.  A pair is compared with each other (both are
        flagged: which one drifts?), three or more with their median (the
        outlier).  A sensor alone in its group cannot be judged.  Windows that
        began before ``clean_from_s`` (each channel's group settled after a
        hatch change; None: never changed), before a sensor's history was last
        cleared (``history_from_s``) or that it did not cover (97 %) are left
        out.  An advisory only: the sensor stays in the estimates.
        """
        if now_s < self._next_drift_s:
            return
        self._next_drift_s = now_s + DRIFT_PERIOD_S
        dw = self.drift_windows
        C = self.channels.n_channels
        flag = np.zeros(C, dtype=bool)
        value = np.full(C, np.nan)
        win = np.full(C, np.nan)
        if len(dw):
            w = self.windows_s[dw, None]
            sl = fits.slope_pa_s[dw]
            # the noise alone: a thermal misfit common to the group cancels in the
            # difference
            se = fits.noise_stderr_pa_s[dw]
            valid = np.isfinite(sl) & np.isfinite(se) & ~self.faulted[None, :]
            # every compared window whole: under a thermal swing the slope of a
            # window that holds a few minutes less is another slope
            valid &= fits.n_samples[dw] >= 0.97 * w * self.rate_hz[None, :]
            valid &= (now_s - w) >= self.history_from_s[None, :]
            if clean_from_s is not None:
                valid &= (now_s - w) >= clean_from_s[None, :]
            k = self.hc.disagree_sigma
            for g in np.unique(group_of).tolist():
                m = np.flatnonzero(group_of == g)
                if len(m) < 2:
                    continue
                x = np.where(valid[:, m], sl[:, m], np.nan)
                e = np.where(valid[:, m], se[:, m], np.nan)
                cnt = np.isfinite(x).sum(axis=1, keepdims=True)
                # a pair: the other one; three or more: the median
                tot = np.nansum(x, axis=1, keepdims=True)
                tot_e = np.sqrt(np.nansum(e**2, axis=1, keepdims=True))
                pair = cnt == 2
                if not np.count_nonzero(cnt >= 3):  # the median is for three or more
                    med = med_e = np.nan
                else:
                    with warnings.catch_warnings():  # windows nobody covered: NaN
                        warnings.simplefilter("ignore", RuntimeWarning)
                        med = np.nanmedian(x, axis=1, keepdims=True)
                        med_e = np.nanmedian(e, axis=1, keepdims=True)
                ref = np.where(pair, tot - x, med)
                ref_e = np.where(pair, np.sqrt(np.maximum(tot_e**2 - e**2, 0.0)), med_e)
                dev = x - ref
                hit = (
                    (cnt >= 2)
                    & (np.abs(dev) > limit_pa_s[m][None, :])
                    & (np.abs(dev) > k * np.hypot(e, ref_e))
                )
                if not hit.any():
                    continue
                # the drift of the longest window that shows it
                j = len(dw) - 1 - np.argmax(hit[::-1], axis=0)
                cols = np.arange(len(m))
                got = hit.any(axis=0)
                flag[m] = got
                value[m] = np.where(got, dev[j, cols], np.nan)
                win[m] = np.where(got, self.windows_s[dw][j], np.nan)
        self.drift = flag
        self.drift_pa_s = value
        self.drift_window_s = win
        self.drift_limit_pa_s = np.asarray(limit_pa_s, dtype=float).copy()

    def _disagreement(self, ok, slope, se, level, scatter):
        """Flag sensors whose level or slope is far from their volume's median, and
        sensors whose residual scatter is ``noisy_ratio`` times the volume's quietest.

        ``slope``/``se`` are ``(windows, C)``: a slope disagreeing in any of the
        windows counts.  Returns (flag, exclude, noisy): with 3+ sensors the
        outliers are excluded; a disagreeing pair is flagged but both stay in.
        """
        hc = self.hc
        C = self.channels.n_channels
        tab = self.channels.volume_table
        valid = (tab >= 0) & ok[np.maximum(tab, 0)]
        cnt = valid.sum(axis=1)
        flag = np.zeros(C, dtype=bool)
        excl = np.zeros(C, dtype=bool)
        if not (cnt >= 2).any():
            return flag, excl, flag
        # medians per volume of every quantity, with one sort
        x = np.concatenate((level[None], scatter[None], slope, se))  # (np.vstack, quicker)
        g = np.where(valid, x[:, self._tab_idx], np.nan)
        g.sort(axis=2)
        vi = self._vol_idx
        lo = np.maximum((cnt - 1) // 2, 0)
        hi = np.maximum(cnt // 2, 0)
        med = 0.5 * (g[:, vi, lo] + g[:, vi, hi])
        v = self.channels.volume_of
        nw = len(slope)
        med_level = med[0]
        quietest = g[1, :, 0]
        med_slope = med[2 : 2 + nw][:, v]
        med_se = med[2 + nw :][:, v]
        # (under the core's np.errstate(invalid="ignore"))
        d_level = np.abs(level - med_level[v]) > hc.disagree_pa
        dev = np.abs(slope - med_slope)
        d_slope = (
            (dev > hc.disagree_rate_pa_s) & (dev > hc.disagree_sigma * np.hypot(se, med_se))
        ).any(axis=0)
        noisy = ok & (scatter > hc.noisy_ratio * quietest[v])
        flag = ok & (cnt[v] >= 2) & (d_level | d_slope)
        excl = flag & (cnt[v] >= 3)
        return flag, excl, noisy

    def learn_noise(
        self, reg_p: np.ndarray, reg_count: np.ndarray, emergency_drop_sigma, step_s=None
    ) -> None:
        """Each healthy sensor's usual per-sample pressure variance (Pa^2), slowly.

        From the successive differences in its spike-filter register ``reg_p``
        (``(C, W)``, the last ``W`` valid samples, ``reg_count`` written): for
        white noise d ~ N(0, 2 sigma^2), and the median of the d^2 (its mean
        calibrated for white noise) is robust to a step or a spike among them.
        Averaged over ``noisy_learn_s``; a trend only raises it.  ``step_s``: time
        (s) since the last update (default ``slow_period_s``).  Then the
        sudden-drop threshold is updated with ``emergency_drop_sigma``.
        """
        W = reg_p.shape[1]
        ok = self.usable & (reg_count >= W)
        if ok.any():
            if self._noise_w != W:
                self._noise_w = W
                self._noise_next = (np.arange(W) + 1) % W
                self._noise_rows = np.arange(reg_p.shape[0]) * W
                self._noise_cal = 2 * median_d2_white(W)
            # the W - 1 successive differences of the register in time order are the
            # differences of each position's successor and itself, all but the pair
            # that wraps from the newest to the oldest sample; their median is the
            # mean of the middle two of the sorted W - 1 (that pair, set to +inf,
            # sorts last; the register holds only valid, finite samples), as
            # np.median computes it
            d = reg_p[:, self._noise_next] - reg_p
            d *= d
            d.reshape(-1)[self._noise_rows + (reg_count - 1) % W] = np.inf
            d.sort(axis=1)
            h = (W - 1) // 2
            if (W - 1) % 2:
                med = d[:, h]
            else:
                med = (d[:, h - 1] + d[:, h]) / 2.0
            v = med / self._noise_cal
            nv = self.noise_var
            base = np.where(np.isnan(nv), 0.0, nv)
            # a running mean at first, then an average over noisy_learn_s
            k = np.where(ok, self.noise_n + 1.0, self.noise_n)
            self.noise_n = k
            step = self.slow_period_s if step_s is None else step_s
            self.noise_learnt_s = np.where(ok, self.noise_learnt_s + step, self.noise_learnt_s)
            slow = min(1.0, step / self.hc.noisy_learn_s)
            alpha = np.maximum(1.0 / k, slow)
            self.noise_var = np.where(ok, base + alpha * (v - base), nv)
        self.update_drop_threshold(emergency_drop_sigma)

    def update_drop_threshold(self, k: float) -> None:
        """The sudden-drop test's threshold per sensor (Pa): ``k`` times its learnt
        noise (at least 1 Pa) once learnt over a minute and while it is healthy,
        else infinite."""
        ok = self.usable & (self.noise_learnt_s >= 60.0) & np.isfinite(self.noise_var) & (k > 0)
        sig = np.fmax(np.sqrt(np.where(ok, self.noise_var, 1.0)), 1.0)
        self.drop_threshold = np.where(ok, k * sig, np.inf)

    def snapshot(self) -> HealthSnapshot:
        return HealthSnapshot(state=self.state.copy(), active=self.active.copy())
