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
    """A hatch could be called "" or "a<NUL>b" (a volume's empty name was refused)."""
    data = _good()
    data["hatches"][0]["name"] = name
    path = write_toml(tmp_path / "c.toml", data)
    code, out, err = _cli(["config", "check", path], capsys)
    _one_line(code, err, "hatches[0].name")


# --- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["monitor", "--config", "x.toml", "--speed", "nan"], "--speed: must be finite"),
        (["monitor", "--config", "x.toml", "--speed", "inf"], "--speed: must be finite"),
        (["monitor", "--config", "x.toml", "--speed", "1e300"], "--speed: must be in"),
        (["monitor", "--config", "x.toml", "--duration", "nan"], "--duration: must be finite"),
        (["monitor", "--config", "x.toml", "--duration", "inf"], "--duration: must be finite"),
        (["simulate", "nominal", "--seed=-1"], "--seed: must be in 0.."),
        (["simulate", "nominal", "--duration", "nan"], "--duration: must be finite"),
        (["simulate", "nominal", "--start", "nan"], "--start: must be finite"),
        (["simulate", "nominal", "--start", "inf"], "--start: must be finite"),
        (["simulate", "nominal", "--start", "1e300"], "--start: must be in"),
        (["simulate", "nominal", "--duration", "0.5"], "at least 1 simulated s"),
        (["emulate", "nominal", "--out", "x.bin", "--seed=-1"], "--seed: must be in 0.."),
        (["emulate", "nominal", "--out", "x.bin", "--start", "nan"], "--start: must be finite"),
        (["emulate", "nominal", "--out", "x.bin", "--start", "inf"], "--start: must be finite"),
        (["emulate", "nominal", "--out", "x.bin", "--start", "1e300"], "--start: must be in"),
        (["emulate", "nominal", "--out", "x.bin", "--speed", "1e300"], "--speed: must be in"),
        (["demo", "--speed", "nan"], "--speed: must be finite"),
        (["demo", "--start", "inf"], "--start: must be finite"),
        (["analyze", "x.bin", "--volume-m3", "nan"], "--volume-m3: must be finite"),
        (["analyze", "x.bin", "--rate-hz", "1e300"], "--rate-hz: must be in"),
    ],
)
@pytest.mark.timeout(20)
def test_bad_option_values_are_one_line(tmp_path, monkeypatch, capsys, argv, needle):
    """Each of these crashed, hung (--start inf played the scenario forever) or
    ran forever (--duration inf)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(argv, capsys)
    _one_line(code, err, needle)


def test_usage_errors_are_one_line(capsys):
    code, out, err = _cli(["simulate", "nominal", "--no-such-option"], capsys)
    _one_line(code, err, "unrecognized arguments", "--help")


# --- scenarios ----------------------------------------------------------------------


def _scenario(tmp_path, mutate) -> str:
    from tests.support.hostile import small_scenario

    data = small_scenario()
    mutate(data)
    return str(write_toml(tmp_path / "s.toml", data))


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda d: d["sensor_defaults"].update(rate_hz=1e-300), "sensor_defaults.rate_hz"),
        (lambda d: d["leaks"][0].update(diameter_mm=1e300), "leaks[0].diameter_mm"),
        (lambda d: d["volumes"][0].update(volume_m3=1e-300), "volumes[0].volume_m3"),
        (lambda d: d["scenario"].update(max_step=1e-6), "scenario.max_step"),
        (lambda d: d["scenario"].update(duration="99999999999d"), "scenario.duration"),
        (lambda d: d["volumes"][0].update(name=""), "volumes[0].name"),
        (lambda d: d["sensors"][0].update(name="a\x00b"), "sensors[0].name"),
    ],
)
@pytest.mark.timeout(20)
def test_bad_scenario_numbers_and_names_are_one_line(tmp_path, capsys, mutate, key):
    """ZeroDivisionError, OverflowError and a hang (a 1e-300 m3 volume stepped 1e-9 s
    at a time) before."""
    path = _scenario(tmp_path, mutate)
    code, out, err = _cli(["simulate", path, "--duration", "20"], capsys)
    _one_line(code, err, path, key)


def test_a_binary_scenario_is_one_line(tmp_path, capsys):
    """The issue's UnicodeDecodeError: one line already at this slice's start (a guard)."""
    path = tmp_path / "s.toml"
    path.write_bytes(bytes(range(256)))
    code, out, err = _cli(["simulate", path], capsys)
    _one_line(code, err, "(file)", "not UTF-8")


@pytest.mark.timeout(20)
def test_the_physics_never_steps_below_a_millisecond():
    """A zero time constant (a temperature step with tau 0) stepped 1 ns at a time."""
    from hil.physics import MIN_STEP_S, Network
    from hil.scenario import parse_scenario
    from tests.support.hostile import small_scenario

    data = small_scenario()
    data["events"] = [
        {"t": 1.0, "kind": "temperature_step", "volume": "cabin", "tau": 0.0, "delta_k": 1.0}
    ]
    net = Network(parse_scenario(data, "s.toml"))
    net.run_until(5.0)
    assert net.steps <= 5.0 / MIN_STEP_S + 10


# --- demo, analyze, plot, archive, decode, stdout, decoder, tcp, folders -----------------


def test_demo_refuses_a_non_empty_out_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "archive.sqlite").write_bytes(b"precious")
    code, _, err = _cli(["demo", "--scenario", "rapid-depress", "--out", out], capsys)
    _one_line(code, err, "--out", "not empty", "--overwrite")
    assert (out / "archive.sqlite").read_bytes() == b"precious"


def test_demo_overwrite_leaves_a_running_monitors_archive_alone(tmp_path, capsys):
    """--overwrite on a folder a monitor holds (its instance lock): refused, nothing
    deleted (the archive is the running monitor's)."""
    from firmware_host.runtime.instance import InstanceLock

    out = tmp_path / "run"
    out.mkdir()
    (out / "archive.sqlite").write_bytes(b"precious")
    with InstanceLock.for_directory(out):
        code, _, err = _cli(
            ["demo", "--scenario", "rapid-depress", "--out", out, "--overwrite"], capsys
        )
    _one_line(code, err, "already")
    assert (out / "archive.sqlite").read_bytes() == b"precious"


def test_make_demo_passes_overwrite():
    from pathlib import Path

    make = (Path(__file__).parents[2] / "Makefile").read_text()
    assert "cabinwatch demo --overwrite" in make


def _capture(t_us) -> bytes:
    import numpy as np

    from drivers.encode import encode_samples

    t = np.asarray(t_us, dtype=np.int64)
    n = len(t)
    return encode_samples(1, np.arange(n), t, np.full(n, 101325.0), np.full(n, 21.0)).tobytes()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["jump", "random"])
def test_analyze_does_not_hang_on_garbage_timestamps(tmp_path, capsys, kind):
    """Valid frames whose timestamps jump by ~2^63 us were ticked through at 100 % CPU."""
    import numpy as np

    t = np.arange(40, dtype=np.int64) * 1_000_000
    if kind == "jump":
        t[20:] += 2**62
    else:
        t = np.random.default_rng(1).integers(0, 2**63 - 1, 40)
    path = tmp_path / "cap.bin"
    path.write_bytes(_capture(t))
    code, out, err = _cli(["analyze", path], capsys)
    assert code == 0, err
    assert '"summary"' in out.splitlines()[-1]


@pytest.mark.timeout(20)
def test_analyze_refuses_a_capture_that_needs_too_many_ticks(tmp_path, capsys):
    """Forward jumps under a day each: the timeline is kept, but 40 samples over
    20 days would be 17 million ticks."""
    path = tmp_path / "cap.bin"
    path.write_bytes(_capture([i * 43_200_000_000 for i in range(40)]))
    code, out, err = _cli(["analyze", path], capsys)
    _one_line(code, err, "timestamps are garbage", "--rate-hz")


def _archive(tmp_path, name="a.sqlite"):
    from tests.support.hostile import make_archive

    archive = make_archive(tmp_path / "arch")
    target = tmp_path / name
    archive.rename(target)
    return target


@pytest.mark.timeout(60)
def test_plot_out_and_title_and_odd_archive_names(tmp_path, capsys):
    archive = _archive(tmp_path, "run #1 100%.sqlite")  # a URI would cut it at '#'
    code, out, err = _cli(["plot", archive, "--out", tmp_path / "x.txt"], capsys)
    _one_line(code, err, "--out", ".png")
    code, out, err = _cli(["plot", archive, "--out", tmp_path], capsys)
    _one_line(code, err, "--out")
    assert not (tmp_path.parent / f"{tmp_path.name}.png").exists()
    code, out, err = _cli(["plot", archive, "--out", tmp_path / "p.png", "--title", "$x^"], capsys)
    assert code == 0 and err == [], err
    assert (tmp_path / "p.png").stat().st_size > 0


def test_output_options_create_one_missing_level_only(tmp_path, capsys):
    from common.outpaths import output_file

    deep = tmp_path / "a" / "b" / "c.png"
    code, out, err = _cli(["plot", "none.sqlite", "--out", deep], capsys)
    _one_line(code, err, "--out", "does not exist")
    assert not (tmp_path / "a").exists()
    assert output_file(tmp_path / "a" / "c.png", "--out") == tmp_path / "a" / "c.png"
    assert (tmp_path / "a").is_dir()


def test_decode_prints_strict_json(tmp_path, capsys):
    import json
    import math

    import numpy as np

    from drivers.encode import encode_samples

    blob = encode_samples(
        1, [1, 2], np.array([1, 2]), np.array([math.nan, 101325.0]), np.array([math.inf, 20.0])
    ).tobytes()
    path = tmp_path / "cap.bin"
    path.write_bytes(blob)
    code, out, err = _cli(["decode", path], capsys)
    assert code == 0, err

    def refuse(name):
        raise ValueError(name)

    first, second = (json.loads(line, parse_constant=refuse) for line in out.splitlines())
    assert first["pressure_pa"] is None and first["temperature_c"] is None
    assert first["nonfinite"] == ["pressure_pa", "temperature_c"]
    assert "nonfinite" not in second and second["pressure_pa"] == 101325.0


@pytest.mark.parametrize(
    "argv", [["decode", "{cap}"], ["analyze", "{cap}"], ["simulate", "nominal", "--duration", "5"]]
)
@pytest.mark.timeout(30)
def test_a_full_stdout_is_one_line_and_exit_2(tmp_path, argv):
    """``> /dev/full``: a traceback at exit before."""
    import subprocess
    import sys

    cap = tmp_path / "cap.bin"
    cap.write_bytes(_capture([i * 1_000_000 for i in range(40)]))
    argv = [a.replace("{cap}", str(cap)) for a in argv]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "firmware_host.cli", *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=25,
        )
    lines = [ln for ln in proc.stderr.splitlines() if "no --config" not in ln]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr


def test_decoder_counts_the_bytes_of_unknown_frames():
    from drivers.decoder import StreamDecoder
    from drivers.frames import build_frame

    unknown = build_frame(0x42, 1, 0, bytes(30))
    data = unknown + _capture([1, 2])
    dec = StreamDecoder()
    dec.feed(data)
    dec.flush()
    c = dec.counters()
    assert c.unknown_msg_types == 1 and c.bytes_unknown == len(unknown)
    assert c.frames_total * 35 + c.bytes_discarded + c.bytes_unknown == c.bytes_in
    assert c.to_json_dict()["bytes_unknown"] == len(unknown)


@pytest.mark.parametrize(
    "text, host, port",
    [("[::1]:7000", "::1", 7000), ("7000", "127.0.0.1", 7000), ("0.0.0.0:1", "0.0.0.0", 1)],
)
def test_tcp_addresses_parse(text, host, port):
    from hil.endpoints import parse_tcp_address

    assert parse_tcp_address(text) == (host, port)


@pytest.mark.parametrize("text", ["::1:7000", "[::1", "[::1]x", "host:99999", "host:"])
def test_bad_tcp_addresses_are_refused(text):
    from hil.endpoints import parse_tcp_address

    with pytest.raises(ValueError):
        parse_tcp_address(text)


@pytest.mark.timeout(20)
def test_emulate_serves_on_ipv6(tmp_path, capsys):
    import socket

    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    code, out, err = _cli(["emulate", "nominal", "--tcp", "[::1]:0", "--duration", "0.01"], capsys)
    assert code == 0, err
    assert "tcp=[::1]:" in out


def test_a_tier_without_keep_time_or_windows_still_starts(tmp_path, capsys):
    """mid_keep_s = 0 with a 1 Hz loop leaves the 1-s tier no slot: config check said
    OK and the core raised ValueError (found by the corpus's numeric mutations)."""
    from tests.support.hostile import small_config

    data = small_config()
    data["loop"] = {"rate_hz": 1.0}
    data["estimator"] = {"mid_keep_s": 0.0}
    path = write_toml(tmp_path / "c.toml", data)
    code, out, err = _cli(["config", "check", path], capsys)
    assert code == 0, err
    core = MonitorCore(config_from_dict(data, str(path)))
    core.tick(0.0)


@pytest.mark.parametrize("rate_hz", [1.0, 10.0, 100.0])
def test_sizing_is_what_the_core_allocates(rate_hz):
    from firmware_host.sizing import layout

    data = _good()
    data["loop"] = {"rate_hz": rate_hz}
    cfg = config_from_dict(data, "c.toml")
    size = layout(cfg)
    core = MonitorCore(cfg)
    tiers = core.windows.tiers
    assert [t.length for t in tiers] == [t.length for t in size.tiers]
    assert [t.period_s for t in tiers] == [t.period_s for t in size.tiers]
    allocated = sum(t.nbytes for t in tiers)
    # the sizing also counts the per-window sums; the slots and terms are the bulk
    assert allocated <= sum(t.nbytes for t in size.tiers) <= 1.1 * allocated
    assert core.windows.lag_ticks == size.lag_ticks


def test_a_subnormal_sensor_resolution_is_refused(tmp_path, capsys):
    """resolution_pa = 5e-324 overflowed the quantization (inf pressures, a warning)."""
    path = _scenario(tmp_path, lambda d: d["sensor_defaults"].update(resolution_pa=5e-324))
    code, out, err = _cli(["simulate", path, "--duration", "20"], capsys)
    _one_line(code, err, "sensor_defaults.resolution_pa")


@pytest.mark.timeout(30)
def test_a_closed_pipe_ends_decode_quietly(tmp_path):
    """``decode CAPTURE | head``: no message and exit 0 (a guard: it was quiet before,
    by closing stderr; now stdout's descriptor goes to /dev/null)."""
    import subprocess
    import sys

    cap = tmp_path / "cap.bin"
    cap.write_bytes(_capture(list(range(0, 20_000_000_000, 1_000_000))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_host.cli", "decode", str(cap)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=25) == 0
    assert err == b""
