"""The control socket against hostile and broken clients, and ``ctl`` against broken
monitors (docs/runtime.md R14).

Every server here listens on a UNIX socket below ``tmp_path`` and is closed at the end;
a thread plays the monitor loop (``poll`` every 10 ms).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest

from firmware_host.cli import main
from firmware_host.runtime.control import ControlClientError, ControlServer, send_command
from firmware_host.runtime.control_wire import (
    MAX_REQUEST_BYTES,
    FrameStatus,
    LineBuffer,
    WireError,
    nesting_depth,
    parse_request,
)

pytestmark = pytest.mark.timeout(30)


def _echo(request: dict) -> dict:
    if request.get("cmd") == "boom":
        raise RuntimeError("the loop's apply failed")
    return {"ok": True, "echo": request.get("cmd")}


@pytest.fixture
def server(tmp_path):
    srv = ControlServer(tmp_path / "ctl.sock")
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            srv.poll(_echo)
            stop.wait(0.01)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv
    stop.set()
    t.join(5)
    srv.close()
    assert not srv.path.exists()


def _connect(path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    return s


def _reply(s: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data)


def _raw(path, payload: bytes) -> dict:
    with _connect(path) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        return _reply(s)


def _still_serving(path) -> None:
    assert send_command(path, {"cmd": "ack"}, timeout_s=3) == {"ok": True, "echo": "ack"}


# -- the wire -----------------------------------------------------------------


def test_depth_is_counted_outside_strings_and_stops_early():
    assert nesting_depth('{"a": [1, {"b": "[[[[{{{{"}]}', 8) == 3
    assert nesting_depth('"\\"[[["', 8) == 0
    assert nesting_depth("[" * 100_000, 8) == 9
    with pytest.raises(WireError, match="deeper than 8"):
        parse_request(b'{"cmd": "ack", "key": ' + b"[" * 9 + b"]" * 9 + b"}")
    assert parse_request(b'{"a": ' + b"[" * 7 + b"]" * 7 + b"}") == {"a": [[[[[[[]]]]]]]}


def test_line_buffer_limits():
    buf = LineBuffer(10)
    assert buf.feed(b"12345") is FrameStatus.NEED_MORE
    assert buf.feed(b"678\nrest") is FrameStatus.COMPLETE and buf.line == b"12345678"
    assert LineBuffer(10).feed(b"x" * 11) is FrameStatus.TOO_LARGE
    assert LineBuffer(10).feed(b"x" * 11 + b"\n") is FrameStatus.TOO_LARGE


# -- the server ---------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 5000 + b"]" * 5000 + b"\n",  # 10 KB of nesting: RecursionError before
        b'{"cmd": ' + b'{"a":' * 1500 + b"1" + b"}" * 1500 + b"}\n",
    ],
)
def test_deeply_nested_json_is_refused_and_the_server_keeps_serving(server, payload):
    reply = _raw(server.path, payload)
    assert reply["ok"] is False and "deeper than 8" in reply["error"], reply
    assert server.healthy()
    _still_serving(server.path)


def test_a_huge_request_is_refused_early(server):
    t0 = time.monotonic()
    reply = _raw(server.path, b"x" * (4 * 1024 * 1024))
    assert reply["ok"] is False and f"larger than {MAX_REQUEST_BYTES}" in reply["error"]
    assert time.monotonic() - t0 < 2.0
    _still_serving(server.path)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\xff\xfe garbage\n",
        b'{"cmd": "ack"\n',
        b"NaN\n",
        b"[1, 2]\n",
        b'"just a string"\n',
        b'{"cmd": "\\ud800"}\n',  # a lone surrogate: valid JSON, not valid text
        b"1e999999\n",
        b"\n",
        b"",
    ],
)
def test_garbage_gets_an_error_reply(server, payload):
    reply = _raw(server.path, payload)
    assert reply["ok"] is False or reply.get("echo") == "\ud800", reply
    assert server.healthy()
    _still_serving(server.path)


def test_an_apply_that_raises_is_an_error_reply(server):
    reply = send_command(server.path, {"cmd": "boom"}, timeout_s=3)
    assert reply == {"ok": False, "error": "the loop's apply failed"}
    _still_serving(server.path)


@pytest.mark.slow
def test_a_trickling_client_does_not_block_another_and_is_timed_out(server):
    """One byte every 0.4 s (each within the old per-recv timeout): another client's
    ack is answered at once, and the trickler is cut off after 2 s in all."""
    slow = _connect(server.path)
    stop = threading.Event()

    def trickle():
        for byte in b'{"cmd": "status"}\n':
            if stop.wait(0.4):
                return
            try:
                slow.send(bytes([byte]))
            except OSError:
                return

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        for _ in range(3):
            t0 = time.monotonic()
            _still_serving(server.path)
            assert time.monotonic() - t0 < 1.0  # the old server: blocked for ~7 s
        reply = _reply(slow)
        assert reply["ok"] is False and "not complete within 2" in reply["error"], reply
        assert server.health().timeouts >= 1
    finally:
        stop.set()
        t.join(5)
        slow.close()


@pytest.mark.slow
def test_many_clients_at_once(server):
    """40 clients at once each get a reply (served, or told the server is busy), and
    16 silent ones hold no slot past their timeout."""
    replies: list[dict] = []
    lock = threading.Lock()

    def client(i):
        try:
            r = send_command(server.path, {"cmd": f"c{i}"}, timeout_s=5)
        except ControlClientError as exc:
            r = {"ok": False, "error": str(exc)}
        with lock:
            replies.append(r)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(replies) == 40
    served = [r for r in replies if r.get("ok")]
    busy = [r for r in replies if not r.get("ok")]
    assert len(served) >= 16, replies
    assert all("busy" in r["error"] for r in busy), busy

    silent = [_connect(server.path) for _ in range(16)]
    try:
        time.sleep(0.2)
        reply = send_command(server.path, {"cmd": "status"}, timeout_s=3)
        assert reply["ok"] is False and "busy: 16 clients" in reply["error"]
        assert server.health().busy_refusals >= 1
        time.sleep(2.3)  # the silent ones time out
        _still_serving(server.path)
    finally:
        for s in silent:
            s.close()


def test_a_client_that_hangs_up_while_waiting_frees_its_slot(tmp_path):
    srv = ControlServer(tmp_path / "c.sock", reply_timeout_s=0.5)  # nobody polls
    try:
        with _connect(srv.path) as s:
            s.sendall(b'{"cmd": "hatch", "name": "x", "open": true}\n')
            reply = _reply(s)
        assert reply["ok"] is False and "did not answer within 0.5" in reply["error"]
        assert srv.poll(_echo) == 0  # withdrawn: the loop never applies it late
        deadline = time.monotonic() + 2
        while srv.health().clients and time.monotonic() < deadline:
            time.sleep(0.01)  # the reply is out; the slot is freed right after
        assert srv.health().clients == 0
    finally:
        srv.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_or_stalled_thread_is_unhealthy(tmp_path):
    now = [100.0]
    srv = ControlServer(tmp_path / "c.sock", clock=lambda: now[0])
    gate = threading.Event()
    try:
        assert srv.healthy()
        real_turn = srv._turn

        def stalled_turn():
            gate.wait(10)
            real_turn()

        srv._turn = stalled_turn
        time.sleep(0.3)  # the thread is now stuck in a turn
        now[0] += 3.0
        assert not srv.healthy()  # its heartbeat is 3 s old
        gate.set()
        srv._turn = real_turn
        deadline = time.monotonic() + 5
        while not srv.healthy() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.healthy()

        def die():
            raise SystemExit("killed by the test")

        srv._turn = die
        deadline = time.monotonic() + 5
        while srv._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not srv.healthy() and not srv.health().alive
        assert "died" in srv.health().last_error
    finally:
        gate.set()
        srv.close()


def test_a_live_socket_is_not_taken_over(tmp_path):
    from firmware_host.runtime.control import ControlSocketInUse

    first = ControlServer(tmp_path / "c.sock")
    try:
        with pytest.raises(ControlSocketInUse, match="another process is listening"):
            ControlServer(tmp_path / "c.sock")
        assert first.path.exists()
        threading.Thread(target=lambda: time.sleep(0.1) or first.poll(_echo)).start()
        assert send_command(first.path, {"cmd": "x"}, timeout_s=3)["echo"] == "x"
    finally:
        first.close()
    assert not first.path.exists()


def test_close_removes_only_its_own_socket(tmp_path):
    path = tmp_path / "c.sock"
    srv = ControlServer(path)
    path.unlink()  # someone replaced it with their own
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    try:
        srv.close()
        assert path.exists()
    finally:
        other.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _strokes(sock: socket.socket) -> int:
    n = 0
    with contextlib.suppress(TimeoutError, BlockingIOError):
        while True:
            n += sock.recv(4096).count(b"WATCHDOG=1")
    return n


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_watchdog_stops_when_the_control_thread_dies(tmp_path):
    """A monitor whose control thread died stops stroking systemd's watchdog (which
    then restarts it), as it does for a dead reader thread."""
    from firmware_host.runtime.app import MonitorApp, ScaledClock
    from firmware_host.runtime.runconfig import load_runtime_config
    from firmware_host.runtime.sdnotify import Notifier
    from hil.scenario import load_scenario
    from tests.support.runtime_helpers import monitor_config, write_toml

    url = f"socket://127.0.0.1:{_closed_port()}"  # no device: the loop ticks anyway
    cfg = write_toml(
        tmp_path / "m.toml",
        monitor_config(
            load_scenario("rapid-depress"), {"bus0": url}, tmp_path / "out", control_socket="c.sock"
        ),
    )
    rc = load_runtime_config(cfg)
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify.sock"))
    systemd.settimeout(0.05)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "100000"})
    clock = ScaledClock(10.0)  # the 1 Hz loop ticks every 0.1 s of wall time
    app = MonitorApp(rc, clock=clock, notifier=notifier)
    try:
        app.start()
        t0 = clock.now_ns() / 1e9
        app.run(until_s=t0 + 8)
        assert app.healthy() and _strokes(systemd) >= 3

        def die():
            raise SystemExit("killed by the test")

        app.control._turn = die
        app.control._thread.join(5)
        assert not app.healthy()
        _strokes(systemd)
        app.run(until_s=t0 + 16)
        assert _strokes(systemd) == 0
    finally:
        app.close()
        systemd.close()


# -- ctl against broken monitors ------------------------------------------------


class _FakeMonitor:
    """A UNIX socket server that answers every request with ``answer`` (or nothing)."""

    def __init__(self, path, answer: bytes | None, hold_s: float = 0.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.answer, self.hold_s = answer, hold_s
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                with contextlib.suppress(OSError):
                    conn.settimeout(1)
                    conn.recv(65536)
                    if self.answer is not None:
                        conn.sendall(self.answer)
                    self.stop.wait(self.hold_s)

    def close(self):
        self.stop.set()
        self.t.join(5)
        self.sock.close()


@pytest.mark.parametrize(
    ("answer", "hold_s", "needle"),
    [
        (b"\xff\xfegarbage\n", 0.0, "reply is not UTF-8"),
        (b"not json at all\n", 0.0, "reply is not JSON"),
        (b'{"ok": true, "sta', 0.0, "partial reply"),
        (None, 0.0, "closed the connection without a reply"),
        (b"x" * (1024 * 1024 + 10), 0.0, "reply larger than 1048576 bytes"),
        (b'{"ok": tr', 3.0, "no complete reply within 0.5 s"),
        (b"[1, 2]\n", 0.0, "a reply is a JSON object"),
        (b'{"ok": false, "error": "two\\nlines"}\n', 0.0, "two lines"),
        (b'{"ok": false}\n', 0.0, "the monitor refused the command"),
    ],
)
def test_ctl_handles_any_reply_with_one_line_and_exit_2(tmp_path, capsys, answer, hold_s, needle):
    path = tmp_path / "m.sock"
    fake = _FakeMonitor(path, answer, hold_s)
    try:
        t0 = time.monotonic()
        code = main(["ctl", "--socket", str(path), "--timeout", "0.5", "status"])
        elapsed = time.monotonic() - t0
    finally:
        fake.close()
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and needle in err, err
    assert "Traceback" not in err
    assert elapsed < 2.0


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e300"])
def test_ctl_timeout_must_be_sane(tmp_path, capsys, value):
    code = main(["ctl", "--socket", str(tmp_path / "none.sock"), "--timeout", value, "status"])
    _, err = capsys.readouterr()
    assert code == 2 and "--timeout must be between" in err and len(err.splitlines()) == 1
