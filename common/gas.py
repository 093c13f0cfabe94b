"""Gas laws of cabin air (PHYSICS.md), one home for the monitor, emulator, scorer and benches.

Air is an ideal gas, ``P V = m R T``; a hole to vacuum passes choked flow,
``mdot = Cd A P sqrt(gamma / (R T)) * CHOKE``.  Units are in the names: ``_pa``
pascal, ``_k`` kelvin, ``_m3`` cubic metres, ``_mm`` millimetres, ``_kg_s`` and
``_kg_day`` kilograms per second and per day, ``_pa_s`` pascal per second.

Each function keeps the order of operations of the code it replaced, so results
are bit for bit what they were; scalar functions use ``math``, those that take
arrays say so.
"""

from __future__ import annotations

import math

import numpy as np

#: Specific gas constant of dry air, J/(kg K).
R_AIR = 287.05
#: Ratio of specific heats of air (dimensionless).
GAMMA = 1.4
#: (2/(gamma+1))^((gamma+1)/(2(gamma-1))), about 0.5787, the choked-flow factor:
#: c* = CHOKE * sqrt(gamma R T) (m/s).
CHOKE = (2.0 / (GAMMA + 1.0)) ** ((GAMMA + 1.0) / (2.0 * (GAMMA - 1.0)))
#: 0 degrees Celsius in kelvin.
KELVIN = 273.15
#: Seconds in a day (s/day): kg/s times this is kg/day.
SECONDS_PER_DAY = 86400.0


def hole_area_m2(diameter_mm: float) -> float:
    """Area (m2) of a round hole of ``diameter_mm`` (mm)."""
    return math.pi / 4 * (diameter_mm * 1e-3) ** 2


def orifice_mdot(cd: float, diameter_mm: float, p_pa: float, t_k: float) -> float:
    """Choked mass flow (kg/s) of a sharp orifice of ``diameter_mm`` (mm) to vacuum
    from gas at ``p_pa`` (Pa) and ``t_k`` (K), discharge coefficient ``cd``."""
    area = hole_area_m2(diameter_mm)
    return cd * area * p_pa * math.sqrt(GAMMA / (R_AIR * t_k)) * CHOKE


def orifice_rate_coef(cd: float, diameter_mm: float, t_k, volume_m3: float):
    """``lam`` (1/s) such that an orifice's choked mass flow is ``lam * m`` for the
    air mass ``m`` (kg) in ``volume_m3`` at ``t_k`` (K; a number or an array)."""
    area = hole_area_m2(diameter_mm)
    return cd * area * CHOKE * np.sqrt(GAMMA * R_AIR * t_k) / volume_m3


def choked_speed_m_s(t_k: float) -> float:
    """c* = sqrt(gamma R T) * CHOKE (m/s): an orifice's flow is ``Cd A c* m / V``."""
    return math.sqrt(GAMMA * R_AIR * t_k) * CHOKE


def equivalent_area_m2(mdot_kg_s, p_pa, t_k, cd):
    """Area (m2) of the sharp-edged hole that passes ``mdot_kg_s`` (kg/s) to vacuum at
    ``p_pa`` (Pa) and ``t_k`` (K): the orifice law inverted.  Numbers or arrays."""
    return mdot_kg_s / (cd * p_pa * np.sqrt(GAMMA / (R_AIR * t_k)) * CHOKE)


def equivalent_diameter_mm(mdot_kg_s: float, p_pa: float, t_k: float, cd: float = 0.61) -> float:
    """Diameter (mm) of the sharp-edged hole that passes ``mdot_kg_s`` (kg/s) to vacuum
    at ``p_pa`` (Pa) and ``t_k`` (K); 0 when any of them is not positive."""
    if not (mdot_kg_s > 0 and p_pa > 0 and t_k > 0):
        return 0.0
    area = mdot_kg_s / (cd * p_pa * math.sqrt(GAMMA / (R_AIR * t_k)) * CHOKE)
    return math.sqrt(4 * area / math.pi) * 1e3


def kg_day_per_pa_s(volume_m3, t_ref_k):
    """kg/day lost per Pa/s of (temperature-compensated) pressure fall in ``volume_m3``
    at ``t_ref_k`` (K).  Numbers or arrays."""
    return volume_m3 / (R_AIR * t_ref_k) * SECONDS_PER_DAY


def mass_rate_kg_day(dpdt_pa_s: float, volume_m3: float, t_k: float) -> float:
    """Mass loss rate (kg/day, positive for a fall) of ``volume_m3`` whose pressure
    changes by ``dpdt_pa_s`` (Pa/s) at ``t_k`` (K)."""
    return -dpdt_pa_s * volume_m3 / (R_AIR * t_k) * SECONDS_PER_DAY


def fall_rate_pa_s(kg_day: float, volume_m3: float, t_k: float) -> float:
    """Pressure fall rate (Pa/s, positive) of ``kg_day`` (kg/day) lost from
    ``volume_m3`` at ``t_k`` (K)."""
    return kg_day / SECONDS_PER_DAY * R_AIR * t_k / volume_m3


def pressure_pa(mass_kg, t_k, volume_m3):
    """Pressure (Pa) of ``mass_kg`` of air at ``t_k`` (K) in ``volume_m3``.  Arrays too."""
    return mass_kg * R_AIR * t_k / volume_m3


def mass_kg(p_pa, volume_m3, t_k):
    """Air mass (kg) in ``volume_m3`` at ``p_pa`` (Pa) and ``t_k`` (K).  Arrays too."""
    return p_pa * volume_m3 / (R_AIR * t_k)
