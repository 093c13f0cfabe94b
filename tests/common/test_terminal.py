"""``common.terminal``: ``TerminalKeys`` on a real pseudo-terminal (cbreak while open,
keys read without blocking, the modes restored on close, nothing done off a
terminal); ``TerminalScreen``'s redraw and periods."""

from __future__ import annotations

import io
import os
import termios
import time

import pytest

from common.terminal import TerminalKeys, TerminalScreen

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def pty_stdin():
    """The follower side of a pseudo-terminal as a text stream, and the leader's fd."""
    leader, follower = os.openpty()
    stream = os.fdopen(follower, "r", encoding="ascii", closefd=True)
    try:
        yield stream, leader
    finally:
        stream.close()
        os.close(leader)


def _read_until(keys: TerminalKeys, want: str, timeout_s: float = 2.0) -> str:
    got = ""
    deadline = time.monotonic() + timeout_s
    while len(got) < len(want) and time.monotonic() < deadline:
        got += keys.read()
        time.sleep(0.01)
    return got


def test_keys_on_a_terminal_are_read_at_once_and_the_modes_restored(pty_stdin):
    stream, leader = pty_stdin
    before = termios.tcgetattr(stream.fileno())
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    keys = TerminalKeys(stream)
    assert keys.active
    lflag = termios.tcgetattr(stream.fileno())[3]
    assert not lflag & termios.ICANON and not lflag & termios.ECHO  # cbreak: no Enter needed
    t0 = time.monotonic()
    assert keys.read() == ""  # nothing pressed: returns at once
    assert time.monotonic() - t0 < 0.5
    os.write(leader, b"aq")  # no newline: a line-buffered terminal would hold them back
    assert _read_until(keys, "aq") == "aq"
    keys.close()
    assert termios.tcgetattr(stream.fileno()) == before
    assert not keys.active and keys.read() == ""
    keys.close()  # twice: nothing more to restore


def test_disabled_on_a_terminal_leaves_it_alone(pty_stdin):
    stream, leader = pty_stdin
    before = termios.tcgetattr(stream.fileno())
    keys = TerminalKeys(stream, enabled=False)
    assert not keys.active and termios.tcgetattr(stream.fileno()) == before
    os.write(leader, b"q\n")
    assert keys.read() == ""
    keys.close()
    assert termios.tcgetattr(stream.fileno()) == before


def test_off_a_terminal_reads_nothing():
    keys = TerminalKeys(io.StringIO("q\n"))
    assert not keys.active and keys.read() == ""
    keys.close()


class _TtyOut(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_screen_redraws_in_place_on_a_terminal_at_most_every_period():
    wall = [100.0]
    screen = TerminalScreen(_TtyOut(), period_s=1.0, plain_period_s=10.0, keys=False,
                            wall_clock=lambda: wall[0])  # fmt: skip
    assert screen.tty and screen.period_s == 1.0 and screen.due()
    screen.draw(["a", "b"])
    assert screen.out.getvalue() == "\x1b[H\x1b[2Ja\nb\n"
    wall[0] += 0.9
    assert not screen.due()
    wall[0] += 0.1
    assert screen.due()
    assert screen.read_keys() == ""  # keys=False: stdin left alone
    screen.close()


def test_screen_off_a_terminal_appends_plain_lines_every_plain_period():
    wall = [0.0]
    screen = TerminalScreen(io.StringIO(), period_s=1.0, plain_period_s=10.0,
                            wall_clock=lambda: wall[0])  # fmt: skip
    assert not screen.tty and screen.period_s == 10.0
    screen.draw(["x"])
    wall[0] += 5.0
    assert not screen.due()
    wall[0] += 5.0
    assert screen.due()
    screen.draw(["y"])
    assert screen.out.getvalue() == "x\ny\n"  # no escapes on a pipe
    assert screen.read_keys() == ""
