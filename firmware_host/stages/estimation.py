"""Volume estimation: window fits + health -> one ``VolumeFit`` per slow tick.

Per volume, over its usable sensors: the fused pressure slope of every window
(inverse-variance mean, Birge-inflated), compensated for temperature with the
volume group's effective temperature (pressure slopes delayed by the
temperature sensors' lag, or undelayed just after a fast leak's onset), the
decay correction to the slope now, the best window, and from it the mass rate,
the equivalent hole and the reserve times.  See docs/monitor.md.

Units: Pa, Pa/s, K, kg/day, mm, s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.gas import KELVIN, SECONDS_PER_DAY, equivalent_area_m2, kg_day_per_pa_s
from firmware_host.config import MonitorConfig
from firmware_host.stages.regime import Regime
from firmware_host.stages.topology import Channels, HatchGroups
from firmware_host.stages.windows import WindowFits

#: A module's typical temperature rate (K/s): 1 K of orbital swing over 92 minutes.
THERMAL_RATE_K_S = 2 * math.pi / 5520.0
#: A raw slope that fell by more than this many typical thermal rates within the
#: temperature lag is a leak's onset, not a thermal swing.
THERMAL_JUMP = 2.0
#: After such an onset a window up to this long (s) keeps using the undelayed slope
#: until its delayed copy has passed the onset (lag + window).
JUMP_HOLD_MAX_WINDOW_S = 60.0
#: Smallest slope standard error used as a weight (Pa/s).
SE_FLOOR = 1e-6


def fuse_slopes(slope, se, use, member, volume_of):
    """Inverse-variance mean of each volume's usable channels, ``(nW, C) -> (nW, V)``,
    and its standard error.

    The error is inflated by the Birge ratio when the channels scatter more
    than their own errors say.
    """
    valid = use & np.isfinite(slope) & np.isfinite(se)
    w = np.where(valid, 1.0 / np.maximum(se, SE_FLOOR) ** 2, 0.0)
    sv = np.where(valid, slope, 0.0)
    sw = w @ member.T
    f = (w * sv) @ member.T / sw
    resid = np.where(valid, (sv - f[:, volume_of]) ** 2 * w, 0.0) @ member.T
    cnt = valid.astype(float) @ member.T
    birge = np.sqrt(np.maximum(1.0, resid / np.maximum(cnt - 1, 1)))
    return f, birge / np.sqrt(sw)


@dataclass(frozen=True)
class VolumeFit:
    """Every volume's fused estimates at one slow tick (host time ``t_s``, s).

    Per window and volume ``(nW, V)``: ``slope_pa_s`` (raw) and
    ``slope_comp_pa_s`` (temperature-compensated, decay-corrected) with their
    standard errors, and ``filled`` (usable for estimates).  Per window and
    sensor ``(nW, C)``: ``sensor_slope_comp_pa_s`` and its error, compensated
    with the sensor's group temperature.  Per volume ``(V,)``: pressure now
    (Pa), compensated pressure (Pa at ``t_ref``), gas temperature (K), the
    best window's index (-1: none), slope and error, mass rate and sigma
    (kg/day), equivalent hole (mm), reserves (s, linear and orifice), healthy
    sensors, kg/day per Pa/s of compensated slope, regime and its exponent,
    group volume (m3) and group members.
    """

    t_s: float
    slope_pa_s: np.ndarray
    slope_stderr_pa_s: np.ndarray
    slope_comp_pa_s: np.ndarray
    slope_comp_stderr_pa_s: np.ndarray
    sensor_slope_comp_pa_s: np.ndarray
    sensor_slope_comp_stderr_pa_s: np.ndarray
    filled: np.ndarray
    pressure_pa: np.ndarray
    pressure_comp_pa: np.ndarray
    temperature_k: np.ndarray
    best_window: np.ndarray
    best_slope_pa_s: np.ndarray
    best_stderr_pa_s: np.ndarray
    mass_rate_kg_day: np.ndarray
    mass_rate_sigma_kg_day: np.ndarray
    hole_mm: np.ndarray
    reserve_linear_s: np.ndarray
    reserve_orifice_s: np.ndarray
    n_healthy: np.ndarray
    kg_day_per_pa_s: np.ndarray
    regime: tuple[Regime, ...]
    regime_exponent: np.ndarray
    group_m3: np.ndarray
    groups: tuple[tuple[str, ...], ...]


class VolumeEstimator:
    """Fusion, temperature compensation, onset hold, decay correction, best window,
    mass rate, hole and reserves; see module docstring.

    Its only state is, per window and volume, until when the undelayed slope is
    used after an onset (``undelayed_until_s``).
    """

    def __init__(self, config: MonitorConfig, channels: Channels, lag_s: float):
        self.config = config
        self.est = config.estimator
        self.channels = channels
        self.lag_s = lag_s
        self.windows_s = np.asarray(config.windows_s, dtype=float)
        self.undelayed_until_s = np.full((len(self.windows_s), channels.n_volumes), -np.inf)

    def estimate(
        self,
        now_s: float,
        fits: WindowFits,
        usable: np.ndarray,
        trusted: np.ndarray,
        rate_hz: np.ndarray,
        groups: HatchGroups,
        regime: tuple[Regime, ...],
        regime_exponent: np.ndarray,
    ) -> VolumeFit:
        """Fuse the window ``fits`` at host time ``now_s`` (s).

        ``usable`` are the sensors the estimates take, ``trusted`` those whose
        data is not suspect (they may lend a temperature), ``rate_hz`` each
        sensor's sample rate (a sensor counts in a window only where it covered
        ``min_fill`` of it), ``regime`` each volume's flow regime (for the decay
        correction).

        Raw dP/dt: inverse-variance mean of the volume's sensors (inflated by the
        Birge ratio when they scatter more than their errors).  Compensated:
        the group's gas mass is P/R * sum(V_i / T_i), so with the effective
        temperature T_eff = V_g / sum(V_i / T_i) the compensated slope is
        dPc/dt = (T_ref / T_eff) (dP/dt - P dT_eff/dt / T_eff), using pressure
        slopes delayed by the temperature sensors' lag.
        """
        est = self.est
        ch = self.channels
        M = ch.member
        use = usable
        vch = ch.volume_of
        windows_s = self.windows_s
        lag_s = self.lag_s
        slope_p, se_p = fits.slope_pa_s, fits.stderr_pa_s
        slope_pd, se_pd = fits.delayed_slope_pa_s, fits.delayed_stderr_pa_s
        slope_T, se_T, mean_T = fits.slope_temp_k_s, fits.stderr_temp_k_s, fits.mean_temp_c
        level_p = fits.level_pa
        # a sensor counts in a window only where it covered it (a gap changes what a
        # straight line makes of the thermal cycle, and the group temperature would
        # no longer describe the same samples)
        cov = fits.n_samples >= est.min_fill * windows_s[:, None] * rate_hz[None, :]
        n_h = use.astype(float) @ M.T
        tref = self.config.t_ref_k
        with np.errstate(invalid="ignore", divide="ignore"):
            use_w = use & cov  # (nW, C)
            fp, fpse = fuse_slopes(slope_p, se_p, use_w, M, vch)
            fpd, fpdse = fuse_slopes(slope_pd, se_pd, use_w, M, vch)
            # temperatures from the same sensors as the pressures; a volume with none
            # of those borrows from any sensor whose data is not suspect (a sensor left
            # out for its pressure, stale say, still tells its module's temperature)
            finite_T = np.isfinite(slope_T) & np.isfinite(mean_T)
            tv = use_w & finite_T
            fallback = trusted & cov & finite_T
            none = (tv.astype(float) @ M.T) == 0  # (nW, V)
            tv = np.where(none[:, vch], fallback, tv)
            nt = tv.astype(float) @ M.T
            T_v = (np.where(tv, mean_T, 0.0) @ M.T) / nt + KELVIN  # (nW, V) K
            dT_v = (np.where(tv, slope_T, 0.0) @ M.T) / nt
            seT_v = np.sqrt(np.where(tv, se_T, 0.0) ** 2 @ M.T) / nt
            has = np.isfinite(T_v)
            G = groups.group_matrix
            wv = np.where(has, ch.volume_m3 / T_v, 0.0)
            vg = np.where(has, ch.volume_m3, 0.0) @ G.T
            inv = wv @ G.T
            T_eff = vg / inv
            dT_eff = T_eff**2 / vg * (np.where(has, wv / T_v * dT_v, 0.0) @ G.T)
            seT_eff = T_eff**2 / vg * np.sqrt(np.where(has, wv / T_v * seT_v, 0.0) ** 2 @ G.T)
            lv = use & np.isfinite(level_p[0])
            nl = lv.astype(float) @ M.T
            p_now = np.where(lv, level_p[0], 0.0) @ M.T / nl
            scale = tref / T_eff
            # a volume of the group without any temperature: its thermal swing is unknown
            miss = 1.0 - vg / (ch.volume_m3 @ G.T)
            extra = miss * p_now / T_eff * np.fmax(np.abs(dT_eff), THERMAL_RATE_K_S)
            thermal_se2 = (p_now * seT_eff / T_eff) ** 2 + extra**2
            # The pressure slopes are delayed by the temperature sensors' lag so that
            # both describe the same moment.  Where the raw slope now falls faster than
            # it did a lag ago by more than any thermal swing could explain, beyond its
            # noise (the onset or growth of a fast leak), the current slope is used: a
            # fast leak must not be reported as it was a lag ago.
            jump = (fp - fpd) < -(
                THERMAL_JUMP * p_now / T_eff * THERMAL_RATE_K_S
                + est.consistency_sigma * np.hypot(fpse, fpdse)
            )
            # once seen, a jump holds until the delayed window has passed it (the
            # test alone lapses while the delayed window still straddles the onset:
            # a curved decay inflates the errors it is judged against)
            # (short windows only: a long one barely feels the lag, and holding it
            # undelayed for hours would expose it to thermal steps)
            self.undelayed_until_s = np.where(
                jump & (windows_s[:, None] <= JUMP_HOLD_MAX_WINDOW_S),
                now_s + lag_s + windows_s[:, None],
                self.undelayed_until_s,
            )
            jump = jump | (now_s < self.undelayed_until_s)
            now_u = jump & ((((use_w & np.isfinite(slope_p)).astype(float)) @ M.T) > 0)
            filled = now_u | (((use_w & np.isfinite(slope_pd)).astype(float) @ M.T) > 0)
            # a window that began before the volume's group last changed (and settled)
            # mixes two systems: the pressure history of the old group, the size of
            # the new one (an isolated module would inherit its old group's fall)
            start = now_s - windows_s[:, None] - np.where(now_u, 0.0, lag_s)
            filled &= start >= groups.changed_t + est.hatch_settle_s
            fsel = np.where(now_u, fp, fpd)
            fsel_se = np.where(now_u, fpse, fpdse)
            fq = scale * (fsel - p_now * dT_eff / T_eff)
            fse = scale * np.sqrt(fsel_se**2 + thermal_se2)
            # per sensor, compensated with its group's temperature, the same choice
            now_c = now_u[:, vch]
            s_sel = np.where(now_c, slope_p, slope_pd)
            se_sel = np.where(now_c, se_p, se_pd)
            sq_c = scale[:, vch] * (s_sel - p_now[vch] * dT_eff[:, vch] / T_eff[:, vch])
            sq_c = np.where(cov, sq_c, np.nan)
            se_c = scale[:, vch] * np.sqrt(se_sel**2 + thermal_se2[:, vch])
            # A straight line through a decaying pressure gives the slope at the middle
            # of its data (half a window ago, plus the lag if delayed).  A leak's flow
            # falls with the pressure (dP/dt = -a P^n: n = 1 orifice, 2 crack), so the
            # slope now is the fitted one times (P_now / P_then)^n =
            # exp(n age slope / P).  Negligible for slow leaks; for a 25 mm hole in
            # 6 m3 (time constant ~100 s) it removes a 25 % overestimate.
            # The rate constant is the slope over the pressure *then* (higher than
            # now): dividing by the pressure now over-corrects by e^(age/tau) in the
            # exponent (-6 % for a 25 mm hole in 6 m3).  A few fixed-point steps
            # give P_then = P_now / ratio and the ratio together.
            age = windows_s[:, None] * 0.5 + np.where(now_u, 0.0, lag_s)
            crack = np.array([r is Regime.CRACK for r in regime])
            fall = -np.minimum(fq, 0.0)  # Pa/s, >= 0
            q_now = scale * p_now
            ratio = np.ones_like(fq)  # P_now / P_then
            for _ in range(4):
                x = np.fmin(fall * ratio / q_now * age, 5.0)  # age / tau (orifice)
                ratio = np.where(crack, 1.0 / (1.0 + x), np.exp(-x))
            decay = np.where(crack, ratio**2, ratio)
            fq = fq * decay
            fse = fse * decay
            decay_c = decay[:, vch]
            sq_c = sq_c * decay_c
            se_c = se_c * decay_c
        # the gas temperature now: the shortest window that has one (a short window
        # can be empty of temperature samples on a tick; a longer one still tells)
        has_t = np.isfinite(T_eff)
        cols = np.arange(T_eff.shape[1])
        temp_k = np.where(has_t.any(axis=0), T_eff[np.argmax(has_t, axis=0), cols], np.nan)
        q_now = p_now * tref / temp_k
        best_j, best_s, best_se = self._best_window(fq, fse, filled)
        k_mass = kg_day_per_pa_s(groups.group_m3, tref)  # kg/day per (Pa/s)
        mdot = -k_mass * best_s
        mdot_se = k_mass * best_se
        with np.errstate(invalid="ignore", divide="ignore"):
            area = equivalent_area_m2(
                mdot / SECONDS_PER_DAY, p_now, temp_k, est.discharge_coefficient
            )
            hole_mm = np.where(mdot > 0, np.sqrt(4.0 * np.maximum(area, 0) / np.pi) * 1e3, 0.0)
            pmin = self.config.p_min_pa
            falling = best_s < 0
            head = np.maximum(p_now - pmin, 0.0)
            res_lin = np.where(falling, head / -best_s, np.inf)
            tau = p_now / -best_s
            res_orf = np.where(falling, tau * np.log(np.maximum(p_now, pmin) / pmin), np.inf)
        return VolumeFit(
            t_s=now_s,
            slope_pa_s=fp,
            slope_stderr_pa_s=fpse,
            slope_comp_pa_s=fq,
            slope_comp_stderr_pa_s=fse,
            sensor_slope_comp_pa_s=sq_c,
            sensor_slope_comp_stderr_pa_s=se_c,
            filled=filled,
            pressure_pa=p_now,
            pressure_comp_pa=q_now,
            temperature_k=temp_k,
            best_window=best_j,
            best_slope_pa_s=best_s,
            best_stderr_pa_s=best_se,
            mass_rate_kg_day=mdot,
            mass_rate_sigma_kg_day=mdot_se,
            hole_mm=hole_mm,
            reserve_linear_s=res_lin,
            reserve_orifice_s=res_orf,
            n_healthy=n_h,
            kg_day_per_pa_s=k_mass,
            regime=tuple(regime),
            regime_exponent=regime_exponent.copy(),
            group_m3=groups.group_m3.copy(),
            groups=tuple(groups.members),
        )

    def _best_window(self, fq, fse, filled):
        """The most precise filled window whose slope agrees with the shorter ones:
        its index per volume (-1: none), slope and error (Pa/s)."""
        V = self.channels.n_volumes
        best_s = np.full(V, np.nan)
        best_se = np.full(V, np.nan)
        best_j = np.full(V, -1)
        going = np.ones(V, dtype=bool)
        cs = self.est.consistency_sigma
        for j in range(len(self.windows_s)):
            f = filled[j] & np.isfinite(fq[j]) & np.isfinite(fse[j])
            first = best_j < 0
            with np.errstate(invalid="ignore"):
                cons = np.abs(fq[j] - best_s) <= cs * np.hypot(fse[j], best_se)
            # a longer window is taken if it agrees and is more precise; one that
            # disagrees (the leak changed within it) ends the search
            take = f & going & (first | (cons & (fse[j] < best_se)))
            going &= ~(f & ~first & ~cons)
            best_s = np.where(take, fq[j], best_s)
            best_se = np.where(take, fse[j], best_se)
            best_j = np.where(take, j, best_j)
        return best_j, best_s, best_se
