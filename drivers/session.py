"""Transducer sessions: IDENTIFY, SET_RATE and START per address, commands with ACK.

A ``TransducerSession`` talks to one device address on a ``TransducerDriver``;
several sessions share one link (each waits only for the ACKs that carry its
address and its command SEQs), and ``SessionManager`` sets up all sessions of
a link from a list of (address, rate) and re-runs their set-up after every
reconnect.

Command policy (``execute_command``): the host numbers COMMANDs per link and
destination address (``TransducerDriver.next_seq``); every attempt gets a new
SEQ, and an ACK for any attempt of the same command counts, so a late ACK is
never wasted.  ``retries`` bounds the attempts to ``1 + retries``, each
waiting ``ack_timeout_s`` seconds.  The outcome is a ``CommandResult`` with a
``CommandStatus``: OK, REJECTED (the device answered with a non-OK result),
TIMEOUT (no ACK after every attempt) or LINK_DOWN (the link was not connected
for any attempt).  A COMMAND to ADDR 255 is carried out by every device: the
answer collects one ACK per device for the whole ``ack_timeout_s`` window (or
until every ``expect``-ed address answered).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from drivers.driver import TransducerDriver
from drivers.frames import AckFrame, CommandFrame, Frame, IdentityFrame
from drivers.link import LinkDownError, LinkState
from drivers.protocol import BROADCAST_ADDR, AckResult, Opcode

__all__ = [
    "CommandError",
    "CommandResult",
    "CommandStatus",
    "DeviceConfig",
    "SessionManager",
    "SessionState",
    "TransducerSession",
    "execute_command",
]

log = logging.getLogger(__name__)


class CommandStatus(enum.Enum):
    """How a command ended."""

    OK = "ok"  # ACK with result OK (from every expected device, for a broadcast)
    REJECTED = "rejected"  # ACK with a result other than OK
    TIMEOUT = "timeout"  # no (complete) answer after every attempt
    LINK_DOWN = "link_down"  # the link was not connected for any attempt


class SessionState(enum.Enum):
    """Where a session's set-up stands."""

    IDLE = "idle"  # connect() not run yet
    CONNECTING = "connecting"
    READY = "ready"  # identified, rate set, started (as configured)
    FAILED = "failed"  # the last connect() failed; see last_result


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome of one command, with every attempt it took.

    ``result`` is the device's ACK result (unicast; None without an ACK);
    ``acks`` maps each answering address to its result (one entry for a
    unicast, one per device for a broadcast); ``missing`` lists expected
    addresses that never answered; ``seqs`` are the SEQs of the attempts;
    ``elapsed_s`` is the time from the first send to the outcome (driver clock).
    """

    addr: int
    opcode: Opcode
    status: CommandStatus
    result: AckResult | int | None
    attempts: int
    seqs: tuple[int, ...]
    elapsed_s: float
    acks: dict[int, AckResult | int] = field(default_factory=dict)
    missing: tuple[int, ...] = ()
    identity: IdentityFrame | None = None
    identities: dict[int, IdentityFrame] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is CommandStatus.OK


class CommandError(RuntimeError):
    """A command got no usable ACK; ``.result`` says why."""

    def __init__(self, result: CommandResult):
        self.result = result
        what = f"{result.opcode.name} to address {result.addr}"
        detail = f" ({result.error})" if result.error else ""
        super().__init__(
            f"{what}: {result.status.value} after {result.attempts} attempt(s){detail}"
        )


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device on a link: its address and output rate in millihertz (None: leave it)."""

    addr: int
    rate_mhz: int | None = None


def execute_command(
    driver: TransducerDriver,
    addr: int,
    opcode: Opcode,
    *,
    ack_timeout_s: float = 0.5,
    retries: int = 3,
    expect: Iterable[int] | None = None,
    want_identity: bool = False,
    rate_mhz: int | None = None,
    offset_pa: float | None = None,
) -> CommandResult:
    """Send one command with ACK requested; wait, retry, and report how it ended.

    Never raises for a missing answer or a down link (see ``CommandStatus``).
    ``expect``: for ADDR 255, the addresses that must answer (retried while
    some are missing); None collects whoever answers in the window.
    ``want_identity``: also wait for the IDENTITY an IDENTIFY produces.
    """
    opcode = Opcode(opcode)
    broadcast = addr == BROADCAST_ADDR
    expected = frozenset(expect) if expect is not None else None
    seqs: list[int] = []
    seq_set: set[int] = set()
    acks: dict[int, AckResult | int] = {}
    identities: dict[int, IdentityFrame] = {}
    clock = driver.clock
    t0 = clock()
    link_down = 0
    last_error: str | None = None

    def wanted(frame: Frame) -> bool:
        if not broadcast and frame.addr != addr:
            return False
        if isinstance(frame, AckFrame):
            return frame.command_seq in seq_set and frame.opcode == opcode
        return want_identity and isinstance(frame, IdentityFrame)

    def complete() -> bool:
        if broadcast:
            if expected is None:
                return False  # collect for the whole window
            done = expected <= acks.keys()
            return done and (not want_identity or expected <= identities.keys())
        return addr in acks and (not want_identity or addr in identities)

    with driver.subscribe(wanted) as sub:
        attempts = 0
        for _ in range(1 + max(0, retries)):
            attempts += 1
            seq = driver.next_seq(addr)
            seqs.append(seq)
            seq_set.add(seq)
            cmd = CommandFrame.make(addr, seq, opcode, rate_mhz=rate_mhz, offset_pa=offset_pa)
            deadline = time.monotonic() + ack_timeout_s
            try:
                driver.send_command(cmd)
            except LinkDownError as exc:
                link_down += 1
                last_error = str(exc)
                # Wait out the attempt so that the retries span the link's reconnect.
                if driver.link.wait_state(LinkState.CONNECTED, ack_timeout_s):
                    continue
                if driver.state is LinkState.STOPPED:
                    break
                continue
            while True:
                frame = sub.get(deadline - time.monotonic())
                if frame is None:
                    break
                if isinstance(frame, AckFrame):
                    acks[frame.addr] = frame.result
                elif isinstance(frame, IdentityFrame):
                    identities[frame.addr] = frame
                if complete():
                    break
            if complete() or (broadcast and expected is None and acks):
                break

    elapsed = clock() - t0
    if broadcast:
        missing = tuple(sorted(expected - acks.keys())) if expected is not None else ()
        answered = bool(acks) and not missing
        result: AckResult | int | None = None
        all_ok = all(r == AckResult.OK for r in acks.values())
    else:
        missing = () if addr in acks else (addr,)
        answered = addr in acks
        result = acks.get(addr)
        all_ok = result == AckResult.OK
    if want_identity and answered:
        need = [addr] if not broadcast else list(expected if expected is not None else acks)
        if any(a not in identities for a in need):
            answered = False
            last_error = "ACK without IDENTITY"
    if answered:
        status = CommandStatus.OK if all_ok else CommandStatus.REJECTED
    elif link_down == attempts and attempts > 0:
        status = CommandStatus.LINK_DOWN
    else:
        status = CommandStatus.TIMEOUT
    return CommandResult(
        addr=addr,
        opcode=opcode,
        status=status,
        result=result,
        attempts=attempts,
        seqs=tuple(seqs),
        elapsed_s=elapsed,
        acks=dict(acks),
        missing=missing,
        identity=identities.get(addr) if not broadcast else None,
        identities=dict(identities),
        error=last_error,
    )


class TransducerSession:
    """One device address on a driver: set-up, commands with ACK, re-set-up after reconnect.

    ``rate_mhz``: output rate set on connect (None: leave the device's);
    ``start``: send START on connect; ``ack_timeout_s``: seconds to wait for
    each attempt's ACK; ``retries``: attempts beyond the first.
    """

    def __init__(
        self,
        driver: TransducerDriver,
        addr: int,
        *,
        rate_mhz: int | None = None,
        start: bool = True,
        ack_timeout_s: float = 0.5,
        retries: int = 3,
    ):
        if not 1 <= addr <= 247:
            raise ValueError(f"device address must be 1-247, not {addr}")
        self.driver = driver
        self.addr = addr
        self.rate_mhz = rate_mhz
        self.start = start
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.state = SessionState.IDLE
        #: The device's IDENTITY from the last successful connect().
        self.identity: IdentityFrame | None = None
        #: The outcome of the last command (or the step of connect() that failed).
        self.last_result: CommandResult | None = None
        #: Completed set-ups (1 after the first connect, +1 per re-set-up).
        self.connects = 0
        #: Times a different device (model or serial) answered at this address.
        self.identity_changes = 0
        self._first_identity: IdentityFrame | None = None
        self._generation: int | None = None
        self._lock = threading.RLock()

    @property
    def needs_connect(self) -> bool:
        """True before the first set-up, after a failed one, and after a link reconnect."""
        return (
            self.state is not SessionState.READY
            or self._generation != self.driver.connection_generation
        )

    def connect(self) -> SessionState:
        """IDENTIFY (recording ``identity``), then SET_RATE and START as configured.

        Returns the new state: READY, or FAILED with ``last_result`` telling
        which step failed and how.
        """
        with self._lock:
            self.state = SessionState.CONNECTING
            self._generation = self.driver.connection_generation
            res = self.send(Opcode.IDENTIFY, want_identity=True)
            if not res.ok:
                return self._fail(res)
            if self.rate_mhz is not None:
                res = self.send(Opcode.SET_RATE, rate_mhz=self.rate_mhz)
                if not res.ok:
                    return self._fail(res)
            if self.start:
                res = self.send(Opcode.START)
                if not res.ok:
                    return self._fail(res)
            self.connects += 1
            self.state = SessionState.READY
            ident = self.identity
            log.info(
                "link %s addr %d: ready (%s serial %s)",
                self.driver.name,
                self.addr,
                ident.model if ident else "?",
                ident.serial if ident else "?",
            )
            return self.state

    def ensure_connected(self) -> bool:
        """Run ``connect()`` if needed (first time, failed, link reconnected); True if READY."""
        if self.needs_connect and self.driver.state is LinkState.CONNECTED:
            self.connect()
        return self.state is SessionState.READY

    def send(
        self,
        opcode: Opcode,
        *,
        want_identity: bool = False,
        rate_mhz: int | None = None,
        offset_pa: float | None = None,
    ) -> CommandResult:
        """One command to this address with timeout and bounded retries; never raises."""
        res = execute_command(
            self.driver,
            self.addr,
            opcode,
            ack_timeout_s=self.ack_timeout_s,
            retries=self.retries,
            want_identity=want_identity,
            rate_mhz=rate_mhz,
            offset_pa=offset_pa,
        )
        self.last_result = res
        if res.identity is not None:
            self._record_identity(res.identity)
        return res

    def command(
        self, opcode: Opcode, *, rate_mhz: int | None = None, offset_pa: float | None = None
    ) -> AckResult | int:
        """One command; returns the device's ``AckResult`` (OK or its refusal; an int if unknown).

        Raises ``CommandError`` (with ``.result``) when no ACK came after every
        attempt or the link was down.
        """
        res = self.send(opcode, rate_mhz=rate_mhz, offset_pa=offset_pa)
        if res.status in (CommandStatus.OK, CommandStatus.REJECTED):
            assert res.result is not None
            return res.result
        raise CommandError(res)

    def _record_identity(self, identity: IdentityFrame | None) -> None:
        prev = self._first_identity
        if identity is not None and prev is None:
            self._first_identity = identity
        elif identity is not None and (identity.model, identity.serial) != (
            prev.model,
            prev.serial,
        ):
            self.identity_changes += 1
            log.warning(
                "link %s addr %d: a different device answers: %s serial %d (was %s serial %d)",
                self.driver.name,
                self.addr,
                identity.model,
                identity.serial,
                prev.model,
                prev.serial,
            )
            self._first_identity = identity
        self.identity = identity

    def _fail(self, res: CommandResult) -> SessionState:
        self.state = SessionState.FAILED
        log.warning(
            "link %s addr %d: %s %s after %d attempt(s)",
            self.driver.name,
            self.addr,
            res.opcode.name,
            res.status.value,
            res.attempts,
        )
        return self.state


class SessionManager:
    """All sessions of one link: set up from (address, rate) pairs, re-set up on reconnect.

    Call ``service()`` from a loop, or ``start()`` a supervisor thread that
    does it whenever the link (re)connects and retries failed set-ups every
    ``retry_interval_s`` seconds.
    """

    def __init__(
        self,
        driver: TransducerDriver,
        devices: Iterable[DeviceConfig | tuple[int, int | None]],
        *,
        start: bool = True,
        ack_timeout_s: float = 0.5,
        retries: int = 3,
        retry_interval_s: float = 5.0,
    ):
        self.driver = driver
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.retry_interval_s = retry_interval_s
        self.sessions: dict[int, TransducerSession] = {}
        for dev in devices:
            cfg = dev if isinstance(dev, DeviceConfig) else DeviceConfig(*dev)
            if cfg.addr in self.sessions:
                raise ValueError(f"address {cfg.addr} configured twice on link {driver.name}")
            self.sessions[cfg.addr] = TransducerSession(
                driver,
                cfg.addr,
                rate_mhz=cfg.rate_mhz,
                start=start,
                ack_timeout_s=ack_timeout_s,
                retries=retries,
            )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_try = -float("inf")
        self.service_errors = 0
        self.last_service_error: str | None = None

    def states(self) -> dict[int, SessionState]:
        return {addr: s.state for addr, s in self.sessions.items()}

    def identities(self) -> dict[int, IdentityFrame | None]:
        return {addr: s.identity for addr, s in self.sessions.items()}

    def connect_all(self) -> dict[int, SessionState]:
        """Run ``connect()`` on every session, in address order."""
        self._last_try = time.monotonic()
        for s in self.sessions.values():
            s.connect()
        return self.states()

    def service(self) -> list[int]:
        """Set up sessions that need it (link reconnected, or failed and due); addresses done."""
        self.driver.ensure_running()
        if self.driver.state is not LinkState.CONNECTED:
            return []
        now = time.monotonic()
        due_retry = now - self._last_try >= self.retry_interval_s
        done = []
        for addr, s in self.sessions.items():
            stale = s._generation != self.driver.connection_generation
            if stale or (s.state is not SessionState.READY and due_retry):
                s.connect()
                done.append(addr)
        if done:
            self._last_try = now
        return done

    def broadcast(
        self, opcode: Opcode, *, rate_mhz: int | None = None, offset_pa: float | None = None
    ) -> CommandResult:
        """One command to ADDR 255, expecting an ACK from every configured address."""
        return execute_command(
            self.driver,
            BROADCAST_ADDR,
            opcode,
            ack_timeout_s=self.ack_timeout_s,
            retries=self.retries,
            expect=self.sessions.keys(),
            rate_mhz=rate_mhz,
            offset_pa=offset_pa,
        )

    def start(self) -> None:
        """Start the supervisor thread (set-up on every (re)connect, retries of failures)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"sessions-{self.driver.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None:
            t.join(timeout_s)

    def __enter__(self) -> SessionManager:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.service()
            except Exception as exc:  # noqa: BLE001 - the supervisor must not die silently
                self.service_errors += 1
                self.last_service_error = repr(exc)
                log.exception("link %s: session service failed", self.driver.name)
            wait = min(self.retry_interval_s, 0.5)
            if self.driver.state is LinkState.STOPPED:
                self._stop.wait(wait)
            else:
                self.driver.wait_generation_change(self.driver.connection_generation, wait)
