"""The Yamcs configuration kept in the repository, checked without Java (in
``make test``): the event templates are the generated ones and name only
parameters of the database, every ``${env.CABINWATCH_YAMCS_*}`` of the files is
one the harness sets and the docs list, the links decode PUS-C with the CRC
and the CUC as the packets carry them; no packet of a run has a bad CRC."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lxml import etree

from firmware_host.alarms import AlarmKind
from firmware_host.cli import main
from firmware_host.ground import cuc, events
from firmware_host.ground.layout import GroundLayout
from firmware_host.ground.xtce import SYSTEM_NAME, generate
from harness.derive import config_from_scenario
from harness.yamcs import ETC, EVENTS_TEMPLATE, INSTANCE, SYSTEM, YamcsServer
from hil.scenario import load_scenario
from tests.ground.conftest import SCENARIO
from tests.ground.test_packets import crc16_ccitt_false
from tests.ground.test_xtce import NS, split_packets

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ground.md"
ENV = re.compile(r"\$\{env\.(CABINWATCH_YAMCS_[A-Z_]+)(?::([^}]*))?\}")


def test_no_packet_of_the_run_has_a_bad_crc(simulate_run):
    packets = split_packets(simulate_run[0])
    assert len(packets) > 3000
    assert all(crc16_ccitt_false(p) == 0 for p in packets)  # the receiver's check


def test_events_template_in_deploy_is_the_generated_one(tmp_path):
    assert EVENTS_TEMPLATE.read_text(encoding="utf-8") == events.generate()
    out = tmp_path / "events.json"
    example = str(Path(__file__).resolve().parents[2] / "firmware_host/examples/monitor.toml")
    assert main(["xtce", "--config", example, "--out", str(tmp_path / "x.xml"),
                 "--events-template", str(out)]) == 0  # fmt: skip
    assert out.read_text(encoding="utf-8") == events.generate()


def test_event_templates_name_the_databases_parameters():
    """One template per alarm kind (PusEventDecoder looks them up by event_id's label),
    each placeholder a parameter of the event report."""
    layout = GroundLayout.from_config(config_from_scenario(load_scenario(SCENARIO)))
    doc = etree.fromstring(generate(layout).encode())
    params = {p.get("name") for p in doc.iterfind(".//x:Parameter", NS)}
    entries = json.loads(EVENTS_TEMPLATE.read_text(encoding="utf-8"))
    assert [e["eventId"] for e in entries] == [k.name for k in AlarmKind]
    for e in entries:
        names = [m.split(";")[0].strip() for m in re.findall(r"\{([^}]*)\}", e["template"])]
        assert names and set(names) <= params, (e, params)
        assert e["eventId"] in e["template"]


def test_every_variable_of_the_configuration_is_set_by_the_harness_and_documented():
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(ETC.glob("*.yaml"))}
    assert set(texts) == {"yamcs.yaml", f"yamcs.{INSTANCE}.yaml", "processor.yaml"}
    used = {m[0] for t in texts.values() for m in ENV.findall(t)}
    server = YamcsServer(Path("x.xml"), folder=Path("/nonexistent"))
    assert used == set(server.environment())
    docs = DOCS.read_text(encoding="utf-8")
    for name in used:
        short = name.removeprefix("CABINWATCH_YAMCS")
        assert f"`{name}`" in docs or f"`{short}`" in docs, name
    assert all(default for t in texts.values() for _, default in ENV.findall(t))  # defaults


def test_links_decode_pus_c_as_the_packets_are_built():
    """Both links: PusPacketPreprocessor, CRC-16-CCIIT, the time at octet 13 (after the
    6-octet primary and 7 octets of PUS-C header), CUC with the implicit P-field."""
    text = (ETC / f"yamcs.{INSTANCE}.yaml").read_text(encoding="utf-8")
    assert text.count("class: org.yamcs.tctm.") == 2
    assert text.count("packetPreprocessorClassName: org.yamcs.pus.PusPacketPreprocessor") == 2
    assert text.count("type: CRC-16-CCIIT") == 2
    assert text.count("pktTimeOffset: 13") == 2
    assert text.count(f"implicitPField: {cuc.PFIELD:#04X}".replace("0X", "0x")) == 2
    assert text.count("epoch: GPS") == 2
    assert f"eventIdParameter: /{SYSTEM}/event_id" in text
    assert SYSTEM == SYSTEM_NAME


def test_no_java_is_one_line_naming_the_package(monkeypatch):
    import pytest

    from common.errors import CabinwatchError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CabinwatchError, match="openjdk-17-jre-headless"):
        YamcsServer(Path("x.xml")).start()
