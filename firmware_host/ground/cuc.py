"""CCSDS Unsegmented time Code (CUC, CCSDS 301.0-B-4), 4 + 2 octets, on the GPS epoch.

The P-field is not sent (it is implicit, as Yamcs' ``implicitPField``):

    P-field 0x2E = 0b0_010_11_10: no extension, time code id 010 (level 2,
    agency-defined epoch), 4 octets of coarse time, 2 octets of fine time.

The T-field is the coarse time (whole seconds since the epoch, uint32
big-endian) then the fine time (units of 2**-16 s, uint16 big-endian).

Epoch: the GPS epoch, 1980-01-06T00:00:00 UTC, which is Yamcs' default for
CUC.  GPS time has no leap seconds: ``gps_s = unix_s - GPS_EPOCH_UNIX_S +
GPS_UTC_LEAP_S``.
"""

from __future__ import annotations

import math
import struct

#: The implicit P-field: level 2 (agency-defined epoch), 4 coarse + 2 fine octets.
PFIELD = 0x2E
#: Octets of the T-field (4 coarse + 2 fine).
LENGTH = 6
#: The GPS epoch (1980-01-06T00:00:00 UTC) in Unix seconds.
GPS_EPOCH_UNIX_S = 315_964_800
#: GPS - UTC, s (leap seconds since 1980; 18 since 2017-01-01).
GPS_UTC_LEAP_S = 18
#: Fine-time units per second (2**16).
FINE_PER_S = 1 << 16
#: The largest coarse time (s): 2**32 - 1, about 136 years after the epoch.
MAX_COARSE = 0xFFFF_FFFF

_STRUCT = struct.Struct(">IH")


def unix_to_gps_s(unix_s: float) -> float:
    """Unix time (s, UTC) as GPS seconds since the GPS epoch."""
    return unix_s - GPS_EPOCH_UNIX_S + GPS_UTC_LEAP_S


def encode(gps_s: float) -> bytes:
    """The 6-octet T-field of ``gps_s`` (s since the epoch, 0 <= gps_s < 2**32),
    fine time rounded down to 2**-16 s."""
    if not math.isfinite(gps_s) or gps_s < 0 or gps_s >= MAX_COARSE + 1:
        raise ValueError(f"CUC time out of range: {gps_s!r} s since the GPS epoch")
    coarse = int(gps_s)
    fine = min(int((gps_s - coarse) * FINE_PER_S), FINE_PER_S - 1)
    return _STRUCT.pack(coarse, fine)


def decode(field: bytes) -> float:
    """Seconds since the epoch from a 6-octet T-field."""
    coarse, fine = _STRUCT.unpack(bytes(field[:LENGTH]))
    return coarse + fine / FINE_PER_S
