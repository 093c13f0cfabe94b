"""The emulator behind a pseudo-terminal and TCP, driven by pyserial clients.

Each test starts ``cabinwatch emulate`` itself, binds only to 127.0.0.1, and
stops it (SIGTERM) at the end.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from drivers.encode import WIRE_SAMPLE_DTYPE
from drivers.frames import CommandFrame
from drivers.protocol import MsgId, Opcode
from hil.endpoints import Endpoint, PtyEndpoint

pytestmark = pytest.mark.slow  # real time

SAMPLE = bytes.fromhex("eb900101")


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("cabinwatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "firmware_host.cli"]


class Emulate:
    """``cabinwatch emulate ...`` in a subprocess; stdout lines collected by a thread."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [*cli(), "emulate", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_line(self, pattern: str, timeout: float = 10.0) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.lines:
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None and not self._t.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(
            f"no line matching {pattern!r}: {self.lines} "
            f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        )

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def read_for(ser, seconds: float) -> bytes:
    buf = bytearray()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            buf += ser.read(4096)
        except serial.SerialException:
            break
    return bytes(buf)


def sample_records(buf: bytes) -> np.ndarray:
    """SAMPLE frames found in a clean stream (from the first SYNC on)."""
    i = buf.find(SAMPLE)
    out = []
    while 0 <= i and i + 35 <= len(buf):
        if buf[i : i + 4] == SAMPLE:
            out.append(buf[i : i + 35])
            i += 35
        else:
            i = buf.find(SAMPLE, i + 1)
    return np.frombuffer(b"".join(out), dtype=WIRE_SAMPLE_DTYPE)


@pytest.mark.timeout(40)
def test_pty_client_reads_samples_and_commands_are_answered():
    emu = Emulate("rapid-depress", "--pty", "--speed", "2")
    try:
        m = emu.wait_line(r"link=bus0 pty=(\S+) alias=(\S+)")
        assert os.path.realpath(m.group(2)) == m.group(1)
        ser = serial.Serial(m.group(2), 115200, timeout=0.1)
        data = read_for(ser, 1.0)
        rec = sample_records(data)
        assert len(rec) > 20
        assert set(rec["addr"].tolist()) == {1, 2, 3, 4, 5}
        assert np.all(np.abs(rec["pressure_pa"] - 101325) < 500)
        # raw mode: bytes that a cooked tty would eat (0x03, 0x11, 0x13, 0x15) arrive intact
        ser.write(CommandFrame.make(1, 7, Opcode.IDENTIFY).encode())
        ser.write(CommandFrame.make(255, 0x1311, Opcode.SET_RATE, rate_mhz=0x15030311).encode())
        data = read_for(ser, 1.0)
        assert data.find(bytes.fromhex("eb900102")) >= 0  # IDENTITY
        ack = bytes.fromhex("eb900111")
        found = [data[i : i + 17] for i in range(len(data)) if data.startswith(ack, i)]
        assert any(f[11:15] == b"\x00\x07\x01\x00" for f in found)
        assert sum(f[11:15] == b"\x13\x11\x02\x02" for f in found) == 5  # bad rate, each
        ser.close()
    finally:
        code, err = emu.stop()
    assert code == 0, err
    assert '"scenario": "rapid-depress"' in err


SCEN_DISCONNECT = """
[scenario]
duration = "1h"
[[volumes]]
name = "lab"
volume_m3 = 100
[sensor_defaults]
rate_hz = 10
[[sensors]]
addr = 1
volume = "lab"
[[link_faults]]
link = "bus0"
kind = "disconnect"
start = "1.5s"
duration = "1s"
"""


@pytest.mark.timeout(40)
def test_pty_disconnect_and_reconnect_behind_the_same_alias(tmp_path):
    path = tmp_path / "disc.toml"
    path.write_text(SCEN_DISCONNECT)
    emu = Emulate(str(path), "--pty", "--speed", "2")
    try:
        m = emu.wait_line(r"alias=(\S+)")
        alias = m.group(1)
        ser = serial.Serial(alias, 115200, timeout=0.1)
        got = bytearray()
        with pytest.raises(serial.SerialException):
            end = time.monotonic() + 5
            while time.monotonic() < end:
                got += ser.read(4096)
        ser.close()
        assert len(sample_records(bytes(got))) >= 5
        up = emu.wait_line(r"event=up link=bus0 .* pty=(\S+)", timeout=5)
        emu.wait_line(r"event=down link=bus0 t=1\.500")
        assert os.path.realpath(alias) == up.group(1)
        ser = serial.Serial(alias, 115200, timeout=0.1)
        rec = sample_records(read_for(ser, 0.6))
        assert len(rec) >= 5
        assert rec["t_us"].min() >= 2_500_000  # nothing from the down time
        ser.close()
    finally:
        code, err = emu.stop()
    assert code == 0, err


@pytest.mark.timeout(40)
def test_tcp_client_reconnects():
    emu = Emulate("sensor-faults", "--tcp", "127.0.0.1:0", "--speed", "4")
    try:
        m = emu.wait_line(r"link=bus0 tcp=127\.0\.0\.1:(\d+)")
        url = f"socket://127.0.0.1:{m.group(1)}"
        ser = serial.serial_for_url(url, timeout=0.1)
        rec = sample_records(read_for(ser, 1.0))
        assert len(rec) > 10
        ser.write(CommandFrame.make(3, 41, Opcode.STOP).encode())
        data = read_for(ser, 0.6)
        assert bytes.fromhex("eb900111") in data
        ser.close()
        time.sleep(0.3)
        ser = serial.serial_for_url(url, timeout=0.1)
        rec2 = sample_records(read_for(ser, 1.0))
        assert len(rec2) > 10
        assert rec2["t_us"].max() > rec["t_us"].max()
        assert 3 not in set(rec2["addr"].tolist())  # the STOP held across the reconnect
        ser.close()
    finally:
        code, err = emu.stop()
    assert code == 0, err


@pytest.mark.timeout(40)
def test_pty_without_reader_never_blocks_and_counts_drops():
    emu = Emulate("rapid-depress", "--pty", "--speed", "200", "--duration", "120")
    emu.wait_line(r"pty=")
    code, err = emu.proc.wait(timeout=30), emu.proc.stderr.read()
    assert code == 0, err
    summary = err.strip().splitlines()[-1]
    dropped = int(re.search(r'"dropped": (\d+)', summary).group(1))
    assert dropped > 0


@pytest.mark.timeout(30)
def test_max_speed_pty_goes_as_fast_as_the_reader():
    emu = Emulate("rapid-depress", "--pty", "--speed", "max", "--duration", "300")
    try:
        m = emu.wait_line(r"alias=(\S+)")
        ser = serial.Serial(m.group(1), 115200, timeout=0.1)
        data = bytearray()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                data += ser.read(65536)
            except serial.SerialException:  # the emulator finished and closed the pty
                break
        rec = sample_records(bytes(data))
        ser.close()
        emu.proc.wait(timeout=10)  # it ends on its own at --duration
    finally:
        code, err = emu.stop()
    assert code == 0, err
    # nothing dropped: all 5 sensors x 10 Hz x 300 s arrived, in order, with SEQ unbroken
    assert len(rec) >= 0.99 * 15000
    for addr in range(1, 6):
        seq = rec[rec["addr"] == addr]["seq"].astype(int)
        assert np.all(np.diff(seq) == 1)


@pytest.mark.timeout(20)
def test_baud_pacing_on_a_pty():
    ep = PtyEndpoint("bus0", baud=9600, hold_bytes=1 << 20)
    ep.open()
    try:
        reader = os.open(ep.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        assert ep.connected
        ep.write(bytes(5000))
        ep.flush()
        assert ep.bytes_written == 0  # a new reader gets a moment to finish opening
        time.sleep(2 * ep.SETTLE_S)
        got = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            ep.flush()
            try:
                got += len(os.read(reader, 65536))
            except BlockingIOError:
                pass
            time.sleep(0.005)
        os.close(reader)
    finally:
        ep.cleanup()
    assert 700 <= got <= 1100  # 960 bytes/s at 9600 8N1, not the 5000 a pty would take


@pytest.mark.timeout(60)
def test_out_file_and_truth(tmp_path):
    out = tmp_path / "cap.bin"
    r = subprocess.run(
        [
            *cli(),
            "emulate",
            "rapid-depress",
            "--out",
            str(out),
            "--duration",
            "180",
            "--truth-rate",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"link=bus0 out={out}"
    rec = np.frombuffer(out.read_bytes(), dtype=WIRE_SAMPLE_DTYPE)
    assert 8990 <= len(rec) <= 5 * 10 * 180 and np.all(rec["msg_id"] == MsgId.SAMPLE)
    from hil.truth import read_truth

    header, records = read_truth(str(out) + ".truth.jsonl")
    assert header["scenario"] == "rapid-depress"
    assert [v["name"] for v in header["volumes"]] == ["usos", "node3", "rs"]
    assert len(records) == 361 and records[-1]["t_s"] == 180.0
    assert records[-1]["leak_kg_s"][1] > 0.05 and records[0]["hatch_open"] == [1, 1]
    # same seed: same bytes
    out2 = tmp_path / "cap2.bin"
    subprocess.run(
        [
            *cli(),
            "emulate",
            "rapid-depress",
            "--out",
            str(out2),
            "--duration",
            "180",
            "--truth-rate",
            "0",
        ],
        check=True,
        capture_output=True,
        timeout=50,
    )
    assert out2.read_bytes() == out.read_bytes()


@pytest.mark.timeout(40)
def test_tcp_link_fault_disconnect(tmp_path):
    path = tmp_path / "disc.toml"
    path.write_text(SCEN_DISCONNECT)
    emu = Emulate(str(path), "--tcp", "0", "--speed", "2")
    try:
        m = emu.wait_line(r"tcp=127\.0\.0\.1:(\d+)")
        url = f"socket://127.0.0.1:{m.group(1)}"
        ser = serial.serial_for_url(url, timeout=0.1)
        got = bytearray()
        with pytest.raises(serial.SerialException):
            end = time.monotonic() + 5
            while time.monotonic() < end:
                got += ser.read(4096)
        ser.close()
        assert len(sample_records(bytes(got))) >= 5
        emu.wait_line(r"event=up link=bus0 .* tcp=127\.0\.0\.1:" + m.group(1), timeout=5)
        ser = serial.serial_for_url(url, timeout=0.1)
        rec = sample_records(read_for(ser, 0.6))
        assert len(rec) >= 5 and rec["t_us"].min() >= 2_500_000
        ser.close()
    finally:
        code, err = emu.stop()
    assert code == 0, err


@pytest.mark.timeout(30)
def test_port_endpoint_on_a_pty_device():
    # a pty's slave stands in for /dev/ttyUSB0: the emulator opens it with pyserial
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    device = os.ttyname(slave)
    emu = Emulate("rapid-depress", "--port", device, "--speed", "2")
    try:
        emu.wait_line(r"link=bus0 port=" + re.escape(device))
        buf = bytearray()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                buf += os.read(master, 65536)
        assert len(sample_records(bytes(buf))) > 20
        os.write(master, CommandFrame.make(2, 99, Opcode.IDENTIFY).encode())
        buf = bytearray()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                buf += os.read(master, 65536)
        assert bytes.fromhex("eb9001110200") in buf
    finally:
        code, err = emu.stop()
        os.close(master)
        os.close(slave)
    assert code == 0, err


@pytest.mark.timeout(60)
def test_start_plays_silently_then_serves(tmp_path):
    out = tmp_path / "cap.bin"
    r = subprocess.run(
        [
            *cli(),
            "emulate",
            "rapid-depress",
            "--out",
            str(out),
            "--start",
            "300",
            "--duration",
            "330",
        ],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert r.returncode == 0, r.stderr
    rec = np.frombuffer(out.read_bytes(), dtype=WIRE_SAMPLE_DTYPE)
    t = rec["t_us"] / 1e6
    assert len(rec) >= 5 * 10 * 30 - 5 and t.min() > 299.9 and t.max() <= 330.1
    assert rec["seq"].min() > 2900  # the sensors have been streaming since power-up
    from hil.truth import read_truth

    _, records = read_truth(str(out) + ".truth.jsonl")
    assert records[0]["t_s"] == 300.0 and records[-1]["t_s"] == 330.0
    assert records[0]["leak_kg_s"][1] > 0  # the hole opened at 2 min, before the start


@pytest.mark.timeout(30)
def test_max_speed_tcp_waits_for_the_client_and_loses_nothing():
    emu = Emulate("rapid-depress", "--tcp", "0", "--speed", "max", "--duration", "120")
    try:
        m = emu.wait_line(r"tcp=127\.0\.0\.1:(\d+)")
        time.sleep(0.5)  # nothing is made before a client connects
        ser = serial.serial_for_url(f"socket://127.0.0.1:{m.group(1)}", timeout=0.1)
        data = bytearray()
        end = time.monotonic() + 15
        while time.monotonic() < end:
            try:
                chunk = ser.read(65536)
            except serial.SerialException:  # the emulator finished and closed
                break
            data += chunk
        ser.close()
        emu.proc.wait(timeout=10)
    finally:
        code, err = emu.stop()
    assert code == 0, err
    rec = sample_records(bytes(data))
    assert len(rec) >= 5 * 10 * 120 - 5
    assert rec["t_us"].min() == 100_000  # from the very first sample
    for addr in range(1, 6):
        assert np.all(np.diff(rec[rec["addr"] == addr]["seq"].astype(int)) == 1)


class _LineEndpoint(Endpoint):
    """An endpoint whose host side is a list: ``host`` bytes to read, ``sent`` what went out."""

    def __init__(self, **kw):
        super().__init__("bus0", **kw)
        self.host: list[bytes] = []
        self.sent: list[tuple[float, bytes]] = []

    def _read_some(self) -> bytes:
        return self.host.pop(0) if self.host else b""

    def _write_some(self, data: bytes) -> int:
        self.sent.append((time.monotonic(), bytes(data)))
        return len(data)


@pytest.mark.timeout(10)
def test_a_half_duplex_line_takes_the_request_the_turnaround_and_the_reply():
    """A paced polled (RS-485) link: a reply leaves whole once the request (5 bytes),
    the devices' turnaround and the reply (9 bytes) would have been on the wire;
    nothing is banked from idle time.  Without half duplex the token bucket lets
    the same reply out at once."""
    baud, delay = 9600, 0.004
    byte_s = 10 / baud
    ep = _LineEndpoint(baud=baud, half_duplex=True, reply_delay_s=delay)
    time.sleep(0.1)  # idle line: a token bucket would have saved up bytes here
    ep.host.append(b"\x01\x49\x01\x50\xd6")
    t0 = time.monotonic()
    assert ep.read()
    ep.write(b"\x01\x49\x3f\x6d\xb1\x53\x00\xe7\x61")
    assert ep.sent == [] and not ep.wants_write()
    due = 5 * byte_s + delay + 9 * byte_s
    assert ep.next_release_s() == pytest.approx(due - (time.monotonic() - t0), abs=0.002)
    while ep.next_release_s():
        time.sleep(ep.next_release_s())
    ep.flush()
    assert len(ep.sent) == 1 and len(ep.sent[0][1]) == 9
    assert ep.sent[0][0] - t0 >= due - 1e-4
    streaming = _LineEndpoint(baud=baud)
    time.sleep(0.06)
    streaming.write(b"\x00" * 9)
    assert len(streaming.sent) == 1 and streaming.next_release_s() is None
