"""What a polled family's reply matcher (``drivers.keller.fast``,
``drivers.modbus.fast``: ``match_reply``) found at the start of a receive buffer.

F Prime's frame detector: complete (a reply or an exception reply, CRC good),
more bytes needed, or bad (the caller drops one byte, or a foreign frame
whole, and looks again).  The constant answers are shared instances: a
matcher returns them without building a ``Match``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MatchStatus(enum.Enum):
    """What the start of a receive buffer holds for the request in flight."""

    REPLY = "reply"  # the normal reply, CRC good
    EXCEPTION = "exception"  # an exception reply, CRC good
    NEED_MORE = "need_more"  # a plausible start: wait for more bytes
    WRONG_ADDRESS = "wrong_address"  # not the addressed device
    WRONG_FUNCTION = "wrong_function"  # the right address, another function (or byte count)
    BAD_CRC = "bad_crc"  # the right length, CRC wrong (also: its bytes swapped)


@dataclass(frozen=True, slots=True)
class Match:
    """``status``; for REPLY the ``data`` bytes (KELLER: between FN and the CRC;
    Modbus: the registers), for EXCEPTION the ``code``; ``size`` the bytes the
    frame takes (0 if none)."""

    status: MatchStatus
    data: bytes = b""
    code: int = 0
    size: int = 0


NEED_MORE = Match(MatchStatus.NEED_MORE)
WRONG_ADDRESS = Match(MatchStatus.WRONG_ADDRESS)
WRONG_FUNCTION = Match(MatchStatus.WRONG_FUNCTION)
BAD_CRC = Match(MatchStatus.BAD_CRC)
