"""Operator commands from another terminal, over a UNIX socket, that no client can wedge.

One JSON object per connection, one JSON reply (wire format: ``control_wire.py``):

    {"cmd": "ack"}                       acknowledge every alarm
    {"cmd": "ack", "key": "usos:LEAK"}   acknowledge one alarm
    {"cmd": "hatch", "name": "node1-fgb", "open": false}
    {"cmd": "limits", "name": "ground-test"}
    {"cmd": "status"}                    the monitor's snapshot

One thread runs a selector over the listening socket and every client, so a
slow or hostile client never holds up another: at most ``max_clients`` (16)
are served at once (the next gets a "busy" reply), each has
``client_timeout_s`` (2 s) to send its whole request (16 KiB, nesting depth 8,
checked before parsing), and every failure is an error reply, never an
exception out of the thread.  The thread beats a heartbeat on each turn
(at least every ``TURN_S``); ``healthy()`` is False once it dies or stalls, and
the monitor then stops stroking systemd's watchdog.

The commands are applied on the monitor loop's thread (``poll()`` each tick),
so the core is never touched concurrently.  A command the loop has not taken
within ``reply_timeout_s`` is withdrawn and answered with an error.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import queue
import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.errors import CabinwatchError
from firmware_host.runtime.control_wire import (
    MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    FrameStatus,
    LineBuffer,
    WireError,
    encode,
    error_reply,
    parse_reply,
    parse_request,
)

log = logging.getLogger(__name__)

#: Longest wait of the serving thread in its selector (s): the heartbeat's period.
TURN_S = 0.1
#: A heartbeat older than this (s) means the serving thread is dead or stalled.
HEARTBEAT_MAX_AGE_S = 2.0


class ControlSocketInUse(CabinwatchError):
    """Another process answers on the control socket's path."""


class Phase(enum.Enum):
    """Where one client connection is."""

    READING = "reading"  # collecting the request line
    WAITING = "waiting"  # queued for the monitor loop
    WRITING = "writing"  # sending the reply


@dataclass(frozen=True)
class ControlHealth:
    """The control server's telemetry.  ``heartbeat_age_s`` in s."""

    alive: bool
    heartbeat_age_s: float
    clients: int
    served: int
    errors: int
    timeouts: int
    busy_refusals: int
    last_error: str | None

    def to_json_dict(self) -> dict:
        return dict(self.__dict__)


class _Client:
    __slots__ = ("cid", "sock", "buf", "phase", "deadline_s", "out")

    def __init__(self, cid: int, sock: socket.socket, deadline_s: float):
        self.cid = cid
        self.sock = sock
        self.buf = LineBuffer(MAX_REQUEST_BYTES)
        self.phase = Phase.READING
        self.deadline_s = deadline_s
        self.out = b""


class ControlServer:
    """Accepts operator commands on ``path``; ``poll(apply)`` runs them on the caller's thread.

    ``max_clients`` connections are served at once; ``client_timeout_s`` (s) bounds
    the time to send a request and to take the reply; ``reply_timeout_s`` (s)
    bounds the wait for the monitor loop.  ``errors`` counts refused requests
    and internal failures, ``timeouts`` the clients dropped for being slow.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_clients: int = 16,
        client_timeout_s: float = 2.0,
        reply_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path = Path(path)
        self.max_clients = max_clients
        self.client_timeout_s = client_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale(self.path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(str(self.path))
            self._inode = os.stat(self.path).st_ino  # close() removes only this one
            os.chmod(self.path, 0o660)
            # the backlog is not the client limit: connections beyond max_clients are
            # accepted and told "busy"; a short backlog only makes clients wait
            self._sock.listen(max(64, max_clients))
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._sock, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._clients: dict[int, _Client] = {}
        self._next_cid = 0
        self._commands: queue.Queue[tuple[int, dict]] = queue.Queue()
        self._replies: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._queued: set[int] = set()  # commands the loop may still take
        self._queued_lock = threading.Lock()
        self._stop = threading.Event()
        self._beat_s = clock()
        self.errors = 0
        self.timeouts = 0
        self.served = 0
        self.busy_refusals = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="cabinwatch-control", daemon=True)
        self._thread.start()

    # -- the monitor loop's side ---------------------------------------------
    def poll(self, apply: Callable[[dict], dict]) -> int:
        """Apply queued commands with ``apply(request) -> reply``; returns how many ran."""
        n = 0
        while True:
            try:
                cid, request = self._commands.get_nowait()
            except queue.Empty:
                break
            with self._queued_lock:
                if cid not in self._queued:
                    continue  # withdrawn: the client was told it timed out
                self._queued.discard(cid)
            try:
                reply = encode(apply(request))
            except Exception as exc:  # noqa: BLE001 - an operator typo must not stop the monitor
                reply = error_reply(str(exc) or type(exc).__name__)
            self._replies.put((cid, reply))
            n += 1
        if n:
            self._wake()
        return n

    def healthy(self, max_age_s: float = HEARTBEAT_MAX_AGE_S) -> bool:
        """True while the serving thread runs and beat within ``max_age_s`` seconds."""
        return self._thread.is_alive() and self._clock() - self._beat_s <= max_age_s

    def health(self) -> ControlHealth:
        return ControlHealth(
            alive=self._thread.is_alive(),
            heartbeat_age_s=round(self._clock() - self._beat_s, 3),
            clients=len(self._clients),
            served=self.served,
            errors=self.errors,
            timeouts=self.timeouts,
            busy_refusals=self.busy_refusals,
            last_error=self.last_error,
        )

    def close(self) -> None:
        """Stop serving, close every connection, remove the socket file if it is ours."""
        self._stop.set()
        self._wake()
        self._thread.join(timeout=2.0)
        for c in list(self._clients.values()):
            with contextlib.suppress(OSError):
                c.sock.close()
        self._clients.clear()
        for s in (self._sock, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                s.close()
        with contextlib.suppress(OSError):
            self._sel.close()
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if st.st_ino == self._inode and stat.S_ISSOCK(st.st_mode):
                self.path.unlink()

    # -- the serving thread --------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._beat_s = self._clock()
                try:
                    self._turn()
                except Exception as exc:  # noqa: BLE001 - the thread outlives any request
                    self._fail(f"control server: {exc!r}")
                    time.sleep(0.01)  # never a hot loop on a persistent failure
        except BaseException as exc:  # pragma: no cover - recorded, then healthy() is False
            self._fail(f"control thread died: {exc!r}")
            raise

    def _turn(self) -> None:
        for key, mask in self._sel.select(TURN_S):
            if key.data == "listen":
                self._accept()
            elif key.data == "wake":
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(4096):
                        pass
            else:
                client = self._clients.get(key.data)
                if client is not None:
                    self._guarded(client, self._on_ready, client, mask)
        while True:
            try:
                cid, reply = self._replies.get_nowait()
            except queue.Empty:
                break
            client = self._clients.get(cid)
            if client is not None:
                self.served += 1
                self._guarded(client, self._respond, client, reply)
        self._expire()

    def _guarded(self, client: _Client, fn: Callable, *args) -> None:
        """Run ``fn`` for one client; any failure drops that client only."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            self._fail(f"client {client.cid}: {exc!r}")
            self._drop(client)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: say so, keep serving the others
                self._fail(f"accept: {exc}")
                return
            sock.setblocking(False)
            if len(self._clients) >= self.max_clients:
                self.busy_refusals += 1
                with contextlib.suppress(OSError):
                    sock.send(error_reply(f"busy: {self.max_clients} clients connected"))
                sock.close()
                continue
            self._next_cid += 1
            client = _Client(self._next_cid, sock, self._clock() + self.client_timeout_s)
            self._clients[client.cid] = client
            self._sel.register(sock, selectors.EVENT_READ, client.cid)

    def _on_ready(self, client: _Client, mask: int) -> None:
        if client.phase is Phase.WRITING:
            self._send_some(client)
            return
        try:
            chunk = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        if client.phase is not Phase.READING:
            if not chunk:
                # EOF while waiting: a half-close (shutdown(SHUT_WR)) still wants the
                # reply, so stop watching reads and keep it; a client that is gone
                # fails the reply's send, or its wait times out
                self._sel.unregister(client.sock)
            return
        status = client.buf.feed(chunk) if chunk else FrameStatus.COMPLETE
        if status is FrameStatus.NEED_MORE:
            return
        if status is FrameStatus.TOO_LARGE:
            self._refuse(client, f"request larger than {MAX_REQUEST_BYTES} bytes")
            return
        try:
            request = parse_request(client.buf.line)
        except WireError as exc:
            self._refuse(client, str(exc))
            return
        client.phase = Phase.WAITING
        client.deadline_s = self._clock() + self.reply_timeout_s
        with self._queued_lock:
            self._queued.add(client.cid)
        self._commands.put((client.cid, request))

    def _refuse(self, client: _Client, problem: str) -> None:
        self.errors += 1
        self._respond(client, error_reply(f"bad request: {problem}"))

    def _respond(self, client: _Client, reply: bytes) -> None:
        client.phase = Phase.WRITING
        client.out = reply
        client.deadline_s = self._clock() + self.client_timeout_s
        try:
            self._sel.modify(client.sock, selectors.EVENT_WRITE, client.cid)
        except KeyError:  # reads were unregistered after a half-close
            self._sel.register(client.sock, selectors.EVENT_WRITE, client.cid)
        self._send_some(client)

    def _send_some(self, client: _Client) -> None:
        try:
            n = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        client.out = client.out[n:]
        if not client.out:
            self._drop(client)

    def _expire(self) -> None:
        now = self._clock()
        for client in [c for c in self._clients.values() if now > c.deadline_s]:
            if client.phase is Phase.READING:
                self.timeouts += 1
                self._respond(
                    client, error_reply(f"request not complete within {self.client_timeout_s} s")
                )
            elif client.phase is Phase.WAITING:
                if self._withdraw(client):
                    self.timeouts += 1
                    self._respond(
                        client,
                        error_reply(
                            f"the monitor loop did not answer within {self.reply_timeout_s} s"
                        ),
                    )
            else:
                self.timeouts += 1
                self._drop(client)  # does not take its reply

    def _withdraw(self, client: _Client) -> bool:
        """Take a queued command back before the loop runs it; False if it already did."""
        with self._queued_lock:
            if client.cid in self._queued:
                self._queued.discard(client.cid)
                return True
            return False

    def _drop(self, client: _Client) -> None:
        self._clients.pop(client.cid, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()

    def _fail(self, message: str) -> None:
        self.errors += 1
        if self.last_error is None:
            log.error("%s", message)
        self.last_error = message

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")


def _clear_stale(path: Path) -> None:
    """Remove a socket file left by a monitor that died; refuse to take a live one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        return  # bind() then fails with "Address already in use", naming the path
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        except OSError:
            pass  # a listener too busy to accept is still a listener
    raise ControlSocketInUse(f"{path}: another process is listening on this control socket")


class ControlClientError(WireError):
    """``send_command`` got no usable reply; the message is one line."""


def _connect(s: socket.socket, path: str, deadline: float, timeout_s: float) -> None:
    """Connect ``s`` to ``path``; a full listen backlog (EAGAIN: many clients at once)
    is waited out until ``deadline`` (monotonic s)."""
    while True:
        try:
            s.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise ControlClientError(
                    f"the control socket stayed busy for {timeout_s:g} s"
                ) from None
            time.sleep(0.01)


def send_command(path: str | Path, request: dict, timeout_s: float = 5.0) -> dict:
    """Client side: send one command, return the reply.

    Raises ``OSError`` if nothing listens (``FileNotFoundError``,
    ``ConnectionRefusedError``) and ``ControlClientError`` for a reply that is
    missing, partial, garbage, larger than 1 MiB or later than ``timeout_s`` (s)
    in all.
    """
    deadline = time.monotonic() + timeout_s
    buf = LineBuffer(MAX_REPLY_BYTES)
    status = FrameStatus.NEED_MORE
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        _connect(s, str(path), deadline, timeout_s)
        try:
            s.sendall(encode(request))
        except OSError:
            pass  # refused before reading it ("busy"): its reply may be waiting all the same
        while status is FrameStatus.NEED_MORE:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ControlClientError(f"no complete reply within {timeout_s:g} s")
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                raise ControlClientError(f"no complete reply within {timeout_s:g} s") from None
            except OSError as exc:
                raise ControlClientError(f"the connection failed: {exc}") from None
            if not chunk:
                if not buf.data:
                    raise ControlClientError("the monitor closed the connection without a reply")
                raise ControlClientError("partial reply: the connection closed mid-line")
            status = buf.feed(chunk)
    if status is FrameStatus.TOO_LARGE:
        raise ControlClientError(f"reply larger than {MAX_REPLY_BYTES} bytes")
    try:
        return parse_reply(buf.line)
    except WireError as exc:
        raise ControlClientError(str(exc)) from None


def apply_to_core(core, request: dict, now_s: float) -> dict:
    """The monitor's side of the commands above."""
    cmd = request.get("cmd")
    if cmd == "ack":
        key = request.get("key")
        if key is not None and not isinstance(key, str):
            return {"ok": False, "error": "ack key must be a string such as usos:LEAK"}
        events = core.acknowledge(key, now_s=now_s)
        return {"ok": True, "acknowledged": len(events or [])}
    if cmd == "hatch":
        name, is_open = request.get("name"), request.get("open")
        if not isinstance(is_open, bool):
            return {"ok": False, "error": "hatch needs open: true or false"}
        if not isinstance(name, str) or name not in core.hatch_open:
            known = ", ".join(core.hatch_open) or "none"
            return {"ok": False, "error": f"unknown hatch {name!r} (known: {known})"}
        core.set_hatch(name, is_open, now_s)
        return {"ok": True, "hatch": name, "open": is_open}
    if cmd == "limits":
        name = request.get("name")
        if not isinstance(name, str) or name not in core.config.limit_sets:
            known = ", ".join(core.config.limit_sets)
            return {"ok": False, "error": f"unknown limit set {name!r} (known: {known})"}
        core.set_limit_set(name)
        return {"ok": True, "limit_set": name}
    if cmd == "status":
        return {"ok": True, "status": core.snapshot()}
    return {"ok": False, "error": f"unknown command {cmd!r} (ack, hatch, limits, status)"}
