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
* A level error (``level_errors``, issue 14) is a CAUTION, WARNING or
  EMERGENCY raised on a volume during a real leak (not a false alarm: a raise
  with no leak in the group stays a false alarm only) whose level the truth
  does not support.  Each raise is judged against the truth of the volume's
  connected group over ``[t - grace_s, t]`` (the most favourable row: a
  monitor's window reaches back, and the false-alarm rule grants the same
  grace), with the group taken at each row:

  - true mass rate ``mdot`` (kg/s): the truth's leak flow out of the group;
  - true mass-equivalent fall rate: ``mdot R T_ref / V_group`` (Pa/min; the
    fall the leak alone makes, temperature-compensated as the monitor's
    compensated slope is, with the monitor's ``t_ref_k``);
  - true reserve: ``(P - p_min) / fall`` (s, the monitor's straight-line
    ``reserve_s_linear``) with P the truth's pressure of the volume.

  LEAK (CAUTION) is justified where the true mass rate is at least
  ``(1 - LEVEL_TOL_REL)`` x ``caution_leak_kg_day``; RAPID_DEPRESS
  (EMERGENCY) where the true fall rate is at least ``(1 - LEVEL_TOL_REL)`` x
  ``emergency_rate_pa_min``; LOW_RESERVE (WARNING) and RESERVE_CRITICAL
  (EMERGENCY) where the true reserve is at most the limit plus
  ``max(LEVEL_TOL_REL x limit, LEVEL_TOL_RESERVE_S)``.  Limits are the
  event's (the active limit set of the run).
"""

from __future__ import annotations

import math

import numpy as np

from common.gas import R_AIR, SECONDS_PER_DAY
from common.gas import equivalent_diameter_mm as equivalent_hole_mm
from common.graph import connected_roots
from firmware_host.alarms import AlarmKind, AlarmLevel, Transition

#: Tolerance of the level judge: a raise is justified where the truth is beyond its
#: limit less this fraction (rates) or plus it (reserves).
LEVEL_TOL_REL = 0.20
#: ... and for the reserve levels at least this much (s) above the limit.
LEVEL_TOL_RESERVE_S = 600.0
#: The volume alarms the level judge checks.
LEVEL_KINDS = (
    AlarmKind.LEAK,
    AlarmKind.LOW_RESERVE,
    AlarmKind.RAPID_DEPRESS,
    AlarmKind.RESERVE_CRITICAL,
)


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
        return self.members_at(volume, self.row(t_s))

    def members_at(self, volume: str, row: int) -> set[int]:
        """The volumes (indices) connected to ``volume`` at truth record ``row``."""
        edges = []
        if self.open is not None:
            state = self.open[row]
            edges = [ab for ab, is_open in zip(self.hatches, state, strict=True) if is_open]
        roots = connected_roots(len(self.names), edges)
        return set(np.flatnonzero(roots == roots[self.index[volume]]).tolist())


def true_levels(
    scenario, truth, volume: str, t0_s: float, t1_s: float, *, t_ref_k: float, p_min_pa: float
) -> dict[str, np.ndarray]:
    """The truth of ``volume``'s connected group at each truth record in ``[t0_s, t1_s]``
    (at least the record at ``t1_s``): ``t_s``, ``mass_rate_kg_day`` (leak flow out of
    the group), ``fall_pa_min`` (the mass-equivalent fall ``mdot R T_ref / V_group``)
    and ``reserve_s`` (``(P - p_min) / fall``, the straight-line reserve)."""
    groups = _Groups(scenario, truth)
    size = {v.name: v.volume_m3 for v in scenario.volumes}
    v_m3 = np.array([size[n] for n in groups.names])
    flow = np.asarray(truth.leak_kg_s)
    p = np.asarray(truth.p_pa)
    r1 = groups.row(t1_s)
    r0 = min(r1, max(0, int(np.searchsorted(groups.t, t0_s, side="left"))))
    rows = np.arange(r0, r1 + 1)
    v = groups.index[volume]
    mdot = np.empty(len(rows))
    vg = np.empty(len(rows))
    cache: dict = {}
    for k, row in enumerate(rows.tolist()):
        key = None if groups.open is None else groups.open[row].tobytes()
        members = cache.get(key)
        if members is None:
            members = cache[key] = sorted(groups.members_at(volume, row))
        mdot[k] = flow[row, members].sum()
        vg[k] = v_m3[members].sum()
    fall = mdot * R_AIR * t_ref_k / vg  # Pa/s
    head = np.maximum(p[rows, v] - p_min_pa, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        reserve = np.where(fall > 0, head / fall, np.inf)
    return {
        "t_s": groups.t[rows],
        "mass_rate_kg_day": mdot * SECONDS_PER_DAY,
        "fall_pa_min": fall * 60.0,
        "reserve_s": reserve,
    }


def level_justified(kind: AlarmKind, true_value: float, limit: float) -> bool:
    """Whether the truth supports a raise of ``kind`` at ``limit`` within the tolerance
    (``true_value``: kg/day for LEAK, Pa/min for RAPID_DEPRESS, s for the reserves)."""
    if kind in (AlarmKind.LOW_RESERVE, AlarmKind.RESERVE_CRITICAL):
        return true_value <= limit + max(LEVEL_TOL_REL * limit, LEVEL_TOL_RESERVE_S)
    return true_value >= limit * (1.0 - LEVEL_TOL_REL)


def level_errors(
    scenario, truth, events, *, t_ref_k: float, p_min_pa: float, grace_s: float = 60.0
) -> list[dict]:
    """Every CAUTION+ volume alarm of ``events`` raised during a real leak whose level
    the truth does not support (module docstring).  Raises with no leak active in
    the group at ``t`` or ``grace_s`` before are false alarms, not judged here."""
    if truth is None or not len(truth.t_s):
        return []
    names = set(truth.volume_names)
    out = []
    for e in events:
        if (
            e.transition != Transition.RAISED
            or e.level < AlarmLevel.CAUTION
            or e.kind not in LEVEL_KINDS
            or e.source not in names
        ):
            continue
        tv = true_levels(
            scenario, truth, e.source, e.t_s - grace_s, e.t_s, t_ref_k=t_ref_k, p_min_pa=p_min_pa
        )
        if not (tv["mass_rate_kg_day"] > 0).any():
            continue  # no leak in the group: a false alarm (``false_alarms``)
        if e.kind == AlarmKind.LEAK:
            true = float(tv["mass_rate_kg_day"].max())
        elif e.kind == AlarmKind.RAPID_DEPRESS:
            true = float(tv["fall_pa_min"].max())
        else:
            true = float(tv["reserve_s"].min())
        if level_justified(e.kind, true, e.limit):
            continue
        out.append(
            {
                "t_s": round(e.t_s, 3),
                "volume": e.source,
                "level": e.level.name,
                "kind": e.kind.name,
                "monitor_value": _r(e.value),
                "true_value": _r(true),
                "limit": _r(e.limit),
                "unit": e.unit,
            }
        )
    return out


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

    errors = level_errors(
        scenario,
        truth,
        [e for e in alarms if e.source in vol_names and leaking(e.source, e.t_s)],
        t_ref_k=config.t_ref_k,
        p_min_pa=config.p_min_pa,
        grace_s=grace_s,
    )

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
        "level_errors": errors,
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
