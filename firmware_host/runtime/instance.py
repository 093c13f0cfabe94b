"""One monitor per configuration: an exclusive lock on the output directory.

``InstanceLock(path).acquire()`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on a
lock file (``outputs.directory/cabinwatch.lock``) and writes the holder's PID
into it.  A second monitor on the same output directory gets
``AlreadyRunning`` naming the first one's PID, before it opens the archive,
the telemetry, the captures, the control socket or a port.  The kernel drops
the lock when the holder exits, however it exits (SIGKILL included), so a
stale lock file never blocks a restart; the file itself is left in place
(removing it would let a third instance lock a different inode).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from common.errors import CabinwatchError

LOCK_NAME = "cabinwatch.lock"


class AlreadyRunning(CabinwatchError):
    """Another monitor holds the lock; ``pid`` is its process id (None if unreadable)."""

    def __init__(self, path: Path, pid: int | None):
        who = f"PID {pid}" if pid is not None else "another process"
        super().__init__(
            f"{path}: another monitor ({who}) is already running on this configuration's "
            "output directory; stop it first"
        )
        self.path = path
        self.pid = pid


class InstanceLock:
    """The exclusive lock of one output directory; a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    @classmethod
    def for_directory(cls, directory: str | Path) -> InstanceLock:
        return cls(Path(directory) / LOCK_NAME)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``AlreadyRunning``; OSError if the file cannot be made."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent); the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
