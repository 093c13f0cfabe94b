"""A station split across boards: ``[[boards]]``, hatch ``opens_into`` and volume
``escape_vehicle`` in a scenario, and the shipped soyuz-2018-station."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from hil.scenario import load_scenario

SPLIT = """
[scenario]
duration = "1h"
[[volumes]]
name = "a"
volume_m3 = 100
[[volumes]]
name = "b"
volume_m3 = 10
escape_vehicle = true
[[hatches]]
name = "a-b"
a = "a"
b = "b"
opens_into = "b"
[[links]]
name = "la"
[[links]]
name = "lb"
[[sensors]]
link = "la"
addr = 1
volume = "a"
[[sensors]]
link = "lb"
addr = 1
volume = "b"
[[boards]]
node = "one"
volumes = ["a"]
[[boards]]
node = "two"
volumes = ["b"]
"""


def _write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


def test_split_loads(tmp_path):
    sc = load_scenario(_write(tmp_path, SPLIT))
    assert [(b.node, b.volumes) for b in sc.boards] == [("one", ("a",)), ("two", ("b",))]
    assert sc.board_links("two") == ["lb"]
    assert sc.hatches[0].opens_into == "b"
    assert [v.escape_vehicle for v in sc.volumes] == [False, True]


@pytest.mark.parametrize(
    "old,new,key,problem",
    [
        ('volumes = ["b"]', 'volumes = ["a"]', "boards[1].volumes", "already board 'one'"),
        ('volumes = ["b"]', 'volumes = ["c"]', "boards[1].volumes", "unknown volume 'c'"),
        ('volumes = ["b"]', "volumes = []", "boards[1].volumes", "non-empty list"),
        ('node = "two"', 'node = "one"', "boards[1].node", "duplicate board"),
        ('node = "two"\nvolumes = ["b"]', 'node = "two"\nvolumes = ["b"]\nx = 1', "boards[1].x",
         "unknown key"),
        ('opens_into = "b"', 'opens_into = "c"', "hatches[0].opens_into", "must be 'a' or 'b'"),
        ('link = "lb"\naddr = 1', 'link = "la"\naddr = 2', "boards", "a link is read by one"),
    ],
)  # fmt: skip
def test_split_mistakes_are_one_line(tmp_path, old, new, key, problem):
    assert old in SPLIT
    path = _write(tmp_path, SPLIT.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        load_scenario(path)
    assert exc.value.key == key and problem in exc.value.problem


def test_every_volume_needs_a_board(tmp_path):
    text = SPLIT.replace('[[boards]]\nnode = "two"\nvolumes = ["b"]\n', "")
    with pytest.raises(ConfigError, match="no board watches b"):
        load_scenario(_write(tmp_path, text))


def test_soyuz_2018_station():
    sc = load_scenario("soyuz-2018-station")
    assert not sc.hatch_events()  # the crew moves the hatches, nothing scripted
    assert [(b.node, b.volumes) for b in sc.boards] == [
        ("usos", ("usos",)),
        ("rs", ("rs", "mrm1")),
        ("soyuz", ("soyuz_bo", "soyuz_sa")),
    ]
    assert [sc.board_links(b.node) for b in sc.boards] == [["usos"], ["rs"], ["soyuz"]]
    (leak,) = sc.leaks
    assert (leak.volume, leak.onset_s, leak.diameter_mm) == ("soyuz_bo", 600.0, 2.0)
    # the documented assumption: one station-wide thermal environment
    assert len({v.thermal for v in sc.volumes}) == 1
    assert {v.name for v in sc.volumes if v.escape_vehicle} == {"soyuz_bo", "soyuz_sa"}
    assert {h.name: h.opens_into for h in sc.hatches}["mrm1-soyuz"] == "soyuz_bo"
