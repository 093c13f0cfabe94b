"""Alarm rules: pure functions of (fits, health, groups, limits) -> conditions.

Each rule returns, per volume, a ``VolumeConditions``: where the alarm's
condition holds (``raise_``), where it is clearly back inside the limit with
hysteresis (``clear``), the alarmed value and the limit.  The alarm book
(``alarm_book.AlarmBook``) steps the state machines with them.  Nothing here
keeps state.

* CAUTION ``LEAK``: mass rate above the limit, significant, and voted by the
  sensors; or a longer window that shows a new leak by itself (``onset_leak``).
* WARNING ``LOW_RESERVE`` / EMERGENCY ``RESERVE_CRITICAL``: linear reserve
  below the limit, significant and voted.
* EMERGENCY ``RAPID_DEPRESS``: the fused, temperature-compensated fall rate
  of a short raw-tier window beyond the limit by ``emergency_sigma`` (the
  error counting the sensors' noise and the thermal rate's), voted; or a
  sudden drop seen by two or more sensors (``sudden_drop``), raised without
  persistence.
* ADVISORY ``LEAK_RATE_ROSE``: a volume already in CAUTION LEAK whose mass
  rate rose markedly (``leak_rate_rose``; the alarm book keeps the rate it
  rose from).

Votes: a volume with one healthy sensor needs it, with two or more at least
two.  Units: kg/day, s, Pa/min, Pa.

The rules compare and divide NaN where data is missing.  The slow-tick rules
(``volume_conditions``, ``onset_leak``) run under the core's
``np.errstate(invalid="ignore", divide="ignore")``, set once per slow tick,
so called alone they may warn; the every-tick rules (``sudden_drop``,
``rapid_depress``) set it themselves where they divide (past their screens).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from firmware_host.alarms import AlarmKind, AlarmLevel
from firmware_host.config import Limits
from firmware_host.stages.estimation import VolumeFit, fuse_slopes
from firmware_host.stages.topology import Channels


class VolumeFamily(enum.IntEnum):
    """The volume alarms (explicit codes), with their level, kind and unit."""

    LEAK = 0
    LOW_RESERVE = 1
    RAPID_DEPRESS = 2
    RESERVE_CRITICAL = 3

    @property
    def level(self) -> AlarmLevel:
        return _FAMILY_INFO[self][0]

    @property
    def kind(self) -> AlarmKind:
        return _FAMILY_INFO[self][1]

    @property
    def unit(self) -> str:
        return _FAMILY_INFO[self][2]


_FAMILY_INFO = {
    VolumeFamily.LEAK: (AlarmLevel.CAUTION, AlarmKind.LEAK, "kg/day"),
    VolumeFamily.LOW_RESERVE: (AlarmLevel.WARNING, AlarmKind.LOW_RESERVE, "s"),
    VolumeFamily.RAPID_DEPRESS: (AlarmLevel.EMERGENCY, AlarmKind.RAPID_DEPRESS, "Pa/min"),
    VolumeFamily.RESERVE_CRITICAL: (AlarmLevel.EMERGENCY, AlarmKind.RESERVE_CRITICAL, "s"),
}


@dataclass(frozen=True)
class VolumeConditions:
    """One volume family's conditions at one tick, per volume ``(V,)``.

    ``persistence_s`` is one time for all volumes or one per volume.
    """

    family: VolumeFamily
    raise_: np.ndarray
    clear: np.ndarray
    value: np.ndarray
    limit: float
    persistence_s: float | np.ndarray


#: LEAK_RATE_ROSE: the rise must exceed this fraction of the rate it rose from,
RATE_ROSE_FRACTION = 0.5
#: this many standard errors of the rate now,
RATE_ROSE_SIGMA = 3.0
#: and the CAUTION limit itself (a second leak at least the size that raises a CAUTION).
#: For this long after the CAUTION (or the last advisory) was raised, the rate a rise
#: is judged from is the rate now (``rate_rose_base``): a leak's estimate is still
#: building up window by window (in soyuz-ms09-2018 from 2.5 kg/day at the CAUTION to
#: 21 kg/day 8 minutes later, and one volume's last 50 % step 48 minutes later), which
#: is no second (or third) leak.
RATE_ROSE_SETTLE_S = 1800.0


def rate_rose_base(
    from_kg_day: np.ndarray, mdot_kg_day: np.ndarray, since_raise_s: np.ndarray
) -> np.ndarray:
    """The rate a rise is judged from: the rate now while the CAUTION or the last
    LEAK_RATE_ROSE advisory was raised less than ``RATE_ROSE_SETTLE_S`` ago
    (``since_raise_s``) and the rate is known, else ``from_kg_day`` (the rate
    when it last settled; NaN: no CAUTION).  So the base is the settled rate,
    not the running maximum: a one-tick transient while it settles is
    forgotten."""
    follow = (since_raise_s < RATE_ROSE_SETTLE_S) & np.isfinite(mdot_kg_day)
    return np.where(follow & np.isfinite(from_kg_day), mdot_kg_day, from_kg_day)


def leak_rate_rose(
    from_kg_day: np.ndarray, mdot_kg_day: np.ndarray, sigma_kg_day: np.ndarray, limits: Limits
) -> np.ndarray:
    """Volumes whose leak rate rose markedly: ``(V,)`` bool.

    ``from_kg_day``: the rate of the volume's active CAUTION LEAK once settled
    (``rate_rose_base``), or the rate the last ``LEAK_RATE_ROSE`` advisory was
    raised at (NaN: no CAUTION active);
    ``mdot_kg_day``/``sigma_kg_day``: the mass rate now and its 1-sigma.  The
    rise ``mdot - from`` must exceed ``RATE_ROSE_FRACTION`` of ``from``,
    ``RATE_ROSE_SIGMA`` sigma and ``caution_leak_kg_day``.
    """
    rise = mdot_kg_day - from_kg_day
    need = np.fmax(
        np.fmax(RATE_ROSE_FRACTION * np.abs(from_kg_day), RATE_ROSE_SIGMA * sigma_kg_day),
        limits.caution_leak_kg_day,
    )
    with np.errstate(invalid="ignore"):
        return np.isfinite(from_kg_day) & (rise > need)


def voted(votes: np.ndarray, usable: np.ndarray, channels: Channels, n_h: np.ndarray):
    """Volumes where enough healthy sensors vote: all of one, at least two of two or more."""
    return ((votes & usable).astype(float) @ channels.member.T >= np.minimum(2, n_h)) & (n_h > 0)


def sudden_drop(
    reg_t: np.ndarray,
    reg_p: np.ndarray,
    reg_count: np.ndarray,
    newest_p: np.ndarray,
    usable: np.ndarray,
    threshold_pa: np.ndarray,
    channels: Channels,
    limits: Limits,
) -> np.ndarray | None:
    """Volumes where two or more healthy sensors each read a sudden drop: the
    mean fall rate (Pa/min) of those sensors, NaN elsewhere; None if none.

    Each sensor's newest valid sample ``newest_p`` (undelayed: the spike
    filter's registers ``reg_t``/``reg_p``, ``(C, W)``) against the median of
    its previous ``W - 1`` samples and their median time: the drop must exceed
    ``threshold_pa`` (``emergency_drop_sigma`` times the sensor's usual noise)
    plus the fall the EMERGENCY rate allows over that time.  One sensor's step
    or spike cannot raise it; a leak that opens between two samples can.
    """
    W = reg_p.shape[1]
    C = channels.n_channels
    # screen (every tick, so three numpy calls): a drop this large below the
    # register's highest sample in two sensors, or nothing
    cand = reg_p.max(axis=1) - newest_p > threshold_pa
    if np.count_nonzero(cand) < 2:
        return None
    cand &= (reg_count >= W) & usable
    newest = (reg_count - 1) % W
    p_new = reg_p[np.arange(C), newest]
    c = np.flatnonzero(cand)
    keep = np.ones((len(c), W), dtype=bool)
    keep[np.arange(len(c)), newest[c]] = False
    prev_p = reg_p[c][keep].reshape(len(c), W - 1)
    prev_t = reg_t[c][keep].reshape(len(c), W - 1)
    drop = np.median(prev_p, axis=1) - p_new[c]
    dt = reg_t[c, newest[c]] - np.median(prev_t, axis=1)
    allow = limits.emergency_rate_pa_min / 60.0 * np.maximum(dt, 0.0)
    vote_c = np.zeros(C, dtype=bool)
    vote_c[c] = (drop > threshold_pa[c] + allow) & (dt > 0)
    n_vote = vote_c.astype(float) @ channels.member.T
    if not (n_vote >= 2).any():
        return None
    rate_c = np.zeros(C)
    with np.errstate(invalid="ignore", divide="ignore"):  # (rare)
        rate_c[c] = np.where(dt > 0, drop / dt * 60.0, 0.0)
        mean_rate = (np.where(vote_c, rate_c, 0.0) @ channels.member.T) / n_vote
    return np.where(n_vote >= 2, mean_rate, np.nan)


#: With fewer than two healthy sensors in a volume, the rapid test reads only the
#: windows where ``emergency_sigma`` times the slope error the sensor's noise alone
#: gives is at most this fraction of the limit: one sensor's noise cannot vote
#: against a partner, so its window must be long enough for the stated sigma.
RAPID_SINGLE_MARGIN = 0.25


def rapid_depress(
    now_s: float,
    slopes: np.ndarray,
    stderrs: np.ndarray,
    noise_se: np.ndarray | None,
    window_s: np.ndarray,
    usable: np.ndarray,
    channels: Channels,
    settled: np.ndarray,
    settled_from_channel: np.ndarray | None,
    thermal_pa_s: np.ndarray,
    thermal_sigma_pa_s: np.ndarray,
    drop_rate: np.ndarray | None,
    limits: Limits,
    live: bool,
) -> VolumeConditions | None:
    """EMERGENCY rapid depressurization from the raw pressure ``slopes`` and
    ``stderrs`` (Pa/s, ``(len(window_s), C)``) of the fast windows.

    The fall judged is the mass-equivalent one: the raw slope less the rate
    the temperature alone drives now (``thermal_pa_s``, per volume, with its
    1-sigma ``thermal_sigma_pa_s``; ``VolumeFit.thermal_pa_s``).  Each
    sensor's error is at least what its usual noise alone gives the slope
    (``noise_se``, NaN: not known yet); the thermal sigma adds to the fused
    error.  Raised where the fused compensated fall exceeds the limit by
    ``emergency_sigma`` standard errors in any fast window (and the sensors
    vote); a volume with fewer than two healthy sensors reads only the windows
    long enough for its noise (``RAPID_SINGLE_MARGIN``).  Raised at once where
    ``drop_rate`` (``sudden_drop``, Pa/min) is finite.  ``settled`` are the
    volumes whose group has settled, ``settled_from_channel`` from when each
    channel's windows are clean again.  ``live``: the family has alarms that
    are not idle.  None where nothing can change (no alarm to step).
    """
    L = limits
    use = usable
    vch = channels.volume_of
    sp = slopes - thermal_pa_s[vch]
    sep = stderrs if noise_se is None else np.fmax(stderrs, noise_se)
    # windows that began before their volume's group changed and settled: out
    settle_c = settled_from_channel
    if settle_c is not None and now_s - window_s.max() < settle_c.max():
        old = (now_s - window_s[:, None]) < settle_c[None, :]
        sp = np.where(old, np.nan, sp)
        sep = np.where(old, np.nan, sep)
    th_se_c = thermal_sigma_pa_s[vch]
    with np.errstate(invalid="ignore"):
        rate_lo_c = (-sp - L.vote_sigma * np.hypot(sep, th_se_c)) * 60.0  # Pa/min
        em_vote = (rate_lo_c > L.vote_fraction * L.emergency_rate_pa_min).any(axis=0)
    if not (em_vote & use).any() and not live and drop_rate is None:
        return None  # no healthy sensor is anywhere near the limit: nothing can be raised
    n_h = use.astype(float) @ channels.member.T
    with np.errstate(invalid="ignore", divide="ignore"):  # (off the slow tick: rare)
        single = (n_h < 2)[vch]
        if single.any():
            # one sensor: only the windows long enough for its noise
            short = ~(
                L.emergency_sigma * (noise_se if noise_se is not None else sep) * 60.0
                <= RAPID_SINGLE_MARGIN * L.emergency_rate_pa_min
            )
            out = short & single[None, :]
            sp = np.where(out, np.nan, sp)
            sep = np.where(out, np.nan, sep)
        fp, fpse = fuse_slopes(sp, sep, use, channels.member, vch)
        fpse = np.hypot(fpse, thermal_sigma_pa_s)
        rate_v = -fp * 60.0
        rate_lo_v = rate_v - L.emergency_sigma * fpse * 60.0
        rate_max = np.max(np.where(np.isfinite(rate_v), rate_v, -np.inf), axis=0)
        rate_lo_max = np.max(np.where(np.isfinite(rate_lo_v), rate_lo_v, -np.inf), axis=0)
    rc = settled & (rate_lo_max > L.emergency_rate_pa_min) & voted(em_vote, use, channels, n_h)
    pers: float | np.ndarray = L.emergency_persistence_s
    if drop_rate is not None:
        fast = settled & np.isfinite(drop_rate)
        rc = rc | fast
        rate_max = np.where(fast, np.fmax(rate_max, drop_rate), rate_max)
        pers = np.where(fast, 0.0, L.emergency_persistence_s)
    if not rc.any() and not live:
        return None
    cc = ~(rate_max > L.emergency_rate_pa_min * (1 - L.hysteresis)) & (n_h > 0) & ~rc
    return VolumeConditions(
        VolumeFamily.RAPID_DEPRESS, rc, cc, rate_max, L.emergency_rate_pa_min, pers
    )


def onset_leak(
    fit: VolumeFit, usable: np.ndarray, channels: Channels, limits: Limits
) -> tuple[np.ndarray, np.ndarray]:
    """Volumes where a window longer than the best one shows the leak by itself,
    and its mass rate (kg/day; NaN elsewhere).

    Just after a leak starts, a long window still holds the time before it:
    its slope is smaller than the short window's, which ends the search for
    the best window there, while the short window alone may not yet be
    significant.  Such a longer window under-reads the leak, so if it is
    above the limit and significant on its own (and the sensors vote on it)
    the leak is real.  Only windows that read *less* than the best count:
    after a leak stops, the long windows that still remember it do not hold
    the alarm up.
    """
    L = limits
    fq, fse, filled = fit.slope_comp_pa_s, fit.slope_comp_stderr_pa_s, fit.filled
    best_j, best_s = fit.best_window, fit.best_slope_pa_s
    n_h = fit.n_healthy
    km = fit.kg_day_per_pa_s
    kmc = km[channels.volume_of]
    V = channels.n_volumes
    out = np.zeros(V, dtype=bool)
    value = np.full(V, np.nan)
    # the candidates of every window at once (row j: window j), then only the
    # windows with a candidate are voted on, in order
    m = -km * fq
    nW = len(fq)
    cand = (
        filled
        & (np.arange(nW)[:, None] > best_j)
        & (best_j >= 0)
        & (fq > best_s)
        & (m > L.caution_leak_kg_day)
        & (m > L.caution_sigma * km * fse)
    )
    if not cand.any():
        return out, value
    for j in np.flatnonzero(cand.any(axis=1)).tolist():
        m_j = m[j]
        m_c = -kmc * fit.sensor_slope_comp_pa_s[j]
        vote = (m_c > L.vote_fraction * L.caution_leak_kg_day) & (
            m_c > L.vote_sigma * kmc * fit.sensor_slope_comp_stderr_pa_s[j]
        )
        hit = cand[j] & voted(vote, usable, channels, n_h)
        value = np.where(hit, np.fmax(value, m_j), value)
        out |= hit
    return out, value


def volume_conditions(
    fit: VolumeFit,
    level_pa: np.ndarray,
    settled: np.ndarray,
    usable: np.ndarray,
    channels: Channels,
    limits: Limits,
    p_min_pa: float,
) -> tuple[VolumeConditions, ...]:
    """CAUTION leak, WARNING reserve and EMERGENCY reserve from the fused estimates.

    ``level_pa`` is each sensor's fitted pressure now (Pa), ``settled`` the
    volumes whose group has settled.  A volume whose sensors are all out of
    range or faulty (an emptied module reads below its sensors' range) never
    clears: its leak alarms stay up rather than report a return to normal.
    """
    L = limits
    h = L.hysteresis
    mdot, mse = fit.mass_rate_kg_day, fit.mass_rate_sigma_kg_day
    res = fit.reserve_linear_s
    sq_c, se_c = fit.sensor_slope_comp_pa_s, fit.sensor_slope_comp_stderr_pa_s
    vch = channels.volume_of
    n_h = fit.n_healthy
    z = mdot / mse
    signif = z > L.caution_sigma
    # each raise needs a significant rate: where none is, the votes cannot matter
    # (x & votes is then all False whatever the votes) and are not taken
    any_signif = np.count_nonzero(signif) > 0
    if any_signif:
        # per-sensor votes on the volume's best window
        bj = fit.best_window[vch]
        cidx = np.arange(channels.n_channels)
        sj = np.where(bj >= 0, sq_c[np.maximum(bj, 0), cidx], np.nan)
        sej = np.where(bj >= 0, se_c[np.maximum(bj, 0), cidx], np.nan)
        km = fit.kg_day_per_pa_s[vch]
        m_c = -km * sj
        leak_vote = (m_c > L.vote_fraction * L.caution_leak_kg_day) & (
            m_c > L.vote_sigma * km * sej
        )
        res_c = np.where(sj < 0, np.maximum(level_pa - p_min_pa, 0) / -sj, np.inf)
        sig_c = -sj > L.vote_sigma * sej
        warn_vote = sig_c & (res_c < L.warning_reserve_s / L.vote_fraction)
        crit_vote = sig_c & (res_c < L.emergency_reserve_s / L.vote_fraction)
    # clear on evidence: the estimate clear_sigma errors towards the worse
    # side is inside the limit with the hysteresis
    cs = L.clear_sigma
    leak_hi = mdot + cs * mse
    fall_hi = -fit.best_slope_pa_s + cs * fit.best_stderr_pa_s
    head = np.maximum(fit.pressure_pa - p_min_pa, 0.0)
    res_lo = np.where(fall_hi > 0, head / fall_hi, np.inf)
    if any_signif:
        leak = signif & (mdot > L.caution_leak_kg_day) & voted(leak_vote, usable, channels, n_h)
        warn = settled & signif & (res < L.warning_reserve_s)
        warn &= voted(warn_vote, usable, channels, n_h)
        crit = settled & signif & (res < L.emergency_reserve_s)
        crit &= voted(crit_vote, usable, channels, n_h)
    else:
        leak = signif.copy()  # all False
        warn = crit = signif
    onset, m_onset = onset_leak(fit, usable, channels, limits)
    leak |= onset
    seen = n_h > 0
    out = []
    for family, rc, cc, val, lim, pers in (
        (
            VolumeFamily.LEAK,
            settled & leak,
            leak_hi < L.caution_leak_kg_day * (1 - h),
            np.where(onset & ~(mdot > m_onset), m_onset, mdot),
            L.caution_leak_kg_day,
            L.caution_persistence_s,
        ),
        (
            VolumeFamily.LOW_RESERVE,
            warn,
            res_lo > L.warning_reserve_s * (1 + h),
            res,
            L.warning_reserve_s,
            L.warning_persistence_s,
        ),
        (
            VolumeFamily.RESERVE_CRITICAL,
            crit,
            res_lo > L.emergency_reserve_s * (1 + h),
            res,
            L.emergency_reserve_s,
            L.emergency_persistence_s,
        ),
    ):
        out.append(VolumeConditions(family, rc, cc & seen & ~rc, val, lim, pers))
    return tuple(out)
