"""The control socket's wire format: one JSON object per line, bounded before it is parsed.

Requests and replies are UTF-8 JSON objects ending in a newline.  Nothing here
touches a socket: the server (``control.py``) and the client (``cabinwatch ctl``)
feed it bytes.  Limits are checked before ``json.loads`` ever sees the text, so
a hostile peer cannot make the parser recurse or allocate without bound:

* a request holds at most ``MAX_REQUEST_BYTES`` (16 KiB), a reply at most
  ``MAX_REPLY_BYTES`` (1 MiB);
* a request nests at most ``MAX_REQUEST_DEPTH`` (8) arrays/objects, a reply
  ``MAX_REPLY_DEPTH`` (32), counted by a scan that skips string contents.

Every failure is a ``WireError`` with a one-line message.
"""

from __future__ import annotations

import enum
import json

MAX_REQUEST_BYTES = 16 * 1024
MAX_REQUEST_DEPTH = 8
MAX_REPLY_BYTES = 1024 * 1024
MAX_REPLY_DEPTH = 32


class WireError(ValueError):
    """Bytes that are not an acceptable request or reply; the message is one line."""


class FrameStatus(enum.Enum):
    """What a ``LineBuffer`` holds after a feed."""

    NEED_MORE = "need_more"  # no newline yet, still within the limit
    COMPLETE = "complete"  # a newline arrived: ``line`` is ready
    TOO_LARGE = "too_large"  # more than the limit without a newline


class LineBuffer:
    """Collects bytes up to the first newline, refusing more than ``limit`` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.data = bytearray()

    def feed(self, chunk: bytes) -> FrameStatus:
        """Add ``chunk``; the status says whether a whole line is there."""
        self.data += chunk
        nl = self.data.find(b"\n")
        if nl >= 0:
            if nl > self.limit:
                return FrameStatus.TOO_LARGE
            del self.data[nl + 1 :]
            return FrameStatus.COMPLETE
        if len(self.data) > self.limit:
            return FrameStatus.TOO_LARGE
        return FrameStatus.NEED_MORE

    @property
    def line(self) -> bytes:
        """What was collected, without the newline."""
        return bytes(self.data).rstrip(b"\n")


def nesting_depth(text: str, limit: int) -> int:
    """How deeply ``text`` nests JSON arrays/objects (brackets inside strings do not
    count); stops scanning once ``limit`` is exceeded and returns ``limit + 1``."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return limit + 1
        elif ch in "]}":
            depth -= 1
    return deepest


def _parse_object(data: bytes, what: str, max_bytes: int, max_depth: int) -> dict:
    if len(data) > max_bytes:
        raise WireError(f"{what} larger than {max_bytes} bytes")
    if not data.strip():
        raise WireError(f"empty {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"{what} is not UTF-8") from None
    if nesting_depth(text, max_depth) > max_depth:
        raise WireError(f"{what} nests deeper than {max_depth} levels")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"{what} is not JSON: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(obj, dict):
        raise WireError(f"a {what} is a JSON object, not {type(obj).__name__}")
    return obj


def parse_request(data: bytes) -> dict:
    """One request line (without or with its newline) -> the request object."""
    return _parse_object(data, "request", MAX_REQUEST_BYTES, MAX_REQUEST_DEPTH)


def parse_reply(data: bytes) -> dict:
    """One reply line -> the reply object (what ``cabinwatch ctl`` accepts)."""
    return _parse_object(data, "reply", MAX_REPLY_BYTES, MAX_REPLY_DEPTH)


def encode(obj: dict) -> bytes:
    """A request or reply as one line; values JSON cannot hold become strings or null."""
    try:
        text = json.dumps(obj, default=str, allow_nan=False)
    except ValueError:  # NaN/inf somewhere: strict JSON has no word for them
        text = json.dumps(_finite(obj), default=str)
    return text.encode("utf-8") + b"\n"


def error_reply(message: str) -> bytes:
    """The encoded ``{"ok": false, "error": message}``."""
    return encode({"ok": False, "error": message})


def _finite(obj):
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
