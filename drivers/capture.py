"""Raw byte capture of a link, in files that rotate by size.

``RotatingCapture(prefix, max_bytes, keep)`` appends every chunk a link
receives to ``PREFIX.000000.bin``, ``PREFIX.000001.bin``, ...: plain raw bytes,
so ``cabinwatch decode FILE`` reads any one file, and
``read_capture(prefix)`` / ``iter_capture(prefix)`` give all of them back as
one stream in order.  A file is closed and the next one opened before a chunk
would take it past ``max_bytes`` (a chunk is never split, so a file exceeds
``max_bytes`` only when a single chunk does).  At most ``keep`` files are kept
(the oldest are deleted; None keeps all).  Buffered bytes reach the disk at
least every ``flush_interval_s`` seconds (a small timer thread), on every
rotation and on ``close()``: a kill loses at most that much.  Numbering
continues after the highest existing file, so a restart never overwrites a
capture.

Used as a driver's ``raw_sink``: ``capture(data, now_s)`` is ``write(data)``;
all methods are thread-safe.

A capture never raises an I/O error (a full disk, also at ``close()``): the
file is closed (bytes it had buffered are lost and counted in
``bytes_dropped``), chunks wait in memory, at most ``buffer_bytes`` (1 MiB;
the oldest dropped beyond, counted), and the next try, a new file, waits for
its ``guard``'s backoff (1 s doubling to 30 s).  ``guard.error`` says what
failed; the monitor reports it as an advisory.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from common.outputguard import OutputGuard

__all__ = ["RotatingCapture", "capture_files", "iter_capture", "read_capture"]

SUFFIX = ".bin"
_INDEX_DIGITS = 6
#: Bytes a capture keeps in memory while its disk fails (per link).
BUFFER_BYTES = 1 << 20


def _pattern(prefix: Path) -> re.Pattern[str]:
    return re.compile(re.escape(prefix.name) + r"\.(\d{6,})" + re.escape(SUFFIX) + r"$")


def _indexed_files(prefix: str | os.PathLike) -> list[tuple[int, Path]]:
    prefix = Path(prefix)
    folder = prefix.parent
    if not folder.is_dir():
        return []
    pat = _pattern(prefix)
    found = []
    for entry in folder.iterdir():
        m = pat.match(entry.name)
        if m and entry.is_file():
            found.append((int(m.group(1)), entry))
    found.sort()
    return found


def capture_files(prefix: str | os.PathLike) -> list[Path]:
    """The capture files of ``prefix``, oldest first."""
    return [p for _, p in _indexed_files(prefix)]


def iter_capture(prefix: str | os.PathLike, chunk_bytes: int = 4 << 20) -> Iterator[bytes]:
    """The bytes of every capture file of ``prefix`` in order, in chunks of ``chunk_bytes``."""
    for path in capture_files(prefix):
        with open(path, "rb") as fh:
            while chunk := fh.read(chunk_bytes):
                yield chunk


def read_capture(prefix: str | os.PathLike) -> bytes:
    """All capture files of ``prefix`` as one byte string, in order."""
    return b"".join(iter_capture(prefix))


class RotatingCapture:
    """Append raw bytes to size-rotated files ``PREFIX.NNNNNN.bin``.

    ``max_bytes``: size at which a file is rotated (bytes, > 0);
    ``keep``: files kept at most (None: all); ``flush_interval_s``: longest
    time buffered bytes wait for the disk; ``buffer_bytes``: most bytes held
    while the disk fails; ``guard``: the failure state and retry timer.
    """

    def __init__(
        self,
        path_prefix: str | os.PathLike,
        max_bytes: int = 64 << 20,
        keep: int | None = None,
        *,
        flush_interval_s: float = 1.0,
        buffer_bytes: int = BUFFER_BYTES,
        guard: OutputGuard | None = None,
    ):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if keep is not None and keep < 1:
            raise ValueError("keep must be at least 1 (or None for all)")
        self.prefix = Path(path_prefix)
        self.max_bytes = max_bytes
        self.keep = keep
        self.flush_interval_s = flush_interval_s
        self.buffer_bytes = buffer_bytes
        self.guard = guard or OutputGuard(f"capture:{self.prefix.name}")
        try:
            self.prefix.parent.mkdir(parents=True, exist_ok=True)
            existing = _indexed_files(self.prefix)
        except OSError as exc:
            self.guard.failed(exc)
            existing = []
        self._index = existing[-1][0] + 1 if existing else 0
        self._lock = threading.Lock()
        self._fh = None
        self._size = 0
        self._dirty = False
        self._closed = False
        self._held: deque[bytes] = deque()  # chunks waiting for a failed disk
        self._held_bytes = 0
        self._unflushed = 0  # bytes in the file object's buffer, lost if it fails
        self.bytes_written = 0
        self.bytes_dropped = 0
        self.files_opened = 0
        self.files_deleted = 0
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    # -- public ------------------------------------------------------------
    @property
    def current_path(self) -> Path | None:
        """The file being written, or None before the first byte / after close."""
        fh = self._fh
        return Path(fh.name) if fh is not None else None

    def write(self, data: bytes) -> None:
        """Append ``data`` (rotating first if it would not fit)."""
        if not data:
            return
        with self._lock:
            if self._closed:
                raise ValueError("capture is closed")
            self._held.append(bytes(data))
            self._held_bytes += len(data)
            while self._held_bytes > self.buffer_bytes and len(self._held) > 1:
                self._held_bytes -= len(old := self._held.popleft())
                self.bytes_dropped += len(old)
            if self.guard.ready():
                self._write_held()
        if self._flusher is None:
            self._start_flusher()

    def _write_held(self) -> None:
        """The held chunks to the file, under the lock; a failure closes the file."""
        try:
            while self._held:
                chunk = self._held[0]
                if self._fh is None or (self._size and self._size + len(chunk) > self.max_bytes):
                    self._rotate()
                self._fh.write(chunk)
                self._held.popleft()
                self._held_bytes -= len(chunk)
                self._size += len(chunk)
                self.bytes_written += len(chunk)
                self._unflushed += len(chunk)
                self._dirty = True
            if self.guard.error is not None:  # recovering: the disk must take them
                self._fh.flush()
                self._unflushed = 0
                self._dirty = False
        except OSError as exc:
            self._fail(exc)
        else:
            self.guard.succeeded()

    def _fail(self, exc: OSError) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass
        self.bytes_dropped += self._unflushed
        self._unflushed = 0
        self._dirty = False
        self.guard.failed(exc)

    def __call__(self, data: bytes, now_s: float | None = None) -> None:
        """The ``raw_sink`` form: ``now_s`` (receive time) is not stored."""
        self.write(data)

    def flush(self) -> None:
        """Hand buffered bytes to the operating system."""
        with self._lock:
            if self._held and self.guard.ready():
                self._write_held()
            if self._fh is not None and self._dirty:
                try:
                    self._fh.flush()
                except OSError as exc:
                    self._fail(exc)
                else:
                    self._unflushed = 0
                    self._dirty = False

    def close(self) -> None:
        """Flush and close the current file; stop the flush timer; idempotent."""
        self._stop.set()
        t = self._flusher
        if t is not None and t is not threading.current_thread():
            t.join(2.0)
        with self._lock:
            if self._closed:
                return
            if self._held:
                self._write_held()  # one last try, whatever the backoff
            if self._fh is not None:
                try:
                    self._fh.close()
                    self._unflushed = 0
                except OSError as exc:
                    self._fh = None  # closed anyway; its buffered bytes are lost
                    self._fail(exc)
                self._fh = None
            self.bytes_dropped += self._held_bytes
            self._held.clear()
            self._held_bytes = 0
            self._closed = True

    def files(self) -> list[Path]:
        return capture_files(self.prefix)

    def __enter__(self) -> RotatingCapture:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------
    def _path(self, index: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.{index:0{_INDEX_DIGITS}d}{SUFFIX}")

    def _rotate(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()
            self._unflushed = 0
        self.prefix.parent.mkdir(parents=True, exist_ok=True)  # if it failed at start
        for _ in range(1000):
            path = self._path(self._index)
            self._index += 1
            try:
                self._fh = open(path, "xb")  # noqa: SIM115 - closed on rotation / close()
                break
            except FileExistsError:
                continue  # another writer took this number: never overwrite
        if self._fh is None:
            raise FileExistsError(f"no free capture file number after {path}")
        self._size = 0
        self.files_opened += 1
        if self.keep is not None:
            files = _indexed_files(self.prefix)
            for _, old in files[: max(0, len(files) - self.keep)]:
                try:
                    old.unlink()
                    self.files_deleted += 1
                except OSError:
                    pass

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is not None or self._closed:
                return
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"capture-{self.prefix.name}", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()  # never raises: a failure is kept in the guard
