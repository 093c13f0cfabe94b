"""A KELLER bus line (``hil.keller_device``) served on 127.0.0.1 TCP for driver tests.

``KellerServer(devices, echo=..., tamper=...)`` accepts one client at a time and
answers its requests with the line's state machine; ``tamper(chunk)`` may
rewrite every chunk the line sends (noise, truncation, a swapped CRC);
``reply_delay_s`` holds every answer that long; ``log`` records when requests
came and answers left.  Use
as a context manager: the thread and sockets are closed on exit.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from hil.keller_device import KellerDevice, KellerLine


class KellerServer:
    def __init__(
        self,
        devices: list[KellerDevice],
        *,
        echo: bool = False,
        tamper: Callable[[bytes], bytes] | None = None,
        reply_delay_s: float = 0.0,
    ):
        self.line = KellerLine(devices, echo=echo)
        self.tamper = tamper
        self.reply_delay_s = reply_delay_s
        #: ("rx", monotonic s) per chunk received, ("tx", s) per reply sent
        self.log: list[tuple[str, float]] = []
        self.lock = threading.Lock()  # held while the line handles a request
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

    def __enter__(self) -> KellerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._srv.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.05)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            with conn:
                while not self._stop.is_set():
                    if self._drop.is_set():
                        self._drop.clear()
                        break
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    self.log.append(("rx", time.monotonic()))
                    with self.lock:
                        out = self.line.feed(data, time.monotonic())
                    if out and self.reply_delay_s:
                        time.sleep(self.reply_delay_s)
                    if not out:
                        continue
                    if self.tamper is not None:
                        out = [self.tamper(chunk) for chunk in out]
                    self.log.append(("tx", time.monotonic()))
                    try:  # one write: echo and reply as one line sends them
                        conn.sendall(b"".join(out))
                    except OSError:
                        break
