"""The scenarios of the live end-to-end runs (``monitor_against_emulator``): a cabin.

``cabin_scenario``: one 70 m3 cabin at 22 deg C for an hour (steps of at most
1 s) and what a run puts in it.  ``cabin_leak_scenario``: that cabin with a
25 mm orifice hole (Cd 0.61) from ``onset`` and two transducers ``cabin-a``
(address 1) and ``cabin-b`` (address 2) at 5 Hz (lag 0.2 s, no boot time) on
the link ``bus0``.  What a run changes (the link's protocol, a transducer's
serial, a second volume, a fault) comes in as TOML lines; the result is the
scenario file's text (``hil.scenario``).
"""

from __future__ import annotations


def cabin_scenario(name: str, body: str, *, seed: int = 7) -> str:
    """The scenario ``name`` (random ``seed``): the cabin, then ``body`` (TOML tables)."""
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
{body}"""


def cabin_leak_scenario(
    name: str,
    *,
    seed: int = 7,
    onset: str = "12s",
    link: str = "",
    sensors: tuple[str, str] = ("", ""),
    extra: str = "",
) -> str:
    """The cabin with the hole from ``onset``; ``link``: more keys of ``[[links]] bus0``;
    ``sensors``: more keys of cabin-a and of cabin-b; ``extra``: more tables
    ([[volumes]], [[sensors]], [[faults]] ...), after the rest."""
    a, b = sensors
    body = f"""
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
    return cabin_scenario(name, body, seed=seed)
