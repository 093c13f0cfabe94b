"""The window bank: per-tick sums -> ring-buffer tiers -> fits of every window.

Three tiers of ring buffer (``firmware_host.ringbuffer.Tier``): one slot per
tick, per 1-s bin and per 60-s bin.  Each configured window lives on the
finest tier that holds it in at most ``max_window_slots`` slots.  The raw tier
also holds the short rapid-depressurization window.  ``fits`` returns the
straight-line fits of every window for every channel (``WindowFits``), with
the pressure slopes as they were a temperature lag ago for compensation.

Units: time s, pressure Pa, temperature deg C, slopes Pa/s and K/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from firmware_host.config import MonitorConfig
from firmware_host.ringbuffer import Tier, fit_sums_raw
from firmware_host.sizing import estimation_period_s, lag_periods, layout

__all__ = ["WindowBank", "WindowFits", "estimation_period_s"]


def noise_slope_stderr(fit, noise_var: np.ndarray) -> np.ndarray:
    """The error (Pa/s) the sensor's white noise alone gives each window's slope,
    ``sqrt(noise_var / Sxx)`` (``noise_var`` per sample, Pa^2, ``(C,)``; NaN where
    not known).  Arrays ``(nW, C)``.

    What a difference between sensors of one group is judged by: a misfit
    common to them (a thermal swing, a curving decay) cancels there.  The
    estimates keep the slot-level error (``Fit.stderr_pa_s``): a per-sample
    residual variance would count a smooth misfit as if independent from
    sample to sample; with 10 Hz sensors on 1-s slots it stated 4.8 kg/day for
    the 25 mm hole in 6 m3 where the slot-level error states 14.5, and 0 of
    31 settled estimates fell within 2 of those sigma (31 of 31 with the
    slot-level error; docs/DETECTION.md).
    """
    sxx = fit.t_span_s**2 * fit.n / 12.0
    return np.sqrt(noise_var / sxx)


@dataclass(frozen=True)
class WindowFits:
    """Fits of every window (rows, ``(nW, C)``) for every channel at one slow tick.

    ``level_pa`` is the fitted pressure at the tick, ``level_now_pa`` ``(C,)`` that
    of the shortest window that has one, ``mid_pa`` the pressure at the middle of
    each delayed window (its mean a lag back: the moment the window's mean
    temperature describes); ``delayed_*`` the
    pressure slope and its error as fitted a temperature lag ago;
    ``noise_stderr_pa_s`` the error the sensor's white noise alone gives
    (``noise_slope_stderr``: a difference between sensors, where a common misfit
    cancels); ``stderr_comp_pa_s`` (and delayed) that of the channel's own
    compensated pressure (``ringbuffer.Fit``).  ``aligned`` ``(nW, C)``: the
    channel's data began at least the window and a temperature lag ago, so the
    window's temperature fit and its delayed pressure fit span the same time
    (until then the pressure's span is a lag shorter: the two fits' middles are
    half a lag apart, which on a 0.8 K orbit is 3 kg/day in 900 m3).
    """

    slope_pa_s: np.ndarray
    stderr_pa_s: np.ndarray
    stderr_comp_pa_s: np.ndarray
    noise_stderr_pa_s: np.ndarray
    slope_temp_k_s: np.ndarray
    stderr_temp_k_s: np.ndarray
    level_pa: np.ndarray
    level_now_pa: np.ndarray
    mid_pa: np.ndarray
    mean_temp_c: np.ndarray
    n_samples: np.ndarray
    delayed_slope_pa_s: np.ndarray
    delayed_stderr_pa_s: np.ndarray
    delayed_stderr_comp_pa_s: np.ndarray
    aligned: np.ndarray


class WindowBank:
    """Tiers, decimation bins, fit cache and lag history; see module docstring.

    ``windows_s`` are the configured windows (s); ``rapid_window_s`` the
    lengths of the raw-tier windows the rapid-depressurization test reads.
    """

    def __init__(self, config: MonitorConfig, n_channels: int):
        est = config.estimator
        C = self.n_channels = n_channels
        self.dt_tick = 1.0 / config.rate_hz
        self.windows_s = np.asarray(config.windows_s, dtype=float)
        self.n_windows = len(self.windows_s)
        self.window_tier = np.zeros(self.n_windows, dtype=np.int64)
        self.tiers: list[Tier] = []
        self._tier_windows: list[np.ndarray] = []
        # the tiers as firmware_host.sizing computes (and bounds) them; the raw tier
        # has an extra short window, only for the rapid-depressurization test
        plan = layout(config).tiers
        em_m = plan[0].extra_slots
        has_em = em_m >= 3
        for k, tl in enumerate(plan):
            for j, _ in tl.windows:
                self.window_tier[j] = k
            self.tiers.append(
                Tier(C, tl.period_s, tl.length, tl.window_slots, config.t_ref_k, tl.rebase_every)
            )
            self._tier_windows.append(np.array([j for j, _ in tl.windows], dtype=np.int64))
        self._bin: list[int | None] = [None, None, None]  # current bin of decimated tiers
        # the decimated tiers that are filled: those with windows, and the minute tier
        # (the regime fit reads it); with a 1 Hz loop the 1-s tier holds no window
        self._binned_tiers = [k for k in (1, 2) if k == 2 or len(self._tier_windows[k])]
        self._bin_sums = np.zeros((2, 4, C))  # the open 1-s and 60-s bins
        # fits: the tiers holding configured windows, and the order that puts the
        # stacked rows (tier by tier) in window order (None: already in order)
        self._fit_tiers = [k for k in range(3) if len(self._tier_windows[k])]
        stacked = np.concatenate([self._tier_windows[k] for k in self._fit_tiers])
        order = np.argsort(stacked)
        self._stack_order = None if (order == np.arange(len(order))).all() else order
        self._stack_refs = None
        # the rapid-depressurization test runs every tick: only windows on the raw tier
        fast = self.windows_s <= est.emergency_max_window_s
        fast_windows = np.flatnonzero(fast) if fast.any() else np.array([0])
        on_raw = fast_windows[self.window_tier[fast_windows] == 0]
        fast_windows = on_raw if len(on_raw) else np.array([0])
        self._rapid_local = np.searchsorted(self._tier_windows[0], fast_windows)
        if has_em:
            self._rapid_local = np.append(self._rapid_local, len(self._tier_windows[0]))
        self._rapid_min_slots = est.emergency_min_samples
        self.rapid_window_s = self.windows_s[fast_windows]
        if has_em:
            self.rapid_window_s = np.append(self.rapid_window_s, em_m * self.dt_tick)
        # pressure slopes delayed by the temperature sensors' lag (in slow ticks)
        #: how often (s) the slow tick runs (``estimation_period_s``)
        self.slow_period_s = slow_period_s = estimation_period_s(config)
        self.lag_ticks = lag_periods(config)
        self.lag_s = self.lag_ticks * slow_period_s
        self._lag_history = np.full((self.lag_ticks + 1, 3, self.n_windows, C), np.nan)
        self._lag_t = np.full(self.lag_ticks + 1, np.nan)  # when each entry was fitted (s)
        self._fits_done = 0
        self._cols = np.arange(C)
        #: when each channel's data (since its last reset) began (s; inf: none yet)
        self.t_first = np.full(C, np.inf)
        self._t_first_open = True  # some channel has no data yet
        self._span_needed = self.windows_s[:, None] + self.lag_s  # (nW, 1)

    # --- every tick -----------------------------------------------------------------
    def push(self, now_s: float, sums: np.ndarray) -> bool:
        """Add one tick's sums ``(4, C)`` (n, sum t, sum p, sum T) at host time ``now_s``:
        a slot on the raw tier, and into the open bins of the decimated tiers.

        Returns True when a 60-s bin closed (the regime test is due)."""
        C = self.n_channels
        n = sums[0]
        if self._t_first_open:
            new = (n > 0) & np.isinf(self.t_first)
            if new.any():
                self.t_first = np.where(new, now_s, self.t_first)
                self._t_first_open = bool(np.isinf(self.t_first).any())
        means = np.zeros((3, C))
        if np.count_nonzero(n):  # (a tick without samples: the means stay 0)
            np.divide(sums[1:], n, out=means, where=n > 0)
        self.tiers[0].push(means[0], means[1], means[2], n)
        minute_closed = False
        bins = self._bin_sums
        for k in self._binned_tiers:
            tier = self.tiers[k]
            b = math.floor(now_s / tier.period_s)
            if self._bin[k] is None:
                self._bin[k] = b
            elif b > self._bin[k]:
                ba = bins[k - 1]
                bm = np.zeros((3, C))
                np.divide(ba[1:], ba[0], out=bm, where=ba[0] > 0)
                tier.push(bm[0], bm[1], bm[2], ba[0])
                skipped = min(b - self._bin[k] - 1, tier.length)
                zero = np.zeros(C)
                for _ in range(skipped):
                    tier.push(zero, zero, zero, zero)
                ba[:] = 0.0
                self._bin[k] = b
                minute_closed = minute_closed or k == 2
        bins += sums
        return minute_closed

    def rapid_slopes(self, noise_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pressure slopes, standard errors and the errors the sensors' usual noise
        ``noise_var`` (Pa^2, ``(C,)``) alone gives them (Pa/s) of the raw-tier
        windows of the rapid-depressurization test, ``(len(rapid_window_s), C)``."""
        return self.tiers[0].pressure_slopes(self._rapid_local, self._rapid_min_slots, noise_var)

    # --- every slow tick ------------------------------------------------------------
    def fits(self, now_s: float, noise_var: np.ndarray) -> WindowFits:
        """Fits of every window at host time ``now_s`` (s); also records the pressure
        slopes for the lag history (call once per slow tick).  ``noise_var``: each
        sensor's usual per-sample pressure variance (Pa^2, NaN: not known yet)."""
        # the sums of every configured window, stacked tier by tier in one block, fitted
        # at once (the same element-wise arithmetic as one fit per tier) and put in
        # window order; the references of each row are rebuilt when a tier's change
        used = self._fit_tiers
        sums = np.concatenate([self.tiers[k].sums[: len(self._tier_windows[k])] for k in used])
        refs = [(self.tiers[k].t_ref, self.tiers[k].p_ref, self.tiers[k].temp_ref) for k in used]
        if self._stack_refs is None or any(
            a[0] != b[0] or a[1] is not b[1] or a[2] is not b[2]
            for a, b in zip(refs, self._stack_refs[0], strict=True)
        ):
            reps = [len(self._tier_windows[k]) for k in used]
            self._stack_refs = (
                refs,
                np.repeat([[r[0]] for r in refs], reps, axis=0),
                np.repeat([r[1] for r in refs], reps, axis=0),
                np.repeat([r[2] for r in refs], reps, axis=0),
            )
        _, t_ref, p_ref, temp_ref = self._stack_refs
        if self._stack_order is not None:
            sums = sums[self._stack_order]
            t_ref = t_ref[self._stack_order]
            p_ref = p_ref[self._stack_order]
            temp_ref = temp_ref[self._stack_order]
        fit = fit_sums_raw(sums, t_ref, p_ref, temp_ref)
        slope_p = fit.slope_pa_s
        se_p = fit.stderr_pa_s
        se_noise = noise_slope_stderr(fit, noise_var)
        level_p = fit.mean_pa + fit.slope_pa_s * (now_s - fit.t_mean_s)
        # the pressure now: the shortest window's fitted level, or where that window
        # is empty (slow sensors: two 0.2 Hz samples in 10 s) the next one's
        level_now = level_p[0]
        if np.count_nonzero(np.isfinite(level_now)) < len(level_now):
            finite = np.isfinite(level_p)
            first = np.argmax(finite, axis=0)
            level_now = np.where(finite.any(axis=0), level_p[first, self._cols], np.nan)
        slope_T, se_T = fit.slope_temp_k_s, fit.stderr_temp_k_s
        mean_T, nsamp = fit.mean_temp_c, fit.n
        L = self.lag_ticks
        hist = self._lag_history
        i = self._fits_done % (L + 1)
        hist[i, 0] = slope_p
        hist[i, 1] = se_p
        hist[i, 2] = fit.stderr_comp_pa_s
        self._lag_t[i] = now_s
        di, dn, w = self._delayed_entries(now_s, i)
        self._fits_done += 1
        if w > 0.0:  # between two fits of a quiet stretch: interpolated in time
            delayed = hist[di] + w * (hist[dn] - hist[di])
        else:
            delayed = hist[di]
        delayed_slope, delayed_se, delayed_se_z = delayed[0], delayed[1], delayed[2]
        return WindowFits(
            slope_pa_s=slope_p,
            stderr_pa_s=se_p,
            stderr_comp_pa_s=fit.stderr_comp_pa_s,
            noise_stderr_pa_s=se_noise,
            slope_temp_k_s=slope_T,
            stderr_temp_k_s=se_T,
            level_pa=level_p,
            level_now_pa=level_now,
            mid_pa=fit.mean_pa - slope_p * self.lag_s,
            mean_temp_c=mean_T,
            n_samples=nsamp,
            delayed_slope_pa_s=delayed_slope,
            delayed_stderr_pa_s=delayed_se,
            delayed_stderr_comp_pa_s=delayed_se_z,
            aligned=(now_s - self.t_first) >= self._span_needed,
        )

    def _delayed_entries(self, now_s: float, newest: int) -> tuple[int, int, float]:
        """Where the lag history holds the fits of a temperature lag before
        ``now_s``: ``(i, j, w)``, the fit ``lag_s`` old being entry ``i`` where
        ``w`` is 0 (to half a period), else ``(1 - w) i + w j`` between the two
        fits around that moment (after a quiet stretch, whose fits are a quiet
        period apart); while no fit is that old, the oldest.  Fits come every
        period or every quiet period (a multiple), so the history's
        ``lag_ticks + 1`` entries always reach back ``lag_s``."""
        L = self.lag_ticks
        first = 0 if self._fits_done < L else (newest + 1) % (L + 1)
        t = self._lag_t
        target = now_s - self.lag_s
        tol = 0.5 * self.slow_period_s
        best = first
        for k in range(min(self._fits_done, L) + 1):  # oldest to newest
            j = (first + k) % (L + 1)
            if t[j] <= target + tol:
                best = j
            else:
                if k and t[best] < target - tol:  # in between two fits
                    return best, j, (target - t[best]) / (t[j] - t[best])
                break
        return best, best, 0.0

    def minute_view(self):
        """The 60-s tier's filled slots (``ringbuffer.WindowView``), or None if it
        holds fewer than 5."""
        tier = self.tiers[2]
        return tier.latest(min(tier.head, tier.length)) if tier.head >= 5 else None

    # --- resets ---------------------------------------------------------------------
    def clear_channels(self, mask: np.ndarray) -> None:
        """Forget the history of the channels in ``mask`` (tiers and open bins)."""
        for tier in self.tiers:
            tier.clear_channels(mask)
        for acc in self._bin_sums:
            acc[:, mask] = 0.0
        if np.any(mask):
            self.t_first = np.where(mask, np.inf, self.t_first)
            self._t_first_open = True

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the ring-buffer tiers."""
        return sum(t.nbytes for t in self.tiers)
