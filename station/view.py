"""The station view: per segment and volume pressure, leak +- sigma, reserve, alarm,
boards; hatches; nodes; the advisor's message and proposal.  80 columns.

Same conventions as the board's display (``firmware_host.runtime.display``):
``render`` is pure (lines, tested without a terminal); ``StationDisplay``
redraws it in place on a terminal at most every ``period_s``, or writes plain
lines (a status line per segment every ``plain_period_s``; every alarm event,
change of the broker connection, board state and advisor message as it
happens) when stdout is not a terminal.  Keys on a terminal (read by
``common.terminal``, as the board's): ``r`` starts the advisor over, ``q`` quits.
``to_json`` is the ``--json`` line of an update.  A number the data cannot
support (no estimate, still settling) is never shown as a fact.
"""

from __future__ import annotations

import json
import math
import sys
import time

from common.terminal import TerminalScreen
from firmware_host.runtime.display import LEVEL_MARK, WIDTH, fmt_duration, wrap
from station.aggregator import Update
from station.picture import NodeState, SegmentView, VolumeView


def _num(x: float | None, fmt: str, width: int) -> str:
    if x is None or not math.isfinite(x):
        return "-".rjust(width)
    return format(x, fmt).rjust(width)


def _rate(rate: float | None, sigma: float | None) -> str:
    """'12.3+-0.4' in kg/day, '-' when unknown."""
    if rate is None:
        return "-"
    if sigma is None:
        return f"{rate:.2f}"
    return f"{rate:.2f}+-{sigma:.2f}"


def _seg_name(seg: SegmentView) -> str:
    return "+".join(sorted(seg.volumes))


def _vol_line(v: VolumeView) -> str:
    alarm = LEVEL_MARK.get(v.alarm or "", v.alarm or "") if v.alarm else ""
    if not v.nodes:
        est = "no estimate".center(24)
    elif not v.settled:
        est = f"settling {_rate(v.mass_rate_kg_day, v.sigma_kg_day)}"[:24].ljust(24)
    else:
        est = (
            f"{_rate(v.mass_rate_kg_day, v.sigma_kg_day):>15} "
            f"{fmt_duration(v.reserve_s) if v.reserve_s is not None else 'none':>8}"
        )
    boards = ",".join(v.nodes) if v.nodes else "(" + ",".join(v.watched_by) + ")"
    p = None if v.pressure_pa is None else v.pressure_pa / 1000
    line = (
        f"  {v.volume[:14]:<14}{_num(p, '.3f', 8)} {est} {alarm:<5}{v.healthy_sensors:>2} {boards}"
    )
    return line[:WIDTH]


def render(up: Update, *, title: str = "") -> list[str]:
    """The screen for update ``up`` as lines of at most 80 characters."""
    snap = up.snapshot
    c = snap.counters
    clock = time.strftime("%H:%M:%S", time.gmtime(snap.t_unix))
    lines = [f"station {snap.station}{title}  {clock} UTC  broker {up.broker}"[:WIDTH]]
    lines.append("segment / volume     kPa   kg/day +-sigma  reserve alarm  n boards"[:WIDTH])
    vols = {v.volume: v for v in snap.volumes}
    for seg in snap.segments:
        p = None if seg.pressure_pa is None else seg.pressure_pa / 1000
        state = "settled" if seg.settled else ("no estimate" if not seg.covered else "settling")
        part = (
            "" if seg.covered == seg.volumes else f" ({len(seg.covered)}/{len(seg.volumes)} seen)"
        )
        head = f"[{_seg_name(seg)}]"
        if len(head) > 16:  # a long name on its own line, the numbers in their columns
            lines.append(head[:WIDTH])
            head = ""
        lines.append(
            f"{head:<16}{_num(p, '.3f', 8)} {_rate(seg.mass_rate_kg_day, seg.sigma_kg_day):>15} "
            f"{state}{part} for {fmt_duration(snap.t_unix - seg.since_s)}"[:WIDTH]
        )
        for name in sorted(seg.volumes):
            lines.append(_vol_line(vols[name]))
    if snap.hatches:
        parts = []
        for h in snap.hatches:
            pos = "?" if h.open is None else ("open" if h.open else "CLOSED")
            parts.append(f"{h.name}={pos}")
        lines.extend(wrap("hatches  ", parts))
    parts = []
    for n in snap.nodes:
        age = "" if n.age_s is None else f" {n.age_s:.0f}s"
        mark = n.state.value.upper() if n.state is not NodeState.ONLINE else "online"
        parts.append(f"{n.node} {mark}{'' if n.session is None else f' #{n.session}'}{age}")
    lines.extend(wrap("boards   ", parts))
    a = up.assessment
    if up.advisor_error:
        lines.append(f"advisor: FAILED {up.advisor_error}"[:WIDTH])
    elif a is not None:
        lines.append(f"advisor: {a.message}"[:WIDTH])
        if a.proposal is not None:
            pr = a.proposal
            act = "close" if pr.close else "reopen"
            lines.append(
                f"  proposal: {act} {pr.hatch}, hold {fmt_duration(pr.hold_s)}: {pr.reason}"[:WIDTH]
            )
        if a.probabilities:
            top = sorted(a.probabilities.items(), key=lambda kv: -kv[1])[:4]
            lines.append(("  P(leak): " + "  ".join(f"{k} {p:.0%}" for k, p in top))[:WIDTH])
    for ev in snap.events[-3:]:
        when = time.strftime("%H:%M:%S", time.gmtime(ev.t_unix))
        lines.append(
            f"  {when} {ev.node}/{ev.volume} {ev.level} {ev.transition}: {ev.message}"[:WIDTH]
        )
    if c.bad or c.stale or c.unknown:
        lines.append(
            f"messages left out: {c.bad} bad, {c.stale} stale, {c.unknown} unknown; "
            f"last: {c.last_problem}"[:WIDTH]
        )
    lines.append("keys: r=advisor starts over  q=quit")
    return lines


def plain_lines(up: Update) -> list[str]:
    """One status line per segment, for logs and pipes."""
    snap = up.snapshot
    out = []
    for seg in snap.segments:
        p = "-" if seg.pressure_pa is None else f"{seg.pressure_pa / 1000:.3f}kPa"
        leak = _rate(seg.mass_rate_kg_day, seg.sigma_kg_day)
        out.append(
            f"{time.strftime('%H:%M:%S', time.gmtime(snap.t_unix))} [{_seg_name(seg)}] "
            f"P={p} leak={leak}{'' if leak == '-' else 'kg/day'} "
            f"{'settled' if seg.settled else 'not settled'} boards={','.join(seg.nodes) or '-'}"
        )
    return out


def _assessment_json(a) -> dict | None:
    if a is None:
        return None
    prop = None
    if a.proposal is not None:
        p = a.proposal
        prop = {"hatch": p.hatch, "close": p.close, "hold_s": p.hold_s, "reason": p.reason}
    return {
        "state": getattr(a.state, "value", str(a.state)),
        "leaking": a.leaking,
        "message": a.message,
        "proposal": prop,
        "located": a.located,
        "probabilities": dict(a.probabilities),
        "evidence": [dict(e) for e in a.evidence],
    }


def _clean(x):
    """JSON-safe: non-finite floats as null, sets as sorted lists."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, set | frozenset):
        return sorted(x)
    return x


def to_json(up: Update) -> str:
    """The ``--json`` line of an update: the picture and the advisor's answer (units in names)."""
    snap = up.snapshot
    c = snap.counters
    d = {
        "t_unix": snap.t_unix,
        "station": snap.station,
        "broker": up.broker,
        "nodes": {
            n.node: {"state": n.state.value, "session": n.session, "age_s": n.age_s}
            for n in snap.nodes
        },
        "hatches": {
            h.name: {
                "open": h.open,
                "node": h.node,
                "source": h.source,
                "t_unix": h.t_unix,
                "since_unix": h.since_s,
            }
            for h in snap.hatches
        },
        "volumes": {
            v.volume: {
                "pressure_pa": v.pressure_pa,
                "mass_rate_kg_day": v.mass_rate_kg_day,
                "sigma_kg_day": v.sigma_kg_day,
                "reserve_s": v.reserve_s,
                "healthy_sensors": v.healthy_sensors,
                "settled": v.settled,
                "alarm": v.alarm,
                "alarm_kind": v.alarm_kind,
                "regime": v.regime,
                "nodes": list(v.nodes),
                "watched_by": list(v.watched_by),
                "t_unix": v.t_unix,
            }
            for v in snap.volumes
        },
        "segments": [
            {
                "volumes": sorted(s.volumes),
                "mass_rate_kg_day": s.mass_rate_kg_day,
                "sigma_kg_day": s.sigma_kg_day,
                "pressure_pa": s.pressure_pa,
                "healthy_sensors": s.healthy_sensors,
                "settled": s.settled,
                "since_unix": s.since_s,
                "covered": sorted(s.covered),
                "nodes": list(s.nodes),
            }
            for s in snap.segments
        ],
        "assessment": _assessment_json(up.assessment),
        "advisor_error": up.advisor_error or None,
        "messages": {"accepted": c.accepted, "bad": c.bad, "stale": c.stale, "unknown": c.unknown},
    }
    return json.dumps(_clean(d), allow_nan=False, separators=(",", ":"))


class StationDisplay(TerminalScreen):
    """Draws ``render`` on a terminal, or plain lines elsewhere; reads keys
    (``common.terminal.TerminalScreen``: the periods, the redraw, the keys)."""

    def __init__(self, out=None, **screen):
        super().__init__(out, **screen)
        self._seen_events: set[tuple] = set()
        self._message = None
        self._broker = None
        self._nodes: dict = {}

    def show(self, up: Update) -> None:
        """Take an update: redraw if due; on a plain stream also write what is new."""
        if not self.tty:
            self._plain_news(up)
        if self.due():
            self.draw(render(up) if self.tty else plain_lines(up))

    def _plain_news(self, up: Update) -> None:
        lines = []
        seen, self._seen_events = self._seen_events, set()
        for ev in up.snapshot.events:  # the picture's last events: what is new is written
            key = (ev.node, ev.session, ev.seq)
            self._seen_events.add(key)
            if key not in seen:
                lines.append(
                    f"{time.strftime('%H:%M:%S', time.gmtime(ev.t_unix))} {ev.node}/{ev.volume} "
                    f"{ev.level} {ev.transition} {ev.kind}: {ev.message}"
                )
        if up.broker != self._broker:
            self._broker = up.broker
            lines.append(f"broker: {up.broker}")
        for n in up.snapshot.nodes:
            if self._nodes.get(n.node) not in (None, n.state) or (
                n.node not in self._nodes and n.state is not NodeState.UNKNOWN
            ):
                lines.append(f"board {n.node}: {n.state.value}")
            self._nodes[n.node] = n.state
        msg = up.advisor_error or (up.assessment.message if up.assessment is not None else None)
        if msg != self._message:
            self._message = msg
            if msg:
                lines.append(f"advisor: {msg}")
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()


class JsonLines:
    """``--json``: one line per update on ``out``."""

    def __init__(self, out=None):
        self.out = out or sys.stdout

    def __call__(self, up: Update) -> None:
        self.out.write(to_json(up) + "\n")
        self.out.flush()
