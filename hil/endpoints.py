"""Where a link's bytes go: a pseudo-terminal, a TCP server, a real serial port, a file.

Every endpoint takes whole blocks of frames from the emulator with ``write`` and
never blocks: bytes the reader does not take are held (up to ``hold_bytes``) and
sent when the port is writable again; a block that does not fit is dropped whole,
so frames are not cut, and counted (SERIAL_NOTES.md: a pty buffers about 20 KB
and a writer that outruns its reader blocks).  ``--baud`` pacing is a token
bucket (10 bit times per byte, 8N1), since a pty ignores its baud rate; on a
half-duplex (polled, RS-485) link the host's requests draw from it too.

- ``PtyEndpoint``: ``os.openpty()`` with both ends put in raw mode at once, before
  a byte is written (a fresh pty is cooked: it would eat 0x03/0x11/0x13/0x15 and
  echo).  The raw settings stay with the pty while clients come and go; the master
  tells whether a client has the slave open (POLLHUP when none).  A stable alias
  (a symlink) is kept to the current ``/dev/pts/N``; a link-fault disconnect closes
  the pty (the client's next read raises "device reports readiness to read but
  returned no data") and opens a new one behind the same alias.
- ``TcpEndpoint``: a server bound to 127.0.0.1 by default, one client at a time
  (a new connection replaces the old one, so a client that vanished never locks
  the port); a disconnect closes client and listener and binds again after it.
- ``SerialPortEndpoint``: a real port through pyserial, written non-blocking.
- ``FileEndpoint``: a capture file; takes everything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import select
import socket
import sys
import tempfile
import termios
import time
import tty
from collections import deque

BYTE_BITS = 10  # 8N1: start + 8 data + stop


class Endpoint:
    """Base: pending bytes, pacing, counters.  Subclasses do the I/O."""

    kind = "endpoint"

    def __init__(
        self,
        link: str,
        baud: int | None = None,
        hold_bytes: int = 65536,
        half_duplex: bool = False,
        reply_delay_s: float = 0.0,
    ):
        self.link = link
        self.baud = baud
        #: with ``baud``: one line both ways (an RS-485 bus): the host's request
        #: takes its time on the wire before the device can answer, and a reply
        #: is handed over whole when its last byte would have arrived (no idle
        #: time banked, unlike the streaming links' token bucket)
        self.half_duplex = half_duplex
        #: half duplex: the devices' turnaround, from a request's last byte to
        #: their reply's first (a KELLER's 1.3-1.8 ms, a Modbus device's 3.5
        #: characters of silence that end the request)
        self.reply_delay_s = float(reply_delay_s)
        self._line_free_t = 0.0  # monotonic: the line carries nothing after this
        self._request_end_t = -math.inf  # monotonic: the last request off the wire
        self._release_t: deque[float] = deque()  # per block in pending, half duplex
        self.hold_bytes = hold_bytes
        self.pending = bytearray()
        self._blocks: deque[int] = deque()  # lengths of the blocks in pending
        self.bytes_written = 0
        self.bytes_dropped = 0
        self.blocks_dropped = 0
        self.bytes_in = 0
        self.reconnects = 0
        self._tokens = 0.0
        self._token_t = time.monotonic()

    # -- subclass hooks
    def _write_some(self, data: bytes) -> int:
        raise NotImplementedError

    def _read_some(self) -> bytes:
        return b""

    def read_fds(self) -> list[int]:
        return []

    def write_fd(self) -> int | None:
        return None

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"link={self.link}"

    @property
    def connected(self) -> bool:
        """Whether a reader is attached (unknown for a pty or port: assumed)."""
        return True

    # -- policy
    def write(self, data: bytes) -> None:
        """Queue a block of whole frames; drop it whole if the hold is full."""
        if not data:
            return
        if not self.connected or len(self.pending) + len(data) > self.hold_bytes:
            self.bytes_dropped += len(data)
            self.blocks_dropped += 1
            return
        self.pending += data
        self._blocks.append(len(data))
        if self._line_clocked():
            turnaround = self._request_end_t + self.reply_delay_s
            start = max(time.monotonic(), self._line_free_t, turnaround)
            self._line_free_t = start + len(data) * BYTE_BITS / self.baud
            self._release_t.append(self._line_free_t)
        self.flush()

    def flush(self) -> None:
        """Send what the port and the baud budget take now."""
        if not self.pending:
            return
        n = len(self.pending)
        if self._line_clocked():
            n = self._released_bytes()
        elif self.baud:
            n = min(n, int(self._refill()))
        limit = self._flush_limit()
        if limit is not None:
            n = min(n, limit)
        if n <= 0:
            return
        try:
            sent = self._write_some(bytes(self.pending[:n]))
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0
            self._on_error()
        if sent:
            del self.pending[:sent]
            self._consume(sent)
            self.bytes_written += sent
            if self._line_clocked():
                pass  # the line clock advanced when the block was queued
            elif self.baud:
                self._tokens -= sent

    def _flush_limit(self) -> int | None:
        """At most this many bytes now (None: no limit of the port's own)."""
        return None

    def _line_clocked(self) -> bool:
        return bool(self.baud) and self.half_duplex

    def _released_bytes(self) -> int:
        """Half duplex: bytes of the leading blocks whose last byte is off the wire."""
        now = time.monotonic()
        n = 0
        for size, t in zip(self._blocks, self._release_t, strict=False):
            if t > now:
                break
            n += size
        return n

    def next_release_s(self) -> float | None:
        """Half duplex: seconds until the next held block may go (None: none held)."""
        if not self._line_clocked() or not self._release_t:
            return None
        return max(0.0, self._release_t[0] - time.monotonic())

    def _consume(self, sent: int) -> None:
        while sent and self._blocks:
            if self._blocks[0] <= sent:
                sent -= self._blocks.popleft()
                if self._release_t:
                    self._release_t.popleft()
            else:
                self._blocks[0] -= sent
                sent = 0

    def _clear_pending(self) -> None:
        self.pending.clear()
        self._blocks.clear()
        self._release_t.clear()

    def _refill(self) -> float:
        """Baud budget in bytes now (a token bucket holding at most 50 ms of line)."""
        now = time.monotonic()
        rate = self.baud / BYTE_BITS
        self._tokens = min(self._tokens + (now - self._token_t) * rate, max(rate * 0.05, 64))
        self._token_t = now
        return self._tokens

    def wants_write(self) -> bool:
        """Pending bytes the baud budget lets out now (else the loop sleeps, not spins)."""
        if self._line_clocked():
            return self._released_bytes() > 0
        return bool(self.pending) and (not self.baud or self._refill() >= 1)

    def read(self) -> bytes:
        try:
            data = self._read_some()
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            self._on_error()
            return b""
        self.bytes_in += len(data)
        if self._line_clocked() and data:
            # written at once by the host, the request is on the wire for its
            # bytes' time from now: the device answers after that
            start = max(self._line_free_t, time.monotonic())
            self._line_free_t = start + len(data) * BYTE_BITS / self.baud
            self._request_end_t = self._line_free_t
        return data

    def _on_error(self) -> None:
        pass

    def disconnect(self) -> None:
        """Link fault: the port goes away."""
        self._clear_pending()
        self.close()

    def reconnect(self) -> None:
        """Link fault over: the port comes back."""
        self.reconnects += 1
        self.open()

    def idle(self) -> bool:
        return not self.pending

    def unread_bytes(self) -> int:
        """Bytes sent but not yet taken by the reader, where the port can tell (else 0)."""
        return 0

    def counters(self) -> dict:
        return {
            "written": self.bytes_written,
            "dropped": self.bytes_dropped,
            "blocks_dropped": self.blocks_dropped,
            "in": self.bytes_in,
            "pending": len(self.pending),
            "reconnects": self.reconnects,
        }


def _nonblocking(fd: int) -> None:
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)


class PtyEndpoint(Endpoint):
    """A pseudo-terminal per link; clients open ``path`` or the stable ``alias``.

    Both ends go to raw mode right after ``openpty()``; then the emulator closes its
    slave fd, so the master reports POLLHUP while no client has the slave open (the
    raw settings stay with the pty).  That is how a reader is seen: with none, blocks
    are dropped and counted (live) or not made (``--speed max``), never queued for a
    client that would flush them on open (pyserial resets the input buffer on open).
    A new client gets ``SETTLE_S`` to finish opening before the first byte.

    ``alias_path`` names the alias (symlink) itself, e.g. a stable path given by
    ``emulate --pty-link``: an old symlink there (left by a killed emulator) is
    replaced, anything else is refused; on cleanup it is removed only while it
    still points at this pty.
    """

    kind = "pty"
    SETTLE_S = 0.05
    FILL_BYTES = 8192

    def __init__(
        self, link: str, alias_dir: str | None = None, alias_path: str | None = None, **kw
    ):
        super().__init__(link, **kw)
        if alias_path is not None:
            self._own_dir = False
            self.alias = os.path.abspath(alias_path)
            self.alias_dir = os.path.dirname(self.alias)
            if os.path.lexists(self.alias) and not os.path.islink(self.alias):
                raise FileExistsError(f"{self.alias} exists and is not a symlink")
        else:
            self._own_dir = alias_dir is None
            self.alias_dir = alias_dir or tempfile.mkdtemp(prefix="cabinwatch-emulate-")
            self.alias = os.path.join(self.alias_dir, link)
        self.master: int | None = None
        self.path = ""
        self._poll: select.poll | None = None
        self._reader_since: float | None = None
        self.readers_seen = 0

    def open(self) -> None:
        master, slave = os.openpty()
        # raw on both ends before a single byte is written (SERIAL_NOTES.md)
        tty.setraw(master)
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)
        _nonblocking(master)
        self.master = master
        self._poll = select.poll()
        self._poll.register(master, select.POLLHUP)
        self._reader_since = None
        tmp = self.alias + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self.path, tmp)
        os.replace(tmp, self.alias)

    def close(self) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
        self.master = None
        self._poll = None
        self._reader_since = None

    def cleanup(self) -> None:
        self.close()
        with contextlib.suppress(OSError):
            if os.readlink(self.alias) == self.path:  # not a newer emulator's link
                os.unlink(self.alias)
        if self._own_dir:
            with contextlib.suppress(OSError):
                os.rmdir(self.alias_dir)

    def _reader_present(self) -> bool:
        """Whether a client has the slave open (no POLLHUP on the master)."""
        if self._poll is None:
            return False
        if any(ev & select.POLLHUP for _, ev in self._poll.poll(0)):
            if self._reader_since is not None:
                self._clear_pending()  # the reader left: what it did not take is gone
            self._reader_since = None
            return False
        if self._reader_since is None:
            self._reader_since = time.monotonic()
            self.readers_seen += 1
        return True

    def _settled(self) -> bool:
        """A reader is present and has had SETTLE_S to finish opening (and flushing)."""
        return self._reader_present() and time.monotonic() - self._reader_since >= self.SETTLE_S

    @property
    def connected(self) -> bool:
        return self._reader_present()

    def _write_some(self, data: bytes) -> int:
        if self.master is None or not self._settled():
            return 0  # held until the new reader is ready
        return os.write(self.master, data)

    def _flush_limit(self) -> int | None:
        # Keep at most FILL_BYTES unread in the pty and write whole blocks (whole
        # frames): the kernel then takes every write whole, and a reader never
        # waits on the tail of a frame while the emulator waits for room.
        room = self.FILL_BYTES - self.unread_bytes()
        n = 0
        for length in self._blocks:
            if n + length > room:
                break
            n += length
        if n == 0 and room == self.FILL_BYTES and self._blocks:
            n = self._blocks[0]  # a block larger than the fill level: as much as it takes
        return n

    def unread_bytes(self) -> int:
        """Bytes in the slave's input queue: what the client has not read yet."""
        if not self._reader_present():
            return 0
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        finally:
            os.close(fd)
        return int.from_bytes(buf, sys.byteorder)

    def _read_some(self) -> bytes:
        if self.master is None:
            return b""
        try:
            return os.read(self.master, 65536)
        except OSError as exc:
            if exc.errno == errno.EIO:  # no client has the slave open
                return b""
            raise

    def read_fds(self) -> list[int]:
        # a master without a client polls as readable (EIO): leave it out then
        return [self.master] if self.master is not None and self._reader_present() else []

    def write_fd(self) -> int | None:
        if self.wants_write() and self._settled() and self._flush_limit():
            return self.master
        return None  # nothing to send, or waiting for the reader to make room

    def describe(self) -> str:
        return f"link={self.link} pty={self.path} alias={self.alias}"


def parse_tcp_address(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``PORT`` as (host, port); ValueError naming
    what is wrong.  An IPv6 address goes in brackets: ``[::1]:7000``."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")) or not host:
            raise ValueError(f"bad address {value!r} (use [IPV6]:PORT)")
        port = rest[1:]
    elif text.count(":") > 1:
        raise ValueError(f"bad address {value!r}: put an IPv6 address in brackets, [::1]:PORT")
    else:
        host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"bad port {port!r} (use HOST:PORT, [IPV6]:PORT or PORT)")
    port_n = int(port)
    if not 0 <= port_n <= 65535:
        raise ValueError(f"port {port_n} out of range 0..65535")
    return host or default_host, port_n


class TcpEndpoint(Endpoint):
    kind = "tcp"

    def __init__(self, link: str, host: str = "127.0.0.1", port: int = 0, **kw):
        super().__init__(link, **kw)
        self.host, self.port = host, port
        self.server: socket.socket | None = None
        self.client: socket.socket | None = None
        self.clients_accepted = 0

    def open(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        srv = socket.socket(family, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, self.port))
        srv.listen(1)
        srv.setblocking(False)
        self.port = srv.getsockname()[1]  # keep the same port across reconnects
        self.server = srv

    def _drop_client(self) -> None:
        if self.client is not None:
            with contextlib.suppress(OSError):
                self.client.close()
        self.client = None
        self._clear_pending()

    def close(self) -> None:
        self._drop_client()
        if self.server is not None:
            with contextlib.suppress(OSError):
                self.server.close()
        self.server = None

    cleanup = close

    def accept(self) -> None:
        if self.server is None:
            return
        try:
            conn, _ = self.server.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._drop_client()  # one client at a time: the newest wins
        self.client = conn
        self.clients_accepted += 1

    @property
    def connected(self) -> bool:
        return self.client is not None

    def _write_some(self, data: bytes) -> int:
        if self.client is None:
            return 0
        return self.client.send(data)

    def _read_some(self) -> bytes:
        self.accept()
        if self.client is None:
            return b""
        data = self.client.recv(65536)
        if not data:  # the client went away
            self._drop_client()
        return data

    def _on_error(self) -> None:
        self._drop_client()

    def read_fds(self) -> list[int]:
        fds = []
        if self.server is not None:
            fds.append(self.server.fileno())
        if self.client is not None:
            fds.append(self.client.fileno())
        return fds

    def write_fd(self) -> int | None:
        return self.client.fileno() if self.client is not None and self.wants_write() else None

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"link={self.link} tcp={host}:{self.port}"


class SerialPortEndpoint(Endpoint):
    kind = "port"

    def __init__(self, link: str, device: str, **kw):
        super().__init__(link, **kw)
        self.device = device
        self.ser = None

    def open(self) -> None:
        import serial

        self.ser = serial.Serial(
            self.device, baudrate=self.baud or 115200, timeout=0, write_timeout=0
        )
        _nonblocking(self.ser.fileno())

    def close(self) -> None:
        if self.ser is not None:
            with contextlib.suppress(Exception):
                self.ser.close()
        self.ser = None

    cleanup = close

    def _write_some(self, data: bytes) -> int:
        return os.write(self.ser.fileno(), data) if self.ser is not None else 0

    def _read_some(self) -> bytes:
        if self.ser is None:
            return b""
        return os.read(self.ser.fileno(), 65536)

    def read_fds(self) -> list[int]:
        return [self.ser.fileno()] if self.ser is not None else []

    def write_fd(self) -> int | None:
        return self.ser.fileno() if self.ser is not None and self.wants_write() else None

    def describe(self) -> str:
        return f"link={self.link} port={self.device}"


class FileEndpoint(Endpoint):
    """A capture file: every byte, no pacing, no drops."""

    kind = "out"

    def __init__(self, link: str, path: str, **kw):
        super().__init__(link, **kw)
        self.path = path
        self.fh = None

    def open(self) -> None:
        if self.fh is None:
            self.fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> None:
        if data and self.fh is not None:
            self.fh.write(data)
            self.bytes_written += len(data)

    def disconnect(self) -> None:
        pass  # a capture records the silence, the file stays open

    def reconnect(self) -> None:
        self.reconnects += 1

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
        self.fh = None

    cleanup = close

    def describe(self) -> str:
        return f"link={self.link} out={self.path}"
