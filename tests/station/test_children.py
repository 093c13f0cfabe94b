"""``harness.children``: the bench's children end with their parent even when it is
killed outright (SIGKILL runs no clean-up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.children import guarded, stop_group

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

PARENT = """
import subprocess, sys, time
from harness.children import guarded, stop_group
child = subprocess.Popen(guarded(["sleep", "60"]), start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie left for the reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.timeout(60)
def test_a_child_ends_when_its_parent_is_killed_outright():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    child = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep"):
            assert time.monotonic() < deadline, "the child never became `sleep`"
            time.sleep(0.02)  # (still the wrapper, before its execvp)
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the child outlived its killed parent"
            time.sleep(0.02)
    finally:
        parent.kill()
        parent.wait(10)
        if _alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.timeout(30)
def test_the_child_is_the_command_with_the_same_pid_and_exit_code():
    r = subprocess.run(guarded(["sh", "-c", "echo $$; exit 3"]), capture_output=True, text=True)
    assert r.returncode == 3 and r.stdout.strip().isdigit()
    p = subprocess.Popen(guarded(["sh", "-c", "echo $$"]), stdout=subprocess.PIPE, text=True)
    assert int(p.stdout.read()) == p.pid
    p.wait(10)


@pytest.mark.timeout(30)
def test_a_missing_command_is_one_line_127_and_a_gone_parent_runs_nothing():
    r = subprocess.run(guarded(["/nonexistent/cmd"]), capture_output=True, text=True)
    assert r.returncode == 127 and r.stderr.count("\n") == 1 and "/nonexistent/cmd" in r.stderr
    # the parent given is not ours (it died before the death signal was set): nothing runs
    argv = guarded(["sh", "-c", "echo ran"])
    argv[argv.index(str(os.getpid()))] = "1"
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == ""


@pytest.mark.timeout(30)
def test_any_working_directory_will_do(tmp_path):
    r = subprocess.run(guarded(["pwd"]), capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and Path(r.stdout.strip()).resolve() == tmp_path.resolve()


@pytest.mark.timeout(30)
def test_stop_group_kills_a_child_deaf_to_sigterm_and_its_whole_group():
    """SIGTERM ignored: SIGKILL after the timeout, and the grandchild in its group goes too."""
    proc = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    grandchild = int(proc.stdout.readline())
    t0 = time.monotonic()
    stop_group(proc, timeout_s=0.5)
    assert proc.returncode == -signal.SIGKILL
    assert 0.4 < time.monotonic() - t0 < 10
    deadline = time.monotonic() + 10
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the group's other process was left running"
        time.sleep(0.02)
