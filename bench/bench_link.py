"""Serial link throughput and reader CPU: bulk reads against one ``read(35)`` per frame.

A writer process pushes SAMPLE frames as fast as the transport takes them
(64 KiB writes) into a pseudo-terminal (both ends raw) or a TCP socket on
127.0.0.1 (``socket://``); this process reads them.  Cases, side by side in
interleaved rounds:

* ``naive read(35)``: ``serial_for_url(url, timeout=0.1)`` and one
  ``read(35)`` per frame, the per-frame loop SERIAL_NOTES.md warns about
  (with and without feeding each frame to ``StreamDecoder``);
* ``SerialLink bulk``: the link's reader thread (select on ``fileno()``, one
  ``read(65536)`` per wake-up with ``timeout=0``), counting bytes;
* ``NativeDriver``: the same plus decoding into SAMPLE records.

A second run paces the writer at a 921600-baud line's frame rate (16
frames per write) and reports the reader's CPU share of one core.

Reported: frames/s received (wall time from the first to the last byte) and
CPU seconds of the reading process per 10^5 frames (``time.process_time``;
the writer runs in another process pinned to another core, so it is not
counted).  A pty ignores the baud rate, so these are upper bounds of the host
side, not of a UART.  Run: ``.venv/bin/python -m bench link``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import statistics
import threading
import time
import tty

import numpy as np

from bench.common import machine
from drivers.decoder import StreamDecoder
from drivers.driver import NativeDriver
from drivers.encode import encode_samples
from drivers.link import LinkState, SerialLink

N_FRAMES = 200_000
ROUNDS = 3
FRAME = 35
WRITE_CHUNK = 65536
LINK_921600_FPS = 921_600 / 350
#: The paced run: a 921600-baud line's rate, 16 frames per write (a UART FIFO's burst).
PACED_FRAMES = 8_000
PACED_FRAMES_PER_WRITE = 16


def _payload(n: int) -> bytes:
    seq = np.arange(n)
    return encode_samples(
        (seq % 16) + 1,
        seq // 16,
        seq.astype(np.uint64) * 1000,
        np.full(n, 101_325.0),
        np.full(n, 21.5),
    ).tobytes()


def _pin(cpu_index: int) -> None:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[cpu_index % len(cpus)]})
    except (AttributeError, OSError):
        pass


def _chunks(data: bytes, paced: bool):
    """The writer's chunks: 64 KiB at full speed, or a 921600-baud line's pace."""
    if not paced:
        for i in range(0, len(data), WRITE_CHUNK):
            yield data[i : i + WRITE_CHUNK]
        return
    step = PACED_FRAMES_PER_WRITE * FRAME
    period = PACED_FRAMES_PER_WRITE / LINK_921600_FPS
    t = time.perf_counter()
    for i in range(0, len(data), step):
        t += period
        delay = t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield data[i : i + step]


def _writer_pty(master: int, go, data: bytes, paced: bool) -> None:
    _pin(0)
    go.wait()
    for chunk in _chunks(data, paced):
        view = memoryview(chunk)
        while view:
            view = view[os.write(master, view) :]
    time.sleep(2.0)  # keep the master open until the reader has everything


def _writer_tcp(server: socket.socket, go, data: bytes, paced: bool) -> None:
    _pin(0)
    conn, _ = server.accept()
    go.wait()
    for chunk in _chunks(data, paced):
        conn.sendall(chunk)
    time.sleep(2.0)
    conn.close()


class _Transport:
    """A pty or a TCP server with a writer process that sends ``data`` on ``go``."""

    def __init__(self, kind: str, data: bytes, paced: bool = False):
        ctx = mp.get_context("fork")
        self.go = ctx.Event()
        if kind == "pty":
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            self.url = os.ttyname(slave)
            self.proc = ctx.Process(
                target=_writer_pty, args=(master, self.go, data, paced), daemon=True
            )
            self.proc.start()
            self._fds = [master, slave]
        else:
            server = socket.create_server(("127.0.0.1", 0))
            self.url = f"socket://127.0.0.1:{server.getsockname()[1]}"
            self.proc = ctx.Process(
                target=_writer_tcp, args=(server, self.go, data, paced), daemon=True
            )
            self.proc.start()
            server.close()
            self._fds = []

    def close(self) -> None:
        self.proc.terminate()
        self.proc.join(5)
        for fd in self._fds:
            os.close(fd)


def _naive(kind: str, data: bytes, decode: bool, paced: bool = False) -> tuple[float, float]:
    import serial

    t = _Transport(kind, data, paced)
    try:
        ser = serial.serial_for_url(t.url, timeout=0.1)
        total = len(data)
        decoder = StreamDecoder()
        n_samples = 0
        t.go.set()
        first = ser.read(FRAME)
        c0, w0 = time.process_time(), time.perf_counter()
        got = len(first)
        if decode:
            n_samples += len(decoder.feed(first, 0.0).samples)
        read = ser.read
        while got < total:
            chunk = read(FRAME)
            if not chunk:
                break
            got += len(chunk)
            if decode:
                n_samples += len(decoder.feed(chunk, time.monotonic()).samples)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        ser.close()
        assert got == total, (got, total)
        assert not decode or n_samples == total // FRAME
        return wall, cpu
    finally:
        t.close()


def _bulk(kind: str, data: bytes, decode: bool, paced: bool = False) -> tuple[float, float]:
    t = _Transport(kind, data, paced)
    total = len(data)
    done = threading.Event()
    marks: dict[str, float] = {}
    got = [0]

    def on_data(chunk: bytes, now: float) -> None:
        if not got[0]:
            marks["c0"], marks["w0"] = time.process_time(), time.perf_counter()
        got[0] += len(chunk)
        if got[0] >= total:
            marks["c1"], marks["w1"] = time.process_time(), time.perf_counter()
            done.set()

    try:
        if decode:
            drv = NativeDriver("bench", t.url)
            inner = drv._on_data

            def tap(chunk: bytes, now: float) -> None:
                inner(chunk, now)
                on_data(chunk, now)

            drv.link._on_data = tap
            drv.start()
            link = drv.link
        else:
            link = SerialLink(t.url, on_data=on_data)
            link.start()
        assert link.wait_state(LinkState.CONNECTED, 5)
        t.go.set()
        assert done.wait(60), (got[0], total)
        if decode:
            assert drv.health().samples_in == total // FRAME
            drv.stop()
        else:
            link.stop()
        return marks["w1"] - marks["w0"], marks["c1"] - marks["c0"]
    finally:
        t.close()


def main() -> None:
    _pin(1)
    data = _payload(N_FRAMES)
    cases = {
        "naive read(35) per frame": lambda kind: _naive(kind, data, False),
        "naive read(35) + decode per frame": lambda kind: _naive(kind, data, True),
        "SerialLink bulk read": lambda kind: _bulk(kind, data, decode=False),
        "NativeDriver (bulk read + decode)": lambda kind: _bulk(kind, data, decode=True),
    }
    print(f"machine: {machine()}; reader pinned to the last CPU, writer process to the first")
    print(f"{N_FRAMES:,} SAMPLE frames ({len(data) / 1e6:.1f} MB) per case, medians of {ROUNDS}")
    print()
    print("| transport | case | frames/s | CPU s per 10^5 frames | x 921600-baud link |")
    print("|---|---|---:|---:|---:|")
    for kind in ("pty", "tcp"):
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for name, fn in cases.items():
                wall, cpu = fn(kind)
                walls[name].append(wall)
                cpus[name].append(cpu)
        label = "pty" if kind == "pty" else "socket://"
        for name in cases:
            fps = N_FRAMES / statistics.median(walls[name])
            cpu = statistics.median(cpus[name]) / N_FRAMES * 1e5
            print(
                f"| {label} | {name} | {fps:,.0f} | {cpu:.3f} | {fps / LINK_921600_FPS:,.0f} |",
                flush=True,
            )
    paced = _payload(PACED_FRAMES)
    seconds = PACED_FRAMES / LINK_921600_FPS
    print()
    print(f"At a 921600-baud line's rate ({LINK_921600_FPS:,.0f} frames/s, 16 per write, ")
    print(f"{seconds:.1f} s per case): CPU of the reading process, % of one core")
    print()
    print("| transport | case | CPU % of a core | CPU s per 10^5 frames |")
    print("|---|---|---:|---:|")
    paced_cases = {
        "naive read(35) per frame": lambda kind: _naive(kind, paced, False, paced=True),
        "naive read(35) + decode per frame": lambda kind: _naive(kind, paced, True, paced=True),
        "SerialLink bulk read": lambda kind: _bulk(kind, paced, False, paced=True),
        "NativeDriver (bulk read + decode)": lambda kind: _bulk(kind, paced, True, paced=True),
    }
    for kind in ("pty", "tcp"):
        label = "pty" if kind == "pty" else "socket://"
        for name, fn in paced_cases.items():
            wall, cpu = fn(kind)
            print(
                f"| {label} | {name} | {100 * cpu / wall:.1f} | {cpu / PACED_FRAMES * 1e5:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
