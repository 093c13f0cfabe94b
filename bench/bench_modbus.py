"""Modbus RTU: FC3 transactions per second and CPU per transaction of ``ModbusDriver``.

The driver polls an emulated KELLER transmitter in Modbus mode (the ``keller``
preset: one 4-register FC3 read per sample; ``hil.modbus_device`` behind a
127.0.0.1 TCP server thread in this process, ``tests.support.modbus_server``)
as fast as it can: one device asked for far more samples than any line
carries, so the schedule is always behind and the bus is never idle.  TCP has
no baud rate and the emulated device no reply delay, so this is the host's
ceiling, to compare with what a line allows (``read_transaction_s``).  Two
rounds each, interleaved, of the driver with the struct fast path and with
every reply decoded through pymodbus (``decode = "pymodbus"``); medians.
Reported: FC3 transactions per second, CPU microseconds per transaction (this
process: driver, reader and server threads together, ``time.process_time``),
and the decode of one reply: struct fast path, pymodbus, construct.
Run: ``.venv/bin/python -m bench modbus``.
"""

from __future__ import annotations

import statistics
import timeit

from bench.common import poll_flat_out
from drivers.modbus import adapter, fast, wire
from drivers.modbus.driver import ModbusDriver, read_transaction_s
from drivers.modbus.layout import KELLER
from drivers.polled import PollTarget
from hil.modbus_device import Conversion, ModbusDevice
from tests.support.modbus_server import ModbusServer

RUN_S = 3.0
ROUNDS = 2
REPLY = bytes.fromhex("01 03 08 3F 75 E3 D2 41 B6 1C 20 A0 C7")


def _poll_flat_out(decode: str) -> tuple[float, float]:
    dev = ModbusDevice(1, KELLER, 0.0, 200_000.0)
    dev.latest = Conversion(101_325.0, 21.0, 0)
    with ModbusServer([dev]) as srv:
        drv = ModbusDriver(
            "bench",
            srv.url,
            targets=[PollTarget(1, 1e6)],
            baudrate=115200,
            silent_s=0.0,
            decode=decode,
        )
        r = poll_flat_out(drv, RUN_S)
    return r.tx_per_s, r.cpu_us


def _decode_us() -> dict[str, float]:
    p_dec = fast.value_decoder(KELLER.pressure, 0)
    t_dec = fast.value_decoder(KELLER.temperature, 2)

    def by_struct():
        data = fast.match_reply(REPLY, 1, 3, 4).data
        return p_dec(data), t_dec(data)

    def by_pymodbus():
        regs = adapter.parse_reply(REPLY)[2]
        return (
            adapter.channel_value(regs, KELLER.pressure, 0),
            adapter.channel_value(regs, KELLER.temperature, 2),
        )

    def by_construct():
        return wire.parse(wire.READ_REPLY, REPLY)["registers"]

    out = {}
    for name, fn, n in (
        ("struct", by_struct, 20000),
        ("pymodbus", by_pymodbus, 5000),
        ("construct", by_construct, 2000),
    ):
        out[name] = min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6
    return out


def main() -> None:
    runs: dict[str, list[tuple[float, float]]] = {"fast": [], "pymodbus": []}
    for _ in range(ROUNDS):
        for decode in runs:
            runs[decode].append(_poll_flat_out(decode))
    print(f"pymodbus {adapter.VERSION}")
    for decode, rs in runs.items():
        tx_s = statistics.median(r[0] for r in rs)
        cpu_us = statistics.median(r[1] for r in rs)
        print(
            f"ModbusDriver ({decode} decode) over 127.0.0.1 TCP: {tx_s:.0f} FC3 transactions/s "
            f"(= samples/s, keller preset), {cpu_us:.0f} us CPU per transaction"
        )
    for baud in (9600, 19200, 115200):
        t = read_transaction_s(4, baud)
        print(
            f"line limit at {baud} baud: {1 / t:.0f} FC3 4-register reads/s ({t * 1e3:.2f} ms each)"
        )
    us = _decode_us()
    print(
        "FC3 reply decode (match, CRC, P1 + TOB1): "
        f"struct fast path {us['struct']:.2f} us, pymodbus {us['pymodbus']:.1f} us, "
        f"construct (registers only) {us['construct']:.1f} us"
    )


if __name__ == "__main__":
    main()
