"""Precompiled wire formats and lookup tables shared by the fast decoding paths.

Derived from the construct declarations in ``drivers.protocol`` (a test checks
them against construct on random frames).  CRC-8 and CRC-16 are affine over
GF(2), so a checksum over fixed-position fields is a constant XOR one table
lookup per 16-bit field; the tables here hold those per-field contributions.
"""

from __future__ import annotations

import binascii
import struct

import numpy as np

from drivers.crc import CRC8_TABLE
from drivers.encode import WIRE_SAMPLE_DTYPE
from drivers.frames import (
    SAMPLE_RECORD_DTYPE,
    AckFrame,
    CommandFrame,
    Frame,
    IdentityFrame,
    ack_result,
)
from drivers.protocol import HEADER_SIZE, SAMPLE_FRAME_SIZE, SAMPLE_LEN, SYNC, VERSION, MsgId

HEADER_WORDS = struct.Struct(">HHHHB")  # VER|MSG_ID, ADDR|FLAGS, SEQ, LEN, HEC
_IDENTITY = struct.Struct(">16sIHffI6x")
_ACK = struct.Struct(">HBB")
KNOWN_MSG_IDS = frozenset(int(m) for m in MsgId)
SAMPLE_VER_MSG = VERSION << 8 | MsgId.SAMPLE
RECORD_FIELDS = ("addr", "flags", "seq", "status", "t_us", "pressure_pa", "temperature_c")


def _hec_byte_tables() -> list[list[int]]:
    """Contribution of each header byte position (0-9) to the CRC-8, init 0."""
    tables = []
    for pos in range(HEADER_SIZE - 1):
        row = []
        for b in range(256):
            crc = 0
            for byte in (b, *([0] * (HEADER_SIZE - 2 - pos))):
                crc = int(CRC8_TABLE[crc ^ byte])
            row.append(crc)
        tables.append(row)
    return tables


def _word_table(tables, pos: int, const: int = 0) -> list[int]:
    hi, lo = tables[pos], tables[pos + 1]
    return [hi[w >> 8] ^ lo[w & 0xFF] ^ const for w in range(65536)]


_HB = _hec_byte_tables()
#: HEC of a header = XOR of these four lookups by its big-endian words at
#: bytes 2-9; SYNC and the final XOR are folded into the first table.
HEC_VER_MSG = _word_table(_HB, 2, _HB[0][SYNC[0]] ^ _HB[1][SYNC[1]] ^ 0x55)
HEC_ADDR_FLAGS = _word_table(_HB, 4)
HEC_SEQ = _word_table(_HB, 6)
HEC_LEN = _word_table(_HB, 8)
#: The part of a SAMPLE header's HEC that does not depend on ADDR, FLAGS, SEQ.
HEC_SAMPLE_CONST = HEC_VER_MSG[SAMPLE_VER_MSG] ^ HEC_LEN[SAMPLE_LEN]
del _HB


def _sample_crc_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """CRC-16 residue of a SAMPLE frame whose header is intact, by lookups.

    The residue (CRC over all 35 bytes, its own CRC included) is 0 for an
    intact frame.  Bytes 0-3 and 8-9 of a SAMPLE are fixed and byte 10 (the
    HEC) is itself a linear function of ADDR|FLAGS and SEQ, so the residue is
    ``K ^ AF[addr_flags] ^ SEQ[seq] ^ XOR_j PAY[j][payload word j]``: 14
    lookups instead of 18.  Valid only for frames whose HEC checked out.
    """
    n = SAMPLE_FRAME_SIZE
    pos_tab = np.zeros((n, 256), dtype=np.uint16)
    for pos in range(n):
        tail = bytes(n - 1 - pos)
        pos_tab[pos] = [binascii.crc_hqx(bytes([b]) + tail, 0) for b in range(256)]
    words = np.arange(65536)
    hi, lo = words >> 8, words & 0xFF

    def word(pos: int) -> np.ndarray:
        return pos_tab[pos][hi] ^ pos_tab[pos + 1][lo]

    p10 = pos_tab[10]
    af = word(4) ^ p10[np.array(HEC_ADDR_FLAGS)]
    seq = word(6) ^ p10[np.array(HEC_SEQ)]
    payload = np.stack([word(pos) for pos in range(11, n, 2)])
    k = binascii.crc_hqx(bytes(n), 0xFFFF)
    for pos, byte in ((0, SYNC[0]), (1, SYNC[1]), (2, VERSION), (3, MsgId.SAMPLE), (8, 0)):
        k ^= int(pos_tab[pos][byte])
    k ^= int(pos_tab[9][SAMPLE_LEN]) ^ int(p10[HEC_SAMPLE_CONST])
    return af.astype(np.uint16), seq.astype(np.uint16), payload.astype(np.uint16), k


SAMPLE_CRC_AF, SAMPLE_CRC_SEQ, SAMPLE_CRC_PAYLOAD, SAMPLE_CRC_CONST = _sample_crc_tables()
SAMPLE_HEC_AF = np.array(HEC_ADDR_FLAGS, dtype=np.uint8)
SAMPLE_HEC_SEQ = np.array(HEC_SEQ, dtype=np.uint8)


def wire_to_records(wire: np.ndarray, offsets: np.ndarray, out: np.ndarray | None = None):
    """Native SAMPLE records (``SAMPLE_RECORD_DTYPE``) from wire records."""
    recs = np.empty(len(wire), dtype=SAMPLE_RECORD_DTYPE) if out is None else out
    recs["offset"] = offsets
    for name in RECORD_FIELDS:
        recs[name] = wire[name]
    return recs


def sample_records(buf, starts: list[int], base: int) -> np.ndarray:
    """SAMPLE records for the accepted frames starting at ``starts`` in ``buf``."""
    k = len(starts)
    first = starts[0]
    if starts[-1] - first == (k - 1) * SAMPLE_FRAME_SIZE:  # back to back: no copy
        wire = np.frombuffer(buf, dtype=WIRE_SAMPLE_DTYPE, count=k, offset=first)
    else:
        mv = memoryview(buf)
        joined = b"".join([mv[s : s + SAMPLE_FRAME_SIZE] for s in starts])
        wire = np.frombuffer(joined, dtype=WIRE_SAMPLE_DTYPE)
    return wire_to_records(wire, np.array(starts, dtype=np.int64) + base)


def parse_other(msg: int, addr: int, seq: int, flags: int, payload: bytes) -> Frame:
    """A typed IDENTITY, ACK or COMMAND frame from its checked payload."""
    if msg == MsgId.IDENTITY:
        model, serial, firmware, rmin, rmax, rate = _IDENTITY.unpack(payload)
        name = model.rstrip(b"\0").decode("ascii", errors="replace")
        return IdentityFrame(addr, seq, flags, name, serial, firmware, rmin, rmax, rate)
    if msg == MsgId.ACK:
        cseq, opcode, result = _ACK.unpack(payload)
        return AckFrame(addr, seq, flags, cseq, opcode, ack_result(result))
    return CommandFrame(addr, seq, flags, payload[0], bytes(payload[1:]))
