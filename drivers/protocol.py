"""The native transducer frame protocol, version 1 (../shared/PROTOCOL.md).

Every frame and message is declared here once, with ``construct``, for both
parsing and building.  The hot decoding path (``drivers.decoder``) uses
precompiled ``struct`` formats and numpy dtypes derived from the same constants;
tests cross-check the two byte for byte.
"""

from __future__ import annotations

import enum

from construct import (
    Bytes,
    Checksum,
    Const,
    Default,
    FixedSized,
    Float32b,
    Float64b,
    GreedyBytes,
    Int8ub,
    Int16ub,
    Int32ub,
    Int64ub,
    PaddedString,
    Padding,
    RawCopy,
    Struct,
    Switch,
    this,
)

from drivers.crc import crc16, hec

SYNC = b"\xeb\x90"
VERSION = 1
HEADER_SIZE = 11  # SYNC..HEC
CRC_SIZE = 2
MAX_PAYLOAD = 1024
BROADCAST_ADDR = 255
MIN_ADDR, MAX_ADDR = 1, 247


class MsgId(enum.IntEnum):
    """MSG_ID byte."""

    SAMPLE = 0x01
    IDENTITY = 0x02
    COMMAND = 0x10
    ACK = 0x11


class Flags(enum.IntFlag):
    """FLAGS byte."""

    TO_DEVICE = 0x01
    ACK_REQUESTED = 0x02
    ERROR_REPLY = 0x04


class Status(enum.IntFlag):
    """SAMPLE ``status`` bits."""

    PRESSURE_OUT_OF_RANGE = 1 << 0
    TEMPERATURE_OUT_OF_RANGE = 1 << 1
    SELF_TEST_FAILED = 1 << 2
    ADC_SATURATED = 1 << 3
    WARMING_UP = 1 << 4
    CONFIG_CHANGED = 1 << 5


class Opcode(enum.IntEnum):
    """COMMAND opcodes."""

    IDENTIFY = 0x01
    SET_RATE = 0x02
    START = 0x03
    STOP = 0x04
    ZERO_OFFSET = 0x05
    RESET = 0x06


class AckResult(enum.IntEnum):
    """ACK ``result`` byte."""

    OK = 0
    UNKNOWN_OPCODE = 1
    BAD_ARGUMENT = 2
    BUSY = 3
    FAILED = 4


# --- payloads ---------------------------------------------------------------

SAMPLE_PAYLOAD = Struct(
    "t_us" / Int64ub,
    "pressure_pa" / Float64b,
    "temperature_c" / Float32b,
    "status" / Int16ub,
)

IDENTITY_PAYLOAD = Struct(
    "model" / PaddedString(16, "ascii"),
    "serial" / Int32ub,
    "firmware" / Int16ub,
    "range_min_pa" / Float32b,
    "range_max_pa" / Float32b,
    "rate_mhz" / Int32ub,
    Padding(6),
)

#: Argument layout per opcode; opcodes not listed take no arguments.
COMMAND_ARGS = {
    Opcode.SET_RATE: Struct("rate_mhz" / Int32ub),
    Opcode.ZERO_OFFSET: Struct("offset_pa" / Float64b),
}

COMMAND_PAYLOAD = Struct(
    "opcode" / Int8ub,
    "args" / GreedyBytes,
)

ACK_PAYLOAD = Struct(
    "command_seq" / Int16ub,
    "opcode" / Int8ub,
    "result" / Int8ub,
)

PAYLOADS = {
    MsgId.SAMPLE: SAMPLE_PAYLOAD,
    MsgId.IDENTITY: IDENTITY_PAYLOAD,
    MsgId.COMMAND: COMMAND_PAYLOAD,
    MsgId.ACK: ACK_PAYLOAD,
}

SAMPLE_LEN = SAMPLE_PAYLOAD.sizeof()  # 22
IDENTITY_LEN = IDENTITY_PAYLOAD.sizeof()  # 40
ACK_LEN = ACK_PAYLOAD.sizeof()  # 4
SAMPLE_FRAME_SIZE = HEADER_SIZE + SAMPLE_LEN + CRC_SIZE  # 35


def command_args_len(opcode: int) -> int | None:
    """Size in bytes of an opcode's arguments, or None for an unknown opcode."""
    try:
        op = Opcode(opcode)
    except ValueError:
        return None
    fmt = COMMAND_ARGS.get(op)
    return 0 if fmt is None else fmt.sizeof()


def legal_length(msg_id: int, length: int) -> bool:
    """Whether LEN is legal for MSG_ID (any LEN up to 1024 for an unknown MSG_ID)."""
    if length > MAX_PAYLOAD:
        return False
    if msg_id == MsgId.SAMPLE:
        return length == SAMPLE_LEN
    if msg_id == MsgId.IDENTITY:
        return length == IDENTITY_LEN
    if msg_id == MsgId.ACK:
        return length == ACK_LEN
    if msg_id == MsgId.COMMAND:
        return length >= 1  # the device checks LEN against the opcode
    return True


# --- the frame --------------------------------------------------------------

HEADER = Struct(
    "sync" / Const(SYNC),
    "ver" / Default(Int8ub, VERSION),
    "msg_id" / Int8ub,
    "addr" / Int8ub,
    "flags" / Default(Int8ub, 0),
    "seq" / Int16ub,
    "length" / Int16ub,
)

FRAME = Struct(
    "header" / RawCopy(HEADER),
    "hec" / Checksum(Int8ub, hec, this.header.data),
    "payload"
    / RawCopy(
        FixedSized(
            this.header.value.length,
            Switch(this.header.value.msg_id, PAYLOADS, default=GreedyBytes),
        )
    ),
    "crc"
    / Checksum(
        Int16ub,
        crc16,
        lambda ctx: ctx.header.data + bytes([ctx.hec]) + ctx.payload.data,
    ),
)

#: A header with its HEC as a plain field, for receivers that count HEC errors.
HEADER_WITH_HEC = Struct("header" / RawCopy(HEADER), "hec" / Int8ub)

RAW_CRC = Bytes(CRC_SIZE)
