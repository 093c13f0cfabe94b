"""Shared test settings: hypothesis profiles sized for a 2-core CI machine."""

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


@pytest.hookimpl(trylast=True)  # after -m has deselected
def pytest_collection_modifyitems(session, config, items):
    """Modules with the longest ``timeout`` marks first, each module's tests kept
    together and in order: ``make test`` gives each pytest-xdist worker a module
    at a time (``--dist loadscope``), and a minute-long closed loop started last
    would leave the other worker idle at the end."""

    def timeout_s(item) -> float:
        mark = item.get_closest_marker("timeout")
        return float(mark.args[0]) if mark is not None and mark.args else 0.0

    longest: dict[str, float] = {}
    for item in items:
        key = item.nodeid.split("::", 1)[0]
        longest[key] = max(longest.get(key, 0.0), timeout_s(item))
    items.sort(key=lambda item: -longest[item.nodeid.split("::", 1)[0]])
