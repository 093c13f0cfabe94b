"""Durability on SIGKILL (R13): a real monitor on an emulated link, acknowledgements
through ``cabinwatch ctl``, then SIGKILL.  At most the last second of estimates is
lost and every answered acknowledgement is in the archive and the telemetry."""

from __future__ import annotations

import pytest

from tests.support.runtime_helpers import kill_monitor_once

pytestmark = pytest.mark.slow  # real time

#: A tick's own time on a loaded 2-core machine: the estimate of second k is committed
#: a few ms after k, and a kill in between finds the one of k - 1 (age just over 1 s).
TICK_SLACK_S = 0.15


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("loop_hz", "phase_s"), [(10.0, 0.0), (10.0, 0.45), (10.0, 0.95), (1.0, 0.5)]
)
def test_sigkill_keeps_acks_and_all_but_the_last_second(tmp_path, loop_hz, phase_s):
    """Killed ``phase_s`` after the last acknowledgement's reply, the loop at ``loop_hz``
    (10 Hz as in the example configuration; the derived configurations' 1 Hz)."""
    r = kill_monitor_once(
        tmp_path, acks=5, warmup_s=3.0, kill_phase_s=phase_s, loop_rate_hz=loop_hz
    )
    assert r.integrity == "ok"
    assert r.acks_sent == 5
    assert r.acks_archived == 5, r
    assert r.acks_in_telemetry == 5, r
    assert 0.0 <= r.estimate_age_s <= 1.0 + TICK_SLACK_S, r
