"""The harness's child processes: started so they end with their parent
(``guarded``), stopped with everything in their process group (``stop_group``).

The bench harness (``demo``, ``demo --station``, the private Mosquitto, Yamcs)
starts each child in a process group of its own and stops them all on exit,
Ctrl-C and SIGTERM.  A parent killed outright (SIGKILL, the OOM killer, a test
runner's timeout) runs no clean-up: its children would live on, a monitor
reopening its pseudo-terminal's path, which a later emulator may be given, and
reading that emulator's bytes.

``guarded(argv)`` runs ``argv`` through a few lines of Python (``WRAPPER``, given
with ``-c``: no import of this project, so any working directory will do): in
the new, single-threaded child they ask Linux for SIGTERM when the parent dies
(``prctl(PR_SET_PDEATHSIG)``, kept across ``execvp``), check the parent is still
the one that started it (else it is already gone: exit 0), then become ``argv``
(exit 127 with one line if it cannot be run).  The pid is the same throughout,
so process groups, ``processes.txt`` and ``Popen`` keep working.  The signal
comes when the parent's *thread* that started the child ends: start children
from a thread that lives as long as they should.  Elsewhere than on Linux
``guarded`` returns ``argv`` unchanged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

#: ``prctl`` option: the signal a process gets when its parent thread exits.
PR_SET_PDEATHSIG = 1

#: The child's first lines: ``python -I -S -c WRAPPER PPID ARGV...``.
WRAPPER = f"""
import ctypes, os, sys
ppid, argv = int(sys.argv[1]), sys.argv[2:]
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGTERM)}, 0, 0, 0):
    sys.stderr.write("cabinwatch child: prctl: " + os.strerror(ctypes.get_errno()) + "\\n")
    sys.exit(2)
if os.getppid() != ppid:
    sys.exit(0)
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write("cabinwatch child: " + argv[0] + ": " + str(exc.strerror) + "\\n")
    sys.exit(127)
"""


def guarded(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-I", "-S", "-c", WRAPPER, str(os.getpid()), *argv]


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Stop ``proc``, the leader of its own process group (``start_new_session``):
    ``sig`` to the group, up to ``timeout_s`` s for it to end, then SIGKILL to
    the group (whatever is left of it too), and reap ``proc``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
