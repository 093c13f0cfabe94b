"""``cabinwatch config check FILE``: validate a configuration without running."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="validate a configuration file",
        description="Validate a monitor configuration (TOML) without running anything.",
    )
    cmds = p.add_subparsers(dest="config_cmd", metavar="ACTION", required=True)
    check = cmds.add_parser("check", help="validate FILE; one line per mistake, exit 2")
    check.add_argument("file")
    check.add_argument(
        "--no-links",
        action="store_true",
        help="the file is for analyze/simulate: [links] tables are not required",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drivers.families import FAMILIES
    from firmware_host.runtime.runconfig import load_runtime_config
    from firmware_host.sizing import check_sizing

    cfg = load_runtime_config(args.file, require_links=not args.no_links)
    m = cfg.monitor
    hatches = ", ".join(f"{h.name}={'open' if h.open else 'closed'}" for h in m.hatches) or "none"
    print(f"{args.file}: OK")
    print(f"  volumes: {', '.join(f'{v.name} ({v.volume_m3:g} m3)' for v in m.volumes)}")
    print(f"  sensors: {len(m.sensors)} on links {', '.join(sorted(cfg.links)) or '(none)'}")
    print(f"  hatches: {hatches}")
    print(f"  limit set: {m.limit_set} (of {', '.join(m.limit_sets)}); loop {m.rate_hz:g} Hz")
    print(f"  {check_sizing(m).summary()}")
    for name, link in cfg.links.items():
        line = f"  link {name}: {link.url} at {link.baudrate} baud, driver {link.driver}"
        fam = FAMILIES[link.driver]
        if fam.budget is not None:
            rates = [s.rate_hz for s in m.sensors if s.link == name]
            b = fam.budget(name, rates, link.baudrate, link.options)
            line += (
                f"; {b.sensors} sensors x {b.reads} reads need {b.need_s * 1e3:.1f} ms "
                f"per {b.cycle_s * 1e3:g} ms cycle ({100 * b.need_s / b.cycle_s:.0f} % of the line)"
            )
            if link.echo:
                line += ", converter echo"
        print(line)
    out = cfg.outputs
    print(
        f"  archive: {out.archive or 'none'}; telemetry: {out.telemetry or 'none'}; "
        f"capture: {out.capture or 'none'}"
    )
    st = cfg.station
    if st is not None:
        who = f"user {st.username}" if st.username else "anonymous"
        tls = ""
        if st.tls:
            tls = f", TLS CA {st.tls_ca or 'system'}" + (", client cert" if st.tls_cert else "")
        print(
            f"  station: {st.broker.url} as {st.station}/{st.node} ({who}{tls}); "
            f"estimates QoS {st.estimate_qos}; session file {st.session_file}"
        )
    if out.ccsds:
        print(
            f"  ccsds: {', '.join(out.ccsds)}; HK {out.ccsds_rate_hz:g} Hz, APIDs "
            f"{out.ccsds_apid_hk} (HK) {out.ccsds_apid_events} (events)"
        )
    return 0
