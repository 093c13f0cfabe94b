"""CCSDS/PUS-C packets: golden bytes checked field by field, the CUC time code,
per-APID sequence counts, and a round trip through ``spacepackets``."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spacepackets.ecss.tm import PusTm

from firmware_host.alarms import AlarmEvent, AlarmKind, AlarmLevel, Transition
from firmware_host.ground import cuc
from firmware_host.ground.layout import (
    EVENT_IDS,
    EVENT_STRUCT,
    SOURCE_OTHER,
    EventSubtype,
    GroundLayout,
)
from firmware_host.ground.packets import PacketBuilder

LAYOUT = GroundLayout(
    volumes=("cabin", "airlock"),
    links=("bus0",),
    sensors=(("bus0:1", "cabin", "bus0"), ("bus0:2", "airlock", "bus0")),
    sources=("cabin", "airlock", "bus0:1", "bus0:2", "bus0"),
)


def _event(t_s=1.5, level=AlarmLevel.CAUTION, kind=AlarmKind.LEAK, value=9.5, limit=2.0, **kw):
    return AlarmEvent(
        t_s=t_s,
        source=kw.get("source", "cabin"),
        level=level,
        kind=kind,
        transition=kw.get("transition", Transition.RAISED),
        value=value,
        limit=limit,
        unit="kg/day",
        message="test",
    )


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE written out (poly 0x1021, init 0xFFFF, no reflection, no xor-out):
    the packet error control of ECSS-E-ST-70-41C annex B."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_reference_check_value():
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # the catalogue's check value


GOLDEN_EVENT = bytes.fromhex(
    "0901 c000 0024"  # primary header: APID 0x101, unsegmented count 0, length 36
    "20 05 02 0000 0000"  # PUS-C: version 2, TM[5,2], counter 0, destination 0
    "00000001 8000"  # CUC 1.5 s
    "0001 0000 00 02"  # event 1 (LEAK), source 0 (cabin), RAISED, CAUTION
    "4023000000000000 4000000000000000"  # value 9.5, limit 2.0
    "3f65"  # CRC-16/CCITT-FALSE
)


def test_golden_event_packet_field_by_field():
    data = PacketBuilder(LAYOUT, gps_origin_s=0.0).event(_event()).data
    assert data == GOLDEN_EVENT
    # primary header (CCSDS 133.0-B-2 4.1.3): version 0, type 0 (TM), secondary header 1,
    # APID 0x101; sequence flags 0b11 (unsegmented), count 0; data length = octets - 7
    word0, word1, length = struct.unpack(">HHH", data[:6])
    assert word0 >> 13 == 0 and (word0 >> 12) & 1 == 0 and (word0 >> 11) & 1 == 1
    assert word0 & 0x7FF == 0x101
    assert word1 >> 14 == 0b11 and word1 & 0x3FFF == 0
    assert length == len(data) - 7 == 36
    # PUS-C TM secondary header: version 2, time ref 0, service 5, subtype 2 (CAUTION),
    # message type counter 0, destination 0
    assert data[6] == 0x20 and data[7] == 5 and data[8] == EventSubtype.LOW_SEVERITY == 2
    assert data[9:11] == b"\0\0" and data[11:13] == b"\0\0"
    # CUC: 4 octets of seconds, 2 of 2**-16 s
    assert data[13:19] == b"\x00\x00\x00\x01\x80\x00"
    assert EVENT_STRUCT.unpack(data[19:-2]) == (1, 0, 0, 2, 9.5, 2.0)
    assert int.from_bytes(data[-2:], "big") == crc16_ccitt_false(data[:-2])
    assert crc16_ccitt_false(data) == 0  # the receiver's check


def test_cuc_time_code():
    assert cuc.PFIELD == 0b0_010_11_10 == 0x2E
    assert cuc.encode(0.0) == bytes(6)
    assert cuc.encode(1.5) == bytes.fromhex("000000018000")
    assert cuc.encode(2**32 - 2**-16) == bytes.fromhex("ffffffffffff")
    assert cuc.decode(cuc.encode(12345.25)) == 12345.25
    assert cuc.unix_to_gps_s(cuc.GPS_EPOCH_UNIX_S) == cuc.GPS_UTC_LEAP_S
    for bad in (-1.0, 2.0**32, math.nan, math.inf):
        with pytest.raises(ValueError):
            cuc.encode(bad)


def test_subtype_by_level_and_sequence_counts_per_apid():
    b = PacketBuilder(LAYOUT)
    subtypes = [b.event(_event(level=lv)).subtype for lv in AlarmLevel]
    assert subtypes == [1, 2, 3, 4]
    events = [b.event(_event()) for _ in range(3)]
    assert [p.seq_count for p in events] == [4, 5, 6]
    assert all(p.apid == LAYOUT.apid_events for p in events)


def test_unknown_source_and_alarm_level_tracking():
    b = PacketBuilder(LAYOUT)
    p = b.event(_event(source="capture:bus9", kind=AlarmKind.OUTPUT_FAILED))
    assert EVENT_STRUCT.unpack(p.data[19:-2])[1] == SOURCE_OTHER
    b.event(_event(level=AlarmLevel.WARNING, kind=AlarmKind.LOW_RESERVE))
    b.event(_event())
    assert b.volume_alarm_level("cabin") == 3 and b.volume_alarm_level("airlock") == 0
    b.event(_event(level=AlarmLevel.WARNING, kind=AlarmKind.LOW_RESERVE,
                   transition=Transition.RETURN_TO_NORMAL))  # fmt: skip
    assert b.volume_alarm_level("cabin") == 2


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=200, deadline=None)
@given(
    t_s=st.floats(0, 2**31, allow_nan=False),
    level=st.sampled_from(list(AlarmLevel)),
    kind=st.sampled_from(list(AlarmKind)),
    transition=st.sampled_from(list(Transition)),
    value=floats,
    limit=floats,
    n_before=st.integers(0, 5),
)
def test_round_trip_through_spacepackets(t_s, level, kind, transition, value, limit, n_before):
    b = PacketBuilder(LAYOUT, gps_origin_s=1000.0)
    for _ in range(n_before):
        b.event(_event())
    ev = _event(t_s, level, kind, value, limit, transition=transition)
    p = b.event(ev)
    tm = PusTm.unpack(p.data, timestamp_len=cuc.LENGTH)  # checks the CRC too
    assert tm.apid == LAYOUT.apid_events and tm.seq_count == n_before
    assert tm.service == 5 and tm.message_subtype == int(level)
    assert tm.timestamp == cuc.encode(1000.0 + t_s)
    assert abs(cuc.decode(tm.timestamp) - (1000.0 + t_s)) < 2**-16
    assert tm.pack() == p.data
    fields = EVENT_STRUCT.unpack(tm.source_data)
    assert fields[:4] == (EVENT_IDS[kind], 0, list(Transition).index(transition), int(level))
    # bit for bit, NaN included
    assert tm.source_data[6:] == struct.pack(">dd", value, limit)
