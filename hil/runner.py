"""The loop that runs an Emulator against endpoints, paced to wall time or flat out.

- ``speed`` X > 0: simulated time follows ``X * wall time``; each tick advances the
  emulator to the wall-clock target and hands each link its block.  A tick is
  20 ms of wall time, shorter when fast (``tick_seconds``) so that no block holds
  more than ``MAX_BURST_SIM_S`` of simulated time: a monitor ticking once a
  (simulated) second must not get two seconds of samples at once and then none.
- ``speed`` None (``--speed max``): a capture file takes blocks as fast as they are
  made; a pty, TCP or serial endpoint gets the next block only when it has sent the
  last one (and, for TCP, when a client is connected): as fast as the reader takes it.

Host bytes are read every tick (select on every endpoint) and passed to
``Emulator.receive``.  Scheduled link disconnects cut the blocks at their times
and close/reopen the endpoint.  ``stop`` (a threading.Event, set by SIGTERM or
Ctrl-C) ends the run cleanly.
"""

from __future__ import annotations

import math
import select
import threading
import time
from dataclasses import dataclass, field

from hil.emulator import Emulator
from hil.endpoints import Endpoint, FileEndpoint
from hil.truth import TruthWriter

TICK_S = 0.02
MIN_TICK_S = 0.002
MAX_BURST_SIM_S = 0.25
LINGER_S = 0.5
MAX_BLOCK_FRAMES = 200_000


@dataclass
class RunStats:
    sim_s: float = 0.0
    wall_s: float = 0.0
    blocks: int = 0
    link_events: list = field(default_factory=list)

    @property
    def speed(self) -> float:
        return self.sim_s / self.wall_s if self.wall_s > 0 else math.inf


def tick_seconds(speed: float | None) -> float:
    """Wall seconds between writes at ``speed`` x real time (None: flat out)."""
    if not speed:
        return TICK_S
    return min(TICK_S, max(MIN_TICK_S, MAX_BURST_SIM_S / speed))


def burst_sim_seconds(speed: float) -> float:
    """Simulated seconds a reader may get at once at ``speed`` x real time."""
    return tick_seconds(speed) * speed


def quiet_sim_seconds(speed: float) -> float:
    """Simulated seconds a reader may hear nothing at ``speed`` x real time: a burst,
    three 20 ms scheduling hiccups of a shared machine in a row, and half a second
    (what a monitor's staleness test must allow)."""
    return burst_sim_seconds(speed) + 3 * TICK_S * speed + 0.5


def block_seconds(emu: Emulator, live: bool) -> float:
    """Simulated seconds per block: at most MAX_BLOCK_FRAMES frames (fewer when live)."""
    rate = sum(s.cfg.rate_hz for s in emu.sensors) or 1.0
    frames = MAX_BLOCK_FRAMES if not live else 200  # live: 7 KB, under a pty's fill level
    return max(0.05, min(3600.0, frames / rate))


def fast_forward(emu: Emulator, t_s: float, stop: threading.Event | None = None) -> None:
    """Run to ``t_s`` with no endpoint: the bytes and truth of (t, t_s] are dropped.

    What ``--start`` does: the scenario plays from 0 (sensors power up, leaks
    start, hatches move), and serving begins at ``t_s``."""
    block = block_seconds(emu, live=False)
    while emu.t_s < t_s and not (stop is not None and stop.is_set()):
        emu.advance(min(emu.t_s + block, t_s))
        emu.drain_truth()
    emu.restart_truth_at(t_s)


def run(
    emu: Emulator,
    endpoints: dict[str, Endpoint],
    duration_s: float,
    speed: float | None = None,
    truth: TruthWriter | None = None,
    stop: threading.Event | None = None,
    on_event=None,
    control=None,
) -> RunStats:
    """Run ``emu`` to ``duration_s`` against ``endpoints``; ``control()``, if given, is
    called on this thread at every turn before the emulator advances (the crew's
    hatch commands, ``hil.control``)."""
    stop = stop or threading.Event()
    stats = RunStats()
    files_only = all(isinstance(ep, FileEndpoint) for ep in endpoints.values())
    block_s = block_seconds(emu, live=not files_only)
    events = [e for e in emu.link_events() if e.t_s <= duration_s]
    ev_i = 0
    while ev_i < len(events) and events[ev_i].t_s <= emu.t_s:
        ev_i += 1
    tick_s = tick_seconds(speed)
    wall0 = time.monotonic()
    sim0 = emu.t_s
    while emu.t_s < duration_s and not stop.is_set():
        if control is not None:
            control()
        # host to device
        for link, ep in endpoints.items():
            data = ep.read()
            if data:
                emu.receive(link, data)
        if speed is None:
            ready = files_only or all(ep.idle() and ep.connected for ep in endpoints.values())
            target = min(emu.t_s + block_s, duration_s) if ready else emu.t_s
        else:
            target = min(sim0 + (time.monotonic() - wall0) * speed, duration_s)
        event = None
        if ev_i < len(events) and events[ev_i].t_s <= target:
            event = events[ev_i]
            target = event.t_s
        if target > emu.t_s or event is not None:
            out = emu.advance(target)
            stats.blocks += 1
            for link, data in out.items():
                endpoints[link].write(data)
            if truth is not None:
                series = emu.drain_truth()
                if series is not None:
                    truth.write(series)
        if event is not None:
            ev_i += 1
            ep = endpoints[event.link]
            if event.up:
                ep.reconnect()
            else:
                ep.disconnect()
            stats.link_events.append(event)
            if on_event is not None:
                on_event(event, ep)
        if files_only:
            continue
        for ep in endpoints.values():
            ep.flush()
        idle = _all_idle(endpoints)
        if speed is None and idle and all(ep.connected for ep in endpoints.values()):
            timeout = 0.0  # flat out: the next block at once
        else:
            timeout = tick_s if idle else min(tick_s, 0.003)  # bytes wait for room: look soon
        held = [t for ep in endpoints.values() if (t := ep.next_release_s()) is not None]
        if held:  # a half-duplex reply leaves when its last byte is off the wire
            timeout = min(timeout, *held)
        _wait(endpoints, timeout)
    stats.sim_s = emu.t_s - sim0
    stats.wall_s = time.monotonic() - wall0
    # let the last bytes out, and a pty's reader take them before it closes (bounded)
    t_end = time.monotonic() + 2.0
    while (
        not files_only
        and not stop.is_set()
        and time.monotonic() < t_end
        and (not _all_idle(endpoints) or any(ep.unread_bytes() for ep in endpoints.values()))
    ):
        for ep in endpoints.values():
            ep.flush()
        _wait(endpoints, 0.01)
    # a client blocked in read(n, timeout) holds bytes it has taken but not yet
    # returned; closing now would lose them with its "no data" error: linger
    if not files_only and not stop.is_set() and any(ep.connected for ep in endpoints.values()):
        stop.wait(LINGER_S)
    return stats


def _all_idle(endpoints: dict[str, Endpoint]) -> bool:
    return all(ep.idle() for ep in endpoints.values())


def _wait(endpoints: dict[str, Endpoint], timeout: float) -> None:
    rfds = [fd for ep in endpoints.values() for fd in ep.read_fds()]
    wfds = [fd for ep in endpoints.values() if (fd := ep.write_fd()) is not None]
    if not rfds and not wfds:
        time.sleep(timeout)
        return
    try:
        select.select(rfds, wfds, [], timeout)
    except (OSError, ValueError):
        time.sleep(timeout)
