"""``cabinwatch ctl``: acknowledge alarms and set hatches of a running monitor.

Any reply that is not a well-formed answer (none, partial, garbage, over 1 MiB,
or later than ``--timeout``) is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import math

from common.errors import CabinwatchError

DEFAULT_SOCKET = "cabinwatch.sock"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ctl",
        help="send an operator command to a running monitor",
        description="Send an operator command to a running `cabinwatch monitor` (or demo).",
    )
    p.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help="the monitor's control socket (outputs.control_socket)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the monitor's whole reply (default 5)",
    )
    cmds = p.add_subparsers(dest="ctl", metavar="ACTION", required=True)
    ack = cmds.add_parser("ack", help="acknowledge every alarm, or the one named")
    ack.add_argument("key", nargs="?", help="an alarm key such as usos:LEAK")
    hatch = cmds.add_parser("hatch", help="set a hatch's state")
    hatch.add_argument("name")
    hatch.add_argument("state", choices=("open", "closed"))
    limits = cmds.add_parser("limits", help="switch the active limit set")
    limits.add_argument("name")
    cmds.add_parser("status", help="print the monitor's status as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from firmware_host.runtime.control import ControlClientError, send_command

    if not (math.isfinite(args.timeout) and 0 < args.timeout <= 3600):
        raise CabinwatchError(f"--timeout must be between 0 and 3600 s, not {args.timeout}")

    if args.ctl == "ack":
        request = {"cmd": "ack", "key": args.key}
    elif args.ctl == "hatch":
        request = {"cmd": "hatch", "name": args.name, "open": args.state == "open"}
    elif args.ctl == "limits":
        request = {"cmd": "limits", "name": args.name}
    else:
        request = {"cmd": "status"}
    try:
        reply = send_command(args.socket, request, timeout_s=args.timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        raise CabinwatchError(f"{args.socket}: no monitor is listening on this socket") from None
    except ControlClientError as exc:
        raise CabinwatchError(f"{args.socket}: {exc}") from None
    except TimeoutError:
        raise CabinwatchError(f"{args.socket}: no answer within {args.timeout:g} s") from None
    except OSError as exc:
        raise CabinwatchError(f"{args.socket}: {exc.strerror or exc}") from None
    if reply.get("ok") is not True:
        error = reply.get("error")
        text = str(error) if error is not None else "the monitor refused the command"
        raise CabinwatchError(" ".join(text.split())[:500])
    print(json.dumps(reply.get("status", reply), indent=None if args.ctl != "status" else 1))
    return 0
