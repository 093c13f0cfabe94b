"""Children that end with their parent: ``python -m harness.orphan PPID -- ARGV...``.

The bench harness (``demo --station``, the private Mosquitto) starts each child in a
process group of its own and stops them all on exit, Ctrl-C and SIGTERM.  A parent
killed outright (SIGKILL, the OOM killer, a test runner's timeout) runs no clean-up:
its children would live on, a monitor reopening its pseudo-terminal's path, which a
later emulator may be given, and reading that emulator's bytes.

``guarded(argv)`` prefixes ``argv`` with this module: in the new, single-threaded
child it asks Linux for SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``,
kept across ``execvp``), checks the parent is still the one that started it (else
it is already gone: exit), then becomes ``argv``.  The pid is the same throughout,
so process groups, ``processes.txt`` and ``Popen`` keep working.  Elsewhere than on
Linux ``guarded`` returns ``argv`` unchanged.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

#: ``prctl`` option: the signal a process gets when its parent thread exits.
PR_SET_PDEATHSIG = 1


def guarded(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-m", "harness.orphan", str(os.getpid()), "--", *argv]


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        sys.stderr.write("usage: python -m harness.orphan PPID -- COMMAND [ARG...]\n")
        return 2
    parent, argv = int(args[0]), args[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        sys.stderr.write(f"harness.orphan: prctl: {os.strerror(ctypes.get_errno())}\n")
        return 2
    if os.getppid() != parent:  # the parent died before the death signal was set
        return 0
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"harness.orphan: {argv[0]}: {exc.strerror}\n")
        return 127
    return 0  # (not reached)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
