"""The shared pieces: the growable array and the gas laws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common import gas
from common.growable import GrowableArray


def test_growable_appends_extends_and_doubles():
    g = GrowableArray((2,), np.int64, capacity=2)
    assert len(g) == 0 and g.array.shape == (0, 2)
    g.append([1, 2])
    g.append(3)  # broadcast to the row
    assert g.capacity == 2
    g.append([4, 5])
    assert g.capacity == 4  # doubled
    g.extend(np.arange(20).reshape(10, 2))
    assert len(g) == 13 and g.capacity == 13  # a block larger than double: exactly enough
    assert g.array[:3].tolist() == [[1, 2], [3, 3], [4, 5]]
    assert g.array[-1].tolist() == [18, 19] and g.array.dtype == np.int64


def test_growable_scalars():
    g = GrowableArray()
    for i in range(100):
        g.append(i * 0.5)
    assert g.array.shape == (100,) and g.array[-1] == 49.5 and g.capacity == 128


def test_orifice_law_and_its_inverse():
    assert gas.CHOKE == pytest.approx(0.5787, abs=1e-4)
    mdot = gas.orifice_mdot(0.61, 2.0, 101325.0, 295.15)
    assert gas.equivalent_diameter_mm(mdot, 101325.0, 295.15, 0.61) == pytest.approx(2.0)
    assert gas.equivalent_diameter_mm(0.0, 101325.0, 295.15) == 0.0
    area = gas.equivalent_area_m2(np.array([mdot]), 101325.0, 295.15, 0.61)
    assert area[0] == pytest.approx(gas.hole_area_m2(2.0))
    # the orifice's decay rate: mdot = lam * m
    m = gas.mass_kg(101325.0, 6.0, 295.15)
    assert gas.orifice_rate_coef(0.61, 2.0, 295.15, 6.0) * m == pytest.approx(mdot)
    assert gas.choked_speed_m_s(295.15) == pytest.approx(
        mdot / (0.61 * gas.hole_area_m2(2.0) * 101325.0) * gas.R_AIR * 295.15
    )


def test_mass_rate_and_fall_rate_are_inverse():
    s = gas.fall_rate_pa_s(1.0, 916.0, 295.15)  # 1 kg/day from the ISS: about 1.1 mPa/s
    assert s == pytest.approx(0.0011, abs=1e-4)
    assert gas.mass_rate_kg_day(-s, 916.0, 295.15) == pytest.approx(1.0)
    assert gas.kg_day_per_pa_s(916.0, 295.15) * s == pytest.approx(1.0)
    p = gas.pressure_pa(gas.mass_kg(101325.0, 6.0, 295.15), 295.15, 6.0)
    assert math.isclose(p, 101325.0)
