"""The scenario of the live end-to-end runs (``monitor_against_emulator``): a hole in a cabin.

One 70 m3 cabin at 22 deg C that a 25 mm orifice hole (Cd 0.61) starts to empty
at ``onset``, two transducers ``cabin-a`` (address 1) and ``cabin-b`` (address 2)
at 5 Hz (lag 0.2 s, no boot time) on the link ``bus0``.  What a run changes
(the link's protocol, a transducer's serial, a second volume, a fault) comes in
as TOML lines; the result is the scenario file's text (``hil.scenario``).
"""

from __future__ import annotations


def cabin_leak_scenario(
    name: str,
    *,
    seed: int = 7,
    onset: str = "12s",
    link: str = "",
    sensors: tuple[str, str] = ("", ""),
    extra: str = "",
) -> str:
    """The scenario ``name`` (random ``seed``) with the hole from ``onset``; ``link``:
    more keys of ``[[links]] bus0``; ``sensors``: more keys of cabin-a and of cabin-b;
    ``extra``: more tables ([[volumes]], [[sensors]], [[faults]] ...), after the rest."""
    a, b = sensors
    return f"""
[scenario]
name = "{name}"
seed = {seed}
duration = "1h"
max_step = "1s"

[[volumes]]
name = "cabin"
volume_m3 = 70
temperature_c = 22.0

[[leaks]]
name = "hole"
volume = "cabin"
kind = "orifice"
onset = "{onset}"
diameter_mm = 25.0
cd = 0.61

[[links]]
name = "bus0"
{link}

[sensor_defaults]
rate_hz = 5.0
lag_s = 0.2
boot_s = 0.0

[[sensors]]
name = "cabin-a"
addr = 1
volume = "cabin"
{a}

[[sensors]]
name = "cabin-b"
addr = 2
volume = "cabin"
{b}
{extra}"""
