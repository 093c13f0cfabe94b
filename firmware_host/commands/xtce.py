"""``cabinwatch xtce --config FILE``: the XTCE 1.2 mission database of a configuration."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "xtce",
        help="write the XTCE mission database of the CCSDS packets",
        description="Write the XTCE 1.2 mission database (packet containers, parameters "
        "with units, housekeeping structures, alarm levels, event IDs) of the CCSDS packets "
        "a configuration's monitor sends (docs/ground.md), for Yamcs or COSMOS.",
    )
    p.add_argument("--config", required=True, help="monitor configuration (TOML)")
    p.add_argument("--out", default="-", help="the XTCE file ('-': stdout, the default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from common.outpaths import output_file
    from firmware_host.ground.layout import GroundLayout
    from firmware_host.ground.xtce import generate
    from firmware_host.runtime.runconfig import load_runtime_config

    cfg = load_runtime_config(args.config, require_links=False)
    out = cfg.outputs
    layout = GroundLayout.from_config(
        cfg.monitor, apid_hk=out.ccsds_apid_hk, apid_events=out.ccsds_apid_events
    )
    xml = generate(layout)
    if args.out == "-":
        sys.stdout.write(xml)
    else:
        path = output_file(args.out, "--out")
        path.write_text(xml, encoding="utf-8")
    return 0
