"""SQLite archive (WAL): per-second estimates, every event, identities, configuration.

Committed at least once a second of wall time, so a SIGKILL loses at most the
last second and never corrupts what was committed (SQLite's WAL journal);
``close()`` (also on SIGTERM and Ctrl-C, by the caller) commits and
checkpoints.  Times ``t_s`` are monitor host times in seconds.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from common.errors import InputFileError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS estimates (
    t_s REAL NOT NULL, volume TEXT NOT NULL,
    pressure_pa REAL, pressure_comp_pa REAL, temperature_k REAL,
    dpdt_pa_s REAL, dpdt_sigma_pa_s REAL, window_s REAL,
    mass_rate_kg_day REAL, mass_rate_sigma_kg_day REAL, hole_mm REAL,
    reserve_s_linear REAL, reserve_s_orifice REAL, regime TEXT,
    n_healthy INTEGER, group_volume_m3 REAL);
CREATE INDEX IF NOT EXISTS estimates_by_volume ON estimates (volume, t_s);
CREATE TABLE IF NOT EXISTS events (
    t_s REAL NOT NULL, source TEXT, level TEXT, kind TEXT, transition TEXT,
    value REAL, limit_value REAL, unit TEXT, message TEXT, replayed INTEGER);
CREATE TABLE IF NOT EXISTS sensors (
    t_s REAL NOT NULL, sensor_id TEXT, volume TEXT, health TEXT, reasons TEXT,
    pressure_pa REAL, temperature_c REAL, last_sample_age_s REAL);
CREATE TABLE IF NOT EXISTS identities (
    t_s REAL NOT NULL, link TEXT, addr INTEGER, model TEXT, serial INTEGER,
    firmware TEXT, range_min_pa REAL, range_max_pa REAL, rate_mhz INTEGER);
CREATE TABLE IF NOT EXISTS link_events (t_s REAL NOT NULL, link TEXT, kind TEXT, detail TEXT);
"""

#: Sensor snapshots are archived at this period (s); health changes are events.
SENSOR_PERIOD_S = 60.0


def _real(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class Archive:
    """Append-only archive writer; a listener fed by the monitor loop."""

    def __init__(
        self,
        path: str | Path,
        *,
        commit_interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.monotonic,
        synchronous: str = "NORMAL",
    ):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level="DEFERRED")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(SCHEMA)
            self._db.commit()
        except (sqlite3.Error, OSError) as exc:
            raise InputFileError(str(path), f"cannot open archive: {exc}") from None
        self._wall = wall_clock
        self._interval = commit_interval_s
        self._last_commit = wall_clock()
        self._last_estimate_s: float | None = None
        self._last_sensor_s = -math.inf
        self.rows_written = 0

    # -- writers ---------------------------------------------------------
    def write_meta(self, key: str, value) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, text))
        self._maybe_commit()

    def record_tick(self, result) -> None:
        """Events of every tick; estimates once per second of ``t_s``; sensors once a minute."""
        for ev in result.events:
            self.record_event(ev)
        t = result.t_s
        if self._last_estimate_s is None or math.floor(t) > math.floor(self._last_estimate_s):
            self._last_estimate_s = t
            rows = []
            for v in result.volumes:
                best = next((w for w in v.dpdt if w.window_s == v.best_window_s), None)
                rows.append(
                    (
                        t,
                        v.volume,
                        _real(v.pressure_pa),
                        _real(v.pressure_comp_pa),
                        _real(v.temperature_k),
                        _real(best.dpdt_comp_pa_s) if best else None,
                        _real(best.stderr_comp_pa_s) if best else None,
                        _real(v.best_window_s),
                        _real(v.mass_rate_kg_day),
                        _real(v.mass_rate_sigma_kg_day),
                        _real(v.hole_mm),
                        _real(v.reserve_s_linear),
                        _real(v.reserve_s_orifice),
                        v.regime.name,
                        int(v.n_healthy_sensors),
                        _real(v.group_volume_m3),
                    )
                )
            self._db.executemany(
                "INSERT INTO estimates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            self.rows_written += len(rows)
        if t - self._last_sensor_s >= SENSOR_PERIOD_S:
            self._last_sensor_s = t
            self._db.executemany(
                "INSERT INTO sensors VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        t,
                        s.sensor_id,
                        s.volume,
                        s.health.name,
                        ",".join(r.name for r in s.reasons),
                        _real(s.pressure_pa),
                        _real(s.temperature_c),
                        _real(s.last_sample_age_s),
                    )
                    for s in result.sensors
                ],
            )
        self._maybe_commit()

    def record_event(self, ev) -> None:
        self._db.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                ev.t_s,
                ev.source,
                ev.level.name,
                ev.kind.name,
                ev.transition.name,
                _real(ev.value),
                _real(ev.limit),
                ev.unit,
                ev.message,
                int(ev.replayed),
            ),
        )
        self.rows_written += 1
        self._maybe_commit()

    def record_identity(self, t_s: float, link: str, identity) -> None:
        fw = f"{identity.firmware >> 8}.{identity.firmware & 0xFF}"
        self._db.execute(
            "INSERT INTO identities VALUES (?,?,?,?,?,?,?,?,?)",
            (
                t_s,
                link,
                identity.addr,
                identity.model,
                identity.serial,
                fw,
                _real(identity.range_min_pa),
                _real(identity.range_max_pa),
                identity.rate_mhz,
            ),
        )
        self._maybe_commit()

    def record_link_event(self, t_s: float, link: str, kind: str, detail: str = "") -> None:
        self._db.execute("INSERT INTO link_events VALUES (?,?,?,?)", (t_s, link, kind, detail))
        self._maybe_commit()

    # -- durability ------------------------------------------------------
    def _maybe_commit(self) -> None:
        now = self._wall()
        if now - self._last_commit >= self._interval:
            self.commit()

    def commit(self) -> None:
        self._db.commit()
        self._last_commit = self._wall()

    def close(self) -> None:
        if self._db is None:
            return
        self._db.commit()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self._db.close()
        self._db = None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_archive(path: str | Path) -> sqlite3.Connection:
    """Read-only connection to an archive; a clear error if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(str(path), "no such archive file")
    try:
        # a URI: "#", "%" and "?" in the path must be quoted (file:a%23b.sqlite)
        db = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise InputFileError(str(path), f"not a cabinwatch archive ({exc})") from None
    if not {"estimates", "events"} <= tables:
        raise InputFileError(str(path), "not a cabinwatch archive (no estimates/events tables)")
    return db
