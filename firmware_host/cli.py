"""The ``cabinwatch`` command: a dispatcher over one module per subcommand.

Each module in ``COMMANDS`` exposes ``register(subparsers)``, which adds its
parser and sets ``func=run`` where ``run(args) -> int``.  Errors the user can
fix (``CabinwatchError``) print one line on stderr and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, version

from common.errors import CabinwatchError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = (
    "firmware_host.commands.demo",
    "firmware_host.commands.monitor",
    "firmware_host.commands.simulate",
    "firmware_host.commands.emulate",
    "firmware_host.commands.analyze",
    "firmware_host.commands.decode",
    "firmware_host.commands.plot",
    "firmware_host.commands.config",
    "firmware_host.commands.ctl",
)


def _version() -> str:
    try:
        return version("cabinwatch")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cabinwatch",
        description="Real-time cabin-pressure leak monitor and its hardware-in-the-loop emulator.",
    )
    parser.add_argument("--version", action="version", version=f"cabinwatch {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if importlib.util.find_spec(name) is None:
            continue  # subcommand not part of this build
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CabinwatchError as exc:
        print(f"cabinwatch {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
