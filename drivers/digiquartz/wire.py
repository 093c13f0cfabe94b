"""The Digiquartz command and reply grammar, in one place (../shared/TRANSDUCERS.md).

Command, host -> device: ``*DDSSCC[=value]\\r\\n``: ``*``, DD the destination
(device ID 01..98, or 99 = every device), SS the source (the host, 00), CC two
letters, an optional ``=value``.  ``EW`` enables one EEPROM write in the same
line: ``*0100EW*0100UN=2\\r\\n``.

Reply, device -> host: ``*DDSS<payload>\\r\\n`` with DD the destination (the
host, 00) and SS the source (the device's ID): ``*0001`` from device 01.  The
payload is a bare number for P1/P3/P4/P7/Q1/Q3/Q4 and ``XX=value`` for a
parameter (UN, PI, TI, SN, VR, MN).  No checksum: a line is accepted only if
it has exactly this shape (digits, printable payload, CR LF) and its payload
the one its command expects (a finite decimal number, or ``XX=``).

``scan_line(buf, start)`` is the receive side's detector (F Prime's frame
accumulator): a complete line, more bytes needed, or noise of ``size`` bytes
to drop (up to the next ``*``: a line cut short by the next one is dropped
whole, and nothing that does not start with ``*`` can start a line).
"""

from __future__ import annotations

import enum
import functools
import math
import re
from dataclasses import dataclass

HOST_ID = 0
BROADCAST_ID = 99  # every device executes; each answers with its own ID
MIN_ID, MAX_ID = 1, 98
START = ord("*")
EOL = b"\r\n"
#: the longest reply line accepted, ``*`` to LF (a longer run without LF is noise)
MAX_LINE = 64
#: commands whose reply is a bare number
NUMERIC = frozenset({"P1", "P3", "P4", "P7", "Q1", "Q3", "Q4"})
#: commands whose reply is ``XX=value``
PARAMETERS = frozenset({"UN", "PI", "TI", "SN", "VR", "MN"})
#: commands that start a continuous output (stopped by any new command)
CONTINUOUS = frozenset({"P4", "Q4", "P7"})
COMMANDS = NUMERIC | PARAMETERS | {"EW"}

_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?")
_PRINTABLE = bytes(range(0x20, 0x7F)).replace(b"*", b"")
_CMD = re.compile(r"(\d\d)(\d\d)([A-Z][A-Z0-9])(?:=([\x21-\x29\x2b-\x7e]{1,32}))?")


def _id(n: int) -> str:
    if not 0 <= n <= 99:
        raise ValueError(f"a Digiquartz ID is 00..99 (got {n})")
    return f"{n:02d}"


@functools.lru_cache(maxsize=1024)
def command(dest: int, cmd: str, value: str | int | None = None, src: int = HOST_ID) -> bytes:
    """``*DDSSCC[=value]\\r\\n`` (cached: a poll sends the same few again and again)."""
    if len(cmd) != 2 or not cmd.isascii() or not cmd.isalnum():
        raise ValueError(f"a command is two letters (got {cmd!r})")
    body = f"*{_id(dest)}{_id(src)}{cmd}"
    if value is not None:
        body += f"={value}"
    return body.encode("ascii") + EOL


def write_command(dest: int, cmd: str, value: str | int, src: int = HOST_ID) -> bytes:
    """``EW`` and the write in one line: ``*0100EW*0100UN=2\\r\\n``."""
    return command(dest, "EW", None, src)[:-2] + command(dest, cmd, value, src)


def reply(src: int, payload: str, dest: int = HOST_ID) -> bytes:
    """A device's reply line: ``*00SS<payload>\\r\\n``."""
    return f"*{_id(dest)}{_id(src)}{payload}".encode("ascii") + EOL


def format_number(value: float, digits: int = 9) -> str:
    """A device's number: fixed point, ``digits`` significant digits (1013.25000 hPa)."""
    whole = len(str(int(abs(value)))) if abs(value) >= 1 else 1
    return f"{value:.{max(0, digits - whole)}f}"


class LineKind(enum.Enum):
    LINE = "line"
    NEED_MORE = "need_more"
    NOISE = "noise"


@dataclass(frozen=True, slots=True)
class Line:
    """What ``scan_line`` found: ``kind``, ``size`` bytes it takes, and for a LINE
    its destination and source IDs and payload (the bytes between them and CR LF)."""

    kind: LineKind
    size: int = 0
    dest: int = -1
    src: int = -1
    payload: bytes = b""


_NEED_MORE = Line(LineKind.NEED_MORE)


def scan_line(buf: bytes | bytearray, start: int = 0) -> Line:
    """The line (or the noise) at ``buf[start:]``; never raises."""
    n = len(buf)
    if start >= n:
        return _NEED_MORE
    if buf[start] != START:
        j = buf.find(b"*", start + 1)
        return Line(LineKind.NOISE, (j if j >= 0 else n) - start)
    limit = min(n, start + MAX_LINE)
    nl = buf.find(b"\n", start + 1, limit)
    star = buf.find(b"*", start + 1, nl if nl >= 0 else limit)
    if star >= 0:  # cut short by the next line
        return Line(LineKind.NOISE, star - start)
    if nl < 0:
        if limit - start >= MAX_LINE:
            return Line(LineKind.NOISE, MAX_LINE)
        return _NEED_MORE
    size = nl + 1 - start
    if size < 8 or buf[nl - 1] != 0x0D:
        return Line(LineKind.NOISE, size)
    ids = bytes(buf[start + 1 : start + 5])
    payload = bytes(buf[start + 5 : nl - 1])
    if not ids.isdigit() or payload.translate(None, _PRINTABLE):
        return Line(LineKind.NOISE, size)
    return Line(LineKind.LINE, size, int(ids[:2]), int(ids[2:]), payload)


def parse_number(payload: bytes) -> float | None:
    """A bare decimal number (no NaN, Inf or hex), or None."""
    if not _NUMBER.fullmatch(payload):
        return None
    v = float(payload)
    return v if math.isfinite(v) else None


def parse_parameter(payload: bytes, cmd: str) -> str | None:
    """The value of ``CC=value`` for command ``cmd``, or None."""
    head = cmd.encode("ascii") + b"="
    if not payload.startswith(head) or len(payload) == len(head):
        return None
    return payload[len(head) :].decode("ascii")


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command: destination, source, two letters, ``value`` of a write or None."""

    dest: int
    src: int
    cmd: str
    value: str | None = None


def parse_commands(line: bytes) -> list[Command | None]:
    """The commands of one host line (its ``*`` segments, CR LF stripped); None for
    a segment that is not ``DDSSCC[=value]`` (the device ignores it)."""
    text = line.rstrip(b"\r\n")
    out: list[Command | None] = []
    for seg in text.split(b"*")[1:]:
        try:
            m = _CMD.fullmatch(seg.decode("ascii"))
        except UnicodeDecodeError:
            m = None
        if m is None:
            out.append(None)
            continue
        out.append(Command(int(m[1]), int(m[2]), m[3], m[4]))
    return out
