"""A private Mosquitto per test (harness/broker.py) on 127.0.0.1 and a free port.

Skipped where mosquitto is not installed, unless CABINWATCH_REQUIRE_MOSQUITTO
is set (``make test`` sets it after ``make mosquitto``): then missing is a failure.
"""

from __future__ import annotations

import os

import pytest

from common.errors import CabinwatchError
from harness.broker import MosquittoBroker, find_mosquitto


def _require() -> None:
    try:
        find_mosquitto()
    except CabinwatchError as exc:
        if os.environ.get("CABINWATCH_REQUIRE_MOSQUITTO"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture
def broker():
    """An anonymous broker; ``broker.restart()`` keeps its retained messages."""
    _require()
    b = MosquittoBroker().start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker_factory():
    """``broker_factory(users=[BrokerUser(...)])``: brokers with passwords and ACLs."""
    _require()
    made: list[MosquittoBroker] = []

    def make(**kwargs) -> MosquittoBroker:
        b = MosquittoBroker(**kwargs).start()
        made.append(b)
        return b

    try:
        yield make
    finally:
        for b in made:
            b.stop()
