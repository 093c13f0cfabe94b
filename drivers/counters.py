"""Decoder counters: the mutable tallies the scanners keep, and their frozen snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drivers.protocol import MsgId


@dataclass(frozen=True, slots=True)
class DecoderCounters:
    """A snapshot of a decoder's counters (all counts since it was created).

    Every byte in is in exactly one of: an accepted frame, ``bytes_discarded``,
    ``bytes_unknown`` (well-formed frames of an unknown MSG_ID, skipped whole), or
    the bytes still held for a partial frame.
    """

    bytes_in: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    bytes_discarded: int = 0
    hec_errors: int = 0
    crc_errors: int = 0
    illegal_lengths: int = 0
    unknown_versions: int = 0
    unknown_msg_types: int = 0
    bytes_unknown: int = 0
    abandoned_partials: int = 0
    seq_gaps: dict[int, int] = field(default_factory=dict)
    command_seq_gaps: dict[int, int] = field(default_factory=dict)

    @property
    def frames_total(self) -> int:
        return sum(self.frames.values())

    @property
    def errors_total(self) -> int:
        return (
            self.hec_errors
            + self.crc_errors
            + self.illegal_lengths
            + self.unknown_versions
            + self.abandoned_partials
        )

    def to_json_dict(self) -> dict:
        return {
            "bytes_in": self.bytes_in,
            "frames": dict(self.frames),
            "bytes_discarded": self.bytes_discarded,
            "hec_errors": self.hec_errors,
            "crc_errors": self.crc_errors,
            "illegal_lengths": self.illegal_lengths,
            "unknown_versions": self.unknown_versions,
            "unknown_msg_types": self.unknown_msg_types,
            "bytes_unknown": self.bytes_unknown,
            "abandoned_partials": self.abandoned_partials,
            "seq_gaps": {str(k): v for k, v in sorted(self.seq_gaps.items())},
            "command_seq_gaps": {str(k): v for k, v in sorted(self.command_seq_gaps.items())},
        }


class Counts:
    """Mutable counters that the scanners update; ``snapshot()`` freezes them."""

    __slots__ = (
        "bytes_in",
        "frames",
        "discarded",
        "hec",
        "crc",
        "illegal",
        "version",
        "unknown",
        "unknown_bytes",
        "abandoned",
        "last_seq",
        "gaps",
    )

    def __init__(self) -> None:
        self.bytes_in = 0
        self.frames = dict.fromkeys((m.name for m in MsgId), 0)
        self.discarded = 0
        self.hec = 0
        self.crc = 0
        self.illegal = 0
        self.version = 0
        self.unknown = 0
        self.unknown_bytes = 0  # whole frames of unknown MSG_IDs, skipped
        self.abandoned = 0
        # Sequence tracking keyed by direction * 256 + address.
        self.last_seq = [-1] * 512
        self.gaps = [0] * 512

    def snapshot(self) -> DecoderCounters:
        nz = [k for k, g in enumerate(self.gaps) if g]
        return DecoderCounters(
            bytes_in=self.bytes_in,
            frames=dict(self.frames),
            bytes_discarded=self.discarded,
            hec_errors=self.hec,
            crc_errors=self.crc,
            illegal_lengths=self.illegal,
            unknown_versions=self.version,
            unknown_msg_types=self.unknown,
            bytes_unknown=self.unknown_bytes,
            abandoned_partials=self.abandoned,
            seq_gaps={k: self.gaps[k] for k in nz if k < 256},
            command_seq_gaps={k - 256: self.gaps[k] for k in nz if k >= 256},
        )

    def track_seq(self, keys: np.ndarray, seqs: np.ndarray) -> None:
        """Count sequence gaps of accepted frames in stream order (65535 -> 0 is no gap).

        ``keys`` are direction * 256 + address; one radix sort groups them.
        """
        if len(keys) == 0:
            return
        order = np.argsort(keys.astype(np.uint16), kind="stable")
        k = keys[order]
        q = seqs[order].astype(np.int64)
        same = k[1:] == k[:-1]
        bad = same & (((q[1:] - q[:-1]) & 0xFFFF) != 1)
        within = np.bincount(k[1:][bad], minlength=512) if bad.any() else None
        firsts = np.flatnonzero(np.concatenate(([True], ~same)))
        lasts = np.concatenate((firsts[1:] - 1, [len(k) - 1]))
        for key, first, last in zip(
            k[firsts].tolist(), q[firsts].tolist(), q[lasts].tolist(), strict=True
        ):
            prev = self.last_seq[key]
            if prev >= 0 and (first - prev) & 0xFFFF != 1:
                self.gaps[key] += 1
            if within is not None:
                self.gaps[key] += int(within[key])
            self.last_seq[key] = last
