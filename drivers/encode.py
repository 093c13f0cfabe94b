"""Vectorized SAMPLE frame encoder: many frames per numpy pass.

Used by the HIL emulator, which emits millions of SAMPLEs per simulated day;
byte-for-byte equal to ``SampleFrame.encode()`` (the construct path), which a
test checks on random values.
"""

from __future__ import annotations

import numpy as np

from drivers.crc import crc16_rows, hec_rows
from drivers.protocol import HEADER_SIZE, SAMPLE_FRAME_SIZE, SAMPLE_LEN, SYNC, VERSION, MsgId

#: One SAMPLE frame on the wire, as a numpy record (35 bytes, big-endian).
WIRE_SAMPLE_DTYPE = np.dtype(
    [
        ("sync", ">u2"),
        ("ver", "u1"),
        ("msg_id", "u1"),
        ("addr", "u1"),
        ("flags", "u1"),
        ("seq", ">u2"),
        ("length", ">u2"),
        ("hec", "u1"),
        ("t_us", ">u8"),
        ("pressure_pa", ">f8"),
        ("temperature_c", ">f4"),
        ("status", ">u2"),
        ("crc", ">u2"),
    ]
)
assert WIRE_SAMPLE_DTYPE.itemsize == SAMPLE_FRAME_SIZE


def encode_samples(
    addr: np.ndarray | int,
    seq: np.ndarray | int,
    t_us: np.ndarray,
    pressure_pa: np.ndarray,
    temperature_c: np.ndarray,
    status: np.ndarray | int = 0,
    flags: int = 0,
) -> np.ndarray:
    """SAMPLE frames for equal-length arrays (scalars broadcast), as a record array.

    ``seq`` is taken modulo 65536.  Call ``.tobytes()`` on the result for the
    byte stream, frames in array order.  Combine results by assigning into an
    array of ``WIRE_SAMPLE_DTYPE`` (or join their bytes): ``np.concatenate``
    and ``np.stack`` silently convert the big-endian fields to native order.
    """
    n = len(t_us)
    rec = np.empty(n, dtype=WIRE_SAMPLE_DTYPE)
    rec["sync"] = int.from_bytes(SYNC, "big")
    rec["ver"] = VERSION
    rec["msg_id"] = MsgId.SAMPLE
    rec["addr"] = addr
    rec["flags"] = flags
    rec["seq"] = np.asarray(seq, dtype=np.int64) & 0xFFFF
    rec["length"] = SAMPLE_LEN
    rec["t_us"] = t_us
    rec["pressure_pa"] = pressure_pa
    rec["temperature_c"] = temperature_c
    rec["status"] = status
    raw = rec.view(np.uint8).reshape(n, SAMPLE_FRAME_SIZE)
    rec["hec"] = hec_rows(raw[:, : HEADER_SIZE - 1])
    rec["crc"] = crc16_rows(raw[:, : SAMPLE_FRAME_SIZE - 2])
    return rec
