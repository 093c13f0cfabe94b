"""A second transducer family needs only ``_decode`` and ``_encode_command``.

``AsciiDriver`` is a made-up line protocol (``addr,t_us,pressure_pa,temperature_c``
per line, commands as ``!addr,opcode``): it gets reconnects, events, health,
capture and the drain hand-over from the base without writing any of them.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from drivers.decoder import DecodeBatch
from drivers.driver import TransducerDriver
from drivers.frames import SAMPLE_RECORD_DTYPE, CommandFrame
from drivers.link import LinkEventKind, LinkState
from drivers.protocol import Opcode
from tests.support.fake_device import Collector, wait_until

pytestmark = pytest.mark.slow  # real time


class AsciiDriver(TransducerDriver):
    """One reading per text line; no counters beyond the base's."""

    def __init__(self, name: str, url: str, **options):
        super().__init__(name, url, **options)
        self._partial = b""
        self._offset = 0

    def _decode(self, data: bytes, now_s: float) -> DecodeBatch:
        buf = self._partial + data
        *lines, self._partial = buf.split(b"\n")
        recs = np.zeros(len(lines), dtype=SAMPLE_RECORD_DTYPE)
        n = 0
        for line in lines:
            try:
                addr, t_us, p, t = line.decode().split(",")
                recs[n] = (self._offset, int(addr), 0, 0, 0, int(t_us), float(p), float(t))
                n += 1
            except ValueError:
                pass  # not a reading
            self._offset += len(line) + 1
        return DecodeBatch(recs[:n], [])

    def _reset(self, now_s: float) -> None:
        self._partial = b""

    def _encode_command(self, cmd: CommandFrame) -> bytes:
        return f"!{cmd.addr},{cmd.opcode}\n".encode()


@pytest.mark.timeout(20)
def test_a_second_family_gets_the_policy_from_the_base():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    received: list[bytes] = []
    stop = threading.Event()

    def serve():
        for connection in range(2):
            conn, _ = server.accept()
            with conn:
                conn.settimeout(0.05)
                time.sleep(0.2)  # pyserial's open() discards what arrives before it returns
                for i in range(50):
                    conn.sendall(f"7,{i * 1000},{100000 + i}.5,20.0\n".encode())
                conn.sendall(b"garbage line\n7,1")  # a partial line at the drop
                if connection == 1:
                    while not stop.is_set():
                        try:
                            data = conn.recv(100)
                        except TimeoutError:
                            continue
                        if not data:
                            break
                        received.append(data)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    drv = AsciiDriver("ascii", f"socket://127.0.0.1:{server.getsockname()[1]}", backoff_min_s=0.05)
    try:
        drv.start()
        col = Collector(drv)
        assert col.until(lambda c: c.n_samples >= 100 and drv.state is LinkState.CONNECTED, 10)
        drv.send_command(CommandFrame.make(7, 0, Opcode.START))
        assert wait_until(lambda: b"".join(received) == b"!7,3\n", 5)
    finally:
        stop.set()
        drv.stop()
        t.join(5)
        server.close()
    samples = np.concatenate(col.samples)
    assert len(samples) == 100 and set(samples["addr"].tolist()) == {7}
    assert samples["pressure_pa"][:3].tolist() == [100000.5, 100001.5, 100002.5]
    assert col.kinds()[:3] == [
        LinkEventKind.CONNECTED,
        LinkEventKind.DISCONNECTED,
        LinkEventKind.RECONNECTED,
    ]
    h = drv.health()
    assert h.decoder is None and h.samples_in == 100 and h.gaps == 1 and h.commands_sent == 1
