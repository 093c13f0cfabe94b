"""The ``cabinwatch`` command: a dispatcher over one module per subcommand.

Each module in ``COMMANDS`` exposes ``register(subparsers)``, which adds its
parser and sets ``func=run`` where ``run(args) -> int``.  The closed-loop
harness's subcommands (``HARNESS_COMMANDS``: package ``harness``, the emulator
side) are listed with their one-line help and imported only when one of them
is parsed or shows its help; their modules expose ``configure(parser)``.  So
building the parser, as ``cabinwatch monitor`` on the board does, imports
neither ``harness`` nor ``hil``.  Errors the user can fix (``CabinwatchError``)
print one line on stderr and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from common.errors import CabinwatchError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = (
    "harness.commands.demo",
    "firmware_host.commands.monitor",
    "harness.commands.simulate",
    "harness.commands.emulate",
    "firmware_host.commands.analyze",
    "firmware_host.commands.decode",
    "firmware_host.commands.plot",
    "firmware_host.commands.config",
    "firmware_host.commands.ctl",
    "firmware_host.commands.xtce",
    "station.command",
)


#: Subcommands imported on first use (the harness's, and the station aggregator's,
#: which needs paho): module -> (name, one-line help).
HARNESS_COMMANDS = {
    "harness.commands.demo": (
        "demo",
        "run the monitor against the built-in emulator (the main job)",
    ),
    "harness.commands.simulate": (
        "simulate",
        "run a scenario through the emulator and the monitor, as fast as possible",
    ),
    "harness.commands.emulate": (
        "emulate",
        "run the HIL emulator (physics + transducers) on a pty, TCP, a port or a file",
    ),
    "station.command": (
        "station",
        "run the station aggregator: the boards' MQTT picture and the isolation advisor",
    ),
}


class _OneLineParser(argparse.ArgumentParser):
    """A parser whose usage errors are one line, ``PROG: error: ... (see PROG --help)``,
    exit 2, like every other error of the command (argparse prints the usage first)."""

    def error(self, message: str):
        self.exit(2, one_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


class _CommandParser(_OneLineParser):
    """A subcommand's parser.  With ``module`` set (a harness subcommand), its
    arguments are added by ``module.configure(self)`` on first parse or help."""

    module: str | None = None

    def _configure(self) -> None:
        if self.module is not None:
            name, self.module = self.module, None
            importlib.import_module(name).configure(self)

    def parse_known_args(self, args=None, namespace=None):
        self._configure()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._configure()
        return super().format_usage()

    def format_help(self) -> str:
        self._configure()
        return super().format_help()


def _version() -> str:
    try:
        return version("cabinwatch")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="cabinwatch",
        description="Real-time cabin-pressure leak monitor and its hardware-in-the-loop emulator.",
    )
    parser.add_argument("--version", action="version", version=f"cabinwatch {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name in COMMANDS:
        # a top-level spec: finding a submodule's would import its package
        if importlib.util.find_spec(name.partition(".")[0]) is None:
            continue  # subcommand not part of this build
        if name in HARNESS_COMMANDS:
            command, help_text = HARNESS_COMMANDS[name]
            sub.add_parser(command, help=help_text).module = name
        else:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is not None and any("\x00" in a for a in argv):
        # a shell cannot pass one; a caller in this process can, and no path holds one
        parser.error("an argument holds a NUL character")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit: a full stdout is then one line, not a traceback
        return code
    except CabinwatchError as exc:
        print(one_line(f"cabinwatch {args.command}: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours, nothing to say
        _drop_stdout()
        return 0
    except OSError as exc:
        # an output that cannot be written: stdout on a full disk (> /dev/full), ...
        where = exc.filename if exc.filename else "output"
        msg = f"cabinwatch {args.command}: {where}: {exc.strerror or exc}"
        print(one_line(msg), file=sys.stderr)
        _drop_stdout()
        return 2


def one_line(message: str) -> str:
    """``message`` on one line: control characters and line separators (from a key, a
    file name or a value the user gave) escaped as ``\\n``, ``\\x00``, ``\\u2028``."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _drop_stdout() -> None:
    """Point stdout's descriptor at /dev/null: what is still buffered for a closed or
    full stdout would otherwise fail again at exit ("Exception ignored ... Errno 28")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (captured by a test)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
