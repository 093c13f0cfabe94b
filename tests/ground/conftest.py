"""The packets of one ``simulate --ccsds`` run, shared by the XTCE and Yamcs tests."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from firmware_host.cli import main
from firmware_host.ground.layout import GroundLayout
from harness.derive import config_from_scenario
from hil.scenario import load_scenario

#: The scenario and window of the run: the leak's CAUTION is raised at 11131 s.
SCENARIO = "soyuz-ms09-2018"


@pytest.fixture(scope="session")
def simulate_run(tmp_path_factory):
    """``simulate soyuz-ms09-2018 --start 10500 --duration 11200 --ccsds FILE --json``."""
    tmp = tmp_path_factory.mktemp("ccsds")
    path = tmp / "packets.bin"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["simulate", SCENARIO, "--start", "10500", "--duration", "11200",
                     "--ccsds", str(path), "--json"])  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    layout = GroundLayout.from_config(config_from_scenario(load_scenario(SCENARIO)))
    return path.read_bytes(), [d for d in lines if d["type"] == "event"], layout, tmp
