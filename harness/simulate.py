"""Emulator and monitor in one process, through the encoded byte stream (the CI path).

The emulator's bytes for every link go through the real decoder and the real
fixed-rate loop on a simulated clock, as fast as the machine allows.  The
scenario's hatch operations reach the monitor as operator inputs at their
times; the monitor never reads the emulator's truth, which is kept only to
score the run afterwards (``harness.scoring``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.errors import CabinwatchError, ConfigError
from common.growable import GrowableArray
from drivers.decoder import StreamDecoder
from drivers.families import FAMILIES
from drivers.frames import IdentityFrame
from drivers.polled import PolledDriver, PollTarget, SimulatedLine
from firmware_host.alarms import AlarmEvent
from firmware_host.clock import SimClock
from firmware_host.config import MonitorConfig
from firmware_host.core import MonitorCore, TickResult
from firmware_host.loop import NS, LoopHealth, RateLoop, SampleBatch

#: The per-volume float columns of an ``EstimateTrace``, in storage order.
TRACE_FIELDS = (
    "mass_rate_kg_day",
    "mass_rate_sigma_kg_day",
    "hole_mm",
    "pressure_pa",
    "dpdt_pa_s",
    "reserve_s",
    "state",
)

#: How far (simulated s) the emulator runs ahead of the monitor where it may
#: (``EmulatorSource.look_ahead``).  Each run ahead costs about 3 ms of numpy
#: calls for 16 sensors whatever its length: at 600 s that is negligible, at 60 s
#: 8 % of a run of ``nominal``; the bytes are held until their tick (about 30
#: bytes a sample).
LOOKAHEAD_S = 600.0


class _RegimeRows:
    """``EstimateTrace.regime``: a read-only sequence of rows (lists of regime names)."""

    def __init__(self, trace: EstimateTrace):
        self._trace = trace

    def __len__(self) -> int:
        return len(self._trace)

    def __getitem__(self, i):
        tr = self._trace
        names = tr._regime_names
        codes = tr._regime.array[i]
        if codes.ndim == 1:
            return [names[c] for c in codes.tolist()]
        return [[names[c] for c in row] for row in codes.tolist()]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


class EstimateTrace:
    """Per-volume estimates sampled once per simulated second, for scoring and plots.

    Stored in numpy arrays grown in blocks (a month of seconds for 8 volumes is
    about 1 GB, not the many of Python lists): ``t_s`` is a 1-D array and
    ``mass_rate_kg_day``, ``mass_rate_sigma_kg_day``, ``hole_mm``,
    ``pressure_pa``, ``dpdt_pa_s``, ``reserve_s``, ``state`` (``EstimateState``
    codes) are (records, volumes) arrays
    (views: ``trace.hole_mm[i][j]``); ``regime`` a sequence of rows of names.
    ``capacity`` reserves that many records up front.
    """

    def __init__(self, volumes: list[str], capacity: int = 0):
        self.volumes = list(volumes)
        cap = max(int(capacity), 64)
        self._t = GrowableArray((), np.float64, cap)
        self._vals = GrowableArray((len(TRACE_FIELDS), len(self.volumes)), np.float64, cap)
        self._regime = GrowableArray((len(self.volumes),), np.uint8, cap)
        self._regime_names: list[str] = []
        self._regime_code: dict[str, int] = {}
        self._fit = self._layout = self._row = None
        self._codes: list[int] = []

    def __len__(self) -> int:
        return len(self._t)

    def record(self, result: TickResult) -> None:
        """One row per tick.  Between two slow ticks the core hands out the same
        ``VolumeFit``, so the row is built once per fit, from its arrays (the
        values ``TickResult.volumes`` gives), and appended as it is."""
        fit = result.volume_fit
        if fit is not self._fit or result.layout is not self._layout or self._row is None:
            self._fit, self._layout = fit, result.layout
            self._row, self._codes = self._row_of(result.layout, fit)
        self._t.append(result.t_s)
        self._vals.append(self._row)
        self._regime.append(self._codes)

    def _code(self, name: str) -> int:
        code = self._regime_code.get(name)
        if code is None:
            code = self._regime_code[name] = len(self._regime_names)
            self._regime_names.append(name)
        return code

    def _row_of(self, layout, fit) -> tuple[np.ndarray, list[int]]:
        """The (fields, volumes) row and regime codes of ``fit`` (None: before the
        first slow tick, every volume unknown).  Per volume as ``VolumeEstimate``
        has it: the best window's compensated slope (NaN: no best window), the
        smaller reserve (``min`` of linear and orifice), the state's code."""
        row = np.full((len(TRACE_FIELDS), len(self.volumes)), math.nan)
        codes = []
        index = {} if fit is None else {n: i for i, n in enumerate(layout.volume_names)}
        for k, name in enumerate(self.volumes):
            v = index.get(name)
            if v is None:
                codes.append(self._code("UNKNOWN"))
                continue
            bj = int(fit.best_window[v])
            row[:, k] = (
                float(fit.mass_rate_kg_day[v]),
                float(fit.mass_rate_sigma_kg_day[v]),
                float(fit.hole_mm[v]),
                float(fit.pressure_pa[v]),
                float(fit.slope_comp_pa_s[bj, v]) if bj >= 0 else math.nan,
                min(float(fit.reserve_linear_s[v]), float(fit.reserve_orifice_s[v])),
                float(int(fit.state[v])),
            )
            codes.append(self._code(fit.regime[v].name))
        return row, codes

    @property
    def t_s(self) -> np.ndarray:
        return self._t.array

    def _field(self, k: int) -> np.ndarray:
        return self._vals.array[:, k, :]

    mass_rate_kg_day = property(lambda self: self._field(0))
    mass_rate_sigma_kg_day = property(lambda self: self._field(1))
    hole_mm = property(lambda self: self._field(2))
    pressure_pa = property(lambda self: self._field(3))
    dpdt_pa_s = property(lambda self: self._field(4))
    reserve_s = property(lambda self: self._field(5))
    #: ``EstimateState`` codes as floats (NaN: the volume had no estimate)
    state = property(lambda self: self._field(6))

    @property
    def regime(self) -> _RegimeRows:
        return _RegimeRows(self)

    def at(self, t_s: float) -> int | None:
        """Index of the last record at or before ``t_s``."""
        i = int(np.searchsorted(self.t_s, t_s, side="right")) - 1
        return i if i >= 0 else None


def protocols() -> tuple[str, ...]:
    """The protocols a scenario's links can be switched to (``with_protocol``): the
    families of ``drivers.families`` the emulator has devices for."""
    from hil.polled_lines import LINES

    return tuple(n for n, f in FAMILIES.items() if not f.polled or n in LINES)


def with_protocol(scenario, protocol: str):
    """``scenario`` with every link's devices speaking ``protocol`` (``protocols()``),
    for running one scenario over another transducer family; a polled
    family's links keep their baud rate and have no converter echo.

    Raises ``CabinwatchError`` (one line) for an unknown protocol, a sensor
    address the family does not allow, or a line too slow for its sensors'
    rates (the family's line budget).
    """
    known = protocols()
    if protocol not in known:
        raise CabinwatchError(f"--protocol: unknown protocol {protocol!r} ({', '.join(known)})")
    fam = FAMILIES[protocol]
    lo, hi = fam.addresses
    links = []
    for lk in scenario.links:
        sensors = [s for s in scenario.sensors if s.link == lk.name]
        for s in sensors:
            alone = fam.exclusive_addr is not None and s.addr == fam.exclusive_addr
            if not lo <= s.addr <= hi or (alone and len(sensors) > 1):
                raise CabinwatchError(
                    f"--protocol {protocol}: sensor {s.name} at address {s.addr} on link "
                    f"{lk.name}: not allowed ({protocol} addresses {lo}..{hi}"
                    + (f", {fam.exclusive_addr} only alone" if fam.exclusive_addr else "")
                    + ")"
                )
        if fam.polled and fam.budget is not None and sensors:
            budget = fam.budget(lk.name, [s.rate_hz for s in sensors], lk.baud, {})
            if not budget.fits:
                raise CabinwatchError(f"--protocol {protocol}: {budget.describe()}")
        links.append(dataclasses.replace(lk, protocol=protocol, echo=False, options={}))
    return dataclasses.replace(scenario, links=tuple(links))


def polled_drivers(
    emulator, targets: dict[str, list[PollTarget]] | None = None, t0_s: float = 0.0
) -> dict[str, PolledDriver]:
    """Each polled link of ``emulator``'s scenario read by its family's driver
    (``drivers.families``) on a ``SimulatedLine`` from ``t0_s``, whose requests
    the emulator answers at their time (``Emulator.exchange``).  ``targets``:
    per link the devices and rates to poll (default the scenario's sensors)."""
    if not getattr(emulator, "polled", None):
        return {}
    emulator.serve_polled_in_time()
    out: dict[str, PolledDriver] = {}
    for lk in emulator.scenario.links:
        if lk.name not in emulator.polled:
            continue
        if targets is not None and lk.name in targets:
            tg = list(targets[lk.name])
        else:
            tg = [
                PollTarget(s.addr, s.rate_hz)
                for s in emulator.scenario.sensors
                if s.link == lk.name
            ]
        if not tg:
            raise ConfigError(
                emulator.scenario.path, f"links.{lk.name}", "a polled link with no sensor to poll"
            )
        line = SimulatedLine(functools.partial(emulator.exchange, lk.name), t0_s)
        fam = FAMILIES[lk.protocol]
        cls = fam.load_driver()
        out[lk.name] = cls(
            lk.name,
            f"sim://{lk.name}",
            targets=tg,
            baudrate=lk.baud,
            echo=lk.echo,
            transport=line,
            **fam.monitor_options(lk.options),  # the family's own keys a monitor takes
        )
    return out


class EmulatorSource:
    """The loop's sample source: advance the emulator to the tick time, decode its bytes.

    Operator inputs (the scenario's hatch operations) due by the tick time are
    handed to ``on_hatch`` first, as an operator at the console would.

    Look-ahead (``look_ahead``, what ``run_simulation`` does): the emulator runs
    ``lookahead_s`` of simulated time at once, its bytes split by the tick at
    which a call of ``advance`` per tick would have emitted each frame, and each
    tick hands the decoder exactly those bytes: every ``feed`` gets the same
    bytes at the same tick, so everything downstream is the same, only with a
    fraction of the emulator's per-call cost.  It needs the ticks on a known grid
    and an emulator whose output nothing the host does can change (no link
    faults, no commands, no polled links: ``Emulator.can_look_ahead``);
    otherwise the emulator advances tick by tick.

    Polled links (``polled_drivers``): at each tick the emulator advances to
    the tick time, then each polled link's driver serves its devices up to it
    on its simulated line (``PolledDriver.poll_until``); the samples and
    IDENTITY frames of the transactions that ended by the tick go on as a
    native link's decoded ones do.  ``targets``: per polled link the devices
    and rates to poll (the monitor configuration's sensors; default the
    scenario's).

    ``tap`` gets each native link's bytes as they reach its decoder, and
    ``on_samples`` the SAMPLE records (``drivers.wire`` dtype) that decoder
    gave at the tick, with the tick time (s): what the monitor ingests.
    """

    def __init__(
        self,
        emulator,
        *,
        hatch_inputs: list[tuple[float, str, bool]] = (),
        on_hatch: Callable[[str, bool, float], None] | None = None,
        on_identity: Callable[[float, str, IdentityFrame], None] | None = None,
        tap: Callable[[str, bytes], None] | None = None,
        lookahead_s: float = LOOKAHEAD_S,
        targets: dict[str, list[PollTarget]] | None = None,
        on_samples: Callable[[str, np.ndarray, float], None] | None = None,
    ):
        self.emulator = emulator
        #: polled links (KELLER bus, ...): their family's driver on a ``SimulatedLine``
        self.polled = polled_drivers(emulator, targets, emulator.t_s)
        self._polled_t0 = emulator.t_s
        self.identities: dict[str, dict[int, IdentityFrame]] = {n: {} for n in self.polled}
        self.decoders = {
            link: StreamDecoder() for link in emulator.links if link not in self.polled
        }
        self._hatch = sorted(hatch_inputs)
        self._next_hatch = 0
        self._on_hatch = on_hatch
        self._on_identity = on_identity
        self._tap = tap
        self._on_samples = on_samples
        self.lookahead_s = float(lookahead_s)
        self._grid: tuple[int, int, float] | None = None  # start ns, period ns, until s
        self._k = 0  # grid index of the first tick not yet run by the emulator
        self._ticks: list[float] = []  # tick times run by the emulator, not all released
        self._steps: list[int] = []  # physics steps a per-tick advance counts by each
        self._pending: dict[str, list[tuple[bytes, int]]] = {}  # per tick: bytes, frames
        self._pos = 0  # first tick of _ticks not yet released
        self.ticks_released = 0

    @property
    def looking_ahead(self) -> bool:
        return self._grid is not None

    def look_ahead(self, start_ns: int, period_ns: int, until_s: float = math.inf) -> bool:
        """Run the emulator ahead on the ticks ``(start_ns + k period_ns) / NS`` (the
        loop's deadlines) up to ``until_s``; False (tick by tick) if it cannot."""
        if self.lookahead_s <= 0 or not self.emulator.can_look_ahead():
            return False
        self._grid = (int(start_ns), int(period_ns), float(until_s))
        self._k = 0
        self._pending = {link: [] for link in self.emulator.links}
        self.emulator.receive_locked = True
        return True

    def _run_ahead(self, now_s: float) -> None:
        """Run the emulator over the next ticks (at least to ``now_s``)."""
        start, period, until = self._grid
        n = max(1, int(round(self.lookahead_s * NS / period)))
        ticks: list[float] = []
        k = self._k
        while True:
            t = (start + k * period) / NS  # as RateLoop computes its tick time
            if ticks and (t > until + 1e-12 or (len(ticks) >= n and ticks[-1] >= now_s)):
                break
            ticks.append(t)
            k += 1
        self._k = k
        chunks = self.emulator.advance_frames(ticks)
        p = self._pos
        self._ticks = self._ticks[p:] + ticks
        self._steps = self._steps[p:] + self.emulator.last_steps_at.tolist()
        for link, pend in self._pending.items():
            ch = chunks[link]
            counts = np.bincount(ch.release, minlength=len(ticks)).tolist()
            self._pending[link] = pend[p:] + list(zip(ch.split(len(ticks)), counts, strict=True))
        self._pos = 0

    def _released(self, now_s: float) -> dict[str, bytes]:
        if not self._ticks or now_s > self._ticks[-1]:
            while not self._ticks or now_s > self._ticks[-1]:
                self._run_ahead(now_s)
        j = bisect_right(self._ticks, now_s)
        if j and self._ticks[j - 1] != now_s:
            raise RuntimeError(f"tick at {now_s!r} s is off the look-ahead grid")
        p = self._pos
        if j <= p:
            return {}
        self._pos = j
        self.ticks_released += j - p
        if j == p + 1:
            return {link: pend[p][0] for link, pend in self._pending.items()}
        return {link: b"".join(x[0] for x in pend[p:j]) for link, pend in self._pending.items()}

    def __call__(self, now_s: float) -> list[SampleBatch]:
        while self._next_hatch < len(self._hatch) and self._hatch[self._next_hatch][0] <= now_s:
            t, name, is_open = self._hatch[self._next_hatch]
            self._next_hatch += 1
            if self._on_hatch is not None:
                self._on_hatch(name, is_open, now_s)
        out = self._released(now_s) if self._grid is not None else self.emulator.advance(now_s)
        batches = []
        tap = self._tap
        on_identity = self._on_identity
        for link, driver in self.polled.items():
            driver.poll_until(now_s)
            got = driver.drain()
            if len(got.samples):
                batches.append(SampleBatch(link, got.samples, now_s))
            for frame in got.frames:
                if isinstance(frame, IdentityFrame):
                    self.identities[link][frame.addr] = frame
                    if on_identity is not None:
                        on_identity(now_s, link, frame)
        for link, decoder in self.decoders.items():
            data = out.get(link, b"")
            if tap is not None and data:
                tap(link, data)
            batch = decoder.feed(data, now_s) if data else decoder.poll(now_s)
            if len(batch.samples):
                batches.append(SampleBatch(link, batch.samples, now_s))
                if self._on_samples is not None:
                    self._on_samples(link, batch.samples, now_s)
            if on_identity is not None:
                for _, frame in batch.frames:
                    if isinstance(frame, IdentityFrame):
                        on_identity(now_s, link, frame)
        return batches

    def counters(self) -> dict:
        return {link: d.counters().to_json_dict() for link, d in self.decoders.items()}

    def polled_counters(self) -> dict:
        """Per polled link: its ``BusCounters`` (rates over the last 10 simulated s),
        the rate and utilisation over the whole run, and the devices identified."""
        out = {}
        for link, drv in self.polled.items():
            bus = drv.bus_counters().to_json_dict()
            span = drv.transport.now_s - self._polled_t0
            bus["run_s"] = span
            bus["mean_poll_rate_hz"] = bus["samples"] / span if span > 0 else 0.0
            bus["mean_line_utilisation"] = drv._busy_s / span if span > 0 else 0.0
            bus["baudrate"] = drv.baudrate
            bus["identified"] = [
                {"addr": f.addr, "model": f.model, "serial": f.serial}
                for _, f in sorted(self.identities[link].items())
            ]
            out[link] = bus
        return out

    def emulator_counters(self) -> dict:
        """``emulator.counters()`` as a tick-by-tick run would have left them at the
        last tick served (the emulator may have run past it)."""
        c = self.emulator.counters()
        if self._grid is None or self._pos >= len(self._ticks):
            return c
        p = self._pos
        if p == 0 and not self.ticks_released:
            return c  # nothing served: cannot tell (the loop never ticked)
        c["t_s"] = self._ticks[p - 1] if p else c["t_s"]
        if p:
            c["physics_steps"] = self._steps[p - 1]
        for link, pend in self._pending.items():
            c["frames_out"][link] -= sum(x[1] for x in pend[p:])
            c["bytes_out"][link] -= sum(len(x[0]) for x in pend[p:])
        return c

    def truth_limit_s(self) -> float | None:
        """The last tick served while looking ahead (truth past it is the emulator's
        running ahead), else None."""
        if self._grid is None or not self._pos:
            return None
        return self._ticks[self._pos - 1]


class _TruthStore:
    """Truth parts appended into arrays grown in blocks (no per-second objects)."""

    KEYS = ("t_s", "p_pa", "t_k", "mass_kg", "leak_kg_s", "leaked_kg", "inflowed_kg", "hatch_open")

    def __init__(self, capacity: int = 0):
        self._cap_hint = max(int(capacity), 64)
        self._arr: dict[str, GrowableArray] = {}
        self._n = 0
        self._faults: list = []
        self._names = None

    def append(self, part) -> None:
        m = len(part)
        if not m:
            return
        if self._names is None:
            self._names = (part.volume_names, part.hatch_names)
            for k in self.KEYS:
                a = getattr(part, k)
                self._arr[k] = GrowableArray(a.shape[1:], a.dtype, max(self._cap_hint, m))
        for k in self.KEYS:
            self._arr[k].extend(getattr(part, k))
        self._faults.extend(part.faults)
        self._n += m

    def series(self, k_last: int | None = None, rate_hz: float = 1.0):
        """The records (only those at or before record ``k_last`` if given)."""
        from hil.truth import TruthSeries

        if self._names is None:
            return None
        n = self._n
        if k_last is not None:
            n = int(np.searchsorted(self._arr["t_s"].array, k_last / rate_hz, side="right"))
        if not n:
            return None
        kw = {k: a.array[:n] for k, a in self._arr.items()}
        faults = self._faults[:n] if len(self._faults) > n else self._faults
        return TruthSeries(self._names[0], self._names[1], faults=faults, **kw)


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
    on_samples: Callable[[str, np.ndarray, float], None] | None = None,
    stop: Callable[[], bool] | None = None,
    lookahead_s: float = LOOKAHEAD_S,
    record_trace: bool = True,
    on_identity: Callable[[float, str, IdentityFrame], None] | None = None,
) -> SimulationResult:
    """Run ``scenario`` against a monitor configured by ``config`` as fast as possible.

    With ``start_s`` the scenario plays from 0 without the monitor (sensors
    power up, leaks start, hatches move) and the monitor starts at ``start_s``
    with the hatches as they stand then; ``duration_s`` counts from 0.

    The emulator runs ``lookahead_s`` ahead of the monitor where nothing the
    monitor does can change its output (``EmulatorSource``; 0: tick by tick):
    the results are the same either way, bit for bit.  ``record_trace=False``
    keeps no per-second estimates (an empty trace: for runs scored on their
    alarms only).  ``tap`` and ``on_samples``: each native link's bytes and
    decoded samples, per tick (``EmulatorSource``).
    """
    from hil.emulator import Emulator
    from hil.runner import fast_forward

    emulator = Emulator(scenario, seed=seed, truth_rate_hz=1.0)
    emulator.serve_polled_in_time()  # (polled links: answered at each request's time)
    core = MonitorCore(config)
    hatch_inputs = scenario.hatch_events()
    if start_s > 0:
        fast_forward(emulator, start_s)
        for t, name, is_open in hatch_inputs:
            if t <= start_s:
                core.set_hatch(name, is_open, start_s)
        hatch_inputs = [h for h in hatch_inputs if h[0] > start_s]
    end_s = scenario.duration_s if duration_s is None else min(duration_s, scenario.duration_s)
    n_seconds = max(0, int(end_s - start_s) + 2)
    trace = EstimateTrace(
        [v.name for v in config.volumes], capacity=min(n_seconds, 1 << 20) if record_trace else 0
    )
    events: list[AlarmEvent] = []
    truth = _TruthStore(capacity=min(n_seconds, 1 << 20))
    source = EmulatorSource(
        emulator,
        hatch_inputs=hatch_inputs,
        on_hatch=core.set_hatch,
        tap=tap,
        lookahead_s=lookahead_s,
        targets=_targets(config),
        on_identity=on_identity,
        on_samples=on_samples,
    )
    next_trace = [start_s]

    def tick(result: TickResult) -> None:
        if result.events:
            events.extend(result.events)
            if on_event is not None:
                for ev in result.events:
                    on_event(ev)
        if result.t_s >= next_trace[0]:
            next_trace[0] = math.floor(result.t_s) + 1.0
            if record_trace:
                trace.record(result)
            part = emulator.drain_truth()
            if part is not None:
                truth.append(part)
        if on_tick is not None:
            on_tick(result)

    clock = SimClock(int(round(start_s * NS)))
    loop = RateLoop(core, clock, config.rate_hz, source, tick)
    # The first tick has a period of data.
    loop.start_ns = int(round(start_s * NS)) + int(round(NS / config.rate_hz))
    source.look_ahead(loop.start_ns, loop.period_ns, end_s)
    health = loop.run(until_s=end_s, stop=stop)
    part = emulator.drain_truth()
    if part is not None:
        truth.append(part)
    limit = source.truth_limit_s()
    rate = emulator.truth_rate_hz
    k_last = None if limit is None else math.floor(limit * rate + 1e-9)
    counters = {"decoder": source.counters(), "emulator": source.emulator_counters()}
    if source.polled:
        counters["polled"] = source.polled_counters()
    return SimulationResult(
        scenario=scenario,
        config=config,
        sim_seconds=end_s,
        events=events,
        trace=trace,
        truth=truth.series(k_last, rate),
        loop=health,
        counters=counters,
    )


def _targets(config: MonitorConfig) -> dict[str, list[PollTarget]]:
    """The devices and rates the monitor configuration names, per link."""
    out: dict[str, list[PollTarget]] = {}
    for sensor in config.sensors:
        out.setdefault(sensor.link, []).append(PollTarget(sensor.addr, sensor.rate_hz))
    return out
