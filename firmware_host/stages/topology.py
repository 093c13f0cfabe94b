"""Channels, volumes and hatch groups: who is connected to whom.

``Channels`` is fixed by the configuration: each sensor is a channel (an
index into every per-channel array), lives in one volume and is found on its
link by address.  ``HatchGroups`` follows the hatches: volumes joined through
open hatches form a group that shares one gas mass; a volume whose group
changed is unsettled for ``hatch_settle_s``.
"""

from __future__ import annotations

import numpy as np

from common.graph import connected_roots
from firmware_host.config import MonitorConfig


class Channels:
    """The configured sensors as channels: membership, addresses, ranges, rates.

    ``volume_of[c]`` is channel ``c``'s volume index; ``member`` the
    ``(V, C)`` 0/1 matrix (sums over a volume's channels are ``x @ member.T``);
    ``volume_table`` a ``(V, Smax)`` table of each volume's channel indices
    padded with -1; ``address_map[link]`` maps an address (0..255) to a
    channel or -1.
    """

    def __init__(self, config: MonitorConfig):
        self.sensors = config.sensors
        C = self.n_channels = len(self.sensors)
        self.sensor_ids = [s.sensor_id for s in self.sensors]
        self.volume_names = [v.name for v in config.volumes]
        self.volume_m3 = np.array([v.volume_m3 for v in config.volumes])
        V = self.n_volumes = len(self.volume_names)
        self.volume_index = {n: i for i, n in enumerate(self.volume_names)}
        self.volume_of = np.array(
            [self.volume_index[s.volume] for s in self.sensors], dtype=np.int64
        )
        self.member = np.zeros((V, C))
        self.member[self.volume_of, np.arange(C)] = 1.0
        smax = max(1, int(self.member.sum(axis=1).max()))
        self.volume_table = np.full((V, smax), -1, dtype=np.int64)
        for v in range(V):
            chs = np.flatnonzero(self.volume_of == v)
            self.volume_table[v, : len(chs)] = chs
        self.address_map: dict[str, np.ndarray] = {}
        for c, s in enumerate(self.sensors):
            self.address_map.setdefault(s.link, np.full(256, -1, dtype=np.int64))[s.addr] = c
        self.links = sorted(self.address_map)
        self.range_lo = np.array([s.range_pa[0] for s in self.sensors])
        self.range_hi = np.array([s.range_pa[1] for s in self.sensors])
        self.rate_hz = np.array([s.rate_hz for s in self.sensors])


class HatchGroups:
    """Volumes connected through open hatches, and when each volume's group changed.

    ``group_id[v]`` is a representative volume of ``v``'s group,
    ``group_matrix`` the ``(V, V)`` 0/1 same-group matrix, ``group_m3[v]``
    the group's total volume (m3) (``volume_m3_sum`` the same as the product
    ``volume_m3 @ group_matrix.T``), ``members[v]`` its volume names and
    ``alone[v]`` whether ``v`` is its group's only volume.
    """

    def __init__(self, config: MonitorConfig, channels: Channels):
        self._channels = channels
        self.settle_s = config.estimator.hatch_settle_s
        idx = channels.volume_index
        self.hatch_open = {h.name: h.open for h in config.hatches}
        self.hatch_volumes = {h.name: (idx[h.volume_a], idx[h.volume_b]) for h in config.hatches}
        self.changed_t = np.full(channels.n_volumes, -np.inf)
        #: per channel: from when its volume's windows are clean again (None: never changed)
        self.settled_from_channel: np.ndarray | None = None
        self._all_settled: np.ndarray | None = None
        self._compute()

    def _compute(self) -> None:
        ch = self._channels
        V = ch.n_volumes
        edges = [ab for name, ab in self.hatch_volumes.items() if self.hatch_open[name]]
        roots = connected_roots(V, edges)
        self.group_id = roots
        self.group_matrix = (roots[:, None] == roots[None, :]).astype(float)
        self.group_m3 = np.array([ch.volume_m3[roots == roots[i]].sum() for i in range(V)])
        #: each group's total volume as the estimator sums it (m3, ``(V,)``)
        self.volume_m3_sum = ch.volume_m3 @ self.group_matrix.T
        self.members = [
            tuple(ch.volume_names[j] for j in np.flatnonzero(roots == roots[i])) for i in range(V)
        ]
        #: the volumes that are a group alone (``(V,)`` bool)
        self.alone = np.array([len(m) == 1 for m in self.members], dtype=bool)

    def set_hatch(self, name: str, is_open: bool, now_s: float) -> None:
        """Record a hatch's state at host time ``now_s`` (s); the volumes whose group
        changes (and the hatch's two volumes) start settling."""
        if name not in self.hatch_open:
            raise KeyError(f"unknown hatch {name!r}")
        old = self.group_m3.copy()
        old_ids = self.group_id.copy()
        self.hatch_open[name] = bool(is_open)
        self._compute()
        changed = (old != self.group_m3) | (old_ids != self.group_id)
        a, b = self.hatch_volumes[name]
        changed[[a, b]] = True
        self.changed_t[changed] = now_s
        self.settled_from_channel = (self.changed_t + self.settle_s)[self._channels.volume_of]

    def settled(self, now_s: float) -> np.ndarray:
        """Volumes whose group has not changed for ``hatch_settle_s`` (bool, (V,)).

        Do not change the array returned: while no group has ever changed it is
        one array, all True, made once."""
        if self.settled_from_channel is None:  # no hatch has moved: all settled
            if self._all_settled is None:
                self._all_settled = np.ones(self._channels.n_volumes, dtype=bool)
            return self._all_settled
        return (now_s - self.changed_t) >= self.settle_s
