"""``cabinwatch decode``: a raw byte capture -> one JSON object per accepted frame."""

from __future__ import annotations

import argparse
import json
import math
import sys

from common.errors import InputFileError
from drivers.decoder import StreamDecoder

CHUNK_BYTES = 4 << 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decode",
        help="decode a raw byte capture into JSON lines",
        description=(
            "Decode a raw byte capture of the native frame protocol. Prints one JSON object "
            "per accepted frame on stdout; corrupted bytes are counted and skipped."
        ),
    )
    p.add_argument("capture", nargs="?", default="-", help="capture file, or - for stdin")
    p.add_argument(
        "--stats", action="store_true", help="print the decoder counters as JSON on stderr"
    )
    p.add_argument("--quiet", action="store_true", help="print no frames (integrity check)")
    p.set_defaults(func=run)


def _finite(value, path: str, bad: list[str]):
    """``value`` with every NaN or infinity replaced by None, its path added to ``bad``."""
    if isinstance(value, float) and not math.isfinite(value):
        bad.append(path)
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{path}.{k}" if path else k, bad) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, f"{path}[{i}]", bad) for i, v in enumerate(value)]
    return value


def frame_json(d: dict) -> str:
    """A frame's dict as strict JSON (RFC 8259 has no NaN): a non-finite field is
    written as null and named in ``"nonfinite": ["pressure_pa", ...]``."""
    bad: list[str] = []
    clean = _finite(d, "", bad)
    if bad:
        clean["nonfinite"] = bad
    return json.dumps(clean, allow_nan=False)


def _open(path: str):
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - closed in run()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a directory, not a capture file") from None
    except PermissionError:
        raise InputFileError(path, "permission denied") from None
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from None


def run(args: argparse.Namespace) -> int:
    src = _open(args.capture)
    decoder = StreamDecoder()
    out = sys.stdout
    try:
        while True:
            try:
                chunk = src.read(CHUNK_BYTES)
            except OSError as exc:
                raise InputFileError(args.capture, exc.strerror or str(exc)) from None
            batch = decoder.feed(chunk) if chunk else decoder.flush()
            if not args.quiet and len(batch):
                out.write("".join(frame_json(f.to_json_dict()) + "\n" for f in batch.iter_frames()))
            if not chunk:
                break
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    out.flush()
    if args.stats:
        print(json.dumps(decoder.counters().to_json_dict()), file=sys.stderr)
    return 0
