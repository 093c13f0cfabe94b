"""The wire contract: golden vectors both ways, round trips, CRC check values."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.crc import crc16, crc16_rows, hec, hec_rows
from drivers.encode import encode_samples
from drivers.frames import AckFrame, CommandFrame, IdentityFrame, SampleFrame, build_frame
from drivers.protocol import FRAME, AckResult, MsgId, Opcode, legal_length

GOLDEN = {
    "sample_addr1": (
        "eb 90 01 01 01 00 00 01 00 16 10 00 00 00 00 00 16 e3 60 40 f8 bc d0"
        " 00 00 00 00 41 ac 00 00 00 00 7a b0",
        SampleFrame(1, 1, 0, 1_500_000, 101325.0, 21.5, 0),
    ),
    "sample_addr3_wrap": (
        "eb 90 01 01 03 00 ff ff 00 16 d3 00 00 00 14 1d d7 60 00 40 f8 61 e2"
        " 00 00 00 00 c0 a8 00 00 00 11 06 6a",
        SampleFrame(3, 65535, 0, 86_400_000_000, 99870.125, -5.25, 0x0011),
    ),
    "identify": (
        "eb 90 01 10 01 03 00 07 00 01 a2 01 c7 2b",
        CommandFrame.make(1, 7, Opcode.IDENTIFY),
    ),
    "ack": (
        "eb 90 01 11 01 00 00 08 00 04 87 00 07 01 00 ba f4",
        AckFrame(1, 8, 0, 7, Opcode.IDENTIFY, AckResult.OK),
    ),
    "set_rate_broadcast": (
        "eb 90 01 10 ff 03 00 08 00 05 7f 02 00 00 27 10 7a ce",
        CommandFrame.make(255, 8, Opcode.SET_RATE, rate_mhz=10_000),
    ),
}


def test_check_values():
    assert hec(b"123456789") == 0xA1
    assert crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_build(name):
    hexstr, frame = GOLDEN[name]
    assert frame.encode() == bytes.fromhex(hexstr)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_parse_construct(name):
    hexstr, frame = GOLDEN[name]
    parsed = FRAME.parse(bytes.fromhex(hexstr))
    head = parsed.header.value
    assert (head.msg_id, head.addr, head.seq, head.flags) == (
        frame.MSG_ID,
        frame.addr,
        frame.seq,
        frame.flags,
    )
    assert parsed.payload.data == frame.payload_bytes()


def test_golden_samples_vectorized_encoder():
    g1 = bytes.fromhex(GOLDEN["sample_addr1"][0])
    g2 = bytes.fromhex(GOLDEN["sample_addr3_wrap"][0])
    rec = encode_samples(
        np.array([1, 3]),
        np.array([1, 65535]),
        np.array([1_500_000, 86_400_000_000], dtype=np.uint64),
        np.array([101325.0, 99870.125]),
        np.array([21.5, -5.25]),
        np.array([0, 0x11]),
    )
    assert rec.tobytes() == g1 + g2


def test_bad_checksums_rejected_by_construct():
    from construct import ChecksumError

    raw = bytearray(bytes.fromhex(GOLDEN["ack"][0]))
    raw[-1] ^= 1
    with pytest.raises(ChecksumError):
        FRAME.parse(bytes(raw))
    raw = bytearray(bytes.fromhex(GOLDEN["ack"][0]))
    raw[10] ^= 1
    with pytest.raises(ChecksumError):
        FRAME.parse(bytes(raw))


def test_legal_lengths():
    assert legal_length(MsgId.SAMPLE, 22) and not legal_length(MsgId.SAMPLE, 21)
    assert legal_length(MsgId.IDENTITY, 40) and not legal_length(MsgId.IDENTITY, 22)
    assert legal_length(MsgId.ACK, 4) and not legal_length(MsgId.ACK, 5)
    assert legal_length(MsgId.COMMAND, 1) and not legal_length(MsgId.COMMAND, 0)
    assert legal_length(0x42, 1024) and not legal_length(0x42, 1025)


def test_command_args_decoded():
    cmd = CommandFrame.make(2, 1, Opcode.ZERO_OFFSET, offset_pa=-12.5)
    assert cmd.decoded_args() == {"offset_pa": -12.5}
    assert CommandFrame(2, 1, 3, Opcode.SET_RATE, b"\x00").decoded_args() is None
    assert CommandFrame(2, 1, 3, 0x7F, b"").decoded_args() is None


@given(
    addr=st.integers(1, 247),
    seq=st.integers(0, 65535),
    t_us=st.integers(0, 2**64 - 1),
    p=st.floats(allow_nan=False, width=64),
    t=st.floats(allow_nan=False, width=32),
    status=st.integers(0, 0xFFFF),
)
def test_sample_encoders_agree(addr, seq, t_us, p, t, status):
    frame = SampleFrame(addr, seq, 0, t_us, p, t, status)
    rec = encode_samples(
        np.array([addr]),
        np.array([seq]),
        np.array([t_us], dtype=np.uint64),
        np.array([p]),
        np.array([t], dtype=np.float32),
        np.array([status]),
    )
    assert rec.tobytes() == frame.encode()


@given(st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=20))
def test_vectorized_crcs_match_scalar(rows):
    length = len(rows[0])
    rows = [r[:length].ljust(length, b"\0") for r in rows]
    arr = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), length)
    assert crc16_rows(arr).tolist() == [crc16(r) for r in rows]
    assert hec_rows(arr).tolist() == [hec(r) for r in rows]


@given(
    model=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=16),
    serial=st.integers(0, 2**32 - 1),
    firmware=st.integers(0, 0xFFFF),
    rate=st.integers(0, 2**32 - 1),
)
def test_identity_round_trip(model, serial, firmware, rate):
    frame = IdentityFrame(5, 9, 0, model, serial, firmware, 50_000.0, 110_000.0, rate)
    parsed = FRAME.parse(frame.encode())
    assert parsed.payload.value.model == model
    assert parsed.payload.value.serial == serial
    assert parsed.payload.value.rate_mhz == rate


def test_unknown_message_builds():
    raw = build_frame(0x42, 9, 1, b"abc")
    assert FRAME.parse(raw).payload.data == b"abc"
