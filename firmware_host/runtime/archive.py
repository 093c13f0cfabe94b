"""SQLite archive (WAL): per-second estimates, every event, operator actions, identities,
configuration.

Rows are buffered in memory and written in one transaction at most every
``commit_interval_s`` (0.5 s) of wall time, and at once when the buffer holds
a new second's estimates (at most every ``URGENT_GAP_S`` of wall time), so a SIGKILL loses at
most the last second of estimates and never corrupts what was committed
(SQLite's WAL journal).  ``record_operator_action`` commits at once: an
operator's acknowledgement or hatch change is on disk before the reply.
``close()`` (also on SIGTERM and Ctrl-C, by the caller) commits and
checkpoints.  Times ``t_s`` are monitor host times in seconds.

A write that fails (a full disk: ``database or disk is full``) never loses the
buffer: the rows wait in memory, at most ``MAX_PENDING_ROWS`` per table (the
oldest dropped beyond, counted in ``rows_dropped`` and in the meta key
``rows_dropped``; a healthy archive commits a full buffer at once), the connection is closed,
and with an ``OutputGuard`` the next try (a new connection) waits for the
guard's backoff (1 s doubling to 30 s); nothing is raised.  Without a guard
the error is raised, as from any file.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from common.errors import InputFileError
from common.outputguard import OutputGuard

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS estimates (
    t_s REAL NOT NULL, volume TEXT NOT NULL,
    pressure_pa REAL, pressure_comp_pa REAL, temperature_k REAL,
    dpdt_pa_s REAL, dpdt_sigma_pa_s REAL, window_s REAL,
    mass_rate_kg_day REAL, mass_rate_sigma_kg_day REAL, hole_mm REAL,
    reserve_s_linear REAL, reserve_s_orifice REAL, regime TEXT,
    n_healthy INTEGER, group_volume_m3 REAL, state TEXT);
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
CREATE TABLE IF NOT EXISTS operator_actions (
    t_s REAL NOT NULL, origin TEXT, action TEXT, target TEXT, ok INTEGER, reply TEXT);
"""

#: Sensor snapshots are archived at this period (s); health changes are events.
SENSOR_PERIOD_S = 60.0
#: Rows of one table held in memory while the archive cannot be written (the
#: oldest are dropped beyond): 10 000 estimate rows are 42 min of 4 volumes;
#: estimates and sensor snapshots at the bound hold 7.2 MB, every table at the
#: bound about 16 MB (tracemalloc).
MAX_PENDING_ROWS = 10_000
#: Buffered rows are committed at least this often (s of wall time) ...
COMMIT_INTERVAL_S = 0.5
#: ... and an estimate row at once, unless one was committed less than this (s of
#: wall time) ago: in real time (a row a second) always; a simulation running
#: faster than real time commits at most 20 times a second.
URGENT_GAP_S = 0.05

_INSERT = {
    "estimates": "INSERT INTO estimates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    "events": "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
    "sensors": "INSERT INTO sensors VALUES (?,?,?,?,?,?,?,?)",
    "identities": "INSERT INTO identities VALUES (?,?,?,?,?,?,?,?,?)",
    "link_events": "INSERT INTO link_events VALUES (?,?,?,?)",
    "operator_actions": "INSERT INTO operator_actions VALUES (?,?,?,?,?,?)",
}


def _real(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _add_state_column(db: sqlite3.Connection) -> None:
    """An archive written before estimates had a state gets the column (NULL in its
    old rows: those estimates were not judged)."""
    cols = {row[1] for row in db.execute("PRAGMA table_info(estimates)")}
    if "state" not in cols:
        db.execute("ALTER TABLE estimates ADD COLUMN state TEXT")


class Archive:
    """Append-only archive writer; a listener fed by the monitor loop.

    ``guard``: failures are kept in it and retried with its backoff instead of
    raised (the monitor's archive).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        commit_interval_s: float = COMMIT_INTERVAL_S,
        wall_clock: Callable[[], float] = time.monotonic,
        synchronous: str = "NORMAL",
        guard: OutputGuard | None = None,
        max_pending_rows: int = MAX_PENDING_ROWS,
    ):
        self.path = Path(path)
        self.guard = guard
        self._synchronous = synchronous
        self._wall = wall_clock
        self._interval = commit_interval_s
        self._max_rows = max_pending_rows
        self._pending: dict[str, deque] = {t: deque() for t in _INSERT}
        self._meta: dict[str, str] = {}
        self._urgent = False
        self._last_urgent_commit = -math.inf
        self._closed = False
        self._db: sqlite3.Connection | None = None
        self._last_commit = wall_clock()
        self._last_estimate_s: float | None = None
        self._last_sensor_s = -math.inf
        self.rows_written = 0
        self.rows_dropped: dict[str, int] = dict.fromkeys(_INSERT, 0)
        self.commits = 0
        try:
            self._open()
        except (sqlite3.Error, OSError) as exc:
            if guard is None:
                raise InputFileError(str(path), f"cannot open archive: {exc}") from None
            guard.failed(exc)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), isolation_level="DEFERRED")
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.executescript(SCHEMA)
            _add_state_column(db)
            db.commit()
        except BaseException:
            db.close()
            raise
        self._db = db

    # -- writers (buffer; commit when due) -----------------------------------
    def _add(self, table: str, row: tuple) -> None:
        q = self._pending[table]
        if len(q) >= self._max_rows:
            self._commit_guarded()  # a full buffer is written at once while that works
        if len(q) >= self._max_rows:
            q.popleft()
            self.rows_dropped[table] += 1
        q.append(row)

    def write_meta(self, key: str, value) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        self._meta[key] = text
        self._maybe_commit()

    def record_tick(self, result) -> None:
        """Events of every tick; estimates once per second of ``t_s``; sensors once a minute."""
        for ev in result.events:
            self._add_event(ev)
        t = result.t_s
        if self._last_estimate_s is None or math.floor(t) > math.floor(self._last_estimate_s):
            self._last_estimate_s = t
            for v in result.volumes:
                best = next((w for w in v.dpdt if w.window_s == v.best_window_s), None)
                self._add(
                    "estimates",
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
                        v.state.name,
                    ),
                )
            self._urgent = self._urgent or bool(result.volumes)
        if t - self._last_sensor_s >= SENSOR_PERIOD_S:
            self._last_sensor_s = t
            for s in result.sensors:
                self._add(
                    "sensors",
                    (
                        t,
                        s.sensor_id,
                        s.volume,
                        s.health.name,
                        ",".join(r.name for r in s.reasons),
                        _real(s.pressure_pa),
                        _real(s.temperature_c),
                        _real(s.last_sample_age_s),
                    ),
                )
        self._maybe_commit()

    def _add_event(self, ev) -> None:
        self._add(
            "events",
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

    def record_event(self, ev) -> None:
        self._add_event(ev)
        self._maybe_commit()

    def record_identity(self, t_s: float, link: str, identity) -> None:
        fw = f"{identity.firmware >> 8}.{identity.firmware & 0xFF}"
        self._add(
            "identities",
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
        self._add("link_events", (t_s, link, kind, detail))
        self._maybe_commit()

    def record_operator_action(
        self, t_s: float, origin: str, action: str, target: str, ok: bool, reply: dict
    ) -> None:
        """An operator's command (``origin`` ``control`` or ``keys``; ``action`` ``ack``,
        ``hatch``, ``limits``; ``target`` the alarm key, hatch or limit set), committed
        at once (through the guard's backoff when failing)."""
        self._add(
            "operator_actions",
            (t_s, origin, action, target, int(ok), json.dumps(reply, default=str)),
        )
        self._commit_guarded()

    # -- durability ------------------------------------------------------
    @property
    def pending_rows(self) -> int:
        """Rows in memory not yet committed."""
        return sum(len(q) for q in self._pending.values()) + len(self._meta)

    def _maybe_commit(self) -> None:
        now = self._wall()
        if now - self._last_commit >= self._interval or (
            self._urgent and now - self._last_urgent_commit >= URGENT_GAP_S
        ):
            self._commit_guarded()

    def _commit_guarded(self) -> None:
        if self.guard is None:
            self.commit()
        elif self.guard.ready():
            try:
                self.commit()
            except (sqlite3.Error, OSError) as exc:
                self.guard.failed(exc)
            else:
                self.guard.succeeded()

    def commit(self) -> None:
        """Write every buffered row in one transaction (opening the archive again
        after a failure).  On an error the rows stay buffered, the connection is
        closed and the error raised."""
        self._last_commit = self._wall()
        if self._urgent:
            self._last_urgent_commit = self._last_commit
        if self._closed:
            return
        try:
            if self._db is None:
                self._open()
            db = self._db
            n = 0
            for table, q in self._pending.items():
                if q:
                    db.executemany(_INSERT[table], q)
                    n += len(q)
            if self._meta:
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", self._meta.items())
            if any(self.rows_dropped.values()):
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    ("rows_dropped", json.dumps(self.rows_dropped)),
                )
            db.commit()
        except BaseException:
            self._drop_connection()
            raise
        for q in self._pending.values():
            q.clear()
        self._meta.clear()
        self._urgent = False
        self.rows_written += n
        self.commits += 1

    def _drop_connection(self) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        try:
            db.rollback()
        except sqlite3.Error:
            pass
        try:
            db.close()
        except sqlite3.Error:
            pass

    def close(self) -> None:
        """Commit what is buffered (one last try, whatever the backoff), checkpoint and
        close; with a guard a failure is kept in it, not raised."""
        if self._closed:
            return
        try:
            self.commit()
        except (sqlite3.Error, OSError) as exc:
            if self.guard is None:
                self._closed = True
                raise
            self.guard.failed(exc)
        self._closed = True
        db, self._db = self._db, None
        if db is None:
            return
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        try:
            db.close()
        except sqlite3.Error:
            pass

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
