"""``cabinwatch decode`` and the top-level command line, run as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.frames import SampleFrame
from tests.drivers.test_protocol import GOLDEN

CLI = [sys.executable, "-m", "firmware_host.cli"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def run(*args, stdin=None):
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, timeout=50)


def test_decode_file_prints_frames_and_stats(tmp_path: Path):
    capture = tmp_path / "cap.bin"
    golden = b"".join(bytes.fromhex(h) for h, _ in GOLDEN.values())
    capture.write_bytes(b"noise" + golden + b"\xeb\x90\x01")
    res = run("decode", str(capture), "--stats")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.decode().splitlines()]
    assert [x["type"] for x in lines] == ["SAMPLE", "SAMPLE", "COMMAND", "ACK", "COMMAND"]
    assert lines[0] == {
        "type": "SAMPLE",
        "addr": 1,
        "seq": 1,
        "flags": 0,
        "t_us": 1_500_000,
        "pressure_pa": 101325.0,
        "temperature_c": 21.5,
        "status": 0,
    }
    assert lines[4]["args"] == {"rate_mhz": 10_000} and lines[4]["opcode"] == "SET_RATE"
    assert lines[3]["result"] == "OK"
    stats = json.loads(res.stderr.decode().strip().splitlines()[-1])
    assert stats["frames"]["SAMPLE"] == 2 and stats["abandoned_partials"] == 1
    assert stats["bytes_discarded"] == 5 + 3


def test_decode_stdin_quiet():
    raw = SampleFrame(1, 1, 0, 5, 1.0, 2.0, 0).encode() * 3
    res = run("decode", "-", "--quiet", "--stats", stdin=raw)
    assert res.returncode == 0
    assert res.stdout == b""
    stats = json.loads(res.stderr)
    assert stats["frames"]["SAMPLE"] == 3 and stats["seq_gaps"] == {"1": 2}


@pytest.mark.parametrize(
    "target, problem", [("missing.bin", "no such file"), (".", "is a directory")]
)
def test_decode_bad_path_is_one_line_exit_2(tmp_path: Path, target, problem):
    res = run("decode", str(tmp_path / target))
    assert res.returncode == 2
    err = res.stderr.decode()
    assert err.count("\n") == 1 and problem in err and "Traceback" not in err


def test_version_and_help():
    res = run("--version")
    assert res.returncode == 0 and res.stdout.startswith(b"cabinwatch ")
    res = run("decode", "--help")
    assert res.returncode == 0 and b"--stats" in res.stdout
