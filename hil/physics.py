"""Gas in a network of volumes joined by hatches, with leaks to vacuum and make-up gas.

State: the air mass of each volume.  Temperature is prescribed (hil.thermal), so
pressure is algebraic, ``P = m R T / V`` (PHYSICS.md).  Over a step of length h,
with coefficients frozen (leaks at the midpoint temperature, hatches at the
end-of-step temperature), every part is solved in closed form, so a 25 mm hole
in 6 m3 and 0.2 kg/day in 900 m3 are both exact at any step:

- orifices: ``mdot = lam m`` with ``lam = Cd A c* / V``; cracks: ``mdot = kap m^2``
  with ``kap = k (R T / V)^2``, solved as ``m = m0 / (1 + kap m0 t)``;
- hatches as linear conductances ``mdot = G (P_a - P_b)`` together with the
  orifices and make-up gas: ``dm/dt = -(M D + L) m + s`` with ``M`` the conductance
  Laplacian, ``D = diag(R T / V)`` and ``L = diag(lam)``; solved exactly with the
  matrix exponential through the symmetric form ``D^1/2 M D^1/2 + L`` (eigh),
  unconditionally stable for the stiff equalisation; the time integral of m comes
  with it, so the mass each orifice passes is exact too, and each connected group
  is corrected so that it keeps its mass to the last bit.

Cracks (the only nonlinear part, and always slow) are split around it:
``C(h/2) H(h) C(h/2)``, each exact.

Mass lost through each leak is booked from the exact per-step loss, so
``sum(m) + leaked - inflowed`` equals the initial mass to rounding.

The step adapts: at most ``max_step_s``, at most 5 % of the fastest leak or
temperature time scale, never across an event, and restarting at 1 ms after each
event (hatch, leak change, temperature step) and growing 1.5x per step so that
transients are resolved for the sensors that sample them.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from common.gas import R_AIR, mass_kg, orifice_rate_coef, pressure_pa
from common.graph import connected_roots
from hil.scenario import Leak, Scenario
from hil.thermal import ThermalModel

FIRST_STEP_S = 1e-3
#: The shortest adaptive step (s); ``hil.scenario`` refuses a shorter ``max_step``.
MIN_STEP_S = 1e-3
STEP_GROWTH = 1.5
STEP_FRACTION = 0.05


def _phis(w: np.ndarray, h: float):
    """exp(-w h), its integral phi1 = (1 - e)/w and phi2 = (h - phi1)/w, safe at w = 0."""
    x = w * h
    e = np.exp(-x)
    small = x < 1e-4
    if not small.any():
        f1 = -np.expm1(-x) / w
        return e, f1, (h - f1) / w
    wsafe = np.where(small, 1.0, w)
    f1 = np.where(small, h * (1 - x / 2 + x * x / 6), -np.expm1(-x) / wsafe)
    f2 = np.where(small, h * h * (0.5 - x / 6 + x * x / 24), (h - f1) / wsafe)
    return e, f1, f2


class LeakSchedule:
    """A leak's parameters over time: steps and linear ramps between changes."""

    def __init__(self, leak: Leak):
        self.leak = leak
        knots = [(leak.onset_s, leak.diameter_mm, leak.cd, leak.k_kg_s_pa2, False)]
        d, cd, k = leak.diameter_mm, leak.cd, leak.k_kg_s_pa2
        for c in leak.changes:
            d = c.diameter_mm if c.diameter_mm is not None else d
            cd = c.cd if c.cd is not None else cd
            k = c.k_kg_s_pa2 if c.k_kg_s_pa2 is not None else k
            knots.append((c.t_s, d, cd, k, c.ramp))
        self.knots = knots
        self.times = [kn[0] for kn in knots]

    def event_times(self) -> list[float]:
        out = list(self.times)
        if math.isfinite(self.leak.end_s):
            out.append(self.leak.end_s)
        return out

    def active(self, t: float) -> bool:
        return self.leak.onset_s <= t < self.leak.end_s

    def params(self, t: float) -> tuple[float, float, float]:
        """(diameter_mm, cd, k) at ``t`` (zeros when inactive)."""
        if not self.active(t):
            return 0.0, 0.0, 0.0
        i = bisect_right(self.times, t) - 1
        _, d, cd, k, _ = self.knots[i]
        if i + 1 < len(self.knots) and self.knots[i + 1][4]:
            t1, d1, cd1, k1, _ = self.knots[i + 1]
            f = (t - self.times[i]) / (t1 - self.times[i]) if t1 > self.times[i] else 1.0
            d, cd, k = d + f * (d1 - d), cd + f * (cd1 - cd), k + f * (k1 - k)
        return d, cd, k


class Network:
    """The volumes' air masses, stepped forward in time; records every step.

    ``probes`` are (volume index, pressure lag s, temperature lag s): first-order
    lagged pressure and temperature, integrated exactly for inputs linear within
    a step, recorded for the sensors to sample.
    """

    def __init__(self, scenario: Scenario, probes: list[tuple[int, float, float]] = ()):
        self.scenario = scenario
        self.thermal = ThermalModel(scenario)
        self.names = [v.name for v in scenario.volumes]
        idx = {n: i for i, n in enumerate(self.names)}
        self.idx = idx
        self.nv = len(self.names)
        self.vol = np.array([v.volume_m3 for v in scenario.volumes])
        self.t = 0.0
        t_k = self.thermal.at(0.0)
        p0 = np.array([v.pressure_pa for v in scenario.volumes])
        self.m = mass_kg(p0, self.vol, t_k)
        self.initial_mass_kg = float(self.m.sum())
        self.hatch_names = [h.name for h in scenario.hatches]
        self.hatch_ends = [
            (idx[h.volume_a], idx[h.volume_b], h.conductance_kg_s_pa) for h in scenario.hatches
        ]
        self.hatch_open = np.array([h.open for h in scenario.hatches], dtype=bool)
        self.leaks = [LeakSchedule(lk) for lk in scenario.leaks]
        self.leak_vol = np.array([idx[lk.volume] for lk in scenario.leaks], dtype=np.int64)
        self.leaked_kg = np.zeros(len(self.leaks))  # per leak, cumulative
        self.inflows = scenario.inflows
        self.inflow_vol = np.array([idx[f.volume] for f in self.inflows], dtype=np.int64)
        self.inflowed_kg = 0.0
        self.max_step_s = scenario.max_step_s
        # events: (t, kind, payload)
        ev: list[tuple[float, int, object]] = []
        for e in scenario.events:
            if e.kind == "hatch":
                ev.append((e.t_s, 0, (self.hatch_names.index(e.target), bool(e.open))))
            else:
                ev.append((e.t_s, 1, None))
        for ls in self.leaks:
            ev.extend((t, 1, None) for t in ls.event_times())
        for f in self.inflows:
            ev.extend([(f.start_s, 1, None), (f.end_s, 1, None)])
        ev.sort(key=lambda x: (x[0], x[1]))
        self.events = ev
        self.event_i = 0
        self.step_cap = FIRST_STEP_S
        self._groups = self._components()
        self.steps = 0
        # probes
        self.probe_vol = np.array([p[0] for p in probes], dtype=np.int64)
        self.probe_tau_p = np.array([max(p[1], 1e-12) for p in probes])
        self.probe_tau_t = np.array([max(p[2], 1e-12) for p in probes])
        p_now = pressure_pa(self.m, t_k, self.vol)
        self.probe_p = p_now[self.probe_vol].copy()
        self.probe_t = t_k[self.probe_vol].copy()
        self._last_p = p_now
        self._last_tk = t_k
        # history rows: t, m, T, P, leak rate per volume, leaked per volume, inflowed, probes
        self.rows: list[np.ndarray] = []
        self._process_events()
        self._record(t_k, p_now)

    # -- layout of a history row
    def columns(self) -> dict[str, slice]:
        nv, npr = self.nv, len(self.probe_vol)
        c, out = 1, {"t": slice(0, 1)}
        for name, n in (
            ("m", nv),
            ("T", nv),
            ("P", nv),
            ("rate", nv),
            ("leaked", nv),
            ("inflowed", 1),
            ("probe_p", npr),
            ("probe_t", npr),
        ):
            out[name] = slice(c, c + n)
            c += n
        return out

    def _components(self) -> list[np.ndarray]:
        edges = [
            (a, b)
            for (a, b, _), is_open in zip(self.hatch_ends, self.hatch_open, strict=True)
            if is_open
        ]
        roots = connected_roots(self.nv, edges)
        groups: dict[int, list[int]] = {}
        for i in range(self.nv):
            groups.setdefault(int(roots[i]), []).append(i)
        out = []
        self._singletons = np.array(
            sorted(m[0] for m in groups.values() if len(m) == 1), dtype=np.int64
        )
        for members in groups.values():
            if len(members) < 2:
                continue
            mem = np.array(members)
            pos = {v: k for k, v in enumerate(members)}
            lap = np.zeros((len(mem), len(mem)))
            for (a, b, g), is_open in zip(self.hatch_ends, self.hatch_open, strict=True):
                if is_open and a in pos:
                    i, j = pos[a], pos[b]
                    lap[i, i] += g
                    lap[j, j] += g
                    lap[i, j] -= g
                    lap[j, i] -= g
            out.append((mem, lap))
        return out

    def _process_events(self) -> None:
        changed = False
        while self.event_i < len(self.events) and self.events[self.event_i][0] <= self.t:
            _, kind, payload = self.events[self.event_i]
            if kind == 0:
                h, is_open = payload
                if self.hatch_open[h] != is_open:
                    self.hatch_open[h] = is_open
                    changed = True
            self.event_i += 1
            self.step_cap = FIRST_STEP_S
        if changed:
            self._groups = self._components()

    def command_hatch(self, name: str, is_open: bool) -> float:
        """Open or close hatch ``name`` now, as a scripted hatch event at the
        network's time would; returns that time (s).  KeyError: no such hatch."""
        h = self.hatch_names.index(name) if name in self.hatch_names else None
        if h is None:
            raise KeyError(name)
        if self.hatch_open[h] != bool(is_open):
            self.hatch_open[h] = bool(is_open)
            self._groups = self._components()
        self.step_cap = FIRST_STEP_S
        return self.t

    def next_event_time(self) -> float:
        return self.events[self.event_i][0] if self.event_i < len(self.events) else math.inf

    def _leak_coefs(self, t: float, t_k: np.ndarray):
        """Per leak (lam, kap) arrays and per volume sums at time t."""
        nl = len(self.leaks)
        lam = np.zeros(nl)
        kap = np.zeros(nl)
        for i, ls in enumerate(self.leaks):
            if not ls.active(t):
                continue
            v = self.leak_vol[i]
            d, cd, k = ls.params(t)
            if ls.leak.kind == "orifice":
                lam[i] = orifice_rate_coef(cd, d, t_k[v], self.vol[v])
            else:
                kap[i] = k * (R_AIR * t_k[v] / self.vol[v]) ** 2
        lam_v = np.bincount(self.leak_vol, lam, self.nv) if nl else np.zeros(self.nv)
        kap_v = np.bincount(self.leak_vol, kap, self.nv) if nl else np.zeros(self.nv)
        return lam, kap, lam_v, kap_v

    def _inflow_rate(self, t: float) -> np.ndarray:
        s = np.zeros(self.nv)
        for f, v in zip(self.inflows, self.inflow_vol, strict=True):
            if f.start_s <= t < f.end_s:
                s[v] += f.kg_s
        return s

    def _crack_half(self, h: float, kap, kap_v) -> None:
        """Cracks alone over h: ``m = m0 / (1 + kap m0 h)``, booked per leak."""
        m0 = self.m
        m1 = m0 / (1 + kap_v * m0 * h)
        loss = m0 - m1
        rates = kap * m0[self.leak_vol] ** 2
        tot = np.bincount(self.leak_vol, rates, self.nv)
        share = np.divide(
            rates, tot[self.leak_vol], out=np.zeros_like(rates), where=tot[self.leak_vol] > 0
        )
        self.leaked_kg += share * loss[self.leak_vol]
        self.m = m1

    def _linear(self, h: float, alpha, lam, lam_v, src) -> None:
        """Hatches, orifices and inflow over h, exact: ``dm/dt = -(M D + L) m + s``.

        In ``y = D^1/2 m`` the matrix is symmetric, ``S = D^1/2 M D^1/2 + L``;
        with ``S = Q W Q^T``, each mode follows ``z' = -w z + b`` in closed form, and
        the time integral of m (for the mass each orifice passes) comes with it.
        """
        m0 = self.m
        m1 = m0.copy()
        mint = np.zeros(self.nv)  # integral of m over the step
        s = src if src is not None else np.zeros(self.nv)
        for mem, lap in self._groups:
            sq = np.sqrt(alpha[mem])
            mat = sq[:, None] * lap * sq[None, :]
            mat.flat[:: len(mem) + 1] += lam_v[mem]
            w, q = np.linalg.eigh(mat)
            w = np.clip(w, 0.0, None)
            e, f1, f2 = _phis(w, h)
            z0 = q.T @ (sq * m0[mem])
            b = q.T @ (sq * s[mem])
            m1[mem] = (q @ (e * z0 + f1 * b)) / sq
            mint[mem] = (q @ (f1 * z0 + f2 * b)) / sq
        one = self._singletons
        if len(one) and (lam_v[one].any() or s[one].any()):
            e, f1, f2 = _phis(lam_v[one], h)
            m1[one] = e * m0[one] + f1 * s[one]
            mint[one] = f1 * m0[one] + f2 * s[one]
        leaked_v = lam_v * mint
        if len(self.leaks):
            share = np.divide(
                lam, lam_v[self.leak_vol], out=np.zeros_like(lam), where=lam_v[self.leak_vol] > 0
            )
            self.leaked_kg += share * leaked_v[self.leak_vol]
        # exact bookkeeping: what is there = what was + what came - what left
        for mem in [g[0] for g in self._groups] + [one]:
            if len(mem) == 0:
                continue
            want = m0[mem].sum() + s[mem].sum() * h - leaked_v[mem].sum()
            got = m1[mem].sum()
            if got > 0:
                m1[mem] *= want / got
        self.m = m1
        if src is not None:
            self.inflowed_kg += float(s.sum() * h)

    def step(self, h: float) -> None:
        t0 = self.t
        tmid = t0 + 0.5 * h
        tk_mid = self.thermal.at(tmid)
        if self.leaks:
            lam, kap, lam_v, kap_v = self._leak_coefs(tmid, tk_mid)
        else:
            lam = kap = np.zeros(0)
            lam_v = kap_v = np.zeros(self.nv)
        src = self._inflow_rate(tmid) if len(self.inflows) else None
        if src is not None and not src.any():
            src = None
        cracks = bool(kap_v.any())
        if cracks:
            self._crack_half(0.5 * h, kap, kap_v)
        # hatches see the end-of-step temperatures: the stiff equalisation then
        # leaves equal pressures at the end of the step, as the real one would
        tk_end = self.thermal.at(t0 + h)
        self._linear(h, R_AIR * tk_end / self.vol, lam, lam_v, src)
        if cracks:
            self._crack_half(0.5 * h, kap, kap_v)
        self.t = t0 + h
        self.steps += 1
        tk = tk_end
        p = pressure_pa(self.m, tk, self.vol)
        # first-order lags, exact for inputs linear over the step
        if len(self.probe_vol):
            x0 = self._last_p[self.probe_vol]
            x1 = p[self.probe_vol]
            e = np.exp(-h / self.probe_tau_p)
            ts = self.probe_tau_p * (x1 - x0) / h
            self.probe_p = x1 - ts + (self.probe_p - x0 + ts) * e
            x0 = self._last_tk[self.probe_vol]
            x1 = tk[self.probe_vol]
            e = np.exp(-h / self.probe_tau_t)
            ts = self.probe_tau_t * (x1 - x0) / h
            self.probe_t = x1 - ts + (self.probe_t - x0 + ts) * e
        self._last_p, self._last_tk = p, tk
        self._process_events()
        self._record(tk, p)

    def _record(self, tk: np.ndarray, p: np.ndarray) -> None:
        if self.leaks:
            lam, kap, lam_v, kap_v = self._leak_coefs(self.t, tk)
            rate = lam_v * self.m + kap_v * self.m**2
            leaked_v = np.bincount(self.leak_vol, self.leaked_kg, self.nv)
        else:
            rate = leaked_v = np.zeros(self.nv)
        self.rows.append(
            np.concatenate(
                (
                    [self.t],
                    self.m,
                    tk,
                    p,
                    rate,
                    leaked_v,
                    [self.inflowed_kg],
                    self.probe_p,
                    self.probe_t,
                )
            )
        )

    def leak_time_scale(self) -> float:
        """Shortest time scale m / mdot of the leaks now (inf without leaks)."""
        if not self.leaks:
            return math.inf
        tk = self._last_tk
        lam, kap, lam_v, kap_v = self._leak_coefs(self.t, tk)
        k = lam_v + kap_v * self.m
        kmax = float(k.max())
        return 1.0 / kmax if kmax > 0 else math.inf

    def next_step(self, limit_t: float = math.inf) -> float:
        """The next step (s): adaptive, but never below ``MIN_STEP_S`` except to
        land on an event or ``limit_t`` (every part is exact at any step; a 1e-300
        m3 volume or a zero time constant would otherwise step forever)."""
        h = min(
            self.max_step_s,
            self.step_cap,
            STEP_FRACTION * self.leak_time_scale(),
            STEP_FRACTION * self.thermal.fastest_tau_s(self.t),
        )
        h = max(h, MIN_STEP_S)
        h = min(h, self.next_event_time() - self.t, limit_t - self.t)
        return max(h, 1e-9)

    def run_until(self, t_end: float) -> None:
        """Step until the network's time is at least ``t_end``."""
        while self.t < t_end:
            h = self.next_step()
            self.step(h)
            self.step_cap = min(self.step_cap * STEP_GROWTH, self.max_step_s)

    def history(self) -> np.ndarray:
        """All recorded rows not yet trimmed, as a 2-D array."""
        return np.array(self.rows)

    def trim(self, t_keep: float) -> None:
        """Forget rows before the last one at or before ``t_keep``."""
        ts = [r[0] for r in self.rows]
        i = bisect_right(ts, t_keep) - 1
        if i > 0:
            del self.rows[:i]

    def total_mass_kg(self) -> float:
        return float(self.m.sum())

    def mass_balance_kg(self) -> float:
        """Current mass + leaked - inflowed - initial mass: zero to rounding."""
        return (
            float(self.m.sum())
            + float(self.leaked_kg.sum())
            - self.inflowed_kg
            - self.initial_mass_kg
        )
