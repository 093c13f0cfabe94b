"""A scenario without ``[[boards]]`` made a station for ``demo --station``.

``cabinwatch demo --station`` needs a station split across boards and a crew that
closes hatches itself.  A scenario written for one board (``rapid-depress``,
``mixed-buses``, ``soyuz-ms09-2018``, ``zvezda-prk``) is turned into one:

* **one board per gas group**: a board must watch every volume its volumes
  exchange gas with (open hatches at the start), or its own mass rate counts the
  air that moves between modules of different temperatures as a leak (with the
  orbital swings of ``mixed-buses`` split one board per module, the node's board
  raised CAUTION at 74 s (12.4 kg/day) and the airlock's at 985 s (6.9 kg/day),
  before the hole opened at 2400 s: docs/station-loop.md, "What a board alone
  cannot tell"); and every link is read by exactly one board.  So the volumes joined by
  a shared link or by an open hatch are one board's (a union); a board is named
  after its first link.  A volume without sensors joins the board of a volume it
  has a hatch to (else the first board): the station file still lists it, and
  the advisor knows it has no live sensor.
* **the crew acts, not the script**: the scenario's ``hatch`` events (what the
  crew did in the story) are left out; every other event stays.  A hatch's
  initial state (``open = false``) stays: it is how the station was found.

The result is the scenario's own TOML with ``[[boards]]`` added and the hatch
events removed, written next to the run's other files so the emulator and the
boards read the same file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from common.errors import CabinwatchError
from common.graph import connected_roots
from common.tomltable import read_toml


@dataclass(frozen=True)
class StationSplit:
    """What :func:`split_for_station` made: the file, its boards (node, volumes)
    and the number of scripted hatch events it left to the crew."""

    path: Path
    boards: tuple[tuple[str, tuple[str, ...]], ...]
    dropped_hatch_events: int


def boards_by_groups(scenario) -> list[tuple[str, list[str]]]:
    """``[(node, [volume, ...]), ...]``: one board per group of volumes joined by a
    shared link or a hatch open at the start, named after the group's first link;
    volumes in scenario order."""
    vnames = [v.name for v in scenario.volumes]
    index = {v: i for i, v in enumerate(vnames)}
    sensed = {s.volume for s in scenario.sensors}
    if not sensed:
        raise CabinwatchError(f"{scenario.path}: no sensors: nothing for a board to read")
    first_on_link: dict[str, str] = {}
    edges = [(s.volume, first_on_link.setdefault(s.link, s.volume)) for s in scenario.sensors]
    edges += [(h.volume_a, h.volume_b) for h in scenario.hatches if h.open]
    # a volume without sensors joins a neighbour's board (else the first sensed volume's)
    for v in vnames:
        if v not in sensed:
            neighbours = [
                h.volume_b if h.volume_a == v else h.volume_a
                for h in scenario.hatches
                if v in (h.volume_a, h.volume_b)
            ]
            sensed_nb = [n for n in neighbours if n in sensed]
            edges.append((v, sensed_nb[0] if sensed_nb else next(x for x in vnames if x in sensed)))
    roots = connected_roots(len(vnames), ((index[a], index[b]) for a, b in edges))
    link_order = list(dict.fromkeys(s.link for s in scenario.sensors))
    groups: dict[int, list[str]] = {}
    for v, root in zip(vnames, roots, strict=True):
        groups.setdefault(int(root), []).append(v)
    named = []
    for members in groups.values():
        link = next(
            lk
            for lk in link_order
            if any(s.link == lk and s.volume in members for s in scenario.sensors)
        )
        named.append((link, members))
    named.sort(key=lambda nm: link_order.index(nm[0]))
    return named


def split_for_station(scenario, out: Path) -> StationSplit:
    """Write ``out/scenario.toml``: ``scenario`` (loaded by ``hil.scenario``) with
    one board per gas group and without its hatch events.  Raises CabinwatchError when it
    has no hatches (nothing for a crew to close)."""
    if not scenario.hatches:
        raise CabinwatchError(f"{scenario.path}: no hatches: a station hunt needs hatches to close")
    data = copy.deepcopy(read_toml(Path(scenario.path)))
    boards = boards_by_groups(scenario)
    data["boards"] = [{"node": node, "volumes": vols} for node, vols in boards]
    events = data.get("events", [])
    kept = [e for e in events if e.get("kind") != "hatch"]
    if kept:
        data["events"] = kept
    else:
        data.pop("events", None)
    data.setdefault("scenario", {}).setdefault("name", scenario.name)
    path = out / "scenario.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return StationSplit(
        path,
        tuple((node, tuple(vols)) for node, vols in boards),
        len(events) - len(kept),
    )
