"""``cabinwatch ctl``: acknowledge alarms and set hatches of a running monitor."""

from __future__ import annotations

import argparse
import json

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
    from firmware_host.runtime.control import send_command

    if args.ctl == "ack":
        request = {"cmd": "ack", "key": args.key}
    elif args.ctl == "hatch":
        request = {"cmd": "hatch", "name": args.name, "open": args.state == "open"}
    elif args.ctl == "limits":
        request = {"cmd": "limits", "name": args.name}
    else:
        request = {"cmd": "status"}
    try:
        reply = send_command(args.socket, request)
    except (FileNotFoundError, ConnectionRefusedError):
        raise CabinwatchError(f"{args.socket}: no monitor is listening on this socket") from None
    except OSError as exc:
        raise CabinwatchError(f"{args.socket}: {exc.strerror or exc}") from None
    if not reply.get("ok"):
        raise CabinwatchError(reply.get("error", "the monitor refused the command"))
    print(json.dumps(reply.get("status", reply), indent=None if args.ctl != "status" else 1))
    return 0
