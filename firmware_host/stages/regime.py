"""Flow regime: orifice or crack, told from the curvature of the compensated decay.

For dP/dt = -a P^n, n = P P'' / P'^2: 1 for an orifice (exponential decay), 2
for a crack (1/P linear in time).  Every closed minute, a parabola is fitted to
each healthy sensor's 1-min history since its volume's group last changed; a
volume is decided once it has decayed by ``regime_min_decay`` and the exponent's
standard error is at most ``regime_max_sigma``.  A sensor whose compensated
pressure spans less than a tenth of that decay is not fitted.
"""

from __future__ import annotations

import enum

import numpy as np

from common.gas import KELVIN
from firmware_host.config import MonitorConfig
from firmware_host.stages.topology import Channels

#: A sensor's fit is skipped when its compensated pressure spans less than
#: ``regime_min_decay / _RANGE_MARGIN`` of its level: a parabola fitted to data
#: within that range moves by far less than the decay asked for between the span's
#: ends, so no decision can come of it (and a leak-free sensor costs no fit).
_RANGE_MARGIN = 10.0


class Regime(enum.Enum):
    """Flow regime of a leak, told from the shape of the decay."""

    UNKNOWN = "unknown"
    ORIFICE = "orifice"  # dP/dt ~ -P (exponential decay)
    CRACK = "crack"  # dP/dt ~ -P^2 (1/P linear in time)


class RegimeTracker:
    """Each volume's regime (``regime``) and fitted exponent (``exponent``, NaN: none)."""

    def __init__(self, config: MonitorConfig, channels: Channels):
        self.config = config
        self.channels = channels
        V = channels.n_volumes
        self.regime = [Regime.UNKNOWN] * V
        self.exponent = np.full(V, np.nan)

    def update(self, view, usable: np.ndarray, changed_t: np.ndarray) -> None:
        """Refit from ``view`` (the 60-s tier's ``WindowView``, or None), with the
        ``usable`` sensors and when each volume's group last changed (s)."""
        est = self.config.estimator
        lag = max(0.0, est.temp_lag_s - est.pressure_lag_s)
        if view is None:
            return
        ch_vol = self.channels.volume_of
        for v in range(self.channels.n_volumes):
            chs = np.flatnonzero((ch_vol == v) & usable)
            since = changed_t[v] + est.hatch_settle_s
            ests = []
            for c in chs:
                nn = view.n[:, c].astype(float)
                t = view.t_s[:, c]
                ok = (nn > 0) & (t > since)
                if ok.sum() < 10:
                    continue
                t = t[ok]
                # the gas temperature leads the sensor's reading by the lag difference
                temp = view.temperature_c[ok, c].astype(float)
                temp = np.interp(t + lag, t, temp)
                q = view.pressure_pa[ok, c] * (self.config.t_ref_k / (temp + KELVIN))
                q_lo = q.min()
                if (q.max() - q_lo) * _RANGE_MARGIN < est.regime_min_decay * q_lo:
                    continue  # it has not decayed (a leak-free sensor: most of them)
                tau = t - 0.5 * (t[0] + t[-1])  # at mid-span the cubic term leaks least
                try:
                    coef, cov = np.polyfit(tau, q, 2, w=np.sqrt(nn[ok]), cov=True)
                except (np.linalg.LinAlgError, ValueError):
                    continue
                c2, b, a = coef
                if not (b < 0 and a > 0):
                    continue
                fit0 = a + b * tau[0] + c2 * tau[0] ** 2
                fit1 = a + b * tau[-1] + c2 * tau[-1] ** 2
                drop = (fit0 - fit1) / fit0
                if drop < est.regime_min_decay:
                    continue
                n_exp = 2 * a * c2 / b**2
                g = np.array([2 * a / b**2, -4 * a * c2 / b**3, 2 * c2 / b**2])
                # residuals that follow each other (thermal residue) carry less
                # information than white noise: inflate by (1 + rho) / (1 - rho)
                r = q - np.polyval(coef, tau)
                rho = float(np.dot(r[:-1], r[1:]) / max(np.dot(r, r), 1e-300))
                rho = min(max(rho, 0.0), 0.95)
                var = float(g @ cov @ g) * (1 + rho) / (1 - rho)
                if var > 0:
                    ests.append((n_exp, var))
            if not ests:
                continue
            wts = np.array([1 / e[1] for e in ests])
            n_hat = float(np.sum(wts * np.array([e[0] for e in ests])) / wts.sum())
            sig = float(1 / np.sqrt(wts.sum()))
            self.exponent[v] = n_hat
            if sig <= est.regime_max_sigma:
                self.regime[v] = Regime.ORIFICE if n_hat < 1.5 else Regime.CRACK
