"""Import rules: the board's monitor never loads the emulator, the harness, matplotlib,
the station aggregator or paho; the emulator never loads the monitor.  Each check
runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the names in ``sys.modules`` afterwards."""
    code = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def _under(modules: list[str], *packages: str) -> list[str]:
    return [m for m in modules if m.split(".")[0] in packages]


def test_monitor_parser_and_config_load_no_emulator_harness_matplotlib_or_station():
    loaded = _loaded(
        """
        import firmware_host.runtime.app
        from firmware_host.cli import build_parser
        from firmware_host.config import load_config
        from firmware_host.runtime.runconfig import load_runtime_config

        build_parser().parse_args(["monitor", "--config", "x.toml"])
        load_config("firmware_host/examples/monitor.toml")
        load_runtime_config("firmware_host/examples/monitor.toml")
        """
    )
    assert "firmware_host.config" in loaded and "firmware_host.commands.monitor" in loaded
    assert _under(loaded, "hil", "harness", "matplotlib", "station", "paho") == []


def test_station_subcommand_loads_its_module_only_when_parsed():
    """Parsing ``station`` imports ``station.command`` (its options), still not paho,
    the aggregator or the advisor (its run imports them)."""
    loaded = _loaded(
        """
        from firmware_host.cli import build_parser

        build_parser().parse_args(["station", "--config", "x.toml", "--no-view"])
        """
    )
    assert "station.command" in loaded
    assert _under(loaded, "paho", "hil", "harness", "matplotlib") == []
    assert "station.advisor" not in loaded and "station.aggregator" not in loaded


def test_emulator_imports_nothing_of_the_monitor():
    loaded = _loaded(
        """
        import importlib
        import pkgutil

        import hil

        for info in pkgutil.walk_packages(hil.__path__, "hil."):
            importlib.import_module(info.name)
        """
    )
    assert {"hil.physics", "hil.runner", "hil.scenario"} <= set(loaded)
    assert _under(loaded, "firmware_host", "harness") == []


def test_plot_without_matplotlib_is_one_line_exit_2(tmp_path):
    """matplotlib is the optional ``plot`` extra: without it ``plot`` says so, exit 2."""
    code = f"""
import sys
sys.modules["matplotlib"] = None  # as if not installed: importing it raises ImportError
from firmware_host.cli import main
sys.exit(main(["plot", "{tmp_path / "a.sqlite"}", "--out", "{tmp_path / "a.png"}"]))
"""
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "cabinwatch[plot]" in r.stderr, r.stderr
