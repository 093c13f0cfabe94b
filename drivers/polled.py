"""Polled multi-drop buses: the schedule, one transaction in flight, the line budget.

A polled family (KELLER bus now; Modbus RTU and Digiquartz are meant to
follow) answers requests instead of streaming.  ``PolledDriver`` is a
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
from drivers.frames import SAMPLE_RECORD_DTYPE, CommandFrame, Frame
from drivers.link import LinkDownError, LinkState

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
    result: Scan | None = None
    saw_crc_error: bool = False


class PolledDriver(TransducerDriver):
    """A request/reply bus behind the driver interface (see the module docstring).

    ``targets``: the devices and rates; ``reply_timeout_s``: the reply window
    after the request is on the wire; ``silent_s``: the gap after a reply
    before the next request; ``retries``: repeats of a transaction that got no
    valid reply; ``backoff_s``/``backoff_max_s``: the pause before a repeat
    and the cap of the doubling delay of a failing device; ``echo``: the
    adapter echoes every request (a KELLER RS-485 converter).
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
        **options,
    ):
        super().__init__(name, url, **options)
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
    def transact(
        self,
        request: bytes,
        expect: object,
        reply_size: int,
        reply_timeout_s: float | None = None,
    ) -> TxResult:
        """Send ``request`` and wait for its reply (``expect`` goes to ``_scan``;
        ``reply_size`` bytes when normal); one transaction at a time; counted.
        ``reply_timeout_s``: this request's reply window (default: the link's),
        for a device whose reply delay depends on the request."""
        with self._tx_lock:
            wait = self._ready_at_s - self.clock()
            if wait > 0:
                time.sleep(wait)
            tx = _Pending(request, expect, len(request) if self.echo else 0)
            with self._rx_cond:
                if self._rx:
                    self._c["bytes_unsolicited"] += len(self._rx)
                    self._rx.clear()
                self._pending = tx
            t_write = self.clock()
            s_write = self.sample_clock()
            self._c["transactions"] += 1
            try:
                self.link.write(request)
            except LinkDownError:
                with self._rx_cond:
                    self._pending = None
                return TxResult(TxStatus.LINK_DOWN)
            wire = wire_s(
                len(request) + reply_size + (len(request) if self.echo else 0), self.baudrate
            )
            window = self.reply_timeout_s if reply_timeout_s is None else reply_timeout_s
            deadline = t_write + wire + window
            with self._rx_cond:
                while tx.result is None and not self._stop_poll.is_set():
                    left = deadline - self.clock()
                    if left <= 0:
                        break
                    self._rx_cond.wait(left)
                self._pending = None
                result = tx.result
            t_end = self.clock()
            s_end = self.sample_clock()
            self._busy_s += t_end - t_write
            self._ready_at_s = t_end + self.silent_s
            t_mid = 0.5 * (s_write + s_end)
            if result is None:
                self._c["timeouts"] += 1
                if self.link.state is not LinkState.CONNECTED:
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
            self._rx_cond.notify_all()
        if tx.result is not None and buf:
            self._c["bytes_unsolicited"] += len(buf)
            buf.clear()

    # -- the schedule ------------------------------------------------------------------
    def _poll_loop(self) -> None:
        try:
            while not self._stop_poll.is_set():
                if self.link.state is not LinkState.CONNECTED:
                    self.link.wait_state(LinkState.CONNECTED, 0.2)
                    continue
                dev = min(self.devices, key=lambda d: d.next_due_s)
                wait_s = (dev.next_due_s - self.sample_clock()) / self.speed
                if wait_s > 0:
                    if self._stop_poll.wait(min(wait_s, 0.5)):
                        break
                    continue
                now = self.sample_clock()
                if now - dev.next_due_s > dev.period_s:
                    self._c["overruns"] += 1
                ok = self._service(dev)
                if not ok and self.link.state is not LinkState.CONNECTED:
                    continue  # the link, not the device: poll again once it is back
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
        except Exception as exc:  # noqa: BLE001 - kept, reported in health, never silent
            self.poll_error = repr(exc)
            log.exception("link %s: poll thread failed", self.name)

    def backoff(self, attempt: int) -> None:
        """Pause before repeat ``attempt`` (1, 2, ...): ``backoff_s`` doubling."""
        self._c["retries"] += 1
        self._stop_poll.wait(self.backoff_s * 2 ** (attempt - 1))

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
