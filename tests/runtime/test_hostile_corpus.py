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
