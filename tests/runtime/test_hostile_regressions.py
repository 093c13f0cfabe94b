"""Issue 18, validation slice: one test per bad input that crashed, hung or lied.

Each runs the CLI in this process (``firmware_host.cli.main``) and asserts one
line on stderr and exit 2 (or the fixed behaviour), where the old code raised a
traceback, hung, or said OK to a configuration that then could not start.
"""

from __future__ import annotations

import pytest

from firmware_host.cli import main
from firmware_host.config import config_from_dict
from firmware_host.core import MonitorCore
from harness.derive import config_dict_from_scenario
from hil.scenario import load_scenario
from tests.support.runtime_helpers import to_toml, write_toml


def _good() -> dict:
    data = config_dict_from_scenario(load_scenario("rapid-depress"))
    data["links"] = {"bus0": {"url": "socket://127.0.0.1:7000", "baudrate": 115200}}
    data["outputs"] = {"directory": "out", "telemetry": ""}
    data["display"] = {"enabled": False}
    return data


def _cli(argv, capsys) -> tuple[int, str, list[str]]:
    """``cabinwatch ARGV`` in this process: (exit code, stdout, stderr lines)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def _one_line(code, err, *needles):
    assert code == 2, (code, err)
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    for n in needles:
        assert n in err[0], (n, err[0])


# --- configurations: config check OK means the core can be built ------------------


@pytest.mark.parametrize(
    "key, table, value",
    [
        ("raw_keep_s", "estimator", 1e300),
        ("mid_keep_s", "estimator", 1e300),
        ("slow_keep_s", "estimator", 1e300),
        ("rate_hz", "loop", 1e300),
    ],
)
def test_config_check_refuses_what_the_core_cannot_allocate(tmp_path, capsys, key, table, value):
    data = _good()
    data.setdefault(table, {})[key] = value
    path = write_toml(tmp_path / "c.toml", data)
    code, out, err = _cli(["config", "check", path], capsys)
    _one_line(code, err, str(path), key)


@pytest.mark.parametrize("window", [1e300, 3e8])
def test_a_huge_window_is_refused_by_check(tmp_path, capsys, window):
    """1e300 s is out of range; 3e8 s (10 years) is in range but its tier is too big
    for 400 channels: the sizing names the window."""
    data = _good()
    data["windows_s"] = [10.0, window]
    if window < 1e12:
        data["sensors"] = [
            dict(data["sensors"][0], addr=1 + i % 247, link=f"l{i // 247}", name=f"s{i}")
            for i in range(400)
        ]
        data["links"] = {f"l{i}": {"url": f"socket://127.0.0.1:{7000 + i}"} for i in range(2)}
        data["estimator"] = {"max_window_slots": 1_000_000}
    path = write_toml(tmp_path / "c.toml", data)
    code, out, err = _cli(["config", "check", path], capsys)
    _one_line(code, err, "windows_s[1]")


def test_config_check_prints_the_ring_buffer_and_the_core_starts(tmp_path, capsys):
    """The sizing line of ``config check`` is what the core allocates."""
    data = _good()
    data["estimator"] = {"raw_keep_s": 3600.0}
    path = write_toml(tmp_path / "c.toml", data)
    code, out, err = _cli(["config", "check", path], capsys)
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if "ring buffer" in ln)
    core = MonitorCore(config_from_dict(data, str(path)))
    raw = core.windows.tiers[0]
    assert f"raw {raw.length} x {raw.period_s:g} s" in line


def test_a_config_built_in_code_is_sized_at_core_start():
    from dataclasses import replace

    from common.errors import ConfigError

    cfg = config_from_dict(_good(), "c.toml")
    huge = replace(cfg, estimator=replace(cfg.estimator, slow_keep_s=1e12))
    with pytest.raises(ConfigError, match="estimator.slow_keep_s"):
        MonitorCore(huge)


def test_noisy_learn_zero_is_refused(tmp_path, capsys):
    """It divides the estimation period: 0 was accepted and divided by zero."""
    data = _good()
    data["health"] = {"noisy_learn_s": 0.0}
    path = write_toml(tmp_path / "c.toml", data)
    code, out, err = _cli(["config", "check", path], capsys)
    _one_line(code, err, "health.noisy_learn_s")


# --- TOML files ---------------------------------------------------------------------


def test_utf8_bom_is_skipped(tmp_path, capsys):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + to_toml(_good()).encode())
    code, out, err = _cli(["config", "check", path], capsys)
    assert code == 0, err


def test_a_huge_file_is_refused_before_parsing(tmp_path, capsys):
    path = tmp_path / "huge.toml"
    path.write_text(to_toml(_good()) + "# " + "x" * (5 * 2**20) + "\n")
    code, out, err = _cli(["config", "check", path], capsys)
    _one_line(code, err, "(file)", "too large")


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_not_waited_on(tmp_path, capsys):
    import os

    path = tmp_path / "fifo.toml"
    os.mkfifo(path)
    code, out, err = _cli(["config", "check", path], capsys)
    _one_line(code, err, "not a regular file")


@pytest.mark.parametrize("name", ["", "  ", "a\x00b", "x" * 65])
def test_bad_names_are_refused(tmp_path, capsys, name):
    data = _good()
    data["volumes"][0]["name"] = name
    path = write_toml(tmp_path / "c.toml", data)
    code, out, err = _cli(["config", "check", path], capsys)
    _one_line(code, err, "volumes[0].name")
