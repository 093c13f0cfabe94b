"""The shipped station broker configuration (deploy/mosquitto/) in a real Mosquitto.

The files are used as shipped, with only the host-specific parts moved into a
temporary folder: the listeners' addresses and ports (127.0.0.1, free ports),
the folder of the password file, ACL and certificates, the persistence folder.
A CA and the broker's certificate are made with ``openssl``; the password
file with ``mosquitto_passwd``.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from common import station_wire as wire
from common.mqtt_url import parse_broker_url
from common.outputguard import OutputStatus
from firmware_host.runtime.station_publisher import LinkState, StationPublisher
from firmware_host.runtime.stationconfig import StationConfig
from harness.broker import find_mosquitto, find_passwd, free_port
from tests.station.mqtt_watch import Watch, status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
USERS = {"b1": "pw-b1", "b2": "pw-b2", "aggregator": "pw-agg"}


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """ca.crt/ca.key, broker.crt/broker.key (for 127.0.0.1), other-ca.crt (a stranger)."""
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=cabinwatch test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
            cwd=folder,
        )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "broker.key", "-out", "broker.csr", cwd=folder,
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "broker.crt", cwd=folder,
    )  # fmt: skip


@pytest.fixture
def station_broker(tmp_path):
    """The shipped broker on 127.0.0.1: (plain port, TLS port, folder)."""
    find_mosquitto()
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (Debian package openssl)")
    etc = tmp_path / "etc"
    etc.mkdir()
    make_certificates(etc)
    shutil.copy(DEPLOY / "acl", etc / "acl")
    (etc / "passwd").write_text("")
    for user, pw in USERS.items():
        subprocess.run(
            [find_passwd(), "-b", str(etc / "passwd"), user, pw],
            check=True,
            capture_output=True,
            timeout=10,
        )
    plain, tls = free_port(), free_port()
    text = (DEPLOY / "station.conf").read_text()
    text = text.replace("/etc/mosquitto/cabinwatch/", f"{etc}/")
    text = text.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    text = re.sub(r"(?m)^listener 1883 \S+$", f"listener {plain} 127.0.0.1", text)
    text = re.sub(r"(?m)^listener 8883 \S+$", f"listener {tls} 127.0.0.1", text)
    settings = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert sum("127.0.0.1" in ln for ln in settings) == 2
    assert not any(ln.split()[-1].startswith(("/etc", "/var")) for ln in settings), settings
    text += "\nuser root\n"  # harmless as another user; as root it keeps our folder readable
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    log = open(tmp_path / "broker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        for port in (plain, tls):
            while True:
                assert proc.poll() is None, (tmp_path / "broker.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the shipped broker did not listen"
                    time.sleep(0.05)
        yield plain, tls, etc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def board(tmp_path, url: str, node: str, user: str, ca: Path | None) -> StationPublisher:
    cfg = StationConfig(
        broker=parse_broker_url(url),
        station="iss",
        node=node,
        session_file=tmp_path / f"{node}.session",
        username=user,
        password=USERS[user],
        tls_ca=ca,
    )
    return StationPublisher(cfg, wire.NodeStatus(node, 1, True, 0.0, "t", ("cabin",), ()))


def wait_until(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_boards_over_tls_and_the_acl_as_shipped(tmp_path, station_broker):
    plain, tls, etc = station_broker
    agg = Watch(plain, username="aggregator", password=USERS["aggregator"], client_id="agg")
    b1 = board(tmp_path, f"mqtts://127.0.0.1:{tls}", "b1", "b1", etc / "ca.crt").start()
    impostor = board(tmp_path, f"mqtts://127.0.0.1:{tls}", "b2", "b1", etc / "ca.crt")
    try:
        # b1 over TLS: its birth reaches the aggregator
        r = agg.wait(status("b1", online=True), 10)
        assert r.content_type == "application/json"
        # user b1 writing node b2's topics: refused, MQTT 5 reason code 0x87
        impostor.start()
        wait_until(lambda: impostor.refused >= 1, 20)
        assert "Not authorized" in impostor.guard.error
        assert not agg.matching(status("b2"))
        # the aggregator: the assessment yes, a board's topic no
        pub_ok = agg.client.publish(wire.assessment_topic("iss"), b"{}", qos=1)
        pub_no = agg.client.publish(b1.status_topic, b"{}", qos=1)
        wait_until(lambda: pub_ok.mid in agg.acks and pub_no.mid in agg.acks)
        assert not agg.acks[pub_ok.mid].is_failure
        assert agg.acks[pub_no.mid].value == 0x87  # Not authorized
    finally:
        impostor.close(wait_s=0.2)
        b1.close(wait_s=0.2)
        agg.close()
    assert b1.refused == 0 and b1.guard.status is OutputStatus.OK


def test_no_anonymous_no_plaintext_stranger_ca(tmp_path, station_broker):
    plain, tls, etc = station_broker
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anon", protocol=mqtt.MQTTv5)
    c.on_connect = lambda cl, u, f, rc, p: got.append(rc)
    c.connect("127.0.0.1", plain)
    c.loop_start()
    try:
        wait_until(lambda: got)
    finally:
        c.loop_stop()
        c.disconnect()
    assert got[0].is_failure  # anonymous: Not authorized
    # a board that does not know the station CA never connects (TLS verification)
    stranger = board(tmp_path, f"mqtts://127.0.0.1:{tls}", "b1", "b1", etc / "other-ca.crt")
    stranger.start()
    try:
        wait_until(lambda: stranger.connect_failures >= 2)
        assert stranger.state is not LinkState.UP and stranger.connects == 0
        assert "certificate verify failed" in stranger.guard.error
    finally:
        stranger.close(wait_s=0.2)
    # plain MQTT on the TLS port: no connection either
    plain_on_tls = board(tmp_path, f"mqtt://127.0.0.1:{tls}", "b1", "b1", None).start()
    try:
        wait_until(lambda: plain_on_tls.connect_failures >= 2)
        assert plain_on_tls.connects == 0
        assert "cannot connect" in plain_on_tls.guard.error
    finally:
        plain_on_tls.close(wait_s=0.2)
