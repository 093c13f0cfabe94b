"""KELLER bus: transactions per second and CPU per transaction of ``KellerDriver``.

The driver polls emulated KELLER transmitters (``hil.keller_device`` behind a
127.0.0.1 TCP server thread in this process, ``tests.support.keller_server``)
as fast as it can: one device asked for far more samples than any line
carries, so the schedule is always behind and the bus is never idle.  TCP has
no baud rate and the emulated device no reply delay, so this is the host's
ceiling, to compare with what a line allows (``read_transaction_s``: 9600 and
115200 baud, 2 ms reply delay, 0.5 ms silence).  Reported: F73 transactions
per second, samples per second, CPU microseconds per transaction (this
process: driver, reader and server threads together, ``time.process_time``),
and the struct fast path against construct for one F73 reply.
Run: ``.venv/bin/python -m bench keller``.
"""

from __future__ import annotations

import timeit

from bench.common import poll_flat_out
from drivers.keller import fast, wire
from drivers.keller.driver import KellerDriver, read_transaction_s
from drivers.polled import PollTarget
from hil.keller_device import Conversion, KellerDevice
from tests.support.keller_server import KellerServer

RUN_S = 3.0


def _poll_flat_out() -> tuple[float, float, float]:
    dev = KellerDevice(1, 1, 50_000.0, 110_000.0)
    dev.latest = Conversion(101_325.0, 21.0, 0)
    with KellerServer([dev]) as srv:
        drv = KellerDriver(
            "bench", srv.url, targets=[PollTarget(1, 1e6)], baudrate=115200, silent_s=0.0
        )
        r = poll_flat_out(drv, RUN_S)
    return r.tx_per_s, r.samples_per_s, r.cpu_us


def main() -> None:
    tx_s, samples_s, cpu_us = _poll_flat_out()
    print(
        f"KellerDriver over 127.0.0.1 TCP: {tx_s:.0f} F73 transactions/s, "
        f"{samples_s:.0f} samples/s, {cpu_us:.0f} us CPU per transaction"
    )
    for baud in (9600, 115200):
        t = read_transaction_s(baud)
        print(
            f"line limit at {baud} baud: {1 / t:.0f} F73 transactions/s "
            f"({t * 1e3:.2f} ms each), {0.5 / t:.0f} samples/s (P1 + TOB1)"
        )
    rep = bytes.fromhex("01493F6DB15300E761")
    n = 20000
    t_fast = (
        min(
            timeit.repeat(
                lambda: fast.f73_value(fast.match_reply(rep, 1, 73).data), number=n, repeat=5
            )
        )
        / n
    )
    t_con = (
        min(timeit.repeat(lambda: wire.parse(wire.F73_REPLY, rep), number=2000, repeat=3)) / 2000
    )
    print(
        f"F73 reply decode: struct fast path {t_fast * 1e6:.2f} us, construct {t_con * 1e6:.1f} us"
    )


if __name__ == "__main__":
    main()
