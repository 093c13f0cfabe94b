"""Where the packets go: a file, UDP datagrams to a host:port, a TCP server.

A sink is chosen by a URL string (``sink_for_url``):

* ``udp://HOST:PORT``: one packet per datagram (Yamcs ``UdpTmDataLink``);
* ``tcp://HOST:PORT``: the monitor listens; every connected client gets the
  packets back to back (Yamcs ``TcpTmDataLink`` is a TCP client);
* ``file:PATH`` or a plain path: packets appended back to back.

``CcsdsWriter`` is a listener (``record_tick``, ``close``) like the telemetry
writer: every sink has its own ``OutputGuard``; a sink that fails is retried
after the guard's backoff and its packets meanwhile are dropped (counted in
``packets_dropped``): a ground output never stops the loop.
"""

from __future__ import annotations

import math
import selectors
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from common.outputguard import OutputGuard

if TYPE_CHECKING:  # the URL parsing is for the configuration too: no spacepackets here
    from firmware_host.ground.packets import Packet, PacketBuilder

#: URL schemes of the sinks.
SCHEMES = ("udp", "tcp", "file")


class SinkError(ValueError):
    """A sink URL that names no sink (unknown scheme, no port)."""


def parse_url(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host or path, port)`` of a sink URL; raises ``SinkError``."""
    if "://" not in url:
        path = url[5:] if url.startswith("file:") else url
        if not path:
            raise SinkError("empty file path (file:PATH or a path)")
        return "file", path, None
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port
    except ValueError as exc:  # a bad port, an unclosed [IPv6 bracket
        raise SinkError(f"not a sink URL: {url!r} ({exc})") from None
    if scheme == "file":
        if not parts.path:
            raise SinkError("empty file path (file:PATH or a path)")
        return "file", parts.path, None
    if scheme not in SCHEMES:
        raise SinkError(f"unknown scheme {scheme!r} (udp://HOST:PORT, tcp://HOST:PORT, file:PATH)")
    if not parts.hostname or port is None:
        raise SinkError(f"{url!r}: needs HOST:PORT")
    return scheme, parts.hostname, port


class FileSink:
    """Packets appended back to back to ``path`` (unbuffered: a kill loses nothing written)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fh = None

    def send(self, data: bytes) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        try:
            n = self._fh.write(data)
            if n != len(data):
                raise OSError(f"short write of {self.path}")
        except (OSError, ValueError):
            self.close()
            raise

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()


class UdpSink:
    """One datagram per packet to ``host:port``."""

    def __init__(self, host: str, port: int):
        self.address = (host, port)
        self._sock: socket.socket | None = None

    def send(self, data: bytes) -> None:
        if self._sock is None:
            info = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0]
            self._sock = socket.socket(info[0], socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self.address = info[4][:2]
        self._sock.sendto(data, self.address)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


class TcpServerSink:
    """A listening socket on ``host:port``; each send goes to every client.

    Sends never block: a client that cannot take a packet at once (its
    buffer full) or that hung up is dropped.  ``port`` 0 binds a free port
    (``address`` says which).
    """

    def __init__(self, host: str, port: int):
        self._where = (host, port)
        self._srv: socket.socket | None = None
        self._sel: selectors.BaseSelector | None = None
        self._clients: list[socket.socket] = []

    def listen(self) -> None:
        """Bind and listen now (else on the first send); raises ``OSError``."""
        if self._srv is not None:
            return
        srv = socket.create_server(self._where)
        srv.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(srv, selectors.EVENT_READ)
        self._srv = srv

    @property
    def address(self) -> tuple[str, int]:
        self.listen()
        return self._srv.getsockname()[:2]

    def _accept(self) -> None:
        self.listen()
        while self._sel.select(0):
            try:
                conn, _ = self._srv.accept()
            except BlockingIOError:
                return
            conn.setblocking(False)
            self._clients.append(conn)

    @property
    def clients(self) -> int:
        self._accept()
        return len(self._clients)

    def send(self, data: bytes) -> None:
        self._accept()
        for conn in list(self._clients):
            try:
                n = conn.send(data)
            except OSError:
                n = -1
            if n != len(data):  # a slow or gone client: drop it, never block the loop
                self._clients.remove(conn)
                conn.close()

    def close(self) -> None:
        for conn in self._clients:
            conn.close()
        self._clients = []
        srv, self._srv = self._srv, None
        if srv is not None:
            self._sel.close()
            srv.close()


def sink_for_url(url: str, directory: Path | None = None):
    """The sink a URL names; a relative file path is taken from ``directory``."""
    scheme, where, port = parse_url(url)
    if scheme == "udp":
        return UdpSink(where, port)
    if scheme == "tcp":
        return TcpServerSink(where, port)
    path = Path(where)
    if directory is not None and not path.is_absolute():
        path = directory / path
    return FileSink(path)


class CcsdsWriter:
    """A listener turning ticks into packets sent to ``sinks`` (``{name: sink}``).

    Housekeeping at ``rate_hz`` (by tick time), events at once.  ``guards``
    (one per sink name) receive each sink's failures; without one a failure
    is raised.  ``loop_health`` (a callable, optional) gives the loop's
    ``LoopHealth`` for the system structure.
    """

    def __init__(
        self,
        builder: PacketBuilder,
        sinks: dict,
        *,
        rate_hz: float = 1.0,
        guards: dict[str, OutputGuard] | None = None,
        loop_health: Callable[[], object] | None = None,
    ):
        self.builder = builder
        self.sinks = dict(sinks)
        self.guards = guards or {}
        self.loop_health = loop_health
        self._period = 1.0 / rate_hz if rate_hz > 0 else math.inf
        self._next_t = -math.inf
        self.packets_sent = 0
        self.packets_dropped = 0

    def record_tick(self, result) -> None:
        hk = result.t_s >= self._next_t  # the system HK goes before any estimate too
        if hk:
            self._next_t = result.t_s + self._period
        if not hk and not result.events:
            return
        health = self.loop_health() if (hk and self.loop_health is not None) else None
        for packet in self.builder.tick_packets(result, hk=hk, loop_health=health):
            self.send(packet)

    def send(self, packet: Packet) -> None:
        for name, sink in self.sinks.items():
            guard = self.guards.get(name)
            if guard is None:
                sink.send(packet.data)
                self.packets_sent += 1
                continue
            if not guard.ready():
                self.packets_dropped += 1
                continue
            try:
                sink.send(packet.data)
            except OSError as exc:
                self.packets_dropped += 1
                guard.failed(exc)
            else:
                self.packets_sent += 1
                guard.succeeded()

    def close(self) -> None:
        for name, sink in self.sinks.items():
            try:
                sink.close()
            except OSError as exc:
                if name not in self.guards:
                    raise
                self.guards[name].failed(exc)


def open_sinks(urls: tuple[str, ...], directory: Path | None, guards: dict) -> dict:
    """``{name: sink}`` of ``urls``; names are ``ccsds`` or ``ccsds:N`` from the
    second on.  ``guards`` get a fresh ``OutputGuard`` per name (the caller's dict)."""
    sinks = {}
    for i, url in enumerate(urls):
        name = "ccsds" if i == 0 else f"ccsds:{i}"
        guards[name] = guards.get(name) or OutputGuard(name)
        sinks[name] = sink = sink_for_url(url, directory)
        if isinstance(sink, TcpServerSink):
            try:
                sink.listen()
            except OSError as exc:  # retried on the next send, after the backoff
                guards[name].failed(exc)
    return sinks
