"""The station bench's generated station (bench/bench_station.py): a valid station file."""

from bench.bench_station import station_file
from station.config import load_station_config


def test_bench_station_file_is_a_valid_chain(tmp_path):
    cfg = load_station_config(station_file(tmp_path / "s.toml", 50, 4, 1883))
    assert len(cfg.graph.volumes) == 200 and len(cfg.graph.hatches) == 199
    assert len(cfg.boards) == 50 and all(len(b.volumes) == 4 for b in cfg.boards)
    # every hatch is reported by exactly one board
    reported = [h for b in cfg.boards for h in b.hatches]
    assert sorted(reported) == sorted(cfg.graph.hatches)
    # the publisher closes every tenth hatch between boards: 5 segments
    closed = {f"h{i:03d}" for i in range(1, 200) if i % 40 == 0}
    states = {h: h not in closed for h in cfg.graph.hatches}
    assert len(cfg.graph.segments(states)) == 5
