"""Hostile inputs for the CLI: what a careless or malicious user types or writes.

Strategies (hypothesis) for option values and for TOML values (wrong types,
NaN, infinities, 1e300, 1e-300, -0, huge integers, unicode, control
characters), for mutating a known-good configuration or scenario at a random
key, and for capture bytes; ``run_in_process`` runs ``cabinwatch ARGV`` in this
process under a time bound and returns what a user would see; ``check_outcome``
asserts the promise: exit 0 or 2, one line on stderr for an error, never a
traceback.  Used by tests/runtime/test_hostile_corpus.py (a few examples) and
bench/bench_hostile.py (many).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

#: Seconds one CLI run may take before it counts as a hang.
TIME_BOUND_S = 10.0

# --- values ---------------------------------------------------------------------------

SPECIAL_FLOATS = [
    math.nan,
    math.inf,
    -math.inf,
    1e300,
    -1e300,
    1e-300,
    -0.0,
    0.0,
    -1.0,
    2.0**63,
    5e-324,
]
SPECIAL_TEXT = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e300",
    "-1e300",
    "1e-300",
    "-0",
    "0",
    "-1",
    "9223372036854775808",
    "0x10",
    "1_000",
    " 1 ",
    "",
    "max",
    "\x00",
    "é",
    "☃",
    "a" * 5000,
    "--help",
    "-",
    "[::1]:0",
    "::1",
    "[::1",
    "host:99999",
]


def option_values() -> st.SearchStrategy[str]:
    """What a user types after an option: numbers, specials, text, unicode."""
    return st.one_of(
        st.sampled_from(SPECIAL_TEXT),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(max_size=20).filter(lambda s: "\x00" not in s),
    )


def toml_values() -> st.SearchStrategy[Any]:
    """Any value TOML can hold, biased to the ones that break code."""
    scalars = st.one_of(
        st.sampled_from(SPECIAL_FLOATS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, -(2**63)]),
        st.booleans(),
        st.text(max_size=30),
        st.sampled_from(["", "\x00", "a\x00b", "☃" * 70, "1e300", "8h", "99999999999d"]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=4,
    )


# --- documents --------------------------------------------------------------------------


def key_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and list indices) to a value in nested dicts and lists."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(prefix + (k,))
            out.extend(key_paths(v, prefix + (k,)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append(prefix + (i,))
            out.extend(key_paths(v, prefix + (i,)))
    return out


def set_path(data: Any, path: tuple, value: Any) -> Any:
    """A deep copy of ``data`` with the value at ``path`` replaced by ``value``."""
    data = copy.deepcopy(data)
    node = data
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return data


@st.composite
def mutated(draw, good: dict) -> dict:
    """``good`` with one to three values replaced by hostile ones (or a key added)."""
    data = copy.deepcopy(good)
    for _ in range(draw(st.integers(1, 3))):
        paths = key_paths(data)
        if draw(st.booleans()) and paths:
            data = set_path(data, draw(st.sampled_from(paths)), draw(toml_values()))
        else:
            tables = [()] + [p for p in paths if isinstance(_get(data, p), dict)]
            where = draw(st.sampled_from(tables))
            data = set_path(data, where + (draw(st.text(max_size=8)),), draw(toml_values()))
    return data


def _get(data: Any, path: tuple) -> Any:
    for k in path:
        data = data[k]
    return data


def file_bytes() -> st.SearchStrategy[bytes]:
    """Files that are not TOML: binary, a BOM, NULs, invalid UTF-8, huge lines."""
    return st.one_of(
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"",
                b"\xef\xbb\xbf",
                b"\xff\xfe[a]\n",
                b"\x00" * 64,
                b"a = " + b"9" * 5000 + b"\n",
                b"[" * 1000,
                b"a = [" * 200,
                b"a = 1e999\n",
                b'a = "\\u0000"\n',
            ]
        ),
    )


def capture_bytes() -> st.SearchStrategy[bytes]:
    """A link's bytes: SAMPLE frames with hostile timestamps and values, mixed with noise."""
    from drivers.encode import encode_samples

    @st.composite
    def frames(draw) -> bytes:
        n = draw(st.integers(1, 40))
        kind = draw(st.sampled_from(["steady", "jump", "random", "same"]))
        t = np.arange(n, dtype=np.int64) * draw(st.sampled_from([1, 1000, 100_000, 1_000_000]))
        if kind == "jump":
            t[n // 2 :] += draw(st.sampled_from([2**62, 2**63 - 2**40, 10**12, 86_400_000_001]))
        elif kind == "random":
            t = np.array(draw(st.lists(st.integers(0, 2**63 - 1), min_size=n, max_size=n)))
        elif kind == "same":
            t[:] = draw(st.integers(0, 2**63 - 1))
        values = st.sampled_from([101325.0, math.nan, math.inf, -math.inf, 1e300, -0.0, 0.0])
        p = np.array([draw(values) for _ in range(n)])
        temp = np.array([draw(values) for _ in range(n)])
        addr = draw(st.integers(1, 247))
        with np.errstate(over="ignore"):  # 1e300 as float32 is inf: what we want
            data = encode_samples(addr, np.arange(n), t, p, temp).tobytes()
        noise = draw(st.binary(max_size=50))
        return noise + data if draw(st.booleans()) else data + noise

    return st.one_of(frames(), st.binary(max_size=300))


# --- small known-good inputs ---------------------------------------------------------------


def small_scenario() -> dict:
    """A scenario that simulates in well under a second: one volume, one leak, two sensors."""
    return {
        "scenario": {"name": "tiny", "seed": 1, "duration": 60.0, "max_step": "10s"},
        "volumes": [{"name": "cabin", "volume_m3": 10.0, "temperature_c": 22.0}],
        "leaks": [{"volume": "cabin", "kind": "orifice", "onset": 10.0, "diameter_mm": 2.0}],
        "links": [{"name": "bus0"}],
        "sensor_defaults": {"rate_hz": 1.0},
        "sensors": [
            {"name": "a", "link": "bus0", "addr": 1, "volume": "cabin"},
            {"name": "b", "link": "bus0", "addr": 2, "volume": "cabin"},
        ],
    }


def small_config() -> dict:
    """The monitor configuration (with runtime tables) of ``small_scenario``."""
    from harness.derive import config_dict_from_scenario
    from hil.scenario import parse_scenario

    data = config_dict_from_scenario(parse_scenario(small_scenario(), "tiny.toml"))
    data["links"] = {"bus0": {"url": "socket://127.0.0.1:9"}}
    data["outputs"] = {
        "directory": ".",
        "telemetry": "",
        "control_socket": "",
        "ccsds": ["udp://127.0.0.1:10015", "p.bin"],
        "ccsds_rate_hz": 1.0,
        "ccsds_apid_hk": 256,
        "ccsds_apid_events": 257,
    }
    data["display"] = {"enabled": False}
    return data


# --- running -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a user saw: exit code, stdout, stderr, wall seconds."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float


class Hang(Exception):
    """A run went past ``TIME_BOUND_S``."""


def _alarm(signum, frame):
    raise Hang(f"still running after {TIME_BOUND_S} s")


def run_in_process(argv: list[str], bound_s: float = TIME_BOUND_S) -> Outcome:
    """``cabinwatch ARGV`` in this process with stdout and stderr captured, interrupted
    (``Hang``, reported in ``stderr``, code -1) after ``bound_s`` s."""
    from firmware_host.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    # pytest-timeout may have a timer running on the same signal: kept and restored
    outer, _ = signal.setitimer(signal.ITIMER_REAL, bound_s)
    if 0 < outer < bound_s:
        signal.setitimer(signal.ITIMER_REAL, outer)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    except Hang as exc:
        code = -1
        err.write(f"HANG: {exc}\n")
    except Exception:  # escaped main: what the user would see is a traceback
        code = -2
        err.write(traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer > 0:
            left = outer - (time.perf_counter() - t0)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
    return Outcome(tuple(argv), code, out.getvalue(), err.getvalue(), time.perf_counter() - t0)


def problems(o: Outcome) -> list[str]:
    """What breaks the promise in ``o`` (none: kept): exit 0 or 2, an error is one
    line on stderr, no traceback, no warning, within the time bound."""
    lines = o.stderr.splitlines()
    found = []
    if o.code not in (0, 2):
        found.append(f"exit code {o.code}")
    if o.code == 2 and len(lines) != 1:
        found.append(f"{len(lines)} stderr lines")
    if o.code == 0 and len(lines) > 1:
        found.append(f"{len(lines)} stderr lines on success")
    if "Traceback" in o.stderr or "Warning" in o.stderr:
        found.append("traceback or warning")
    if o.seconds > TIME_BOUND_S:
        found.append(f"took {o.seconds:.1f} s")
    return found


def check_outcome(o: Outcome) -> None:
    """Assert ``problems(o)`` is empty, showing the command and its stderr."""
    bad = problems(o)
    assert not bad, f"{bad}: cabinwatch {' '.join(map(repr, o.argv))}\n{o.stderr[-2000:]}"


def write(path: Path, data: bytes | str) -> Path:
    """``data`` into ``path`` (bytes as they are, text as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    return path


# --- the corpus: one strategy of inputs per subcommand ------------------------------------


@dataclass(frozen=True)
class Input:
    """A command line and the files it names: ``{w}`` in an argument stands for the
    example's own fresh folder, ``files`` are (name, bytes) written there first."""

    argv: tuple[str, ...]
    files: tuple[tuple[str, bytes], ...] = ()

    def materialize(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files:
            write(folder / name, data)
        return [a.replace("{w}", str(folder)) for a in self.argv]


def _toml(data: dict) -> bytes:
    import tomli_w

    return tomli_w.dumps(data).encode("utf-8", "surrogatepass")


def _long(value: str, limit: float) -> bool:
    """A valid number above ``limit``: a long run the user asked for, not a bad input."""
    try:
        v = float(value)
    except ValueError:
        return False
    return math.isfinite(v) and v > limit


@st.composite
def _options(draw, names: list[str], *, long: dict[str, float] | None = None) -> list[str]:
    """Zero to three of ``names``, each with a hostile value (``--opt=VALUE`` so that a
    value starting with ``-`` is a value); valid values above ``long[opt]`` are skipped."""
    from hypothesis import assume

    out = []
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        value = draw(option_values())
        assume(not (long and name in long and _long(value, long[name])))
        out.append(f"{name}={value}")
    return out


@st.composite
def scenario_file(draw) -> bytes:
    """The small scenario, mutated, or not TOML at all."""
    pick = draw(st.integers(0, 9))
    if pick == 0:
        return draw(file_bytes())
    if pick <= 3:  # unchanged: the options are then what is hostile
        return _toml(small_scenario())
    return _toml(draw(mutated(small_scenario())))


@st.composite
def config_file(draw, *, links: bool = True) -> bytes:
    good = small_config()
    if not links:
        for k in ("links", "outputs", "display"):
            good.pop(k)
    pick = draw(st.integers(0, 9))
    if pick == 0:
        return draw(file_bytes())
    if pick <= 2:
        return _toml(good)
    return _toml(draw(mutated(good)))


@st.composite
def monitor_inputs(draw) -> Input:
    # the options are checked first; a configuration without [links] then stops it
    opts = draw(_options(["--speed", "--duration", "--telemetry"]))
    opts = [o.replace("--telemetry=", "--telemetry={w}/") for o in opts]
    files = (("c.toml", draw(config_file(links=False))),)
    return Input(("monitor", "--config", "{w}/c.toml", "--no-display", *opts), files)


@st.composite
def simulate_inputs(draw) -> Input:
    opts = draw(_options(["--duration", "--start", "--seed", "--settle"]))
    if not any(o.startswith("--duration") for o in opts):
        opts.append("--duration=20")
    return Input(("simulate", "{w}/s.toml", *opts), (("s.toml", draw(scenario_file())),))


@st.composite
def emulate_inputs(draw) -> Input:
    names = ["--duration", "--start", "--seed", "--truth-rate", "--baud", "--hold", "--speed"]
    opts = draw(_options(names, long={"--duration": 60.0}))
    if any(o.startswith("--speed") for o in opts):
        opts = [o for o in opts if not o.startswith("--duration")] + ["--duration=0.001"]
    elif not any(o.startswith("--duration") for o in opts):
        opts.append("--duration=5")
    where = draw(st.sampled_from(["--out={w}/cap.bin", "--tcp"]))
    if where == "--tcp":
        where = f"--tcp={draw(option_values())}"
        opts = [o for o in opts if not o.startswith(("--speed", "--duration"))]
        opts.append("--duration=0.001")
    files = (("s.toml", draw(scenario_file())),)
    return Input(("emulate", "{w}/s.toml", where, *opts), files)


@st.composite
def demo_inputs(draw) -> Input:
    # a scenario that cannot be read: the options are checked before it, then it stops
    opts = draw(_options(["--speed", "--start", "--duration"]))
    return Input(("demo", "--scenario", "{w}/none.toml", "--no-display", *opts))


@st.composite
def analyze_inputs(draw) -> Input:
    opts = draw(_options(["--volume-m3", "--rate-hz", "--link"]))
    files = [("cap.bin", draw(capture_bytes()))]
    if draw(st.booleans()):
        files.append(("c.toml", draw(config_file(links=False))))
        opts.append("--config={w}/c.toml")
    return Input(("analyze", "{w}/cap.bin", *opts), tuple(files))


@st.composite
def decode_inputs(draw) -> Input:
    flags = draw(st.lists(st.sampled_from(["--stats", "--quiet"]), unique=True))
    return Input(("decode", "{w}/cap.bin", *flags), (("cap.bin", draw(capture_bytes())),))


@st.composite
def plot_inputs(draw) -> Input:
    name = draw(st.one_of(option_values(), st.sampled_from(["x.png", "x.svg", "x.PDF", "x"])))
    suffix = draw(st.sampled_from(["", ".png", ".svg", ".txt", "/"]))
    argv = ["plot", "{archive}", f"--out={{w}}/{name}{suffix}"]
    if draw(st.booleans()):
        argv.append(f"--title={draw(st.one_of(option_values(), st.just('$x^')))}")
    return Input(tuple(argv))


@st.composite
def config_inputs(draw) -> Input:
    links = draw(st.booleans())
    argv = ("config", "check", "{w}/c.toml") + (() if links else ("--no-links",))
    return Input(argv, (("c.toml", draw(config_file(links=links))),))


@st.composite
def xtce_inputs(draw) -> Input:
    links = draw(st.booleans())
    out = draw(st.sampled_from(["--out={w}/x.xml", "--out={w}/", "--out=-"]))
    return Input(
        ("xtce", "--config", "{w}/c.toml", out), (("c.toml", draw(config_file(links=links))),)
    )


@st.composite
def ctl_inputs(draw) -> Input:
    words = draw(st.lists(option_values().filter(lambda s: not s.startswith("-")), max_size=3))
    cmd = draw(st.sampled_from(["ack", "hatch", "limits", "status", "bogus"]))
    return Input(("ctl", "--socket", "{w}/none.sock", cmd, *words))


@st.composite
def scenario_number_inputs(draw) -> Input:
    """``simulate`` of a scenario whose numbers are extreme but finite."""
    files = (("s.toml", _toml(draw(scenario_numeric_mutation()))),)
    return Input(("simulate", "{w}/s.toml", "--duration=20"), files)


@st.composite
def config_number_inputs(draw) -> Input:
    """``config check`` of a configuration whose tuning numbers are extreme but finite."""
    files = (("c.toml", _toml(draw(numeric_mutation(small_config())))),)
    return Input(("config", "check", "{w}/c.toml"), files)


def small_station() -> dict:
    """A small station file (``cabinwatch station``) whose broker refuses at once."""
    return {
        "station": {
            "name": "iss",
            "broker": "mqtt://127.0.0.1:1",
            "caution_kg_day": 2.0,
            "crew_volume": "a",
            "min_pressure_pa": 66000.0,
            "offline_after_s": 10.0,
        },
        "volumes": [
            {"name": "a", "volume_m3": 100.0, "sensors": 2, "noise_pa": 2.0, "rate_hz": 1.0},
            {"name": "b", "volume_m3": 5.0, "escape_vehicle": True},
        ],
        "hatches": [
            {"name": "a-b", "a": "a", "b": "b", "opens_into": "b", "max_open_dp_pa": 500.0}
        ],
        "boards": [{"node": "n1", "volumes": ["a", "b"], "hatches": ["a-b"]}],
    }


@st.composite
def station_inputs(draw) -> Input:
    """``cabinwatch station``: hostile options and station files; a valid one runs
    (the broker refuses) for a fraction of a second."""
    opts = draw(_options(["--broker", "--duration", "--speed"], long={"--duration": 1.0}))
    if not any(o.startswith("--duration") for o in opts):
        opts.append("--duration=0.3")
    pick = draw(st.integers(0, 9))
    if pick == 0:
        data = draw(file_bytes())
    elif pick <= 2:
        data = _toml(small_station())
    else:
        data = _toml(draw(mutated(small_station())))
    files = (("station.toml", data),)
    return Input(("station", "--config", "{w}/station.toml", "--no-view", *opts), files)


#: Subcommand (or file kind) -> its strategy of inputs.
CASES = {
    "station": station_inputs,
    "monitor": monitor_inputs,
    "simulate": simulate_inputs,
    "emulate": emulate_inputs,
    "demo": demo_inputs,
    "analyze": analyze_inputs,
    "decode": decode_inputs,
    "plot": plot_inputs,
    "config": config_inputs,
    "ctl": ctl_inputs,
    "xtce": xtce_inputs,
    "scenario-numbers": scenario_number_inputs,
    "config-numbers": config_number_inputs,
}


def make_archive(folder: Path) -> Path:
    """A small archive (``simulate --archive`` of the small scenario) for ``plot``."""
    folder.mkdir(parents=True, exist_ok=True)
    scen = write(folder / "tiny.toml", _toml(small_scenario()))
    archive = folder / "tiny.sqlite"
    o = run_in_process(["simulate", str(scen), "--archive", str(archive)], bound_s=60)
    assert o.code == 0, o.stderr
    return archive


def run_input(inp: Input, folder: Path, archive: Path | None = None) -> Outcome:
    """Write ``inp``'s files into ``folder`` and run it; ``{archive}`` is ``archive``."""
    argv = inp.materialize(folder)
    if archive is not None:
        argv = [a.replace("{archive}", str(archive)) for a in argv]
    return run_in_process(argv)


def decode_output_problems(o: Outcome) -> list[str]:
    """Lines of ``decode`` output that are not strict JSON (NaN, Infinity...)."""
    import json

    def no_constant(name):
        raise ValueError(f"non-JSON constant {name}")

    bad = []
    for line in o.stdout.splitlines():
        try:
            json.loads(line, parse_constant=no_constant)
        except ValueError as exc:
            bad.append(f"{exc}: {line[:200]}")
    return bad


@st.composite
def numeric_mutation(draw, good: dict) -> dict:
    """``good`` with one to three of its tuning numbers (estimator, health, limits,
    windows, loop, sensor rates, volumes) set to extreme but finite values: the
    configurations that pass the type checks and must still be sized right."""
    from dataclasses import fields

    from firmware_host.config import EstimatorConfig, HealthConfig, Limits

    data = copy.deepcopy(good)
    data.setdefault("windows_s", [10.0, 60.0, 600.0, 1800.0, 7200.0])
    keys = [("estimator", f.name) for f in fields(EstimatorConfig)]
    keys += [("health", f.name) for f in fields(HealthConfig) if f.name != "temp_range_c"]
    keys += [("limits", "flight", f.name) for f in fields(Limits)]
    keys += [("loop", "rate_hz"), ("windows_s", -1), ("sensors", 0, "rate_hz")]
    keys += [("volumes", 0, "volume_m3")]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(keys))
        node = data
        for k in path[:-1]:
            node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
        value = draw(
            st.one_of(
                st.integers(0, 10**9),
                st.floats(0.0, 1e13, allow_nan=False),
                st.sampled_from([1e-9, 1e-3, 0.5, 1.0, 3.0, 1e6, 3.15e8, 1e12]),
            )
        )
        node[path[-1]] = value
    return data


#: Number keys of ``small_scenario`` (path) that ``scenario_numeric_mutation`` sets.
SCENARIO_NUMBERS = [
    ("scenario", "max_step"),
    ("scenario", "nominal_pressure_pa"),
    ("volumes", 0, "volume_m3"),
    ("volumes", 0, "pressure_pa"),
    ("volumes", 0, "temperature_c"),
    ("volumes", 0, "orbit_amplitude_k"),
    ("volumes", 0, "orbit_period"),
    ("volumes", 0, "drift_k_per_day"),
    ("leaks", 0, "diameter_mm"),
    ("leaks", 0, "onset"),
    ("leaks", 0, "cd"),
    ("sensor_defaults", "rate_hz"),
    ("sensor_defaults", "max_rate_hz"),
    ("sensor_defaults", "noise_pa"),
    ("sensor_defaults", "lag_s"),
    ("sensor_defaults", "temp_lag_s"),
    ("sensor_defaults", "clock_ppm"),
    ("sensor_defaults", "boot_s"),
    ("sensor_defaults", "warmup_s"),
    ("sensor_defaults", "resolution_pa"),
    ("sensors", 0, "bias_pa"),
    ("sensors", 0, "drift_pa_per_day"),
    ("sensors", 0, "power_on_s"),
]


@st.composite
def scenario_numeric_mutation(draw) -> dict:
    """``small_scenario`` with one to three numbers set to extreme but finite values
    (and sometimes an inflow or a temperature step with extreme numbers)."""
    data = small_scenario()
    extreme = st.one_of(
        st.sampled_from([1e-300, 1e-9, 1e-3, 0.0, -0.0, 1.0, 1e3, 1e6, 1e9, 3.15e8, 1e12, -1e6]),
        st.floats(-1e13, 1e13, allow_nan=False),
    )
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(SCENARIO_NUMBERS))
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = draw(extreme)
    if draw(st.booleans()):
        data["inflows"] = [
            {
                "volume": "cabin",
                "start": draw(extreme),
                "duration": draw(extreme),
                "kg_s": draw(extreme),
            }
        ]
    if draw(st.booleans()):
        data["events"] = [
            {
                "t": draw(extreme),
                "kind": "temperature_step",
                "volume": "cabin",
                "delta_k": draw(extreme),
                "tau": draw(extreme),
            }
        ]
    return data
