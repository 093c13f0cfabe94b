"""Operator commands from another terminal, over a UNIX socket.

One JSON object per connection, one JSON reply:

    {"cmd": "ack"}                       acknowledge every alarm
    {"cmd": "ack", "key": "usos:LEAK"}   acknowledge one alarm
    {"cmd": "hatch", "name": "node1-fgb", "open": false}
    {"cmd": "limits", "name": "ground-test"}
    {"cmd": "status"}                    the monitor's snapshot

A thread accepts and reads; the commands are applied on the monitor loop's
thread (``poll()`` each tick), so the core is never touched concurrently.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path

MAX_REQUEST = 64 * 1024


class ControlServer:
    """Accepts operator commands on ``path``; ``poll(apply)`` runs them on the caller's thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and stat.S_ISSOCK(self.path.stat().st_mode):
            self.path.unlink()  # a stale socket from a previous run
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.errors = 0
        self._thread = threading.Thread(target=self._serve, name="cabinwatch-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                self.errors += 1
                continue
            try:
                conn.settimeout(2.0)
                data = b""
                while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data.decode("utf-8"))
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                self._queue.put((request, conn))
            except (OSError, ValueError) as exc:
                self.errors += 1
                _reply(conn, {"ok": False, "error": f"bad request: {exc}"})

    def poll(self, apply: Callable[[dict], dict]) -> int:
        """Apply queued commands with ``apply(request) -> reply``; returns how many ran."""
        n = 0
        while True:
            try:
                request, conn = self._queue.get_nowait()
            except queue.Empty:
                return n
            try:
                reply = apply(request)
            except Exception as exc:  # an operator typo must not stop the monitor
                reply = {"ok": False, "error": str(exc)}
            _reply(conn, reply)
            n += 1

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2.0)
        try:
            self.path.unlink()
        except OSError:
            pass


def _reply(conn: socket.socket, reply: dict) -> None:
    try:
        conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
    except OSError:
        pass
    finally:
        conn.close()


def send_command(path: str | Path, request: dict, timeout_s: float = 5.0) -> dict:
    """Client side: send one command, return the reply (raises OSError if no monitor)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.decode()) if data else {"ok": False, "error": "no reply"}


def apply_to_core(core, request: dict, now_s: float) -> dict:
    """The monitor's side of the commands above."""
    cmd = request.get("cmd")
    if cmd == "ack":
        events = core.acknowledge(request.get("key"), now_s=now_s)
        return {"ok": True, "acknowledged": len(events or [])}
    if cmd == "hatch":
        name, is_open = request.get("name"), request.get("open")
        if not isinstance(is_open, bool):
            return {"ok": False, "error": "hatch needs open: true or false"}
        if name not in core.hatch_open:
            known = ", ".join(core.hatch_open) or "none"
            return {"ok": False, "error": f"unknown hatch {name!r} (known: {known})"}
        core.set_hatch(name, is_open, now_s)
        return {"ok": True, "hatch": name, "open": is_open}
    if cmd == "limits":
        name = request.get("name")
        if name not in core.config.limit_sets:
            known = ", ".join(core.config.limit_sets)
            return {"ok": False, "error": f"unknown limit set {name!r} (known: {known})"}
        core.set_limit_set(name)
        return {"ok": True, "limit_set": name}
    if cmd == "status":
        return {"ok": True, "status": core.snapshot()}
    return {"ok": False, "error": f"unknown command {cmd!r} (ack, hatch, limits, status)"}
