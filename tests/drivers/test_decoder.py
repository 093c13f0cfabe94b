"""The resynchronising stream decoder: counters, timeouts, and properties.

Every property runs over the three decoding paths: the sequential ``struct``
walk (small chunks), the vectorized numpy scan (bulk) and the construct
reference, which must agree frame for frame and counter for counter.
"""

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.crc import crc16, hec
from drivers.decoder import StreamDecoder
from drivers.encode import encode_samples
from drivers.frames import AckFrame, CommandFrame, IdentityFrame, SampleFrame, build_frame
from drivers.protocol import SYNC, AckResult, Opcode
from drivers.reference import ReferenceDecoder
from tests.drivers.test_protocol import GOLDEN

PATHS = [False, True]  # StreamDecoder(bulk=...)


def decode_all(stream: bytes, bulk: bool | None, chunks=None):
    dec = StreamDecoder(bulk=bulk)
    frames = []
    if chunks is None:
        chunks = [stream]
    for chunk in chunks:
        frames += list(dec.feed(chunk).iter_frames())
    frames += list(dec.flush().iter_frames())
    return frames, dec.counters()


def decode_ref(stream: bytes):
    ref = ReferenceDecoder()
    frames = ref.feed(stream) + ref.flush()
    return frames, ref.counters()


def header(msg_id, addr, seq, length, ver=1, flags=0, good_hec=True):
    head = SYNC + struct.pack(">BBBBHH", ver, msg_id, addr, flags, seq, length)
    h = hec(head)
    return head + bytes([h if good_hec else h ^ 0xFF])


def framed(head: bytes, payload: bytes) -> bytes:
    body = head + payload
    return body + struct.pack(">H", crc16(body))


def sample(addr=1, seq=0, p=101325.0):
    return SampleFrame(addr, seq, 0, 1000 * (seq + 1), p, 21.0, 0)


# --- golden vectors and typed output ------------------------------------------


@pytest.mark.parametrize("bulk", PATHS)
def test_golden_stream_decodes_to_typed_frames(bulk):
    stream = b"".join(bytes.fromhex(h) for h, _ in GOLDEN.values())
    frames, counters = decode_all(stream, bulk)
    assert frames == [f for _, f in GOLDEN.values()]
    assert counters.frames == {"SAMPLE": 2, "IDENTITY": 0, "COMMAND": 2, "ACK": 1}
    assert counters.bytes_discarded == 0 and counters.errors_total == 0
    assert isinstance(frames[3], AckFrame) and frames[3].result is AckResult.OK


def test_sample_records_carry_units_and_offsets():
    stream = b"xx" + sample(2, 5).encode() + sample(3, 6).encode()
    batch = StreamDecoder().feed(stream)
    assert batch.samples["offset"].tolist() == [2, 37]
    assert batch.samples["addr"].tolist() == [2, 3]
    assert batch.samples["pressure_pa"].tolist() == [101325.0, 101325.0]
    assert batch.samples["t_us"].tolist() == [6000, 7000]


def test_identity_frame_decodes():
    frame = IdentityFrame(4, 1, 0, "PTB330-A", 123456, 0x0102, 50e3, 110e3, 10_000)
    (out,), _ = decode_all(frame.encode(), None)
    assert out == frame


# --- each counter -------------------------------------------------------------


@pytest.mark.parametrize("bulk", PATHS)
def test_hec_error_counted_and_next_frame_kept(bulk):
    bad = bytearray(sample(1, 0).encode())
    bad[6] ^= 0x40  # SEQ byte: header check fails
    frames, c = decode_all(bytes(bad) + sample(1, 1).encode(), bulk)
    assert frames == [sample(1, 1)]
    assert c.hec_errors == 1 and c.crc_errors == 0
    assert c.bytes_discarded == 35


@pytest.mark.parametrize("bulk", PATHS)
def test_crc_error_counted(bulk):
    bad = bytearray(sample(1, 0).encode())
    bad[20] ^= 0x01  # payload byte
    frames, c = decode_all(bytes(bad) + sample(1, 1).encode(), bulk)
    assert frames == [sample(1, 1)]
    assert c.crc_errors == 1 and c.hec_errors == 0


@pytest.mark.parametrize("bulk", PATHS)
def test_illegal_length_counted_before_trusting_it(bulk):
    # A SAMPLE header claiming 23 bytes, and an unknown type claiming 1025:
    # neither length is trusted, so the frames right after are not swallowed.
    bad1 = header(0x01, 1, 0, 23)
    bad2 = header(0x42, 1, 0, 1025)
    frames, c = decode_all(bad1 + bad2 + sample(1, 1).encode(), bulk)
    assert frames == [sample(1, 1)]
    assert c.illegal_lengths == 2


@pytest.mark.parametrize("bulk", PATHS)
def test_unknown_version_counted(bulk):
    future = framed(header(0x01, 1, 0, 22, ver=2), bytes(22))
    frames, c = decode_all(future + sample(1, 1).encode(), bulk)
    assert frames == [sample(1, 1)]
    assert c.unknown_versions == 1


@pytest.mark.parametrize("bulk", PATHS)
def test_unknown_message_type_skipped_whole(bulk):
    # The unknown frame's payload holds a complete SAMPLE: skipping it whole
    # means that embedded frame is not decoded.
    inner = sample(9, 9).encode()
    unknown = build_frame(0x42, 1, 0, inner)
    frames, c = decode_all(unknown + sample(1, 1).encode(), bulk)
    assert frames == [sample(1, 1)]
    assert c.unknown_msg_types == 1 and c.bytes_discarded == 0


@pytest.mark.parametrize("bulk", PATHS)
def test_garbage_counted_as_discarded_bytes(bulk):
    garbage = b"\x00\xeb\x90\x01garbage\xeb"
    frames, c = decode_all(garbage + sample().encode() + garbage, bulk)
    assert frames == [sample()]
    assert c.bytes_discarded == 2 * len(garbage)
    assert c.bytes_in == 2 * len(garbage) + 35


@pytest.mark.parametrize("bulk", PATHS)
def test_sequence_gaps_per_address_with_wrap(bulk):
    seqs = {1: [65534, 65535, 0, 1], 2: [10, 11, 13, 14, 20]}
    stream = b"".join(sample(a, s).encode() for a in (1, 2) for s in seqs[a])
    _, c = decode_all(stream, bulk)
    assert c.seq_gaps == {2: 2}
    # Host-to-device commands are numbered by the host's own counter.
    cmds = b"".join(CommandFrame.make(1, s, Opcode.START).encode() for s in (1, 2, 4))
    _, c = decode_all(cmds, bulk)
    assert c.command_seq_gaps == {1: 1} and c.seq_gaps == {}


@pytest.mark.parametrize("bulk", PATHS)
def test_sequence_gap_across_feeds(bulk):
    dec = StreamDecoder(bulk=bulk)
    dec.feed(sample(1, 1).encode())
    dec.feed(sample(1, 3).encode())
    assert dec.counters().seq_gaps == {1: 1}


# --- partial frames and the timeout ------------------------------------------


@pytest.mark.parametrize("bulk", PATHS)
def test_partial_frame_waits_then_completes(bulk):
    raw = sample().encode()
    dec = StreamDecoder(partial_timeout_s=0.5, bulk=bulk)
    assert len(dec.feed(raw[:20], now_s=0.0)) == 0
    assert dec.pending_bytes == 20
    batch = dec.feed(raw[20:], now_s=0.3)
    assert list(batch.iter_frames()) == [sample()]


@pytest.mark.parametrize("bulk", PATHS)
def test_stale_partial_abandoned_on_poll(bulk):
    raw = sample().encode()
    dec = StreamDecoder(partial_timeout_s=0.5, bulk=bulk)
    dec.feed(raw[:20], now_s=0.0)
    dec.poll(now_s=0.4)
    assert dec.counters().abandoned_partials == 0
    dec.poll(now_s=0.6)
    c = dec.counters()
    assert c.abandoned_partials == 1 and dec.pending_bytes == 0 and c.bytes_discarded == 20


@pytest.mark.parametrize("bulk", PATHS)
def test_stale_partial_abandoned_when_late_bytes_arrive(bulk):
    # A frame cut off, then (after the timeout) a whole new frame: without the
    # timeout the two would be glued together and the new frame lost.
    raw = sample(1, 0).encode()
    dec = StreamDecoder(partial_timeout_s=0.5, bulk=bulk)
    dec.feed(raw[:30], now_s=0.0)
    batch = dec.feed(sample(1, 1).encode(), now_s=2.0)
    assert list(batch.iter_frames()) == [sample(1, 1)]
    assert dec.counters().abandoned_partials == 1


def test_abandoning_rescans_what_the_partial_claimed():
    # A header claiming 1024 bytes hides a complete SAMPLE; when the claim
    # times out the SAMPLE inside it is still found.
    claim = header(0x42, 1, 0, 1024)
    dec = StreamDecoder(partial_timeout_s=0.5)
    assert len(dec.feed(claim + sample().encode(), now_s=0.0)) == 0
    batch = dec.poll(now_s=1.0)
    assert list(batch.iter_frames()) == [sample()]


# --- properties ---------------------------------------------------------------

frames_st = st.lists(
    st.one_of(
        st.builds(
            SampleFrame,
            addr=st.integers(1, 4),
            seq=st.integers(0, 65535),
            flags=st.just(0),
            t_us=st.integers(0, 2**63),
            pressure_pa=st.floats(50e3, 120e3),
            temperature_c=st.just(21.5),
            status=st.integers(0, 63),
        ),
        st.builds(
            AckFrame,
            addr=st.integers(1, 4),
            seq=st.integers(0, 65535),
            flags=st.just(0),
            command_seq=st.integers(0, 65535),
            opcode=st.integers(0, 255),
            result=st.sampled_from(AckResult),
        ),
        st.builds(
            CommandFrame.make,
            addr=st.integers(1, 255),
            seq=st.integers(0, 65535),
            opcode=st.sampled_from(Opcode),
            rate_mhz=st.integers(1, 2**32 - 1),
        ),
    ),
    max_size=25,
)

garbage_st = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda b: SYNC + b, st.binary(max_size=20)),
    st.builds(lambda k: sample().encode()[:k], st.integers(1, 34)),
    st.builds(lambda k: header(0x01, 1, 0, 22)[:k], st.integers(1, 11)),
)


@given(frames=frames_st, garbage=st.lists(garbage_st, min_size=0, max_size=26), data=st.data())
def test_frames_between_garbage_all_recovered_in_order(frames, garbage, data):
    pieces = []
    for i, frame in enumerate(frames):
        if i < len(garbage):
            pieces.append(garbage[i])
        pieces.append(frame.encode())
    stream = b"".join(pieces)
    expected = [f for f in frames]
    ref_frames, ref_counters = decode_ref(stream)
    assert ref_frames == expected
    for bulk in PATHS:
        out, counters = decode_all(stream, bulk)
        assert out == expected
        assert counters == ref_counters


@given(
    frames=st.lists(st.integers(0, 65535), min_size=1, max_size=40),
    hits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=5),
)
def test_corruption_loses_only_the_frames_it_touched(frames, hits):
    encoded = [sample(1 + s % 3, s).encode() for s in frames]
    stream = bytearray(b"".join(encoded))
    touched = set()
    for where, xor in hits:
        # One changed byte per frame: a burst under 16 bits, which the CRC always catches.
        pos = where % len(stream)
        if pos // 35 not in touched:
            stream[pos] ^= xor
            touched.add(pos // 35)
    expected = [sample(1 + s % 3, s) for i, s in enumerate(frames) if i not in touched]
    for bulk in PATHS:
        out, _ = decode_all(bytes(stream), bulk)
        assert out == expected


@given(frames=frames_st, garbage=st.binary(max_size=300), cuts=st.lists(st.integers(0, 2000)))
def test_output_independent_of_chunking(frames, garbage, cuts):
    stream = garbage[:150] + b"".join(f.encode() for f in frames) + garbage[150:]
    whole, whole_counters = decode_all(stream, None)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    for bulk in (*PATHS, None):
        out, counters = decode_all(stream, bulk, chunks)
        assert out == whole
        assert counters == whole_counters


@given(st.binary(max_size=3000), st.integers(1, 700))
def test_arbitrary_bytes_never_raise_and_paths_agree(blob, chunk):
    ref_frames, ref_counters = decode_ref(blob)
    for bulk in PATHS:
        chunks = [blob[i : i + chunk] for i in range(0, len(blob), chunk)]
        out, counters = decode_all(blob, bulk, chunks)
        assert out == ref_frames
        assert counters == ref_counters
        assert counters.bytes_in == len(blob)


@pytest.mark.parametrize("seed", range(4))
def test_bulk_and_small_paths_agree_on_long_noisy_streams(seed):
    """Fast paths against the construct reference on a stream with 1 % garbage."""
    rng = np.random.default_rng(seed)
    n = 3000
    rec = encode_samples(
        rng.integers(1, 9, n),
        np.arange(n),
        np.arange(n, dtype=np.uint64) * 100_000,
        101_325 + rng.normal(0, 3, n),
        21 + rng.normal(0, 0.1, n),
        rng.integers(0, 64, n),
    )
    raw = np.frombuffer(rec.tobytes(), dtype=np.uint8).copy()
    # 1 % garbage bytes inserted at random places, some of them SYNC bytes.
    k = len(raw) // 100
    where = np.sort(rng.integers(0, len(raw), k))
    junk = rng.integers(0, 256, k).astype(np.uint8)
    junk[::7] = 0xEB
    stream = np.insert(raw, where, junk).tobytes()
    ref_frames, ref_counters = decode_ref(stream)
    for bulk in PATHS:
        chunks = [stream[i : i + 560] for i in range(0, len(stream), 560)]
        out, counters = decode_all(stream, bulk, chunks)
        assert out == ref_frames
        assert counters == ref_counters
    big, big_counters = decode_all(stream, True)
    assert big == ref_frames and big_counters == ref_counters
    assert ref_counters.bytes_discarded >= k


def test_bulk_blocks_keep_stream_offsets(monkeypatch):
    """A buffer scanned in many blocks gives the same frames and offsets as the walk."""
    import drivers.decoder as decoder_module

    monkeypatch.setattr(decoder_module, "BULK_BLOCK_BYTES", 4096)
    rng = np.random.default_rng(7)
    n = 4000
    rec = encode_samples(
        rng.integers(1, 5, n),
        np.arange(n),
        np.arange(n, dtype=np.uint64),
        101_325 + rng.normal(0, 3, n),
        21.0 + np.zeros(n),
    )
    raw = np.frombuffer(rec.tobytes(), dtype=np.uint8)
    where = np.sort(rng.integers(0, len(raw), len(raw) // 100))
    stream = np.insert(raw, where, rng.integers(0, 256, len(where)).astype(np.uint8)).tobytes()
    bulk = StreamDecoder(bulk=True)
    big = bulk.feed(stream).samples
    small = StreamDecoder(bulk=False)
    parts = [small.feed(stream[i : i + 500]).samples for i in range(0, len(stream), 500)]
    walked = np.concatenate(parts)
    assert len(big) == len(walked) > 0.6 * n  # inserts inside a frame destroy it
    assert (big == walked).all()
    starts = big["offset"]
    assert all(stream[s : s + 2] == SYNC for s in starts[::97].tolist())
    assert bulk.counters() == small.counters()
