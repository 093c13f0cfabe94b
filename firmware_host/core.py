"""The monitor core: samples in, estimates and alarm events out.  No I/O, no clock.

``MonitorCore.ingest(link, records, host_time_s)`` takes decoded SAMPLE records
(``drivers.frames.SAMPLE_RECORD_DTYPE``) of one link; ``tick(now_s)`` turns the
samples that arrived since the last tick into one ring-buffer slot per channel
and returns a ``TickResult``.  The work is done by the stages of
``firmware_host.stages``, in the order the data flows:

    records -> conditioning -> windows -> health -> estimation (-> regime)
            -> alarm rules -> alarm book -> TickResult

Every tick runs the fast path (conditioning, the raw tier, the
rapid-depressurization test); every ``slow_period_s`` the slow path fits every
window and runs health, estimation and all alarms, or every ``quiet_period_s``
while every volume is quiet (``MonitorCore.busy``).  All per-sample and
per-channel work is vectorized in numpy; Python loops run over windows,
volumes and the (few) alarms that are not idle.  See docs/monitor.md.

Units: time s (host clock), pressure Pa, temperature deg C in records and K in
estimates, slopes Pa/s, mass rates kg/day, hole diameter mm.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from common.gas import kg_day_per_pa_s
from firmware_host.alarms import ActiveAlarm, AlarmEvent
from firmware_host.config import Limits, MonitorConfig
from firmware_host.sizing import check_sizing, quiet_period_s
from firmware_host.stages import alarm_rules
from firmware_host.stages.alarm_book import AlarmBook, SensorReadings
from firmware_host.stages.alarm_rules import VolumeFamily
from firmware_host.stages.conditioning import SampleConditioner
from firmware_host.stages.estimation import (
    EstimateState,
    VolumeEstimator,
    VolumeFit,
    typical_thermal_pa_s,
)
from firmware_host.stages.health import OWN_COLS, FaultKind, HealthState, SensorHealth
from firmware_host.stages.regime import Regime, RegimeTracker
from firmware_host.stages.results import (
    Layout,
    SensorEstimate,
    SensorFrame,
    TickResult,
    VolumeEstimate,
    WindowSlope,
    _num,
)
from firmware_host.stages.topology import Channels, HatchGroups
from firmware_host.stages.windows import WindowBank

__all__ = [
    "FaultKind",
    "HealthState",
    "MonitorCore",
    "Regime",
    "SensorEstimate",
    "TickResult",
    "VolumeEstimate",
    "WindowSlope",
]


_SETTLED = int(EstimateState.SETTLED)


class MonitorCore:
    """The monitor's decision core; see module docstring.

    ``replay=True`` marks every event as replayed and never calls the live
    response hooks (``add_response``).
    """

    def __init__(self, config: MonitorConfig, *, replay: bool = False):
        check_sizing(config)  # a configuration built in code is bounded too
        self.config = config
        self.replay = bool(replay)
        self.limits: Limits = config.limits
        self.limit_set_name = config.limit_set
        self._responses: list[Callable[[AlarmEvent], None]] = []
        self.channels = Channels(config)
        self.groups = HatchGroups(config, self.channels)
        self.windows = WindowBank(config, self.channels.n_channels)
        self.conditioner = SampleConditioner(config, self.channels)
        self.conditioner.on_reset = self._clear_history
        self.slow_period_s = self.windows.slow_period_s
        self.health = SensorHealth(config, self.channels, self.slow_period_s)
        self.estimator = VolumeEstimator(config, self.channels, self.windows.lag_s)
        self.regime = RegimeTracker(config, self.channels)
        self.alarms = AlarmBook(
            self.channels.volume_names,
            self.channels.sensor_ids,
            replay=self.replay,
            sensor_labels=[s.label for s in config.sensors],
        )
        self.layout = Layout(
            volume_names=tuple(self.channels.volume_names),
            windows_s=tuple(float(w) for w in self.windows.windows_s),
            sensor_ids=tuple(self.channels.sensor_ids),
            sensor_volumes=tuple(s.volume for s in config.sensors),
        )
        #: period (s) of the slow path while every volume is quiet
        self.quiet_period_s = quiet_period_s(config)
        self._last_slow_s = -math.inf
        self._next_slow_s = -math.inf  # due while busy
        self._next_quiet_s = -math.inf  # due while quiet
        self._busy_until_s = math.inf  # busy until the first estimate
        self._minute_closed = False  # a 60-s bin closed since the last slow tick
        self._hatch_settled_s = -math.inf  # when the last hatch change has settled
        self._volume_fit: VolumeFit | None = None
        self._sensor_frame: SensorFrame | None = None
        self._pending_events: list[AlarmEvent] = []
        self.tick_count = 0
        self.samples_total = 0
        self.last_tick_s = math.nan
        self.start_s = math.nan
        self.last_result: TickResult | None = None

    # --- configuration at run time ------------------------------------------
    @property
    def hatch_open(self) -> dict[str, bool]:
        """Each hatch's state (name -> open)."""
        return self.groups.hatch_open

    def set_hatch(self, name: str, is_open: bool, now_s: float) -> None:
        """Record a hatch's state; the volumes whose group changes get a settling time."""
        self.groups.set_hatch(name, is_open, now_s)
        self._hatch_settled_s = max(self._hatch_settled_s, now_s + self.groups.settle_s)

    def set_limit_set(self, name: str) -> None:
        """Switch the active limit set (``flight``, ``ground-test``, ...)."""
        self.limits = self.config.limit_sets[name]
        self.limit_set_name = name

    def add_response(self, fn: Callable[[AlarmEvent], None]) -> None:
        """Call ``fn(event)`` on every live event (never when replaying)."""
        self._responses.append(fn)

    @property
    def unknown(self) -> dict[str, int]:
        """Samples per link from addresses not in the configuration."""
        return self.conditioner.unknown

    # --- the data flow ---------------------------------------------------------
    def ingest(self, link: str, records: np.ndarray, host_time_s: float) -> None:
        """Take a batch of SAMPLE records of ``link`` that arrived by ``host_time_s`` (s)."""
        self.conditioner.ingest(link, records, host_time_s)

    def tick(self, now_s: float) -> TickResult:
        """Process the samples ingested since the last tick; ``now_s`` host time (s)."""
        cond = self.conditioner
        cond.flush()  # the batches ingested since the last tick, conditioned together
        if math.isnan(self.start_s):
            self.start_s = now_s
            cond.last_arrival[np.isnan(cond.last_arrival)] = now_s
        self.tick_count += 1
        sums, n_samples = cond.drain(self.health.drop)
        self.samples_total += n_samples
        minute_closed = self.windows.push(now_s, sums)

        self._minute_closed |= minute_closed

        events = self._pending_events
        self._pending_events = []
        # due at a period's boundary while busy, at a quiet period's otherwise (the
        # quiet periods' boundaries are periods' too: busy is asked once a period)
        if now_s >= self._next_slow_s - 1e-9 and (
            now_s >= self._next_quiet_s - 1e-9 or self.busy(now_s)
        ):
            P, Q = self.slow_period_s, self.quiet_period_s
            self._next_slow_s = (math.floor(now_s / P + 1e-9) + 1) * P
            self._next_quiet_s = (math.floor(now_s / Q + 1e-9) + 1) * Q
            # the weight of this estimation in the slow averages: the periods since
            # the last one (one at the start, at most a quiet period)
            periods = (now_s - self._last_slow_s) / P
            n = min(max(round(periods), 1), round(Q / P)) if math.isfinite(periods) else 1
            step_s = P * n
            self._last_slow_s = now_s
            # NaN marks missing data throughout: one errstate for the whole slow tick
            # (the stages' slow-tick functions do not set their own)
            with np.errstate(invalid="ignore", divide="ignore"):
                self._slow_tick(now_s, self._minute_closed, events, step_s)
            self._minute_closed = False
        elif n_samples or self.alarms.family_live(VolumeFamily.RAPID_DEPRESS):
            # a tick without a new sample brings no new evidence of a fall (only old
            # samples leaving the windows): the test waits for data, unless an alarm
            # of it is pending or raised and its timers must run
            self._rapid_alarm(now_s, events)
        self._respond(events)
        self.last_tick_s = now_s
        result = TickResult.make(
            now_s,
            self.tick_count,
            n_samples,
            tuple(events),
            self.layout,
            self._volume_fit,
            self._sensor_frame,
            cond.last_arrival.copy(),
        )
        self.last_result = result
        return result

    def busy(self, now_s: float) -> bool:
        """True while the slow path runs every ``slow_period_s``: until the
        estimates have settled, while a volume or sensor alarm is pending or raised
        (or returned to normal and not yet acknowledged), while a sensor shows a
        fault, while a hatch change settles, while the estimator holds an onset,
        and while some volume's estimated loss is at least half the CAUTION limit
        (as of the last estimate).  Otherwise all is quiet and it runs every
        ``quiet_period_s``."""
        return (
            now_s < self._busy_until_s
            or now_s < self._hatch_settled_s
            or self.conditioner.flagged
            or self.alarms.any_volume_live()
            or self.alarms.any_sensor_live()
        )

    def _quiet_after(self, now_s: float, fit: VolumeFit) -> float:
        """Until when (s) the estimate ``fit`` keeps the slow path at its full rate:
        ``now_s`` if every volume's loss is below half the CAUTION limit (its
        estimate, and each window's at 2 sigma), no sensor shows a fault and
        every volume has a settled estimate, else
        forever (until the next estimate says otherwise); at least while the
        estimator holds an onset."""
        held = float(self.estimator.undelayed_until_s.max())
        half = 0.5 * self.limits.caution_leak_kg_day
        if np.count_nonzero(fit.mass_rate_kg_day >= half):
            return math.inf
        # any window (a short one sees a leak first) with a loss of at least half
        # the CAUTION limit, at 3 sigma
        loss = -fit.slope_comp_pa_s  # Pa/s, (windows, volumes)
        if np.count_nonzero(
            (loss * fit.kg_day_per_pa_s >= half) & (loss >= 3.0 * fit.slope_comp_stderr_pa_s)
        ):
            return math.inf
        if np.count_nonzero(self.health.active):
            return math.inf
        # a volume whose estimate has not settled (at the start while the windows
        # fill, after a change of the best window, without a usable sensor)
        if np.count_nonzero(fit.state != _SETTLED):
            return math.inf
        return max(now_s, held)

    def _slow_tick(self, now_s: float, minute_closed: bool, events: list, step_s: float) -> None:
        """Fits of every window, health, estimation and every alarm; ``step_s`` the
        time (s) since the last slow tick."""
        cond, health, groups = self.conditioner, self.health, self.groups
        fits = self.windows.fits(now_s, self.health.noise_var)
        rate_hz = health.measure_rates(cond.n_total, cond.last_t_us, cond.has_clock)
        ch = self.channels
        if health.drift_due(now_s):  # (its arguments cost more than the test's guard)
            health.check_drift(
                now_s,
                fits,
                groups.group_id[ch.volume_of],
                groups.settled_from_channel,
                self._drift_limit_pa_s(),
            )
        corrupt = health.update(
            now_s,
            fits,
            cond.take_fault_flags(),
            cond.stuck_run,
            cond.last_arrival,
            cond.has_sample,
            step_s,
        )
        if corrupt.any():
            self._clear_history(corrupt)
            cond.clear_sums(corrupt)
        health.learn_noise(cond.reg_p, cond.reg_count, self.limits.emergency_drop_sigma, step_s)
        clock_rate_ppm = cond.clock_rate_ppm()
        trusted = cond.has_sample & ~health.drop
        fit = self.estimator.estimate(
            now_s,
            fits,
            health.usable,
            trusted,
            rate_hz,
            groups,
            tuple(self.regime.regime),
            self.regime.exponent,
            groups.settled(now_s),
            self.limits,
        )
        if minute_closed:
            self.regime.update(self.windows.minute_view(), health.usable, groups.changed_t)
            fit = dataclasses.replace(
                fit, regime=tuple(self.regime.regime), regime_exponent=self.regime.exponent.copy()
            )
        L = self.limits
        for c in alarm_rules.volume_conditions(
            fit,
            fits.level_now_pa,
            groups.settled(now_s),
            health.usable,
            self.channels,
            L,
            self.config.p_min_pa,
        ):
            self.alarms.step_volumes(c, now_s, L.clear_s, events)
        self.alarms.step_rate_rose(
            now_s, fit.mass_rate_kg_day, fit.mass_rate_sigma_kg_day, L, events
        )
        self._rapid_alarm(now_s, events)
        hc = self.config.health
        self.alarms.step_sensors(
            now_s,
            health.active,
            health.fault_value,
            health.stale_limit_s,
            hc.stuck_samples,
            L.advisory_persistence_s,
            hc.recover_s,
            events,
            lambda: SensorReadings.from_stages(
                fits.stderr_pa_s,
                fits.n_samples,
                fits.slope_pa_s,
                fits.level_now_pa,
                self.windows.windows_s,
                health.noise_window,
                health.slope_windows,
                health.scatter_base,
                health.active[:, OWN_COLS].any(axis=1),
                cond.has_sample,
                ch.volume_of,
                np.vstack((ch.range_lo, ch.range_hi)),
                hc,
                (health.drift_pa_s, health.drift_window_s, health.drift_limit_pa_s),
            ),
        )
        self.alarms.step_links(now_s, cond.unknown, hc.recover_s, events)
        self._volume_fit = fit
        self._busy_until_s = self._quiet_after(now_s, fit)
        self._sensor_frame = SensorFrame(
            state=health.state.copy(),
            faults=health.active.copy(),
            pressure_pa=self._where_sampled(cond.last_sample[2]),
            temperature_c=self._where_sampled(cond.last_sample[3]),
            slope_comp_pa_s=fit.sensor_slope_comp_pa_s,
            clock_offset_s=cond.clock_offset.copy(),
            clock_rate_ppm=clock_rate_ppm,
            samples=cond.n_total.copy(),
        )

    def _where_sampled(self, row: np.ndarray) -> np.ndarray:
        """A copy of ``row`` (per channel), NaN where a channel has no sample yet."""
        has = self.conditioner.has_sample
        if np.count_nonzero(has) == len(has):  # (np.where's bytes, without the where)
            return row.copy()
        return np.where(has, row, np.nan)

    def _clear_history(self, mask: np.ndarray) -> None:
        """Forget the window history of the channels in ``mask`` (a reset, suspect
        data); health learns from when their windows hold clean data again."""
        self.windows.clear_channels(mask)
        t = self.last_tick_s
        self.health.history_from_s[mask] = -np.inf if math.isnan(t) else t

    def _drift_limit_pa_s(self) -> np.ndarray:
        """Per sensor, the drift (Pa/s) that moves its volume's fused estimate by half
        the CAUTION limit: with ``n`` healthy sensors a sensor's error reaches the
        estimate divided by ``n``, and 1 Pa/s is ``kg_day_per_pa_s`` of the group."""
        ch = self.channels
        n = np.maximum(self.health.usable.astype(float) @ ch.member.T, 1.0)
        k = kg_day_per_pa_s(self.groups.group_m3, self.config.t_ref_k)
        return (0.5 * self.limits.caution_leak_kg_day * n / k)[ch.volume_of]

    def _rapid_alarm(self, now_s: float, events: list) -> None:
        """EMERGENCY rapid depressurization on the raw tier: every slow tick, and every
        other tick that brought a sample or while one of its alarms is live."""
        L = self.limits
        cond, health = self.conditioner, self.health
        slopes, stderrs, noise_se = self.windows.rapid_slopes(health.noise_var)
        fit = self._volume_fit
        if fit is None:
            thermal = np.zeros(self.channels.n_volumes)
            thermal_sigma = np.full(
                self.channels.n_volumes, typical_thermal_pa_s(101325.0, self.config.t_ref_k)
            )
        else:
            thermal, thermal_sigma = fit.thermal_pa_s, fit.thermal_sigma_pa_s
        drop_rate = None
        if L.emergency_drop_sigma > 0:
            drop_rate = alarm_rules.sudden_drop(
                cond.reg_t,
                cond.reg_p,
                cond.reg_count,
                cond.last_sample[2],
                health.usable,
                health.drop_threshold,
                self.channels,
                L,
            )
        c = alarm_rules.rapid_depress(
            now_s,
            slopes,
            stderrs,
            noise_se,
            self.windows.rapid_window_s,
            health.usable,
            self.channels,
            self.groups.settled(now_s),
            self.groups.settled_from_channel,
            thermal,
            thermal_sigma,
            drop_rate,
            L,
            self.alarms.family_live(VolumeFamily.RAPID_DEPRESS),
        )
        if c is not None:
            self.alarms.step_volumes(c, now_s, L.clear_s, events)

    # --- operator ----------------------------------------------------------------
    def acknowledge(
        self, alarm_key: str | None = None, now_s: float | None = None
    ) -> list[AlarmEvent]:
        """Acknowledge one alarm by key (``"source:KIND"``) or all (None).

        The events are returned and also reported with the next tick.
        """
        t = self.last_tick_s if now_s is None else now_s
        if t is None or math.isnan(t):
            t = 0.0
        out = self.alarms.acknowledge(alarm_key, t)
        self._pending_events.extend(out)
        self._respond(out)
        return out

    def report_output(self, name: str, error: str | None, now_s: float) -> list[AlarmEvent]:
        """An output's state from the runtime: ``error`` (words) raises the ADVISORY
        ``OUTPUT_FAILED`` of output ``name``, None returns it to normal; at host time
        ``now_s`` (s).  The events are returned and also reported with the next tick."""
        out: list[AlarmEvent] = []
        self.alarms.step_output(name, error, now_s, out)
        self._pending_events.extend(out)
        self._respond(out)
        return out

    def _respond(self, events: list[AlarmEvent]) -> None:
        """Hand live events to the response hooks (never when replaying)."""
        if events and not self.replay:
            for ev in events:
                for fn in self._responses:
                    fn(ev)

    def active_alarms(self) -> list[ActiveAlarm]:
        """Alarms not NORMAL (raised, or returned to normal but unacknowledged), worst first."""
        return self.alarms.active()

    def snapshot(self) -> dict:
        """A JSON-ready picture of the core: counters, alarms, latest estimates."""
        res = self.last_result
        return {
            "ticks": self.tick_count,
            "samples": self.samples_total,
            "unknown_samples": dict(self.unknown),
            "t_s": None if res is None else res.t_s,
            "limit_set": self.limit_set_name,
            "hatches": dict(self.hatch_open),
            "active_alarms": [
                {
                    "key": a.key,
                    "level": a.level.name,
                    "state": a.state.name,
                    "value": _num(a.value),
                    "limit": _num(a.limit),
                    "unit": a.unit,
                }
                for a in self.active_alarms()
            ],
            "volumes": [] if res is None else [v.to_json_dict() for v in res.volumes],
            "sensors": [] if res is None else [s.to_json_dict() for s in res.sensors],
        }

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the ring buffer tiers."""
        return self.windows.memory_bytes
