"""The in-process HIL emulator: physics, transducers and links, no I/O, no wall clock.

    emu = Emulator(load_scenario("nominal"))
    out = emu.advance(60.0)        # {link: bytes} emitted in (previous t, 60 s]
    emu.receive("bus0", command)   # host-to-device bytes, answered in the next advance
    emu.truth()                    # a snapshot; emu.drain_truth() the series since last

Everything is deterministic for a seed: physics steps on its own adaptive grid
(independent of how ``advance`` is called), every sensor and link fault draws
from its own generator, and the samples of a block are produced and encoded
in bulk (one ``encode_samples`` call per link per block).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from common.gas import pressure_pa
from drivers.decoder import StreamDecoder
from drivers.encode import encode_samples
from drivers.frames import CommandFrame
from drivers.protocol import SAMPLE_FRAME_SIZE
from hil.faults import SensorFaults
from hil.linkfaults import LinkEvent, LinkFaultInjector
from hil.physics import Network
from hil.polled_lines import LINES
from hil.scenario import Scenario
from hil.sensors import EmulatedSensor
from hil.truth import Truth, TruthSeries, VolumeTruth


@dataclass
class LinkChunk:
    """One link's bytes of an advance: ``data`` (after link faults), the byte
    length of each frame in it, in order, and with ``advance_frames(bounds)``
    the index of the bound at which each frame would have been emitted
    (``release``, 0 for a plain ``advance``)."""

    data: bytes
    frame_len: np.ndarray
    release: np.ndarray

    def split(self, n_bounds: int) -> list[bytes]:
        """The bytes a call of ``advance`` at each of ``n_bounds`` bounds returns."""
        rel = self.release
        if not len(rel):
            return [b""] * n_bounds
        end = np.cumsum(self.frame_len)
        if np.all(rel[1:] >= rel[:-1]):  # frames in release order: slices
            cut = np.concatenate(([0], end))[
                np.searchsorted(rel, np.arange(n_bounds), side="right")
            ].tolist()
            start = [0, *cut[:-1]]
            data = self.data
            return [data[a:b] for a, b in zip(start, cut, strict=True)]
        # a frame released before one sorted ahead of it (clock rounding): gather
        begin = (end - self.frame_len).tolist()
        out: list[list[bytes]] = [[] for _ in range(n_bounds)]
        for i, a, b in zip(rel.tolist(), begin, end.tolist(), strict=True):
            out[i].append(self.data[a:b])
        return [b"".join(x) for x in out]


class _PolledDevice:
    """A polled device's state for ``Emulator.exchange``: its reboots applied so far,
    and the interval of request times [lo_s, hi_s) its ``latest`` is right for."""

    __slots__ = ("key", "device", "reboots", "reboots_done", "lo_s", "hi_s")

    def __init__(self, key, device, reboots, done: int):
        self.key = key
        self.device = device
        self.reboots = reboots
        self.reboots_done = done
        self.lo_s = self.hi_s = math.nan

    def load(self, conv: tuple[np.ndarray, ...], t_s: float) -> None:
        """Set the device's conversion to the latest at ``t_s`` (before the sensor's
        first one: that one; none yet: unchanged)."""
        ts, p, tc, st = conv
        n = len(ts)
        if not n:
            return
        j = int(np.searchsorted(ts, t_s, side="right"))
        i = max(0, j - 1)
        c = self.device.latest
        c.pressure_pa = float(p[i])
        c.temperature_c = float(tc[i])
        c.status = int(st[i])
        self.lo_s = -math.inf if j == 0 else float(ts[i])
        self.hi_s = float(ts[j]) if 0 < j < n else (float(ts[0]) if j == 0 else math.inf)


def _powered_at(s: EmulatedSensor, t_s: float) -> bool:
    """Whether ``s`` can answer at ``t_s`` of the last block (its state may already
    be past a later reboot of that block): on, not booting, not silent."""
    if t_s < s.cfg.power_on_s or s.faults.silent(t_s):
        return False
    boot = s.cfg.boot_s
    return not any(b <= t_s < b + boot for b in s.faults.reboot_times)


class Emulator:
    """A scenario running in simulated time.

    ``truth_rate_hz`` sets the regular truth records collected by ``advance`` and
    returned by ``drain_truth()`` (0 disables them).
    """

    def __init__(self, scenario: Scenario, seed: int | None = None, truth_rate_hz: float = 1.0):
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else int(seed)
        root = np.random.SeedSequence(self.seed)
        s_seeds = root.spawn(len(scenario.sensors))
        l_seeds = root.spawn(len(scenario.links))
        vidx = {v.name: i for i, v in enumerate(scenario.volumes)}
        probes = [(vidx[s.volume], s.lag_s, s.temp_lag_s) for s in scenario.sensors]
        self.net = Network(scenario, probes)
        self._cols = self.net.columns()
        self.links = [lk.name for lk in scenario.links]
        self.sensors: list[EmulatedSensor] = []
        self.by_link: dict[str, list[EmulatedSensor]] = {n: [] for n in self.links}
        protocol = {lk.name: lk.protocol for lk in scenario.links}
        for j, (cfg, ss) in enumerate(zip(scenario.sensors, s_seeds, strict=True)):
            faults = SensorFaults(
                [f for f in scenario.faults if f.sensor == cfg.name], boot_s=cfg.boot_s
            )
            if protocol[cfg.link] in LINES:
                cfg = dataclasses.replace(cfg, autostart=True)  # it converts continuously
            sensor = EmulatedSensor(cfg, j, ss, faults)
            self.sensors.append(sensor)
            self.by_link[cfg.link].append(sensor)
        #: polled links (KELLER bus, ...): the line's state machine, answered from
        #: the sensors' latest conversion (``hil.polled_lines``)
        self.polled: dict = {}
        self._epochs: dict[tuple[str, int], float] = {}
        for lk in scenario.links:
            if lk.protocol not in LINES:
                continue
            self.polled[lk.name] = LINES[lk.protocol](lk, self.by_link[lk.name])
            for s in self.by_link[lk.name]:
                self._epochs[(lk.name, s.cfg.addr)] = s.epoch_s
        self.injectors = {
            n: LinkFaultInjector(n, list(scenario.link_faults), ss)
            for n, ss in zip(self.links, l_seeds, strict=True)
        }
        self._decoders = {n: StreamDecoder(partial_timeout_s=0.5) for n in self.links}
        self._replies: dict[str, list[bytes]] = {n: [] for n in self.links}
        self.t_s = 0.0
        self.truth_rate_hz = float(truth_rate_hz)
        self._truth_k = 0  # next truth record at k / rate
        self._truth_parts: list[TruthSeries] = []
        self.frames_out = dict.fromkeys(self.links, 0)
        self.bytes_out = dict.fromkeys(self.links, 0)
        self.commands_in = dict.fromkeys(self.links, 0)
        self.host_bytes_dropped = dict.fromkeys(self.links, 0)
        #: after ``advance_frames``: the physics steps counted by each bound
        self.last_steps_at: np.ndarray | None = None
        #: set by a host that runs ahead: nothing may be sent to the emulator
        self.receive_locked = False
        #: ``serve_polled_in_time()``: polled links answer ``exchange`` at the request's
        #: own time from each sensor's conversions of the last block
        self.polled_in_time = False
        self._conv: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
        self._polled_state: dict[str, list[_PolledDevice]] = {}
        self._polled_by_addr: dict[str, dict[int, EmulatedSensor]] = {}
        #: hatches commanded at run time (``command_hatch``): (t_s, name, is_open)
        self.hatch_commands: list[tuple[float, str, bool]] = []

    # -- crew side
    def command_hatch(self, name: str, is_open: bool) -> float:
        """Open or close hatch ``name`` now, as a crew would (same effect as a
        scripted hatch event); returns the simulated time it takes effect (s):
        the physics' time, at most one physics step after ``t_s``.

        KeyError for an unknown hatch; RuntimeError while the emulator runs ahead.
        """
        if name not in self.net.hatch_names:
            raise KeyError(f"no hatch {name!r} (hatches: {', '.join(self.net.hatch_names)})")
        if self.receive_locked:
            raise RuntimeError("the emulator runs ahead of its host: it cannot take commands")
        t = self.net.command_hatch(name, bool(is_open))
        self.hatch_commands.append((t, name, bool(is_open)))
        return t

    # -- host side
    def receive(self, link: str, data: bytes) -> None:
        """Host-to-device bytes on ``link`` at the current time; COMMANDs are carried
        out now and answered (IDENTITY/ACK) at the start of the next ``advance``."""
        if link not in self._decoders:
            raise KeyError(f"no link {link!r}")
        if self.receive_locked:
            raise RuntimeError("the emulator runs ahead of its host: it cannot take commands")
        if not self.link_up(link):
            self.host_bytes_dropped[link] += len(data)
            return
        line = self.polled.get(link)
        if line is not None:
            sensors = {s.cfg.addr: s for s in self.by_link[link]}
            t = self.t_s
            before = line.counters.frames
            self._replies[link].extend(line.feed(data, t, lambda a: sensors[a].powered(t)))
            self.commands_in[link] += line.counters.frames - before
            return
        batch = self._decoders[link].feed(data, now_s=self.t_s)
        for item in batch.frames:
            # (offset, frame) pairs or bare frames, depending on the decoder version
            frame = item[-1] if isinstance(item, tuple) else item
            if not isinstance(frame, CommandFrame):
                continue
            self.commands_in[link] += 1
            for sensor in sorted(self.by_link[link], key=lambda s: s.cfg.addr):
                self._replies[link].extend(sensor.handle_command(frame, self.t_s))

    def serve_polled_in_time(self) -> None:
        """Answer the polled links through ``exchange`` (``cabinwatch simulate``): from
        now on every block keeps each polled sensor's conversions, so that a
        request at any time of the last block reads the conversion latest at
        that time, and a reboot power-cycles its device at the reboot's time."""
        if self.polled_in_time:
            return
        self.polled_in_time = True
        for link, line in self.polled.items():
            for s in self.by_link[link]:
                key = (link, s.cfg.addr)
                done = sum(1 for b in s.faults.reboot_times if b <= self.t_s)
                c = line.devices[s.cfg.addr].latest
                had = math.isfinite(c.pressure_pa)  # (none yet: the first one answers)
                self._conv[key] = (
                    np.array([-math.inf] if had else []),
                    np.array([c.pressure_pa] if had else []),
                    np.array([c.temperature_c] if had else []),
                    np.array([c.status] if had else [], dtype=np.int64),
                )
                self._polled_state.setdefault(link, []).append(
                    _PolledDevice(key, line.devices[s.cfg.addr], s.faults.reboot_times, done)
                )

    def exchange(self, link: str, data: bytes, t_s: float) -> bytes:
        """A polled link's request at simulated time ``t_s`` (at most the emulator's
        time, in its last block; it calls ``serve_polled_in_time``) -> the bytes the
        line sends back at once (echo, replies), after the link's faults; nothing
        while the link is down (the request is dropped and counted)."""
        if not self.polled_in_time:
            self.serve_polled_in_time()
        if not self.link_up(link, t_s):
            self.host_bytes_dropped[link] += len(data)
            return b""
        line = self.polled[link]
        sensors = self._polled_sensors(link)
        for st in self._polled_state[link]:
            reboots = st.reboots
            while st.reboots_done < len(reboots) and reboots[st.reboots_done] <= t_s:
                st.device.power_up()
                st.reboots_done += 1
            if not st.lo_s <= t_s < st.hi_s:  # another conversion than the last request's
                st.load(self._conv[st.key], t_s)
        before = line.counters.frames
        chunks = line.feed(data, t_s, lambda a: _powered_at(sensors[a], t_s))
        self.commands_in[link] += line.counters.frames - before
        if not chunks:
            return b""
        out = b"".join(chunks)
        inj = self.injectors[link]
        if inj.states:
            lens = np.array([len(c) for c in chunks], dtype=np.int64)
            off = np.concatenate(([0], np.cumsum(lens)[:-1]))
            out = inj.apply(out, off, np.full(len(chunks), t_s))
        self.frames_out[link] += len(chunks)
        self.bytes_out[link] += len(out)
        return out

    def _polled_sensors(self, link: str) -> dict[int, EmulatedSensor]:
        got = self._polled_by_addr.get(link)
        if got is None:
            got = self._polled_by_addr[link] = {s.cfg.addr: s for s in self.by_link[link]}
        return got

    # -- links
    def link_events(self) -> list[LinkEvent]:
        """Every scheduled disconnect (up=False) and reconnect (up=True), in time order."""
        ev = [e for inj in self.injectors.values() for e in inj.events()]
        return sorted(ev, key=lambda e: (e.t_s, e.up))

    def next_link_event(self, after_t_s: float | None = None) -> LinkEvent | None:
        t = self.t_s if after_t_s is None else after_t_s
        return next((e for e in self.link_events() if e.t_s > t), None)

    def link_up(self, link: str, t_s: float | None = None) -> bool:
        return self.injectors[link].is_up(self.t_s if t_s is None else t_s)

    def link_counters(self) -> dict[str, dict]:
        return {n: inj.counters.as_dict() for n, inj in self.injectors.items()}

    # -- time
    def advance(self, to_t_s: float) -> dict[str, bytes]:
        """Run to ``to_t_s``; the bytes each link emitted in (t_s, to_t_s]."""
        t0, t1 = self.t_s, float(to_t_s)
        if t1 <= t0:
            out = {n: b"".join(self._replies[n]) for n in self.links}
            for n in self.links:
                self._replies[n] = []
            return out
        return {link: chunk.data for link, chunk in self._run(t0, t1, None).items()}

    def can_look_ahead(self) -> bool:
        """Whether ``advance_frames`` can run ahead of the host: no link faults
        (they cut bytes by time), no host replies pending, and sample clocks exact
        (so the samples do not depend on how time is cut)."""
        return (
            not self.polled  # polled: every answer depends on the host's requests
            and not any(inj.states for inj in self.injectors.values())
            and not any(self._replies.values())
            and all(s.exact_clock() for s in self.sensors)
        )

    def advance_frames(self, bounds) -> dict[str, LinkChunk]:
        """Run to ``bounds[-1]`` at once, with the bytes of each link split as
        ``advance`` called at every one of the increasing ``bounds`` would have
        returned them, bit for bit (see ``LinkChunk``).

        Only when ``can_look_ahead()``, and nothing must reach the emulator
        (``receive``) before it gets to ``bounds[-1]``.
        """
        bounds = np.asarray(bounds, dtype=float)
        if not len(bounds) or bounds[0] <= self.t_s or np.any(np.diff(bounds) <= 0):
            raise ValueError("bounds must increase, after the emulator's time")
        if not self.can_look_ahead():
            raise RuntimeError(
                "link faults, pending replies or inexact clocks: advance step by step"
            )
        return self._run(self.t_s, float(bounds[-1]), bounds)

    def _run(self, t0: float, t1: float, bounds: np.ndarray | None) -> dict[str, LinkChunk]:
        self.net.run_until(t1)
        hist = self.net.history()
        c = self._cols
        grid_t = hist[:, 0]
        probe_p = hist[:, c["probe_p"]]
        probe_t = hist[:, c["probe_t"]]
        out: dict[str, LinkChunk] = {}
        for link in self.links:
            replies = self._replies[link]
            self._replies[link] = []
            blocks = [
                s.samples(t0, t1, grid_t, probe_p[:, s.probe], probe_t[:, s.probe], bounds)
                for s in self.by_link[link]
            ]
            blocks = [b for b in blocks if len(b.t_s)]
            if link in self.polled:
                self._convert(link, blocks)
                blocks = []  # a polled device only answers requests...
                emit = getattr(self.polled[link], "emit", None)
                if emit is not None:  # ...or streams when asked to (Digiquartz P4/P7)
                    by_addr = {s.cfg.addr: s for s in self.by_link[link]}
                    replies.extend(emit(t0, t1, lambda a, m=by_addr: m[a].powered(t1)))
            parts = [b"".join(replies)] if replies else []
            n_rep = len(replies)
            frame_t = [np.full(n_rep, t0)]
            lens = [np.array([len(r) for r in replies], dtype=np.int64)]
            release = None
            if blocks:
                ts = np.concatenate([b.t_s for b in blocks])
                order = np.argsort(ts, kind="stable")
                addr = np.concatenate([np.full(len(b.t_s), b.addr, np.uint8) for b in blocks])
                rec = encode_samples(
                    addr[order],
                    np.concatenate([b.seq for b in blocks])[order],
                    np.concatenate([b.t_us for b in blocks])[order],
                    np.concatenate([b.pressure_pa for b in blocks])[order],
                    np.concatenate([b.temperature_c for b in blocks])[order],
                    np.concatenate([b.status for b in blocks])[order],
                )
                parts.append(rec.tobytes())
                frame_t.append(ts[order])
                lens.append(np.full(len(ts), SAMPLE_FRAME_SIZE, np.int64))
                if bounds is not None:
                    release = np.concatenate([b.release for b in blocks])[order]
            data = b"".join(parts)
            nframes = sum(len(x) for x in frame_t)
            inj = self.injectors[link]
            if inj.states and data:
                ln = np.concatenate(lens)
                off = np.concatenate(([0], np.cumsum(ln)[:-1]))
                data = inj.apply(data, off, np.concatenate(frame_t))
            self.frames_out[link] += nframes
            self.bytes_out[link] += len(data)
            if release is None:
                release = np.zeros(nframes, dtype=np.int64)
            out[link] = LinkChunk(data, np.concatenate(lens), release)
        if self.truth_rate_hz > 0:
            self._collect_truth(t0, t1, hist)
        self.t_s = t1
        if bounds is not None:
            # physics steps ``advance(b)`` would have counted by each bound:
            # run_until(b) steps while the time is before b
            first = self.net.steps - (len(grid_t) - 1)  # steps before hist's first row
            self.last_steps_at = first + np.searchsorted(grid_t, bounds, side="left")
        self.net.trim(t1)
        return out

    def _convert(self, link: str, blocks: list) -> None:
        """Polled devices of ``link`` take their latest conversion from the blocks;
        one whose sensor rebooted (a new clock epoch) is power-cycled."""
        line = self.polled[link]
        if self.polled_in_time:
            for b in blocks:
                key = (link, b.addr)
                last = [a[-1:] for a in self._conv[key]]
                self._conv[key] = tuple(
                    np.concatenate((a, n))
                    for a, n in zip(
                        last,
                        (b.t_s, b.pressure_pa, b.temperature_c, b.status.astype(np.int64)),
                        strict=True,
                    )
                )
            for st in self._polled_state[link]:
                st.lo_s = st.hi_s = math.nan  # (new conversions: look again)
            return
        for s in self.by_link[link]:
            key = (link, s.cfg.addr)
            if s.epoch_s != self._epochs[key]:
                self._epochs[key] = s.epoch_s
                line.devices[s.cfg.addr].power_up()
        for b in blocks:
            c = line.devices[b.addr].latest
            c.pressure_pa = float(b.pressure_pa[-1])
            c.temperature_c = float(b.temperature_c[-1])
            c.status = int(b.status[-1])

    # -- truth
    def _interp_state(self, ts: np.ndarray, hist: np.ndarray) -> dict[str, np.ndarray]:
        """Truth at times ``ts`` from the physics records around them: mass log-linear
        (exact for exponential decay, constant for a sealed volume), temperature in
        closed form, pressure from the gas law."""
        c = self._cols
        grid = hist[:, 0]

        def interp(cols: np.ndarray) -> np.ndarray:
            return np.stack([np.interp(ts, grid, cols[:, i]) for i in range(cols.shape[1])], axis=1)

        out = {key: interp(hist[:, c[key]]) for key in ("rate", "leaked", "inflowed")}
        out["m"] = np.exp(interp(np.log(np.maximum(hist[:, c["m"]], 1e-300))))
        out["T"] = np.stack([self.net.thermal.series(i, ts) for i in range(self.net.nv)], axis=1)
        out["P"] = pressure_pa(out["m"], out["T"], self.net.vol)
        return out

    def _hatch_states(self, ts: np.ndarray) -> np.ndarray:
        sc = self.scenario
        out = np.zeros((len(ts), len(sc.hatches)), dtype=np.int64)
        for j, h in enumerate(sc.hatches):
            state = np.full(len(ts), int(h.open))
            changes = sorted(
                [*sc.hatch_events(), *self.hatch_commands], key=lambda e: e[0]
            )  # (stable: a scripted event before a command at the same time)
            for t_e, name, is_open in changes:
                if name == h.name:
                    state = np.where(ts >= t_e, int(is_open), state)
            out[:, j] = state
        return out

    def _faults_at(self, t: float) -> dict[str, list[str]]:
        out = {}
        for s in self.sensors:
            kinds = s.faults.active(t)
            if kinds:
                out[s.cfg.name] = kinds
        for n, inj in self.injectors.items():
            kinds = inj.active(t)
            if kinds:
                out[n] = kinds
        return out

    def _collect_truth(self, t0: float, t1: float, hist: np.ndarray) -> None:
        rate = self.truth_rate_hz
        k_end = math.floor(t1 * rate + 1e-9)
        if k_end < self._truth_k:
            return
        ks = np.arange(self._truth_k, k_end + 1)
        ts = ks / rate
        self._truth_k = k_end + 1
        st = self._interp_state(ts, hist)
        has_faults = bool(self.scenario.faults or self.scenario.link_faults)
        faults = [self._faults_at(t) for t in ts.tolist()] if has_faults else []
        self._truth_parts.append(
            TruthSeries(
                [v.name for v in self.scenario.volumes],
                [h.name for h in self.scenario.hatches],
                ts,
                st["P"],
                st["T"],
                st["m"],
                st["rate"],
                st["leaked"],
                st["inflowed"][:, 0],
                self._hatch_states(ts),
                faults,
            )
        )

    def restart_truth_at(self, t_s: float) -> None:
        """Collect the regular truth records again from ``t_s`` (not before ``t_s``
        itself: the record at exactly ``t_s`` comes with the next ``advance``)."""
        if self.truth_rate_hz > 0:
            self._truth_k = math.ceil(t_s * self.truth_rate_hz - 1e-9)

    def drain_truth(self) -> TruthSeries | None:
        """Truth records collected since the last call (None if there are none)."""
        parts, self._truth_parts = self._truth_parts, []
        if not parts:
            return None
        return TruthSeries.concat(parts)

    def truth(self) -> Truth:
        """The state at ``t_s``."""
        hist = self.net.history()
        ts = np.array([self.t_s])
        st = self._interp_state(ts, hist)
        names = [v.name for v in self.scenario.volumes]
        vols = {
            n: VolumeTruth(
                float(st["P"][0, i]),
                float(st["T"][0, i]),
                float(st["m"][0, i]),
                float(st["rate"][0, i]),
                float(st["leaked"][0, i]),
            )
            for i, n in enumerate(names)
        }
        hs = self._hatch_states(ts)[0]
        hatches = {h.name: bool(hs[j]) for j, h in enumerate(self.scenario.hatches)}
        return Truth(
            self.t_s,
            vols,
            hatches,
            self._faults_at(self.t_s),
            {n: self.link_up(n) for n in self.links},
            float(st["inflowed"][0, 0]),
            float(st["m"][0].sum()),
        )

    def counters(self) -> dict:
        return {
            "t_s": self.t_s,
            "physics_steps": self.net.steps,
            "frames_out": dict(self.frames_out),
            "bytes_out": dict(self.bytes_out),
            "commands_in": dict(self.commands_in),
            "host_bytes_dropped": dict(self.host_bytes_dropped),
            "links": self.link_counters(),
        }
