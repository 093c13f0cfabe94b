"""Typed, immutable frames: what the decoder yields and what encoders take.

Field names carry units (``t_us``, ``pressure_pa``, ``temperature_c``,
``rate_mhz``).  ``encode()`` builds the exact wire bytes through the construct
declaration in ``drivers.protocol``.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from drivers.protocol import (
    COMMAND_ARGS,
    FRAME,
    PAYLOADS,
    AckResult,
    Flags,
    MsgId,
    Opcode,
)


def build_frame(msg_id: int, addr: int, seq: int, payload: bytes, flags: int = 0) -> bytes:
    """Wire bytes of one frame with an already-built payload."""
    return FRAME.build(
        dict(
            header=dict(
                value=dict(msg_id=msg_id, addr=addr, flags=flags, seq=seq, length=len(payload))
            ),
            payload=dict(data=payload),
        )
    )


@dataclass(frozen=True, slots=True)
class Frame:
    """Fields common to every frame."""

    addr: int
    seq: int
    flags: int

    MSG_ID: ClassVar[MsgId]

    @property
    def msg_type(self) -> str:
        return self.MSG_ID.name

    def payload_bytes(self) -> bytes:
        raise NotImplementedError

    def encode(self) -> bytes:
        """Wire bytes of this frame."""
        return build_frame(self.MSG_ID, self.addr, self.seq, self.payload_bytes(), self.flags)

    def to_json_dict(self) -> dict:
        """Message type name, address, seq, flags and every payload field by name."""
        out = {"type": self.msg_type}
        out.update(asdict(self))
        return out


@dataclass(frozen=True, slots=True)
class SampleFrame(Frame):
    """One pressure/temperature reading: sensor clock in us, absolute Pa, deg C."""

    t_us: int
    pressure_pa: float
    temperature_c: float
    status: int

    MSG_ID: ClassVar[MsgId] = MsgId.SAMPLE

    def payload_bytes(self) -> bytes:
        return PAYLOADS[MsgId.SAMPLE].build(
            dict(
                t_us=self.t_us,
                pressure_pa=self.pressure_pa,
                temperature_c=self.temperature_c,
                status=self.status,
            )
        )


@dataclass(frozen=True, slots=True)
class IdentityFrame(Frame):
    """A device's identity: model, serial, firmware (major<<8|minor), range in Pa, rate in mHz."""

    model: str
    serial: int
    firmware: int
    range_min_pa: float
    range_max_pa: float
    rate_mhz: int

    MSG_ID: ClassVar[MsgId] = MsgId.IDENTITY

    def payload_bytes(self) -> bytes:
        return PAYLOADS[MsgId.IDENTITY].build(
            dict(
                model=self.model,
                serial=self.serial,
                firmware=self.firmware,
                range_min_pa=self.range_min_pa,
                range_max_pa=self.range_max_pa,
                rate_mhz=self.rate_mhz,
            )
        )


@dataclass(frozen=True, slots=True)
class CommandFrame(Frame):
    """A host-to-device command: opcode and its raw argument bytes."""

    opcode: int
    args: bytes = b""

    MSG_ID: ClassVar[MsgId] = MsgId.COMMAND

    def payload_bytes(self) -> bytes:
        return PAYLOADS[MsgId.COMMAND].build(dict(opcode=self.opcode, args=self.args))

    def decoded_args(self) -> dict | None:
        """Arguments by name (``rate_mhz``, ``offset_pa``); None if they do not fit the opcode."""
        try:
            op = Opcode(self.opcode)
        except ValueError:
            return None
        fmt = COMMAND_ARGS.get(op)
        if fmt is None:
            return {} if not self.args else None
        if len(self.args) != fmt.sizeof():
            return None
        parsed = fmt.parse(self.args)
        return {k: v for k, v in parsed.items() if not k.startswith("_")}

    def to_json_dict(self) -> dict:
        out = {"type": self.msg_type, "addr": self.addr, "seq": self.seq, "flags": self.flags}
        try:
            out["opcode"] = Opcode(self.opcode).name
        except ValueError:
            out["opcode"] = self.opcode
        args = self.decoded_args()
        out["args"] = args if args is not None else self.args.hex()
        return out

    @classmethod
    def make(
        cls,
        addr: int,
        seq: int,
        opcode: Opcode,
        *,
        ack: bool = True,
        rate_mhz: int | None = None,
        offset_pa: float | None = None,
    ) -> CommandFrame:
        """A COMMAND with its arguments packed for ``opcode``."""
        args = b""
        if opcode == Opcode.SET_RATE:
            args = struct.pack(">I", int(rate_mhz if rate_mhz is not None else 0))
        elif opcode == Opcode.ZERO_OFFSET:
            args = struct.pack(">d", float(offset_pa if offset_pa is not None else 0.0))
        flags = Flags.TO_DEVICE | (Flags.ACK_REQUESTED if ack else 0)
        return cls(addr=addr, seq=seq, flags=int(flags), opcode=int(opcode), args=args)


@dataclass(frozen=True, slots=True)
class AckFrame(Frame):
    """A device's answer to a COMMAND with FLAGS bit 1 set."""

    command_seq: int
    opcode: int
    result: AckResult

    MSG_ID: ClassVar[MsgId] = MsgId.ACK

    def payload_bytes(self) -> bytes:
        return PAYLOADS[MsgId.ACK].build(
            dict(command_seq=self.command_seq, opcode=self.opcode, result=int(self.result))
        )

    def to_json_dict(self) -> dict:
        out = {"type": self.msg_type}
        out.update(asdict(self))
        out["result"] = self.result.name if isinstance(self.result, AckResult) else self.result
        return out


FRAME_CLASSES: dict[int, type[Frame]] = {
    MsgId.SAMPLE: SampleFrame,
    MsgId.IDENTITY: IdentityFrame,
    MsgId.COMMAND: CommandFrame,
    MsgId.ACK: AckFrame,
}


def ack_result(value: int) -> AckResult | int:
    """An ACK result as the enum where it is known, else the raw number."""
    try:
        return AckResult(value)
    except ValueError:
        return value


#: Decoded SAMPLEs in bulk (native byte order), as the decoder hands them to the
#: monitor: one record per frame, in stream order.  ``offset`` is the frame's
#: byte offset in the link's stream since the decoder started.
SAMPLE_RECORD_DTYPE = np.dtype(
    [
        ("offset", "i8"),
        ("addr", "u1"),
        ("flags", "u1"),
        ("seq", "u2"),
        ("status", "u2"),
        ("t_us", "u8"),
        ("pressure_pa", "f8"),
        ("temperature_c", "f4"),
    ]
)


def sample_records_to_frames(records) -> list[SampleFrame]:
    """Typed SampleFrames for an array of ``SAMPLE_RECORD_DTYPE`` records."""
    return [
        SampleFrame(int(a), int(s), int(f), int(t), float(p), float(c), int(st))
        for a, s, f, t, p, c, st in zip(
            records["addr"].tolist(),
            records["seq"].tolist(),
            records["flags"].tolist(),
            records["t_us"].tolist(),
            records["pressure_pa"].tolist(),
            records["temperature_c"].tolist(),
            records["status"].tolist(),
            strict=True,
        )
    ]
