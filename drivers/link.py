"""A serial link that survives the port going away: open, read in bulk, reconnect.

``SerialLink`` opens any pyserial port or URL (``/dev/ttyUSB0``, ``/dev/pts/N``,
a udev ``/dev/serial/by-id/...`` symlink, ``socket://127.0.0.1:7000``) with
``serial.serial_for_url`` and runs one reader thread that

* waits in ``select.poll`` on the port's ``fileno()`` (plus a wake-up pipe, so
  ``stop()`` is immediate) and reads everything that is there in one call: a
  bulk read costs one system call per burst instead of one per frame, and the
  thread sleeps in ``poll`` when the line is idle (no CPU);
* opens device paths with pyserial's ``exclusive=True`` (an ``flock`` on the
  port), so two processes never share a port and split its bytes; a port held
  by another process fails to open and is retried with backoff;
* treats every ``SerialException``/``OSError`` while opening, reading or
  configuring as a disconnect: an unplugged adapter, a closed pseudo-terminal
  ("device reports readiness to read but returned no data", ``EIO``) and a
  dropped socket ("socket disconnected") all look the same.  The disconnect is
  reported once (one ``LinkEvent``), the port is reopened with exponential
  backoff, and the reconnection carries the gap (start, end, duration);
* never dies silently: an exception from a callback is counted and kept as
  ``last_error``; anything else that escapes the loop is recorded, raises the
  ``reader_alive=False`` health flag and the link can be restarted
  (``ensure_running``).

Timing traps handled (../shared/SERIAL_NOTES.md): the port is opened with
``timeout=0`` so a read returns what is buffered at once (pyserial's
``read(n, timeout=T)`` waits the whole ``T`` when fewer than ``n`` bytes come);
``socket://`` reports ``in_waiting`` as 0 or 1, so reads ask for
``read_size`` bytes, never ``in_waiting``; with ``timeout=0`` each read is a
single ``recv``, so pyserial's "socket disconnected" at the end of the stream
never drops bytes it already collected.  Existence is never checked with
``list_ports`` (it does not list pseudo-terminals): opening is the check.

All times are seconds on the injected ``clock`` (monotonic).
"""

from __future__ import annotations

import enum
import logging
import os
import select
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import serial

__all__ = [
    "LinkDownError",
    "LinkEvent",
    "LinkEventKind",
    "LinkGap",
    "LinkState",
    "LinkStats",
    "SerialLink",
    "is_device_path",
]

log = logging.getLogger(__name__)

#: Extra non-blocking reads after a read, while bytes are already waiting ...
_MAX_COALESCE_READS = 16
#: ... tried only after a read this long (a pty hands out at most 4095 bytes per
#: read); a smaller read means the reader is keeping up, so it costs nothing.
_COALESCE_MIN_BYTES = 2048

Clock = Callable[[], float]
#: Called from the reader thread with each chunk of bytes and its receive time (s).
DataCallback = Callable[[bytes, float], None]
#: Called from the reader thread when the reader is idle (no bytes for ``idle_s``).
IdleCallback = Callable[[float], None]


class LinkState(enum.Enum):
    """Where a link is in its life."""

    CONNECTING = "connecting"  # opening for the first time
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # lost; reopening with backoff
    STOPPED = "stopped"  # not started, or stopped


class LinkEventKind(enum.Enum):
    """What a ``LinkEvent`` reports."""

    CONNECTED = "connected"  # first successful open
    DISCONNECTED = "disconnected"  # the port went away (reported once per loss)
    RECONNECTED = "reconnected"  # open again after a loss; carries the gap
    READER_ERROR = "reader_error"  # an unexpected exception in the reader (kept, not fatal)
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class LinkGap:
    """A time without a connection: from the loss to the reopen, seconds on the link's clock."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """One change of a link's connection, at ``time_s`` on the link's clock."""

    link: str
    kind: LinkEventKind
    time_s: float
    message: str = ""
    gap: LinkGap | None = None


@dataclass(frozen=True, slots=True)
class LinkStats:
    """A snapshot of one link's transport state and counters.

    ``gaps``/``gap_total_s`` count completed disconnections (reopened);
    ``open_failures`` counts failed open attempts (each backoff step);
    ``last_rx_s`` is when the last bytes came (None: never);
    ``reader_cpu_s`` is the CPU time the reader threads have used.
    """

    name: str
    url: str
    state: LinkState
    connected_since_s: float | None
    connects: int
    reconnects: int
    disconnects: int
    gaps: int
    gap_total_s: float
    open_failures: int
    bytes_in: int
    bytes_out: int
    reads: int
    last_rx_s: float | None
    callback_errors: int
    last_error: str | None
    last_error_s: float | None
    reader_alive: bool
    reader_restarts: int
    reader_cpu_s: float


def is_device_path(url: str) -> bool:
    """True for a device path (``/dev/ttyUSB0``), False for a pyserial URL (``socket://``)."""
    return "://" not in url


class LinkDownError(ConnectionError):
    """A write on a link that is not connected, or whose write failed."""


class SerialLink:
    """One byte stream to a port or URL, kept open by a reader thread.

    ``on_data(data, now_s)`` gets every chunk read, in order, from the reader
    thread; ``on_event(event)`` gets every ``LinkEvent``; ``on_idle(now_s)`` is
    called when no bytes came for ``idle_s`` (for partial-frame timeouts).
    Callbacks must be quick; an exception in one is counted and kept, never
    fatal.

    ``backoff_min_s``..``backoff_max_s``: delay between reopen attempts,
    doubling after each failure; a connection that lasted less than
    ``stable_s`` counts as a failure (no tight reconnect loop on a flapping
    port), a longer one is reopened at once.  ``read_size``: bytes asked for
    per read; ``idle_s``: poll interval, and the idle callback's period.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        baudrate: int = 115200,
        on_data: DataCallback | None = None,
        on_event: Callable[[LinkEvent], None] | None = None,
        on_idle: IdleCallback | None = None,
        clock: Clock = time.monotonic,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
        idle_s: float = 0.1,
        read_size: int = 65536,
        stable_s: float = 1.0,
        write_timeout_s: float = 1.0,
        serial_kwargs: dict | None = None,
    ):
        if backoff_min_s <= 0 or backoff_max_s < backoff_min_s:
            raise ValueError("need 0 < backoff_min_s <= backoff_max_s")
        self.url = url
        self.name = name or url
        self.baudrate = baudrate
        self.clock = clock
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.idle_s = idle_s
        self.read_size = read_size
        self.stable_s = stable_s
        self.write_timeout_s = write_timeout_s
        self._serial_kwargs = dict(serial_kwargs or {})
        self._on_data = on_data
        self._on_event = on_event
        self._on_idle = on_idle

        self._port: serial.SerialBase | None = None
        self._port_lock = threading.Lock()  # guards _port swaps and writes
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._life_lock = threading.Lock()  # start / restart
        self._state = LinkState.STOPPED
        self._state_changed = threading.Condition()

        self._connected_since: float | None = None
        self._lost_at: float | None = None
        self._connects = 0
        self._disconnects = 0
        self._gaps = 0
        self._gap_total_s = 0.0
        self._open_failures = 0
        self._outage_failures = 0  # failed opens since the last successful one
        self._bytes_in = 0
        self._bytes_out = 0
        self._reads = 0
        self._last_rx_s: float | None = None
        self._callback_errors = 0
        self._last_error: str | None = None
        self._last_error_s: float | None = None
        self._reader_restarts = 0
        self._reader_cpu_s = 0.0  # the running reader thread's CPU time
        self._reader_cpu_done_s = 0.0  # ended reader threads' CPU time

    # -- public ------------------------------------------------------------
    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def connects(self) -> int:
        """Successful opens so far (1 after the first connect, +1 per reconnect)."""
        return self._connects

    def start(self) -> None:
        """Start the reader thread (it opens the port); no-op if it runs."""
        with self._life_lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        if self._wake_r < 0:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
        self._set_state(LinkState.CONNECTING if self._connects == 0 else LinkState.DISCONNECTED)
        self._thread = threading.Thread(target=self._run, name=f"link-{self.name}", daemon=True)
        self._thread.start()

    def ensure_running(self) -> bool:
        """Restart the reader if it died; True if it had to be restarted."""
        with self._life_lock:
            if self._stop.is_set() or self._thread is None or self._thread.is_alive():
                return False
            log.error("link %s: reader thread had died; restarting it", self.name)
            self._reader_restarts += 1
            self._start_locked()
            return True

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the reader, close the port; idempotent."""
        self._stop.set()
        self._wake()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout_s)
        self._close_port()
        if self._state is not LinkState.STOPPED:
            self._set_state(LinkState.STOPPED)
            self._emit(LinkEventKind.STOPPED, self.clock())
        if t is None or not t.is_alive():
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._wake_r = self._wake_w = -1

    def write(self, data: bytes) -> int:
        """Send ``data`` (thread-safe); raises ``LinkDownError`` if not connected or it fails."""
        with self._port_lock:
            port = self._port
            if port is None or self._state is not LinkState.CONNECTED:
                raise LinkDownError(f"link {self.name} is {self._state.value}")
            try:
                n = port.write(data)
            except (serial.SerialException, OSError) as exc:
                self._record_error(f"write: {exc}", self.clock())
                raise LinkDownError(f"link {self.name}: write failed: {exc}") from exc
        n = len(data) if n is None else n
        with self._stats_lock:
            self._bytes_out += n
        return n

    def wait_state(self, state: LinkState, timeout_s: float) -> bool:
        """Block until the link is in ``state`` (True) or ``timeout_s`` passes (False)."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self._state is state, timeout_s)

    def stats(self) -> LinkStats:
        alive = self._thread is not None and self._thread.is_alive()
        with self._stats_lock:
            return LinkStats(
                name=self.name,
                url=self.url,
                state=self._state,
                connected_since_s=self._connected_since,
                connects=self._connects,
                reconnects=max(0, self._connects - 1),
                disconnects=self._disconnects,
                gaps=self._gaps,
                gap_total_s=self._gap_total_s,
                open_failures=self._open_failures,
                bytes_in=self._bytes_in,
                bytes_out=self._bytes_out,
                reads=self._reads,
                last_rx_s=self._last_rx_s,
                callback_errors=self._callback_errors,
                last_error=self._last_error,
                last_error_s=self._last_error_s,
                reader_alive=alive,
                reader_restarts=self._reader_restarts,
                reader_cpu_s=self._reader_cpu_done_s + self._reader_cpu_s,
            )

    def __enter__(self) -> SerialLink:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the reader thread -------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - the thread must never die silently
            now = self.clock()
            self._record_error(f"reader died: {exc!r}", now, tb=True)
            self._close_port()
            if not self._stop.is_set():
                self._mark_lost(now)
                self._set_state(LinkState.DISCONNECTED)
                self._emit(LinkEventKind.READER_ERROR, now, f"reader died: {exc!r}")
        finally:
            with self._stats_lock:
                self._reader_cpu_done_s += time.thread_time()
                self._reader_cpu_s = 0.0

    def _loop(self) -> None:
        backoff = self.backoff_min_s
        while not self._stop.is_set():
            port = self._try_open()
            if port is None:
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            opened_at = time.monotonic()
            self._connected(port)
            try:
                self._read_until_lost(port)
            except (serial.SerialException, OSError, ValueError, TypeError) as exc:
                # ValueError/TypeError: pyserial on a closed fd / closed socket.
                if self._stop.is_set():
                    return
                self._lost(exc)
            if time.monotonic() - opened_at >= self.stable_s:
                backoff = self.backoff_min_s  # it was a good connection: reopen at once
            else:
                # A port that opens and fails at once (a flapping adapter, a server
                # that accepts and closes) is retried with backoff too.
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.backoff_max_s)

    def _try_open(self) -> serial.SerialBase | None:
        kwargs = dict(self._serial_kwargs)
        if is_device_path(self.url):
            # one process per port (flock, as pyserial does): a second monitor
            # gets "Could not exclusively lock port" instead of half the bytes
            kwargs.setdefault("exclusive", True)
        try:
            port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=0,
                write_timeout=self.write_timeout_s,
                **kwargs,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            now = self.clock()
            with self._stats_lock:
                self._open_failures += 1
                self._outage_failures += 1
                n = self._outage_failures
            self._record_error(f"open {self.url}: {exc}", now)
            if n == 1 or n % 50 == 0:  # a throttled warning, not one per attempt
                log.warning(
                    "link %s: cannot open %s (%d attempts): %s", self.name, self.url, n, exc
                )
            return None
        if self._stop.is_set():
            port.close()
            return None
        return port

    def _connected(self, port: serial.SerialBase) -> None:
        now = self.clock()
        with self._port_lock:
            self._port = port
        with self._stats_lock:
            self._connects += 1
            self._outage_failures = 0
            self._connected_since = now
            first = self._connects == 1
            gap = None
            if self._lost_at is not None:
                gap = LinkGap(self._lost_at, now)
                self._gaps += 1
                self._gap_total_s += gap.duration_s
                self._lost_at = None
        self._set_state(LinkState.CONNECTED)
        if first:
            log.info("link %s: connected to %s", self.name, self.url)
            self._emit(LinkEventKind.CONNECTED, now, self.url)
        else:
            msg = f"reopened {self.url}"
            if gap is not None:
                msg += f" after {gap.duration_s:.3f} s"
            log.warning("link %s: %s", self.name, msg)
            self._emit(LinkEventKind.RECONNECTED, now, msg, gap)

    def _lost(self, exc: BaseException) -> None:
        now = self.clock()
        self._close_port()
        self._mark_lost(now)
        self._record_error(f"disconnected: {exc}", now)
        self._set_state(LinkState.DISCONNECTED)
        log.warning("link %s: disconnected: %s (reopening with backoff)", self.name, exc)
        self._emit(LinkEventKind.DISCONNECTED, now, str(exc))

    def _mark_lost(self, now: float) -> None:
        with self._stats_lock:
            if self._connected_since is not None:
                self._disconnects += 1
                self._connected_since = None
            if self._lost_at is None and self._connects:
                self._lost_at = now

    def _read_until_lost(self, port: serial.SerialBase) -> None:
        try:
            fd = port.fileno()
        except (AttributeError, NotImplementedError, OSError, ValueError):
            fd = None
        wake = self._wake_r
        size = self.read_size
        stop = self._stop
        idle_s = self.idle_s
        on_idle = self._on_idle
        clock = self.clock
        if fd is None:
            port.timeout = idle_s
        else:
            poller = select.poll()  # not select(): no limit on fd numbers
            poller.register(fd, select.POLLIN | select.POLLPRI)
            poller.register(wake, select.POLLIN)
            idle_ms = max(1, int(idle_s * 1000))
        n_reads = 0
        while not stop.is_set():
            failure: BaseException | None = None
            if fd is not None:
                ready = [f for f, _ in poller.poll(idle_ms)]
                if wake in ready:
                    self._drain_wake()
                    if stop.is_set():
                        return
                if fd not in ready:
                    self._reader_cpu_s = time.thread_time()
                    if on_idle is not None:
                        self._call(on_idle, clock())
                    continue
                # timeout=0: one os.read / recv of what is there; b"" with readiness
                # reported means the device is gone, which pyserial raises.
                data = port.read(size)
                if _COALESCE_MIN_BYTES <= len(data) < size:
                    data, failure = self._coalesce(port, data, size)
            else:
                data = port.read(max(port.in_waiting, 1))
                if not data:
                    if on_idle is not None:
                        self._call(on_idle, clock())
                    continue
            if not data:
                # readiness reported but nothing read (a socket's spurious wake-up)
                continue
            now = clock()
            n_reads += 1
            with self._stats_lock:
                self._bytes_in += len(data)
                self._reads += 1
                self._last_rx_s = now
            if self._on_data is not None:
                self._call(self._on_data, data, now)
            if failure is not None:
                raise failure
            if n_reads & 0x3F == 0:
                self._reader_cpu_s = time.thread_time()

    def _coalesce(
        self, port: serial.SerialBase, data: bytes, size: int
    ) -> tuple[bytes, BaseException | None]:
        """Read on while more is already waiting (a pty hands out <= 4095 bytes per read).

        Bigger chunks take the decoder's vectorized path when the reader is
        behind; when it keeps up this costs one empty non-blocking read (and at
        most ``_MAX_COALESCE_READS`` reads on a trickling line, so a few tens of
        microseconds of latency at worst).  If
        the port fails here, the bytes already read are delivered first.
        """
        buf = bytearray(data)
        try:
            for _ in range(_MAX_COALESCE_READS):
                more = port.read(size - len(buf))
                if not more:
                    break
                buf += more
                if len(buf) >= size:
                    break
        except (serial.SerialException, OSError, ValueError, TypeError) as exc:
            return bytes(buf), exc
        return bytes(buf), None

    # -- helpers -----------------------------------------------------------
    def _call(self, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a callback never kills the reader
            now = self.clock()
            with self._stats_lock:
                self._callback_errors += 1
                first = self._callback_errors == 1
            self._record_error(f"callback {getattr(fn, '__name__', fn)}: {exc!r}", now, tb=first)
            if first:
                self._emit(LinkEventKind.READER_ERROR, now, f"callback error: {exc!r}")

    def _emit(self, kind: LinkEventKind, now: float, message: str = "", gap=None) -> None:
        if self._on_event is None:
            return
        event = LinkEvent(self.name, kind, now, message, gap)
        try:
            self._on_event(event)
        except Exception as exc:  # noqa: BLE001
            with self._stats_lock:
                self._callback_errors += 1
            self._record_error(f"event callback: {exc!r}", now)

    def _record_error(self, message: str, now: float, tb: bool = False) -> None:
        with self._stats_lock:
            self._last_error = message
            self._last_error_s = now
        if tb:
            log.error("link %s: %s\n%s", self.name, message, traceback.format_exc())

    def _set_state(self, state: LinkState) -> None:
        with self._state_changed:
            self._state = state
            self._state_changed.notify_all()

    def _close_port(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # noqa: BLE001 - closing a dead port may fail any way
                pass

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except OSError:
            pass
