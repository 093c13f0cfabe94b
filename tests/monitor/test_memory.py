"""MC-6: 64 channels at 10 Hz with a 6-h window stay under 100 MB resident, measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MB = 1e6
MiB = 2**20


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_resident_memory_64_channels_6_hour_window_under_100_mb(request):
    """A fresh process builds the core and fills every tier to its keep time on a
    simulated clock (tests/support/mc6_child.py); /proc/self/status says what it costs."""
    root = str(request.config.rootpath)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.mc6_child"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    grown = m["rss_full"] - m["rss_start"]
    # the fill is real: every tier has wrapped and its pages are resident
    assert all(h >= n for h, n in zip(m["tier_heads"], m["tier_lengths"], strict=True)), m
    assert grown >= m["ring_bytes"], m
    # the requirement: the whole process, at its peak, under 100 MB resident
    assert m["hwm"] < 100 * MB, f"peak {m['hwm'] / MiB:.1f} MiB (grew {grown / MiB:.1f} MiB)"
    # and it stays there: two more hours of ticks on the full buffer add nothing
    assert m["rss_end"] - m["rss_full"] < 1 * MiB, m
