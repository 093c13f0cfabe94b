"""station.graph: segments under hatch states and the checks on a station graph."""

from __future__ import annotations

import pytest

from station.graph import GraphError, StationGraph, StationHatch, StationVolume


def _line() -> StationGraph:
    vols = [StationVolume("a", 100.0), StationVolume("b", 50.0), StationVolume("c", 5.0, True)]
    hatches = [StationHatch("ab", "a", "b"), StationHatch("bc", "b", "c", opens_into="c")]
    return StationGraph(vols, hatches)


def test_segments_follow_open_hatches():
    g = _line()
    assert g.segments({"ab": True, "bc": True}) == [frozenset("abc")]
    assert sorted(map(sorted, g.segments({"ab": True, "bc": False}))) == [["a", "b"], ["c"]]
    assert len(g.segments({})) == 3  # unnamed hatches are closed
    assert g.segment_of("c", {"ab": True, "bc": True}) == frozenset("abc")
    assert g.segment_volume_m3(g.segment_of("a", {"ab": True})) == 150.0
    assert g.escape_vehicles == ("c",)
    assert [h.name for h in g.hatches_of("b")] == ["ab", "bc"]
    assert g.hatches["bc"].other("b") == "c"


@pytest.mark.parametrize(
    ("vols", "hatches", "words"),
    [
        ([StationVolume("a", 1.0), StationVolume("a", 2.0)], [], "given twice"),
        ([StationVolume("a", 0.0)], [], "volume_m3"),
        ([StationVolume("a", 1.0)], [StationHatch("h", "a", "x")], "unknown volume 'x'"),
        ([StationVolume("a", 1.0)], [StationHatch("h", "a", "a")], "to itself"),
        (
            [StationVolume("a", 1.0), StationVolume("b", 1.0)],
            [StationHatch("h", "a", "b", opens_into="c")],
            "opens_into",
        ),
        ([], [], "at least one volume"),
    ],
)
def test_bad_graphs_name_the_problem(vols, hatches, words):
    with pytest.raises(GraphError, match=words):
        StationGraph(vols, hatches)
