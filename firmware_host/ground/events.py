"""The event templates of Yamcs' ``PusEventDecoder``: TM[5,x] as Yamcs events.

Yamcs' ``org.yamcs.pus.PusEventDecoder`` turns each PUS service 5 packet into
an event of the event log: its type is the label of the enumerated event-ID
parameter (``event_id``: the ``AlarmKind``), its severity comes from the
subtype (1 INFO, 2 WATCH, 3 DISTRESS, 4 CRITICAL; ``layout.EventSubtype`` by
alarm level), and its message from a template chosen by the type, whose
``{parameter; format}`` placeholders (Java ``String.format``) take the
packet's decoded values.  ``generate()`` writes that template file (JSON, a
list of ``{"eventId": ..., "template": ...}``), one entry per event ID.

It depends only on the event IDs (not on the configuration): the copy kept in
``deploy/yamcs/etc/cabinwatch-events.json`` is checked against it by the tests.
"""

from __future__ import annotations

import json

from firmware_host.ground.layout import EVENT_IDS

#: The message of every kind: level, kind, transition, source, value and limit
#: (6 significant digits; in the kind's unit, as in the JSON telemetry; NaN: none).
TEMPLATE = (
    "{{event_level}} {kind} {{event_transition}} on {{event_source}}: "
    "value {{event_value; %.6g}}, limit {{event_limit; %.6g}}"
)


def templates() -> list[dict[str, str]]:
    """One ``{"eventId", "template"}`` per event ID, in event-ID order."""
    kinds = sorted(EVENT_IDS, key=EVENT_IDS.__getitem__)
    return [{"eventId": k.name, "template": TEMPLATE.format(kind=k.name)} for k in kinds]


def generate() -> str:
    """The template file's text."""
    return json.dumps(templates(), indent=2) + "\n"
