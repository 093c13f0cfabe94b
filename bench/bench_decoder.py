"""Decoder throughput: construct's per-frame parse against the project's decoder.

Measured side by side, in interleaved rounds on one pinned core: construct
parsing one SAMPLE frame; the decoder on a clean stream of 10^6 SAMPLEs, on the
same stream with 1 % garbage bytes, and fed 16 frames per call as a live link
delivers them.  Goals (issue 2): >= 3e6 frames/s in bulk, <= 2 us per frame in
16-frame chunks.  Run: ``make bench`` or ``.venv/bin/python -m bench decoder``.
"""

from __future__ import annotations

import numpy as np

from bench.common import interleaved, machine, pin_one_core
from drivers.decoder import StreamDecoder
from drivers.encode import encode_samples
from drivers.protocol import FRAME

N_FRAMES = 1_000_000
CHUNK_FRAMES = 16
LIVE_FRAMES = 64_000
CONSTRUCT_FRAMES = 2_000
LINK_921600_FPS = 921_600 / 350  # 8N1: 350 bit times per 35-byte frame


def _streams(rng: np.random.Generator) -> tuple[bytes, bytes]:
    n_addr = 16
    addr = np.tile(np.arange(1, n_addr + 1), N_FRAMES // n_addr)
    seq = np.repeat(np.arange(N_FRAMES // n_addr), n_addr)
    clean = encode_samples(
        addr,
        seq,
        seq.astype(np.uint64) * 100_000,
        101_325 + rng.normal(0, 3, N_FRAMES),
        21 + rng.normal(0, 0.1, N_FRAMES),
    ).tobytes()
    raw = np.frombuffer(clean, dtype=np.uint8)
    k = len(raw) // 100
    where = np.sort(rng.integers(0, len(raw), k))
    junk = rng.integers(0, 256, k).astype(np.uint8)
    noisy = np.insert(raw, where, junk).tobytes()
    return clean, noisy


def main() -> None:
    pinned = pin_one_core()
    rng = np.random.default_rng(1)
    clean, noisy = _streams(rng)
    frame = clean[:35]
    live = [clean[i : i + 35 * CHUNK_FRAMES] for i in range(0, 35 * LIVE_FRAMES, 35 * CHUNK_FRAMES)]
    noisy_frames = len(StreamDecoder().feed(noisy).samples)

    def construct_parse():
        for _ in range(CONSTRUCT_FRAMES):
            FRAME.parse(frame)

    def bulk_clean():
        assert len(StreamDecoder().feed(clean).samples) == N_FRAMES

    def bulk_noisy():
        StreamDecoder().feed(noisy)

    def chunks16():
        dec = StreamDecoder()
        for chunk in live:
            dec.feed(chunk)

    t = interleaved(
        {
            "construct": construct_parse,
            "clean": bulk_clean,
            "noisy": bulk_noisy,
            "chunks": chunks16,
        },
        rounds=7,
    )
    us_construct = t["construct"] / CONSTRUCT_FRAMES * 1e6
    rows = [
        ("construct FRAME.parse, one SAMPLE per call", us_construct, 1e6 / us_construct),
        ("decoder, clean stream, 10^6 SAMPLEs in one call", t["clean"] / N_FRAMES * 1e6, None),
        (
            "decoder, 1 % garbage bytes (10^6 SAMPLEs sent)",
            t["noisy"] / N_FRAMES * 1e6,
            None,
        ),
        (
            f"decoder, {CHUNK_FRAMES} frames per call (live link)",
            t["chunks"] / LIVE_FRAMES * 1e6,
            None,
        ),
    ]
    print(f"machine: {machine()}; {pinned}; medians of 7 interleaved rounds")
    print("| case | us/frame | frames/s | x construct | x 921600-baud link |")
    print("|---|---:|---:|---:|---:|")
    for name, us, _ in rows:
        fps = 1e6 / us
        print(
            f"| {name} | {us:.3f} | {fps:,.0f} | {us_construct / us:,.0f} | "
            f"{fps / LINK_921600_FPS:,.0f} |"
        )
    print(f"(the 1 % garbage stream still yields {noisy_frames:,} intact frames)")
    bulk_fps = N_FRAMES / t["clean"]
    live_us = t["chunks"] / LIVE_FRAMES * 1e6
    print(
        f"goals: bulk >= 3.0e6 frames/s: {'met' if bulk_fps >= 3e6 else 'NOT met'} "
        f"({bulk_fps:.2e}); 16-frame chunks <= 2 us/frame: "
        f"{'met' if live_us <= 2 else 'NOT met'} ({live_us:.2f} us)"
    )


if __name__ == "__main__":
    main()
