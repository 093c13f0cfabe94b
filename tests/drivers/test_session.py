"""Transducer sessions: IDENTIFY/SET_RATE/START, ACK timeouts and retries, several addresses."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from drivers.driver import NativeDriver
from drivers.protocol import BROADCAST_ADDR, AckResult, Opcode
from drivers.session import (
    CommandError,
    CommandStatus,
    DeviceConfig,
    SessionManager,
    SessionState,
    TransducerSession,
    execute_command,
)
from tests.support.fake_device import Collector, PtyBus, TcpBus, wait_until

FAST = dict(backoff_min_s=0.05, backoff_max_s=0.2, idle_s=0.05)
TIMEOUT_S = 0.2


@pytest.fixture(params=["pty", "tcp"])
def bus(request, tmp_path):
    b = PtyBus(tmp_path, addrs=(1, 2)) if request.param == "pty" else TcpBus(addrs=(1, 2))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def tcp_bus():
    b = TcpBus(addrs=(1, 2)).start()
    yield b
    b.stop()


@pytest.fixture
def driver_for():
    made = []

    def make(url):
        drv = NativeDriver("test", url, **FAST)
        made.append(drv)
        drv.start()
        return drv

    yield make
    for drv in made:
        drv.stop()


def _session(drv, addr=1, **kw):
    kw.setdefault("ack_timeout_s", TIMEOUT_S)
    kw.setdefault("retries", 2)
    return TransducerSession(drv, addr, **kw)


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_connect_identifies_sets_rate_and_starts(bus, driver_for):
    drv = driver_for(bus.url)
    assert drv.wait_connected(5)
    s = _session(drv, 1, rate_mhz=50_000)
    assert s.state is SessionState.IDLE and s.needs_connect
    assert s.connect() is SessionState.READY
    assert not s.needs_connect and s.connects == 1
    assert s.identity is not None
    assert (s.identity.addr, s.identity.serial, s.identity.model) == (1, 1001, "FAKE-PT1")
    dev = bus.devices[1]
    assert dev.rate_mhz == 50_000 and dev.streaming
    assert [c.opcode for c in dev.commands] == [Opcode.IDENTIFY, Opcode.SET_RATE, Opcode.START]
    assert not bus.devices[2].commands  # only address 1 was spoken to
    assert s.last_result.status is CommandStatus.OK and s.last_result.attempts == 1
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 5)
    assert set(np.concatenate(col.samples)["addr"].tolist()) == {1}


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_ack_that_never_comes_gives_bounded_retries_then_timeout(tcp_bus, driver_for):
    drv = driver_for(tcp_bus.url)
    assert drv.wait_connected(5)
    tcp_bus.devices[1].mute_opcodes = {Opcode.START}
    s = _session(drv, 1, retries=2)
    assert s.connect() is SessionState.FAILED
    res = s.last_result
    assert res.opcode is Opcode.START and res.status is CommandStatus.TIMEOUT
    assert res.attempts == 3 and len(set(res.seqs)) == 3 and res.result is None
    assert res.missing == (1,)
    starts = [c for c in tcp_bus.devices[1].commands if c.opcode == Opcode.START]
    assert [c.seq for c in starts] == list(res.seqs)
    with pytest.raises(CommandError) as err:
        s.command(Opcode.START)
    assert err.value.result.status is CommandStatus.TIMEOUT
    assert "START" in str(err.value) and "timeout after 3 attempt(s)" in str(err.value)


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_a_device_refusal_is_returned_not_retried(tcp_bus, driver_for):
    drv = driver_for(tcp_bus.url)
    assert drv.wait_connected(5)
    s = _session(drv, 2)
    assert s.command(Opcode.SET_RATE, rate_mhz=0) is AckResult.BAD_ARGUMENT
    assert s.last_result.status is CommandStatus.REJECTED and s.last_result.attempts == 1
    assert s.command(Opcode.ZERO_OFFSET, offset_pa=-12.5) is AckResult.OK


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_no_device_at_the_address_times_out(tcp_bus, driver_for):
    drv = driver_for(tcp_bus.url)
    assert drv.wait_connected(5)
    s = _session(drv, 9, retries=1)
    assert s.connect() is SessionState.FAILED
    assert s.last_result.opcode is Opcode.IDENTIFY
    assert s.last_result.status is CommandStatus.TIMEOUT and s.last_result.attempts == 2
    assert s.identity is None


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_link_down_is_its_own_result(driver_for):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    drv = driver_for(f"socket://127.0.0.1:{port}")
    s = _session(drv, 1, retries=1, ack_timeout_s=0.05)
    res = s.send(Opcode.IDENTIFY)
    assert res.status is CommandStatus.LINK_DOWN and res.attempts == 2
    assert "connecting" in res.error
    assert not s.ensure_connected()  # no attempt while the link is down
    assert s.state is SessionState.IDLE


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_two_addresses_on_one_link(bus, driver_for):
    drv = driver_for(bus.url)
    assert drv.wait_connected(5)
    mgr = SessionManager(
        drv, [(1, 50_000), DeviceConfig(2, 200_000)], ack_timeout_s=TIMEOUT_S, retries=2
    )
    assert mgr.connect_all() == {1: SessionState.READY, 2: SessionState.READY}
    ids = mgr.identities()
    assert ids[1].serial == 1001 and ids[2].serial == 1002
    assert bus.devices[1].rate_mhz == 50_000 and bus.devices[2].rate_mhz == 200_000
    col = Collector(drv)
    assert col.until(lambda c: c.n_samples >= 40)
    addrs = np.concatenate(col.samples)["addr"]
    assert set(addrs.tolist()) == {1, 2}
    # Host SEQs are numbered per destination address on the link.
    assert [c.seq for c in bus.devices[1].commands] == [0, 1, 2]
    assert [c.seq for c in bus.devices[2].commands] == [0, 1, 2]
    res = mgr.broadcast(Opcode.STOP)
    assert res.status is CommandStatus.OK and res.addr == BROADCAST_ADDR
    assert res.acks == {1: AckResult.OK, 2: AckResult.OK} and res.missing == ()
    assert not bus.devices[1].streaming and not bus.devices[2].streaming


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_broadcast_collects_acks_and_names_the_missing(tcp_bus, driver_for):
    drv = driver_for(tcp_bus.url)
    assert drv.wait_connected(5)
    res = execute_command(drv, BROADCAST_ADDR, Opcode.START, ack_timeout_s=TIMEOUT_S, retries=0)
    assert res.status is CommandStatus.OK and set(res.acks) == {1, 2}
    res = execute_command(
        drv,
        BROADCAST_ADDR,
        Opcode.IDENTIFY,
        ack_timeout_s=TIMEOUT_S,
        retries=1,
        expect={1, 2, 3},
        want_identity=True,
    )
    assert res.status is CommandStatus.TIMEOUT and res.missing == (3,)
    assert res.attempts == 2 and set(res.identities) == {1, 2}


@pytest.mark.slow
@pytest.mark.timeout(25)
def test_sessions_are_set_up_again_after_a_reconnect(tcp_bus, driver_for):
    drv = driver_for(tcp_bus.url)
    assert drv.wait_connected(5)
    mgr = SessionManager(drv, [(1, 100_000), (2, 100_000)], ack_timeout_s=TIMEOUT_S, retries=2)
    with mgr:
        assert wait_until(lambda: all(s.connects == 1 for s in mgr.sessions.values()), 5)
        tcp_bus.set_streaming(False)  # as if the devices had been power-cycled ...
        tcp_bus.devices[2].serial = 4242  # ... and the one at address 2 swapped
        tcp_bus.drop()
        assert wait_until(lambda: all(s.connects == 2 for s in mgr.sessions.values()), 10)
        assert mgr.states() == {1: SessionState.READY, 2: SessionState.READY}
        col = Collector(drv)
        assert col.until(lambda c: c.n_samples >= 20)
    for addr in (1, 2):
        opcodes = [c.opcode for c in tcp_bus.devices[addr].commands]
        assert opcodes.count(Opcode.IDENTIFY) == 2 and opcodes.count(Opcode.START) == 2
    assert mgr.service_errors == 0
    assert mgr.sessions[1].identity_changes == 0 and mgr.sessions[1].identity.serial == 1001
    assert mgr.sessions[2].identity_changes == 1 and mgr.sessions[2].identity.serial == 4242


@pytest.mark.timeout(10)
def test_seq_numbers_wrap_per_address():
    drv = NativeDriver("x", "socket://127.0.0.1:9")
    drv._seq[5] = 65534
    assert [drv.next_seq(5) for _ in range(3)] == [65535, 0, 1]
    assert drv.next_seq(6) == 0
    with pytest.raises(ValueError):
        TransducerSession(drv, 0)
    with pytest.raises(ValueError):
        SessionManager(drv, [(1, None), (1, 5)])


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_sessions_on_one_link_can_command_concurrently(tcp_bus, driver_for):
    drv = driver_for(tcp_bus.url)
    assert drv.wait_connected(5)
    tcp_bus.set_streaming(True)
    sessions = [_session(drv, 1), _session(drv, 2)]
    results: dict[int, list] = {1: [], 2: []}

    def run(s):
        for i in range(20):
            results[s.addr].append(s.send(Opcode.SET_RATE, rate_mhz=10_000 + i))

    threads = [threading.Thread(target=run, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    for addr in (1, 2):
        assert [r.status for r in results[addr]] == [CommandStatus.OK] * 20
        assert all(r.attempts == 1 for r in results[addr])
        assert tcp_bus.devices[addr].rate_mhz == 10_019
