"""A private Yamcs server for tests, benchmarks and a quick look (docs/ground.md).

It runs the configuration kept in the repository, ``deploy/yamcs/etc``
(instance ``cabinwatch``), from the jars of the PyPI package
``fprime-yamcs-bundle`` with Java 17: its ``${env.CABINWATCH_YAMCS_*}``
placeholders are filled from the environment of the Java process (free
ports on 127.0.0.1 for the HTTP API, the XTCE file and the event templates
given, data and cache in the server's own temporary folder).  Stopped (its
whole process group, SIGTERM then SIGKILL) by ``stop()`` or the context
manager, always; the folder is removed unless ``keep`` or the caller gave it.

Yamcs' UDP link binds its port on every interface (it has no address option).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import CabinwatchError
from harness.children import guarded, stop_group

#: The repository's Yamcs configuration and the instance it defines.
ETC = Path(__file__).resolve().parents[1] / "deploy" / "yamcs" / "etc"
INSTANCE = "cabinwatch"
#: The XTCE SpaceSystem (``firmware_host.ground.xtce.SYSTEM_NAME``).
SYSTEM = "cabinwatch"
#: The event templates of PusEventDecoder kept with it (``cabinwatch xtce --events-template``).
EVENTS_TEMPLATE = ETC / "cabinwatch-events.json"
JAVA_PACKAGE = "openjdk-17-jre-headless"  # the Debian package
MAIN_CLASS = "org.yamcs.YamcsServer"


def find_java() -> str:
    path = shutil.which("java")
    if path is None:
        raise CabinwatchError(
            f"java not found: Yamcs needs Java 17 (Debian {JAVA_PACKAGE}; `make java` as root)"
        )
    return path


def yamcs_lib_dir() -> Path:
    """The folder of Yamcs' jars (``fprime-yamcs-bundle``)."""
    try:
        import fprime_yamcs_bundle
    except ImportError:
        raise CabinwatchError(
            "fprime-yamcs-bundle is not installed (pip install -e '.[test]')"
        ) from None
    return Path(fprime_yamcs_bundle.LIB_DIR)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 now (TCP or, with ``SOCK_DGRAM``, UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size so far (``VmHWM`` of /proc/PID/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise CabinwatchError(f"no VmHWM for process {pid}")


@dataclass
class YamcsServer:
    """One Yamcs 5.12 server of ``etc`` (default: the repository's) on 127.0.0.1.

    ``mdb`` is the XTCE file (``cabinwatch xtce``); ``tcp_port`` is where the
    ``tcp-in`` link connects (a monitor's ``tcp://`` sink; 0: a free port
    nobody listens on, the link then retries every 10 s).  ``started_s``: the
    seconds from the start of the Java process to the instance RUNNING.
    """

    mdb: Path
    etc: Path = ETC
    events_template: Path = EVENTS_TEMPLATE
    http_port: int = 0
    udp_port: int = 0
    tcp_port: int = 0
    folder: Path | None = None
    keep: bool = False
    start_timeout_s: float = 120.0
    java_opts: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    started_s: float = float("nan")
    _own_folder: bool = field(default=False, repr=False)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api"

    @property
    def address(self) -> str:
        """``host:port`` of the HTTP API, as ``yamcs.client.YamcsClient`` takes it."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def udp(self) -> tuple[str, int]:
        return ("127.0.0.1", self.udp_port)

    @property
    def log_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "yamcs.log"

    def environment(self) -> dict[str, str]:
        """The ``CABINWATCH_YAMCS_*`` variables the configuration reads."""
        assert self.folder is not None
        return {
            "CABINWATCH_YAMCS_HTTP_ADDRESS": "127.0.0.1",
            "CABINWATCH_YAMCS_HTTP_PORT": str(self.http_port),
            "CABINWATCH_YAMCS_UDP_PORT": str(self.udp_port),
            "CABINWATCH_YAMCS_TCP_HOST": "127.0.0.1",
            "CABINWATCH_YAMCS_TCP_PORT": str(self.tcp_port),
            "CABINWATCH_YAMCS_MDB": str(Path(self.mdb).resolve()),
            "CABINWATCH_YAMCS_EVENTS": str(Path(self.events_template).resolve()),
            "CABINWATCH_YAMCS_DATA": str(self.folder / "data"),
            "CABINWATCH_YAMCS_CACHE": str(self.folder / "cache"),
        }

    def start(self) -> YamcsServer:
        java, lib = find_java(), yamcs_lib_dir()
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="cabinwatch-yamcs-"))
            self._own_folder = True
        self.http_port = self.http_port or free_port()
        self.udp_port = self.udp_port or free_port(socket.SOCK_DGRAM)
        self.tcp_port = self.tcp_port or free_port()
        env = {**os.environ, **self.environment()}
        try:
            with open(self.log_path, "ab") as log:
                t0 = time.monotonic()
                self.proc = subprocess.Popen(  # (guarded: it ends with us if we are killed)
                    guarded([java, *self.java_opts, "-cp", f"{lib}/*", MAIN_CLASS,
                             "--etc-dir", str(self.etc)]),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=self.folder,
                    start_new_session=True,
                )  # fmt: skip
            self._wait_running(t0)
        except BaseException:
            self.stop()  # the process group and our folder, whatever failed
            raise
        return self

    def _wait_running(self, t0: float) -> None:
        deadline = t0 + self.start_timeout_s
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if self.get(f"/instances/{INSTANCE}")["state"] == "RUNNING":
                    self.started_s = time.monotonic() - t0
                    return
            if self.proc.poll() is not None:
                raise CabinwatchError(
                    f"Yamcs exited at start ({self.proc.returncode}): {self.log_tail(1)}"
                )
            if time.monotonic() > deadline:
                raise CabinwatchError(
                    f"Yamcs did not start in {self.start_timeout_s:g} s: {self.log_tail(1)}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            return "no log"
        return "\n".join(text.splitlines()[-lines:]) or "no output"

    def get(self, path: str):
        """``GET /api{path}`` as JSON."""
        with urllib.request.urlopen(self.api + path, timeout=10) as r:
            return json.load(r)

    def link_in_count(self, link: str) -> int:
        """Packets (datagrams) the link has read, valid or not."""
        return int(self.get(f"/links/{INSTANCE}/{link}").get("dataInCount", 0))

    def send_udp_paced(self, packets: list[bytes], batch: int = 50, timeout_s: float = 30.0):
        """``packets`` to the ``udp-in`` link, ``batch`` at a time, each batch after
        the link counted the last one in: a burst of thousands of datagrams
        overflows its receive buffer (UDP has no flow control of its own)."""
        base = self.link_in_count("udp-in")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for lo in range(0, len(packets), batch):
                chunk = packets[lo : lo + batch]
                for p in chunk:
                    tx.sendto(p, self.udp)
                n = base + lo + len(chunk)
                wait_for(lambda n=n: self.link_in_count("udp-in") >= n, timeout_s, f"link at {n}")

    def parameter(self, name: str) -> dict | None:
        """The realtime processor's current value of ``/cabinwatch/NAME`` (REST JSON;
        None before any)."""
        pv = self.get(f"/processors/{INSTANCE}/realtime/parameters/{SYSTEM}/{name}")
        return pv if "engValue" in pv else None

    def peak_rss_bytes(self) -> int:
        assert self.proc is not None
        return peak_rss_bytes(self.proc.pid)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, timeout_s=20.0)
        if self._own_folder and not self.keep and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
            self._own_folder = False

    def __enter__(self) -> YamcsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.05):
    """``predicate()``'s first truthy value within ``timeout_s``; else ``CabinwatchError``.
    HTTP errors while waiting (``urllib.error.URLError``) count as not yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(urllib.error.URLError, OSError):
            value = predicate()
            if value:
                return value
        if time.monotonic() > deadline:
            raise CabinwatchError(f"{what}: not within {timeout_s:g} s")
        time.sleep(poll_s)
