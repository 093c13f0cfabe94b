"""Polled multi-drop buses: the schedule, one transaction in flight, the line budget.

A polled family (KELLER bus, Modbus RTU, Paroscientific Digiquartz) answers
requests instead of streaming.  ``PolledDriver`` is a
``TransducerDriver`` (the link, reconnects, capture tap, hand-over and health
come from the base) that adds the policy every such bus needs:

* a poll thread that serves each configured device at its rate, earliest due
  first, one transaction in flight, with the protocol's silent interval
  between a reply and the next request;
* ``transact(request, expect)``: write, collect the reply within the reply
  window (the request's and reply's time on the wire plus ``reply_timeout_s``),
  strip a converter's echo, skip noise one byte at a time, count everything;
* a device whose cycle failed is retried after a backoff that doubles up to
  ``backoff_max_s`` (a silent device then costs the line little; the
  monitor's stale logic notices its missing samples);
* ``BusCounters`` in ``health().bus``: transactions, timeouts, CRC errors,
  exceptions by code, achieved poll rate, line utilisation.

How a transaction's bytes reach the devices is the driver's ``transport``:
``SerialTransport`` (the default) writes to the ``SerialLink`` and waits for
the reader thread's bytes in wall time; ``SimulatedLine`` (``cabinwatch
simulate``) hands the request to a function that answers at once and keeps
a simulated line clock, advanced by each transaction's time on the wire at
the link's baud rate (request, the device's ``reply_delay_s``, reply; the
whole reply window on a timeout) and by the silent interval; there the
schedule runs synchronously in ``poll_until(t_s)`` instead of the thread.

A family implements ``_scan(buf, start, tx) -> Scan`` (what the receive
buffer holds at ``start`` for the request in flight) and
``_service(device) -> bool`` (one poll cycle of a device: identification
when needed, then its reads, handing samples to ``emit_sample``).

Times: wire timeouts in wall seconds (``clock``); the schedule and the
samples' times on ``sample_clock`` (seconds), which runs ``speed`` times
faster than wall time on a sped-up HIL bench.  A sample's sensor clock
``t_us`` is the sample clock in microseconds since the device's epoch (the
link's start; a family may restart it to report a device reboot).
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from drivers.decoder import DecodeBatch
from drivers.driver import TransducerDriver
from drivers.frames import SAMPLE_RECORD_DTYPE, CommandFrame, Frame, IdentityFrame
from drivers.link import LinkDownError, LinkState
from drivers.match import Match, MatchStatus

log = logging.getLogger(__name__)

BITS_PER_CHAR = 10  # 8N1: start, 8 data, stop
RATE_WINDOW_S = 10.0


def wire_s(n_bytes: int, baudrate: int) -> float:
    """Seconds ``n_bytes`` take on a line at ``baudrate`` (8N1)."""
    return n_bytes * BITS_PER_CHAR / baudrate


@dataclass(frozen=True, slots=True)
class PollTarget:
    """One device to poll: bus address and samples per second."""

    addr: int
    rate_hz: float


class ScanStatus(enum.Enum):
    """What a family's ``_scan`` found at the start of the receive buffer."""

    REPLY = "reply"
    EXCEPTION = "exception"
    NEED_MORE = "need_more"
    BAD = "bad"  # drop ``size`` bytes (1 for noise, a whole frame for a foreign reply)


@dataclass(frozen=True, slots=True)
class Scan:
    """``status``; ``data``/``code`` of a reply/exception; ``size`` bytes it takes;
    ``reason`` of a BAD: ``"crc"``, ``"foreign"`` or ``"noise"``."""

    status: ScanStatus
    data: bytes = b""
    code: int = 0
    size: int = 0
    reason: str = ""


_SCAN_NEED_MORE = Scan(ScanStatus.NEED_MORE)
_SCAN_BAD_CRC = Scan(ScanStatus.BAD, size=1, reason="crc")


def scan_of_match(m: Match) -> Scan | None:
    """The ``Scan`` of a reply matcher's ``Match`` (``drivers.match``): a reply,
    an exception, more bytes needed or a bad CRC (drop one byte); None for
    another address or function (the family tells a foreign frame from noise)."""
    st = m.status
    if st is MatchStatus.REPLY:
        return Scan(ScanStatus.REPLY, data=m.data, size=m.size)
    if st is MatchStatus.EXCEPTION:
        return Scan(ScanStatus.EXCEPTION, code=m.code, size=m.size)
    if st is MatchStatus.NEED_MORE:
        return _SCAN_NEED_MORE
    if st is MatchStatus.BAD_CRC:
        return _SCAN_BAD_CRC
    return None


class TxStatus(enum.Enum):
    """How a transaction ended."""

    OK = "ok"
    EXCEPTION = "exception"
    TIMEOUT = "timeout"  # no valid reply in the window (silence, noise, bad CRC)
    LINK_DOWN = "link_down"


@dataclass(frozen=True, slots=True)
class TxResult:
    """One transaction: ``status``, the reply's ``data`` or exception ``code``;
    ``t_mid_s`` the sample clock at the middle (request written .. reply complete)."""

    status: TxStatus
    data: bytes = b""
    code: int = 0
    t_mid_s: float = math.nan

    @property
    def ok(self) -> bool:
        return self.status is TxStatus.OK


@dataclass(frozen=True, slots=True)
class BusCounters:
    """A polled link's counters (counts since start; rates over the last ~10 s of wall time).

    ``poll_rate_hz``: samples per second (of the sample clock) achieved, against ``target_rate_hz``
    (the sum of the configured rates); ``line_utilisation``: fraction of
    wall time a transaction was in flight; ``overruns``: polls started more
    than one period late.
    """

    transactions: int = 0
    replies: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    exceptions: dict[int, int] = field(default_factory=dict)
    foreign_replies: int = 0
    bytes_discarded: int = 0
    bytes_unsolicited: int = 0
    echo_errors: int = 0
    retries: int = 0
    reinitialisations: int = 0
    reboots: int = 0
    poll_restarts: int = 0
    samples: int = 0
    overruns: int = 0
    devices_failing: int = 0
    poll_rate_hz: float = 0.0
    target_rate_hz: float = 0.0
    line_utilisation: float = 0.0

    def to_json_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}  # type: ignore[attr-defined]
        out["exceptions"] = {str(k): v for k, v in self.exceptions.items()}
        return out


@dataclass
class DeviceState:
    """The poll thread's state of one device (sample-clock seconds)."""

    target: PollTarget
    next_due_s: float = 0.0
    epoch_s: float = 0.0
    initialised: bool = False
    ever_initialised: bool = False
    failures: int = 0
    seq: int = 0
    info: dict = field(default_factory=dict)

    @property
    def addr(self) -> int:
        return self.target.addr

    @property
    def period_s(self) -> float:
        return 1.0 / self.target.rate_hz


@dataclass
class _Pending:
    request: bytes
    expect: object
    echo_left: int
    #: this request's reply window after the wire time (None: the link's)
    reply_timeout_s: float | None = None
    #: the device's delay before this reply (None: the driver's ``reply_delay_s``)
    reply_delay_s: float | None = None
    result: Scan | None = None
    saw_crc_error: bool = False
    #: the driver's clock and sample clock when the reader completed the reply
    t_reply: float = math.nan
    s_reply: float = math.nan


@dataclass(frozen=True, slots=True)
class Exchange:
    """When one transaction's request went out and its wait ended: ``t_*`` on the
    driver's ``clock``, ``s_*`` on its ``sample_clock`` (the reply, if any, is in
    the ``_Pending``'s ``result``)."""

    t_write: float
    t_end: float
    s_write: float
    s_end: float


class SerialTransport:
    """A polled driver's transactions over its ``SerialLink`` in wall time (the default):
    write the request, let the reader thread's bytes finish the transaction
    (``_decode`` -> ``_consume``) or the reply window pass."""

    simulated = False

    def bind(self, driver: PolledDriver) -> None:
        self.driver = driver

    def link_up(self) -> bool:
        return self.driver.link.state is LinkState.CONNECTED

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry's backoff); returns early when polling stops."""
        self.driver._stop_poll.wait(seconds)

    def exchange(self, tx: _Pending, reply_size: int) -> Exchange | None:
        """Write ``tx.request`` and wait for its reply or the end of the reply
        window; None when the link refused the write."""
        d = self.driver
        wait = d._ready_at_s - d.clock()
        if wait > 0:
            time.sleep(wait)
        with d._rx_cond:
            if d._rx:
                d._c["bytes_unsolicited"] += len(d._rx)
                d._rx.clear()
            d._pending = tx
        t_write = d.clock()
        s_write = d.sample_clock()
        try:
            d.link.write(tx.request)
        except LinkDownError:
            with d._rx_cond:
                d._pending = None
            return None
        deadline = t_write + d.reply_window_s(len(tx.request), reply_size, tx.reply_timeout_s)
        with d._rx_cond:
            while tx.result is None and not d._stop_poll.is_set():
                left = deadline - d.clock()
                if left <= 0:
                    break
                d._rx_cond.wait(left)
            d._pending = None
        if tx.result is not None:  # ended when the reader had the reply, not when we woke
            return Exchange(t_write, tx.t_reply, s_write, tx.s_reply)
        return Exchange(t_write, d.clock(), s_write, d.sample_clock())


class SimulatedLine:
    """A polled link on a simulated clock, in process (``cabinwatch simulate``).

    ``answer(request, t_s) -> bytes``: what comes back from the line (echo,
    replies, after any link faults; b"" for silence) for a request whose last
    byte reaches the devices at simulated time ``t_s``.  The line clock
    (``clock()``, seconds, from ``t0_s``) is the driver's ``clock`` and
    ``sample_clock``: a transaction starts when the line is free (the previous
    one's end plus the silent interval) and takes its time on the wire at the
    driver's ``baudrate`` (8N1): the request, the device's ``reply_delay_s``
    and the bytes that came back (an echo overlaps the request: no extra time);
    without a valid reply it takes the driver's whole reply window.  A retry's
    backoff advances the clock.  Deterministic: no wall time, no threads.
    """

    simulated = True

    def __init__(self, answer: Callable[[bytes, float], bytes], t0_s: float = 0.0):
        self.answer = answer
        self.now_s = float(t0_s)

    def clock(self) -> float:
        return self.now_s

    def bind(self, driver: PolledDriver) -> None:
        self.driver = driver

    def link_up(self) -> bool:
        return True  # a lost line is silence: timeouts (the emulator drops the request)

    def pause(self, seconds: float) -> None:
        self.now_s += seconds

    def exchange(self, tx: _Pending, reply_size: int) -> Exchange:
        d = self.driver
        t = max(self.now_s, d._ready_at_s)
        n_req = len(tx.request)
        t_req = t + wire_s(n_req, d.baudrate)
        data = self.answer(tx.request, t_req)
        with d._rx_cond:
            if d._rx:
                d._c["bytes_unsolicited"] += len(d._rx)
                d._rx.clear()
            d._pending = tx
            if data:
                d._rx += data
                d._consume(tx)
            d._pending = None
        if tx.result is not None:
            echo = n_req if d.echo else 0
            delay = d.reply_delay_s if tx.reply_delay_s is None else tx.reply_delay_s
            end = t_req + delay + wire_s(max(0, len(data) - echo), d.baudrate)
        else:
            end = t + d.reply_window_s(n_req, reply_size, tx.reply_timeout_s)
        self.now_s = end
        return Exchange(t, end, t, end)


class PolledDriver(TransducerDriver):
    """A request/reply bus behind the driver interface (see the module docstring).

    ``targets``: the devices and rates; ``reply_timeout_s``: the reply window
    after the request is on the wire; ``silent_s``: the gap after a reply
    before the next request; ``retries``: repeats of a transaction that got no
    valid reply; ``backoff_s``/``backoff_max_s``: the pause before a repeat
    and the cap of the doubling delay of a failing device; ``echo``: the
    adapter echoes every request (a KELLER RS-485 converter);
    ``reply_delay_s``: the devices' turnaround, what a ``SimulatedLine`` waits
    between request and reply; ``transport``: how the bytes travel
    (``SerialTransport()``, the default, or a ``SimulatedLine``, whose clock
    then is the driver's ``clock`` and ``sample_clock``).
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        targets: Sequence[PollTarget],
        reply_timeout_s: float = 0.2,
        silent_s: float = 0.0005,
        retries: int = 1,
        backoff_s: float = 0.005,
        backoff_max_s: float = 2.0,
        echo: bool = False,
        sample_clock: Callable[[], float] | None = None,
        speed: float = 1.0,
        reply_delay_s: float = 0.0,
        transport: SerialTransport | SimulatedLine | None = None,
        **options,
    ):
        transport = transport if transport is not None else SerialTransport()
        if transport.simulated:
            options.setdefault("clock", transport.clock)
            sample_clock = sample_clock or transport.clock
        super().__init__(name, url, **options)
        self.transport = transport
        self.reply_delay_s = float(reply_delay_s)
        self.baudrate = int(options.get("baudrate", 115200))
        self.targets = tuple(targets)
        self.reply_timeout_s = float(reply_timeout_s)
        self.silent_s = float(silent_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.echo = bool(echo)
        self.sample_clock = sample_clock or self.clock
        self.speed = float(speed)
        self.devices = [DeviceState(t) for t in self.targets]
        self._rx = bytearray()
        self._rx_cond = threading.Condition()
        self._pending: _Pending | None = None
        self._tx_lock = threading.Lock()
        self._stop_poll = threading.Event()
        self._poll_thread: threading.Thread | None = None
        self._ready_at_s = 0.0  # wall: the line is free for the next request
        self._c = collections.Counter()
        self._exceptions: collections.Counter[int] = collections.Counter()
        self._busy_s = 0.0
        self._window: collections.deque[tuple[float, int, float]] = collections.deque()
        self._t0_wall = self.clock()
        self.poll_error: str | None = None
        #: simulated: (line time, SAMPLE row or DecodeBatch) handed over by ``poll_until``
        self._held: list[tuple[float, tuple | DecodeBatch]] = []
        self._sim_started = False
        transport.bind(self)

    # -- what a polled family implements -------------------------------------
    @abc.abstractmethod
    def _scan(self, buf: bytearray, start: int, expect: object) -> Scan:
        """What ``buf[start:]`` holds for the request in flight (``expect``: what
        the family passed to ``transact``, e.g. its address and function)."""

    @abc.abstractmethod
    def _service(self, dev: DeviceState) -> bool:
        """One poll cycle of ``dev`` (identify, read, ``emit_sample``); True if it worked."""

    # -- TransducerDriver hooks ------------------------------------------------
    def _decode(self, data: bytes, now_s: float) -> DecodeBatch:
        with self._rx_cond:
            tx = self._pending
            if tx is None:
                self._c["bytes_unsolicited"] += len(data)
                return _EMPTY
            self._rx += data
            self._consume(tx)
        return _EMPTY

    def _reset(self, now_s: float) -> DecodeBatch | None:
        with self._rx_cond:
            self._rx.clear()
            self._rx_cond.notify_all()
        return None

    def _encode_command(self, cmd: CommandFrame) -> bytes:
        raise LinkDownError(f"link {self.name}: a polled bus takes no native COMMANDs")

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Start the link and the poll thread."""
        super().start()
        if self._poll_thread is None or not self._poll_thread.is_alive():
            self._stop_poll.clear()
            now = self.sample_clock()
            for dev in self.devices:
                dev.next_due_s = now
                dev.epoch_s = now
            self._start_poller()

    def _start_poller(self) -> None:
        self._poll_thread = threading.Thread(
            target=self._poll_loop, name=f"poll-{self.name}", daemon=True
        )
        self._poll_thread.start()

    def ensure_running(self) -> bool:
        """Restart the reader or the poll thread if either died (``drain`` does this);
        a poll thread's death is kept in ``last_error`` and counted (``poll_restarts``)."""
        restarted = super().ensure_running()
        t = self._poll_thread
        if t is not None and not t.is_alive() and not self._stop_poll.is_set():
            self._c["poll_restarts"] += 1
            self._start_poller()
            restarted = True
        return restarted

    def stop(self) -> None:
        """Stop polling, then the link; idempotent."""
        self._stop_poll.set()
        with self._rx_cond:
            self._rx_cond.notify_all()
        t = self._poll_thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
        super().stop()

    # -- transactions ----------------------------------------------------------------
    def reply_window_s(
        self, request_size: int, reply_size: int, reply_timeout_s: float | None = None
    ) -> float:
        """How long a transaction waits for its reply after writing the request: the
        request's and reply's (and an echo's) time on the wire plus ``reply_timeout_s``
        (default the link's)."""
        echo = request_size if self.echo else 0
        window = self.reply_timeout_s if reply_timeout_s is None else reply_timeout_s
        return wire_s(request_size + reply_size + echo, self.baudrate) + window

    def transact(
        self,
        request: bytes,
        expect: object,
        reply_size: int,
        reply_timeout_s: float | None = None,
        reply_delay_s: float | None = None,
    ) -> TxResult:
        """Send ``request`` and wait for its reply (``expect`` goes to ``_scan``;
        ``reply_size`` bytes when normal); one transaction at a time; counted.
        ``reply_timeout_s``: this request's reply window (default: the link's),
        for a device whose reply delay depends on the request; ``reply_delay_s``:
        the device's delay before this reply (default ``self.reply_delay_s``),
        which a ``SimulatedLine`` charges to the line."""
        with self._tx_lock:
            tx = _Pending(
                request, expect, len(request) if self.echo else 0, reply_timeout_s, reply_delay_s
            )
            self._c["transactions"] += 1
            ex = self.transport.exchange(tx, reply_size)
            if ex is None:
                return TxResult(TxStatus.LINK_DOWN)
            self._busy_s += ex.t_end - ex.t_write
            self._ready_at_s = ex.t_end + self.silent_s
            t_mid = 0.5 * (ex.s_write + ex.s_end)
            result = tx.result
            if result is None:
                self._c["timeouts"] += 1
                if not self.transport.link_up():
                    return TxResult(TxStatus.LINK_DOWN, t_mid_s=t_mid)
                return TxResult(TxStatus.TIMEOUT, t_mid_s=t_mid)
            if result.status is ScanStatus.EXCEPTION:
                self._exceptions[result.code] += 1
                n = self._exceptions[result.code]
                if n == 1 or n % 1000 == 0:  # reported, throttled; all counted
                    log.warning(
                        "link %s: exception %d (%d so far) to request %s",
                        self.name,
                        result.code,
                        n,
                        request.hex(" "),
                    )
                return TxResult(TxStatus.EXCEPTION, code=result.code, t_mid_s=t_mid)
            self._c["replies"] += 1
            return TxResult(TxStatus.OK, data=result.data, t_mid_s=t_mid)

    def _consume(self, tx: _Pending) -> None:
        """Strip the echo, skip bad bytes, finish ``tx`` on its reply (holds ``_rx_cond``)."""
        buf = self._rx
        if tx.echo_left:
            n = min(tx.echo_left, len(buf))
            done = len(tx.request) - tx.echo_left
            if bytes(buf[:n]) != tx.request[done : done + n]:
                self._c["echo_errors"] += 1
                tx.echo_left = 0  # no usable echo: scan what came
            else:
                del buf[:n]
                tx.echo_left -= n
                if tx.echo_left:
                    return
        while buf and tx.result is None:
            scan = self._scan(buf, 0, tx.expect)
            if scan.status is ScanStatus.NEED_MORE:
                return
            if scan.status is ScanStatus.BAD:
                if scan.reason == "crc":
                    self._c["crc_errors"] += 1
                elif scan.reason == "foreign":
                    self._c["foreign_replies"] += 1
                self._c["bytes_discarded"] += scan.size
                del buf[: scan.size]
                continue
            del buf[: scan.size]
            tx.result = scan
            tx.t_reply, tx.s_reply = self.clock(), self.sample_clock()
            self._rx_cond.notify_all()
        if tx.result is not None and buf:
            self._c["bytes_unsolicited"] += len(buf)
            buf.clear()

    # -- the schedule ------------------------------------------------------------------
    def _poll_loop(self) -> None:
        try:
            while not self._stop_poll.is_set():
                if not self.transport.link_up():
                    self.link.wait_state(LinkState.CONNECTED, 0.2)
                    continue
                dev = min(self.devices, key=lambda d: d.next_due_s)
                wait_s = (dev.next_due_s - self.sample_clock()) / self.speed
                if wait_s > 0:
                    if self._stop_poll.wait(min(wait_s, 0.5)):
                        break
                    continue
                self._poll_device(dev, self.sample_clock())
        except Exception as exc:  # noqa: BLE001 - kept, reported in health, never silent
            self.poll_error = repr(exc)
            log.exception("link %s: poll thread failed", self.name)

    def _poll_device(self, dev: DeviceState, now: float) -> None:
        """One poll cycle of ``dev`` due at ``now`` (sample clock), then its next due time."""
        if now - dev.next_due_s > dev.period_s:
            self._c["overruns"] += 1
        ok = self._service(dev)
        if not ok and not self.transport.link_up():
            return  # the link, not the device: poll again once it is back
        if ok:
            dev.failures = 0
            dev.next_due_s += dev.period_s
            if dev.next_due_s < now:  # fell behind: skip, keep the phase
                missed = math.ceil((now - dev.next_due_s) / dev.period_s)
                dev.next_due_s += missed * dev.period_s
        else:
            dev.failures += 1
            delay = min(self.backoff_max_s * self.speed, dev.period_s * 2**dev.failures)
            dev.next_due_s = self.sample_clock() + delay
        self._note_window()

    def poll_until(self, t_s: float) -> None:
        """Simulated transport only (no thread): serve the devices, earliest due
        first, until the line clock passes ``t_s`` (a transaction begun by
        ``t_s`` runs to its end); then hand over the samples and frames
        whose last transaction ended by ``t_s`` (the later ones wait for the
        next call, as they would for the next drain of a real line)."""
        line = self.transport
        if not line.simulated:
            raise RuntimeError(f"link {self.name}: poll_until needs a simulated transport")
        if not self._sim_started:
            self._sim_started = True
            for dev in self.devices:
                dev.next_due_s = dev.epoch_s = line.now_s
        devices = self.devices
        while True:
            dev = min(devices, key=_due)
            start = max(dev.next_due_s, line.now_s)
            if start > t_s:
                break
            line.now_s = start
            self._poll_device(dev, start)
        line.now_s = max(line.now_s, t_s)
        held = self._held
        if held:
            k = 0
            while k < len(held) and held[k][0] <= t_s:
                k += 1
            if k:
                self._held = held[k:]
                rows = [x for _, x in held[:k] if type(x) is tuple]
                frames = [(0, f) for _, x in held[:k] if type(x) is not tuple for _, f in x.frames]
                samples = np.array(rows, dtype=SAMPLE_RECORD_DTYPE) if rows else _EMPTY.samples
                super()._deliver(DecodeBatch(samples, frames), held[k - 1][0])

    def _deliver(self, batch: DecodeBatch, now_s: float) -> None:
        if self.transport.simulated:
            self._held.append((now_s, batch))
            return
        super()._deliver(batch, now_s)

    def backoff(self, attempt: int) -> None:
        """Pause before repeat ``attempt`` (1, 2, ...): ``backoff_s`` doubling."""
        self._c["retries"] += 1
        self.transport.pause(self.backoff_s * 2 ** (attempt - 1))

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter of ``BusCounters`` (families: reinitialisations, reboots)."""
        self._c[name] += n

    def emit_sample(
        self,
        dev: DeviceState,
        t_s: float,
        pressure_pa: float,
        temperature_c: float,
        status: int,
    ) -> None:
        """Hand one SAMPLE of ``dev`` at sample-clock time ``t_s`` to the monitor."""
        if self.transport.simulated:  # held as a row, handed over in bulk (poll_until)
            row = (
                self._c["samples"],
                dev.addr,
                0,
                dev.seq & 0xFFFF,
                status,
                max(0, round((t_s - dev.epoch_s) * 1e6)),
                pressure_pa,
                temperature_c,
            )
            self._held.append((self.clock(), row))
            dev.seq += 1
            self._c["samples"] += 1
            return
        rec = np.zeros(1, dtype=SAMPLE_RECORD_DTYPE)
        rec["offset"] = self._c["samples"]
        rec["addr"] = dev.addr
        rec["seq"] = dev.seq & 0xFFFF
        rec["status"] = status
        rec["t_us"] = max(0, round((t_s - dev.epoch_s) * 1e6))
        rec["pressure_pa"] = pressure_pa
        rec["temperature_c"] = temperature_c
        dev.seq += 1
        self._c["samples"] += 1
        self._deliver(DecodeBatch(rec, []), self.clock())

    def emit_frame(self, frame: Frame) -> None:
        """Hand a non-SAMPLE frame (an ``IdentityFrame``) to the monitor."""
        self._deliver(DecodeBatch(_EMPTY.samples, [(0, frame)]), self.clock())

    def emit_identity(
        self,
        dev: DeviceState,
        model: str,
        serial: int,
        firmware: int,
        range_pa: tuple[float, float] = (math.nan, math.nan),
    ) -> None:
        """Hand ``dev``'s ``IdentityFrame`` to the monitor: ``firmware``
        major<<8|minor, ``range_pa`` (min, max) in Pa (NaN: not known), the
        rate its configured one."""
        self.emit_frame(
            IdentityFrame(
                addr=dev.addr,
                seq=0,
                flags=0,
                model=model,
                serial=serial,
                firmware=firmware,
                range_min_pa=range_pa[0],
                range_max_pa=range_pa[1],
                rate_mhz=round(dev.target.rate_hz * 1000),
            )
        )

    def _note_window(self) -> None:
        now = self.clock()
        w = self._window
        w.append((now, self._c["samples"], self._busy_s))
        while len(w) > 2 and now - w[1][0] >= RATE_WINDOW_S:
            w.popleft()

    def bus_counters(self) -> BusCounters:
        """A snapshot of the polled link's counters."""
        c = self._c
        rate = util = 0.0
        w = list(self._window)
        if len(w) >= 2 and w[-1][0] > w[0][0]:
            span = w[-1][0] - w[0][0]
            rate = (w[-1][1] - w[0][1]) / span / self.speed  # per second of sample clock
            util = (w[-1][2] - w[0][2]) / span
        return BusCounters(
            transactions=c["transactions"],
            replies=c["replies"],
            timeouts=c["timeouts"],
            crc_errors=c["crc_errors"],
            exceptions=dict(sorted(self._exceptions.items())),
            foreign_replies=c["foreign_replies"],
            bytes_discarded=c["bytes_discarded"],
            bytes_unsolicited=c["bytes_unsolicited"],
            echo_errors=c["echo_errors"],
            retries=c["retries"],
            reinitialisations=c["reinitialisations"],
            reboots=c["reboots"],
            poll_restarts=c["poll_restarts"],
            samples=c["samples"],
            overruns=c["overruns"],
            devices_failing=sum(1 for d in self.devices if d.failures),
            poll_rate_hz=rate,
            target_rate_hz=sum(t.rate_hz for t in self.targets),
            line_utilisation=min(1.0, util),
        )

    def health(self):
        """The base's ``LinkHealth`` with ``bus`` (``BusCounters``) filled in."""
        h = super().health()
        last_error = h.last_error if self.poll_error is None else self.poll_error
        poller = self._poll_thread
        alive = h.reader_alive and (poller is None or poller.is_alive() or self._stop_poll.is_set())
        return dataclasses.replace(
            h, bus=self.bus_counters(), last_error=last_error, reader_alive=alive
        )


_EMPTY = DecodeBatch(np.empty(0, dtype=SAMPLE_RECORD_DTYPE), [])


def _due(dev: DeviceState) -> float:
    return dev.next_due_s


@dataclass(frozen=True, slots=True)
class LineBudget:
    """What a polled link asks of its line per cycle (the fastest sensor's period)."""

    link: str
    sensors: int
    reads: int
    rates_hz: tuple[float, ...]
    need_s: float
    cycle_s: float
    baudrate: int

    @property
    def fits(self) -> bool:
        return self.need_s <= self.cycle_s

    def describe(self) -> str:
        lo, hi = min(self.rates_hz), max(self.rates_hz)
        rates = f"{hi:g} Hz" if lo == hi else f"{lo:g}-{hi:g} Hz"
        return (
            f"{self.link}: {self.sensors} sensors x {self.reads} reads at {rates} need "
            f"{self.need_s * 1e3:.1f} ms per cycle > {self.cycle_s * 1e3:.0f} ms "
            f"at {self.baudrate} baud"
        )


def line_budget(
    link: str, rates_hz: Sequence[float], transaction_s: float, reads: int, baudrate: int
) -> LineBudget:
    """The line time ``len(rates_hz)`` sensors need per cycle of the fastest one:
    each sensor's ``reads`` transactions of ``transaction_s``, weighted by its rate."""
    hi = max(rates_hz)
    need = sum(r / hi for r in rates_hz) * reads * transaction_s
    return LineBudget(link, len(rates_hz), reads, tuple(rates_hz), need, 1.0 / hi, baudrate)
