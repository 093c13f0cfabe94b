"""The operator's live view: volumes, sensors, alarms, links and the loop, in 80 columns.

``render(view)`` is pure (a list of lines, tested without a terminal).
``LiveDisplay`` redraws it in place on a terminal (ANSI, at most every
``period_s``) and reads single keypresses (``common.terminal``, as the station
view does): ``a`` acknowledges every alarm,
``1``-``9`` toggle hatch N, ``q`` quits.  When stdout is not a terminal it
degrades to one plain status line per volume every ``plain_period_s`` and
every alarm transition as it happens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from common.terminal import TerminalScreen

MMHG_PA = 133.322
WIDTH = 80
LEVEL_MARK = {"ADVISORY": "adv", "CAUTION": "CAUT", "WARNING": "WARN", "EMERGENCY": "EMER"}


@dataclass
class View:
    """What the display shows; filled by the runtime from the core, links and loop."""

    t_s: float = 0.0
    title: str = "cabinwatch"
    volumes: tuple = ()  # VolumeEstimate
    sensors: tuple = ()  # SensorEstimate
    hatches: dict[str, bool] = field(default_factory=dict)
    alarms: list = field(default_factory=list)  # ActiveAlarm
    links: dict[str, str] = field(default_factory=dict)  # link name -> one-line status
    loop: str = ""
    note: str = ""


def fmt_duration(s: float) -> str:
    """A reserve time for people: '3d04h', '5h12m', '12m30s', '45s', or 'none' (not falling)."""
    if s is None or not math.isfinite(s) or s > 99 * 86400:
        return "none"
    s = max(0.0, s)
    if s >= 86400:
        return f"{int(s // 86400)}d{int(s % 86400 // 3600):02d}h"
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 60:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.0f}s"


def _f(x: float, fmt: str, width: int) -> str:
    """``x`` in ``fmt``, with fewer decimals if that is what fits in ``width``."""
    if x is None or not math.isfinite(x):
        return "-".rjust(width)
    text = format(x, fmt)
    while width and len(text) > width and "." in fmt:
        head, tail = fmt.rsplit(".", 1)
        decimals = int(tail[:-1])
        if decimals == 0:
            break
        fmt = f"{head}.{decimals - 1}{tail[-1]}"
        text = format(x, fmt)
    return text.rjust(width)


def _best_slope(v) -> float:
    for w in v.dpdt:
        if w.window_s == v.best_window_s:
            return w.dpdt_comp_pa_s
    return math.nan


def _not_settled(v) -> str | None:
    """What the estimate columns say while a volume's estimate is no fact, else None:
    "no estimate yet", or "settling" with the sigma of the number it has."""
    state = getattr(v, "state", None)
    if state is None or state.name == "SETTLED":
        return None
    if state.name == "NONE":
        return "no estimate yet"
    sig = v.mass_rate_sigma_kg_day
    if sig is None or not math.isfinite(sig):
        return "settling"
    return f"settling (+-{sig:.3g} kg/day)"


def render(view: View) -> list[str]:
    """The screen as lines of at most 80 characters.

    A volume whose estimate is not settled shows its pressure and, in place of
    dP/dt, leak, hole and reserve, "settling (+-sigma kg/day)" or "no estimate
    yet": a number the data cannot support is never shown as a fact."""
    lines = [f"{view.title}  t={view.t_s:,.0f} s"[:WIDTH]]
    lines.append("volume          kPa   mmHg   Pa/min   mmHg/h   kg/day hole mm  reserve  n")
    for v in view.volumes:
        note = _not_settled(v)
        if note is not None:
            lines.append(
                " ".join(
                    (
                        f"{v.volume[:10]:<10}",
                        _f(v.pressure_pa / 1000, ".3f", 8),
                        _f(v.pressure_pa / MMHG_PA, ".1f", 6),
                        f"{note[:50]:^50}",
                        f"{v.n_healthy_sensors:>2}",
                    )
                )[:WIDTH]
            )
            continue
        slope = _best_slope(v)
        leak = v.mass_rate_kg_day
        hole = v.hole_mm if leak is not None and math.isfinite(leak) and leak > 0 else math.nan
        reserve = min(v.reserve_s_linear, v.reserve_s_orifice)
        lines.append(
            " ".join(
                (
                    f"{v.volume[:10]:<10}",
                    _f(v.pressure_pa / 1000, ".3f", 8),
                    _f(v.pressure_pa / MMHG_PA, ".1f", 6),
                    _f(slope * 60, "+.2f", 8),
                    _f(slope * 3600 / MMHG_PA, "+.3f", 8),
                    _f(leak, ".2f", 8),
                    _f(hole, ".2f", 7),
                    f"{fmt_duration(reserve):>8}",
                    f"{v.n_healthy_sensors:>2}",
                )
            )[:WIDTH]
        )
    if view.hatches:
        parts = [
            f"{i}:{name}={'open' if is_open else 'CLOSED'}"
            for i, (name, is_open) in enumerate(view.hatches.items(), 1)
        ]
        lines.extend(wrap("hatches  ", parts))
    if view.sensors:
        parts = []
        for s in view.sensors:
            age = s.last_sample_age_s
            age_txt = "-" if age is None or not math.isfinite(age) else f"{age:.1f}s"
            reasons = "/".join(r.name.lower() for r in s.reasons)
            state = s.health.name.lower() + (f"({reasons})" if reasons else "")
            parts.append(f"{s.sensor_id} {state} {age_txt}")
        lines.extend(wrap("sensors  ", parts))
    if view.alarms:
        lines.append("alarms:")
        for a in sorted(view.alarms, key=lambda a: (-int(a.level), a.raised_t_s))[:8]:
            val = _quantity(a.value, a.unit)
            lim = _quantity(a.limit, a.unit)
            lines.append(
                f"  {LEVEL_MARK.get(a.level.name, a.level.name):<5}{a.state.name.lower():<13}"
                f"{a.key} {val}{f' (limit {lim})' if lim else ''}".rstrip()[:WIDTH]
            )
        if len(view.alarms) > 8:
            lines.append(f"  ... and {len(view.alarms) - 8} more")
    else:
        lines.append("alarms: none")
    for name, status in view.links.items():
        lines.append(f"link {name}: {status}"[:WIDTH])
    if view.loop:
        lines.append(f"loop: {view.loop}"[:WIDTH])
    lines.append((view.note or "keys: a=acknowledge all  1-9=toggle hatch  q=quit")[:WIDTH])
    return lines


def _quantity(x: float, unit: str) -> str:
    """An alarmed value for people: durations as 1h24m, the rest with its unit."""
    if x is None or not math.isfinite(x):
        return ""
    if unit == "s":
        return fmt_duration(x)
    return f"{x:.4g} {unit}".rstrip()


def wrap(head: str, parts: list[str]) -> list[str]:
    """``head`` then ``parts`` two spaces apart, on as many lines as they need, the
    next lines indented as far as ``head``; each line cut at ``WIDTH`` (one part
    longer than a line is cut, not wrapped)."""
    out, cur = [], head
    for p in parts:
        if len(cur) + len(p) + 2 > WIDTH and cur.strip():
            out.append(cur.rstrip()[:WIDTH])
            cur = " " * len(head)
        cur += p + "  "
    out.append(cur.rstrip()[:WIDTH])
    return out


def plain_lines(view: View) -> list[str]:
    """One status line per volume, for logs and pipes."""
    out = []
    for v in view.volumes:
        note = _not_settled(v)
        if note is not None:
            out.append(
                f"t={view.t_s:.0f}s {v.volume} P={_f(v.pressure_pa / 1000, '.3f', 0)}kPa "
                f"estimate: {note} alarms={len(view.alarms)}"
            )
            continue
        slope = _best_slope(v)
        reserve = min(v.reserve_s_linear, v.reserve_s_orifice)
        out.append(
            f"t={view.t_s:.0f}s {v.volume} P={_f(v.pressure_pa / 1000, '.3f', 0)}kPa "
            f"dP/dt={_f(slope * 60, '+.2f', 0)}Pa/min "
            f"leak={_f(v.mass_rate_kg_day, '.2f', 0)}kg/day "
            f"hole={_f(v.hole_mm, '.2f', 0)}mm reserve={fmt_duration(reserve)} "
            f"alarms={len(view.alarms)}"
        )
    return out


class LiveDisplay(TerminalScreen):
    """Draws ``render(view)`` on a terminal, or plain lines elsewhere; reads keys
    (``common.terminal.TerminalScreen``: the periods, the redraw, the keys)."""

    def show(self, view: View, force: bool = False) -> None:
        if force or self.due():
            self.draw(render(view) if self.tty else plain_lines(view))

    def event(self, ev) -> None:
        """Alarm transitions scroll on a plain stream (the terminal view shows them itself)."""
        if not self.tty:
            self.out.write(
                f"t={ev.t_s:.0f}s {ev.level.name} {ev.transition.name} {ev.key}: {ev.message}\n"
            )
