"""A small synthetic station for the advisor's tests: the truth and a crew.

Leaks of L kg/day sit in volumes; every segment's estimate is the sum of the
leaks inside it plus Gaussian noise with the sigma of the detection floor
(``station.holdtime``) for the time its shape has held; pressures fall by the
gas law.  The crew follows the advisor's proposals after a short delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.gas import fall_rate_pa_s
from station.advisor import AdvisorState, Assessment, IsolationAdvisor, SegmentEstimate
from station.graph import StationGraph, StationHatch, StationVolume
from station.holdtime import HoldModel

P0_PA = 101325.0


@dataclass
class World:
    graph: StationGraph
    leaks: dict[str, float]
    seed: int = 0
    dead: frozenset[str] = frozenset()
    hold: HoldModel = field(default_factory=HoldModel)
    t: float = 0.0

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)
        self.hatches: dict[str, bool] = {h: True for h in self.graph.hatches}
        self.pressure = {v: P0_PA for v in self.graph.volumes}
        self.since = {s: -1e5 for s in self._segs()}

    def _segs(self) -> list[frozenset[str]]:
        return self.graph.segments(self.hatches)

    def live(self) -> dict[str, int]:
        return {v: (0 if v in self.dead else vol.sensors) for v, vol in self.graph.volumes.items()}

    def set_hatch(self, name: str, is_open: bool) -> None:
        self.hatches[name] = is_open
        segs = self._segs()
        for s in segs:
            if s not in self.since:
                self.since[s] = self.t
                g = self.graph
                mean = sum(self.pressure[v] * g.volumes[v].volume_m3 for v in s)
                mean /= g.segment_volume_m3(s)
                for v in s:
                    self.pressure[v] = mean
        self.since = {s: self.since[s] for s in segs}

    def step(self, dt: float) -> None:
        for s in self._segs():
            leak = sum(self.leaks.get(v, 0.0) for v in s)
            drop = fall_rate_pa_s(leak, self.graph.segment_volume_m3(s), 295.15) * dt
            for v in s:
                self.pressure[v] -= drop
        self.t += dt

    def segments(self) -> list[SegmentEstimate]:
        out = []
        live = self.live()
        for s, since in self.since.items():
            n = sum(live[v] for v in s)
            coef = self.hold.segment_coef(self.graph, s, live)
            sigma = self.hold.sigma_after(coef, self.t - since) if n else None
            truth = sum(self.leaks.get(v, 0.0) for v in s)
            m = None if sigma is None else truth + float(self.rng.normal(0.0, sigma))
            out.append(
                SegmentEstimate(
                    volumes=s,
                    mass_rate_kg_day=m,
                    sigma_kg_day=sigma,
                    pressure_pa=self.pressure[next(iter(s))],
                    healthy_sensors=n,
                    settled=sigma is not None,
                    since_s=since,
                )
            )
        return out


@dataclass
class Hunt:
    final: Assessment
    history: list[Assessment]
    actions: list[tuple[float, str, bool]]  # (t, hatch, open)
    closures: int
    t_s: float
    located_s: float | None


def run_hunt(
    world: World,
    advisor: IsolationAdvisor,
    *,
    dt: float = 2.0,
    crew_delay_s: float = 20.0,
    t_max: float = 6 * 3600.0,
    tell_sensors: bool = False,
    after_action=None,
) -> Hunt:
    """Update the advisor every ``dt`` s and do what it proposes, until it has
    located the leak and no hatch is left to reopen, or it is UNRESOLVED.
    ``tell_sensors``: pass the healthy sensors per volume (as the aggregator can);
    ``after_action(world)``: called after every crew action."""
    history: list[Assessment] = []
    actions: list[tuple[float, str, bool]] = []
    due: tuple[str, bool, float] | None = None
    located_s = None
    a = None
    while world.t < t_max:
        sensors = world.live() if tell_sensors else None
        a = advisor.update(world.t, dict(world.hatches), world.segments(), sensors=sensors)
        history.append(a)
        check_invariants(a)
        if a.state is AdvisorState.LOCATED and located_s is None:
            located_s = world.t
        if a.state is AdvisorState.UNRESOLVED:
            break
        if a.state is AdvisorState.LOCATED and a.proposal is None:
            break
        p = a.proposal
        if p is not None and world.hatches[p.hatch] != (not p.close):
            if due is None or due[:2] != (p.hatch, not p.close):
                due = (p.hatch, not p.close, world.t + crew_delay_s)
            elif world.t >= due[2]:
                world.set_hatch(p.hatch, not p.close)
                actions.append((world.t, p.hatch, not p.close))
                if after_action is not None:
                    after_action(world)
                due = None
        world.step(dt)
    assert a is not None
    closures = sum(1 for _, _, o in actions if not o)
    return Hunt(a, history, actions, closures, world.t, located_s)


def check_invariants(a: Assessment) -> None:
    assert a.message.split()[0] == a.state.name
    if a.state is AdvisorState.NOMINAL:
        assert a.probabilities == {}
    else:
        assert abs(sum(a.probabilities.values()) - 1.0) < 1e-9
        assert all(0.0 <= p <= 1.0 for p in a.probabilities.values())
    if a.state is AdvisorState.LOCATED:
        assert a.located is not None and a.evidence


# -- station graphs ------------------------------------------------------------


def line_graph() -> StationGraph:
    """Five modules in a row, an escape vehicle at one end."""
    names = ["a", "b", "c", "d"]
    vols = [StationVolume(n, 60.0, sensors=2, noise_pa=3.0, rate_hz=10.0) for n in names]
    vols.append(StationVolume("ev", 10.0, escape_vehicle=True, sensors=1, rate_hz=10.0))
    order = [*names, "ev"]
    hatches = [StationHatch(f"{x}-{y}", x, y) for x, y in zip(order, order[1:], strict=False)]
    return StationGraph(vols, hatches)


def star_graph(wrong_side: bool = False) -> StationGraph:
    """A hub with four spokes, one an escape vehicle.  ``wrong_side``: the hatch
    of spoke s1 opens into the hub and can be opened only up to 100 Pa."""
    vols = [StationVolume("hub", 100.0, sensors=2, rate_hz=10.0)]
    vols += [StationVolume(f"s{i}", 5.0 * i, sensors=1, rate_hz=10.0) for i in (1, 2, 3)]
    vols.append(StationVolume("ev", 10.0, escape_vehicle=True, sensors=1, rate_hz=10.0))
    hatches = [StationHatch(f"hub-s{i}", "hub", f"s{i}") for i in (2, 3)]
    if wrong_side:
        hatches.append(StationHatch("hub-s1", "hub", "s1", opens_into="hub", max_open_dp_pa=100.0))
    else:
        hatches.append(StationHatch("hub-s1", "hub", "s1", opens_into="s1"))
    hatches.append(StationHatch("hub-ev", "hub", "ev"))
    return StationGraph(vols, hatches)


def iss_graph(noise_pa: float = 3.0) -> StationGraph:
    """ISS-like: a USOS chain and a Russian chain, a Soyuz at MRM1 (Rassvet, on
    Zarya) and a Crew Dragon at Node 2.  Pressurized volumes (m^3) rounded from
    NASA / Roscosmos public figures."""

    def v(name, m3, ev=False, sensors=2):
        return StationVolume(name, m3, ev, sensors=sensors, noise_pa=noise_pa, rate_hz=10.0)

    vols = [
        v("node1", 59.0),
        v("lab", 106.0),
        v("node2", 75.0),
        v("columbus", 75.0),
        v("jem", 151.0),
        v("node3", 75.0),
        v("fgb", 72.0),
        v("sm", 89.0),
        v("mrm1", 17.0),
        v("soyuz", 10.0, ev=True, sensors=1),
        v("dragon", 9.3, ev=True, sensors=1),
    ]
    h = StationHatch
    hatches = [
        h("node1-lab", "node1", "lab"),
        h("lab-node2", "lab", "node2"),
        h("node2-columbus", "node2", "columbus"),
        h("node2-jem", "node2", "jem"),
        h("node1-node3", "node1", "node3"),
        h("pma1", "node1", "fgb"),
        h("fgb-sm", "fgb", "sm"),
        h("fgb-mrm1", "fgb", "mrm1"),
        h("mrm1-soyuz", "mrm1", "soyuz", opens_into="soyuz"),
        h("node2-dragon", "node2", "dragon", opens_into="dragon"),
    ]
    return StationGraph(vols, hatches)


def soyuz2018_graph(noise_pa: float = 3.0) -> StationGraph:
    """The station of August 2018 as hil/scenarios/soyuz-ms09-2018.toml splits
    it: USOS 500 m^3, Russian segment 400 m^3, Soyuz MS-09 orbital module 6 m^3
    and descent module 4 m^3 (the escape vehicle), two sensors per station
    segment and one per Soyuz module at 10 Hz."""
    vols = [
        StationVolume("usos", 500.0, sensors=2, noise_pa=noise_pa, rate_hz=10.0),
        StationVolume("rs", 400.0, sensors=2, noise_pa=noise_pa, rate_hz=10.0),
        StationVolume("soyuz_bo", 6.0, True, sensors=1, noise_pa=noise_pa, rate_hz=10.0),
        StationVolume("soyuz_sa", 4.0, True, sensors=1, noise_pa=noise_pa, rate_hz=10.0),
    ]
    hatches = [
        StationHatch("node1-fgb", "usos", "rs"),
        StationHatch("mrm1-soyuz", "rs", "soyuz_bo", opens_into="soyuz_bo"),
        StationHatch("bo-sa", "soyuz_bo", "soyuz_sa", opens_into="soyuz_sa"),
    ]
    return StationGraph(vols, hatches)


# -- figures for docs/advisor.md: python -m tests.station.advisor_world ---------


def main(argv: list[str] | None = None) -> int:
    """Print the 2018 case and the hunt grid (docs/advisor.md measures with it)."""
    import argparse
    import statistics
    import time

    ap = argparse.ArgumentParser(prog="python -m tests.station.advisor_world")
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print("Soyuz MS-09 2018 class: 21 kg/day in the orbital module (6 m3)")
    for noise in (3.0, 30.0):
        g = soyuz2018_graph(noise)
        adv = IsolationAdvisor(g, caution_kg_day=5.0, min_pressure_pa=69300.0)
        plan = adv.plan("soyuz_bo", {h: True for h in g.hatches}, leak_kg_day=21.0)
        hunt = run_hunt(World(g, {"soyuz_bo": 21.0}, seed=2018), adv)
        holds = plan.planned_s - plan.actions * adv.action_s
        print(
            f"  noise {noise:4.0f} Pa: plan {plan.closures} closures {plan.actions} actions "
            f"{plan.planned_s:.0f} s (holds {holds:.0f} s): {', '.join(plan.steps)}; "
            f"hunt located {hunt.final.located} at {hunt.located_s:.0f} s"
        )
    graphs = {
        "line": line_graph,
        "star": star_graph,
        "iss": iss_graph,
        "soyuz2018": soyuz2018_graph,
    }
    print(f"single leaks, {args.seeds} seeds, crew delay 20 s:")
    for name, make in graphs.items():
        g = make()
        for leak in (8.0, 20.0, 60.0):
            n = right = wrong = 0
            closures, times = [], []
            for v in g.volumes:
                for seed in range(args.seeds):
                    h = run_hunt(
                        World(g, {v: leak}, seed=seed), IsolationAdvisor(g, caution_kg_day=5.0)
                    )
                    n += 1
                    right += h.final.located == v
                    wrong += any(a.located not in (None, v) for a in h.history)
                    closures.append(h.closures)
                    if h.located_s is not None:
                        times.append(h.located_s)
            print(
                f"  {name:9s} {leak:4.0f} kg/day: {right}/{n} located, {wrong} false; closures "
                f"max {max(closures)}; located s median {statistics.median(times):.0f} "
                f"max {max(times):.0f}"
            )
    print("two leaks at once (ISS-like):")
    g = iss_graph()
    for leaks in (
        {"lab": 20.0, "sm": 10.0},
        {"node1": 20.0, "node3": 20.0},
        {"node1": 20.0, "node3": 15.0},
        {"node1": 20.0, "node3": 8.0},
        {"soyuz": 20.0, "jem": 15.0},
    ):
        said = false = 0
        for seed in range(args.seeds):
            h = run_hunt(World(g, leaks, seed=seed), IsolationAdvisor(g, caution_kg_day=5.0))
            said += h.final.message.startswith("UNRESOLVED two leaks")
            false += any(a.located is not None for a in h.history)
        print(f"  {leaks}: 'two leaks' {said}/{args.seeds}, a single location claimed {false}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
