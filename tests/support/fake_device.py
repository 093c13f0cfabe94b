"""A small fake transducer bus for the link, driver and session tests.

Serves the native protocol over (a) a pseudo-terminal (both ends raw before
any byte, a stable symlink path that can be re-pointed to a new pty, like
udev's /dev/serial/by-id) or (b) a TCP server on 127.0.0.1 (``socket://``
URL) that can drop its client and accept again.  Commands are decoded with
``StreamDecoder`` and answered with frames built by ``drivers.frames``:
IDENTIFY -> IDENTITY + ACK; SET_RATE / START / STOP / ZERO_OFFSET / RESET ->
ACK.  Streaming devices emit SAMPLEs at their rate.  Independent of ``hil/``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from drivers.decoder import StreamDecoder
from drivers.frames import AckFrame, CommandFrame, IdentityFrame, SampleFrame
from drivers.protocol import BROADCAST_ADDR, AckResult, Opcode


@dataclass
class FakeTransducer:
    """One device address: its identity, rate and streaming state."""

    addr: int
    rate_mhz: int = 100_000  # 100 Hz
    streaming: bool = False
    serial: int = 0
    model: str = "FAKE-PT1"
    #: Opcodes this device never acknowledges (to test timeouts and retries).
    mute_opcodes: set[int] = field(default_factory=set)
    seq: int = 0
    t_us: int = 0
    emitted: int = 0
    stream_t0: float = 0.0
    commands: list[CommandFrame] = field(default_factory=list)

    def next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        return s

    def handle(self, cmd: CommandFrame, now: float) -> bytes:
        self.commands.append(cmd)
        out = b""
        result = AckResult.OK
        if cmd.opcode == Opcode.IDENTIFY:
            out += IdentityFrame(
                self.addr,
                self.next_seq(),
                0,
                self.model,
                self.serial or 1000 + self.addr,
                0x0102,
                0.0,
                120_000.0,
                self.rate_mhz,
            ).encode()
        elif cmd.opcode == Opcode.SET_RATE:
            if len(cmd.args) != 4 or struct.unpack(">I", cmd.args)[0] == 0:
                result = AckResult.BAD_ARGUMENT
            else:
                self.rate_mhz = struct.unpack(">I", cmd.args)[0]
                self._restart_stream(now)
        elif cmd.opcode == Opcode.START:
            self.streaming = True
            self._restart_stream(now)
        elif cmd.opcode == Opcode.STOP:
            self.streaming = False
        elif cmd.opcode in (Opcode.ZERO_OFFSET, Opcode.RESET):
            pass
        else:
            result = AckResult.UNKNOWN_OPCODE
        if cmd.opcode in self.mute_opcodes or not cmd.flags & 0x02:
            return out
        ack = AckFrame(self.addr, self.next_seq(), 0, cmd.seq, cmd.opcode, result)
        return out + ack.encode()

    def _restart_stream(self, now: float) -> None:
        self.stream_t0 = now
        self.emitted = 0

    def due_samples(self, now: float) -> bytes:
        if not self.streaming or self.rate_mhz <= 0:
            return b""
        due = int((now - self.stream_t0) * self.rate_mhz / 1000.0) - self.emitted
        out = []
        for _ in range(max(0, min(due, 1000))):
            self.t_us += int(1e9 / self.rate_mhz)
            p = 101_325.0 + (self.emitted % 100) * 0.5
            out.append(SampleFrame(self.addr, self.next_seq(), 0, self.t_us, p, 21.5, 0).encode())
            self.emitted += 1
        return b"".join(out)


class FakeBus:
    """Devices behind one transport; a thread answers commands and streams samples.

    Subclasses provide the transport (``_wait_readable``, ``_read``, ``_write``).
    """

    tick_s = 0.005

    def __init__(self, addrs=(1,), **device_options):
        self.devices = {a: FakeTransducer(a, **device_options) for a in addrs}
        self.decoder = StreamDecoder()
        self.lock = threading.Lock()
        self.bytes_sent = 0
        self.sent = bytearray()  # everything written, when record=True
        self.record = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    # transport -------------------------------------------------------------
    def _wait_readable(self, timeout: float) -> bool:
        raise NotImplementedError

    def _read(self) -> bytes | None:
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    # public -----------------------------------------------------------------
    def start(self) -> FakeBus:
        self._thread = threading.Thread(target=self._run, name="fake-bus", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def inject(self, data: bytes) -> None:
        """Write raw bytes (garbage, hand-made frames) into the stream."""
        with self.lock:
            self._send(data)

    def set_streaming(self, on: bool) -> None:
        now = time.monotonic()
        with self.lock:
            for d in self.devices.values():
                d.streaming = on
                d._restart_stream(now)

    # internals --------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._write(data)
        except OSError:
            return  # nobody listening: the bytes are lost, as on a real line
        self.bytes_sent += len(data)
        if self.record:
            self.sent += data

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._wait_readable(self.tick_s):
                    data = self._read()
                    if data:
                        self._handle(data)
                now = time.monotonic()
                with self.lock:
                    out = b"".join(d.due_samples(now) for d in self.devices.values())
                    self._send(out)
            except Exception as exc:  # noqa: BLE001 - keep serving; tests look at .errors
                self.errors.append(exc)
                time.sleep(self.tick_s)

    def _handle(self, data: bytes) -> None:
        now = time.monotonic()
        batch = self.decoder.feed(data, now)
        for _, frame in batch.frames:
            if not isinstance(frame, CommandFrame):
                continue
            with self.lock:
                targets = (
                    list(self.devices.values())
                    if frame.addr == BROADCAST_ADDR
                    else [self.devices[frame.addr]]
                    if frame.addr in self.devices
                    else []
                )
                for d in targets:
                    self._send(d.handle(frame, now))


class PtyBus(FakeBus):
    """Devices behind a pseudo-terminal; ``path`` is a symlink to the current slave."""

    def __init__(self, folder: str | os.PathLike, addrs=(1,), **device_options):
        super().__init__(addrs, **device_options)
        self.path = Path(folder) / "ttyFAKE0"
        self.master = -1
        self.slave = -1
        self._fd_lock = threading.Lock()
        self.open_pty()

    @property
    def url(self) -> str:
        return str(self.path)

    def open_pty(self) -> None:
        """A new pty (both ends raw at once) and the symlink re-pointed to it."""
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)
        with self._fd_lock:
            self.master, self.slave = master, slave

    def close_pty(self) -> None:
        """The port goes away: close both ends and remove the symlink, as udev does.

        (The /dev/pts/N number is free at once and another process's pty may
        take it, so a dangling symlink could lead to somebody else's port.)
        """
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with self._fd_lock:
            master, slave = self.master, self.slave
            self.master = self.slave = -1
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)

    def stop(self) -> None:
        super().stop()
        self.close_pty()

    def _wait_readable(self, timeout: float) -> bool:
        fd = self.master
        if fd < 0:
            time.sleep(timeout)
            return False
        try:
            r, _, _ = select.select([fd], [], [], timeout)
        except (OSError, ValueError):
            return False
        return bool(r)

    def _read(self) -> bytes | None:
        with self._fd_lock:
            if self.master < 0:
                return None
            try:
                return os.read(self.master, 65536)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EIO):
                    return None
                raise

    def _write(self, data: bytes) -> None:
        with self._fd_lock:
            fd = self.master
            if fd < 0:
                raise OSError(errno.EBADF, "pty closed")
            view = memoryview(data)
            deadline = time.monotonic() + 0.5
            while view and time.monotonic() < deadline:
                try:
                    n = os.write(fd, view)
                    view = view[n:]
                except BlockingIOError:
                    select.select([], [fd], [], 0.01)  # the reader is behind: wait a little


class TcpBus(FakeBus):
    """Devices behind a TCP server on 127.0.0.1 (ephemeral port), one client at a time."""

    def __init__(self, addrs=(1,), **device_options):
        super().__init__(addrs, **device_options)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]
        self.client: socket.socket | None = None
        self.accepts = 0
        self.accepting = threading.Event()
        self.accepting.set()
        self._sock_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def drop(self) -> None:
        """Close the client connection; the server accepts the next one."""
        with self._sock_lock:
            c, self.client = self.client, None
        if c is not None:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def stop(self) -> None:
        super().stop()
        self.drop()
        self.server.close()

    def _wait_readable(self, timeout: float) -> bool:
        c = self.client
        if c is None:
            if not self.accepting.is_set():
                time.sleep(timeout)
                return False
            r, _, _ = select.select([self.server], [], [], timeout)
            if r:
                try:
                    conn, _ = self.server.accept()
                except BlockingIOError:
                    return False
                conn.setblocking(True)
                conn.settimeout(0.5)
                with self._sock_lock:
                    self.client = conn
                self.accepts += 1
                self.decoder.flush()
            return False
        try:
            r, _, _ = select.select([c], [], [], timeout)
        except (OSError, ValueError):
            return False
        return bool(r)

    def _read(self) -> bytes | None:
        c = self.client
        if c is None:
            return None
        try:
            data = c.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop()  # the host went away
            return None
        return data

    def _write(self, data: bytes) -> None:
        with self._sock_lock:
            c = self.client
            if c is None:
                raise OSError(errno.ENOTCONN, "no client")
            c.sendall(data)


# -- test helpers ---------------------------------------------------------------


def wait_until(predicate, timeout_s: float = 5.0, interval_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


class Collector:
    """Accumulates everything a driver's ``drain()`` returns."""

    def __init__(self, driver):
        self.driver = driver
        self.samples = []
        self.frames = []
        self.events = []
        self.host_times = []

    def poll(self) -> Collector:
        batch = self.driver.drain()
        if len(batch.samples):
            self.samples.append(batch.samples)
        self.frames.extend(batch.frames)
        self.events.extend(batch.events)
        if batch.host_time_s is not None:
            self.host_times.append(batch.host_time_s)
        return self

    @property
    def n_samples(self) -> int:
        return sum(len(s) for s in self.samples)

    def kinds(self) -> list:
        return [e.kind for e in self.events]

    def until(self, predicate, timeout_s: float = 5.0) -> bool:
        return wait_until(lambda: predicate(self.poll()), timeout_s)
