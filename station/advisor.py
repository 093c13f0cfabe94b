"""The isolation advisor: which volume leaks, and which hatch to close next.

It keeps a probability over the volumes (one leak at a time), proposes the
closure that best halves it under the crews' rules, holds each closure until
both sides are decided (``station.holdtime``), updates from the two sides'
mass rates and says when one volume is located, with the evidence.  It only
advises: a pure function of its inputs and its own state (no clock, no I/O).

Model (docs/advisor.md): hypothesis "the leak is in volume v".  A decision
looks at the segments that hold candidates, each with a mass rate m_j and
sigma s_j (kg/day); under "v", v's segment carries the leak L and the others
none::

    P(data | v) = N(m_seg(v); L0, s^2 + sL^2) * prod_{j != seg(v)} N(m_j; 0, s_j^2)

with L0 the station's total leak rate when it was last measured and sL its
sigma widened by ``L_REL`` (a leak rate drifts as the pressure falls and the
fusion of a segment is not perfect).  The prior is uniform over the volumes
(or given): leaks come from holes, seals and valves, not from volume, and the
known ones were in small volumes (a Soyuz orbital module, the PrK tunnel).

Rules of a closure (STATION_NOTES.md): escape vehicles first; the crew keeps an
open path to an escape vehicle (escape-vehicle checks excepted, their hatch
reopenable); every side has a live sensor; a leaf that opens into one side is
not closed when the other side may leak enough within the hold to leave more
than ``max_open_dp_pa`` across it; no side is let fall below the minimum
pressure; and the whole remaining plan fits in the reserve.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from common.gas import SECONDS_PER_DAY, fall_rate_pa_s, mass_kg
from common.station_wire import AssessmentMsg
from station.graph import StationGraph
from station.holdtime import HoldModel
from station.segment import SegmentEstimate  # its input, one per segment

#: A leak is seen when the station's total mass rate passes the caution level
#: by this many sigmas.
K_DETECT = 3.0
#: A side leaks "significantly" (two-leak check) above this many sigmas ...
K_SIGNIFICANT = 4.0
#: ... and above this fraction of the caution level (kg/day / kg/day).
SIGNIFICANT_FRACTION = 0.5
#: Probability at which one volume is located.
P_LOCATE = 0.99
#: Volumes below this probability are no longer candidates.
P_CANDIDATE = 1e-3
#: A decision is taken once the most likely side holds this much probability ...
P_SIDE = 0.99
#: A side that should be quiet but shows this many sigmas, or a leaking side
#: that shows fewer, makes the decision wait for the boards' next longer window.
K_QUIET = 2.0
#: Relative uncertainty allowed on the leak rate between two measurements.
L_REL = 0.3
#: Relative drift of the leak rate allowed between two decisions.
L_DRIFT = 0.1
#: Default time for a crew to close or open a hatch (s).
ACTION_S = 60.0
#: Default station pressure when no segment reports one (Pa).
NOMINAL_PA = 101325.0


class AdvisorState(enum.Enum):
    NOMINAL = "nominal"  # no leak in the station
    SUSPECT = "suspect"  # a leak is seen; choosing the next closure
    HOLDING = "holding"  # the proposed hatch is closed; waiting for its hold time to decide
    LOCATED = "located"  # one volume decided (the evidence says which)
    UNRESOLVED = "unresolved"  # cannot go on (no admissible closure, reserve too short, ...)


@dataclass(frozen=True)
class Proposal:
    hatch: str
    close: bool  # True: close it; False: reopen it
    hold_s: float  # how long to hold before deciding (s), from the detection floor of each side
    reason: str  # one line in words


def _side(volumes, m, s) -> dict:
    return {
        "volumes": sorted(volumes),
        "mass_rate_kg_day": None if m is None else float(m),
        "sigma_kg_day": None if s is None else float(s),
    }


def _fmt_side(d: dict) -> str:
    m, s = d["mass_rate_kg_day"], d["sigma_kg_day"]
    rate = "?" if m is None else f"{m:.2f}" + ("" if s is None else f"±{s:.2f}")
    return "{" + ",".join(d["volumes"]) + "} " + rate + " kg/day"


@dataclass(frozen=True)
class Assessment:
    t_s: float
    state: AdvisorState
    leaking: bool
    probabilities: dict[str, float]  # per volume, sums to 1 over candidates ({} when NOMINAL)
    proposal: Proposal | None
    located: str | None
    evidence: tuple[dict, ...]  # per side: {"volumes": [...], "mass_rate_kg_day", "sigma_kg_day"}
    message: str  # one line, first word the state

    def to_msg(self, station: str, t_unix: float) -> AssessmentMsg:
        """The wire message for ``station/assessment`` (station_wire schema 1)."""
        return AssessmentMsg(
            station=station,
            t_unix=float(t_unix),
            leaking=self.leaking,
            probabilities={k: float(v) for k, v in self.probabilities.items()},
            proposal=None if self.proposal is None else asdict(self.proposal),
            located=self.located,
            evidence=[dict(e) for e in self.evidence],
            message=self.message,
        )


@dataclass(frozen=True)
class Option:
    """One admissible action in a hatch configuration."""

    hatch: str
    close: bool
    hold_s: float
    balance: float  # probability of the less likely side (0.5 at best)
    reason: str


@dataclass(frozen=True)
class PlanOutcome:
    """The advisor's own plan followed to the end for one leaking volume."""

    truth: str
    located: str | None
    closures: int
    actions: int
    planned_s: float  # holds plus crew actions (s)
    steps: tuple[str, ...] = field(default=())


class IsolationAdvisor:
    """Keeps the leak's location probability and proposes the next hatch action.

    ``caution_kg_day``: the station's leak threshold; ``crew_volume``: where the
    crew is (None: anywhere; then every escape vehicle stays joined to a
    habitable volume); ``min_pressure_pa``: the reserve limit.  Optional:
    ``prior`` weights per volume (default uniform), ``hold`` the detection floor
    model, ``action_s`` the crew's time per hatch action (s).
    """

    def __init__(
        self,
        graph: StationGraph,
        *,
        caution_kg_day: float,
        crew_volume: str | None = None,
        min_pressure_pa: float = 0.0,
        prior: Mapping[str, float] | None = None,
        hold: HoldModel | None = None,
        action_s: float = ACTION_S,
    ):
        if crew_volume is not None and crew_volume not in graph.volumes:
            raise ValueError(f"crew_volume {crew_volume!r} is not a volume of the station")
        if not caution_kg_day > 0:
            raise ValueError("caution_kg_day must be > 0")
        self.graph = graph
        self.caution_kg_day = float(caution_kg_day)
        self.crew_volume = crew_volume
        self.min_pressure_pa = float(min_pressure_pa)
        self.hold = hold or HoldModel()
        self.action_s = float(action_s)
        weights = {v: 1.0 for v in graph.volumes} if prior is None else dict(prior)
        if set(weights) != set(graph.volumes) or not all(w > 0 for w in weights.values()):
            raise ValueError("prior: a positive weight for every volume")
        self._log_prior = {v: math.log(w) for v, w in weights.items()}
        self._ev = frozenset(graph.escape_vehicles)
        self.reset()

    # -- state -------------------------------------------------------------

    def reset(self) -> None:
        """Start over (the crew or operator decides to)."""
        self._hunting = False
        self._log_post = dict(self._log_prior)
        self._leak_kg_day = 0.0
        self._leak_sigma = 0.0
        self._live = {v: vol.sensors for v, vol in self.graph.volumes.items()}
        self._last_decision_t = -math.inf
        self._extended_from: float | None = None
        self._decisions = 0
        self._evidence: tuple[dict, ...] = ()
        self._located: str | None = None
        self._stuck: str | None = None  # sticky UNRESOLVED reason (two leaks, leak gone)
        self._proposed: Proposal | None = None
        self._hunt_t0 = 0.0
        self._n_closures = 0
        self._prev_open: dict[str, bool] = {}
        self._plan_cache: dict = {}

    # -- public ------------------------------------------------------------

    def probabilities(self) -> dict[str, float]:
        """The posterior over volumes (sums to 1)."""
        top = max(self._log_post.values())
        w = {v: math.exp(lp - top) for v, lp in self._log_post.items()}
        total = sum(w.values())
        return {v: x / total for v, x in w.items()}

    def update(
        self,
        now_s: float,
        hatches: Mapping[str, bool | None],
        segments: Sequence[SegmentEstimate],
        *,
        sensors: Mapping[str, int] | None = None,
    ) -> Assessment:
        """The assessment at station time ``now_s`` (s) from the hatch states
        (True open, False closed, None unknown) and the segments' estimates.
        ``sensors``: healthy sensors per volume when the caller knows them."""
        open_map = {h: hatches.get(h) for h in self.graph.hatches}
        self._follow_sensors(segments, sensors)
        # only settled segments count: a board's start-up or a window that
        # straddles a hatch move is not evidence (docs/station-loop.md)
        total_m, total_s = self._total([e for e in segments if e.settled])
        if not self._hunting:
            if not self._leak_seen(total_m, total_s):
                self._prev_open = dict(open_map)
                msg = "NOMINAL no leak: station " + (
                    "?" if total_m is None else f"{total_m:.2f}±{total_s:.2f} kg/day"
                )
                msg += f" (caution {self.caution_kg_day:g})"
                return Assessment(now_s, AdvisorState.NOMINAL, False, {}, None, None, (), msg)
            self._hunting = True
            self._hunt_t0 = now_s
            self._leak_kg_day, self._leak_sigma = total_m, total_s
        self._count_closures(open_map)
        # hunting: leaking until the estimates say the leak is confidently gone
        leaking = (
            total_m is None
            or total_m + K_DETECT * total_s >= SIGNIFICANT_FRACTION * self.caution_kg_day
        )
        if self._stuck is not None:
            return self._out(now_s, AdvisorState.UNRESOLVED, leaking, None, self._stuck)
        if self._located is not None:
            return self._after_located(now_s, open_map, segments, leaking)

        probs = self.probabilities()
        cands = {v for v, p in probs.items() if p >= P_CANDIDATE}
        by_seg = {frozenset(e.volumes): e for e in segments}
        blocks = [e for e in segments if cands & e.volumes]
        if len(blocks) >= 2:
            return self._holding(now_s, open_map, blocks, cands, segments, leaking)
        return self._next_action(now_s, open_map, by_seg, cands, leaking)

    # -- the hunt ----------------------------------------------------------

    def _holding(self, now_s, open_map, blocks, cands, segments, leaking) -> Assessment:
        """Candidates are split over several segments: decide once held long enough.

        A side without a live sensor is not measured (its volumes keep their
        odds); the live sides are decided.  The decision waits ``hold`` after
        the closure; if the split is not yet clear, or a side that should be
        quiet shows more than ``K_QUIET`` sigmas, it waits for the boards' next
        longer window (``extended_s``) before deciding."""
        live = self._live
        by_seg = {frozenset(e.volumes): e for e in segments}
        measured = [e for e in blocks if any(live.get(v, 0) for v in e.volumes)]
        if not measured:
            return self._next_action(now_s, open_map, by_seg, cands, leaking)
        coefs = [self.hold.segment_coef(self.graph, e.volumes, live) for e in measured]
        hold = self.hold.hold_s(coefs, self._leak_kg_day)
        extended = self.hold.extended_s(hold)
        since = max(e.since_s for e in measured)
        start = max(since, self._last_decision_t)
        ready = all(
            e.settled and e.mass_rate_kg_day is not None and e.sigma_kg_day is not None
            for e in measured
        )
        sides = tuple(_side(e.volumes, e.mass_rate_kg_day, e.sigma_kg_day) for e in blocks)
        proposal = self._proposed if self._proposed and self._proposed.close else None
        head = "HOLDING" + (
            f" close {proposal.hatch} {proposal.hold_s:.0f} s" if proposal else f" {hold:.0f} s"
        )
        held = now_s - start
        if not ready or held < hold:
            left = max(hold - held, 0.0)
            msg = f"{head} ({left:.0f} s left): " + ", ".join(_fmt_side(d) for d in sides)
            return self._out(now_s, AdvisorState.HOLDING, leaking, proposal, msg, sides)
        settled = [
            e
            for e in segments
            if e.settled and e.mass_rate_kg_day is not None and e.sigma_kg_day is not None
        ]
        # two leaks: more than one segment of the station leaks significantly
        loud = [e for e in settled if self._significant(e.mass_rate_kg_day, e.sigma_kg_day)]
        if len(loud) >= 2:
            ev = tuple(_side(e.volumes, e.mass_rate_kg_day, e.sigma_kg_day) for e in loud)
            self._evidence = ev
            self._stuck = "UNRESOLVED two leaks: " + ", ".join(_fmt_side(d) for d in ev)
            return self._out(now_s, AdvisorState.UNRESOLVED, leaking, None, self._stuck)
        total = sum(e.mass_rate_kg_day for e in settled)
        total_s = math.sqrt(sum(e.sigma_kg_day**2 for e in settled))
        unseen = {v for e in blocks if e not in measured for v in e.volumes}
        gone = total + K_DETECT * total_s < SIGNIFICANT_FRACTION * self.caution_kg_day
        if not loud and not unseen and gone:
            self._evidence = sides
            self._stuck = "UNRESOLVED leak no longer seen on any side: " + ", ".join(
                _fmt_side(d) for d in sides
            )
            return self._out(now_s, AdvisorState.UNRESOLVED, leaking, None, self._stuck)
        new = self._posterior_after(settled)
        side_p = self._side_probabilities(new, blocks)
        winner = blocks[max(range(len(blocks)), key=side_p.__getitem__)]
        murky = [
            e for e in settled if e is not winner and e.mass_rate_kg_day > K_QUIET * e.sigma_kg_day
        ]
        # the leaking side shows little, or less than the station loses (a second
        # leak elsewhere takes the rest)
        faint = winner in measured and (
            winner.mass_rate_kg_day <= K_QUIET * winner.sigma_kg_day
            or self._leak_kg_day - winner.mass_rate_kg_day
            > K_QUIET * math.hypot(winner.sigma_kg_day, self._leak_sigma)
        )
        if max(side_p) < P_SIDE or murky or faint:
            self._extended_from = start  # once unclear, wait for the longer window
        if self._extended_from == start and held < extended:
            why = "a quiet side is not quiet" if murky else "undecided"
            msg = f"{head} ({why}, up to {extended - held:.0f} s more): " + ", ".join(
                _fmt_side(d) for d in sides
            )
            return self._out(now_s, AdvisorState.HOLDING, leaking, proposal, msg, sides)
        self._log_post = new
        self._last_decision_t = now_s
        self._decisions += 1
        self._evidence = sides
        self._proposed = None
        self._fuse_leak(total, total_s)
        probs = self.probabilities()
        best = max(probs, key=probs.get)
        if probs[best] >= P_LOCATE and best in unseen:
            self._stuck = (
                f"UNRESOLVED {best} by elimination, but it has no live sensor: cannot be "
                "decided; " + ", ".join(_fmt_side(d) for d in sides)
            )
            return self._out(now_s, AdvisorState.UNRESOLVED, leaking, None, self._stuck)
        if probs[best] >= P_LOCATE:
            self._located = best
            return self._after_located(now_s, open_map, segments, leaking)
        cands = {v for v, p in probs.items() if p >= P_CANDIDATE}
        blocks = [e for e in segments if cands & e.volumes]
        if len(blocks) >= 2:  # still split: decide again after another hold
            return self._holding(now_s, open_map, blocks, cands, segments, leaking)
        return self._next_action(now_s, open_map, by_seg, cands, leaking)

    def _next_action(self, now_s, open_map, by_seg, cands, leaking) -> Assessment:
        probs = self.probabilities()
        pressures = {seg: e.pressure_pa for seg, e in by_seg.items()}
        choice, why_not = self._choose(open_map, probs, cands, pressures)
        names = ", ".join(sorted(cands))
        if choice is None:
            self._proposed = None
            msg = f"UNRESOLVED cannot decide between {names}: {why_not}"
            return self._out(now_s, AdvisorState.UNRESOLVED, leaking, None, msg)
        plan = self._plan_all(open_map, cands)
        reserve = self._reserve_s(by_seg, cands)
        worst = max((o.planned_s for o in plan if o.located), default=0.0)
        if reserve is not None and worst > reserve:
            self._proposed = None
            msg = (
                f"UNRESOLVED reserve {reserve:.0f} s < plan {worst:.0f} s to decide between "
                f"{names}: no time to isolate, follow the emergency procedure"
            )
            return self._out(now_s, AdvisorState.UNRESOLVED, leaking, None, msg)
        prop = Proposal(choice.hatch, choice.close, choice.hold_s, choice.reason)
        self._proposed = prop
        verb = "close" if prop.close else "open"
        hold = f" hold {prop.hold_s:.0f} s" if prop.close else ""
        closures = max((o.closures for o in plan if o.located), default=0)
        msg = (
            f"SUSPECT {verb} {prop.hatch}{hold}: {prop.reason}; "
            f"plan at most {closures} closures, {worst:.0f} s"
            + ("" if reserve is None else f", reserve {reserve:.0f} s")
        )
        return self._out(now_s, AdvisorState.SUSPECT, leaking, prop, msg, self._evidence)

    def _after_located(self, now_s, open_map, segments, leaking) -> Assessment:
        """Located: keep the leaking segment closed off, reopen the other closed hatches."""
        where = self._located
        seg = next((frozenset(e.volumes) for e in segments if where in e.volumes), None)
        if seg is None:
            seg = self.graph.segment_of(where, {h: bool(o) for h, o in open_map.items()})
        pressures = {frozenset(e.volumes): e.pressure_pa for e in segments}
        prop = None
        blocked = []
        for h in self.graph.hatches.values():
            if open_map[h.name] is not False or (h.a in seg) != (h.b in seg):
                continue
            ok, why = self._reopenable(h, open_map, pressures)
            if ok:
                prop = Proposal(h.name, False, 0.0, f"no longer needed: {where} is isolated")
                break
            blocked.append(why)
        self._proposed = prop
        p = self.probabilities()[where]
        took = now_s - self._hunt_t0
        msg = (
            f"LOCATED {where} p={p:.4f}: "
            + ", ".join(_fmt_side(d) for d in self._evidence)
            + f"; {self._n_closures} closures, {took:.0f} s"
        )
        if prop:
            msg += f"; open {prop.hatch}"
        elif blocked:
            msg += "; " + "; ".join(blocked)
        return self._out(now_s, AdvisorState.LOCATED, leaking, prop, msg, self._evidence)

    def _out(self, now_s, state, leaking, proposal, msg, evidence=None) -> Assessment:
        probs = self.probabilities()
        return Assessment(
            t_s=now_s,
            state=state,
            leaking=leaking,
            probabilities=probs,
            proposal=proposal,
            located=self._located if state is AdvisorState.LOCATED else None,
            evidence=self._evidence if evidence is None else evidence,
            message=msg,
        )

    # -- evidence ----------------------------------------------------------

    def _follow_sensors(self, segments, sensors) -> None:
        g = self.graph
        if sensors is not None:
            for v, n in sensors.items():
                if v in self._live:
                    self._live[v] = int(n)
            return
        for e in segments:
            vols = [v for v in e.volumes if v in g.volumes]
            if len(vols) == 1:
                self._live[vols[0]] = int(e.healthy_sensors)
            elif e.healthy_sensors <= 0:
                for v in vols:
                    self._live[v] = 0
            elif e.healthy_sensors >= sum(g.volumes[v].sensors for v in vols):
                for v in vols:
                    self._live[v] = g.volumes[v].sensors

    @staticmethod
    def _total(segments) -> tuple[float | None, float]:
        known = [e for e in segments if e.mass_rate_kg_day is not None]
        if not known:
            return None, 0.0
        m = sum(e.mass_rate_kg_day for e in known)
        s2 = sum((e.sigma_kg_day or 0.0) ** 2 for e in known)
        return m, math.sqrt(s2)

    def _leak_seen(self, m, s) -> bool:
        return m is not None and m >= self.caution_kg_day and m > K_DETECT * s

    def _significant(self, m, s) -> bool:
        return m > K_SIGNIFICANT * s and m >= SIGNIFICANT_FRACTION * self.caution_kg_day

    def _posterior_after(self, measured) -> dict[str, float]:
        """The log posterior after one decision on the ``measured`` segments
        (settled, with a mass rate and sigma).  Relative to "no segment leaks",
        a volume gains its own segment's likelihood ratio; one in a segment
        without an estimate gains nothing."""
        L0 = self._leak_kg_day
        s_l = math.hypot(self._leak_sigma, L_REL * L0)
        new = dict(self._log_post)
        for e in measured:
            m, s = e.mass_rate_kg_day, max(e.sigma_kg_day, 1e-9)
            var_l = s * s + s_l * s_l
            # log N(m; L0, s^2 + sL^2) - log N(m; 0, s^2)
            ll = -0.5 * (m - L0) ** 2 / var_l - 0.5 * math.log(var_l)
            ll += 0.5 * m * m / (s * s) + 0.5 * math.log(s * s)
            for v in e.volumes:
                if v in new:
                    new[v] += ll
        return new

    def _fuse_leak(self, total: float, total_s: float) -> None:
        """The station's leak rate after a decision: the last one (allowed to have
        drifted by ``L_DRIFT``) and the sides' sum, weighted by inverse variance."""
        var_old = self._leak_sigma**2 + (L_DRIFT * self._leak_kg_day) ** 2
        var_new = max(total_s, 1e-9) ** 2
        w = var_new / (var_old + var_new) if var_old > 0 else 0.0
        self._leak_kg_day = w * self._leak_kg_day + (1.0 - w) * total
        self._leak_sigma = math.sqrt(var_old * var_new / (var_old + var_new))

    @staticmethod
    def _side_probabilities(log_post, blocks) -> list[float]:
        top = max(log_post.values())
        w = {v: math.exp(lp - top) for v, lp in log_post.items()}
        total = sum(w.values())
        return [sum(w[v] for v in e.volumes) / total for e in blocks]

    def _count_closures(self, open_map) -> None:
        for h, o in open_map.items():
            if o is False and self._prev_open.get(h) is True:
                self._n_closures += 1
        self._prev_open = dict(open_map)

    # -- planning ----------------------------------------------------------

    def _segments(self, open_map) -> list[frozenset[str]]:
        # an unknown hatch is taken as open (the two sides may share air)
        return self.graph.segments({h: o is not False for h, o in open_map.items()})

    def _crew_ok(self, segs, exempt: frozenset[str]) -> bool:
        """The crew keeps an open path to an escape vehicle (``exempt``: the one
        being checked, reopenable by the rules of its hatch)."""
        evs = self._ev - exempt
        if not evs:
            return True
        seg_of = {v: s for s in segs for v in s}
        if self.crew_volume is not None:
            return bool(seg_of[self.crew_volume] & evs)
        return all(seg_of[e] - self._ev for e in evs)

    def _closures(self, open_map, probs, cands, pressures) -> tuple[list[Option], list[str]]:
        """Admissible closures in ``open_map`` and why the others are not."""
        g = self.graph
        segs = self._segments(open_map)
        seg_of = {v: s for s in segs for v in s}
        L = self._leak_kg_day
        checkable = {e for e in cands & self._ev if self._live.get(e, 0) > 0}
        ev_first = bool(checkable) and bool(cands - self._ev)
        out: list[Option] = []
        why: list[str] = []
        for h in g.hatches.values():
            if open_map[h.name] is not True:
                continue
            after = dict(open_map)
            after[h.name] = False
            new = self._segments(after)
            side_a = next(s for s in new if h.a in s)
            side_b = next(s for s in new if h.b in s)
            if side_a == side_b:
                continue  # a loop: closing it alone splits nothing
            ca, cb = cands & side_a, cands & side_b
            if not ca or not cb:
                continue  # no candidate on one side: nothing to learn
            pa = sum(probs[v] for v in ca)
            pb = sum(probs[v] for v in cb)
            sides = (side_a, side_b)
            if any(sum(self._live.get(v, 0) for v in s) == 0 for s in sides):
                dead = next(s for s in sides if sum(self._live.get(v, 0) for v in s) == 0)
                why.append(f"{h.name}: {{{','.join(sorted(dead))}}} has no live sensor")
                continue
            ev_check = ca <= self._ev or cb <= self._ev
            if ev_first and not ev_check:
                continue
            exempt = frozenset(v for s in sides if cands & s <= self._ev for v in s & self._ev)
            if not self._crew_ok(new, exempt if ev_check else frozenset()):
                why.append(f"{h.name}: the crew would lose its path to an escape vehicle")
                continue
            coefs = [self.hold.segment_coef(g, s, self._live) for s in sides]
            hold = self.hold.hold_s(coefs, L)
            if not math.isfinite(hold):
                why.append(f"{h.name}: {L:.2f} kg/day cannot be decided within the fit windows")
                continue
            span = hold + self.action_s
            p_now = pressures.get(seg_of[h.a]) or NOMINAL_PA
            bad = None
            for x, y, cy in ((side_a, side_b, cb), (side_b, side_a, ca)):
                if not cy:
                    continue
                drop = fall_rate_pa_s(L, g.segment_volume_m3(y), self.hold.t_ref_k) * span
                if h.opens_into is not None and h.opens_into in x and drop > h.max_open_dp_pa:
                    bad = (
                        f"{h.name}: opens into {h.opens_into}, {drop:.0f} Pa across it within "
                        f"{span:.0f} s > {h.max_open_dp_pa:.0f} Pa"
                    )
                    break
                crew_there = self.crew_volume is not None and self.crew_volume in y
                if crew_there and p_now - drop < self.min_pressure_pa:
                    names = ",".join(sorted(y))
                    bad = f"{h.name}: {{{names}}} would fall below the minimum with the crew in it"
                    break
            if bad:
                why.append(bad)
                continue
            balance = min(pa, pb) / (pa + pb)
            small = min(sides, key=lambda s: sum(probs[v] for v in cands & s))
            kind = "escape vehicle first: " if ev_first else ""
            reason = (
                f"{kind}{{{','.join(sorted(small))}}} p={min(pa, pb) / (pa + pb):.2f} "
                f"against the rest, {L:.1f} kg/day at {self.hold.k_sigma:g} sigma"
            )
            out.append(Option(h.name, True, hold, balance, reason))
        return out, why

    def _reopenable(self, h, open_map, pressures) -> tuple[bool, str]:
        """A closed hatch can be opened: the side its leaf opens into is not
        higher than the other by more than ``max_open_dp_pa``."""
        if h.opens_into is None:
            return True, ""
        segs = self._segments(open_map)
        x = next(s for s in segs if h.opens_into in s)
        y = next(s for s in segs if h.other(h.opens_into) in s)
        px, py = pressures.get(x), pressures.get(y)
        if px is None or py is None or px - py <= h.max_open_dp_pa:
            return True, ""
        return False, f"{h.name} held shut by {px - py:.0f} Pa"

    @staticmethod
    def _pick(opts: list[Option]) -> Option | None:
        if not opts:
            return None
        return max(opts, key=lambda o: (round(o.balance, 6), -o.hold_s))

    def _choose(self, open_map, probs, cands, pressures) -> tuple[Option | None, str]:
        """The next action: the best closure, or a reopening that allows a better one."""
        opts, why = self._closures(open_map, probs, cands, pressures)
        best = self._pick(opts)
        segs = self._segments(open_map)
        reopen: list[tuple[Option, Option]] = []
        for h in self.graph.hatches.values():
            if open_map[h.name] is not False:
                continue
            sa = next(s for s in segs if h.a in s)
            sb = next(s for s in segs if h.b in s)
            dead = [s for s in (sa, sb) if cands & s and not any(self._live.get(v) for v in s)]
            if cands & sa and cands & sb and not dead:
                continue  # both sides still in question: keep them apart
            ok, _ = self._reopenable(h, open_map, pressures)
            if not ok:
                continue
            after = dict(open_map)
            after[h.name] = True
            then = self._pick(self._closures(after, probs, cands, pressures)[0])
            if then is not None:
                reason = f"reopen (no longer needed) to allow closing {then.hatch}"
                reopen.append((Option(h.name, False, 0.0, then.balance, reason), then))
        if reopen:
            r, then = max(reopen, key=lambda rt: (round(rt[1].balance, 6), -rt[1].hold_s))
            if best is None or round(then.balance, 6) > round(best.balance, 6):
                return r, ""
        if best is None:
            return None, "; ".join(why) or "no hatch splits them"
        return best, ""

    def plan(
        self,
        truth: str,
        open_map: Mapping[str, bool | None] | None = None,
        cands: set[str] | None = None,
        leak_kg_day: float | None = None,
    ) -> PlanOutcome:
        """Follow the advisor's own choices to the end, taking ``truth`` as the
        leaking volume and every decision as clean (planning, no data).
        Defaults: the last hatch states seen (hatches not seen: open), the
        present candidates and leak rate (kg/day)."""
        base = self._prev_open if open_map is None else open_map
        open_map = {h: base.get(h, True) for h in self.graph.hatches}
        probs0 = self.probabilities()
        if cands is None:
            cands = {v for v, p in probs0.items() if p >= P_CANDIDATE}
        cands = set(cands)
        saved = self._leak_kg_day
        if leak_kg_day is not None:
            self._leak_kg_day = float(leak_kg_day)
        try:
            return self._follow_plan(truth, open_map, cands, probs0)
        finally:
            self._leak_kg_day = saved

    def _follow_plan(self, truth, open_map, cands, probs0) -> PlanOutcome:
        t = 0.0
        closures = actions = 0
        steps: list[str] = []
        for _ in range(4 * len(self.graph.volumes) + 8):
            if len(cands) <= 1:
                break
            total = sum(probs0[v] for v in cands)
            probs = {v: (probs0[v] / total if v in cands else 0.0) for v in self.graph.volumes}
            choice, _ = self._choose(open_map, probs, cands, {})
            if choice is None:
                break
            open_map[choice.hatch] = not choice.close
            actions += 1
            t += self.action_s
            if choice.close:
                closures += 1
                t += choice.hold_s
                seg = next(s for s in self._segments(open_map) if truth in s)
                cands &= seg
            steps.append(f"{'close' if choice.close else 'open'} {choice.hatch}")
        located = next(iter(cands)) if len(cands) == 1 else None
        return PlanOutcome(truth, located, closures, actions, t, tuple(steps))

    def _plan_all(self, open_map, cands) -> list[PlanOutcome]:
        key = (tuple(sorted(open_map.items(), key=lambda kv: kv[0])), frozenset(cands))
        key = (key, round(self._leak_kg_day, 3), tuple(sorted(self._live.items())))
        if key not in self._plan_cache:
            self._plan_cache[key] = [self.plan(v, open_map, cands) for v in sorted(cands)]
        return self._plan_cache[key]

    def _reserve_s(self, by_seg, cands) -> float | None:
        """Seconds until the air the leak draws from (the segments that may hold it)
        reaches the minimum pressure at the present leak rate."""
        L = self._leak_kg_day
        if not L > 0:
            return None
        kg = 0.0
        for seg, e in by_seg.items():
            if cands & seg:
                p = e.pressure_pa if e.pressure_pa is not None else NOMINAL_PA
                v = self.graph.segment_volume_m3(seg)
                kg += mass_kg(max(p - self.min_pressure_pa, 0.0), v, self.hold.t_ref_k)
        return kg / (L / SECONDS_PER_DAY)
