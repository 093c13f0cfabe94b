"""``cabinwatch station`` end to end: a real Mosquitto, fake boards, the real advisor,
the command in a subprocess (``--json``), SIGTERM to stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.station.fakes import FakeBoard

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "station" / "examples" / "soyuz-2018.toml"
ST = "iss"


def test_station_command_json_lines_and_clean_stop(broker):
    pytest.importorskip("station.advisor")
    bs = {n: FakeBoard(broker, ST, n, 3) for n in ("usos", "rs", "soyuz", "crew")}
    now = time.time()
    for b in bs.values():
        b.birth(now)
    for h, node in (("usos-rs", "crew"), ("rs-mrm1", "rs"), ("mrm1-soyuz", "crew"),
                    ("soyuz-bo-sa", "soyuz")):  # fmt: skip
        bs[node].hatch(h, now, "open")
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            t = time.time()
            bs["usos"].estimate("usos", t, mass=0.1, sigma=0.2, qos=0)
            for v in ("rs", "mrm1"):
                bs["rs"].estimate(v, t, group=("rs", "mrm1"), mass=0.1, sigma=0.2, qos=0)
            for v in ("soyuz_bo", "soyuz_sa"):
                bs["soyuz"].estimate(v, t, group=("soyuz_bo", "soyuz_sa"), mass=0.1, qos=0)
            stop.wait(0.5)

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_host.cli",
            "station",
            "--config",
            str(EXAMPLE),
            "--broker",
            broker.url,
            "--json",
            "--no-view",
        ],  # fmt: skip
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(json.loads(line))
            d = lines[-1]
            if d["segments"] and d["segments"][0]["covered"] == sorted(d["volumes"]):
                break
        d = lines[-1]
        assert len(d["segments"]) == 1 and d["segments"][0]["nodes"] == ["rs", "soyuz", "usos"]
        assert d["assessment"] is not None and d["assessment"]["state"] == "nominal"
        assert all(n["state"] == "online" for n in d["nodes"].values())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "assessments published" in err
    finally:
        stop.set()
        th.join(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for b in bs.values():
            b.close()
