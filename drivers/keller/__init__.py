"""The KELLER bus (RS-485, binary) of KELLER Series 30/40 transmitters.

| module | one job |
|---|---|
| ``wire`` | construct declarations of every request, reply and exception frame; the CRC |
| ``fast`` | precompiled ``struct`` encode/decode of one transaction (the hot path) |
| ``values`` | a reply's float and STAT byte -> pascal, deg C and the SAMPLE status bits |
| ``driver`` | ``KellerDriver``: the polled driver of a ``driver = "keller"`` link |

Facts and golden vectors: ../shared/TRANSDUCERS.md; design note: docs/drivers.md.
"""
