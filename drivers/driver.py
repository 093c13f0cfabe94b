"""Transducer drivers: the base owns the policy, a family's driver only translates.

Like python-can's ``BusABC`` (a public ``recv(timeout)`` that owns timeouts and
filtering over a driver's small ``_recv_internal``), ``TransducerDriver`` owns
everything a monitor relies on: the ``SerialLink`` and its reader thread,
reconnects, timeouts, counters, health, the raw-byte capture tap and the
hand-over of samples and frames between threads.  A transducer family
implements only:

* ``_decode(data, now_s) -> DecodeBatch``: bytes (any chunking) into SAMPLE
  records (``SAMPLE_RECORD_DTYPE``) and typed non-SAMPLE frames;
* ``_encode_command(cmd) -> bytes``: a ``CommandFrame`` into wire bytes;
* optionally ``_poll(now_s)`` (partial-frame timeouts when the line is idle),
  ``_reset(now_s)`` (drop partial state when the link is lost),
  ``_decoder_counters()`` and ``_on_connect()``.

All callbacks from the link run on its reader thread; the public methods are
thread-safe.  Times are seconds on the injected ``clock``.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from drivers.counters import DecoderCounters
from drivers.decoder import DecodeBatch, StreamDecoder
from drivers.frames import SAMPLE_RECORD_DTYPE, CommandFrame, Frame
from drivers.link import (
    Clock,
    LinkDownError,
    LinkEvent,
    LinkEventKind,
    LinkState,
    LinkStats,
    SerialLink,
)

__all__ = [
    "FrameSubscription",
    "LinkBatch",
    "LinkDownError",
    "LinkHealth",
    "NativeDriver",
    "TransducerDriver",
]

log = logging.getLogger(__name__)

#: Where every received chunk goes before decoding (e.g. a ``RotatingCapture``).
RawSink = Callable[[bytes, float], None]

_EMPTY_SAMPLES = np.empty(0, dtype=SAMPLE_RECORD_DTYPE)
_EMPTY_BATCH_FRAMES: list = []
_LINK_STATS_FIELDS = tuple(f.name for f in dataclasses.fields(LinkStats))


@dataclass(frozen=True, slots=True)
class LinkBatch:
    """Everything one link received since the previous ``drain()``.

    ``samples``: SAMPLE records (``SAMPLE_RECORD_DTYPE``) in stream order;
    ``host_time_s``: receive time of the last chunk that produced anything
    (None if nothing came); ``frames``: non-SAMPLE frames in stream order;
    ``events``: connection events in time order.
    """

    link: str
    samples: np.ndarray
    host_time_s: float | None
    frames: list[Frame] = field(default_factory=list)
    events: list[LinkEvent] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples) + len(self.frames) + len(self.events)


@dataclass(frozen=True, slots=True)
class LinkHealth(LinkStats):
    """One driver's health: its link's ``LinkStats``, traffic, decoder counters.

    ``healthy`` is True when the reader thread runs and the link is connected;
    ``last_rx_s`` (when bytes last came) tells a silent line from a dead one.
    ``samples_waiting``: samples received and not yet drained;
    ``overflow_pauses``: times the reader stopped reading because too many
    waited (``pause_above_samples``).  Durations in seconds, times on the
    driver's clock.
    """

    samples_in: int
    frames_in: int
    commands_sent: int
    samples_dropped: int
    frames_dropped: int
    sink_errors: int
    decoder: DecoderCounters | None
    samples_waiting: int = 0
    overflow_pauses: int = 0
    bus: object | None = None  # a polled link's ``drivers.polled.BusCounters``

    @property
    def healthy(self) -> bool:
        return self.reader_alive and self.state is LinkState.CONNECTED

    def to_json_dict(self) -> dict:
        out = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__  # type: ignore[attr-defined]
            if name not in ("state", "decoder", "bus")
        }
        out["state"] = self.state.value
        out["healthy"] = self.healthy
        out["decoder"] = self.decoder.to_json_dict() if self.decoder is not None else None
        if self.bus is not None:
            out["bus"] = self.bus.to_json_dict()  # type: ignore[attr-defined]
        return out


class FrameSubscription:
    """Frames matching a predicate, queued from the moment of subscribing.

    Subscribe *before* sending the command whose answer you expect, so that a
    fast answer is never missed.  Use as a context manager.
    """

    def __init__(self, driver: TransducerDriver, predicate: Callable[[Frame], bool]):
        self._driver = driver
        self.predicate = predicate
        self._queue: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()

    def _offer(self, frame: Frame) -> None:
        if self.predicate(frame):
            with self._cond:
                self._queue.append(frame)
                self._cond.notify_all()

    def get(self, timeout_s: float) -> Frame | None:
        """The next matching frame, waiting up to ``timeout_s`` seconds; None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue, max(0.0, timeout_s)):
                return None
            return self._queue.popleft()

    def close(self) -> None:
        self._driver._unsubscribe(self)

    def __enter__(self) -> FrameSubscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TransducerDriver(abc.ABC):
    """A link to one or more transducers of one family, with the policy in the base.

    ``name``: the link's name in events and health; ``url``: any pyserial port
    or URL; ``raw_sink(data, now_s)`` receives every chunk before decoding.
    ``max_pending_samples`` / ``max_pending_frames`` bound what waits for
    ``drain()`` / ``recv()``; beyond them the oldest are dropped and counted.
    ``pause_above_samples`` (None: never) applies back-pressure instead: while
    that many samples wait, the reader stops reading (the bytes wait in the
    kernel and the sender slows down) until ``drain()`` takes them below half
    of it; each stop is an ``overflow_pause``.  A flooded link then costs its
    reader no more than the consumer takes.
    ``link_options`` go to ``SerialLink`` (``backoff_min_s``, ``backoff_max_s``,
    ``idle_s``, ``read_size``, ...).
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        baudrate: int = 115200,
        clock: Clock = time.monotonic,
        raw_sink: RawSink | None = None,
        max_pending_samples: int = 1_000_000,
        max_pending_frames: int = 10_000,
        pause_above_samples: int | None = None,
        **link_options,
    ):
        self.name = name
        self.url = url
        self.clock = clock
        self.raw_sink = raw_sink
        self.max_pending_samples = max_pending_samples
        self.max_pending_frames = max_pending_frames
        self.pause_above_samples = pause_above_samples
        self.link = SerialLink(
            url,
            name=name,
            baudrate=baudrate,
            clock=clock,
            on_data=self._on_data,
            on_event=self._on_event,
            on_idle=self._on_idle,
            **link_options,
        )
        self._lock = threading.Lock()  # pending drain state, recv queue, counters
        self._decode_lock = threading.Lock()  # the family's decoder state
        self._recv_cond = threading.Condition(self._lock)
        self._pending_samples: list[np.ndarray] = []
        self._pending_n = 0
        self._pending_frames: list[Frame] = []
        self._pending_events: list[LinkEvent] = []
        self._host_time_s: float | None = None
        self._recv_queue: collections.deque[Frame] = collections.deque()
        self._subs: list[FrameSubscription] = []
        self._seq: dict[int, int] = {}
        self._gen_cond = threading.Condition()
        self._samples_in = 0
        self._frames_in = 0
        self._commands_sent = 0
        self._samples_dropped = 0
        self._frames_dropped = 0
        self._sink_errors = 0
        self._overflow_pauses = 0
        self._room = threading.Condition(self._lock)  # drain() made room / stopping
        self._stopping = False

    # -- what a transducer family implements --------------------------------
    @abc.abstractmethod
    def _decode(self, data: bytes, now_s: float) -> DecodeBatch:
        """Bytes received at ``now_s`` -> the SAMPLE records and frames they completed."""

    @abc.abstractmethod
    def _encode_command(self, cmd: CommandFrame) -> bytes:
        """A command -> the bytes to write."""

    def _poll(self, now_s: float) -> DecodeBatch | None:
        """The line is idle at ``now_s``: apply partial-frame timeouts (optional)."""
        return None

    def _reset(self, now_s: float) -> DecodeBatch | None:
        """The link was lost: drop partial-frame state, return what it still completes."""
        return None

    def _decoder_counters(self) -> DecoderCounters | None:
        """The family decoder's counters, if it keeps any."""
        return None

    def _on_connect(self) -> None:  # noqa: B027 - optional hook
        """Called on the reader thread after each (re)connect; must not wait for answers.

        ``connection_generation`` is 1 on the first connect and grows by one on
        each reconnect.  Sessions re-identify from their own thread.
        """

    # -- public: lifecycle ----------------------------------------------------
    def start(self) -> None:
        """Start the link (opens the port in the background, reconnects on loss)."""
        with self._lock:
            self._stopping = False
        self.link.start()

    def stop(self) -> None:
        """Stop the link and close the port; idempotent (a paused reader is released first)."""
        with self._lock:
            self._stopping = True
            self._room.notify_all()
        self.link.stop()
        with self._gen_cond:
            self._gen_cond.notify_all()

    def __enter__(self) -> TransducerDriver:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def state(self) -> LinkState:
        return self.link.state

    def ensure_running(self) -> bool:
        """Restart the reader thread if it died (``drain``/``recv`` do this); True if it had to."""
        return self.link.ensure_running()

    @property
    def connection_generation(self) -> int:
        """Number of successful opens so far: changes on every (re)connect."""
        return self.link.connects

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until the link is connected (True) or ``timeout_s`` passes (False)."""
        return self.link.wait_state(LinkState.CONNECTED, timeout_s)

    def wait_generation_change(self, known: int, timeout_s: float) -> int:
        """Wait until ``connection_generation`` differs from ``known`` or the timeout; return it."""
        with self._gen_cond:
            self._gen_cond.wait_for(
                lambda: self.link.connects != known or self.link.state is LinkState.STOPPED,
                timeout_s,
            )
        return self.link.connects

    # -- public: data ---------------------------------------------------------
    def drain(self, max_samples: int | None = None) -> LinkBatch:
        """What was received since the last call; never blocks on the link.

        ``max_samples`` bounds the samples taken (the oldest first); the rest
        wait for the next call (``samples_waiting``).  Frames and events are
        always all taken.
        """
        self.ensure_running()
        with self._lock:
            if max_samples is None or self._pending_n <= max_samples:
                chunks, self._pending_samples = self._pending_samples, []
                self._pending_n = 0
                host_time_s = self._host_time_s
                self._host_time_s = None
            else:
                chunks = self._take_samples(max(0, int(max_samples)))
                host_time_s = self._host_time_s  # more of it waits: keep it for them
            frames, self._pending_frames = self._pending_frames, []
            events, self._pending_events = self._pending_events, []
            self._room.notify_all()
        if not chunks:
            samples = _EMPTY_SAMPLES
        elif len(chunks) == 1:
            samples = chunks[0]
        else:
            samples = np.concatenate(chunks)
        return LinkBatch(self.name, samples, host_time_s, frames, events)

    def _take_samples(self, n: int) -> list[np.ndarray]:
        """The oldest ``n`` pending samples (caller holds ``_lock``)."""
        out: list[np.ndarray] = []
        need = n
        pending = self._pending_samples
        while need > 0 and pending:
            head = pending[0]
            if len(head) <= need:
                out.append(pending.pop(0))
                need -= len(head)
            else:
                out.append(head[:need])
                pending[0] = head[need:]
                need = 0
        self._pending_n -= n - need
        return out

    def recv(self, timeout_s: float = 0.0) -> Frame | None:
        """The next non-SAMPLE frame, waiting up to ``timeout_s`` seconds; None on timeout.

        Independent of ``drain()``: both see every frame.
        """
        self.ensure_running()
        with self._recv_cond:
            self._recv_cond.wait_for(
                lambda: self._recv_queue or self.link.state is LinkState.STOPPED,
                max(0.0, timeout_s),
            )
            return self._recv_queue.popleft() if self._recv_queue else None

    def subscribe(self, predicate: Callable[[Frame], bool]) -> FrameSubscription:
        """Queue every later non-SAMPLE frame that matches ``predicate`` (see FrameSubscription)."""
        sub = FrameSubscription(self, predicate)
        with self._lock:
            self._subs = [*self._subs, sub]
        return sub

    def next_seq(self, addr: int) -> int:
        """The host's next COMMAND SEQ for destination ``addr`` on this link (u16, wraps)."""
        with self._lock:
            seq = self._seq.get(addr, -1) + 1 & 0xFFFF
            self._seq[addr] = seq
            return seq

    def send_command(self, cmd: CommandFrame) -> None:
        """Write one command; raises ``LinkDownError`` when the link is not connected."""
        data = self._encode_command(cmd)
        self.link.write(data)
        with self._lock:
            self._commands_sent += 1

    def health(self) -> LinkHealth:
        """A snapshot of the link's and the decoder's state and counters."""
        s = self.link.stats()
        with self._decode_lock:
            dec = self._decoder_counters()
        with self._lock:
            link = {name: getattr(s, name) for name in _LINK_STATS_FIELDS}
            link.update(name=self.name, url=self.url)
            return LinkHealth(
                **link,
                samples_in=self._samples_in,
                frames_in=self._frames_in,
                commands_sent=self._commands_sent,
                samples_dropped=self._samples_dropped,
                frames_dropped=self._frames_dropped,
                sink_errors=self._sink_errors,
                decoder=dec,
                samples_waiting=self._pending_n,
                overflow_pauses=self._overflow_pauses,
            )

    # -- reader-thread side ---------------------------------------------------
    def _unsubscribe(self, sub: FrameSubscription) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]

    def _on_data(self, data: bytes, now_s: float) -> None:
        sink = self.raw_sink
        if sink is not None:
            try:
                sink(data, now_s)
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop decoding
                with self._lock:
                    self._sink_errors += 1
                    first = self._sink_errors == 1
                if first:
                    log.error("link %s: raw sink failed: %r", self.name, exc)
        with self._decode_lock:
            batch = self._decode(data, now_s)
        self._deliver(batch, now_s)
        if self.pause_above_samples is not None:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Back-pressure (reader thread): hold reading while too many samples wait."""
        limit = self.pause_above_samples
        assert limit is not None
        with self._lock:
            if self._pending_n < limit or self._stopping:
                return
            self._overflow_pauses += 1
            resume = limit // 2
            while self._pending_n > resume and not self._stopping:
                if self.link.state is LinkState.STOPPED:
                    return
                self._room.wait(0.1)

    def _on_idle(self, now_s: float) -> None:
        with self._decode_lock:
            batch = self._poll(now_s)
        if batch is not None:
            self._deliver(batch, now_s)

    def _on_event(self, event: LinkEvent) -> None:
        if event.kind in (LinkEventKind.DISCONNECTED, LinkEventKind.READER_ERROR):
            with self._decode_lock:
                batch = self._reset(event.time_s)
            if batch is not None:
                self._deliver(batch, event.time_s)
        with self._lock:
            self._pending_events.append(event)
            self._recv_cond.notify_all()
        if event.kind in (LinkEventKind.CONNECTED, LinkEventKind.RECONNECTED):
            self._on_connect()
        with self._gen_cond:
            self._gen_cond.notify_all()

    def _deliver(self, batch: DecodeBatch, now_s: float) -> None:
        samples = batch.samples
        frames = [f for _, f in batch.frames] if batch.frames else _EMPTY_BATCH_FRAMES
        n = len(samples)
        if not n and not frames:
            return
        with self._lock:
            self._host_time_s = now_s
            if n:
                self._pending_samples.append(samples)
                self._pending_n += n
                self._samples_in += n
                while self._pending_n > self.max_pending_samples:
                    # keep the newest: drop whole old chunks, then the head of one
                    old = self._pending_samples[0]
                    excess = self._pending_n - self.max_pending_samples
                    cut = min(excess, len(old))
                    if cut == len(old):
                        self._pending_samples.pop(0)
                    else:
                        self._pending_samples[0] = old[cut:]
                    self._pending_n -= cut
                    self._samples_dropped += cut
            if frames:
                self._frames_in += len(frames)
                self._pending_frames.extend(frames)
                self._recv_queue.extend(frames)
                over = len(self._pending_frames) - self.max_pending_frames
                if over > 0:
                    del self._pending_frames[:over]
                    self._frames_dropped += over
                while len(self._recv_queue) > self.max_pending_frames:
                    self._recv_queue.popleft()
                subs = self._subs
                self._recv_cond.notify_all()
        if frames:
            for sub in subs:
                for frame in frames:
                    sub._offer(frame)


class NativeDriver(TransducerDriver):
    """The project's own frame protocol (../shared/PROTOCOL.md), decoded by ``StreamDecoder``.

    ``partial_timeout_s``: a partial frame with no new bytes for this long is
    abandoned (checked on every chunk and when the line is idle); on a
    disconnect the partial bytes are flushed, so no frame spans two
    connections.
    """

    def __init__(self, name: str, url: str, *, partial_timeout_s: float = 0.5, **options):
        super().__init__(name, url, **options)
        self.decoder = StreamDecoder(partial_timeout_s=partial_timeout_s)

    def _decode(self, data: bytes, now_s: float) -> DecodeBatch:
        return self.decoder.feed(data, now_s)

    def _poll(self, now_s: float) -> DecodeBatch | None:
        if not self.decoder.pending_bytes:
            return None
        return self.decoder.poll(now_s)

    def _reset(self, now_s: float) -> DecodeBatch | None:
        if not self.decoder.pending_bytes:
            return None
        return self.decoder.flush()

    def _decoder_counters(self) -> DecoderCounters:
        return self.decoder.counters()

    def _encode_command(self, cmd: CommandFrame) -> bytes:
        return cmd.encode()
