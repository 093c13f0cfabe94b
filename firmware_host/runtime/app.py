"""The monitor as it runs on a board: links -> loop -> core -> outputs, with an operator.

``MonitorApp(rc)`` opens every configured link with its driver (a raw capture
of every byte on the way in), sets up the transducers (IDENTIFY, SET_RATE,
START, again after every reconnect), runs the core on the fixed-rate loop at
wall-clock speed (or a scaled clock for a fast HIL bench) and feeds the
archive, the telemetry, the live display and systemd's watchdog.  Operators act
through the display's keys and the control socket (``cabinwatch ctl``).
SIGTERM and Ctrl-C stop it cleanly within 2 s: the loop's sleep is cut short,
it finishes its tick, the readers and session supervisors stop, then every
output is flushed and closed (a backstop forces the exit if that hangs).

One monitor per output directory (``instance.py``); each link hands the loop
at most ``drain_budget`` samples per tick, and a reader with more waiting
stops reading (back-pressure), so a flooded link cannot starve another link,
the loop or the control socket.

Every output (archive, telemetry, each link's capture) has an ``OutputGuard``:
a failing output (a full disk) never stops the loop; it buffers within its
bound and retries with backoff, and the loop turns its state into the ADVISORY
``OUTPUT_FAILED`` (``MonitorCore.report_output``) and one line on stderr.
Operator actions (acknowledgements, hatch and limit changes) are committed to
the archive and fsynced to the telemetry before the control socket answers.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable

from common.outputguard import OutputGuard
from drivers.capture import RotatingCapture
from drivers.driver import TransducerDriver
from drivers.families import FAMILIES
from drivers.frames import IdentityFrame
from drivers.polled import PollTarget
from drivers.session import DeviceConfig, SessionManager
from firmware_host.clock import Clock, InterruptibleSleep, WallClock
from firmware_host.core import MonitorCore, TickResult
from firmware_host.loop import RateLoop, SampleBatch
from firmware_host.runtime.archive import Archive
from firmware_host.runtime.control import ControlServer, apply_to_core
from firmware_host.runtime.display import LiveDisplay, View
from firmware_host.runtime.instance import InstanceLock
from firmware_host.runtime.runconfig import RuntimeConfig
from firmware_host.runtime.sdnotify import Notifier
from firmware_host.runtime.telemetry import TelemetryWriter

NS = 1_000_000_000
#: Control commands that change the monitor: recorded as operator actions.
OPERATOR_ACTIONS = {"ack": "key", "hatch": "name", "limits": "name"}
#: Samples a link may always hand the loop in one tick, however slow its sensors.
MIN_DRAIN_SAMPLES = 1000
#: A reader stops reading while this many ticks' budgets wait (back-pressure).
PAUSE_BUDGETS = 4
#: After SIGTERM/Ctrl-C, seconds before a close that hangs is cut short by os._exit.
BACKSTOP_S = 1.5


def drain_budget(link_rate_hz: float, loop_rate_hz: float) -> int:
    """Samples one link hands the loop per tick: 4 ticks' worth at its sensors'
    configured rate (Hz), and at least ``MIN_DRAIN_SAMPLES``."""
    return max(MIN_DRAIN_SAMPLES, math.ceil(4 * link_rate_hz / loop_rate_hz))


class ScaledClock:
    """Wall time run ``speed`` times faster, for an HIL bench with a sped-up emulator."""

    def __init__(self, speed: float, start_ns: int = 0):
        self.speed = float(speed)
        self._wall0 = time.monotonic_ns()
        self._start = int(start_ns)
        self._sleep = InterruptibleSleep()

    def now_ns(self) -> int:
        return self._start + int((time.monotonic_ns() - self._wall0) * self.speed)

    def from_monotonic_s(self, t_s: float) -> float:
        """This clock's time (s) at monotonic wall time ``t_s``."""
        return (self._start + (t_s * 1e9 - self._wall0) * self.speed) / NS

    def sleep_until_ns(self, deadline_ns: int) -> None:
        remaining = (deadline_ns - self.now_ns()) / self.speed
        if remaining > 0:
            self._sleep.sleep(remaining / NS)

    def interrupt(self) -> None:
        """End the current and every later sleep at once (SIGTERM)."""
        self._sleep.interrupt()


def _clock_from_monotonic(clock: Clock) -> Callable[[float], float]:
    """Maps the drivers' receive times (``time.monotonic``) onto the loop's clock."""
    if hasattr(clock, "from_monotonic_s"):
        return clock.from_monotonic_s
    return lambda t_s: t_s  # WallClock is monotonic time itself


class MonitorApp:
    """One monitor process; see the module docstring."""

    def __init__(
        self,
        rc: RuntimeConfig,
        *,
        clock: Clock | None = None,
        display: LiveDisplay | None = None,
        telemetry: TelemetryWriter | None = None,
        on_tick: Callable[[TickResult], None] | None = None,
        notifier: Notifier | None = None,
        title: str = "cabinwatch monitor",
    ):
        self.rc = rc
        # First of all: a second monitor on this output directory stops here, before
        # it touches the first one's archive, telemetry, captures, socket or ports.
        self.instance = InstanceLock.for_directory(rc.outputs.directory)
        self.instance.acquire()
        weakref.finalize(self, self.instance.release)  # also if the rest of __init__ fails
        self._closed = threading.Event()
        self.clock = clock or WallClock()
        self.display = display
        self.title = title
        self._extra_on_tick = on_tick
        self.notifier = notifier or Notifier()
        self.core = MonitorCore(rc.monitor)
        self.stop_event = threading.Event()
        out = rc.outputs
        #: every output's failure state, by the name its advisory carries
        self.guards: dict[str, OutputGuard] = {}
        self._reported: dict[str, str | None] = {}
        self.archive = None
        if out.archive:
            self.archive = Archive(out.archive, guard=self._guard("archive"))
        if telemetry is None and out.telemetry:
            telemetry = TelemetryWriter(
                out.telemetry, rate_hz=out.telemetry_rate_hz, guard=self._guard("telemetry")
            )
        elif telemetry is not None:
            telemetry.guard = telemetry.guard or OutputGuard("telemetry")
            self.guards["telemetry"] = telemetry.guard
        self.telemetry = telemetry
        self.ccsds = self._ccsds_writer() if out.ccsds else None
        self.control = ControlServer(out.control_socket) if out.control_socket else None
        self.station = self.station_feed = None
        if rc.station is not None:
            self._station_publisher()
        self.captures: dict[str, RotatingCapture] = {}
        self.drivers: dict[str, TransducerDriver] = {}
        self.budgets: dict[str, int] = {}
        self.sessions: dict[str, SessionManager] = {}
        self.link_events: list = []
        self._identities: dict[tuple[str, int], IdentityFrame] = {}
        self._last = None
        # Drivers keep their own timing (partial-frame timeouts, reconnect
        # backoff) on the wall clock, whatever the loop's clock runs at.
        self._to_loop_s = _clock_from_monotonic(self.clock)
        for name, link in rc.links.items():
            sink = None
            if out.capture:
                cap = RotatingCapture(
                    out.capture / name,
                    max_bytes=out.capture_max_bytes,
                    keep=out.capture_keep or None,
                    guard=self._guard(f"capture:{name}"),
                )
                self.captures[name] = cap
                sink = cap
            link_rate_hz = sum(s.rate_hz for s in rc.monitor.sensors if s.link == name)
            budget = drain_budget(link_rate_hz, rc.monitor.rate_hz)
            self.budgets[name] = budget
            family: dict = {}
            fam = FAMILIES[link.driver]
            if fam.polled:
                # polled: the schedule and the samples' times on the loop's clock
                family = dict(
                    targets=[
                        PollTarget(s.addr, s.rate_hz) for s in rc.monitor.sensors if s.link == name
                    ],
                    echo=link.echo,
                    reply_timeout_s=link.reply_timeout_s,
                    sample_clock=self._clock_s,
                    speed=float(getattr(self.clock, "speed", 1.0)),
                    **link.options,
                )
            driver_cls: type[TransducerDriver] = fam.load_driver()
            driver = driver_cls(
                name,
                link.url,
                baudrate=link.baudrate,
                clock=time.monotonic,
                raw_sink=sink,
                pause_above_samples=PAUSE_BUDGETS * budget,
                **family,
            )
            self.drivers[name] = driver
            if link.configure and link.driver == "native":
                devices = [
                    DeviceConfig(s.addr, int(round(s.rate_hz * 1000)))
                    for s in rc.monitor.sensors
                    if s.link == name
                ]
                self.sessions[name] = SessionManager(driver, devices)
        if self.archive is not None:
            self.archive.write_meta("config_source", rc.source)
            self.archive.write_meta("started_unix_s", time.time())
            self.archive.write_meta("links", {n: lk.url for n, lk in rc.links.items()})
            try:
                with open(rc.source, encoding="utf-8") as fh:
                    self.archive.write_meta("config_toml", fh.read())
            except (OSError, UnicodeDecodeError):
                pass
        self.loop = RateLoop(self.core, self.clock, rc.monitor.rate_hz, self._source, self._on_tick)

    def _ccsds_writer(self):
        """CCSDS packets to ``[outputs] ccsds`` (docs/ground.md); each sink guarded."""
        from firmware_host.ground.cuc import unix_to_gps_s
        from firmware_host.ground.layout import GroundLayout
        from firmware_host.ground.outputs import CcsdsWriter, open_sinks
        from firmware_host.ground.packets import PacketBuilder

        out = self.rc.outputs
        layout = GroundLayout.from_config(
            self.rc.monitor, apid_hk=out.ccsds_apid_hk, apid_events=out.ccsds_apid_events
        )
        # packet time: GPS time of this clock's zero, so t_s maps to the GPS epoch
        origin = unix_to_gps_s(time.time()) - self._clock_s()
        return CcsdsWriter(
            PacketBuilder(layout, gps_origin_s=origin),
            open_sinks(out.ccsds, out.directory, self.guards),
            rate_hz=out.ccsds_rate_hz,
            guards=self.guards,
            loop_health=lambda: self.loop.health(),
        )

    def _station_publisher(self) -> None:
        """``[station]``: the MQTT publisher (its own thread) and the loop's feed to it;
        a publisher that fails is the output ``station`` (docs/runtime.md)."""
        from common.station_wire import NodeStatus
        from firmware_host.runtime.station_feed import StationFeed
        from firmware_host.runtime.station_publisher import StationPublisher
        from firmware_host.runtime.station_session import next_session

        cfg = self.rc.station
        monitor = self.rc.monitor
        number = next_session(cfg.session_file, time.time)
        if number.problem is not None:
            _say(f"cabinwatch: station session: {number.problem}; using {number.session}")
        volumes = [v.name for v in monitor.volumes]
        birth = NodeStatus(
            node=cfg.node,
            session=number.session,
            online=True,
            t_unix=time.time(),
            version=_software_version(),
            volumes=tuple(volumes),
            hatches=tuple(h.name for h in monitor.hatches),
        )
        self.station = StationPublisher(cfg, birth, guard=self._guard("station"))
        self.station_feed = StationFeed(
            self.station.handoff,
            node=cfg.node,
            session=number.session,
            volumes=volumes,
            sensor_volumes={s.sensor_id: s.volume for s in monitor.sensors},
            active_alarms=self.core.active_alarms,
            hatch_open=lambda: self.core.hatch_open,
            unix_now=time.time,
            rate_hz=min(self.rc.outputs.telemetry_rate_hz, monitor.rate_hz),
        )

    def _clock_s(self) -> float:
        return self.clock.now_ns() / NS

    # -- outputs -----------------------------------------------------------
    def _guard(self, name: str) -> OutputGuard:
        guard = self.guards[name] = OutputGuard(name)
        return guard

    def _write(self, name: str, fn: Callable[..., object], *args) -> None:
        """``fn(*args)`` of output ``name``: whatever it raises is that output's failure."""
        self.guards[name].call(fn, *args)

    def _report_outputs(self, now_s: float) -> None:
        """Each output that failed or recovered since the last tick: its advisory
        (``OUTPUT_FAILED``) and a line on stderr (the journal under systemd)."""
        for name, guard in self.guards.items():
            error = guard.error
            if (error is None) == (self._reported.get(name) is None):
                continue
            self._reported[name] = error
            self.core.report_output(name, error, now_s)
            if error is None:
                _say(f"cabinwatch: output {name} written again")
            else:
                _say(f"cabinwatch: output {name} failed ({error}); monitoring continues, retrying")

    def _operator(self, request: dict, now_s: float, origin: str = "control") -> dict:
        """A control command applied to the core; one that changes the monitor is
        archived (committed) and written to the telemetry (fsynced) before its reply."""
        reply = self._command(request, now_s)
        cmd = request.get("cmd")
        if cmd in OPERATOR_ACTIONS:
            target = request.get(OPERATOR_ACTIONS[cmd])
            self._record_operator(
                now_s, origin, str(cmd), "*" if target is None else str(target), reply
            )
        return reply

    def _record_operator(
        self, now_s: float, origin: str, action: str, target: str, reply: dict
    ) -> None:
        ok = bool(reply.get("ok"))
        if self.archive is not None:
            self._write(
                "archive",
                self.archive.record_operator_action,
                now_s,
                origin,
                action,
                target,
                ok,
                reply,
            )
        if self.telemetry is not None:
            self._write(
                "telemetry",
                self.telemetry.record_operator_action,
                now_s,
                origin,
                action,
                target,
                ok,
                reply,
            )

    # -- the loop's source and listener ------------------------------------
    def _source(self, now_s: float) -> list[SampleBatch]:
        if self.control is not None:
            self.control.poll(lambda req: self._operator(req, now_s))
        if self.display is not None:
            self._keys(self.display.read_keys(), now_s)
        batches = []
        for name, driver in self.drivers.items():
            batch = driver.drain(max_samples=self.budgets[name])
            if len(batch.samples):
                t = now_s if batch.host_time_s is None else self._to_loop_s(batch.host_time_s)
                batches.append(SampleBatch(name, batch.samples, min(t, now_s)))
            for ev in batch.events:
                self.link_events.append(ev)
                kind = getattr(ev.kind, "name", str(ev.kind))
                detail = getattr(ev, "message", "")
                if self.archive is not None:
                    self._write(
                        "archive", self.archive.record_link_event, now_s, name, kind, detail
                    )
                if self.telemetry is not None:
                    self._write(
                        "telemetry", self.telemetry.record_link_event, now_s, name, kind, detail
                    )
            for frame in batch.frames:
                if isinstance(frame, IdentityFrame):
                    self._identity(now_s, name, frame)
        return batches

    def _command(self, request: dict, now_s: float) -> dict:
        """An operator command from the control socket; ``status`` adds links, loop, control."""
        reply = apply_to_core(self.core, request, now_s)
        if request.get("cmd") == "status" and reply.get("ok"):
            status = reply["status"]
            status["links"] = {n: d.health().to_json_dict() for n, d in self.drivers.items()}
            status["loop"] = self.loop.health().to_json_dict()
            if self.control is not None:
                status["control"] = self.control.health().to_json_dict()
        return reply

    def healthy(self) -> bool:
        """Every link's reader thread runs and the control thread beats (the watchdog's test)."""
        readers = all(d.health().reader_alive for d in self.drivers.values())
        return readers and (self.control is None or self.control.healthy())

    def _identity(self, now_s: float, link: str, frame: IdentityFrame) -> None:
        key = (link, frame.addr)
        if self._identities.get(key) == frame:
            return
        self._identities[key] = frame
        if self.archive is not None:
            self._write("archive", self.archive.record_identity, now_s, link, frame)

    def _keys(self, keys: str, now_s: float) -> None:
        hatches = list(self.core.hatch_open)
        for k in keys:
            if k in "aA":
                self._operator({"cmd": "ack"}, now_s, "keys")
            elif k.isdigit() and 1 <= int(k) <= len(hatches):
                name = hatches[int(k) - 1]
                is_open = not self.core.hatch_open[name]
                self._operator({"cmd": "hatch", "name": name, "open": is_open}, now_s, "keys")
            elif k in "qQ":
                self.stop_event.set()

    def _on_tick(self, result: TickResult) -> None:
        self._last = result
        if self.archive is not None:
            self._write("archive", self.archive.record_tick, result)
        if self.telemetry is not None:
            self._write("telemetry", self.telemetry.record_tick, result)
        if self.ccsds is not None:
            self._write("ccsds", self.ccsds.record_tick, result)
        if self.station_feed is not None:
            self._write("station", self.station_feed.record_tick, result)
        self._report_outputs(result.t_s)
        if self.display is not None:
            for ev in result.events:
                self.display.event(ev)
            if self.display.due():
                self.display.show(self.view())
        if self._extra_on_tick is not None:
            self._extra_on_tick(result)
        self.notifier.watchdog(self.healthy())

    def view(self) -> View:
        r = self._last
        links = {}
        for name, d in self.drivers.items():
            h = d.health()
            dec = h.decoder
            errs = dec.errors_total if dec is not None else 0
            links[name] = (
                f"{h.state.value} {h.samples_in} samples {errs} errors "
                f"{h.reconnects} reconnects {h.gaps} gaps"
            )
            bus = h.bus
            if bus is not None:  # a polled link: what the line achieves
                links[name] += (
                    f", {bus.poll_rate_hz:.1f}/{bus.target_rate_hz:g} Hz polled, "
                    f"line {100 * bus.line_utilisation:.0f} %, {bus.timeouts} timeouts, "
                    f"{bus.crc_errors} CRC, {sum(bus.exceptions.values())} exceptions"
                )
        lh = self.loop.health()
        loop = (
            f"{lh.ticks} ticks, late p50 {_ms(lh.lateness_p50_s)} p99 {_ms(lh.lateness_p99_s)}, "
            f"worst tick {_ms(lh.worst_tick_s)}, {lh.overruns} overruns"
        )
        return View(
            t_s=r.t_s if r else 0.0,
            title=self.title,
            volumes=r.volumes if r else (),
            sensors=r.sensors if r else (),
            hatches=dict(self.core.hatch_open),
            alarms=self.core.active_alarms(),
            links=links,
            loop=loop,
        )

    # -- running -----------------------------------------------------------
    def start(self) -> None:
        for driver in self.drivers.values():
            driver.start()
        for manager in self.sessions.values():
            manager.start()
        if self.station is not None:
            self._write("station", self.station_feed.start, self._clock_s())
            self._write("station", self.station.start)
        self.notifier.ready(f"monitoring {len(self.drivers)} link(s)")

    def run(self, *, until_s: float | None = None, stop: Callable[[], bool] | None = None):
        """Tick until ``until_s`` (clock seconds), ``stop()``, a signal or the q key."""

        def should_stop() -> bool:
            return self.stop_event.is_set() or (stop is not None and stop())

        return self.loop.run(until_s=until_s, stop=should_stop)

    def install_signal_handlers(self, backstop_s: float = BACKSTOP_S) -> None:
        """SIGTERM and Ctrl-C: stop after the current tick (the loop's sleep is cut
        short); if ``close()`` has not finished ``backstop_s`` seconds after the
        signal, the process exits anyway.  The handler takes no lock: it sets
        flags and writes to pipes only."""
        wake_r, wake_w = os.pipe()
        backstop = threading.Thread(
            target=self._backstop, args=(wake_r, backstop_s), name="cabinwatch-backstop"
        )
        backstop.daemon = True
        backstop.start()

        def handler(signum, frame) -> None:
            self.stop_event.set()
            interrupt = getattr(self.clock, "interrupt", None)
            if interrupt is not None:
                interrupt()
            try:
                os.write(wake_w, b"x")
            except OSError:
                pass

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _backstop(self, wake_r: int, backstop_s: float) -> None:
        try:
            os.read(wake_r, 1)  # until the first signal
        except OSError:
            return
        if self._closed.wait(backstop_s):
            return
        try:
            sys.stderr.write(
                f"{self.title}: still stopping {backstop_s} s after the signal; forced exit\n"
            )
            sys.stderr.flush()
        finally:
            os._exit(0)

    def close(self) -> None:
        self.notifier.stopping()
        # Readers and supervisors first, so nothing new arrives while outputs close:
        # ask every supervisor to stop, stop the links (which ends their waits), join.
        # The links stop side by side: closing a socket:// port sleeps 0.3 s in pyserial.
        for manager in self.sessions.values():
            manager.stop(timeout_s=0)
        stoppers = [
            threading.Thread(target=d.stop, name=f"stop-{n}", daemon=True)
            for n, d in self.drivers.items()
        ]
        if self.station is not None:  # its offline status, beside the links' stop
            stoppers.append(
                threading.Thread(
                    target=self._write,
                    args=("station", self.station.close),
                    name="stop-station",
                    daemon=True,
                )
            )
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout=1.0)
        for manager in self.sessions.values():
            manager.stop(timeout_s=0.5)
        if self.archive is not None:
            archive = self.archive
            self._write(
                "archive", archive.write_meta, "loop_health", self.loop.health().to_json_dict()
            )
            self._write(
                "archive",
                archive.write_meta,
                "link_health",
                {n: d.health().to_json_dict() for n, d in self.drivers.items()},
            )
            if self.station is not None:
                self._write(
                    "archive",
                    archive.write_meta,
                    "station_health",
                    self.station.health().to_json_dict(),
                )
            self._write("archive", archive.close)
            if archive.pending_rows:
                _say(
                    f"cabinwatch: archive {archive.path}: {archive.pending_rows} rows not "
                    f"written ({self.guards['archive'].error})"
                )
        if self.telemetry is not None:
            self._write(
                "telemetry", self.telemetry.record_loop, self._clock_s(), self.loop.health()
            )
            self._write("telemetry", self.telemetry.close)
        if self.ccsds is not None:
            self._write("ccsds", self.ccsds.close)
        for name, cap in self.captures.items():
            self._write(f"capture:{name}", cap.close)
        if self.control is not None:
            self.control.close()
        if self.display is not None:
            self.display.close()
        self.notifier.close()
        self.instance.release()
        self._closed.set()


def _say(line: str) -> None:
    """One line on stderr; a closed or full stderr is no reason to stop."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cabinwatch")
    except PackageNotFoundError:
        return "unknown"


def _ms(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 1000:.1f} ms"
