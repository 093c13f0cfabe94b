"""The station as a graph: volumes (modules) joined by hatches.

Shared by the station file (``station.config``), the aggregator and the
isolation advisor.  Pure data and graph queries; no MQTT, no clock.

Units: volumes m^3, noise Pa (one sample's standard deviation), rates Hz.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from common.errors import CabinwatchError


class GraphError(CabinwatchError):
    """A station graph that cannot be built (unknown volume, duplicate name, ...)."""


@dataclass(frozen=True)
class StationVolume:
    """One pressurised volume.

    ``sensors``, ``noise_pa`` and ``rate_hz`` describe its transducers (how many
    healthy ones, one sample's noise, the sample rate): they set the detection
    floor, hence how long a closure must be held to decide that side.
    ``escape_vehicle``: a docked vehicle the crew may have to leave in.
    """

    name: str
    volume_m3: float
    escape_vehicle: bool = False
    sensors: int = 1
    noise_pa: float = 3.0
    rate_hz: float = 1.0


@dataclass(frozen=True)
class StationHatch:
    """A hatch between volumes ``a`` and ``b``.

    ``opens_into``: the volume its leaf swings into (``a``, ``b`` or None for a
    sliding or symmetric hatch).  A leaf that opens into the higher-pressure
    side cannot be opened against the difference once closed, so it is not
    closed when that side may end up higher (the advisor checks).
    ``max_open_dp_pa``: the pressure difference up to which the crew can still
    open it (Pa).
    """

    name: str
    a: str
    b: str
    opens_into: str | None = None
    max_open_dp_pa: float = 500.0

    def other(self, volume: str) -> str:
        """The volume on the far side from ``volume``."""
        return self.b if volume == self.a else self.a


class StationGraph:
    """Volumes and hatches, checked: unique names, hatches join known volumes."""

    def __init__(self, volumes: Iterable[StationVolume], hatches: Iterable[StationHatch]):
        self.volumes: dict[str, StationVolume] = {}
        for v in volumes:
            if v.name in self.volumes:
                raise GraphError(f"volume {v.name!r} given twice")
            if not v.volume_m3 > 0:
                raise GraphError(f"volume {v.name!r}: volume_m3 must be > 0")
            self.volumes[v.name] = v
        self.hatches: dict[str, StationHatch] = {}
        for h in hatches:
            if h.name in self.hatches:
                raise GraphError(f"hatch {h.name!r} given twice")
            for end in (h.a, h.b):
                if end not in self.volumes:
                    raise GraphError(f"hatch {h.name!r}: unknown volume {end!r}")
            if h.a == h.b:
                raise GraphError(f"hatch {h.name!r}: joins {h.a!r} to itself")
            if h.opens_into not in (None, h.a, h.b):
                raise GraphError(
                    f"hatch {h.name!r}: opens_into {h.opens_into!r} is not {h.a!r} or {h.b!r}"
                )
            self.hatches[h.name] = h
        if not self.volumes:
            raise GraphError("a station needs at least one volume")

    @property
    def escape_vehicles(self) -> tuple[str, ...]:
        return tuple(n for n, v in self.volumes.items() if v.escape_vehicle)

    def hatches_of(self, volume: str) -> tuple[StationHatch, ...]:
        """The hatches that touch ``volume``."""
        return tuple(h for h in self.hatches.values() if volume in (h.a, h.b))

    def segments(self, open_hatches: Mapping[str, bool]) -> list[frozenset[str]]:
        """The connected segments when the hatches named True in ``open_hatches``
        are open (a hatch not named is taken as closed), in volume order."""
        parent = {v: v for v in self.volumes}

        def find(v: str) -> str:
            while parent[v] != v:
                parent[v] = parent[parent[v]]
                v = parent[v]
            return v

        for name, is_open in open_hatches.items():
            if is_open and name in self.hatches:
                h = self.hatches[name]
                parent[find(h.a)] = find(h.b)
        out: dict[str, set[str]] = {}
        for v in self.volumes:
            out.setdefault(find(v), set()).add(v)
        return [frozenset(s) for s in out.values()]

    def segment_of(self, volume: str, open_hatches: Mapping[str, bool]) -> frozenset[str]:
        """The segment that holds ``volume``."""
        for seg in self.segments(open_hatches):
            if volume in seg:
                return seg
        raise GraphError(f"unknown volume {volume!r}")

    def segment_volume_m3(self, segment: Iterable[str]) -> float:
        """Total free volume of ``segment`` (m^3)."""
        return sum(self.volumes[v].volume_m3 for v in segment)
