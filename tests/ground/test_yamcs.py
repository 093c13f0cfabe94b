"""End to end against a real Yamcs 5.12 server (issue 17 item 3): the generated
XTCE as its mission database, the packets of a ``simulate --ccsds`` run over UDP
through ``PusPacketPreprocessor`` (CRC-16-CCIIT, CUC with implicit P-field 0x2E,
GPS epoch), and Yamcs' decoded values, times and alarms checked against the
packets.  The server runs from the jars of ``fprime-yamcs-bundle`` (no Maven,
no download); skipped where Java is not installed."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from firmware_host.ground.layout import GroundLayout
from firmware_host.ground.outputs import TcpServerSink
from firmware_host.ground.xtce import generate
from harness.derive import config_from_scenario
from hil.scenario import load_scenario
from tests.ground.conftest import SCENARIO
from tests.ground.test_xtce import _definition, split_packets

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

INSTANCE = "cabinwatch"
GPS_EPOCH = datetime(1980, 1, 6, tzinfo=UTC)


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_etc(root, http_port: int, udp_port: int, tcp_port: int, mdb_path) -> None:
    etc = root / "etc"
    etc.mkdir()
    (etc / "yamcs.yaml").write_text(
        f"""services:
  - class: org.yamcs.http.HttpServer
    args: {{address: 127.0.0.1, port: {http_port}}}
dataDir: {root / "data"}
instances: [{INSTANCE}]
secretKey: cabinwatch-test-secret
"""
    )
    (etc / f"yamcs.{INSTANCE}.yaml").write_text(
        f"""services:
  - class: org.yamcs.archive.XtceTmRecorder
  - class: org.yamcs.archive.AlarmRecorder
  - class: org.yamcs.ProcessorCreatorService
    args: {{name: realtime, type: realtime}}
dataLinks:
  - name: udp-in
    class: org.yamcs.tctm.UdpTmDataLink
    stream: tm_realtime
    port: {udp_port}
    packetPreprocessorClassName: org.yamcs.pus.PusPacketPreprocessor
    packetPreprocessorArgs:
      errorDetection: {{type: CRC-16-CCIIT}}
      pktTimeOffset: 13
      timeEncoding: {{type: CUC, implicitPField: 0x2E}}
  - name: tcp-in
    class: org.yamcs.tctm.TcpTmDataLink
    stream: tm_realtime
    host: 127.0.0.1
    port: {tcp_port}
    packetPreprocessorClassName: org.yamcs.pus.PusPacketPreprocessor
    packetPreprocessorArgs:
      errorDetection: {{type: CRC-16-CCIIT}}
      pktTimeOffset: 13
      timeEncoding: {{type: CUC, implicitPField: 0x2E}}
mdb:
  - type: xtce
    spec: {mdb_path}
streamConfig:
  tm:
    - name: tm_realtime
      processor: realtime
  invalidTm: invalid_tm_stream
  event: [events_realtime]
  param: [pp_realtime, sys_param, proc_param]
  parameterAlarm: [alarms_realtime]
  eventAlarm: [event_alarms_realtime]
"""
    )
    (etc / "processor.yaml").write_text(
        """realtime:
  services:
    - class: org.yamcs.StreamTmPacketProvider
    - class: org.yamcs.tctm.StreamParameterProvider
  config:
    subscribeAll: true
    alarm: {parameterCheck: true, parameterServer: enabled, eventServer: enabled}
"""
    )


class Yamcs:
    def __init__(self, http_port: int, udp_port: int):
        self.base = f"http://127.0.0.1:{http_port}/api"
        self.udp = ("127.0.0.1", udp_port)

    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=10) as r:
            return json.load(r)

    def post(self, path: str, body: dict):
        req = urllib.request.Request(
            self.base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


@pytest.fixture(scope="module")
def yamcs(tmp_path_factory):
    bundle = pytest.importorskip("fprime_yamcs_bundle")
    if shutil.which("java") is None:
        pytest.skip("no java: Yamcs cannot run here")
    root = tmp_path_factory.mktemp("yamcs")
    layout = GroundLayout.from_config(config_from_scenario(load_scenario(SCENARIO)))
    mdb = root / "cabinwatch.xtce.xml"
    mdb.write_text(generate(layout), encoding="utf-8")
    http_port, udp_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    tcp_sink = TcpServerSink("127.0.0.1", 0)  # the monitor's tcp:// sink; Yamcs connects
    _write_etc(root, http_port, udp_port, tcp_sink.address[1], mdb)
    log = open(root / "yamcs.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        ["java", "-cp", f"{bundle.LIB_DIR}/*", "org.yamcs.YamcsServer",
         "--etc-dir", str(root / "etc"), "--data-dir", str(root / "data")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        cwd=root,  # Yamcs writes its serialized MDB under ./cache
    )  # fmt: skip
    server = Yamcs(http_port, udp_port)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if server.get(f"/instances/{INSTANCE}")["state"] == "RUNNING":
                    break
            except OSError:
                pass
            assert proc.poll() is None, (root / "yamcs.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "Yamcs did not start in 90 s"
            time.sleep(0.5)
        server.tcp_sink = tcp_sink
        yield server, layout, root
    finally:
        tcp_sink.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def received(yamcs, simulate_run):
    """Every packet of the simulate run sent to Yamcs over UDP, 50 at a time, each
    batch after Yamcs counted the last one in (a burst of 3500 datagrams overflows
    its receive buffer: UDP has no flow control of its own)."""
    server, layout, root = yamcs
    packets = split_packets(simulate_run[0])

    def count() -> int:
        return int(server.get(f"/links/{INSTANCE}/udp-in").get("dataInCount", 0))

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for lo in range(0, len(packets), 50):
            batch = packets[lo : lo + 50]
            for p in batch:
                tx.sendto(p, server.udp)
            deadline = time.monotonic() + 10
            while count() < lo + len(batch):
                assert time.monotonic() < deadline, f"Yamcs counted {count()} of {lo + 50}"
                time.sleep(0.01)
    time.sleep(0.5)  # the processor has the last packet's parameters
    return server, layout, root, packets


def test_yamcs_takes_every_packet(received):
    server, _, _, packets = received
    link = server.get(f"/links/{INSTANCE}/udp-in")
    assert int(link["dataInCount"]) == len(packets) and link["status"] == "OK"


def test_yamcs_values_and_times_equal_the_packets(received):
    """The last value Yamcs holds of every parameter is the last packet's, bit for bit
    (space-packet-parser's decode of the same packet), at the CUC time on the GPS epoch."""
    server, layout, root, packets = received
    definition = _definition(root, layout)
    last = {}
    for raw in packets:
        d = definition.parse_bytes(raw)
        for k, v in d.items():  # HK and events: Yamcs keeps each parameter's last value
            if not k.startswith(("ccsds_", "pus_", "cuc_", "packet_crc")):
                last[k] = (v, d["cuc_coarse"] + d["cuc_fine"] / 65536)
    names = sorted(last)
    assert "event_id" in names and "soyuz_bo_mass_rate_kg_day" in names and "tick" in names
    got = server.post(
        f"/processors/{INSTANCE}/realtime/parameters:batchGet",
        {"id": [{"name": f"/cabinwatch/{n}"} for n in names]},
    )["value"]
    by_name = {v["id"]["name"].rsplit("/", 1)[-1]: v for v in got}
    assert set(by_name) == set(names)
    for n in names:
        want, t = last[n]
        eng = by_name[n]["engValue"]
        if eng["type"] == "DOUBLE":
            # JSON carries NaN and infinities as "NaN", "Infinity", "-Infinity"
            value = float(eng.get("doubleValue", 0.0))
            if math.isnan(want):
                assert math.isnan(value), (n, eng)
            else:
                assert struct.pack(">d", value) == struct.pack(">d", want), (n, eng, want)
        elif eng["type"] == "ENUMERATED":
            assert eng["stringValue"] == want, (n, eng, want)
        else:
            assert int(next(v for k, v in eng.items() if k.endswith("Value"))) == want, n
        gen = datetime.fromisoformat(by_name[n]["generationTime"].replace("Z", "+00:00"))
        assert abs((gen - (GPS_EPOCH + timedelta(seconds=t))).total_seconds()) < 0.01, n


def test_yamcs_raises_the_caution_as_an_xtce_warning(received):
    server, _, _, _ = received
    alarms = server.get(f"/processors/{INSTANCE}/realtime/alarms").get("alarms", [])
    by_param = {a["id"]["name"]: a for a in alarms if a["type"] == "PARAMETER"}
    a = by_param["soyuz_bo_alarm_level"]
    assert a["severity"] == "WARNING"  # CAUTION -> XTCE warning (docs/ground.md)
    assert a["parameterDetail"]["triggerValue"]["engValue"]["stringValue"] == "CAUTION"


def test_yamcs_tcp_client_link_takes_the_tcp_sinks_packets(received):
    """Yamcs' ``TcpTmDataLink`` (a client) connected to a ``tcp://`` sink gets its packets."""
    server, _, _, packets = received
    sink = server.tcp_sink
    deadline = time.monotonic() + 20
    while sink.clients < 1:
        assert time.monotonic() < deadline, "Yamcs did not connect to the TCP sink"
        time.sleep(0.1)
    tail = packets[-50:]
    for p in tail:
        sink.send(p)
    deadline = time.monotonic() + 10
    while int(server.get(f"/links/{INSTANCE}/tcp-in").get("dataInCount", 0)) < len(tail):
        assert time.monotonic() < deadline, server.get(f"/links/{INSTANCE}/tcp-in")
        time.sleep(0.05)
    assert int(server.get(f"/links/{INSTANCE}/tcp-in")["dataInCount"]) == len(tail)
    assert sink.clients == 1
