"""``cabinwatch plot ARCHIVE --out FILE.png``: pressure, dP/dt, reserve time and alarms."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="plot an archive to a PNG",
        description="Draw pressure, dP/dt, leak rate, reserve time and alarms from an archive.",
    )
    p.add_argument("archive", help="a SQLite archive written by monitor, demo or simulate")
    p.add_argument("--out", required=True, help="the PNG file to write")
    p.add_argument("--title", help="the figure's title")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from firmware_host.runtime.plotting import plot_archive

    out = plot_archive(args.archive, args.out, title=args.title)
    print(out)
    return 0
