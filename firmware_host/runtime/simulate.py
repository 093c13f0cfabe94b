"""Emulator and monitor in one process, through the encoded byte stream (the CI path).

The emulator's bytes for every link go through the real decoder and the real
fixed-rate loop on a simulated clock, as fast as the machine allows.  The
scenario's hatch operations reach the monitor as operator inputs at their
times; the monitor never reads the emulator's truth, which is kept only to
score the run afterwards (``firmware_host.runtime.scoring``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from drivers.decoder import StreamDecoder
from drivers.frames import IdentityFrame
from firmware_host.alarms import AlarmEvent
from firmware_host.clock import SimClock
from firmware_host.config import MonitorConfig
from firmware_host.core import MonitorCore, TickResult
from firmware_host.loop import NS, LoopHealth, RateLoop, SampleBatch


@dataclass
class EstimateTrace:
    """Per-volume estimates sampled once per simulated second, for scoring and plots."""

    volumes: list[str]
    t_s: list[float] = field(default_factory=list)
    mass_rate_kg_day: list[list[float]] = field(default_factory=list)
    mass_rate_sigma_kg_day: list[list[float]] = field(default_factory=list)
    hole_mm: list[list[float]] = field(default_factory=list)
    pressure_pa: list[list[float]] = field(default_factory=list)
    dpdt_pa_s: list[list[float]] = field(default_factory=list)
    reserve_s: list[list[float]] = field(default_factory=list)
    regime: list[list[str]] = field(default_factory=list)

    def record(self, result: TickResult) -> None:
        by_name = {v.volume: v for v in result.volumes}
        vs = [by_name.get(name) for name in self.volumes]
        nan = math.nan
        self.t_s.append(result.t_s)
        self.mass_rate_kg_day.append([v.mass_rate_kg_day if v else nan for v in vs])
        self.mass_rate_sigma_kg_day.append([v.mass_rate_sigma_kg_day if v else nan for v in vs])
        self.hole_mm.append([v.hole_mm if v else nan for v in vs])
        self.pressure_pa.append([v.pressure_pa if v else nan for v in vs])
        self.dpdt_pa_s.append([_best_slope(v) if v else nan for v in vs])
        self.reserve_s.append(
            [min(v.reserve_s_linear, v.reserve_s_orifice) if v else nan for v in vs]
        )
        self.regime.append([v.regime.name if v else "UNKNOWN" for v in vs])

    def at(self, t_s: float) -> int | None:
        """Index of the last record at or before ``t_s``."""
        i = int(np.searchsorted(np.asarray(self.t_s), t_s, side="right")) - 1
        return i if i >= 0 else None


def _best_slope(v) -> float:
    for w in v.dpdt:
        if w.window_s == v.best_window_s:
            return w.dpdt_comp_pa_s
    return math.nan


class EmulatorSource:
    """The loop's sample source: advance the emulator to the tick time, decode its bytes.

    Operator inputs (the scenario's hatch operations) due by the tick time are
    handed to ``on_hatch`` first, as an operator at the console would.
    """

    def __init__(
        self,
        emulator,
        *,
        hatch_inputs: list[tuple[float, str, bool]] = (),
        on_hatch: Callable[[str, bool, float], None] | None = None,
        on_identity: Callable[[float, str, IdentityFrame], None] | None = None,
        tap: Callable[[str, bytes], None] | None = None,
    ):
        self.emulator = emulator
        self.decoders = {link: StreamDecoder() for link in emulator.links}
        self._hatch = sorted(hatch_inputs)
        self._next_hatch = 0
        self._on_hatch = on_hatch
        self._on_identity = on_identity
        self._tap = tap

    def __call__(self, now_s: float) -> list[SampleBatch]:
        while self._next_hatch < len(self._hatch) and self._hatch[self._next_hatch][0] <= now_s:
            t, name, is_open = self._hatch[self._next_hatch]
            self._next_hatch += 1
            if self._on_hatch is not None:
                self._on_hatch(name, is_open, now_s)
        out = self.emulator.advance(now_s)
        batches = []
        for link, decoder in self.decoders.items():
            data = out.get(link, b"")
            if self._tap is not None and data:
                self._tap(link, data)
            batch = decoder.feed(data, now_s) if data else decoder.poll(now_s)
            if len(batch.samples):
                batches.append(SampleBatch(link, batch.samples, now_s))
            if self._on_identity is not None:
                for _, frame in batch.frames:
                    if isinstance(frame, IdentityFrame):
                        self._on_identity(now_s, link, frame)
        return batches

    def counters(self) -> dict:
        return {link: d.counters().to_json_dict() for link, d in self.decoders.items()}


@dataclass
class SimulationResult:
    """Everything a simulated run produced."""

    scenario: object
    config: MonitorConfig
    sim_seconds: float
    events: list[AlarmEvent]
    trace: EstimateTrace
    truth: object  # hil.truth.TruthSeries
    loop: LoopHealth
    counters: dict


def run_simulation(
    scenario,
    config: MonitorConfig,
    *,
    duration_s: float | None = None,
    start_s: float = 0.0,
    seed: int | None = None,
    on_tick: Callable[[TickResult], None] | None = None,
    on_event: Callable[[AlarmEvent], None] | None = None,
    tap: Callable[[str, bytes], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> SimulationResult:
    """Run ``scenario`` against a monitor configured by ``config`` as fast as possible.

    With ``start_s`` the scenario plays from 0 without the monitor (sensors
    power up, leaks start, hatches move) and the monitor starts at ``start_s``
    with the hatches as they stand then; ``duration_s`` counts from 0.
    """
    from hil.emulator import Emulator
    from hil.runner import fast_forward
    from hil.truth import TruthSeries

    emulator = Emulator(scenario, seed=seed, truth_rate_hz=1.0)
    core = MonitorCore(config)
    hatch_inputs = scenario.hatch_events()
    if start_s > 0:
        fast_forward(emulator, start_s)
        for t, name, is_open in hatch_inputs:
            if t <= start_s:
                core.set_hatch(name, is_open, start_s)
        hatch_inputs = [h for h in hatch_inputs if h[0] > start_s]
    trace = EstimateTrace([v.name for v in config.volumes])
    events: list[AlarmEvent] = []
    truth_parts = []
    source = EmulatorSource(emulator, hatch_inputs=hatch_inputs, on_hatch=core.set_hatch, tap=tap)
    next_trace = [start_s]

    def tick(result: TickResult) -> None:
        if result.events:
            events.extend(result.events)
            if on_event is not None:
                for ev in result.events:
                    on_event(ev)
        if result.t_s >= next_trace[0]:
            next_trace[0] = math.floor(result.t_s) + 1.0
            trace.record(result)
            part = emulator.drain_truth()
            if part is not None and len(part):
                truth_parts.append(part)
        if on_tick is not None:
            on_tick(result)

    end_s = scenario.duration_s if duration_s is None else min(duration_s, scenario.duration_s)
    clock = SimClock(int(round(start_s * NS)))
    loop = RateLoop(core, clock, config.rate_hz, source, tick)
    # The first tick has a period of data.
    loop.start_ns = int(round(start_s * NS)) + int(round(NS / config.rate_hz))
    health = loop.run(until_s=end_s, stop=stop)
    part = emulator.drain_truth()
    if part is not None and len(part):
        truth_parts.append(part)
    truth = TruthSeries.concat(truth_parts) if truth_parts else None
    counters = {"decoder": source.counters(), "emulator": emulator.counters()}
    return SimulationResult(
        scenario=scenario,
        config=config,
        sim_seconds=end_s,
        events=events,
        trace=trace,
        truth=truth,
        loop=health,
        counters=counters,
    )
