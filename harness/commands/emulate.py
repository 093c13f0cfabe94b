"""``cabinwatch emulate SCENARIO``: the HIL emulator on a pty, TCP, a serial port or a file.

On start-up one line per link goes to stdout, flushed, for a client or a test to
read: ``link=NAME pty=/dev/pts/N alias=PATH``, ``link=NAME tcp=HOST:PORT``,
``link=NAME port=DEVICE`` or ``link=NAME out=FILE``; with ``--control``, then
``control=tcp tcp=HOST:PORT`` (the crew's hatch commands, ``hil/control.py``),
and each hatch command carried out prints ``event=hatch hatch=NAME open=open|closed
t=..`` (and goes to the truth file as a ``hatch_command`` record).  A link-fault disconnect and
reconnect print ``event=down link=NAME t=..`` and ``event=up link=NAME ...``
(with the new pty path).  A summary goes to stderr at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from common import bounds
from common.bounds import check_option
from common.errors import CabinwatchError, ConfigError
from common.outpaths import output_file
from hil.control import ControlServer, apply_request
from hil.control import parse_address as parse_control_address
from hil.emulator import Emulator
from hil.endpoints import (
    Endpoint,
    FileEndpoint,
    PtyEndpoint,
    SerialPortEndpoint,
    TcpEndpoint,
    parse_tcp_address,
)
from hil.polled_lines import REPLY_DELAY_S
from hil.runner import fast_forward
from hil.runner import run as run_loop
from hil.scenario import list_scenarios, load_scenario
from hil.truth import TruthWriter

#: ``--start`` is available (``cabinwatch demo`` asks).
SUPPORTS_START = True


def configure(p: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cabinwatch emulate`` to its parser."""
    p.description = (
        "Run a scenario's leaking modules and transducers and serve their byte "
        "stream. SCENARIO is a shipped scenario's name ("
        + ", ".join(list_scenarios())
        + ") or the path of a scenario file (docs/scenarios.md)."
    )
    p.add_argument(
        "scenario", metavar="SCENARIO", nargs="?", help="shipped scenario name or .toml path"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--pty",
        action="store_true",
        help="one pseudo-terminal per link (raw mode); prints its path",
    )
    p.add_argument(
        "--pty-link",
        metavar="PATH",
        help="with --pty: a stable symlink to the pty at PATH, replaced on restart "
        "(PATH must hold {link} if the scenario has several links)",
    )
    where.add_argument(
        "--tcp",
        metavar="[HOST:]PORT",
        help="TCP server per link (PORT, PORT+1, ...; 0 = any free port; "
        "host 127.0.0.1 unless given)",
    )
    where.add_argument(
        "--port",
        metavar="DEVICE[,DEVICE...]",
        help="real serial ports, one per link in scenario order",
    )
    where.add_argument(
        "--out",
        metavar="FILE",
        help="write the byte stream to FILE (STEM.LINK.EXT per link if several)",
    )
    p.add_argument(
        "--speed",
        default=None,
        help="times real time, or 'max' (default: max for --out, 1 otherwise)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop at simulated time S (default: the scenario's duration)",
    )
    p.add_argument(
        "--start",
        type=float,
        default=0.0,
        metavar="S",
        help="play the scenario to simulated time S silently, then serve from there",
    )
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument(
        "--truth",
        metavar="FILE",
        help="write the truth (JSON lines) to FILE (default FILE.truth.jsonl with --out)",
    )
    p.add_argument(
        "--truth-rate",
        type=float,
        default=None,
        metavar="HZ",
        help="truth records per simulated second (default 1, or 0.1 for runs longer "
        "than a simulated day)",
    )
    p.add_argument(
        "--baud",
        type=int,
        default=None,
        help="pace each link to this baud rate (8N1), as a real UART would",
    )
    p.add_argument(
        "--hold",
        type=int,
        default=65536,
        metavar="BYTES",
        help="bytes held for a slow reader before whole blocks are dropped",
    )
    p.add_argument(
        "--control",
        metavar="[HOST:]PORT",
        help="serve the crew's hatch commands (line-JSON over TCP, hil/control.py) on "
        "HOST:PORT (host 127.0.0.1 unless given; port 0 = any free one)",
    )
    p.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    p.set_defaults(func=run)


def _parse_tcp(value: str) -> tuple[str, int]:
    try:
        return parse_tcp_address(value)
    except ValueError as exc:
        raise CabinwatchError(f"--tcp: {exc}") from None


def _parse_control(value: str) -> tuple[str, int]:
    try:
        return parse_control_address(value)
    except ValueError as exc:
        raise CabinwatchError(f"--control: {exc}") from None


def _parse_speed(value: str | None, default: float | None) -> float | None:
    if value is None:
        return default
    if value.strip().lower() == "max":
        return None
    try:
        s = float(value)
    except ValueError:
        raise CabinwatchError(f"--speed: {value!r} is not a number or 'max'") from None
    return check_option("--speed", s, bounds.SPEED)


def _check_pty_link(path: str, pty: bool, links: list[str]) -> None:
    """``--pty-link PATH``: with --pty, one distinct path per link, in an existing folder."""
    if not pty:
        raise CabinwatchError("--pty-link needs --pty")
    if not path or "\0" in path:
        raise CabinwatchError("--pty-link: an empty path or a NUL in it")
    if len(links) > 1 and "{link}" not in path:
        raise CabinwatchError(
            f"--pty-link: the scenario has {len(links)} links ({', '.join(links)}): "
            "put {link} in PATH"
        )
    parent = os.path.dirname(os.path.abspath(path.replace("{link}", links[0])))
    if not os.path.isdir(parent):
        raise CabinwatchError(f"--pty-link: no such folder {parent}")


def _out_path(base: str, link: str, several: bool) -> str:
    if not several:
        return base
    p = Path(base)
    return str(p.with_name(f"{p.stem}.{link}{p.suffix or '.bin'}"))


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name in list_scenarios():
            print(name)
        return 0
    if not args.scenario:
        raise CabinwatchError("a SCENARIO is needed (see --list)")
    if not (args.pty or args.tcp or args.port or args.out):
        raise CabinwatchError("choose where the bytes go: --pty, --tcp, --port or --out")
    # the options, before the scenario is read and played
    speed = _parse_speed(args.speed, None if args.out else 1.0)
    if args.duration is not None:
        check_option("--duration", args.duration, bounds.DURATION_S)
    check_option("--start", args.start, bounds.TIME_S)
    if args.seed is not None:
        check_option("--seed", args.seed, bounds.SEED)
    if args.truth_rate is not None:
        check_option("--truth-rate", args.truth_rate, bounds.Range(0.0, 1000.0))
    if args.baud is not None:
        check_option("--baud", args.baud, bounds.Range(300, 100_000_000, integer=True))
    check_option("--hold", args.hold, bounds.Range(1, 2**30, integer=True))
    if args.tcp:
        _parse_tcp(args.tcp)
    control_addr = _parse_control(args.control) if args.control is not None else None
    if args.out:
        output_file(args.out, "--out")
    scenario = load_scenario(args.scenario)
    duration = scenario.duration_s if args.duration is None else args.duration
    if not args.start < duration:
        raise CabinwatchError("--start must be before the end (--duration)")
    truth_rate = args.truth_rate
    if truth_rate is None:
        truth_rate = 1.0 if duration <= 86400.0 else 0.1
    if args.pty_link is not None:
        _check_pty_link(args.pty_link, args.pty, scenario.link_names)
    devices = args.port.split(",") if args.port else []
    if args.port and len(devices) != len(scenario.links):
        raise ConfigError(
            scenario.path,
            "links",
            f"--port needs one device per link ({', '.join(scenario.link_names)}), "
            f"comma-separated; got {len(devices)}",
        )
    truth_path = args.truth or (args.out + ".truth.jsonl" if args.out else None)
    if truth_path:
        output_file(truth_path, "--truth")
    emu = Emulator(scenario, seed=args.seed, truth_rate_hz=truth_rate if truth_path else 0.0)

    several = len(emu.links) > 1
    endpoints: dict[str, Endpoint] = {}
    kw = {"baud": args.baud, "hold_bytes": args.hold}
    stop = threading.Event()
    alias_dir: str | None = None
    old_handlers = {}

    def _stop(signum, frame):
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            old_handlers[sig] = signal.signal(sig, _stop)
        except ValueError:  # not the main thread (in-process tests)
            pass
    truth_fh = None
    control: ControlServer | None = None
    try:
        if args.start > 0:
            fast_forward(emu, args.start, stop=stop)
        protocols = {lk.name: lk.protocol for lk in emu.scenario.links}
        for i, link in enumerate(emu.links):
            # a polled bus is half duplex: the host's requests take line time too
            kw["half_duplex"] = link in emu.polled
            protocol = protocols[link]
            turnaround = REPLY_DELAY_S.get(protocol)
            kw["reply_delay_s"] = turnaround(args.baud) if args.baud and turnaround else 0.0
            if args.pty and args.pty_link is not None:
                try:
                    ep: Endpoint = PtyEndpoint(
                        link, alias_path=args.pty_link.replace("{link}", link), **kw
                    )
                except OSError as exc:
                    raise CabinwatchError(f"--pty-link: {exc}") from None
            elif args.pty:
                if alias_dir is None:
                    alias_dir = tempfile.mkdtemp(prefix="cabinwatch-emulate-")
                ep = PtyEndpoint(link, alias_dir=alias_dir, **kw)
            elif args.tcp:
                host, port = _parse_tcp(args.tcp)
                ep = TcpEndpoint(link, host, port + i if port else 0, **kw)
            elif args.port:
                ep = SerialPortEndpoint(link, devices[i], **kw)
            else:
                ep = FileEndpoint(link, _out_path(args.out, link, several))
            try:
                ep.open()
            except OSError as exc:
                raise CabinwatchError(f"{ep.kind} for link {link}: {exc}") from None
            except Exception as exc:  # pyserial's SerialException for a bad --port
                raise CabinwatchError(f"{ep.kind} for link {link}: {exc}") from None
            endpoints[link] = ep
        if truth_path:
            try:
                truth_fh = open(truth_path, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise CabinwatchError(f"{truth_path}: {exc.strerror}") from None
        truth = TruthWriter(truth_fh, scenario, emu.seed, truth_rate) if truth_fh else None
        for ep in endpoints.values():
            print(ep.describe(), flush=True)
        service = None
        if control_addr is not None:
            try:
                control = ControlServer(*control_addr)
            except OSError as exc:
                raise CabinwatchError(f"--control: {exc.strerror or exc}") from None
            print(control.describe(), flush=True)

            def on_hatch(t_s: float, name: str, is_open: bool) -> None:
                state = "open" if is_open else "closed"
                print(f"event=hatch hatch={name} open={state} t={t_s:.3f}", flush=True)
                if truth is not None:
                    truth.write_hatch_command(t_s, name, is_open, "control")

            def service(c=control) -> None:
                c.service(lambda req: apply_request(emu, req, on_hatch))

        def on_event(event, ep):
            state = "up" if event.up else "down"
            extra = f" {ep.describe()}" if event.up else ""
            print(f"event={state} link={event.link} t={event.t_s:.3f}{extra}", flush=True)

        stats = run_loop(
            emu,
            endpoints,
            duration,
            speed=speed,
            truth=truth,
            stop=stop,
            on_event=on_event,
            control=service,
        )
        summary = {
            "scenario": scenario.name,
            "seed": emu.seed,
            "sim_s": round(stats.sim_s, 3),
            "wall_s": round(stats.wall_s, 3),
            "speed": round(stats.speed, 1) if math.isfinite(stats.speed) else None,
            "frames": emu.frames_out,
            "endpoints": {n: ep.counters() for n, ep in endpoints.items()},
            "links": emu.link_counters(),
        }
        print("emulate: " + json.dumps(summary), file=sys.stderr, flush=True)
    finally:
        if control is not None:
            control.close()
        for ep in endpoints.values():
            cleanup = getattr(ep, "cleanup", ep.close)
            cleanup()
        if alias_dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(alias_dir)
        if truth_fh is not None:
            truth_fh.close()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from firmware_host.cli import main

    sys.exit(main(["emulate", *sys.argv[1:]]))


__all__ = ["configure", "run"]
