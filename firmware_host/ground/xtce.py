"""The XTCE 1.2 mission database of a configuration, generated with yamcs-pymdb.

One SpaceSystem ``cabinwatch``:

* ``ccsds_pus_tm`` (abstract): the primary header (version, type, secondary
  header flag, APID, sequence flags, sequence count, data length) and the
  PUS-C TM secondary header (PUS version, time reference status, service,
  subtype, message type counter, destination ID, CUC coarse and fine time);
* ``hk_report`` (abstract, APID hk, service 3, subtype 25) with the SID, and
  one container per structure: ``hk_system`` (SID 0) and ``hk_<volume>`` (SID
  i + 1), each ending with the packet's CRC (``packet_crc``);
* ``event_report`` (APID events, service 5): event ID (enumerated:
  ``AlarmKind``), source (enumerated: the configured volumes, sensors, links,
  outputs), transition, level, value, limit, CRC.

Alarm levels: each volume's ``alarm_level`` carries an ``EnumerationAlarm``
mapping ADVISORY -> watch, CAUTION -> warning, WARNING -> critical, EMERGENCY
-> severe (``XTCE_LEVEL``).  Floats are IEEE binary64 with no valid range, so
NaN (no estimate) and +inf (no reserve limit in sight) are accepted values.
"""

from __future__ import annotations

from yamcs import pymdb as Y

from firmware_host.alarms import AlarmLevel
from firmware_host.ground.layout import (
    EVENT_ID_CHOICES,
    LEVEL_CHOICES,
    SERVICE_EVENT,
    SERVICE_HK,
    SID_SYSTEM,
    SOURCE_OTHER,
    SUBTYPE_HK_REPORT,
    TRANSITION_CHOICES,
    VOLUME_FIELDS,
    GroundLayout,
    HkField,
    ident,
)

#: Name of the SpaceSystem and of the root container.
SYSTEM_NAME = "cabinwatch"
ROOT_CONTAINER = "ccsds_pus_tm"
#: cabinwatch alarm level -> XTCE alarm level (COSMOS imports only warning and critical).
XTCE_LEVEL = {
    AlarmLevel.ADVISORY: Y.AlarmLevel.WATCH,
    AlarmLevel.CAUTION: Y.AlarmLevel.WARNING,
    AlarmLevel.WARNING: Y.AlarmLevel.CRITICAL,
    AlarmLevel.EMERGENCY: Y.AlarmLevel.SEVERE,
}


def _uint(system, name, bits, description, choices=None, alarm=None):
    enc = Y.IntegerEncoding(bits=bits, scheme=Y.IntegerEncodingScheme.UNSIGNED)
    if choices is not None:
        return Y.EnumeratedParameter(
            system,
            name,
            choices=list(choices),
            encoding=enc,
            alarm=alarm,
            short_description=description,
        )
    size = 8 if bits <= 8 else 16 if bits <= 16 else 32  # the engineering type's size
    return Y.IntegerParameter(
        system, name, signed=False, bits=size, encoding=enc, short_description=description
    )


def _field(system, prefix: str, f: HkField, alarm=None):
    name = f"{prefix}{f.name}"
    if f.fmt == "d":
        return Y.FloatParameter(
            system,
            name,
            bits=64,
            encoding=Y.float64_t,
            units=f.unit,
            short_description=f.description,
        )
    bits = {"B": 8, "H": 16, "I": 32}[f.fmt]
    return _uint(system, name, bits, f.description, f.choices, alarm)


def build_system(layout: GroundLayout) -> Y.System:
    """The pymdb ``System`` of ``layout``."""
    s = Y.System(SYSTEM_NAME, short_description="cabinwatch cabin-pressure leak monitor")
    hdr = [
        _uint(s, "ccsds_version", 3, "packet version number (0)"),
        _uint(s, "ccsds_type", 1, "packet type (0: telemetry)"),
        _uint(s, "ccsds_sec_hdr_flag", 1, "secondary header present (1)"),
        _uint(s, "ccsds_apid", 11, "application process ID"),
        _uint(s, "ccsds_seq_flags", 2, "sequence flags (3: unsegmented)"),
        _uint(s, "ccsds_seq_count", 14, "sequence count per APID"),
        _uint(s, "ccsds_length", 16, "packet data length - 1, octets"),
        _uint(s, "pus_version", 4, "TM packet PUS version number (2: PUS-C)"),
        _uint(s, "pus_time_ref_status", 4, "spacecraft time reference status"),
        _uint(s, "pus_service", 8, "service type ID"),
        _uint(s, "pus_subtype", 8, "message subtype ID"),
        _uint(s, "pus_msg_counter", 16, "message type counter per (service, subtype)"),
        _uint(s, "pus_destination_id", 16, "destination ID (0)"),
        _uint(s, "cuc_coarse", 32, "CUC coarse time, s since the GPS epoch"),
        _uint(s, "cuc_fine", 16, "CUC fine time, 2**-16 s"),
    ]
    apid, service, subtype = hdr[3], hdr[9], hdr[10]
    root = Y.Container(
        s, ROOT_CONTAINER, abstract=True, entries=[Y.ParameterEntry(p) for p in hdr],
        short_description="CCSDS 133.0-B-2 Space Packet with a PUS-C TM secondary header "
        "(CUC time, P-field 0x2E implicit)",
    )  # fmt: skip
    crc = _uint(s, "packet_crc", 16, "CRC-16/CCITT-FALSE of the packet before it")
    sid = _uint(s, "hk_sid", 16, "housekeeping structure ID")
    hk = Y.Container(
        s, "hk_report", base=root, abstract=True, entries=[Y.ParameterEntry(sid)],
        condition=Y.all_of(
            Y.eq(apid, layout.apid_hk), Y.eq(service, SERVICE_HK),
            Y.eq(subtype, SUBTYPE_HK_REPORT),
        ),
        short_description="TM[3,25] housekeeping parameter report",
    )  # fmt: skip
    system_params = [_field(s, "", f) for f in layout.system_fields]
    Y.Container(
        s, "hk_system", base=hk, condition=Y.eq(sid, SID_SYSTEM),
        entries=[Y.ParameterEntry(p) for p in system_params] + [Y.ParameterEntry(crc)],
        short_description="the loop's and the links' health",
    )  # fmt: skip
    alarm = Y.EnumerationAlarm({lv.name: XTCE_LEVEL[lv] for lv in AlarmLevel})
    for i, volume in enumerate(layout.volumes):
        prefix = f"{ident(volume)}_"
        params = [
            _field(s, prefix, f, alarm if f.name == "alarm_level" else None) for f in VOLUME_FIELDS
        ]
        Y.Container(
            s, f"hk_{ident(volume)}", base=hk, condition=Y.eq(sid, i + 1),
            entries=[Y.ParameterEntry(p) for p in params] + [Y.ParameterEntry(crc)],
            short_description=f"estimates of volume {volume}",
        )  # fmt: skip
    sources = [(i, ident(name)) for i, name in enumerate(layout.sources)]
    sources.append((SOURCE_OTHER, "OTHER"))
    ev = [
        _uint(s, "event_id", 16, "alarm kind", EVENT_ID_CHOICES),
        _uint(s, "event_source", 16, "volume, sensor (link_addr), link or output", sources),
        _uint(s, "event_transition", 8, "alarm transition", TRANSITION_CHOICES),
        _uint(s, "event_level", 8, "alarm level (also the subtype)", LEVEL_CHOICES[1:]),
        Y.FloatParameter(
            s, "event_value", bits=64, encoding=Y.float64_t,
            short_description="the alarmed quantity, in the kind's unit (NaN: none)",
        ),
        Y.FloatParameter(
            s, "event_limit", bits=64, encoding=Y.float64_t,
            short_description="the limit crossed, in the kind's unit (NaN: none)",
        ),
    ]  # fmt: skip
    Y.Container(
        s, "event_report", base=root,
        condition=Y.all_of(Y.eq(apid, layout.apid_events), Y.eq(service, SERVICE_EVENT)),
        entries=[Y.ParameterEntry(p) for p in ev] + [Y.ParameterEntry(crc)],
        short_description="TM[5,1..4] event report (subtype by level)",
    )  # fmt: skip
    return s


def generate(layout: GroundLayout) -> str:
    """The XTCE 1.2 document of ``layout``."""
    return build_system(layout).dumps(format="xtce-1.2")
