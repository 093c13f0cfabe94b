"""``cabinwatch xtce --config FILE``: the XTCE 1.2 mission database of a configuration
(and, with ``--events-template``, the event templates of Yamcs' PusEventDecoder)."""

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
    p.add_argument(
        "--events-template",
        metavar="FILE",
        help="also write the event templates (JSON) of Yamcs' PusEventDecoder to FILE, "
        "which turns the TM[5,x] event reports into Yamcs events",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from common.outpaths import output_file
    from firmware_host.ground import events
    from firmware_host.ground.layout import GroundLayout
    from firmware_host.ground.xtce import generate
    from firmware_host.runtime.runconfig import load_runtime_config

    cfg = load_runtime_config(args.config, require_links=False)
    out = cfg.outputs
    layout = GroundLayout.from_config(
        cfg.monitor, apid_hk=out.ccsds_apid_hk, apid_events=out.ccsds_apid_events
    )
    xml = generate(layout)
    template = None
    if args.events_template is not None:  # checked before anything is written
        template = output_file(args.events_template, "--events-template")
    if args.out == "-":
        sys.stdout.write(xml)
    else:
        path = output_file(args.out, "--out")
        path.write_text(xml, encoding="utf-8")
    if template is not None:
        template.write_text(events.generate(), encoding="utf-8")
    return 0
