"""SerialLink and TransducerDriver over a pseudo-terminal and a TCP socket.

Every test here uses tests/support/fake_device.py (own fake bus, not hil/), binds only
to 127.0.0.1 and stops every thread and closes every fd it opened.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import numpy as np
import pytest
import serial

from drivers.driver import NativeDriver
from drivers.frames import CommandFrame, SampleFrame
from drivers.link import LinkDownError, LinkEventKind, LinkState, SerialLink
from drivers.protocol import Opcode
from tests.support.fake_device import Collector, PtyBus, TcpBus, wait_until

pytestmark = pytest.mark.slow  # real time

FAST = dict(backoff_min_s=0.05, backoff_max_s=0.2, idle_s=0.05)


@pytest.fixture
def pty_bus(tmp_path):
    bus = PtyBus(tmp_path, addrs=(1, 2), rate_mhz=200_000).start()
    yield bus
    bus.stop()


@pytest.fixture
def tcp_bus():
    bus = TcpBus(addrs=(1, 2), rate_mhz=200_000).start()
    yield bus
    bus.stop()


@pytest.fixture
def make_driver():
    made = []

    def make(url, **options):
        drv = NativeDriver("test", url, **{**FAST, **options})
        made.append(drv)
        drv.start()
        return drv

    yield make
    for drv in made:
        drv.stop()
        assert not drv.health().reader_alive


def _streaming(bus, drv):
    assert drv.wait_connected(5)
    bus.set_streaming(True)


def _per_addr_seq_is_contiguous(samples: np.ndarray) -> bool:
    for addr in np.unique(samples["addr"]):
        seq = samples["seq"][samples["addr"] == addr].astype(np.int64)
        if len(seq) > 1 and not np.all(np.diff(seq) % 65536 == 1):
            return False
    return True


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_samples_flow(transport, pty_bus, tcp_bus, make_driver):
    bus = pty_bus if transport == "pty" else tcp_bus
    drv = make_driver(bus.url)
    _streaming(bus, drv)
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 100)
    samples = np.concatenate(col.samples)
    assert set(samples["addr"].tolist()) == {1, 2}
    assert _per_addr_seq_is_contiguous(samples)
    assert np.all(np.diff(samples["offset"]) > 0)
    assert samples["pressure_pa"].min() >= 101_325.0
    assert col.host_times and col.host_times == sorted(col.host_times)
    assert col.kinds() == [LinkEventKind.CONNECTED]
    h = drv.health()
    assert h.state is LinkState.CONNECTED and h.healthy and h.reader_alive
    assert h.bytes_in > 0 and h.samples_in >= 100 and h.last_rx_s is not None
    assert h.decoder is not None and h.decoder.errors_total == 0
    assert h.connects == 1 and h.reconnects == 0 and h.gaps == 0


@pytest.mark.timeout(20)
def test_tcp_drop_is_one_disconnect_with_a_gap_and_samples_resume(tcp_bus, make_driver):
    drv = make_driver(tcp_bus.url)
    _streaming(tcp_bus, drv)
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 20)
    before = col.n_samples
    tcp_bus.drop()
    assert col.until(lambda c: LinkEventKind.RECONNECTED in c.kinds())
    after_reconnect = col.n_samples
    assert col.until(lambda c: c.n_samples >= after_reconnect + 20)
    assert col.n_samples > before
    kinds = col.kinds()
    assert kinds.count(LinkEventKind.DISCONNECTED) == 1
    assert kinds.count(LinkEventKind.RECONNECTED) == 1
    assert kinds.index(LinkEventKind.DISCONNECTED) < kinds.index(LinkEventKind.RECONNECTED)
    gap = next(e.gap for e in col.events if e.kind is LinkEventKind.RECONNECTED)
    lost = next(e for e in col.events if e.kind is LinkEventKind.DISCONNECTED)
    assert gap is not None and gap.duration_s > 0 and gap.start_s == lost.time_s
    h = drv.health()
    assert h.gaps == 1 and h.gap_total_s == pytest.approx(gap.duration_s)
    assert h.reconnects == 1 and h.disconnects == 1 and h.healthy
    assert tcp_bus.accepts == 2


@pytest.mark.timeout(20)
def test_pty_master_close_is_a_disconnect_not_a_crash(pty_bus, make_driver):
    drv = make_driver(pty_bus.url)
    _streaming(pty_bus, drv)
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 10)
    pty_bus.close_pty()
    assert drv.link.wait_state(LinkState.DISCONNECTED, 5)
    # Several reopen attempts fail (the symlink is gone); the loss is reported once.
    assert wait_until(lambda: drv.health().open_failures >= 3, 5)
    col.poll()
    assert col.kinds().count(LinkEventKind.DISCONNECTED) == 1
    h = drv.health()
    assert h.reader_alive and not h.healthy
    assert h.state is LinkState.DISCONNECTED
    assert h.disconnects == 1 and h.connected_since_s is None
    assert h.last_error and "open" in h.last_error
    lost = next(e for e in col.events if e.kind is LinkEventKind.DISCONNECTED)
    assert "no data" in lost.message or "read failed" in lost.message
    with pytest.raises(LinkDownError):
        drv.link.write(b"\x00")


@pytest.mark.timeout(20)
def test_pty_port_comes_back_through_its_symlink(pty_bus, make_driver):
    drv = make_driver(pty_bus.url)
    _streaming(pty_bus, drv)
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 10)
    pty_bus.close_pty()
    assert drv.link.wait_state(LinkState.DISCONNECTED, 5)
    pty_bus.open_pty()
    assert os.readlink(pty_bus.path).startswith("/dev/pts/")
    assert col.until(lambda c: LinkEventKind.RECONNECTED in c.kinds())
    n = col.n_samples
    assert col.until(lambda c: c.n_samples >= n + 20)
    gap = next(e.gap for e in col.events if e.kind is LinkEventKind.RECONNECTED)
    assert gap.duration_s > 0
    h = drv.health()
    assert h.healthy and h.gaps == 1 and h.reconnects == 1


@pytest.mark.timeout(20)
def test_garbage_is_counted_never_fatal(pty_bus, make_driver):
    drv = make_driver(pty_bus.url)
    _streaming(pty_bus, drv)
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 10)
    rng = np.random.default_rng(5)
    for _ in range(20):
        junk = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
        pty_bus.inject(junk + b"\xeb\x90\x01\x01" + b"\xeb")  # false SYNCs too
    n = col.n_samples
    assert col.until(lambda c: c.n_samples >= n + 50)
    h = drv.health()
    assert h.decoder.bytes_discarded >= 20 * 200
    assert h.healthy and h.callback_errors == 0 and h.disconnects == 0


@pytest.mark.timeout(20)
def test_binary_bytes_pass_a_pty_unmangled(pty_bus, make_driver):
    """Bytes a cooked tty would eat or rewrite (^C, ^Q, ^S, ^U, CR) arrive intact."""
    got = []
    drv = make_driver(pty_bus.url, raw_sink=lambda data, now: got.append(data))
    assert drv.wait_connected(5)
    special = bytes([0x03, 0x11, 0x13, 0x15, 0x0D, 0x0A, 0x7F, 0x1A, 0x04]) * 10
    sent = bytes(range(256)) + special
    pty_bus.inject(sent)
    assert wait_until(lambda: len(b"".join(got)) >= len(sent), 5)
    assert b"".join(got) == sent


@pytest.mark.timeout(20)
def test_partial_frame_is_abandoned_when_the_line_goes_idle(pty_bus, make_driver):
    drv = make_driver(pty_bus.url, partial_timeout_s=0.1)
    assert drv.wait_connected(5)
    frame = SampleFrame(1, 1, 0, 1_500_000, 101325.0, 21.5, 0).encode()
    pty_bus.inject(frame[:20])
    assert wait_until(lambda: drv.health().decoder.abandoned_partials == 1, 5)
    pty_bus.inject(frame)
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples == 1)


@pytest.mark.timeout(20)
def test_callback_exception_is_recorded_and_the_reader_keeps_going(pty_bus):
    calls = []
    events = []

    def on_data(data, now):
        calls.append(data)
        raise RuntimeError("boom")

    link = SerialLink(pty_bus.url, on_data=on_data, on_event=events.append, **FAST)
    link.start()
    try:
        assert link.wait_state(LinkState.CONNECTED, 5)
        pty_bus.inject(b"a")
        assert wait_until(lambda: len(calls) >= 1, 5)
        pty_bus.inject(b"b")
        assert wait_until(lambda: len(calls) >= 2, 5)
        s = link.stats()
        assert s.callback_errors == 2 and "boom" in s.last_error
        assert s.reader_alive and s.state is LinkState.CONNECTED
        assert [e.kind for e in events].count(LinkEventKind.READER_ERROR) == 1
    finally:
        link.stop()
    assert not link.stats().reader_alive
    assert events[-1].kind is LinkEventKind.STOPPED


@pytest.mark.timeout(20)
def test_a_dead_reader_is_reported_and_restarted(tcp_bus, make_driver, monkeypatch):
    drv = make_driver(tcp_bus.url)
    _streaming(tcp_bus, drv)
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 5)

    def broken(port):
        raise RuntimeError("bug in the reader")

    monkeypatch.setattr(drv.link, "_read_until_lost", broken)
    tcp_bus.drop()  # the reader reconnects and then hits the bug
    assert wait_until(lambda: not drv.link.stats().reader_alive, 5)
    s = drv.link.stats()
    assert "reader died" in s.last_error and "bug in the reader" in s.last_error
    assert s.state is LinkState.DISCONNECTED
    monkeypatch.undo()
    col.poll()  # drain() notices the dead reader and restarts it
    assert LinkEventKind.READER_ERROR in col.kinds()
    assert wait_until(lambda: drv.health().healthy, 5)
    h = drv.health()
    assert h.reader_restarts == 1 and h.reader_alive
    # the link reports healthy as its state changes; the event follows on the queue
    assert col.until(lambda c: c.events[-1].kind is LinkEventKind.RECONNECTED)
    assert col.events[-1].gap.duration_s > 0
    n = col.n_samples
    assert col.until(lambda c: c.n_samples >= n + 10)


@pytest.mark.timeout(20)
def test_unreachable_port_retries_with_backoff_and_writes_fail_cleanly(make_driver):
    with socket.socket() as s:  # a free port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    drv = make_driver(f"socket://127.0.0.1:{port}")
    assert wait_until(lambda: drv.health().open_failures >= 3, 5)
    h = drv.health()
    assert h.state is LinkState.CONNECTING and h.reader_alive and h.connects == 0
    assert h.last_error and "open" in h.last_error
    with pytest.raises(LinkDownError):
        drv.link.write(b"x")
    assert drv.recv(0.01) is None
    assert len(drv.drain()) == 0


@pytest.mark.timeout(20)
def test_stop_is_idempotent_and_closes_everything(pty_bus):
    drv = NativeDriver("x", pty_bus.url, **FAST)
    with drv:
        assert drv.wait_connected(5)
    drv.stop()
    h = drv.health()
    assert h.state is LinkState.STOPPED and not h.reader_alive
    assert drv.link._wake_r == -1 and drv.link._port is None


@pytest.mark.timeout(20)
def test_a_monitor_can_run_several_links(pty_bus, tcp_bus, make_driver):
    a = make_driver(pty_bus.url)
    b = make_driver(tcp_bus.url)
    _streaming(pty_bus, a)
    _streaming(tcp_bus, b)
    ca, cb = Collector(a), Collector(b)
    assert wait_until(lambda: ca.poll().n_samples >= 20 and cb.poll().n_samples >= 20, 5)
    assert a.health().healthy and b.health().healthy


@pytest.mark.timeout(20)
def test_times_come_from_the_injected_clock(tcp_bus, make_driver):
    def clock():
        return 1e6 + time.monotonic()

    drv = make_driver(tcp_bus.url, clock=clock)
    _streaming(tcp_bus, drv)
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 5)
    assert col.events[0].time_s > 1e6 and min(col.host_times) > 1e6
    assert drv.health().connected_since_s > 1e6


@pytest.mark.timeout(20)
def test_an_undrained_backlog_is_bounded_and_counted(tcp_bus, make_driver):
    drv = make_driver(tcp_bus.url, max_pending_samples=10, max_pending_frames=2)
    _streaming(tcp_bus, drv)
    assert wait_until(lambda: drv.health().samples_dropped > 0, 5)
    for _ in range(5):
        drv.link.write(CommandFrame.make(1, 0, Opcode.IDENTIFY).encode())
    assert wait_until(lambda: drv.health().frames_dropped > 0, 5)
    batch = drv.drain()
    assert len(batch.frames) <= 2
    h = drv.health()
    assert 0 < len(batch.samples) <= 10  # the newest are kept
    assert np.all(np.diff(batch.samples["offset"]) > 0)
    doc = h.to_json_dict()
    assert json.loads(json.dumps(doc))["state"] == "connected"
    assert doc["healthy"] and doc["decoder"]["frames"]["SAMPLE"] == h.samples_in


@pytest.mark.timeout(20)
def test_bytes_just_before_a_socket_eof_are_not_lost(make_driver):
    """pyserial drops what one read() collected when it meets the EOF; one recv per read."""
    frames = b"".join(
        SampleFrame(3, i, 0, i * 1000, 101325.0 + i, 21.5, 0).encode() for i in range(500)
    )
    server = socket.create_server(("127.0.0.1", 0))
    sent = threading.Event()

    def serve():
        conn, _ = server.accept()
        time.sleep(0.1)  # the link is open and polling
        conn.sendall(frames)
        conn.close()
        sent.set()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        drv = make_driver(f"socket://127.0.0.1:{server.getsockname()[1]}")
        col = Collector(drv)
        assert col.until(lambda c: LinkEventKind.DISCONNECTED in c.kinds())
        assert sent.is_set()
        assert col.n_samples == 500
        assert np.array_equal(np.concatenate(col.samples)["seq"], np.arange(500))
    finally:
        t.join(5)
        server.close()


@pytest.mark.timeout(20)
def test_a_port_without_fileno_is_read_too():
    """loop:// has no fileno(): the reader falls back to timed reads."""
    got = []
    link = SerialLink("loop://", on_data=lambda data, now: got.append(data), **FAST)
    with link:
        assert link.wait_state(LinkState.CONNECTED, 5)
        frame = SampleFrame(1, 1, 0, 1_500_000, 101325.0, 21.5, 0).encode()
        assert link.write(frame) == len(frame)
        assert wait_until(lambda: b"".join(got) == frame, 5)
    assert link.stats().bytes_out == len(frame)


class _FlappingPort:
    """A port that opens and fails on the first read (no fileno)."""

    opened = 0
    timeout = 0

    def __init__(self, *args, **kwargs):
        type(self).opened += 1

    def fileno(self):
        raise AttributeError

    @property
    def in_waiting(self):
        return 0

    def read(self, size):
        raise serial.SerialException("device reports readiness to read but returned no data")

    def close(self):
        pass


@pytest.mark.timeout(20)
def test_a_flapping_port_is_retried_with_backoff_not_in_a_tight_loop(monkeypatch):
    monkeypatch.setattr(serial, "serial_for_url", _FlappingPort)
    events = []
    link = SerialLink("/dev/ttyFLAP", on_event=events.append, backoff_min_s=0.1, backoff_max_s=0.4)
    with link:
        time.sleep(0.6)  # waits 0.1 + 0.2 + 0.4 s between the opens: at most 4 opens
    assert 1 <= _FlappingPort.opened <= 4
    kinds = [e.kind for e in events]
    assert kinds.count(LinkEventKind.DISCONNECTED) == _FlappingPort.opened
    assert link.stats().reader_alive is False and link.stats().state is LinkState.STOPPED


@pytest.mark.timeout(20)
def test_a_device_port_is_opened_exclusively(pty_bus, make_driver):
    """A port another process (here: another open file) holds is not shared: the link
    retries with backoff, says why, and connects once the holder lets go."""
    holder = serial.Serial(pty_bus.url, exclusive=True)
    try:
        drv = make_driver(pty_bus.url)
        assert wait_until(lambda: drv.health().open_failures >= 2, 5)
        h = drv.health()
        assert h.connects == 0 and "exclusively lock" in (h.last_error or ""), h.last_error
    finally:
        holder.close()
    assert drv.wait_connected(5)
    # and while it holds the port, a second link cannot open it
    other = make_driver(pty_bus.url)
    assert wait_until(lambda: other.health().open_failures >= 1, 5)
    assert other.health().connects == 0


@pytest.mark.timeout(20)
def test_socket_urls_are_not_opened_exclusively(tcp_bus, make_driver):
    from drivers.link import is_device_path

    assert not is_device_path(tcp_bus.url) and is_device_path("/dev/ttyUSB0")
    drv = make_driver(tcp_bus.url)
    assert drv.wait_connected(5)


@pytest.mark.timeout(20)
def test_bounded_drain_and_back_pressure_lose_nothing(tcp_bus, make_driver):
    """``drain(max_samples)`` takes the oldest first and leaves the rest waiting; with
    ``pause_above_samples`` the reader stops reading instead of dropping."""
    drv = make_driver(tcp_bus.url, pause_above_samples=60)
    _streaming(tcp_bus, drv)
    assert wait_until(lambda: drv.health().overflow_pauses >= 1, 5)
    time.sleep(0.3)  # paused: nothing more is taken in
    h = drv.health()
    assert 60 <= h.samples_waiting < 60 + 200, h.samples_waiting
    assert h.samples_dropped == 0
    taken = []
    for _ in range(30):
        batch = drv.drain(max_samples=25)
        assert len(batch.samples) <= 25
        taken.append(batch.samples)
        time.sleep(0.02)
    samples = np.concatenate(taken)
    assert len(samples) >= 25 * 10
    assert _per_addr_seq_is_contiguous(samples)  # nothing lost, nothing reordered
    assert np.all(np.diff(samples["offset"]) > 0)
    h = drv.health()
    assert h.overflow_pauses >= 2 and h.samples_dropped == 0
    assert h.to_json_dict()["samples_waiting"] == h.samples_waiting
