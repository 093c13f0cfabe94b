"""``emulate --pty --pty-link PATH``: a stable name for the pty that survives a SIGKILL and a
restart (docs/hil.md).  Every emulator is killed by process group; files in ``tmp_path``."""

from __future__ import annotations

import os
import signal

import pytest
import serial

from tests.support.runtime_helpers import EmulatorProcess, assert_one_line_error, run_cli

pytestmark = pytest.mark.timeout(60)


def _read_some(path: str, n: int = 350) -> bytes:
    with serial.Serial(path, 115200, timeout=0.2) as ser:
        data = b""
        for _ in range(100):
            data += ser.read(4096)
            if len(data) >= n:
                break
    return data


@pytest.mark.slow
def test_the_link_survives_sigkill_and_a_restart_takes_it_over(tmp_path):
    link = tmp_path / "bus0.pty"
    first = EmulatorProcess("rapid-depress", "--pty", "--pty-link", link, "--speed", "5")
    try:
        m = first.wait_line(r"^link=bus0 pty=(\S+) alias=(\S+)")
        assert m.group(2) == str(link) and os.path.realpath(link) == m.group(1)
        assert len(_read_some(str(link))) >= 350  # 10 SAMPLE frames through the link
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
    finally:
        first.kill()
    assert os.path.islink(link)  # left behind, dangling or not: the next run replaces it
    second = EmulatorProcess("rapid-depress", "--pty", "--pty-link", link, "--speed", "5")
    try:
        m = second.wait_line(r"^link=bus0 pty=(\S+) alias=(\S+)")
        assert m.group(2) == str(link) and os.path.realpath(link) == m.group(1)
        assert len(_read_some(str(link))) >= 350
        os.killpg(second.proc.pid, signal.SIGTERM)
        assert second.proc.wait(10) == 0
    finally:
        second.kill()
    assert not os.path.lexists(link)  # a clean stop removes its own link


@pytest.mark.slow
def test_pty_link_mistakes_are_one_line(tmp_path):
    proc = run_cli("emulate", "soyuz-ms09-2018", "--pty", "--pty-link", tmp_path / "x")
    assert_one_line_error(proc, "--pty-link", "put {link} in PATH")
    proc = run_cli("emulate", "rapid-depress", "--out", tmp_path / "o.bin", "--pty-link", "x")
    assert_one_line_error(proc, "--pty-link needs --pty")
    proc = run_cli("emulate", "rapid-depress", "--pty", "--pty-link", tmp_path / "no" / "x")
    assert_one_line_error(proc, "--pty-link: no such folder")
    (tmp_path / "file").write_text("mine")
    proc = run_cli("emulate", "rapid-depress", "--pty", "--pty-link", tmp_path / "file")
    assert_one_line_error(proc, "exists and is not a symlink")
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.slow
def test_several_links_get_one_link_each(tmp_path):
    emu = EmulatorProcess(
        "soyuz-ms09-2018", "--pty", "--pty-link", tmp_path / "{link}.pty", "--speed", "5"
    )
    try:
        for name in ("station", "soyuz"):
            m = emu.wait_line(rf"^link={name} pty=(\S+) alias=(\S+)")
            assert m.group(2) == str(tmp_path / f"{name}.pty")
            assert os.path.realpath(m.group(2)) == m.group(1)
    finally:
        emu.kill()
    assert not list(tmp_path.glob("*.pty"))
