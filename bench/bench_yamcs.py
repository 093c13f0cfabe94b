"""Yamcs as cabinwatch's ground system: start-up time and memory.

Three starts of the repository's configuration (``deploy/yamcs/etc`` through
``harness/yamcs.py``, Yamcs 5.12.8 from ``fprime-yamcs-bundle``), each in a
fresh folder (so the XTCE is parsed and its serialized cache written every
time: a cold start), with the database of ``soyuz-ms09-2018`` (4 volumes, 79
telemetry parameters).  Per start:

* to RUNNING: from the Java process's start to ``GET /api/instances/cabinwatch``
  answering ``RUNNING``;
* to the first packet: to Yamcs' realtime processor holding the value of the
  first HK packet sent (sent as soon as the instance runs);
* the Java process's CPU time (user + system, all its threads) by then;
* warm restart: a second start in the same folder (the serialized database
  and the archive there), to RUNNING;
* peak RSS (``VmHWM`` of the Java process) after start, and after the
  ``simulate soyuz-ms09-2018 --start 10500 --duration 11200`` run's packets
  (about 3500, fed in batches of 50) went through.

Medians of the three.  Run: ``.venv/bin/python -m bench yamcs`` (needs Java 17).
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import machine
from common.errors import CabinwatchError
from firmware_host.cli import main as cli
from firmware_host.ground.layout import GroundLayout
from firmware_host.ground.xtce import generate
from harness.derive import config_from_scenario
from harness.yamcs import YamcsServer, find_java, wait_for, yamcs_lib_dir
from hil.scenario import load_scenario

SCENARIO = "soyuz-ms09-2018"
STARTS = 3
MIB = 1 << 20


def _split(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i + 4 : i + 6], "big") + 7
        out.append(data[i : i + n])
        i += n
    return out


def _run_packets(folder: Path) -> list[bytes]:
    path = folder / "packets.bin"
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(["simulate", SCENARIO, "--start", "10500", "--duration", "11200",
                    "--ccsds", str(path)])  # fmt: skip
    assert code == 0
    return _split(path.read_bytes())


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(mdb: Path, packets: list[bytes], folder: Path) -> dict[str, float]:
    """The figures of one cold start in the empty ``folder`` (s, bytes), then the
    time of a warm restart (the same folder: the database cache and archive there)."""
    with YamcsServer(mdb, folder=folder) as server:
        t_running = server.started_s
        cpu_running = cpu_s(server.proc.pid)
        t0 = time.monotonic()
        server.send_udp_paced(packets[:1])
        wait_for(lambda: server.parameter("tick") or server.parameter("usos_pressure_pa"),
                 60, "the first packet's value")  # fmt: skip
        t_first = t_running + (time.monotonic() - t0)
        rss_start = server.peak_rss_bytes()
        t1 = time.monotonic()
        server.send_udp_paced(packets[1:])
        feed_s = time.monotonic() - t1
        rss_run = server.peak_rss_bytes()
    with YamcsServer(mdb, folder=folder) as again:
        warm_s = again.started_s
    return {
        "running_s": t_running,
        "cpu_s": cpu_running,
        "warm_s": warm_s,
        "first_s": t_first,
        "rss_start": rss_start,
        "rss_run": rss_run,
        "feed_pps": (len(packets) - 1) / feed_s,
    }


def main() -> None:
    try:
        java = find_java()
        yamcs_lib_dir()
    except CabinwatchError as exc:  # `make bench` goes on with the other benchmarks
        print(f"skipped: {exc}")
        return
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    with tempfile.TemporaryDirectory(prefix="bench-yamcs-") as tmp:
        folder = Path(tmp)
        layout = GroundLayout.from_config(config_from_scenario(load_scenario(SCENARIO)))
        mdb = folder / "cabinwatch.xtce.xml"
        mdb.write_text(generate(layout), encoding="utf-8")
        packets = _run_packets(folder)
        runs = []
        for i in range(STARTS):
            (folder / f"server{i}").mkdir()
            runs.append(one_start(mdb, packets, folder / f"server{i}"))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"machine: {machine()}; {version.splitlines()[0]}")
    print(f"Yamcs 5.12.8 (fprime-yamcs-bundle), deploy/yamcs/etc, {SCENARIO} database; "
          f"{len(packets)} packets; medians of {STARTS} cold starts")  # fmt: skip
    print()
    print("| figure | median | the 3 starts |")
    print("|---|---:|---|")
    rows = [
        ("start to instance RUNNING, s", "running_s", 1, "{:.2f}"),
        ("start to the first packet's value, s", "first_s", 1, "{:.2f}"),
        ("CPU (user + system) of Java to RUNNING, s", "cpu_s", 1, "{:.1f}"),
        ("warm restart (same folder) to RUNNING, s", "warm_s", 1, "{:.2f}"),
        ("peak RSS after start, MiB", "rss_start", MIB, "{:.0f}"),
        (f"peak RSS after {len(packets)} packets, MiB", "rss_run", MIB, "{:.0f}"),
        ("paced feed (batches of 50, each counted in), packets/s", "feed_pps", 1, "{:.0f}"),
    ]
    for label, key, unit, fmt in rows:
        each = ", ".join(fmt.format(r[key] / unit) for r in runs)
        print(f"| {label} | {fmt.format(med[key] / unit)} | {each} |", flush=True)


if __name__ == "__main__":
    main()
