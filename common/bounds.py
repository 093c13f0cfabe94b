"""Named ranges for every number a user gives, and one checker with one message.

A configuration key, a scenario key and a command option are all checked by
``problem(value, rng)``, which returns what is wrong in the words of
``common.tomltable`` (``must be a number``, ``must be finite``,
``must be in 0.001..1000 (got 1e+300)``) or None.  ``check_option`` turns a
problem into the ``CabinwatchError`` the CLI prints as one line (exit 2);
``Table.num(..., rng=...)`` into a ``ConfigError`` naming file and key.

The ranges are what the code can allocate and run, not what is physically
sensible: a 1e300 s window, a 1e-300 Hz rate or a 1e300 mm hole is refused
here, before it becomes an overflow, a division by zero or an endless loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from common.errors import CabinwatchError

#: Ten years (s): the longest duration, history or period anything may ask for.
TEN_YEARS_S = 10 * 365.25 * 86400.0


@dataclass(frozen=True)
class Range:
    """A closed interval ``lo..hi``; ``lo_open``: ``lo`` itself is excluded (> lo)."""

    lo: float
    hi: float
    lo_open: bool = False
    integer: bool = False

    def text(self) -> str:
        if self.lo_open:
            return f"> {self.lo:g} and <= {self.hi:g}"
        return f"in {self.lo:g}..{self.hi:g}"


#: Durations, histories and periods (s): > 0, at most ten years.
DURATION_S = Range(0.0, TEN_YEARS_S, lo_open=True)
#: Times and lags that may be zero (s).
TIME_S = Range(0.0, TEN_YEARS_S)
#: Signed times (s), e.g. a scenario's start offset.
SIGNED_TIME_S = Range(-TEN_YEARS_S, TEN_YEARS_S)
#: Sample and loop rates (Hz): a sample at least every 1000 s, at most 1 kHz.
RATE_HZ = Range(1e-3, 1000.0)
#: Clock speed-up of a sped-up emulator (``--speed``).
SPEED = Range(1e-3, 1e5)
#: Pressures (Pa): up to 100 bar.
PRESSURE_PA = Range(0.0, 1e7, lo_open=True)
#: Signed pressure offsets and scatters (Pa).
PRESSURE_DELTA_PA = Range(-1e7, 1e7)
#: Volumes (m^3): a litre to a million cubic metres.
VOLUME_M3 = Range(1e-3, 1e6)
#: Hole diameters (mm): up to 10 m.
DIAMETER_MM = Range(0.0, 1e4)
#: Temperatures (deg C) of gas and sensors.
TEMPERATURE_C = Range(-273.0, 1000.0)
#: Temperature offsets and amplitudes (K).
TEMPERATURE_DELTA_K = Range(-1000.0, 1000.0)
#: A dimensionless factor, ratio, sigma or coefficient.
FACTOR = Range(0.0, 1e6)
#: A signed dimensionless number (phases in degrees, ppm).
SIGNED_FACTOR = Range(-1e6, 1e6)
#: A rate per day or per hour (kg/day, Pa/day, bursts/h).
PER_DAY = Range(-1e9, 1e9)
#: Any other finite number: nothing a float64 product of two of them overflows.
MAGNITUDE = Range(-1e12, 1e12)
#: A random seed (non-negative 63-bit integer).
SEED = Range(0, 2**63 - 1, integer=True)


def problem(value: Any, rng: Range = MAGNITUDE) -> str | None:
    """What is wrong with ``value`` as a number in ``rng``, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be an integer" if rng.integer else "must be a number"
    if rng.integer and not isinstance(value, int):
        return "must be an integer"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be finite"
    low = value <= rng.lo if rng.lo_open else value < rng.lo
    if low or value > rng.hi:
        return f"must be {rng.text()} (got {_show(value)})"
    return None


def _show(value: int | float) -> str:
    """``value`` for a message: ``%g`` for floats, at most 24 digits of an integer."""
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def check_option(option: str, value: Any, rng: Range) -> float:
    """``value`` of command option ``option`` (``--speed``) as a float, or the
    ``CabinwatchError`` ``--speed: must be in 0.001..1e+05 (got inf)``."""
    why = problem(value, rng)
    if why is not None:
        raise CabinwatchError(f"{option}: {why}")
    return value if rng.integer else float(value)
