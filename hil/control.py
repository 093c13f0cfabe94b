"""The running emulator's control path: a crew's hatch commands over line-JSON TCP.

``cabinwatch emulate SCENARIO --control 127.0.0.1:PORT`` serves it.  One JSON
object per line in, one per line out, on a connection kept as long as the
client likes::

    {"cmd": "hatch", "name": "mrm1-soyuz", "open": false}
        -> {"ok": true, "hatch": "mrm1-soyuz", "open": false, "t_s": 3721.5}
    {"cmd": "status"}
        -> {"ok": true, "t_s": 3722.0, "hatches": {"usos-rs": true, ...}}
    anything wrong -> {"ok": false, "error": "one line"}

``t_s`` is the simulated time the command took effect (s).  A command changes
the emulator only on the emulator loop's thread (``ControlServer.service`` each
tick), so the physics is never touched concurrently; a command the loop has not
taken within ``reply_timeout_s`` (wall s) is answered with an error and dropped.

One thread runs a selector over the listening socket and every client: at most
``max_clients`` at once (the next gets an error line and is closed), a request
line of at most ``MAX_LINE_BYTES``; every failure is an error reply or a closed
connection, never an exception out of the thread.  Bound to 127.0.0.1 unless
told otherwise: the path commands hardware, it is not for a network.
"""

from __future__ import annotations

import contextlib
import enum
import json
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: Longest request line (bytes, with its newline).
MAX_LINE_BYTES = 4096
#: Longest wait of the serving thread in its selector (s).
TURN_S = 0.1


class Command(enum.Enum):
    HATCH = "hatch"
    STATUS = "status"


class ControlError(ValueError):
    """A request the emulator cannot carry out; the message is one line."""


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (host 127.0.0.1; port 0 = any free one) -> (host, port).

    ValueError naming the problem."""
    host, sep, port_s = value.rpartition(":")
    if not sep:
        host, port_s = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"{value!r}: the port must be a number (HOST:PORT)") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{value!r}: the port must be 0..65535")
    return host, port


def encode(obj: dict) -> bytes:
    """One reply line: strict JSON (no NaN), one line, newline-terminated."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8") + b"\n"


def error_reply(message: str) -> dict:
    return {"ok": False, "error": " ".join(str(message).split())}


def parse_request(line: bytes) -> dict:
    """A request line -> its JSON object; ControlError otherwise."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"not a JSON line ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise ControlError('a request is a JSON object such as {"cmd": "status"}')
    return obj


def apply_request(emu, request: dict, on_hatch: Callable[[float, str, bool], None] | None = None):
    """Carry out ``request`` on the emulator ``emu`` (an ``hil.emulator.Emulator``)
    and return the reply.  ``on_hatch(t_s, name, is_open)`` is told of each hatch
    command carried out (the truth file records it)."""
    cmd = request.get("cmd")
    try:
        command = Command(cmd)
    except ValueError:
        known = ", ".join(c.value for c in Command)
        return error_reply(f"unknown command {cmd!r} ({known})")
    if command is Command.STATUS:
        hatches = {n: bool(o) for n, o in zip(emu.net.hatch_names, emu.net.hatch_open, strict=True)}
        return {"ok": True, "t_s": round(emu.t_s, 3), "hatches": hatches}
    name, is_open = request.get("name"), request.get("open")
    if not isinstance(is_open, bool):
        return error_reply("hatch needs open: true or false")
    if not isinstance(name, str):
        return error_reply("hatch needs name: a hatch of the scenario")
    try:
        t = emu.command_hatch(name, is_open)
    except KeyError as exc:
        return error_reply(exc.args[0] if exc.args else f"no hatch {name!r}")
    except RuntimeError as exc:
        return error_reply(str(exc))
    if on_hatch is not None:
        on_hatch(t, name, is_open)
    return {"ok": True, "hatch": name, "open": is_open, "t_s": round(t, 3)}


@dataclass
class _Client:
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    waiting: bool = False  # a request queued for the loop: read no further line yet
    closing: bool = False  # close once outbuf is sent


@dataclass
class _Pending:
    client: _Client
    request: dict
    deadline: float


class ControlServer:
    """The TCP server; ``service(apply)`` on the emulator's thread carries out what came."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_clients: int = 8,
        reply_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_clients = max_clients
        self.reply_timeout_s = reply_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._clients: dict[int, _Client] = {}
        self._sel = selectors.DefaultSelector()
        try:
            self._listener = socket.create_server((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-control", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    def describe(self) -> str:
        host, port = self.address
        return f"control=tcp tcp={host}:{port}"

    # -- the emulator's thread
    def service(self, apply: Callable[[dict], dict]) -> int:
        """Carry out every queued request with ``apply(request) -> reply``; how many."""
        with self._lock:
            batch, self._pending = self._pending, []
        for p in batch:
            try:
                reply = apply(p.request)
            except Exception as exc:  # a reply, never a crashed emulator
                reply = error_reply(f"{exc.__class__.__name__}: {exc}")
            self._respond(p.client, reply)
        if batch:
            self._wake()
        return len(batch)

    def close(self) -> None:
        self._stop.set()
        self._wake()
        self._thread.join(timeout=5)
        for c in list(self._clients.values()):
            with contextlib.suppress(OSError):
                c.sock.close()
        self._clients.clear()
        for s in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                s.close()
        self._sel.close()

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the serving thread
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _respond(self, client: _Client, reply: dict) -> None:
        try:
            data = encode(reply)
        except (TypeError, ValueError) as exc:
            data = encode(error_reply(f"reply not JSON: {exc}"))
        with self._lock:
            client.outbuf += data
            client.waiting = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception:  # noqa: BLE001 (the thread must go on; the client is dropped)
                time.sleep(TURN_S)

    def _turn(self) -> None:
        with self._lock:
            for fd, c in self._clients.items():
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.outbuf else 0)
                with contextlib.suppress(KeyError, ValueError):
                    if self._sel.get_key(fd).events != want:
                        self._sel.modify(fd, want, c)
        for key, mask in self._sel.select(TURN_S):
            if key.data == "listen":
                self._accept()
            elif key.data == "wake":
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            else:
                self._on_ready(key.data, mask)
        self._expire()
        # lines already buffered behind a request now answered
        for c in list(self._clients.values()):
            self._next_line(c)

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        if len(self._clients) >= self.max_clients:
            with contextlib.suppress(OSError):
                sock.send(encode(error_reply(f"busy: {self.max_clients} clients already")))
            sock.close()
            return
        c = _Client(sock)
        self._clients[sock.fileno()] = c
        self._sel.register(sock, selectors.EVENT_READ, c)

    def _on_ready(self, c: _Client, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            with self._lock:
                data = bytes(c.outbuf)
            try:
                n = c.sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._drop(c)
                return
            with self._lock:
                del c.outbuf[:n]
                done = c.closing and not c.outbuf
            if done:
                self._drop(c)
                return
        if mask & selectors.EVENT_READ:
            try:
                chunk = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(c)
                return
            if not chunk:
                self._drop(c)
                return
            c.inbuf += chunk
            self._next_line(c)

    def _next_line(self, c: _Client) -> None:
        """Queue the client's next complete line (one at a time: replies stay in order)."""
        if c.waiting or c.closing or c.sock.fileno() not in self._clients:
            return
        nl = c.inbuf.find(b"\n")
        if nl < 0:
            if len(c.inbuf) >= MAX_LINE_BYTES:
                self._refuse(c, f"request line longer than {MAX_LINE_BYTES} bytes")
            return
        line, c.inbuf = bytes(c.inbuf[:nl]), c.inbuf[nl + 1 :]
        if nl + 1 > MAX_LINE_BYTES:
            self._refuse(c, f"request line longer than {MAX_LINE_BYTES} bytes")
            return
        if not line.strip():
            return
        try:
            request = parse_request(line)
        except ControlError as exc:
            with self._lock:
                c.outbuf += encode(error_reply(str(exc)))
            return
        with self._lock:
            c.waiting = True
            self._pending.append(_Pending(c, request, self._clock() + self.reply_timeout_s))

    def _refuse(self, c: _Client, problem: str) -> None:
        with self._lock:
            c.outbuf += encode(error_reply(problem))
            c.closing = True
            c.inbuf.clear()

    def _expire(self) -> None:
        now = self._clock()
        with self._lock:
            late = [p for p in self._pending if p.deadline <= now]
            self._pending = [p for p in self._pending if p.deadline > now]
        for p in late:
            self._respond(
                p.client,
                error_reply(
                    f"the emulator did not take the command within {self.reply_timeout_s:g} s"
                ),
            )

    def _drop(self, c: _Client) -> None:
        fd = c.sock.fileno()
        with self._lock:
            self._pending = [p for p in self._pending if p.client is not c]
            self._clients.pop(fd, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(c.sock)
        with contextlib.suppress(OSError):
            c.sock.close()


def send_request(address: tuple[str, int], request: dict, timeout_s: float = 5.0) -> dict:
    """Client side, one request on its own connection -> the reply.

    OSError when nothing listens; ControlError for a missing or garbled reply."""
    deadline = time.monotonic() + timeout_s
    with socket.create_connection(address, timeout=timeout_s) as s:
        s.sendall(json.dumps(request).encode("utf-8") + b"\n")
        buf = bytearray()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ControlError(f"no reply within {timeout_s:g} s")
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                raise ControlError(f"no reply within {timeout_s:g} s") from None
            if not chunk:
                raise ControlError("the emulator closed the connection without a reply")
            buf += chunk
            if len(buf) > 1 << 20:
                raise ControlError("reply larger than 1 MiB")
    try:
        reply = json.loads(bytes(buf[: buf.index(b"\n")]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"reply not JSON ({exc.__class__.__name__})") from None
    if not isinstance(reply, dict):
        raise ControlError("reply not a JSON object")
    return reply
