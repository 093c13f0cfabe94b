"""Packet sinks (UDP, TCP server, file) and their guard: a failing sink is an
OUTPUT_FAILED advisory, never a stopped loop."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from common.outputguard import OutputGuard, OutputStatus
from firmware_host.alarms import AlarmKind, Transition
from firmware_host.ground.outputs import (
    CcsdsWriter,
    FileSink,
    SinkError,
    TcpServerSink,
    UdpSink,
    open_sinks,
    parse_url,
    sink_for_url,
)
from firmware_host.ground.packets import PacketBuilder
from firmware_host.runtime.app import MonitorApp, ScaledClock
from firmware_host.runtime.runconfig import load_runtime_config
from hil.scenario import load_scenario
from tests.ground.test_packets import LAYOUT, _event
from tests.support.runtime_helpers import monitor_config, write_toml


def test_parse_url():
    assert parse_url("udp://127.0.0.1:10015") == ("udp", "127.0.0.1", 10015)
    assert parse_url("tcp://0.0.0.0:10016") == ("tcp", "0.0.0.0", 10016)
    assert parse_url("file:out/p.bin") == ("file", "out/p.bin", None)
    assert parse_url("p.bin") == ("file", "p.bin", None)
    for bad in ("http://x:1", "udp://127.0.0.1", "tcp://:5", "udp://h:99999", ""):
        with pytest.raises(SinkError):
            parse_url(bad)
    assert isinstance(sink_for_url("p.bin", Path("/x")), FileSink)
    assert sink_for_url("p.bin", Path("/x")).path == Path("/x/p.bin")


def test_udp_one_packet_per_datagram():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    sink = UdpSink(*rx.getsockname())
    b = PacketBuilder(LAYOUT)
    packets = [b.event(_event()), b.event(_event())]
    writer = CcsdsWriter(b, {"udp": sink})
    for p in packets:
        writer.send(p)
    assert [rx.recv(4096) for _ in packets] == [p.data for p in packets]
    writer.close()
    rx.close()


def test_tcp_server_sends_to_every_client_and_drops_a_gone_one():
    sink = TcpServerSink("127.0.0.1", 0)
    host, port = sink.address
    c1 = socket.create_connection((host, port), timeout=5)
    c2 = socket.create_connection((host, port), timeout=5)
    p = PacketBuilder(LAYOUT).event(_event())
    for _ in range(100):  # the accept is polled on send
        if sink.clients == 2:
            break
    sink.send(p.data)
    assert c1.recv(4096) == p.data and c2.recv(4096) == p.data
    c2.close()
    for _ in range(3):  # a closed peer fails a send or two later: dropped, never raised
        sink.send(p.data)
    assert sink.clients == 1
    sink.close()
    c1.close()


def test_failing_file_sink_is_guarded_and_counted():
    guards: dict[str, OutputGuard] = {}
    sinks = open_sinks(("/dev/full",), None, guards)
    b = PacketBuilder(LAYOUT)
    writer = CcsdsWriter(b, sinks, guards=guards)
    writer.send(b.event(_event()))  # never raises
    writer.send(b.event(_event()))  # within the backoff: dropped without a try
    assert guards["ccsds"].status is OutputStatus.FAILING
    assert "No space left" in guards["ccsds"].error
    assert writer.packets_dropped == 2 and writer.packets_sent == 0
    writer.close()


def test_unbindable_tcp_port_is_a_guarded_failure():
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    guards: dict[str, OutputGuard] = {}
    open_sinks((f"tcp://127.0.0.1:{port}",), None, guards)
    assert guards["ccsds"].status is OutputStatus.FAILING
    taken.close()


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_monitor_runs_on_with_a_failing_ccsds_output_and_sends_to_udp(tmp_path):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.1)
    scenario = load_scenario("rapid-depress")
    data = monitor_config(scenario, {"bus0": "socket://127.0.0.1:9"}, tmp_path / "out")
    data["outputs"]["ccsds"] = ["/dev/full", f"udp://127.0.0.1:{rx.getsockname()[1]}"]
    data["outputs"]["ccsds_apid_events"] = 300
    app = MonitorApp(load_runtime_config(write_toml(tmp_path / "m.toml", data)),
                     clock=ScaledClock(10.0))  # fmt: skip
    got = []
    app._extra_on_tick = lambda r: got.extend(r.events)
    try:
        app.run(until_s=app.clock.now_ns() / 1e9 + 20.0)
        assert app.loop.health().ticks >= 15  # the loop went on
    finally:
        app.close()
    failed = [(e.source, e.transition) for e in got if e.kind is AlarmKind.OUTPUT_FAILED]
    assert ("ccsds", Transition.RAISED) in failed
    datagrams = []
    try:
        while True:
            datagrams.append(rx.recv(4096))
    except TimeoutError:
        pass
    rx.close()
    apids = {int.from_bytes(d[:2], "big") & 0x7FF for d in datagrams}
    assert 300 in apids  # the events (sensors stale, the output failed) reached UDP
