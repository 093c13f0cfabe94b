"""Modbus RTU transmitters (FC3/FC4 register reads): KELLER in Modbus mode and generic ones.

| module | one job |
|---|---|
| ``layout`` | the register layout of a device (preset or per-channel keys) and its reads |
| ``wire`` | construct declarations of the read request, reply and exception frames |
| ``fast`` | precompiled ``struct`` requests, reply matcher and value decoders (the hot path) |
| ``adapter`` | the thin pymodbus adapter (frames and values through pymodbus's classes) |
| ``values`` | values -> the SAMPLE status bits |
| ``driver`` | ``ModbusDriver``: the polled driver of a ``driver = "modbus"`` link |

Facts and golden vectors: ../shared/TRANSDUCERS.md; design note: docs/drivers.md.
"""
