"""Modbus values -> the SAMPLE record's status bits.

A Modbus read carries no STAT byte: the value itself says what went wrong
(KELLER in Modbus mode: an inactive channel reads NaN, an over/underflow
+-Inf).  The bits are the native protocol's (``drivers.protocol.Status``), as
for the KELLER bus (``drivers.keller.values``):

| value | SAMPLE status |
|---|---|
| pressure NaN (channel error, inactive) | PRESSURE_OUT_OF_RANGE, SELF_TEST_FAILED |
| pressure +-Inf (over/underflow) | PRESSURE_OUT_OF_RANGE, ADC_SATURATED |
| temperature not finite, or its read failed | TEMPERATURE_OUT_OF_RANGE |
"""

from __future__ import annotations

import math

from drivers.protocol import Status

_P_OOR = int(Status.PRESSURE_OUT_OF_RANGE)
_T_OOR = int(Status.TEMPERATURE_OUT_OF_RANGE)
_SAT = int(Status.ADC_SATURATED)
_FAIL = int(Status.SELF_TEST_FAILED)


def sample_status(pressure_pa: float, temperature_c: float) -> int:
    """SAMPLE status bits of one pressure and one temperature value."""
    status = 0
    if not math.isfinite(pressure_pa):
        status |= _P_OOR | (_SAT if math.isinf(pressure_pa) else _FAIL)
    if not math.isfinite(temperature_c):
        status |= _T_OOR
    return status
