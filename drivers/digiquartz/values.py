"""Digiquartz pressure units: the ``UN`` codes 1..8 and their size in pascal.

| UN | unit | Pa |
|---|---|---|
| 1 | psi | 6894.757293168361 (0.45359237 kg x 9.80665 / 0.0254^2 m^2) |
| 2 | hPa | 100 |
| 3 | bar | 100000 |
| 4 | kPa | 1000 |
| 5 | MPa | 1000000 |
| 6 | inHg | 3386.388640341 (conventional: 25.4 x mmHg) |
| 7 | mmHg | 133.322387415 (conventional, 0 deg C) |
| 8 | mH2O | 9806.65 (conventional) |

The conventional factors (NIST SP 811) are used for the liquid columns; a
device calibrated to another water temperature differs by < 0.03 %.
"""

from __future__ import annotations

PA_PER_MMHG = 133.322387415

#: UN code -> (name, pascal per unit)
UNITS: dict[int, tuple[str, float]] = {
    1: ("psi", 0.45359237 * 9.80665 / 0.0254**2),
    2: ("hPa", 100.0),
    3: ("bar", 1e5),
    4: ("kPa", 1e3),
    5: ("MPa", 1e6),
    6: ("inHg", 25.4 * PA_PER_MMHG),
    7: ("mmHg", PA_PER_MMHG),
    8: ("mH2O", 9806.65),
}
UNIT_NAMES = tuple(name for name, _ in UNITS.values())
_BY_NAME = {name.lower(): code for code, (name, _) in UNITS.items()}


def unit_code(name: str) -> int | None:
    """The UN code of a unit name (case-insensitive: "hPa", "hpa"), or None."""
    return _BY_NAME.get(name.strip().lower())


def pa_per_unit(code: int) -> float:
    """Pascal per unit of UN ``code`` (KeyError for a code outside 1..8)."""
    return UNITS[code][1]


def unit_name(code: int) -> str:
    return UNITS[code][0]
