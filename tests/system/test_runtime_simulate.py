"""``cabinwatch simulate``: JSON lines, the scored leak, the archive and its plot."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from firmware_host.cli import main
from firmware_host.core import Regime
from harness.derive import config_from_scenario
from harness.scoring import score
from harness.simulate import LOOKAHEAD_S, TRACE_FIELDS, EstimateTrace, run_simulation
from hil.scenario import load_scenario
from tests.support.runtime_helpers import assert_one_line_error, query, run_cli

pytestmark = pytest.mark.timeout(90)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rapid(tmp_path_factory):
    """``simulate rapid-depress --duration 300 --json --archive``: (process, objects, archive)."""
    tmp = tmp_path_factory.mktemp("simulate")
    archive = tmp / "run.sqlite"
    proc = run_cli(
        "simulate",
        "rapid-depress",
        "--duration",
        "300",
        "--json",
        "--archive",
        archive,
        "--telemetry",
        tmp / "telemetry.jsonl",
        timeout=80,
    )
    assert proc.returncode == 0, proc.stderr
    objects = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc, objects, archive


@pytest.mark.slow
def test_telemetry_file(rapid):
    _, objects, archive = rapid
    lines = (archive.parent / "telemetry.jsonl").read_text().splitlines()
    tele = [json.loads(line) for line in lines]
    assert tele[0]["type"] == "header" and tele[0]["volumes"] == ["usos", "node3", "rs"]
    estimates = [t for t in tele if t["type"] == "estimate"]
    events = [t for t in tele if t["type"] == "event"]
    assert len(estimates) == pytest.approx(300, abs=2)  # 1 Hz
    assert set(estimates[-1]["volumes"]) == {"usos", "node3", "rs"}
    assert [(e["t_s"], e["key"], e["transition"]) for e in events] == [
        (o["t_s"], o["key"], o["transition"]) for o in objects[:-1]
    ]


@pytest.mark.slow
def test_json_lines_events_then_summary(rapid):
    proc, objects, _ = rapid
    assert objects, "no output"
    assert all(o["type"] == "event" for o in objects[:-1])
    assert objects[-1]["type"] == "summary"
    assert len(objects) > 3
    times = [o["t_s"] for o in objects[:-1]]
    assert times == sorted(times)
    for ev in objects[:-1]:
        assert {
            "t_s",
            "key",
            "source",
            "level",
            "kind",
            "transition",
            "value",
            "limit",
            "unit",
            "message",
        } <= ev.keys()


@pytest.mark.slow
def test_summary_scores_the_leak(rapid):
    _, objects, _ = rapid
    s = objects[-1]
    assert {"scenario", "sim_seconds", "leaks", "false_alarms", "level_errors", "counters"} <= (
        s.keys()
    )
    assert s["scenario"] == "rapid-depress" and s["sim_seconds"] == 300.0
    assert len(s["leaks"]) == 1
    leak = s["leaks"][0]
    for key in (
        "volume",
        "onset_s",
        "detected_s",
        "latency_s",
        "first_level",
        "mass_rate_true_kg_day",
        "mass_rate_est_kg_day",
        "hole_true_mm",
        "hole_est_mm",
    ):
        assert key in leak
    assert leak["volume"] == "node3" and leak["onset_s"] == 120.0
    assert leak["first_level"] == "EMERGENCY"
    assert 120.0 <= leak["detected_s"] <= 140.0
    assert leak["latency_s"] == pytest.approx(leak["detected_s"] - leak["onset_s"])
    assert leak["hole_true_mm"] == pytest.approx(25.0, rel=0.01)
    assert leak["hole_est_mm"] == pytest.approx(leak["hole_true_mm"], rel=0.2)
    assert leak["mass_rate_est_kg_day"] == pytest.approx(leak["mass_rate_true_kg_day"], rel=0.2)
    assert s["false_alarms"] == []
    assert s["level_errors"] == []  # every level raised is justified by the truth
    frames = s["counters"]["decoder"]["bus0"]["frames"]["SAMPLE"]
    assert frames == pytest.approx(300 * 10 * 5, rel=0.01)
    # the summary's first raise is among the events printed before it
    assert any(
        o["type"] == "event"
        and o["level"] == "EMERGENCY"
        and o["source"] == "node3"
        and o["transition"] == "RAISED"
        and o["t_s"] == leak["detected_s"]
        for o in objects
    )


@pytest.mark.slow
def test_archive_and_plot(rapid, tmp_path):
    _, objects, archive = rapid
    n_events = len(objects) - 1
    assert query(archive, "SELECT count(*) FROM events")[0][0] == n_events
    assert query(archive, "SELECT count(DISTINCT volume), count(*) FROM estimates")[0] == (3, 900)
    assert query(archive, "SELECT value FROM meta WHERE key='scenario'") == [("rapid-depress",)]
    png = tmp_path / "plots" / "x.png"
    proc = run_cli("plot", archive, "--out", png, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(png)
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000


def test_plot_missing_archive(tmp_path, capsys):
    missing = tmp_path / "none.sqlite"
    assert main(["plot", str(missing), "--out", str(tmp_path / "x.png")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"cabinwatch plot: {missing}: no such archive file"]
    assert not (tmp_path / "x.png").exists()


def test_plot_not_an_archive(tmp_path, capsys):
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_text("hello\n" * 1000)
    assert main(["plot", str(bogus), "--out", str(tmp_path / "x.png")]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith(f"cabinwatch plot: {bogus}: not a cabinwatch archive")


@pytest.mark.slow
def test_unknown_scenario():
    proc = run_cli("simulate", "nosuch", "--duration", "10", timeout=60)
    assert_one_line_error(proc, "nosuch")
    assert proc.stdout == ""


@pytest.mark.slow
def test_link_faults_raise_no_false_alarm():
    """link-faults has no leak: losing the lab's three sensors (link usos down from 600 to
    620 s) must not raise a leak alarm on the fgb, whose pressure is steady."""
    scenario = load_scenario("link-faults")
    result = run_simulation(scenario, config_from_scenario(scenario), duration_s=640.0)
    summary = score(result)
    assert summary["leaks"] == []
    assert summary["false_alarms"] == [], summary["false_alarms"]


def _run(name, lookahead_s, **kw):
    scenario = load_scenario(name)
    taps = []
    result = run_simulation(
        scenario,
        config_from_scenario(scenario),
        lookahead_s=lookahead_s,
        tap=lambda link, data: taps.append((link, data)),
        **kw,
    )
    return result, taps


def _assert_same_run(a, b):
    (ra, ta), (rb, tb) = a, b
    assert [e.to_json_dict() for e in ra.events] == [e.to_json_dict() for e in rb.events]
    assert ta == tb  # every tick's bytes, link by link
    assert ra.counters == rb.counters  # decoder and emulator counters
    ha, hb = ra.loop.to_json_dict(), rb.loop.to_json_dict()
    for k in ("ticks", "overruns", "samples", "samples_per_tick_max"):
        assert ha[k] == hb[k], k
    assert len(ra.trace) == len(rb.trace) > 0
    for f in ("t_s", *TRACE_FIELDS):
        assert np.array_equal(getattr(ra.trace, f), getattr(rb.trace, f), equal_nan=True), f
    assert list(ra.trace.regime) == list(rb.trace.regime)
    for k in (
        "t_s",
        "p_pa",
        "t_k",
        "mass_kg",
        "leak_kg_s",
        "leaked_kg",
        "inflowed_kg",
        "hatch_open",
    ):
        assert np.array_equal(getattr(ra.truth, k), getattr(rb.truth, k)), k
    assert ra.truth.faults == rb.truth.faults
    assert score(ra) | {"loop": None} == score(rb) | {"loop": None}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,kw",
    [
        # the leak opens at 3 h; ppm clocks at 10 Hz
        ("soyuz-ms09-2018", {"start_s": 10_740.0, "duration_s": 10_960.0}),
        # stuck, spike, step, drift and dropout; stopped early off a chunk's end
        ("sensor-faults", {"start_s": 1680.0, "duration_s": 2000.0, "stop_after": 1850.0}),
    ],
)
def test_look_ahead_gives_the_results_of_tick_by_tick(name, kw):
    """The emulator running 60 s (chunks end inside the run) or ``LOOKAHEAD_S`` (the
    default: one chunk, cut at the run's end) ahead changes nothing: events, bytes,
    counters, trace, truth and score are those of advancing it at every tick."""
    kw = dict(kw)
    stop_after = kw.pop("stop_after", None)
    runs = []
    for lookahead_s in (0.0, 60.0, LOOKAHEAD_S):
        clock = [0.0]
        extra = {}
        if stop_after is not None:
            extra = {
                "on_tick": lambda r, c=clock: c.__setitem__(0, r.t_s),
                "stop": lambda c=clock: c[0] >= stop_after,
            }
        runs.append(_run(name, lookahead_s, **kw, **extra))
    _assert_same_run(runs[0], runs[1])
    _assert_same_run(runs[0], runs[2])


@pytest.mark.slow
def test_look_ahead_only_where_nothing_can_change_the_bytes(monkeypatch):
    """link-faults corrupts bytes by time: tick by tick (and the same results)."""
    from hil.emulator import Emulator

    calls = []
    orig = Emulator.advance_frames
    monkeypatch.setattr(
        Emulator, "advance_frames", lambda self, b: calls.append(len(b)) or orig(self, b)
    )
    _assert_same_run(
        _run("link-faults", 0.0, start_s=590.0, duration_s=630.0),
        _run("link-faults", 60.0, start_s=590.0, duration_s=630.0),
    )
    assert calls == []
    _run("rapid-depress", 60.0, duration_s=150.0)
    assert calls == [60, 60, 30]  # 1 Hz: 60 ticks a chunk, the last one cut at the end


def _assert_trace_is_the_typed_estimates(tr, ticks):
    """The trace ``run_simulation`` kept (rows built from the fit's arrays, once per
    fit) against each tick's typed estimates (``TickResult.volumes``), field by
    field, NaN for NaN; a volume without an estimate is NaN and UNKNOWN."""
    assert np.array_equal(tr.t_s, [t for t, _ in ticks])
    want = np.full((len(ticks), len(TRACE_FIELDS), len(tr.volumes)), np.nan)
    regimes = []
    for i, (_, vols) in enumerate(ticks):
        by_name = {v.volume: v for v in vols}
        regimes.append([by_name[n].regime.name if n in by_name else "UNKNOWN" for n in tr.volumes])
        for k, name in enumerate(tr.volumes):
            v = by_name.get(name)
            if v is None:
                continue
            slope = [w.dpdt_comp_pa_s for w in v.dpdt if w.window_s == v.best_window_s]
            want[i, :, k] = (
                v.mass_rate_kg_day,
                v.mass_rate_sigma_kg_day,
                v.hole_mm,
                v.pressure_pa,
                slope[0] if slope else np.nan,
                min(v.reserve_s_linear, v.reserve_s_orifice),
                float(v.state),
            )
    for f, col in zip(TRACE_FIELDS, want.transpose(1, 0, 2), strict=True):
        assert np.array_equal(getattr(tr, f), col, equal_nan=True), f
    assert list(tr.regime) == regimes


def test_trace_rows_of_quiet_ticks_from_the_fit_they_share():
    """Once all is quiet the core computes its estimates every ``quiet_period_s``
    and hands the same fit to the ticks between: the trace still has every
    tick's row, equal to each tick's typed estimates."""
    ticks, fits = [], []

    def on_tick(r):
        ticks.append((r.t_s, r.volumes))
        fits.append(r.volume_fit)

    scenario = load_scenario("nominal")
    result = run_simulation(
        scenario, config_from_scenario(scenario), duration_s=900.0, on_tick=on_tick
    )
    assert len(result.trace) == len(ticks) == 900
    shared = sum(a is b for a, b in zip(fits[:-1], fits[1:], strict=True))
    assert shared > 200  # ticks that reused the previous tick's fit
    assert np.isfinite(result.trace.mass_rate_kg_day[-1]).all()
    _assert_trace_is_the_typed_estimates(result.trace, ticks)


def test_estimate_trace_interface():
    """Arrays grown in blocks behind the list-like interface scoring and plots use."""
    ticks = []  # (t_s, volume estimates) of every tick, as the core gave them
    last = []  # the last tick's result

    def on_tick(r):
        ticks.append((r.t_s, r.volumes))
        last[:] = [r]

    result, _ = _run("rapid-depress", 60.0, duration_s=160.0, on_tick=on_tick)
    tr = result.trace
    assert len(tr) == len(tr.t_s) == 160 and tr.t_s[0] == 1.0 and tr.t_s[-1] == 160.0
    assert tr.mass_rate_kg_day.shape == (160, 3) and tr.volumes == ["usos", "node3", "rs"]
    assert tr.at(150.5) == 149 and tr.at(0.5) is None
    _assert_trace_is_the_typed_estimates(tr, ticks)
    # a row per record, the regime's name per volume; 40 s after the hole opened node3
    # has not decayed enough (regime_min_decay) to tell an orifice from a crack
    assert list(tr.regime) == [[v.regime.name for v in vols] for _, vols in ticks]
    assert tr.regime[-1] == ["UNKNOWN", "UNKNOWN", "UNKNOWN"]
    assert len(tr.regime) == 160 and tr.regime[:2][1] == tr.regime[1]
    # every regime comes back under its own name and volume, whichever appeared first
    (r,) = last
    rows = [
        [Regime.CRACK, Regime.UNKNOWN, Regime.ORIFICE],
        [Regime.ORIFICE, Regime.CRACK, Regime.UNKNOWN],
        [Regime.UNKNOWN, Regime.ORIFICE, Regime.CRACK],
    ]
    mixed = EstimateTrace(tr.volumes)
    for k, row in enumerate(rows):
        by_name = dict(zip(tr.volumes, row, strict=True))
        regime = tuple(by_name[n] for n in r.layout.volume_names)
        fit = dataclasses.replace(r.volume_fit, regime=regime)
        mixed.record(SimpleNamespace(t_s=r.t_s + k, volume_fit=fit, layout=r.layout))
    assert list(mixed.regime) == [[r.name for r in row] for row in rows]
    assert mixed.regime[1:] == [[r.name for r in row] for row in rows[1:]]
    # without a trace (alarm-only runs) the score is the same
    bare = run_simulation(result.scenario, result.config, duration_s=160.0, record_trace=False)
    assert len(bare.trace) == 0 and not bare.trace.regime
    assert [e.to_json_dict() for e in bare.events] == [e.to_json_dict() for e in result.events]


def test_on_samples_gives_what_the_tapped_bytes_decode_to():
    """``on_samples`` hands on, per link and tick, the records the link's decoder
    made of the bytes ``tap`` saw: what a second decoder of those bytes gives."""
    from drivers.decoder import StreamDecoder

    tapped, got = [], []
    scenario = load_scenario("rapid-depress")
    run_simulation(
        scenario,
        config_from_scenario(scenario),
        duration_s=120.0,
        tap=lambda link, data: tapped.append((link, data)),
        on_samples=lambda link, recs, t_s: got.append((link, recs.copy(), t_s)),
    )
    decoders: dict = {}
    mine = []
    for link, data in tapped:
        recs = decoders.setdefault(link, StreamDecoder()).feed(data).samples
        if len(recs):
            mine.append((link, recs))
    assert len(got) == len(mine) > 100
    assert [t for _, _, t in got] == sorted(t for _, _, t in got)
    for (la, ra, _), (lb, rb) in zip(got, mine, strict=True):
        assert la == lb and ra.dtype == rb.dtype and np.array_equal(ra, rb)
