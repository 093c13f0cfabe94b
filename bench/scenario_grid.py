"""Grid scenarios for the detection scorecard, built as TOML-shaped dicts.

One leaking volume (6 m3, a Soyuz orbital module; or 900 m3, a station) at
101.3 kPa and 22 C, its 1-3 sensors on one link, a leak that opens at
``ONSET_S`` (the monitor starts ``PRE_S`` before it, so it has a baseline).
Orifice leaks are sized by mass rate through the orifice law of PHYSICS.md
(Cd 0.61 at 101.3 kPa, 295.15 K), crack leaks by ``kg_per_day`` (k = mdot / P^2).
The dict goes through ``hil.scenario.parse_scenario`` like a TOML file.

Level cells (issue 14): the leaking volume may be joined through an open
hatch to a ``station_m3`` volume with two sensors of its own (the leak then
empties both: the monitor must judge the group), and the last of the
volume's sensors may drop out for good ``lost_s`` from the onset (negative:
before it), leaving one sensor; ``watch_s`` keeps the run going that long
after onset so every phase of an orbital swing is seen (a wrong level can
come at any of them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from common.gas import (
    KELVIN,
    R_AIR,
    SECONDS_PER_DAY,
    equivalent_diameter_mm,
    fall_rate_pa_s,
    orifice_mdot,
)
from hil.scenario import Scenario, parse_scenario

P0_PA = 101325.0
T0_C = 22.0
T0_K = T0_C + KELVIN
CD = 0.61
P_MIN_PA = 69300.0
#: Leak onset (s from the scenario's start) and how long the monitor runs before it.
ONSET_S = 1200.0
PRE_S = 900.0
#: The 25 mm hole of the grid (a micrometeoroid strike), given by diameter.
BIG_HOLE_MM = 25.0


def orifice_mass_rate(d_mm: float, p_pa: float = P0_PA, t_k: float = T0_K, cd: float = CD) -> float:
    """kg/s through a sharp-edged hole of ``d_mm`` to vacuum (choked flow)."""
    return orifice_mdot(cd, d_mm, p_pa, t_k)


def orifice_diameter_mm(
    kg_day: float, p_pa: float = P0_PA, t_k: float = T0_K, cd: float = CD
) -> float:
    """The orifice law inverted: the hole (mm) that passes ``kg_day`` at ``p_pa``, ``t_k``."""
    return equivalent_diameter_mm(kg_day / SECONDS_PER_DAY, p_pa, t_k, cd)


def dpdt_pa_s(kg_day: float, volume_m3: float, t_k: float = T0_K) -> float:
    """Pressure fall rate (Pa/s, positive) of a leak of ``kg_day`` from ``volume_m3``."""
    return fall_rate_pa_s(kg_day, volume_m3, t_k)


@dataclass(frozen=True)
class Cell:
    """One grid cell: a leak (or none) in one volume seen by ``n_sensors`` sensors."""

    volume_m3: float
    kind: str  # "orifice" | "crack"
    kg_day: float  # initial mass rate at 101.3 kPa (for the 25 mm hole: what it passes)
    n_sensors: int = 2
    noise_pa: float = 2.0
    rate_hz: float = 1.0
    thermal_k: float = 0.0
    seed: int = 1
    hole_mm: float | None = None  # given diameter (orifice only); else from kg_day
    caution_kg_day: float | None = None  # a lower CAUTION limit than the flight set's
    station_m3: float | None = None  # a second volume joined by an open hatch
    lost_s: float | None = None  # the last sensor drops out from onset + lost_s, for good
    watch_s: float = 0.0  # run at least this long after onset (level cells)

    @property
    def group_m3(self) -> float:
        """The leaking volume's connected group (m3)."""
        return self.volume_m3 + (self.station_m3 or 0.0)

    @property
    def label(self) -> str:
        size = f"{self.hole_mm:g}mm" if self.hole_mm else f"{self.kg_day:g}kg/d"
        lim = f" lim{self.caution_kg_day:g}" if self.caution_kg_day else ""
        if self.station_m3:
            lim += f" +st{self.station_m3:g}"
        if self.lost_s is not None:
            lim += f" lost{self.lost_s:+g}s"
        return (
            f"{self.volume_m3:g}m3 {self.kind} {size} M{self.n_sensors} "
            f"{self.noise_pa:g}Pa {self.rate_hz:g}Hz dT{self.thermal_k:g} s{self.seed}{lim}"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def kg_day_for_fall(pa_min: float, volume_m3: float, t_k: float = T0_K) -> float:
    """The mass rate (kg/day) whose mass-equivalent fall in ``volume_m3`` is ``pa_min``."""
    return pa_min / 60.0 * volume_m3 / (R_AIR * t_k) * SECONDS_PER_DAY


def big_hole_cell(volume_m3: float, **kw) -> Cell:
    """A cell with the 25 mm orifice (its mass rate computed from the law)."""
    return Cell(
        volume_m3,
        "orifice",
        orifice_mass_rate(BIG_HOLE_MM) * SECONDS_PER_DAY,
        hole_mm=BIG_HOLE_MM,
        **kw,
    )


def scenario_dict(cell: Cell, duration_s: float) -> dict:
    """The TOML-shaped dict of ``cell``'s scenario, ``duration_s`` long."""
    vol = {"name": "cabin", "volume_m3": cell.volume_m3, "temperature_c": T0_C}
    if cell.thermal_k > 0:
        vol["orbit_amplitude_k"] = cell.thermal_k
        vol["orbit_phase_deg"] = 37.0 * cell.seed  # a different phase at onset per seed
    leak: dict = {"name": "leak", "volume": "cabin", "kind": cell.kind, "onset": ONSET_S}
    if cell.kind == "orifice":
        leak["diameter_mm"] = cell.hole_mm or orifice_diameter_mm(cell.kg_day)
        leak["cd"] = CD
    else:
        leak["kg_per_day"] = cell.kg_day
    sensors = [
        {
            "name": f"s{i + 1}",
            "link": "bus0",
            "addr": i + 1,
            "volume": "cabin",
            "bias_pa": (-1.5, 2.5, 0.5)[i % 3],
        }
        for i in range(cell.n_sensors)
    ]
    volumes = [vol]
    hatches = []
    if cell.station_m3:
        st = {"name": "station", "volume_m3": cell.station_m3, "temperature_c": T0_C}
        if cell.thermal_k > 0:
            st["orbit_amplitude_k"] = cell.thermal_k
            st["orbit_phase_deg"] = 37.0 * cell.seed + 90.0
        volumes.append(st)
        hatches.append({"name": "cabin-station", "a": "cabin", "b": "station"})
        n = len(sensors)
        sensors += [
            {
                "name": f"st{i + 1}",
                "link": "bus0",
                "addr": n + i + 1,
                "volume": "station",
                "bias_pa": (1.0, -2.0)[i],
            }
            for i in range(2)
        ]
    faults = []
    if cell.lost_s is not None:
        faults.append(
            {"sensor": f"s{cell.n_sensors}", "kind": "dropout", "start": ONSET_S + cell.lost_s}
        )
    out = {
        "scenario": {
            "name": "grid",
            "description": cell.label,
            "seed": cell.seed,
            "duration": float(duration_s),
            "max_step": 5.0,
            "nominal_pressure_pa": P0_PA,
            "min_pressure_pa": P_MIN_PA,
        },
        "volumes": volumes,
        "leaks": [leak],
        "links": [{"name": "bus0"}],
        "sensor_defaults": {
            "rate_hz": cell.rate_hz,
            "noise_pa": cell.noise_pa,
            "resolution_pa": 0.1,
            "lag_s": 0.3,
        },
        "sensors": sensors,
    }
    if hatches:
        out["hatches"] = hatches
    if faults:
        out["faults"] = faults
    return out


def build(cell: Cell, duration_s: float) -> Scenario:
    """``cell``'s scenario through the same parser as a TOML file."""
    return parse_scenario(scenario_dict(cell, duration_s), f"<grid {cell.label}>", "grid")
