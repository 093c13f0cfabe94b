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

import dataclasses
import enum
import math
from dataclasses import dataclass

import numpy as np

from common.gas import KELVIN, SECONDS_PER_DAY, equivalent_area_m2, kg_day_per_pa_s
from firmware_host.config import Limits, MonitorConfig
from firmware_host.stages.regime import Regime
from firmware_host.stages.topology import Channels, HatchGroups
from firmware_host.stages.windows import WindowFits

#: The orbital angular frequency (rad/s): one orbit in 92 minutes.
ORBIT_OMEGA_RAD_S = 2 * math.pi / 5520.0
#: A module's typical temperature rate (K/s): 1 K of orbital swing over 92 minutes.
THERMAL_RATE_K_S = 1.0 * ORBIT_OMEGA_RAD_S
#: A raw slope that fell by more than this many typical thermal rates within the
#: temperature lag is a leak's onset, not a thermal swing.
THERMAL_JUMP = 2.0
#: After such an onset a window up to this long (s) keeps using the undelayed slope
#: until its delayed copy has passed the onset (lag + window).
JUMP_HOLD_MAX_WINDOW_S = 60.0
#: The mass rate's model uncertainty, a fraction of the rate: the stated sigma is at
#: least this.  On the scorecard, with the statistical error alone 53 % of settled
#: estimates were within 2 sigma of the truth (systematic errors of 0.3-1 % where the
#: statistical error is 0.1 %: small volumes, fast leaks, a 1 K swing); with it
#: 99.9 % of the quick sweep's (docs/DETECTION.md).
MODEL_REL = 0.01
#: Smallest slope standard error used as a weight (Pa/s).
SE_FLOOR = 1e-6
#: The shortest window (s) whose error is that of the sensors' own compensated
#: pressure (``Fit.stderr_comp_pa_s``); shorter ones add the pressure's and the
#: temperature's errors (a thermal swing barely curves over them).
COMP_ERROR_MIN_WINDOW_S = 300.0


class EstimateState(enum.IntEnum):
    """How far a volume's estimate can be taken as a fact (explicit codes).

    ``NONE``: no window is usable, there is no number.  ``SETTLING``: a number
    the data cannot support yet (the windows are still filling, the group has
    just changed, or it claims a gain of mass while the pressure falls): the
    operator sees it flagged with its sigma, never as a fact.  ``SETTLED``:
    the estimate stands.
    """

    NONE = 0
    SETTLING = 1
    SETTLED = 2


#: Estimations a shortened best window must hold before the estimate is settled.
BEST_WINDOW_HOLD = 2
# the codes as plain ints for numpy (an IntEnum member takes numpy's slow path)
assert (EstimateState.NONE, EstimateState.SETTLING) == (0, 1)
_SETTLED = int(EstimateState.SETTLED)


def estimate_state(
    best_window: np.ndarray,
    mass_rate_kg_day: np.ndarray,
    sigma_kg_day: np.ndarray,
    raw_slope_pa_s: np.ndarray,
    group_settled: np.ndarray,
    limits: Limits,
    best_held: np.ndarray | None = None,
) -> np.ndarray:
    """Each volume's ``EstimateState`` code, ``(V,)`` int8.

    SETTLED where the volume's group has settled after a hatch change, the
    mass rate is known and either precise against the CAUTION limit (sigma
    at most the limit) or clearly not zero (beyond ``caution_sigma`` sigma),
    and it is not a significant gain of mass while the raw pressure of its
    best window (``raw_slope_pa_s``, undelayed) falls: compensation a lag
    behind a leak's onset, whose cooling the temperature sensors already
    see, can show that for a moment, and no leak makes air.  With
    ``best_held`` (per volume, for how many estimations since the best window
    last got shorter it has stayed so; ``BEST_WINDOW_HOLD`` or more once it
    got longer), a shortened best window is settling until it has held
    ``BEST_WINDOW_HOLD`` further estimations: a leak's onset, or a short
    window's excursion that the next estimations do not repeat (1-2 ticks of
    28-35 kg/day on a 10 kg/day leak in 12 m3 under a 1 K swing; -520 kg/day
    in a module of the demo without a leak), is not shown as a fact.
    """
    with np.errstate(invalid="ignore"):
        return _estimate_state_raw(
            best_window,
            mass_rate_kg_day,
            sigma_kg_day,
            raw_slope_pa_s,
            group_settled,
            limits,
            best_held,
        )


def _estimate_state_raw(
    best_window, mass_rate_kg_day, sigma_kg_day, raw_slope_pa_s, group_settled, limits, best_held
):
    """``estimate_state`` without its ``np.errstate`` (the caller sets it)."""
    L = limits
    known = (best_window >= 0) & np.isfinite(mass_rate_kg_day) & np.isfinite(sigma_kg_day)
    precise = (sigma_kg_day <= L.caution_leak_kg_day) | (
        np.abs(mass_rate_kg_day) > L.caution_sigma * sigma_kg_day
    )
    impossible = (mass_rate_kg_day < -L.caution_sigma * sigma_kg_day) & (raw_slope_pa_s < 0)
    settled = known & group_settled & precise & ~impossible
    if best_held is not None:
        settled &= best_held >= BEST_WINDOW_HOLD
    out = known.astype(np.int8)  # SETTLING (1) where known, else NONE (0)
    out[settled] = _SETTLED
    return out


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


def _fuse_stack(slope2, se2, use, MT, volume_of):
    """``fuse_slopes`` of ``(nW, C)`` slope sets stacked ``(k, nW, C)`` with the
    same ``use``, bit for bit: the element-wise steps run once on the stack, each
    volume sum is the same matrix product of one ``(nW, C)`` set as in
    ``fuse_slopes``.  Run under ``np.errstate(invalid="ignore", divide="ignore")``."""
    valid = np.isfinite(slope2)
    valid &= np.isfinite(se2)
    valid &= use
    w = np.where(valid, 1.0 / np.maximum(se2, SE_FLOOR) ** 2, 0.0)
    sv = np.where(valid, slope2, 0.0)
    ws = w * sv
    k = len(slope2)
    sw = np.empty((k, ws.shape[1], MT.shape[1]))
    fw = np.empty_like(sw)
    for i in range(k):
        np.matmul(w[i], MT, out=sw[i])
        np.matmul(ws[i], MT, out=fw[i])
    f = fw / sw
    r = np.where(valid, (sv - f[:, :, volume_of]) ** 2 * w, 0.0)
    resid = np.empty_like(sw)
    for i in range(k):
        np.matmul(r[i], MT, out=resid[i])
    cnt = valid.astype(float) @ MT  # counts: exact whatever the order of the sum
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
    group volume (m3) and group members; the pressure rate the group's
    temperature alone drives now (``thermal_pa_s``, Pa/s of raw pressure,
    positive when warming), its 1-sigma and the window it was taken from
    (``thermal_now``; -1: none, rate 0 and a typical swing's sigma); each
    volume's ``EstimateState`` code (``estimate_state``).
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
    thermal_pa_s: np.ndarray
    thermal_sigma_pa_s: np.ndarray
    thermal_window: np.ndarray
    state: np.ndarray

    @classmethod
    def make(cls, **fields) -> VolumeFit:
        """The same object as the constructor makes, for every slow tick: a frozen
        dataclass's ``__init__`` sets each field through ``object.__setattr__``;
        this fills the instance's dict at once (every field must be given)."""
        if fields.keys() != _VOLUME_FIT_FIELDS:
            raise TypeError(f"VolumeFit.make needs exactly the fields {sorted(_VOLUME_FIT_FIELDS)}")
        r = object.__new__(cls)
        r.__dict__.update(fields)
        return r


_VOLUME_FIT_FIELDS = frozenset(f.name for f in dataclasses.fields(VolumeFit))


def typical_thermal_pa_s(p_pa, t_k) -> np.ndarray:
    """The pressure rate (Pa/s) a typical orbital swing (``THERMAL_RATE_K_S``) drives."""
    return np.asarray(p_pa, dtype=float) / t_k * THERMAL_RATE_K_S


def thermal_now(p_now, t_eff_k, dt_eff_k_s, thermal_se_pa_s, windows_s, temp_lag_s, cols):
    """The pressure rate the temperature alone drives now (Pa/s, ``(V,)``), its
    1-sigma and the window it is taken from (-1: none).

    Per window ``(nW, V)`` the group's effective temperature slope gives the
    rate ``P dT_eff/dt / T_eff``; it describes the middle of the window as the
    temperature sensors saw it, ``W / 2 + temp_lag_s`` ago, and an orbital
    swing turns the rate by ``omega`` times its size per second since.  Each
    volume takes the window with the least total error: the fit's
    (``thermal_se_pa_s``, which counts the volumes without a temperature)
    and that age's, with a swing at least the typical one.  Where no window
    has a temperature: rate 0, sigma a typical swing's.
    """
    rate = p_now * dt_eff_k_s / t_eff_k
    swing = np.fmax(np.abs(rate), typical_thermal_pa_s(p_now, t_eff_k))
    age_se = swing * ORBIT_OMEGA_RAD_S * (np.asarray(windows_s)[:, None] * 0.5 + temp_lag_s)
    var = thermal_se_pa_s**2 + age_se**2
    ok = np.isfinite(rate) & np.isfinite(var)
    j = np.argmin(np.where(ok, var, np.inf), axis=0)
    if ok[j, cols].all():  # every volume has a window: np.where's choice, made directly
        return rate[j, cols], np.sqrt(var[j, cols]), j
    found = ok.any(axis=0)
    best = np.where(found, rate[j, cols], 0.0)
    p_typ = np.where(np.isfinite(p_now), p_now, 101325.0)
    sigma = np.where(found, np.sqrt(var[j, cols]), typical_thermal_pa_s(p_typ, 295.15))
    return best, sigma, np.where(found, j, -1)


class VolumeEstimator:
    """Fusion, temperature compensation, onset hold, decay correction, best window,
    mass rate, hole and reserves; see module docstring.

    Its state is, per window and volume, until when the undelayed slope is used
    after an onset (``undelayed_until_s``), and each volume's best window at the
    last estimation and how long it has held (``previous_best``, ``best_held``,
    for the estimate's state).
    """

    def __init__(self, config: MonitorConfig, channels: Channels, lag_s: float):
        self.config = config
        self.est = config.estimator
        self.channels = channels
        self.lag_s = lag_s
        self.windows_s = np.asarray(config.windows_s, dtype=float)
        self.undelayed_until_s = np.full((len(self.windows_s), channels.n_volumes), -np.inf)
        #: each volume's best window at the last estimation (-1: none)
        self.previous_best = np.full(channels.n_volumes, -1, dtype=np.int64)
        #: estimations each best window has held since it last got shorter
        self.best_held = np.full(channels.n_volumes, BEST_WINDOW_HOLD, dtype=np.int64)
        # made once: M.T, min_fill * windows, the windows held undelayed after an onset,
        # the age of a fit's middle (undelayed, delayed), volume indices
        self._MT = channels.member.T
        w = self.windows_s[:, None]
        self._fill_w = self.est.min_fill * w
        self._short_w = w <= JUMP_HOLD_MAX_WINDOW_S
        self._half_w = w * 0.5 + 0.0
        self._half_w_lag = w * 0.5 + lag_s
        self._cols = np.arange(channels.n_volumes)
        self._long_w = w >= COMP_ERROR_MIN_WINDOW_S
        self._crack_key: tuple[Regime, ...] | None = None
        self._crack = np.zeros(channels.n_volumes, dtype=bool)
        self._n_crack = 0

    def _crack_of(self, regime) -> tuple[np.ndarray, int]:
        """Which volumes are in the crack regime ``(V,)`` bool (read-only: made again
        only when ``regime`` changes) and how many."""
        key = tuple(regime)
        if key != self._crack_key:
            self._crack = np.array([r is Regime.CRACK for r in key])
            self._crack.flags.writeable = False
            self._n_crack = int(np.count_nonzero(self._crack))
            self._crack_key = key
        return self._crack, self._n_crack

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
        group_settled: np.ndarray,
        limits: Limits,
    ) -> VolumeFit:
        """Fuse the window ``fits`` at host time ``now_s`` (s).

        ``usable`` are the sensors the estimates take, ``trusted`` those whose
        data is not suspect (they may lend a temperature), ``rate_hz`` each
        sensor's sample rate (a sensor counts in a window only where it covered
        ``min_fill`` of it), ``regime`` each volume's flow regime (for the decay
        correction), ``group_settled`` the volumes whose group has settled and
        ``limits`` the active limits (for the estimate's state).

        Raw dP/dt: inverse-variance mean of the volume's sensors (inflated by the
        Birge ratio when they scatter more than their errors).  Compensated:
        the group's gas mass is P/R * sum(V_i / T_i), so with the effective
        temperature T_eff = V_g / sum(V_i / T_i) the compensated slope is
        dPc/dt = (T_ref / T_eff) (dP/dt - P dT_eff/dt / T_eff), using pressure
        slopes delayed by the temperature sensors' lag.
        """
        est = self.est
        ch = self.channels
        MT = self._MT
        use = usable
        vch = ch.volume_of
        windows_s = self.windows_s
        lag_s = self.lag_s
        slope_T, se_T, mean_T = fits.slope_temp_k_s, fits.stderr_temp_k_s, fits.mean_temp_c
        # (the caller runs this under np.errstate(invalid="ignore", divide="ignore"))
        # a sensor counts in a window only where it covered it (a gap changes what a
        # straight line makes of the thermal cycle, and the group temperature would
        # no longer describe the same samples)
        cov = fits.n_samples >= self._fill_w * rate_hz[None, :]
        use_w = use & cov  # (nW, C)
        # raw and delayed slopes fused at once (rows 0 and 1), and the delayed ones
        # of the sensors whose delayed pressure spans the same time as their
        # temperature (row 2, ``WindowFits.aligned``: not in a window's first lag
        # after the channel's data began), which the estimates take; the onset
        # test (below) compares rows 0 and 1
        # (np.stack's bytes, without its per-call overhead)
        # (once every channel is aligned, rows 1 and 2 are the same: row 1 is both,
        # so row ``a`` is the aligned delayed row either way)
        a = 1 if fits.aligned.all() else 2
        slope2 = np.empty((a + 1,) + use_w.shape)
        slope2[0] = fits.slope_pa_s
        slope2[1] = fits.delayed_slope_pa_s
        se2 = np.empty_like(slope2)
        se2[0] = fits.stderr_pa_s
        se2[1:] = fits.delayed_stderr_pa_s
        if a == 2:
            np.copyto(slope2[2], np.where(fits.aligned, fits.delayed_slope_pa_s, np.nan))
        f2, f2se = _fuse_stack(slope2, se2, use_w, MT, vch)
        fp, fpd, fpa = f2[0], f2[1], f2[a]  # (indexing: quicker than unpacking an array)
        fpse, fpdse, fpase = f2se[0], f2se[1], f2se[a]
        # temperatures from the same sensors as the pressures; a volume with none
        # of those borrows from any sensor whose data is not suspect (a sensor left
        # out for its pressure, stale say, still tells its module's temperature)
        finite_T = np.isfinite(slope_T)
        finite_T &= np.isfinite(mean_T)
        tv = use_w & finite_T
        tv &= fits.aligned  # (a partial window's temperature spans more than its pressure)
        fallback = trusted & cov
        fallback &= finite_T
        # counts (exact in any order): sensors with a temperature, and of the
        # undelayed and delayed slopes per volume
        flags = np.empty((3,) + tv.shape)
        np.copyto(flags[0], tv)
        np.isfinite(slope2[0::a], out=flags[1:])  # rows 0 and a
        flags[1:] *= use_w
        counts = flags @ MT
        none = counts[0] == 0  # (nW, V)
        tv = np.where(none[:, vch], fallback, tv)
        nt = tv.astype(float) @ MT
        T_v = (np.where(tv, mean_T, 0.0) @ MT) / nt + KELVIN  # (nW, V) K
        dT_v = (np.where(tv, slope_T, 0.0) @ MT) / nt
        seT_v = np.sqrt(np.where(tv, se_T, 0.0) ** 2 @ MT) / nt
        has = np.isfinite(T_v)
        GT = groups.group_matrix.T
        vol_m3 = ch.volume_m3
        wv = np.where(has, vol_m3 / T_v, 0.0)
        vg = np.where(has, vol_m3, 0.0) @ GT
        inv = wv @ GT
        T_eff = vg / inv
        wvT = wv / T_v
        dT_eff = T_eff**2 / vg * (np.where(has, wvT * dT_v, 0.0) @ GT)
        seT_eff = T_eff**2 / vg * np.sqrt(np.where(has, wvT * seT_v, 0.0) ** 2 @ GT)
        lv = use & np.isfinite(fits.level_now_pa)
        nl = lv.astype(float) @ MT
        p_now = np.where(lv, fits.level_now_pa, 0.0) @ MT / nl
        scale = self.config.t_ref_k / T_eff
        pm = use_w & np.isfinite(fits.mid_pa)
        p_mid = (np.where(pm, fits.mid_pa, 0.0) @ MT) / (pm.astype(float) @ MT)
        p_mid = np.where(np.isfinite(p_mid), p_mid, p_now)
        # a volume of the group without any temperature: its thermal swing is unknown
        miss = 1.0 - vg / groups.volume_m3_sum
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
        jump_hold = jump & self._short_w
        if jump_hold.any():
            self.undelayed_until_s = np.where(
                jump_hold, now_s + lag_s + windows_s[:, None], self.undelayed_until_s
            )
        jump |= now_s < self.undelayed_until_s
        now_u = jump & (counts[1] > 0)
        filled = now_u | (counts[2] > 0)
        # a window that began before the volume's group last changed (and settled)
        # mixes two systems: the pressure history of the old group, the size of
        # the new one (an isolated module would inherit its old group's fall)
        start = (now_s - windows_s[:, None]) - np.where(now_u, 0.0, lag_s)
        filled &= start >= groups.changed_t + est.hatch_settle_s
        fsel = np.where(now_u, fp, fpa)
        fsel_se = np.where(now_u, fpse, fpase)
        fq = scale * (fsel - p_mid * dT_eff / T_eff)
        # per sensor, compensated with its group's temperature, the same choice
        now_c = now_u[:, vch]
        s_sel = np.where(now_c, slope2[0], slope2[a])
        se_sel = np.where(now_c, se2[0], se2[a])
        sq_c = scale[:, vch] * (s_sel - p_mid[:, vch] * dT_eff[:, vch] / T_eff[:, vch])
        sq_c = np.where(cov, sq_c, np.nan)
        # The errors.  A straight line through a thermal swing leaves the swing's
        # curvature in both the pressure's and the temperature's residuals, so their
        # errors added overstate what is left after compensation (a 0.8 K orbit
        # leaves 1.3 kg/day of error on 30 min in 900 m3 without any noise).  Where
        # a volume is a group alone and each of its sensors has its own temperature,
        # the error is that of each sensor's compensated pressure (its residuals
        # after p - (P/T) T: the channels' noise, not the swing), fused with the
        # slopes' weights and their Birge ratio; elsewhere (a temperature borrowed or
        # mixed from other volumes) the two errors added, which is larger.
        # (windows of at least COMP_ERROR_MIN_WINDOW_S only: over a minute the swing
        # barely curves, and the compensated residuals' scatter, from a few slots, is
        # itself noisy; a 10-s window stating a chance 0.4 Pa/s for a true 0.53 was
        # taken as the best one and raised a reserve EMERGENCY on one estimation)
        # (the Birge ratio of the pressure slopes scales only the pressure noise's
        # share: applied to the whole error it scaled the temperature noise too, and
        # one taken from the compensated slopes scatters with the temperature noise
        # of two sensors, a 1-dof ratio that tripled the 30-min error for minutes)
        sez_sel = np.where(now_c, fits.stderr_comp_pa_s, fits.delayed_stderr_comp_pa_s)
        valid = use_w & np.isfinite(s_sel) & np.isfinite(se_sel)
        zok = valid & finite_T & np.isfinite(sez_sel)
        wz = np.where(zok, 1.0 / np.maximum(se_sel, SE_FLOOR) ** 2, 0.0)
        sw = wz @ MT
        var_z = np.where(zok, (wz * sez_sel) ** 2, 0.0) @ MT / sw**2
        nz = zok.astype(float) @ MT
        own = groups.alone & self._long_w & (nz == (valid.astype(float) @ MT)) & (sw > 0)
        pn = np.fmin(fits.noise_stderr_pa_s, se_sel)  # the pressure noise's share (fmin: NaN-free)
        var_pn = np.where(zok, (wz * pn) ** 2, 0.0) @ MT / sw**2
        birge2 = np.maximum(1.0, fsel_se**2 * sw)
        fse = scale * np.where(
            own,
            np.sqrt(var_z + (birge2 - 1.0) * var_pn + extra**2),
            np.sqrt(fsel_se**2 + thermal_se2),
        )
        own_c = own[:, vch] & zok
        se_c = scale[:, vch] * np.where(
            own_c,
            np.sqrt(sez_sel**2 + extra[:, vch] ** 2),
            np.sqrt(se_sel**2 + thermal_se2[:, vch]),
        )
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
        age = np.where(now_u, self._half_w, self._half_w_lag)
        crack, n_crack = self._crack_of(regime)
        fall = -np.minimum(fq, 0.0)  # Pa/s, >= 0
        q_now = scale * p_now
        ratio = 1.0  # P_now / P_then (a scalar 1.0 multiplies as a row of ones does)
        for _ in range(4):
            x = np.fmin(fall * ratio / q_now * age, 5.0)  # age / tau (orifice)
            if n_crack == 0:  # (np.where's choice, without computing the unused side)
                ratio = np.exp(-x)
            elif n_crack == len(crack):
                ratio = 1.0 / (1.0 + x)
            else:
                ratio = np.where(crack, 1.0 / (1.0 + x), np.exp(-x))
        if n_crack == 0:
            decay = ratio
        elif n_crack == len(crack):
            decay = ratio**2
        else:
            decay = np.where(crack, ratio**2, ratio)
        fq = fq * decay
        fse = fse * decay
        decay_c = decay[:, vch]
        sq_c = sq_c * decay_c
        se_c = se_c * decay_c
        # the gas temperature now: the shortest window that has one (a short window
        # can be empty of temperature samples on a tick; a longer one still tells)
        has_t = np.isfinite(T_eff)
        cols = self._cols
        if has_t[0].all():  # every volume has the shortest window's temperature
            temp_k = T_eff[0].copy()
        else:
            temp_k = np.where(has_t.any(axis=0), T_eff[np.argmax(has_t, axis=0), cols], np.nan)
        q_now = p_now * self.config.t_ref_k / temp_k
        best_j, best_s, best_se = self._best_window(fq, fse, filled)
        # how long each volume's best window has held since it last got shorter
        shorter = best_j < self.previous_best
        same = best_j == self.previous_best
        self.best_held = np.where(shorter, 0, np.where(same, self.best_held + 1, BEST_WINDOW_HOLD))
        self.previous_best = best_j
        k_mass = kg_day_per_pa_s(groups.group_m3, self.config.t_ref_k)  # kg/day per (Pa/s)
        mdot = -k_mass * best_s
        # the statistical error, and the model's: what the gas law is given (volume,
        # T_ref, the group temperature's representativeness, the decay correction)
        mdot_se = np.hypot(k_mass * best_se, MODEL_REL * np.abs(mdot))
        area = equivalent_area_m2(mdot / SECONDS_PER_DAY, p_now, temp_k, est.discharge_coefficient)
        hole_mm = np.where(mdot > 0, np.sqrt(4.0 * np.maximum(area, 0) / np.pi) * 1e3, 0.0)
        pmin = self.config.p_min_pa
        falling = best_s < 0
        head = np.maximum(p_now - pmin, 0.0)
        res_lin = np.where(falling, head / -best_s, np.inf)
        tau = p_now / -best_s
        res_orf = np.where(falling, tau * np.log(np.maximum(p_now, pmin) / pmin), np.inf)
        n_h = use.astype(float) @ MT
        th, th_se, th_j = thermal_now(
            p_now, T_eff, dT_eff, np.sqrt(thermal_se2), windows_s, est.temp_lag_s, self._cols
        )
        return VolumeFit.make(
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
            thermal_pa_s=th,
            thermal_sigma_pa_s=th_se,
            thermal_window=th_j,
            state=_estimate_state_raw(
                best_j,
                mdot,
                mdot_se,
                np.where(best_j >= 0, fp[np.maximum(best_j, 0), cols], np.nan),
                group_settled,
                limits,
                self.best_held,
            ),
        )

    def _best_window(self, fq, fse, filled):
        """The most precise filled window whose slope agrees with the shorter ones:
        its index per volume (-1: none), slope and error (Pa/s).

        The best so far is always one of the windows already seen, so the test of
        window ``j`` against it is the test against window ``i < j``: all those
        pairs are computed at once (the same operations as against the running
        best), then each volume walks its windows in Python."""
        nW, V = fq.shape
        cs = self.est.consistency_sigma
        f = filled & np.isfinite(fq)
        f &= np.isfinite(fse)
        # cons[j, i, v]: window j agrees with window i; prec: and is more precise
        cons = np.abs(fq[:, None] - fq[None, :]) <= cs * np.hypot(fse[:, None], fse[None, :])
        prec = fse[:, None] < fse[None, :]
        fl, cl, pl = (
            f.T.tolist(),
            cons.transpose(2, 0, 1).tolist(),
            prec.transpose(2, 0, 1).tolist(),
        )
        best = [-1] * V
        for v in range(V):
            b = -1
            fv, cv, pv = fl[v], cl[v], pl[v]
            for j in range(nW):
                if not fv[j]:
                    continue
                if b < 0:
                    b = j
                elif cv[j][b]:
                    if pv[j][b]:
                        b = j
                else:
                    break  # a window that disagrees (the leak changed within it) ends the search
            best[v] = b
        best_j = np.array(best)
        cols = self._cols
        if best and min(best) >= 0:  # every volume has one: np.where's choice, made directly
            return best_j, fq[best_j, cols], fse[best_j, cols]
        bj = np.maximum(best_j, 0)
        found = best_j >= 0
        best_s = np.where(found, fq[bj, cols], np.nan)
        best_se = np.where(found, fse[bj, cols], np.nan)
        return best_j, best_s, best_se
