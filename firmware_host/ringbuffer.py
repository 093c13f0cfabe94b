"""Vectorized ring buffer with running least-squares sums over several windows.

A ``Tier`` keeps, for every channel, one slot per period: the mean host time
(s), mean pressure (Pa), mean temperature (deg C) and the number of samples
``n`` in the slot (0 = no valid data).  Each slot is written twice, at ``i``
and ``i + N``, so the last ``m <= N`` slots are always one contiguous
``(m, channels)`` view (``Tier.window``), never a copy.

The windows that live on a tier keep running weighted sums (weight ``n``) of
``t, p, T, t^2, t p, p^2, t T, T^2``, with ``t`` taken from ``t_ref`` and ``p``
and ``T`` from per-channel references ``p_ref``/``temp_ref`` to keep the
squares small.  Temperature compensation happens downstream, per group of
connected volumes (a module's gas temperature is not its neighbour's).  A push adds the new slot and
subtracts the slot that leaves each window; every ``rebase_every`` pushes the
sums are rebuilt exactly from the buffer with fresh references (without it the
rounding error of add/subtract grows without bound: test_ringbuffer_drift).

``push_block`` pushes many slots at once with exactly the same floating-point
operations as repeated ``push`` (a sequential ``cumsum``), so long runs can be
tested quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Indices into the sums axis.
S0, ST, SP, STT, STP, SPP, SY, STY, SYY, SK = range(10)
NSUM = 10
#: (i, j) of v = (1, t, p, T) for each sum S0..SYY: n * v_i * v_j.
_PI = np.array([0, 0, 0, 1, 1, 2, 0, 1, 3])
_PJ = np.array([0, 1, 2, 1, 2, 2, 3, 3, 3])
KELVIN = 273.15


@dataclass(frozen=True)
class WindowView:
    """Zero-copy views of a window's slots, oldest first, shape ``(m, channels)``."""

    t_s: np.ndarray
    pressure_pa: np.ndarray
    temperature_c: np.ndarray
    n: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.n > 0


@dataclass(frozen=True)
class Fit:
    """Straight-line fits of every window and channel, arrays ``(windows, channels)``.

    ``slope_pa_s``/``stderr_pa_s`` of pressure, ``slope_temp_k_s``/
    ``stderr_temp_k_s`` of temperature, means at the mean time ``t_mean_s``,
    ``t_span_s`` the equivalent uniform span, ``n`` samples and ``k`` non-empty
    slots.  NaN where a window has fewer than 3 slots.
    """

    slope_pa_s: np.ndarray
    stderr_pa_s: np.ndarray
    slope_temp_k_s: np.ndarray
    stderr_temp_k_s: np.ndarray
    mean_pa: np.ndarray
    mean_temp_c: np.ndarray
    t_mean_s: np.ndarray
    t_span_s: np.ndarray
    n: np.ndarray
    k: np.ndarray


def fit_from_sums(sums: np.ndarray, t_ref: float, p_ref: np.ndarray, temp_ref: np.ndarray) -> Fit:
    """Least-squares slopes and standard errors from running sums ``(w, NSUM, C)``.

    The residual variance has ``k - 2`` degrees of freedom (``k`` non-empty
    slots): a slot holding the mean of ``n`` samples carries weight ``n``, so the
    weighted residual sum estimates the per-sample variance.
    """
    s0 = sums[:, S0]
    k = sums[:, SK]
    with np.errstate(divide="ignore", invalid="ignore"):
        tb = sums[:, ST] / s0
        sxx = sums[:, STT] - sums[:, ST] * tb
        ok = (k >= 3) & (sxx > 0)
        sxx = np.where(ok, sxx, np.nan)
        dof = np.where(ok, k - 2, np.nan)
        pb = sums[:, SP] / s0
        sxy = sums[:, STP] - tb * sums[:, SP]
        slope = sxy / sxx
        sse = np.maximum(sums[:, SPP] - sums[:, SP] * pb - slope * sxy, 0.0)
        se = np.sqrt(sse / dof / sxx)
        yb = sums[:, SY] / s0
        sxt = sums[:, STY] - tb * sums[:, SY]
        slope_y = sxt / sxx
        sse_y = np.maximum(sums[:, SYY] - sums[:, SY] * yb - slope_y * sxt, 0.0)
        se_y = np.sqrt(sse_y / dof / sxx)
        span = np.sqrt(12.0 * sxx / s0)
    return Fit(
        slope_pa_s=slope,
        stderr_pa_s=se,
        slope_temp_k_s=slope_y,
        stderr_temp_k_s=se_y,
        mean_pa=pb + p_ref,
        mean_temp_c=yb + temp_ref,
        t_mean_s=tb + t_ref,
        t_span_s=span,
        n=s0,
        k=k,
    )


class Tier:
    """One resolution of the ring buffer, with the running sums of its windows.

    ``length`` slots per channel; ``window_slots`` the length in slots of each
    window kept on this tier (each <= ``length``); ``t_ref_k`` the reference
    temperature of the compensated pressure; ``rebase_every`` pushes between
    exact recomputes (0 = never, for tests only).
    """

    def __init__(
        self,
        n_channels: int,
        period_s: float,
        length: int,
        window_slots: list[int] | tuple[int, ...] = (),
        t_ref_k: float = 295.15,
        rebase_every: int = 6000,
    ):
        if length < 1 or any(not 3 <= m <= length for m in window_slots):
            raise ValueError("each window needs 3 <= slots <= length")
        self.n_channels = int(n_channels)
        self.period_s = float(period_s)
        self.length = int(length)
        self.window_slots = np.asarray(window_slots, dtype=np.int64)
        self.t_ref_k = float(t_ref_k)
        self.rebase_every = int(rebase_every)
        shape = (2 * self.length, self.n_channels)
        self.t = np.zeros(shape, dtype=np.float64)
        self.p = np.zeros(shape, dtype=np.float64)
        self.temp = np.zeros(shape, dtype=np.float32)
        self.n = np.zeros(shape, dtype=np.float32)
        self.head = 0  # slots pushed so far
        self.sums = np.zeros((len(self.window_slots), NSUM, self.n_channels))
        self.t_ref = 0.0
        self.p_ref = np.zeros(self.n_channels)
        self.temp_ref = np.zeros(self.n_channels)
        self.since_rebase = 0
        self.rebases = 0
        self.ref_set = np.zeros(self.n_channels, dtype=bool)
        rows = (len(self.window_slots) + 1, self.n_channels)
        self._rows = (
            np.zeros(rows),
            np.zeros(rows),
            np.zeros(rows, dtype=np.float32),
            np.zeros(rows, dtype=np.float32),
        )

    # --- storage ---------------------------------------------------------
    @property
    def nbytes(self) -> int:
        return self.t.nbytes + self.p.nbytes + self.temp.nbytes + self.n.nbytes

    def latest(self, m: int) -> WindowView:
        """The last ``m`` slots (oldest first) as zero-copy contiguous views."""
        if not 0 < m <= self.length:
            raise ValueError("0 < m <= length")
        end = (self.head - 1) % self.length + self.length + 1 if self.head else self.length
        sl = slice(end - m, end)
        return WindowView(self.t[sl], self.p[sl], self.temp[sl], self.n[sl])

    def window(self, w: int) -> WindowView:
        """Window ``w`` of this tier as zero-copy views."""
        return self.latest(int(self.window_slots[w]))

    # --- sums ------------------------------------------------------------
    def _contrib(self, t, p, temp, n) -> np.ndarray:
        """Sum terms of slots ``(..., C)`` -> ``(..., NSUM, C)``.

        With v = (1, t', p', T') the terms are n * v_i * v_j for the pairs in
        ``_PAIRS`` (in the order of the sum indices), plus the slot count.
        """
        shape = t.shape[:-1]
        v = np.empty(shape + (4, self.n_channels))
        v[..., 0, :] = 1.0
        np.subtract(t, self.t_ref, out=v[..., 1, :])
        np.subtract(p, self.p_ref, out=v[..., 2, :])
        np.subtract(temp, self.temp_ref, out=v[..., 3, :])
        nv = v * n[..., None, :]
        out = np.empty(shape + (NSUM, self.n_channels))
        np.multiply(nv[..., _PI, :], v[..., _PJ, :], out=out[..., :SK, :])
        np.greater(n, 0, out=out[..., SK, :])
        return out

    def _set_refs(self, t_s, pressure_pa, temp_c, n) -> None:
        """Take the references from the first data of channels that have none yet.

        Safe because such a channel's sums are all zero."""
        new = (n > 0) & ~self.ref_set
        if not new.any():
            return
        if not self.ref_set.any():
            self.t_ref = float(np.max(t_s[new]))
        self.p_ref = np.where(new, pressure_pa, self.p_ref)
        self.temp_ref = np.where(new, temp_c, self.temp_ref)
        self.ref_set |= new

    def push(self, t_s: np.ndarray, pressure_pa: np.ndarray, temp_c: np.ndarray, n: np.ndarray):
        """Append one slot per channel (``n`` = 0 for no data; values then ignored)."""
        N = self.length
        if not self.ref_set.all():
            self._set_refs(t_s, pressure_pa, temp_c, n)
        i = self.head % N
        if len(self.window_slots):
            idx = (self.head - self.window_slots) % N
            bt, bp, bT, bn = self._rows
            bt[0], bp[0], bT[0], bn[0] = t_s, pressure_pa, temp_c, n
            np.take(self.t, idx, axis=0, out=bt[1:])
            np.take(self.p, idx, axis=0, out=bp[1:])
            np.take(self.temp, idx, axis=0, out=bT[1:])
            np.take(self.n, idx, axis=0, out=bn[1:])
            c = self._contrib(bt, bp, bT, bn)
            self.sums += c[0] - c[1:]
        for arr, row in ((self.t, t_s), (self.p, pressure_pa), (self.temp, temp_c), (self.n, n)):
            arr[i] = row
            arr[i + N] = row
        self.head += 1
        self.since_rebase += 1
        if self.rebase_every and self.since_rebase >= self.rebase_every:
            self.rebase()

    def push_block(self, t_s, pressure_pa, temp_c, n) -> None:
        """Append ``B`` slots ``(B, C)``; bit-for-bit the same as ``B`` pushes."""
        B = len(t_s)
        start = 0
        while start < B:
            step = B - start
            if self.rebase_every:
                step = min(step, self.rebase_every - self.since_rebase)
            self._push_chunk(
                t_s[start : start + step],
                pressure_pa[start : start + step],
                temp_c[start : start + step],
                n[start : start + step],
            )
            start += step

    def _push_chunk(self, t_s, pressure_pa, temp_c, n) -> None:
        N = self.length
        b = len(t_s)
        if len(self.window_slots) and b > int(self.window_slots.min()):
            raise ValueError("a block may not be longer than the shortest window")
        if b > N:
            raise ValueError("a block may not be longer than the tier")
        if not self.ref_set.all():
            self._set_refs(t_s[0], pressure_pa[0], temp_c[0], n[0])
        k = self.head + np.arange(b)
        if len(self.window_slots):
            idx = (k[None, :] - self.window_slots[:, None]) % N  # (w, b)
            c_new = self._contrib(t_s, pressure_pa, temp_c, n)  # (b, NSUM, C)
            c_old = self._contrib(self.t[idx], self.p[idx], self.temp[idx], self.n[idx])
            d = c_new[None] - c_old  # (w, b, NSUM, C)
            seq = np.concatenate([self.sums[:, None], d], axis=1)
            self.sums = np.cumsum(seq, axis=1)[:, -1].copy()
        pos = k % N
        for arr, rows in ((self.t, t_s), (self.p, pressure_pa), (self.temp, temp_c), (self.n, n)):
            arr[pos] = rows
            arr[pos + N] = rows
        self.head += b
        self.since_rebase += b
        if self.rebase_every and self.since_rebase >= self.rebase_every:
            self.rebase()

    def exact_sums(self) -> np.ndarray:
        """Sums of every window recomputed from the buffer (current references)."""
        out = np.zeros_like(self.sums)
        for w in range(len(self.window_slots)):
            v = self.window(w) if self.head else None
            if v is None:
                continue
            out[w] = self._contrib(v.t_s, v.pressure_pa, v.temperature_c, v.n).sum(axis=0)
        return out

    def rebase(self) -> None:
        """Move the references to the newest data and rebuild the sums exactly."""
        self.since_rebase = 0
        self.rebases += 1
        if not self.head:
            return
        last = self.latest(1)
        has = last.n[0] > 0
        if np.any(has):
            self.t_ref = float(np.max(last.t_s[0][has]))
        self.p_ref = np.where(has, last.pressure_pa[0], self.p_ref)
        self.temp_ref = np.where(has, last.temperature_c[0].astype(np.float64), self.temp_ref)
        self.sums = self.exact_sums()

    def clear_channels(self, mask: np.ndarray) -> None:
        """Forget the history of the channels in ``mask`` (after a reboot or reconfiguration)."""
        if not np.any(mask):
            return
        for arr in (self.t, self.p, self.temp, self.n):
            arr[:, mask] = 0
        self.sums[:, :, mask] = 0.0
        self.ref_set[mask] = False

    def pressure_slopes(
        self, windows: np.ndarray, min_samples: int = 3
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pressure slope and standard error (Pa/s) of the given windows only (fast path).

        NaN where a window holds fewer than 3 slots or ``min_samples`` samples.
        """
        s = self.sums[windows]
        s0 = s[:, S0]
        with np.errstate(divide="ignore", invalid="ignore"):
            tb = s[:, ST] / s0
            sxx = s[:, STT] - s[:, ST] * tb
            sxy = s[:, STP] - tb * s[:, SP]
            slope = sxy / sxx
            sse = np.maximum(s[:, SPP] - s[:, SP] * s[:, SP] / s0 - slope * sxy, 0.0)
            se = np.sqrt(sse / (s[:, SK] - 2) / sxx)
        bad = (s[:, SK] < 3) | (s0 < min_samples)
        slope[bad] = np.nan
        se[bad] = np.nan
        return slope, se

    def fit(self) -> Fit:
        """Straight-line fit of every window and channel from the running sums."""
        return fit_from_sums(self.sums, self.t_ref, self.p_ref, self.temp_ref)
