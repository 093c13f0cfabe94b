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

* ``operator``: an operator's command (``origin``, ``action``, ``target``,
  ``ok``, ``reply``), fsynced before the command is answered;
* ``output``: after a failure, how many lines were dropped (``lines_dropped``).

Floats keep 7 significant digits.  Every line reaches the operating system
when it is written (a file is written unbuffered, a stream flushed per line),
so a SIGKILL loses nothing written.

A file that cannot be opened or written (a full disk, ``/dev/full``) never
stops the caller when the writer has an ``OutputGuard``: lines wait in a
backlog of at most ``MAX_BACKLOG_BYTES`` (the oldest dropped beyond, counted in
``lines_dropped``), the file is closed, and the next try (opening it again)
waits for the guard's backoff (1 s doubling to 30 s).  Without a guard the
error is raised.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO

from common.errors import InputFileError
from common.outputguard import OutputGuard

#: Significant digits kept in telemetry floats: below any transducer's resolution.
SIGNIFICANT_DIGITS = 7
#: Lines held while the output cannot be written (bytes of UTF-8; about 1000
#: estimate lines of 4 volumes).
MAX_BACKLOG_BYTES = 1 << 20


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
    """A listener writing JSON lines to a stream or a file; see module docstring."""

    def __init__(
        self,
        target: str | Path | TextIO = "-",
        *,
        rate_hz: float = 1.0,
        wall_clock: Callable[[], float] = time.monotonic,
        events: bool = True,
        estimates: bool = True,
        guard: OutputGuard | None = None,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
    ):
        self.guard = guard
        self._path: Path | None = None
        self._file: BinaryIO | None = None
        self._stream: TextIO | None = None
        if target == "-" or target is None:
            self._stream = sys.stdout
        elif hasattr(target, "write"):
            self._stream = target
        else:
            self._path = Path(target)
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._max_backlog = max_backlog_bytes
        self.lines_dropped = 0
        self._dropped_told = 0
        self._period = 1.0 / rate_hz if rate_hz > 0 else math.inf
        self._next_t = -math.inf
        self._wall = wall_clock
        self._events = events
        self._estimates = estimates
        self._header_done = False
        if self._path is not None:
            try:
                self._open()
            except OSError as exc:
                if guard is None:
                    raise InputFileError(str(target), exc.strerror or str(exc)) from None
                guard.failed(exc)

    def _open(self) -> None:
        path = self._path
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close() or on failure
        try:
            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                # a line cut short by a full disk is ended before the next one
                with open(path, "rb") as rd:
                    rd.seek(st.st_size - 1)
                    if rd.read(1) != b"\n":
                        self._backlog.appendleft(b"\n")
                        self._backlog_bytes += 1
        except OSError:
            fh.close()
            raise
        self._file = fh

    def write(self, obj: dict) -> None:
        """One JSON line, handed to the operating system now (or kept in the backlog)."""
        line = (json.dumps(_compact(obj), allow_nan=False, default=str) + "\n").encode()
        while self._backlog and self._backlog_bytes + len(line) > self._max_backlog:
            self._backlog_bytes -= len(self._backlog.popleft())
            self.lines_dropped += 1
        self._backlog.append(line)
        self._backlog_bytes += len(line)
        self._drain()

    def _drain(self, force: bool = False) -> None:
        guard = self.guard
        if guard is not None and not force and not guard.ready():
            return
        try:
            self._write_backlog()
        except (OSError, ValueError) as exc:
            self._drop_file()
            if guard is None:
                raise
            guard.failed(exc)
        else:
            if guard is not None:
                guard.succeeded()

    def _write_backlog(self) -> None:
        if self.lines_dropped > self._dropped_told:
            note = {"type": "output", "output": "telemetry", "lines_dropped": self.lines_dropped}
            self._backlog.appendleft((json.dumps(note) + "\n").encode())
            self._dropped_told = self.lines_dropped
        if self._stream is not None:
            while self._backlog:
                self._stream.write(self._backlog[0].decode())
                self._stream.flush()
                self._backlog_bytes -= len(self._backlog.popleft())
            return
        if self._file is None:
            self._open()
        while self._backlog:
            head = self._backlog[0]
            n = self._file.write(head)
            if n is None or n < len(head):  # a partial write: the rest next time
                n = n or 0
                self._backlog[0] = head[n:]
                self._backlog_bytes -= n
                raise OSError(f"short write of {self._path}")
            self._backlog.popleft()
            self._backlog_bytes -= n

    def _drop_file(self) -> None:
        fh, self._file = self._file, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass

    def sync(self) -> None:
        """Every line on the disk itself (fsync of a file; a stream is flushed)."""
        self._drain()
        if self._file is None or self._backlog:
            return
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            if self.guard is None:
                raise
            self.guard.failed(exc)

    @property
    def backlog_lines(self) -> int:
        """Lines waiting for the output to take them."""
        return len(self._backlog)

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

    def record_operator_action(
        self, t_s: float, origin: str, action: str, target: str, ok: bool, reply: dict
    ) -> None:
        """An operator's command, written and fsynced at once."""
        self.write(
            {
                "type": "operator",
                "t_s": round(t_s, 6),
                "origin": origin,
                "action": action,
                "target": target,
                "ok": bool(ok),
                "reply": reply,
            }
        )
        self.sync()

    def close(self) -> None:
        """Write the backlog (one last try), close the file; with a guard never raises."""
        if self._backlog:
            self._drain(force=True)
        self._drop_file()
