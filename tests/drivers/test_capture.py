"""Raw link capture in size-rotated files, and read-back."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from drivers.capture import RotatingCapture, capture_files, iter_capture, read_capture
from drivers.decoder import StreamDecoder
from drivers.driver import NativeDriver
from tests.support.fake_device import Collector, PtyBus, wait_until


def _chunks(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes() for _ in range(n)
    ]


@pytest.mark.timeout(10)
def test_rotates_by_size_and_reads_back_in_order(tmp_path):
    chunks = _chunks(200)
    prefix = tmp_path / "caps" / "link0"
    with RotatingCapture(prefix, max_bytes=1000) as cap:
        for c in chunks:
            cap(c, 0.0)
        assert cap.current_path is not None
    files = capture_files(prefix)
    assert len(files) > 5
    assert [f.name for f in files[:2]] == ["link0.000000.bin", "link0.000001.bin"]
    assert all(f.stat().st_size <= 1000 for f in files)
    assert read_capture(prefix) == b"".join(chunks)
    assert b"".join(iter_capture(prefix, chunk_bytes=7)) == b"".join(chunks)
    assert cap.bytes_written == sum(map(len, chunks)) and cap.files_opened == len(files)


@pytest.mark.timeout(10)
def test_a_chunk_larger_than_max_bytes_gets_a_file_of_its_own(tmp_path):
    with RotatingCapture(tmp_path / "big", max_bytes=10) as cap:
        cap.write(b"abc")
        cap.write(b"x" * 25)
        cap.write(b"def")
    assert [f.read_bytes() for f in capture_files(tmp_path / "big")] == [b"abc", b"x" * 25, b"def"]


@pytest.mark.timeout(10)
def test_keep_deletes_the_oldest_files(tmp_path):
    chunks = [bytes([i]) * 100 for i in range(10)]
    with RotatingCapture(tmp_path / "k", max_bytes=100, keep=3) as cap:
        for c in chunks:
            cap.write(c)
    files = capture_files(tmp_path / "k")
    assert [f.name for f in files] == ["k.000007.bin", "k.000008.bin", "k.000009.bin"]
    assert read_capture(tmp_path / "k") == b"".join(chunks[-3:])
    assert cap.files_deleted == 7


@pytest.mark.timeout(10)
def test_numbering_continues_after_a_restart_and_other_prefixes_are_ignored(tmp_path):
    with RotatingCapture(tmp_path / "a", max_bytes=100) as cap:
        cap.write(b"first")
    (tmp_path / "ab.000005.bin").write_bytes(b"not mine")
    (tmp_path / "a.000009.txt").write_bytes(b"not mine either")
    with RotatingCapture(tmp_path / "a", max_bytes=100) as cap:
        cap.write(b"second")
    assert [f.name for f in capture_files(tmp_path / "a")] == ["a.000000.bin", "a.000001.bin"]
    assert read_capture(tmp_path / "a") == b"firstsecond"
    assert capture_files(tmp_path / "missing" / "x") == []


@pytest.mark.slow
@pytest.mark.timeout(10)
def test_flushed_within_the_interval_without_close(tmp_path):
    cap = RotatingCapture(tmp_path / "f", max_bytes=1 << 20, flush_interval_s=0.1)
    try:
        cap.write(b"z" * 100)
        assert wait_until(lambda: capture_files(tmp_path / "f")[0].stat().st_size == 100, 5)
    finally:
        cap.close()
    cap.close()  # idempotent
    with pytest.raises(ValueError):
        cap.write(b"late")


@pytest.mark.timeout(10)
def test_concurrent_writers_lose_nothing(tmp_path):
    cap = RotatingCapture(tmp_path / "t", max_bytes=5000)

    def writer(tag: int):
        for i in range(300):
            cap.write(bytes([tag]) * (1 + i % 50))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cap.close()
    data = read_capture(tmp_path / "t")
    assert len(data) == 4 * sum(1 + i % 50 for i in range(300))
    for tag in range(4):
        assert data.count(bytes([tag])) == sum(1 + i % 50 for i in range(300))


@pytest.mark.slow
@pytest.mark.timeout(20)
def test_a_live_link_capture_equals_the_bytes_sent_and_decodes(tmp_path):
    bus = PtyBus(tmp_path, addrs=(1, 2), rate_mhz=500_000).start()
    cap = RotatingCapture(tmp_path / "cap" / "link1", max_bytes=2000, keep=None)
    drv = NativeDriver("link1", bus.url, raw_sink=cap, backoff_min_s=0.05, idle_s=0.05)
    try:
        drv.start()
        assert drv.wait_connected(5)
        bus.record = True
        bus.inject(b"\x00junk\xeb\x90")
        bus.set_streaming(True)
        col = Collector(drv)
        assert col.until(lambda c: c.n_samples >= 200)
        bus.set_streaming(False)
        bus.record = False
        sent = bytes(bus.sent)
        assert wait_until(lambda: drv.health().bytes_in >= len(sent), 5)
    finally:
        drv.stop()
        bus.stop()
        cap.close()
    assert len(capture_files(tmp_path / "cap" / "link1")) > 3
    captured = read_capture(tmp_path / "cap" / "link1")
    assert captured == sent
    # One file alone decodes (what `cabinwatch decode FILE` does), and all of them in order
    # give exactly the samples the driver delivered.
    one = StreamDecoder().feed(capture_files(tmp_path / "cap" / "link1")[1].read_bytes())
    assert len(one.samples) > 0
    dec = StreamDecoder()
    recs = np.concatenate([dec.feed(captured).samples, dec.flush().samples])
    col.poll()
    live = np.concatenate(col.samples)
    assert len(recs) == len(live)
    assert np.array_equal(recs["seq"], live["seq"]) and np.array_equal(recs["addr"], live["addr"])
