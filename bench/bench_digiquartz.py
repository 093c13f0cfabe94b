"""Digiquartz: transactions per second and CPU per transaction of ``DigiquartzDriver``.

The driver polls an emulated Digiquartz (``hil.digiquartz_device`` behind a
127.0.0.1 TCP server thread in this process, ``tests.support.line_server``)
as fast as it can: one device asked for far more samples than any line
carries, so the schedule is always behind and the line never idle.  Each
sample is a P3 and a Q3 transaction.  TCP has no baud rate and the emulated
device no integration delay, so this is the host's ceiling, to compare with
what a line allows (``p3_transaction_s``/``q3_transaction_s``: characters at
9600 and 115200 baud plus PI + TI, resp. TI).  Reported, as the median of
``RUNS`` runs: transactions per second, samples per second, CPU microseconds
per transaction (this process: driver, reader and server threads together,
``time.process_time``); and the cost of scanning and parsing one P3 reply.
Run: ``.venv/bin/python -m bench digiquartz``.
"""

from __future__ import annotations

import statistics
import timeit

from bench.common import poll_flat_out
from drivers.digiquartz import wire
from drivers.digiquartz.driver import DigiquartzDriver, p3_transaction_s, q3_transaction_s
from drivers.polled import PollTarget
from hil.digiquartz_device import DigiquartzDevice, DigiquartzLine
from hil.keller_device import Conversion
from tests.support.line_server import LineServer

RUN_S = 3.0
RUNS = 3


def _poll_flat_out() -> tuple[float, float, float]:
    dev = DigiquartzDevice(1, 1, unit=2)
    dev.latest = Conversion(101_325.0, 21.0, 0)
    with LineServer(DigiquartzLine([dev]), tick_s=0.05) as srv:
        drv = DigiquartzDriver(
            "bench", srv.url, targets=[PollTarget(1, 1e6)], baudrate=115200, silent_s=0.0
        )
        r = poll_flat_out(drv, RUN_S)
    return r.tx_per_s, r.samples_per_s, r.cpu_us


def main() -> None:
    runs = [_poll_flat_out() for _ in range(RUNS)]
    tx_s, samples_s, cpu_us = (statistics.median(r[i] for r in runs) for i in range(3))
    print(
        f"DigiquartzDriver over 127.0.0.1 TCP (median of {RUNS} x {RUN_S:g} s): "
        f"{tx_s:.0f} transactions/s (P3 and Q3), {samples_s:.0f} samples/s, "
        f"{cpu_us:.0f} us CPU per transaction; runs: "
        + ", ".join(f"{r[0]:.0f}/s {r[2]:.0f} us" for r in runs)
    )
    for baud in (9600, 115200):
        for pi, ti in ((100, 100), (20, 10)):
            p3, q3 = p3_transaction_s(baud, pi, ti), q3_transaction_s(baud, ti)
            print(
                f"line limit at {baud} baud, PI {pi} ms, TI {ti} ms: {1 / p3:.1f} P3/s alone "
                f"({p3 * 1e3:.1f} ms each), {1 / (p3 + q3):.2f} samples/s (P3 + Q3)"
            )
    rep = wire.reply(1, "1013.25000")
    n = 20000
    t = min(
        timeit.repeat(lambda: wire.parse_number(wire.scan_line(rep).payload), number=n, repeat=5)
    )
    print(f"P3 reply scan + parse: {t / n * 1e6:.2f} us")


if __name__ == "__main__":
    main()
