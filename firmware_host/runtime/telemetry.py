"""JSON-lines telemetry: estimates at a configured rate, every event at once.

One object per line, in these types:

* ``header``: once, before the first estimate: ``windows_s`` (the slope windows)
  and the volume names;
* ``estimate``: ``t_s`` and per volume ``p_pa``, ``p_comp_pa``, ``t_k``,
  ``dpdt_pa_s`` and ``dpdt_se_pa_s`` (temperature-compensated, one per window),
  ``best_window_s``, ``leak_kg_day`` and ``leak_sigma_kg_day``, ``hole_mm``,
  ``reserve_s`` ([straight-line, orifice]), ``regime``, ``n_healthy``,
  ``group_m3``;
* ``event``: an ``AlarmEvent``; ``loop``: the executive's health; ``link``: a
  link event.

Floats keep 7 significant digits.  The stream is flushed at least once a
second of wall time and on close.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from common.errors import InputFileError

#: Significant digits kept in telemetry floats: below any transducer's resolution.
SIGNIFICANT_DIGITS = 7


def _compact(obj):
    """Floats rounded to ``SIGNIFICANT_DIGITS``; non-finite floats become null."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(obj, dict):
        return {k: _compact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_compact(v) for v in obj]
    return obj


def _estimate(v) -> dict:
    return {
        "p_pa": v.pressure_pa,
        "p_comp_pa": v.pressure_comp_pa,
        "t_k": v.temperature_k,
        "dpdt_pa_s": [w.dpdt_comp_pa_s for w in v.dpdt],
        "dpdt_se_pa_s": [w.stderr_comp_pa_s for w in v.dpdt],
        "best_window_s": v.best_window_s,
        "leak_kg_day": v.mass_rate_kg_day,
        "leak_sigma_kg_day": v.mass_rate_sigma_kg_day,
        "hole_mm": v.hole_mm,
        "reserve_s": [v.reserve_s_linear, v.reserve_s_orifice],
        "regime": v.regime.name,
        "n_healthy": v.n_healthy_sensors,
        "group_m3": v.group_volume_m3,
        "state": v.state.name,
    }


class TelemetryWriter:
    """A listener writing JSON lines to a stream or a file."""

    def __init__(
        self,
        target: str | Path | TextIO = "-",
        *,
        rate_hz: float = 1.0,
        wall_clock: Callable[[], float] = time.monotonic,
        events: bool = True,
        estimates: bool = True,
    ):
        if target == "-" or target is None:
            self._out, self._own = sys.stdout, False
        elif hasattr(target, "write"):
            self._out, self._own = target, False
        else:
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                self._out, self._own = open(target, "a", encoding="utf-8"), True  # noqa: SIM115
            except OSError as exc:
                raise InputFileError(str(target), exc.strerror or str(exc)) from None
        self._period = 1.0 / rate_hz if rate_hz > 0 else math.inf
        self._next_t = -math.inf
        self._wall = wall_clock
        self._last_flush = wall_clock()
        self._events = events
        self._estimates = estimates
        self._header_done = False

    def write(self, obj: dict) -> None:
        self._out.write(json.dumps(_compact(obj), allow_nan=False, default=str) + "\n")
        now = self._wall()
        if now - self._last_flush >= 1.0:
            self._out.flush()
            self._last_flush = now

    def record_tick(self, result) -> None:
        if self._events:
            for ev in result.events:
                self.write({"type": "event", **ev.to_json_dict()})
        if self._estimates and result.t_s >= self._next_t:
            self._next_t = result.t_s + self._period
            volumes = result.volumes
            if not self._header_done and volumes:
                self._header_done = True
                self.write(
                    {
                        "type": "header",
                        "windows_s": [w.window_s for w in volumes[0].dpdt],
                        "volumes": [v.volume for v in volumes],
                    }
                )
            self.write(
                {
                    "type": "estimate",
                    "t_s": round(result.t_s, 6),
                    "volumes": {v.volume: _estimate(v) for v in volumes},
                }
            )

    def record_loop(self, t_s: float, health) -> None:
        self.write({"type": "loop", "t_s": round(t_s, 6), **health.to_json_dict()})

    def record_link_event(self, t_s: float, link: str, kind: str, detail: str = "") -> None:
        self.write(
            {"type": "link", "t_s": round(t_s, 6), "link": link, "kind": kind, "detail": detail}
        )

    def close(self) -> None:
        try:
            self._out.flush()
        finally:
            if self._own:
                self._out.close()
