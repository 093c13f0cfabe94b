"""Ring buffer and running least-squares sums: closed forms, polyfit, long runs, views."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from firmware_host.ringbuffer import SK, Tier, fit_from_sums


def _push_all(tier: Tier, t, p, temp, n):
    for i in range(len(t)):
        tier.push(t[i], p[i], temp[i], n[i])


def _window_polyfit(t, y, m):
    """Slope and standard error of y on t over the last m rows, per column."""
    out, se = [], []
    for c in range(t.shape[1]):
        tt, yy = t[-m:, c], y[-m:, c]
        coef, cov = np.polyfit(tt - tt.mean(), yy, 1, cov=True)
        out.append(coef[0])
        se.append(np.sqrt(cov[0, 0]))
    return np.array(out), np.array(se)


def test_slope_of_exact_line_is_exact():
    C, N = 3, 50
    tier = Tier(C, 0.1, 100, [10, 50], rebase_every=0)
    t = 1000.0 + 0.1 * np.arange(N)[:, None] * np.ones(C)
    slopes = np.array([-2.5, 0.0, 0.031])
    p = 101325.0 + slopes * (t - 1000.0)
    temp = 20.0 + 0.001 * (t - 1000.0)
    _push_all(tier, t, p, temp.astype(np.float32), np.ones((N, C), dtype=np.float32))
    fit = tier.fit()
    np.testing.assert_allclose(fit.slope_pa_s, np.vstack([slopes, slopes]), atol=1e-9)
    np.testing.assert_allclose(fit.stderr_pa_s, 0.0, atol=1e-6)
    np.testing.assert_allclose(fit.slope_temp_k_s, 0.001, atol=1e-5)
    # closed form: the window of 10 slots is 0.9 s long, mean time at its middle
    np.testing.assert_allclose(fit.t_mean_s[0], t[-1] - 0.45)


def test_slopes_and_errors_match_polyfit_on_random_data():
    rng = np.random.default_rng(4)
    C, N = 5, 700
    tier = Tier(C, 0.1, 600, [37, 200, 600], rebase_every=0)
    t = np.cumsum(rng.uniform(0.05, 0.15, (N, C)), axis=0) + 5e5
    p = 1e5 + rng.normal(0, 1, C) * (t - t[0]) + rng.normal(0, 3.0, (N, C))
    temp = (22 + rng.normal(0, 0.05, (N, C))).astype(np.float32)
    _push_all(tier, t, p, temp, np.ones((N, C), dtype=np.float32))
    fit = tier.fit()
    for w, m in enumerate([37, 200, 600]):
        s, se = _window_polyfit(t, p, m)
        np.testing.assert_allclose(fit.slope_pa_s[w], s, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fit.stderr_pa_s[w], se, rtol=1e-6)


def test_compensated_error_is_the_polyfit_error_of_p_minus_p_over_t_times_t():
    """``stderr_comp_pa_s``: the error of a straight line through the channel's own
    compensated pressure p - (P/T) T, P/T at the window's means (T in K), against
    np.polyfit; a thermal swing's curvature, common to both, does not inflate it."""
    rng = np.random.default_rng(7)
    C, N = 3, 1800
    tier = Tier(C, 1.0, 1800, [60, 600, 1800], rebase_every=0)
    t = 2e4 + np.arange(N, dtype=float)[:, None] * np.ones(C)
    temp_k = 295.15 + 0.8 * np.sin(2 * np.pi * t / 5520.0 + np.array([0.3, 1.2, 2.5]))
    temp_k += rng.normal(0, 0.02, (N, C))
    temp = (temp_k - 273.15).astype(np.float32)
    temp_k = temp.astype(np.float64) + 273.15  # what the tier stores
    p = 101325.0 * temp_k / 295.15 - 0.002 * (t - t[0]) + rng.normal(0, 2.0, (N, C))
    _push_all(tier, t, p, temp, np.ones((N, C), dtype=np.float32))
    fit = tier.fit()
    for w, m in enumerate([60, 600, 1800]):
        c = p[-m:].mean(axis=0) / temp_k[-m:].mean(axis=0)
        _, se_z = _window_polyfit(t, p - c * temp_k, m)
        np.testing.assert_allclose(fit.stderr_comp_pa_s[w], se_z, rtol=1e-5)
        _, se_p = _window_polyfit(t, p, m)
        if m == 1800:  # the raw pressure's error carries the swing's curvature
            assert (fit.stderr_pa_s[w] > 5 * fit.stderr_comp_pa_s[w]).all()
            np.testing.assert_allclose(fit.stderr_pa_s[w], se_p, rtol=1e-6)


def test_weighted_slots_equal_per_sample_fit():
    """A slot holding the mean of n samples counts n times (what decimation relies on)."""
    rng = np.random.default_rng(1)
    tier = Tier(1, 1.0, 100, [50], rebase_every=0)
    t = np.arange(50.0)
    n = rng.integers(1, 5, 50).astype(np.float32)
    p = 1000 + 0.7 * t + rng.normal(0, 1, 50)
    _push_all(tier, t[:, None], p[:, None], np.zeros((50, 1), np.float32), n[:, None])
    fit = tier.fit()
    ref = np.polyfit(np.repeat(t, n.astype(int)), np.repeat(p, n.astype(int)), 1)[0]
    assert fit.slope_pa_s[0, 0] == pytest.approx(ref, rel=1e-10)


def test_empty_slots_are_ignored_and_short_windows_are_nan():
    tier = Tier(2, 1.0, 20, [10], rebase_every=0)
    for i in range(10):
        n = np.array([1.0, 1.0 if i < 2 else 0.0], dtype=np.float32)
        tier.push(np.array([i, i], float), np.array([2.0 * i, 5.0]), np.zeros(2, np.float32), n)
    fit = tier.fit()
    assert fit.slope_pa_s[0, 0] == pytest.approx(2.0)
    assert np.isnan(fit.slope_pa_s[0, 1])  # only 2 slots with data


def test_window_views_are_zero_copy_contiguous_and_ordered():
    tier = Tier(4, 1.0, 8, [5], rebase_every=0)
    for i in range(13):  # wraps around
        tier.push(
            np.full(4, float(i)),
            np.full(4, 10.0 * i),
            np.zeros(4, np.float32),
            np.ones(4, np.float32),
        )
    v = tier.window(0)
    assert v.t_s.base is tier.t and v.pressure_pa.base is tier.p
    assert v.t_s.flags["C_CONTIGUOUS"] and v.pressure_pa.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(v.t_s[:, 0], [8, 9, 10, 11, 12])
    np.testing.assert_array_equal(tier.latest(8).t_s[:, 2], np.arange(5, 13))


def test_push_block_is_bitwise_equal_to_pushes():
    rng = np.random.default_rng(7)
    C, N = 3, 450
    t = 1e6 + 0.1 * np.arange(N)[:, None] + rng.normal(0, 1e-3, (N, C))
    p = 9e4 + rng.normal(0, 3, (N, C))
    temp = rng.normal(21, 0.1, (N, C)).astype(np.float32)
    n = np.ones((N, C), np.float32)
    a = Tier(C, 0.1, 120, [30, 120], rebase_every=97)
    b = Tier(C, 0.1, 120, [30, 120], rebase_every=97)
    _push_all(a, t, p, temp, n)
    for i in range(0, N, 30):
        b.push_block(t[i : i + 30], p[i : i + 30], temp[i : i + 30], n[i : i + 30])
    assert np.array_equal(a.sums, b.sums)
    assert np.array_equal(a.t, b.t) and a.rebases == b.rebases


def _million_ticks(rebase_every: int):
    """10^6 slots of a slowly falling noisy pressure, pushed in blocks."""
    rng = np.random.default_rng(11)
    C, B, total = 2, 1000, 1_000_000
    tier = Tier(C, 0.1, 3000, [1000, 3000], rebase_every=rebase_every)
    slope = np.array([-0.02, 0.003])
    t0 = 3.0e6  # host clock days after boot
    for k in range(0, total, B):
        tt = t0 + 0.1 * (k + np.arange(B))[:, None] + np.zeros(C)
        p = 1.0e5 + slope * (tt - t0) + rng.normal(0, 3.0, (B, C))
        tier.push_block(tt, p, np.full((B, C), 22.0, np.float32), np.ones((B, C), np.float32))
    return tier


@pytest.fixture(scope="module")
def million():
    return _million_ticks(rebase_every=6000), _million_ticks(rebase_every=0)


@pytest.mark.slow
def test_slopes_after_a_million_ticks_match_polyfit_with_rebase(million):
    tier = million[0]
    fit = tier.fit()
    for w in range(2):
        v = tier.window(w)
        s, se = _window_polyfit(v.t_s, v.pressure_pa, len(v.t_s))
        # error far below the slope's own noise
        assert np.all(np.abs(fit.slope_pa_s[w] - s) < 1e-6 * se)
        np.testing.assert_allclose(fit.stderr_pa_s[w], se, rtol=1e-6)


@pytest.mark.slow
def test_without_rebase_running_sums_drift(million):
    """Measured: without the exact recompute the error is many orders larger."""
    good, bad = million
    err_good = np.abs(good.fit().slope_pa_s - fit_exact(good)).max()
    err_bad = np.abs(bad.fit().slope_pa_s - fit_exact(bad)).max()
    assert err_bad > 100 * max(err_good, 1e-15)


def fit_exact(tier: Tier) -> np.ndarray:
    return fit_from_sums(tier.exact_sums(), tier.t_ref, tier.p_ref, tier.temp_ref).slope_pa_s


def test_clear_channels_forgets_history():
    tier = Tier(2, 1.0, 20, [10], rebase_every=0)
    for i in range(10):
        tier.push(
            np.full(2, float(i)),
            np.array([i * 3.0, i * 1.0]),
            np.zeros(2, np.float32),
            np.ones(2, np.float32),
        )
    tier.clear_channels(np.array([True, False]))
    for i in range(10, 15):
        tier.push(
            np.full(2, float(i)),
            np.array([500 - i, i * 1.0]),
            np.zeros(2, np.float32),
            np.ones(2, np.float32),
        )
    fit = tier.fit()
    assert fit.slope_pa_s[0, 0] == pytest.approx(-1.0)  # only data after the clear
    assert fit.n[0, 0] == 5
    assert fit.slope_pa_s[0, 1] == pytest.approx(1.0)


def _random_history(seed: int, pushes: int = 400):
    """A tier after pushes with empty slots, a window as long as the tier, a clear and
    a rebase; yields it after every step."""
    rng = np.random.default_rng(seed)
    C = 4
    tier = Tier(C, 0.1, 50, [7, 20, 50], rebase_every=173)
    for k in range(pushes):
        n = rng.integers(0, 3, C).astype(np.float32) * (rng.random(C) < 0.9)
        t = np.where(n > 0, 3e5 + 0.1 * k + rng.normal(0, 0.01, C), 0.0)
        p = np.where(n > 0, 1e5 - 0.3 * k + rng.normal(0, 40, C), 0.0)
        temp = np.where(n > 0, 22 + rng.normal(0, 1, C), 0.0)
        tier.push(t, p, temp, n)
        if k == 150:
            tier.clear_channels(np.array([True, False, True, False]))
        if k == 290:
            tier.rebase()
        yield tier


def test_cached_terms_equal_terms_recomputed_from_the_buffer():
    """Each slot's terms are kept from its push; they must be what the buffer gives now."""
    for tier in _random_history(3):
        L = tier.cache_len
        v = tier.latest(L)
        ref = tier._contrib(v.t_s, v.pressure_pa, v.temperature_c, v.n)  # oldest first
        rows = (tier.head - L + np.arange(L)) % L
        assert np.array_equal(tier.contrib[rows], ref)


def _plain_pressure_slopes(sums, windows, min_samples):
    """The formulas of pressure_slopes written out plainly (the reference)."""
    s = sums[windows]
    s0 = s[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        tb = s[:, 1] / s0
        sxx = s[:, 3] - s[:, 1] * tb
        sxy = s[:, 4] - tb * s[:, 2]
        slope = sxy / sxx
        sse = np.maximum(s[:, 5] - s[:, 2] * s[:, 2] / s0 - slope * sxy, 0.0)
        se = np.sqrt(sse / (s[:, SK] - 2) / sxx)
    bad = (s[:, SK] < 3) | (s0 < min_samples)
    slope[bad] = np.nan
    se[bad] = np.nan
    return slope, se


def test_pressure_slopes_equal_the_plain_formulas_bit_for_bit():
    for tier in _random_history(5):
        for windows, min_samples in ((np.array([0, 1, 2]), 3), (np.array([2, 0]), 12)):
            slope, se, _ = tier.pressure_slopes(windows, min_samples)
            ref_slope, ref_se = _plain_pressure_slopes(tier.sums, windows, min_samples)
            assert np.array_equal(slope, ref_slope, equal_nan=True)
            assert np.array_equal(se, ref_se, equal_nan=True)


def test_pressure_slopes_noise_error_is_the_noise_over_the_time_spread():
    """The third array: sqrt(noise_var / sxx), sxx the sample-weighted spread of the
    slots' times about their mean (NaN where the window is too thin)."""
    for k, tier in enumerate(_random_history(3)):
        if k % 37:
            continue
        windows = np.array([0, 1, 2])
        nv = np.linspace(1.0, 9.0, tier.n_channels)
        slope, se, noise_se = tier.pressure_slopes(windows, 3, nv)
        assert noise_se is not None and noise_se.shape == slope.shape
        for i, w in enumerate(windows):
            m = int(tier.window_slots[w])
            view = tier.latest(m)
            for c in range(tier.n_channels):
                n = view.n[:, c].astype(float)
                if np.isnan(slope[i, c]):
                    assert np.isnan(noise_se[i, c])
                    continue
                t = view.t_s[:, c]
                tb = (n * t).sum() / n.sum()
                sxx = (n * (t - tb) ** 2).sum()
                assert noise_se[i, c] == pytest.approx(np.sqrt(nv[c] / sxx), rel=1e-5)
        assert tier.pressure_slopes(windows, 3)[2] is None


def test_running_sums_equal_exact_sums_right_after_a_rebase_and_stay_close():
    for tier in _random_history(8):
        if tier.since_rebase == 0:
            assert np.array_equal(tier.sums, tier.exact_sums())
        np.testing.assert_allclose(tier.sums, tier.exact_sums(), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_tier_pushes_into_its_own_arrays(how):
    """push writes through views made once; a copy must make its own (copy.deepcopy of a
    core is used by the runtime tests)."""
    rng = np.random.default_rng(2)
    C = 3
    a = Tier(C, 1.0, 12, [4, 12], rebase_every=0)

    def push(tier, k):
        tier.push(
            np.full(C, float(k)),
            1e5 + rng.normal(0, 1, C),
            np.full(C, 20.0, np.float32),
            np.ones(C, np.float32),
        )

    for k in range(7):
        push(a, k)
    b = copy.deepcopy(a) if how == "deepcopy" else pickle.loads(pickle.dumps(a))
    state = rng.bit_generator.state
    for k in range(7, 30):
        push(a, k)
    rng.bit_generator.state = state
    for k in range(7, 30):
        push(b, k)
    assert np.array_equal(a.t, b.t) and np.array_equal(a.p, b.p)
    assert np.array_equal(a.sums, b.sums)
    np.testing.assert_allclose(b.sums, b.exact_sums(), rtol=1e-12, atol=1e-9)
    assert b.latest(1).t_s[0, 0] == 29.0
