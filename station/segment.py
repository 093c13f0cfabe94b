"""What is known of one segment of the station: the isolation advisor's input.

A segment is the volumes joined by open hatches.  The picture
(``station.picture.SegmentView``, which is one of these and says which boards
and volumes its numbers come from) builds them; the advisor
(``station.advisor.IsolationAdvisor.update``) reasons on them.  Units: kg/day,
Pa, s (station time).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentEstimate:
    """What the aggregator knows of one segment (volumes joined under the current hatch states)."""

    volumes: frozenset[str]
    mass_rate_kg_day: float | None  # leak mass rate of the whole segment (positive = losing air)
    sigma_kg_day: float | None  # its one-sigma
    pressure_pa: float | None  # mean pressure of the segment
    healthy_sensors: int  # summed over the segment's volumes
    settled: bool  # all estimates in it have usable windows
    since_s: float  # station time (s) since which this segment has had this shape
