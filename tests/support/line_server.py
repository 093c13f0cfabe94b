"""Any emulated polled line (``hil.polled_lines``) served on 127.0.0.1 TCP for driver tests.

``LineServer(line, tamper=..., reply_delay_s=...)`` accepts one client at a
time and answers its bytes with ``line.feed``; a line with ``emit`` (a
Digiquartz's continuous output) also sends what it emits, every ``tick_s``.
``tamper(chunk)`` may rewrite every chunk sent (noise, truncation, another
ID); ``reply_delay_s`` holds every answer that long; ``log`` records when
requests came and answers left; ``lock`` is held while the line runs (take it
to change a device).  Use as a context manager: the thread and sockets are
closed on exit.  ``KellerServer`` and ``ModbusServer`` are this around their line.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable


class LineServer:
    def __init__(
        self,
        line,
        *,
        tamper: Callable[[bytes], bytes] | None = None,
        reply_delay_s: float = 0.0,
        tick_s: float = 0.005,
    ):
        self.line = line
        self.tamper = tamper
        self.reply_delay_s = reply_delay_s
        self.tick_s = tick_s
        #: ("rx", monotonic s) per chunk received, ("tx", s) per reply sent
        self.log: list[tuple[str, float]] = []
        self.received = bytearray()
        self.lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(1)
        self._srv.settimeout(0.1)
        self.port = self._srv.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._drop = threading.Event()
        self.connections = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def drop(self) -> None:
        """Close the client's connection (it may connect again)."""
        self._drop.set()

    def __enter__(self) -> LineServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._srv.close()

    def _send(self, conn, out: list[bytes]) -> bool:
        if self.tamper is not None:
            out = [self.tamper(chunk) for chunk in out]
        self.log.append(("tx", time.monotonic()))
        try:
            conn.sendall(b"".join(out))
        except OSError:
            return False
        return True

    def _run(self) -> None:
        emit = getattr(self.line, "emit", None)
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            conn.settimeout(self.tick_s)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            t_last = time.monotonic()
            with conn:
                while not self._stop.is_set():
                    if self._drop.is_set():
                        self._drop.clear()
                        break
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        data = None
                    except OSError:
                        break
                    if data == b"":
                        break
                    now = time.monotonic()
                    out: list[bytes] = []
                    with self.lock:
                        if emit is not None and now > t_last:
                            out.extend(emit(t_last, now))
                            t_last = now
                        if data:
                            self.log.append(("rx", now))
                            self.received += data
                            replies = self.line.feed(data, now)
                            if replies and self.reply_delay_s:
                                time.sleep(self.reply_delay_s)
                            out.extend(replies)
                    if out and not self._send(conn, out):
                        break
