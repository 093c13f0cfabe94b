"""Vectorized ring buffer with running least-squares sums over several windows.

A ``Tier`` keeps, for every channel, one slot per period: the mean host time
(s), mean pressure (Pa), mean temperature (deg C) and the number of samples
``n`` in the slot (0 = no valid data).  Each slot is written twice, at ``i``
and ``i + N``, so the last ``m <= N`` slots are always one contiguous
``(m, channels)`` view (``Tier.window``), never a copy.

The windows that live on a tier keep running weighted sums (weight ``n``) of
``t, p, T, t^2, t p, p^2, t T, T^2, p T``, with ``t`` taken from ``t_ref`` and ``p``
and ``T`` from per-channel references ``p_ref``/``temp_ref`` to keep the
squares small.  Temperature compensation happens downstream, per group of
connected volumes (a module's gas temperature is not its neighbour's).  A push adds the new slot and
subtracts the slot that leaves each window; every ``rebase_every`` pushes the
sums are rebuilt exactly from the buffer with fresh references (without it the
rounding error of add/subtract grows without bound: test_ringbuffer_drift).

Each slot's terms (``Tier.contrib``, one ``(NSUM, C)`` row per slot of the
longest window) are computed once, when the slot is pushed, and kept until it
has left every window, so a push computes the terms of one slot, not of
``windows + 1``.  They are the terms a recompute from the buffer would give,
bit for bit, as long as the references do not change; ``rebase`` recomputes
them with the new references, and ``_set_refs`` only changes the references of
channels whose every slot is empty (terms zero either way).

``push_block`` pushes many slots at once with exactly the same floating-point
operations as repeated ``push`` (a sequential ``cumsum``), so long runs can be
tested quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.gas import KELVIN

#: Indices into the sums axis.
S0, ST, SP, STT, STP, SPP, SY, STY, SYY, SPY, SK = range(11)
NSUM = 11
#: (i, j) of v = (1, t, p, T) for each sum S0..SPY: n * v_i * v_j.
_PI = np.array([0, 0, 0, 1, 1, 2, 0, 1, 3, 2])
_PJ = np.array([0, 1, 2, 1, 2, 2, 3, 3, 3, 3])
#: The same pairs as rows of the flattened (4, 4) outer product n v_i v_j.
_PAIRS = _PI * 4 + _PJ


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
    slots.  ``stderr_comp_pa_s`` is the standard error of the slope of the
    channel's own temperature-compensated pressure ``p - (P/T) T`` (``P/T``:
    its window means, T in K): the scatter a thermal swing's curvature leaves
    about a straight pressure line is followed by the temperature and cancels
    there, the two channels' noise does not.  NaN where a window has fewer
    than 3 slots.
    """

    slope_pa_s: np.ndarray
    stderr_pa_s: np.ndarray
    stderr_comp_pa_s: np.ndarray
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
    with np.errstate(divide="ignore", invalid="ignore"):
        return fit_sums_raw(sums, t_ref, p_ref, temp_ref)


def fit_sums_raw(sums: np.ndarray, t_ref, p_ref, temp_ref) -> Fit:
    """``fit_from_sums`` without its ``np.errstate`` (the caller sets it: the monitor
    core does, once per tick).  ``t_ref``, ``p_ref`` and ``temp_ref`` may also be
    one row per window (``(w, 1)``, ``(w, C)``), for windows of several tiers stacked."""
    s0 = sums[:, S0]
    k = sums[:, SK]
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
    # z = p - c T, c = P / T (K) at the window means: centred second moments of z
    c = (pb + p_ref) / (yb + temp_ref + KELVIN)
    szz = (
        sums[:, SPP]
        - sums[:, SP] * pb
        - 2.0 * c * (sums[:, SPY] - sums[:, SP] * yb)
        + c * c * (sums[:, SYY] - sums[:, SY] * yb)
    )
    stz = sxy - c * sxt
    sse_z = np.maximum(szz - stz * stz / sxx, 0.0)
    se_z = np.sqrt(sse_z / dof / sxx)
    span = np.sqrt(12.0 * sxx / s0)
    return Fit(
        slope_pa_s=slope,
        stderr_pa_s=se,
        stderr_comp_pa_s=se_z,
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
        self._refs_complete = False  # ref_set.all(), kept as a bool for the hot path
        # Sum terms of the last ``cache_len`` slots (the longest window): slot h
        # at row h % cache_len.  _leave[r] are the rows of the slots that leave
        # each window when the slot of row r is pushed.
        nw = len(self.window_slots)
        self.cache_len = int(self.window_slots.max()) if nw else 0
        self.contrib = np.zeros((self.cache_len, NSUM, self.n_channels))
        L = max(self.cache_len, 1)
        self._leave = (np.arange(L)[:, None] - self.window_slots[None, :]) % L
        # scratch of push (preallocated: a push allocates nothing)
        self._old = np.zeros((nw, NSUM, self.n_channels))
        self._v = np.ones((4, self.n_channels))  # row 0 stays 1
        self._nv = np.empty((4, self.n_channels))
        self._outer = np.empty((4, 4, self.n_channels))
        self._low_thr: dict[float, np.ndarray] = {}  # pressure_slopes: min_samples -> bounds
        self._make_views()

    #: Attributes that are views of other attributes (rebuilt, not copied or pickled).
    _VIEWS = ("_halves", "_nv_col", "_v_row", "_outer16")

    def _make_views(self) -> None:
        """Views made once for push.  The arrays are only ever changed in place."""
        # (2, length, C): [:, i] is slot i and its copy at i + length, written at once
        self._halves = tuple(
            a.reshape(2, self.length, self.n_channels) for a in (self.t, self.p, self.temp, self.n)
        )
        # broadcast views for the outer product, and its flat (16, C) view
        self._nv_col = self._nv[:, None, :]
        self._v_row = self._v[None, :, :]
        self._outer16 = self._outer.reshape(16, self.n_channels)

    def __getstate__(self) -> dict:
        # copy.deepcopy and pickle copy arrays one by one, which would turn the views
        # into independent arrays: drop them and make them again from the copies
        return {k: v for k, v in self.__dict__.items() if k not in self._VIEWS}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_views()

    # --- storage ---------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes of the slots and of the cached sum terms."""
        return (
            self.t.nbytes + self.p.nbytes + self.temp.nbytes + self.n.nbytes + self.contrib.nbytes
        )

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

    def _contrib_row(self, t, p, temp, n, out: np.ndarray) -> None:
        """``_contrib`` of one slot ``(C,)`` into ``out`` ``(NSUM, C)``, bit for bit.

        Seven numpy calls on preallocated scratch: ``v`` (row 0 is 1), ``n v``,
        the outer product ``(n v_i) v_j`` of all 16 pairs at once, and the 9
        pairs of the sums taken from it (the same products as ``_contrib``).
        """
        v, nv = self._v, self._nv
        np.subtract(t, self.t_ref, out=v[1])
        np.subtract(p, self.p_ref, out=v[2])
        np.subtract(temp, self.temp_ref, out=v[3])
        np.multiply(v, n, out=nv)  # nv[0] = n as float64
        np.multiply(self._nv_col, self._v_row, out=self._outer)
        self._outer16.take(_PAIRS, axis=0, out=out[:SK], mode="clip")
        out[SK] = nv[0] > 0.0  # (faster than np.greater with a float out=)

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
        self._refs_complete = bool(self.ref_set.all())

    def push(self, t_s: np.ndarray, pressure_pa: np.ndarray, temp_c: np.ndarray, n: np.ndarray):
        """Append one slot per channel: mean time (s), pressure (Pa), temperature
        (deg C) and sample count ``n`` (0 = no data; the values are then ignored)."""
        N = self.length
        if not self._refs_complete:
            self._set_refs(t_s, pressure_pa, temp_c, n)
        i = self.head % N
        if self.cache_len:
            # terms of the slots leaving each window, read before row r is reused
            r = self.head % self.cache_len
            old = self._old
            self.contrib.take(self._leave[r], axis=0, out=old, mode="clip")
        t2, p2, temp2, n2 = self._halves
        t2[:, i] = t_s
        p2[:, i] = pressure_pa
        temp2[:, i] = temp_c  # rounded to float32 here; the terms use the stored value
        n2[:, i] = n
        if self.cache_len:
            new = self.contrib[r]
            self._contrib_row(t2[0, i], p2[0, i], temp2[0, i], n2[0, i], new)
            np.subtract(new, old, out=old)  # new - old, then added: as sums += c[0] - c[1:]
            self.sums += old
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
        if not self._refs_complete:
            self._set_refs(t_s[0], pressure_pa[0], temp_c[0], n[0])
        k = self.head + np.arange(b)
        if self.cache_len:
            L = self.cache_len
            # the leaving slots are older than this block (b <= shortest window)
            c_old = self.contrib[(k[None, :] - self.window_slots[:, None]) % L]  # (w, b, NSUM, C)
        pos = k % N
        for arr, rows in ((self.t, t_s), (self.p, pressure_pa), (self.temp, temp_c), (self.n, n)):
            arr[pos] = rows
            arr[pos + N] = rows
        if self.cache_len:
            # terms of the stored (float32-rounded) values, as push computes them
            c_new = self._contrib(self.t[pos], self.p[pos], self.temp[pos], self.n[pos])
            d = c_new[None] - c_old  # (w, b, NSUM, C)
            seq = np.concatenate([self.sums[:, None], d], axis=1)
            self.sums = np.cumsum(seq, axis=1)[:, -1].copy()
            self.contrib[k % L] = c_new
        self.head += b
        self.since_rebase += b
        if self.rebase_every and self.since_rebase >= self.rebase_every:
            self.rebase()

    def exact_sums(self) -> np.ndarray:
        """Sums of every window recomputed from the buffer (current references)."""
        return self._exact()[0]

    def _exact(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(``exact_sums``, the terms of the last ``cache_len`` slots oldest first).

        Each window's sum adds its own slots' rows in order, as a sum over that
        window alone would."""
        out = np.zeros_like(self.sums)
        if not self.head or not self.cache_len:
            return out, None
        L = self.cache_len
        v = self.latest(L)
        c = self._contrib(v.t_s, v.pressure_pa, v.temperature_c, v.n)  # (L, NSUM, C)
        for w, m in enumerate(self.window_slots):
            out[w] = c[L - int(m) :].sum(axis=0)
        return out, c

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
        self.sums, c = self._exact()
        if c is not None:  # the cached terms, with the new references
            L = self.cache_len
            self.contrib[(self.head - L + np.arange(L)) % L] = c

    def clear_channels(self, mask: np.ndarray) -> None:
        """Forget the history of the channels in ``mask`` (after a reboot or reconfiguration)."""
        if not np.any(mask):
            return
        for arr in (self.t, self.p, self.temp, self.n):
            arr[:, mask] = 0
        self.sums[:, :, mask] = 0.0
        self.contrib[:, :, mask] = 0.0
        self.ref_set[mask] = False
        self._refs_complete = False

    def pressure_slopes(
        self, windows: np.ndarray, min_samples: int = 3, noise_var: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Pressure slope and standard error (Pa/s) of the given windows only (fast path),
        and with ``noise_var`` (each channel's per-sample pressure variance, Pa^2) the
        error the noise alone gives the slope, ``sqrt(noise_var / sxx)`` (Pa/s; else None).

        NaN where a window holds fewer than 3 slots or ``min_samples`` samples.
        Arrays ``(len(windows), channels)``.  Runs every tick, so it is written
        for few numpy calls (each costs about a microsecond whatever its
        length) with the operations of the plain formulas in the same order,
        so the same bits: the sums are copied once into a contiguous
        ``(NSUM, windows, C)`` block, sxx and sxy come out of one multiply and
        one subtract on the adjacent sum pairs (ST, SP) and (STT, STP), and the
        remaining steps work in place.
        """
        s = self.sums.take(windows, axis=0).transpose(1, 0, 2).copy()  # (NSUM, w, C)
        s0 = s[S0]
        res = np.empty((2,) + s0.shape)  # slope, stderr
        slope, se = res[0], res[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            tb = s[ST] / s0  # mean time
            d = s[STT : STP + 1] - s[ST : SP + 1] * tb  # [sxx, sxy] = [STT, STP] - tb [ST, SP]
            sxx, sxy = d[0], d[1]
            np.divide(sxy, sxx, out=slope)
            # sse = max(SPP - SP * SP / s0 - slope * sxy, 0)
            sse = s[SP] * s[SP]
            sse /= s0
            np.subtract(s[SPP], sse, out=sse)
            sse -= slope * sxy
            np.maximum(sse, 0.0, out=sse)
            # se = sqrt(sse / (k - 2) / sxx)
            sse /= s[SK] - 2
            sse /= sxx
            np.sqrt(sse, out=se)
            noise_se = None if noise_var is None else np.sqrt(noise_var / sxx)
        # NaN where s0 < min_samples or k < 3 (s[S0::SK] is the pair S0, SK: 0 and NSUM - 1)
        thr = self._low_thr.get(min_samples)
        if thr is None:
            thr = self._low_thr[min_samples] = np.array([[[min_samples]], [[3.0]]], dtype=float)
        low = s[S0::SK] < thr
        np.copyto(res, np.nan, where=low[0] | low[1])
        if noise_se is not None:
            np.copyto(noise_se, np.nan, where=low[0] | low[1])
        return slope, se, noise_se

    def fit(self) -> Fit:
        """Straight-line fit of every window and channel from the running sums."""
        return fit_from_sums(self.sums, self.t_ref, self.p_ref, self.temp_ref)
