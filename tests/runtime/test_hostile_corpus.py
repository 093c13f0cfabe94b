"""R11: a hostile-input corpus over every subcommand (issue 18).

Property tests (hypothesis): each subcommand gets hostile option values (NaN,
infinities, 1e300, -0, huge integers, unicode, control characters) and hostile
files (a known-good configuration or scenario with random keys replaced by
values of any type, or bytes that are not TOML; captures with garbage
timestamps and values), runs in this process, and must exit 0 or 2 with one
line on stderr for an error, no traceback, within ``hostile.TIME_BOUND_S``.
A few examples each here (seconds in ``make test``); ``python -m bench hostile``
runs a thousand.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support import hostile

#: Examples per subcommand in the test suite (the bench runs many more).
EXAMPLES = 6

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return hostile.make_archive(tmp_path_factory.mktemp("archive"))


@pytest.mark.parametrize("name", sorted(hostile.CASES))
def test_hostile_inputs_get_one_line_and_exit_2(name, tmp_path_factory, archive):
    root = tmp_path_factory.mktemp(f"hostile-{name}")
    counter = itertools.count()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile.CASES[name]())
    def prop(inp):
        o = hostile.run_input(inp, root / str(next(counter)), archive)
        hostile.check_outcome(o)
        if name == "decode":
            assert not hostile.decode_output_problems(o)

    prop()


def test_the_checks_catch_what_they_name():
    """The promise's checks fail on the outcomes they are meant to catch."""
    ok = hostile.Outcome(("x",), 2, "", "cabinwatch x: bad\n", 0.1)
    assert hostile.problems(ok) == []
    two = hostile.Outcome(("x",), 2, "", "usage: x\ncabinwatch x: bad\n", 0.1)
    tb = hostile.Outcome(("x",), 1, "", "Traceback (most recent call last):\n", 0.1)
    slow = hostile.Outcome(("x",), 0, "", "", hostile.TIME_BOUND_S + 1)
    assert hostile.problems(two) and hostile.problems(tb) and hostile.problems(slow)
    nan = hostile.Outcome(("decode",), 0, '{"p": NaN}\n', "", 0.1)
    assert hostile.decode_output_problems(nan)


@pytest.mark.timeout(30)
def test_a_hang_is_interrupted_and_reported(monkeypatch):
    import time

    import firmware_host.cli

    monkeypatch.setattr(firmware_host.cli, "main", lambda argv: time.sleep(60))
    o = hostile.run_in_process(["x"], bound_s=0.5)
    assert o.code == -1 and "HANG" in o.stderr and o.seconds < 5


@pytest.mark.timeout(120)
def test_config_check_ok_means_the_core_starts(tmp_path):
    """Extreme but finite tuning numbers: whenever ``config check`` says OK, the core
    is built and ticks (before, 1e300 keep times passed and then crashed the start)."""
    import numpy as np

    from firmware_host.core import MonitorCore
    from firmware_host.runtime.runconfig import load_runtime_config

    counter = itertools.count()
    seen = {"ok": 0}

    @settings(
        max_examples=4 * EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile.numeric_mutation(hostile.small_config()))
    def prop(data):
        path = hostile.write(tmp_path / f"{next(counter)}.toml", hostile._toml(data))
        o = hostile.run_in_process(["config", "check", str(path)])
        hostile.check_outcome(o)
        if o.code == 0:
            seen["ok"] += 1
            core = MonitorCore(load_runtime_config(path).monitor)
            for k in range(3):
                core.tick(float(k))
            assert np.isfinite(core.last_tick_s)

    prop()
    assert seen["ok"] > 0  # the property was exercised on configurations that pass
