"""The board publisher's reconnect backoff: doubling to its cap, each wait jittered so a
station's boards do not all come back at once after a broker restart (no broker needed)."""

from __future__ import annotations

import random

import pytest

from firmware_host.runtime.station_publisher import (
    FIRST_RETRY_S,
    MAX_RETRY_S,
    RETRY_JITTER,
    LinkState,
    StationPublisher,
)
from tests.station.test_publisher_broker import birth, config


def waits(tmp_path, uniform01, n: int) -> list[float]:
    """The waits (s) before each of ``n`` attempts that all fail."""
    now = [100.0]
    pub = StationPublisher(
        config(tmp_path, "mqtt://127.0.0.1:1883"),
        birth(),
        monotonic=lambda: now[0],
        uniform01=uniform01,
    )
    out = []
    for _ in range(n):
        pub.state = LinkState.CONNECTING  # an attempt, then its failure
        pub._down()
        out.append(pub._next_try_s - now[0])
        now[0] = pub._next_try_s
    return out


@pytest.mark.parametrize("u", [0.0, 0.5, 1.0 - 1e-12])
def test_backoff_doubles_to_its_cap_and_each_wait_is_jittered(tmp_path, u):
    got = waits(tmp_path, lambda: u, 6)
    delays = [min(FIRST_RETRY_S * 2**i, MAX_RETRY_S) for i in range(6)]
    assert delays[-1] == MAX_RETRY_S
    assert got == pytest.approx([d * (RETRY_JITTER + (1 - RETRY_JITTER) * u) for d in delays])


def test_a_stations_boards_spread_their_reconnects(tmp_path):
    """50 boards losing the broker at the same instant: their first attempts are spread
    over [half, all] of the first delay, not one burst."""
    rng = random.Random(16)
    first = [waits(tmp_path / str(i), rng.random, 1)[0] for i in range(50)]
    lo, hi = RETRY_JITTER * FIRST_RETRY_S, FIRST_RETRY_S
    assert all(lo <= w <= hi for w in first)
    assert len({round(w, 6) for w in first}) == 50
    assert max(first) - min(first) > 0.8 * (hi - lo)
