"""KELLER values and STAT bits -> the SAMPLE record's units and status bits.

Pressure P1 is read in bar and handed on in pascal (x 1e5), TOB1 in deg C.
Status bits are the native protocol's (``drivers.protocol.Status``), so the
monitor treats a KELLER sample like any other:

| KELLER | SAMPLE status |
|---|---|
| STAT P1 bit, or P1 NaN/+-Inf | PRESSURE_OUT_OF_RANGE |
| P1 +-Inf (overflow/underflow) | also ADC_SATURATED |
| P1 NaN with its STAT bit (channel error) | also SELF_TEST_FAILED |
| STAT TOB1 bit, or TOB1 NaN/+-Inf | TEMPERATURE_OUT_OF_RANGE |
| STAT bit 7 /STD (power-up mode) | WARMING_UP |
"""

from __future__ import annotations

import math

from drivers.keller.wire import Stat
from drivers.protocol import Status

PA_PER_BAR = 1e5

_P_OOR = int(Status.PRESSURE_OUT_OF_RANGE)
_T_OOR = int(Status.TEMPERATURE_OUT_OF_RANGE)
_SAT = int(Status.ADC_SATURATED)
_FAIL = int(Status.SELF_TEST_FAILED)
_WARM = int(Status.WARMING_UP)


def sample_status(p1_bar: float, p1_stat: int, tob1_c: float, tob1_stat: int) -> int:
    """SAMPLE status bits of one P1 read and one TOB1 read (values and STAT bytes)."""
    status = 0
    stat = p1_stat | tob1_stat
    if p1_stat & Stat.P1 or not math.isfinite(p1_bar):
        status |= _P_OOR
        if math.isinf(p1_bar):
            status |= _SAT
        elif math.isnan(p1_bar) and p1_stat & Stat.P1:
            status |= _FAIL
    if tob1_stat & Stat.TOB1 or not math.isfinite(tob1_c):
        status |= _T_OOR
    if stat & Stat.POWER_UP:
        status |= _WARM
    return status
