"""The board's session number: one more at every start, kept in a file.

The session goes into the board's birth and its Will (``NodeStatus.session``):
a status with a lower session than the last birth seen is stale.  The file
holds one decimal integer and a newline; it is replaced atomically (written to
a temporary file in the same folder, fsynced, renamed, folder fsynced), so a
crash leaves the old number or the new one, never half a number.

A file that cannot be read as a number, or a new number that cannot be
written, must not stop a monitor: the session then falls back to the Unix
time in seconds (``now_unix``), larger than any count of restarts, so it still
grows; ``SessionNumber.problem`` says why, for one line on stderr.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The largest session a file may hold (JSON numbers stay exact below 2**53).
MAX_SESSION = 2**53 - 1


@dataclass(frozen=True)
class SessionNumber:
    """This start's ``session``; ``problem`` None when the file was read and written."""

    session: int
    problem: str | None = None


def read_session(path: Path) -> int:
    """The number in ``path`` (0 if there is no file); ValueError or OSError otherwise."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return 0
    value = int(text.strip())
    if not 0 <= value <= MAX_SESSION:
        raise ValueError(f"session {value} out of 0..{MAX_SESSION}")
    return value


def write_session(path: Path, session: int) -> None:
    """Replace ``path`` with ``session`` atomically (tmp + fsync + rename + dir fsync)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{session}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def next_session(path: Path, now_unix: Callable[[], float]) -> SessionNumber:
    """The session of this start, persisted in ``path``; see module docstring."""
    problem = None
    try:
        session = read_session(path) + 1
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        problem = f"cannot read {path} ({exc})"
        session = int(now_unix())
    try:
        write_session(path, session)
    except OSError as exc:
        problem = f"cannot write {path} ({exc.strerror or exc})"
        session = max(session, int(now_unix()))
    return SessionNumber(session, problem)
