"""Ground truth of an emulator run: snapshots, time series and the JSONL writer.

The truth file (``FILE.truth.jsonl``) starts with one ``header`` line (scenario,
seed, volume/hatch/sensor names in the order of every array, the leak, fault and
link-fault schedules), then one ``truth`` line per record:

    {"type":"truth","t_s":..,"p_pa":[..],"t_k":[..],"mass_kg":[..],
     "leak_kg_s":[..],"leaked_kg":[..],"inflowed_kg":..,"hatch_open":[0|1,..]}

(arrays in header order), with ``"faults"`` ({sensor or link: [kinds]}) on records
where a fault is in effect.  A hatch commanded at run time (``emulate --control``)
adds a ``{"type":"hatch_command","t_s":..,"hatch":..,"open":..,"source":"control"}``
line when it is carried out; the ``hatch_open`` columns follow it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from hil.scenario import Scenario


@dataclass(frozen=True)
class VolumeTruth:
    p_pa: float
    t_k: float
    mass_kg: float
    leak_kg_s: float
    leaked_kg: float


@dataclass(frozen=True)
class Truth:
    """The emulator's state at ``t_s``."""

    t_s: float
    volumes: dict[str, VolumeTruth]
    hatches: dict[str, bool]
    faults: dict[str, list[str]]
    links_up: dict[str, bool]
    inflowed_kg: float
    total_mass_kg: float

    @property
    def leaked_kg(self) -> float:
        return sum(v.leaked_kg for v in self.volumes.values())

    @property
    def leak_kg_s(self) -> float:
        return sum(v.leak_kg_s for v in self.volumes.values())

    def to_json_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TruthSeries:
    """Truth at regular times: arrays (n,) or (n, volumes) / (n, hatches)."""

    volume_names: list[str]
    hatch_names: list[str]
    t_s: np.ndarray
    p_pa: np.ndarray
    t_k: np.ndarray
    mass_kg: np.ndarray
    leak_kg_s: np.ndarray
    leaked_kg: np.ndarray
    inflowed_kg: np.ndarray
    hatch_open: np.ndarray
    faults: list[dict[str, list[str]]] = field(default_factory=list)  # per record

    def __len__(self) -> int:
        return len(self.t_s)

    @classmethod
    def concat(cls, parts: list[TruthSeries]) -> TruthSeries:
        p0 = parts[0]
        kw = {
            k: np.concatenate([getattr(p, k) for p in parts])
            for k in (
                "t_s",
                "p_pa",
                "t_k",
                "mass_kg",
                "leak_kg_s",
                "leaked_kg",
                "inflowed_kg",
                "hatch_open",
            )
        }
        faults = [f for p in parts for f in p.faults]
        return cls(p0.volume_names, p0.hatch_names, faults=faults, **kw)


def _finite(o):
    """JSON has no infinity: an open end (inf) becomes null."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def header_record(scenario: Scenario, seed: int, truth_rate_hz: float) -> dict:
    """The first line of a truth file (open ends are null)."""
    return _finite(
        {
            "type": "header",
            "scenario": scenario.name,
            "path": scenario.path,
            "seed": seed,
            "truth_rate_hz": truth_rate_hz,
            "duration_s": scenario.duration_s,
            "volumes": [{"name": v.name, "volume_m3": v.volume_m3} for v in scenario.volumes],
            "hatches": [
                {"name": h.name, "a": h.volume_a, "b": h.volume_b, "open": h.open}
                for h in scenario.hatches
            ],
            "hatch_events": scenario.hatch_events(),
            "sensors": [
                {"name": s.name, "link": s.link, "addr": s.addr, "volume": s.volume}
                for s in scenario.sensors
            ],
            "leaks": [dataclasses.asdict(lk) for lk in scenario.leaks],
            "inflows": [dataclasses.asdict(f) for f in scenario.inflows],
            "faults": [dataclasses.asdict(f) for f in scenario.faults],
            "link_faults": [dataclasses.asdict(f) for f in scenario.link_faults],
        }
    )


class TruthWriter:
    """Writes truth records as JSON lines; formats a whole series with one template."""

    def __init__(self, fh: IO[str], scenario: Scenario, seed: int, truth_rate_hz: float):
        self.fh = fh
        self.records = 0
        nv, nh = len(scenario.volumes), len(scenario.hatches)
        self._nv, self._nh = nv, nh
        hdr = header_record(scenario, seed, truth_rate_hz)
        fh.write(json.dumps(hdr, default=_json_default, allow_nan=False) + "\n")

        def arr(fmt: str, n: int) -> str:
            return "[" + ",".join([fmt] * n) + "]"

        self._head = '{"type":"truth","t_s":%.3f'
        self._body = (
            ',"p_pa":'
            + arr("%.3f", nv)
            + ',"t_k":'
            + arr("%.4f", nv)
            + ',"mass_kg":'
            + arr("%.6f", nv)
            + ',"leak_kg_s":'
            + arr("%.6e", nv)
            + ',"leaked_kg":'
            + arr("%.6f", nv)
            + ',"inflowed_kg":%.6f'
            + ',"hatch_open":'
            + arr("%d", nh)
        )

    def write_hatch_command(self, t_s: float, hatch: str, is_open: bool, source: str) -> None:
        """A hatch commanded at run time: ``{"type":"hatch_command","t_s",..}``
        (the ``hatch_open`` columns of later records follow it)."""
        rec = {"type": "hatch_command", "t_s": round(t_s, 3), "hatch": hatch}
        rec.update(open=bool(is_open), source=source)
        self.fh.write(json.dumps(rec) + "\n")
        self.fh.flush()

    def write(self, series: TruthSeries) -> None:
        n = len(series)
        if not n:
            return
        cols = np.column_stack(
            [
                series.t_s,
                series.p_pa,
                series.t_k,
                series.mass_kg,
                series.leak_kg_s,
                series.leaked_kg,
                series.inflowed_kg,
                series.hatch_open.astype(np.float64),
            ]
        )
        tmpl = self._head + self._body
        rows = cols.tolist()
        if series.faults and any(series.faults):
            lines = []
            for row, f in zip(rows, series.faults, strict=True):
                line = tmpl % tuple(row)
                if f:
                    line += ',"faults":' + json.dumps(f)
                lines.append(line + "}\n")
            self.fh.write("".join(lines))
        else:
            tmpl += "}\n"
            self.fh.write("".join([tmpl % tuple(r) for r in rows]))
        self.records += n


def _json_default(o):
    if isinstance(o, float | np.floating):
        return float(o)
    if isinstance(o, np.integer):
        return int(o)
    return str(o)


def read_truth(path: str) -> tuple[dict, list[dict]]:
    """The header and the records of a truth file."""
    with open(path, encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh if line.strip()]
    return lines[0], lines[1:]
