"""A private Eclipse Mosquitto broker for tests and ``demo --station``.

Started on 127.0.0.1 and a free port from a configuration written to a
temporary folder, with anonymous clients or with per-board passwords and an
ACL (docs/deploy.md has the station's production configuration).  Stopped
(and its folder removed) by ``stop()`` or the context manager, always; if
the process that started it is killed outright, the kernel stops it
(``harness.children``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import CabinwatchError
from harness.children import guarded, stop_group

PACKAGE = "mosquitto"  # the Debian package


def find_mosquitto() -> str:
    """The broker's executable (also in /usr/sbin, off a user's PATH)."""
    path = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        raise CabinwatchError(
            f"mosquitto not found: install the Debian package {PACKAGE} (`make mosquitto` as root)"
        )
    return path


def find_passwd() -> str:
    path = shutil.which("mosquitto_passwd") or shutil.which(
        "mosquitto_passwd", path="/usr/bin:/usr/sbin"
    )
    if path is None:
        raise CabinwatchError(f"mosquitto_passwd not found: install the Debian package {PACKAGE}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class BrokerUser:
    """A client account: its password and the topic patterns it may write and read."""

    name: str
    password: str
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ("#",)


@dataclass
class MosquittoBroker:
    """One broker process on ``127.0.0.1:port``.

    ``users`` empty: anonymous clients allowed, no ACL.  Otherwise only those
    users, each confined to its ``write``/``read`` patterns (``readwrite`` where
    both hold).  ``persistence`` keeps retained messages and sessions across
    ``restart()`` (as a station broker would, in its folder).
    """

    users: list[BrokerUser] = field(default_factory=list)
    port: int = 0
    persistence: bool = True
    start_timeout_s: float = 10.0
    folder: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        assert self.folder is not None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "protocol mqtt",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.folder}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 10000",
        ]
        if os.geteuid() == 0:
            # as root it would switch to the `mosquitto` user, who cannot read this folder
            lines.append("user root")
        if self.users:
            pw = self.folder / "passwd"
            pw.write_text("")
            for u in self.users:
                subprocess.run(
                    [find_passwd(), "-b", str(pw), u.name, u.password],
                    check=True,
                    capture_output=True,
                    timeout=10,
                )
            acl = []
            for u in self.users:
                acl.append(f"user {u.name}")
                both = set(u.write) & set(u.read)
                acl += [f"topic readwrite {t}" for t in sorted(both)]
                acl += [f"topic write {t}" for t in u.write if t not in both]
                acl += [f"topic read {t}" for t in u.read if t not in both]
                acl.append("")
            (self.folder / "acl").write_text("\n".join(acl))
            lines += [
                "allow_anonymous false",
                f"password_file {pw}",
                f"acl_file {self.folder / 'acl'}",
            ]
        else:
            lines.append("allow_anonymous true")
        conf = self.folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> MosquittoBroker:
        exe = find_mosquitto()
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="cabinwatch-mosquitto-"))
        if not self.port:
            self.port = free_port()
        conf = self._write_config()
        self.proc = subprocess.Popen(
            guarded([exe, "-c", str(conf)]),  # ends with us even if we are killed outright
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "broker.log", "ab"),  # noqa: SIM115 (the child keeps it)
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                log = (self.folder / "broker.log").read_text(errors="replace").strip()
                last = log.splitlines()[-1] if log else "no output"
                raise CabinwatchError(f"mosquitto exited at start ({self.proc.returncode}): {last}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise CabinwatchError(
                        f"mosquitto did not listen on 127.0.0.1:{self.port} "
                        f"within {self.start_timeout_s:g} s"
                    ) from None
                time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process (SIGKILL by default: a crash); the folder stays."""
        if self.proc is not None:
            stop_group(self.proc, sig, timeout_s=5.0)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop gracefully (retained messages saved), wait ``down_s``, start on the same port."""
        self.kill(signal.SIGTERM)
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
