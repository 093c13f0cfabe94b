"""Polled buses at line rate: transactions per second against the baud rate's limit.

For each polled family and baud rate, ``cabinwatch emulate`` serves one
emulated device of that family on a pseudo-terminal paced at the baud rate
(``--baud``: a token bucket of 10 bit times per byte; the bus is half duplex,
so the host's requests take line time too), and the family's driver in this
process polls it flat out (one device asked for far more samples than the
line carries).  The limit is what the baud rate, the devices and the
protocol's minimum gaps allow: request and reply on the wire (the bytes the
transactions really took: the driver's link counts them), the devices'
turnaround before they answer (``hil.polled_lines.REPLY_DELAY_S``, which the
paced emulator keeps: a KELLER's 1.55 ms, a Modbus device's 3.5 characters
that end a request; a Digiquartz's integration is not modelled, so 0) and
the silent interval the driver keeps after a reply (KELLER 0.5 ms; Modbus
3.5 characters, 1.75 ms above 19200 baud; Digiquartz 1 ms).  A real
Digiquartz line is limited by its integration times (PI + TI per P3), not
by this.
Goal (issue 15): at least 80 % of that limit.  Also reported: the driver's
CPU per transaction (this process: poll and reader threads).

Run: ``.venv/bin/python -m bench line_rate`` (medians of ``REPEATS`` runs of
``RUN_S`` seconds each).
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import poll_flat_out
from drivers.families import FAMILIES
from drivers.polled import PollTarget, wire_s
from hil.polled_lines import REPLY_DELAY_S
from tests.support.runtime_helpers import EmulatorProcess

RUN_S = 3.0
WARM_S = 1.0
REPEATS = 3
BAUDS = (9600, 115200)

SCENARIO = """
[scenario]
name = "line-rate-{protocol}"
seed = 1
duration = "1h"

[[volumes]]
name = "lab"
volume_m3 = 100

[[links]]
name = "bus0"
protocol = "{protocol}"
baud = {baud}

[sensor_defaults]
rate_hz = 1.0
boot_s = 0.0

[[sensors]]
name = "s1"
addr = 1
volume = "lab"
"""


@dataclass(frozen=True)
class Case:
    """One polled family: the bytes of one read transaction and the gaps the driver keeps."""

    protocol: str
    read: str  # what one transaction is, for the report
    request_bytes: int
    reply_bytes: int
    gap_s: Callable[[int], float]  # minimum silence per transaction at a baud rate

    def limit_per_s(self, baud: int) -> float:
        return 1.0 / (wire_s(self.request_bytes + self.reply_bytes, baud) + self.gap_s(baud))


def _keller_case() -> Case:
    from drivers.keller.driver import SILENT_S
    from drivers.keller.wire import REPLY_SIZE, REQUEST_SIZE, Function

    fn = Function.READ_FLOAT
    return Case("keller", "F73", REQUEST_SIZE[fn], REPLY_SIZE[fn], lambda baud: SILENT_S)


def _modbus_case() -> Case:
    from drivers.modbus.driver import REQUEST_SIZE, reply_size, silent_interval_s

    # the keller preset: P1 + TOB1 in one read of 4 registers at 0x0100
    return Case("modbus", "FC3 x4", REQUEST_SIZE, reply_size(4), silent_interval_s)


def _digiquartz_case() -> Case:
    from drivers.digiquartz.driver import REPLY_CHARS, REQUEST_CHARS, SILENT_S

    # P3 and Q3 alike on the wire; the emulated device does not integrate
    return Case("digiquartz", "P3/Q3", REQUEST_CHARS, REPLY_CHARS, lambda baud: SILENT_S)


#: the polled families this bench knows how to measure
CASES: dict[str, Callable[[], Case]] = {
    "keller": _keller_case,
    "modbus": _modbus_case,
    "digiquartz": _digiquartz_case,
}


def _measure(case: Case, baud: int, url: str) -> tuple[float, float, float]:
    """(transactions per second, CPU microseconds per transaction, bytes on the
    line per transaction both ways) of one run."""
    driver_cls = FAMILIES[case.protocol].load_driver()
    drv = driver_cls("bench", url, targets=[PollTarget(1, 1e6)], baudrate=baud)
    r = poll_flat_out(drv, RUN_S, warm_s=WARM_S)
    return r.tx_per_s, r.cpu_us, r.bytes_per_tx


def run_case(case: Case, baud: int) -> dict:
    """Median transactions/s and CPU per transaction over ``REPEATS`` runs."""
    with tempfile.TemporaryDirectory(prefix="cabinwatch-line-rate-") as tmp:
        path = Path(tmp) / f"{case.protocol}.toml"
        path.write_text(SCENARIO.format(protocol=case.protocol, baud=baud), encoding="utf-8")
        rates, cpus, sizes = [], [], []
        for _ in range(REPEATS):
            emu = EmulatorProcess(str(path), "--pty", "--baud", str(baud), "--speed", "1")
            try:
                url = emu.endpoints(["bus0"])["bus0"]
                tx_s, cpu_us, size = _measure(case, baud, url)
            finally:
                emu.kill()
            rates.append(tx_s)
            cpus.append(cpu_us)
            sizes.append(size)
    # the limit from the bytes the transactions really took (an ASCII reply is
    # shorter than the budget's longest), else from the family's frame sizes
    size = statistics.median(sizes)
    turnaround = REPLY_DELAY_S[case.protocol](baud)
    if size == size:  # not NaN
        limit = 1.0 / (wire_s(size, baud) + turnaround + case.gap_s(baud))
    else:
        limit = 1.0 / (1.0 / case.limit_per_s(baud) + turnaround)
    tx_s = statistics.median(rates)
    return {
        "protocol": case.protocol,
        "baud": baud,
        "tx_per_s": tx_s,
        "bytes_per_tx": size,
        "limit_per_s": limit,
        "fraction": tx_s / limit,
        "cpu_us": statistics.median(cpus),
        "runs": rates,
    }


def main(protocols: list[str] | None = None) -> list[dict]:
    out = []
    for name, make in CASES.items():
        if protocols and name not in protocols:
            continue
        case = make()
        for baud in BAUDS:
            r = run_case(case, baud)
            out.append(r)
            runs = ", ".join(f"{x:.0f}" for x in r["runs"])
            print(
                f"{case.protocol} {case.read} at {baud} baud over a paced pty: "
                f"{r['tx_per_s']:.0f} transactions/s (runs {runs}; "
                f"{r['bytes_per_tx']:.1f} bytes each way together) of "
                f"{r['limit_per_s']:.0f}/s the line allows = {100 * r['fraction']:.0f} % "
                f"(goal >= 80 %), {r['cpu_us']:.0f} us CPU per transaction",
                flush=True,
            )
    return out


if __name__ == "__main__":
    main()
