"""Score a simulated run against the emulator's truth.

Used only after a run (``simulate``, the scorecard); the monitor never sees it.

* A leak is detected by the first CAUTION, WARNING or EMERGENCY raised on a
  volume connected to the leaking one (through open hatches, per the truth)
  between its onset and its end.
* Its estimates are compared after they settle: at ``onset + settle_s``, or
  just before the leak or the hatches next change, whichever comes first.
  The true mass rate is the truth's leak flow out of the connected group; the
  true equivalent hole is what the orifice law gives for that flow at the
  monitor's discharge coefficient (the physical diameter for an orifice leak
  with that coefficient).
* A false alarm is a CAUTION, WARNING or EMERGENCY raised where no leak was
  active in the connected group at that time or ``grace_s`` before.
* A sensor fault is reported by the first ADVISORY raised on that sensor at or
  after the fault starts.
"""

from __future__ import annotations

import math

import numpy as np

from common.gas import SECONDS_PER_DAY
from common.gas import equivalent_diameter_mm as equivalent_hole_mm
from common.graph import connected_roots
from firmware_host.alarms import AlarmLevel, Transition


class _Groups:
    """Connected volume groups over time, from the truth's hatch states."""

    def __init__(self, scenario, truth):
        self.names = list(truth.volume_names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.hatches = [(self.index[h.volume_a], self.index[h.volume_b]) for h in scenario.hatches]
        hatch_order = [h.name for h in scenario.hatches]
        col = [list(truth.hatch_names).index(n) for n in hatch_order]
        self.t = np.asarray(truth.t_s)
        self.open = np.asarray(truth.hatch_open)[:, col] if len(col) else None

    def row(self, t_s: float) -> int:
        return max(0, int(np.searchsorted(self.t, t_s, side="right")) - 1)

    def members(self, volume: str, t_s: float) -> set[int]:
        edges = []
        if self.open is not None:
            state = self.open[self.row(t_s)]
            edges = [ab for ab, is_open in zip(self.hatches, state, strict=True) if is_open]
        roots = connected_roots(len(self.names), edges)
        return set(np.flatnonzero(roots == roots[self.index[volume]]).tolist())


def _change_times(scenario, leak) -> list[float]:
    times = [c.t_s for c in leak.changes if c.t_s > leak.onset_s]
    times += [t for t, _, _ in scenario.hatch_events() if t > leak.onset_s]
    times += [e.t_s for e in scenario.events if e.kind != "hatch" and e.t_s > leak.onset_s]
    return times


def score(result, *, settle_s: float = 1800.0, grace_s: float = 60.0) -> dict:
    """The summary object of ``cabinwatch simulate --json`` (see module docstring)."""
    scenario, truth, trace, config = result.scenario, result.truth, result.trace, result.config
    cd = config.estimator.discharge_coefficient
    groups = _Groups(scenario, truth)
    leak_flow = np.asarray(truth.leak_kg_s)
    raised = [e for e in result.events if e.transition == Transition.RAISED]
    alarms = [e for e in raised if e.level >= AlarmLevel.CAUTION]
    vol_names = set(groups.names)

    def leaking(volume: str, t_s: float) -> bool:
        members = list(groups.members(volume, t_s))
        for t in (t_s, t_s - grace_s):
            if leak_flow[groups.row(max(t, 0.0)), members].sum() > 0:
                return True
        return False

    leaks = []
    for leak in scenario.leaks:
        end = min(leak.end_s, result.sim_seconds)
        first = next(
            (
                e
                for e in alarms
                if leak.onset_s <= e.t_s <= end + grace_s
                and e.source in vol_names
                and groups.index[e.source] in groups.members(leak.volume, e.t_s)
            ),
            None,
        )
        stop = min([end, result.sim_seconds, *_change_times(scenario, leak)])
        t_settle = min(leak.onset_s + settle_s, stop - 1.0)
        entry = {
            "name": leak.name,
            "volume": leak.volume,
            "kind": leak.kind,
            "onset_s": leak.onset_s,
            "end_s": _r(leak.end_s),
            "detected_s": None if first is None else round(first.t_s, 3),
            "latency_s": None if first is None else round(first.t_s - leak.onset_s, 3),
            "first_level": None if first is None else first.level.name,
            "settle_s": None,
            "mass_rate_true_kg_day": None,
            "mass_rate_est_kg_day": None,
            "mass_rate_sigma_kg_day": None,
            "mass_rate_error_pct": None,
            "hole_true_mm": None,
            "hole_est_mm": None,
            "hole_error_pct": None,
            "regime_est": None,
        }
        i = trace.at(t_settle) if t_settle > leak.onset_s else None
        if i is not None and leak.volume in trace.volumes:
            row = groups.row(t_settle)
            members = list(groups.members(leak.volume, t_settle))
            mdot = float(leak_flow[row, members].sum())
            v = groups.index[leak.volume]
            p, t_k = float(truth.p_pa[row, v]), float(truth.t_k[row, v])
            j = trace.volumes.index(leak.volume)
            est = trace.mass_rate_kg_day[i][j]
            hole = trace.hole_mm[i][j]
            true_rate = mdot * SECONDS_PER_DAY
            true_hole = equivalent_hole_mm(mdot, p, t_k, cd)
            entry.update(
                settle_s=round(trace.t_s[i], 3),
                mass_rate_true_kg_day=_r(true_rate),
                mass_rate_est_kg_day=_r(est),
                mass_rate_sigma_kg_day=_r(trace.mass_rate_sigma_kg_day[i][j]),
                mass_rate_error_pct=_pct(est, true_rate),
                hole_true_mm=_r(true_hole),
                hole_est_mm=_r(hole),
                hole_error_pct=_pct(hole, true_hole),
                regime_est=trace.regime[i][j],
            )
        leaks.append(entry)

    false_alarms = [
        {
            "t_s": round(e.t_s, 3),
            "source": e.source,
            "level": e.level.name,
            "kind": e.kind.name,
            "value": _r(e.value),
            "limit": _r(e.limit),
        }
        for e in alarms
        if e.source not in vol_names or not leaking(e.source, e.t_s)
    ]

    faults = []
    by_name = {s.name: s for s in scenario.sensors}
    advisories = [e for e in raised if e.level == AlarmLevel.ADVISORY]
    for f in scenario.faults:
        s = by_name.get(f.sensor)
        sid = f"{s.link}:{s.addr}" if s else f.sensor
        if f.start_s >= result.sim_seconds:
            continue
        hit = next((e for e in advisories if e.source == sid and e.t_s >= f.start_s), None)
        faults.append(
            {
                "sensor": sid,
                "kind": f.kind,
                "start_s": f.start_s,
                "advisory_s": None if hit is None else round(hit.t_s, 3),
                "latency_s": None if hit is None else round(hit.t_s - f.start_s, 3),
                "advisory_kind": None if hit is None else hit.kind.name,
            }
        )

    by_level = {lvl.name: 0 for lvl in AlarmLevel}
    for e in raised:
        by_level[e.level.name] += 1
    return {
        "scenario": scenario.name,
        "sim_seconds": result.sim_seconds,
        "leaks": leaks,
        "false_alarms": false_alarms,
        "faults": faults,
        "raised_by_level": by_level,
        "counters": result.counters,
        "loop": result.loop.to_json_dict(),
    }


def _r(x, nd: int = 4):
    if x is None:
        return None
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def _pct(est, true) -> float | None:
    if est is None or true is None or not math.isfinite(est) or not true:
        return None
    return round(100.0 * (est - true) / true, 2)
