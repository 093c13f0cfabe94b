"""Connected groups of volumes: one union-find for the monitor, the emulator and the scorer."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def connected_roots(n: int, edges: Iterable[tuple[int, int]]) -> np.ndarray:
    """Union-find over ``n`` nodes joined by ``edges``: each node's root (an index).

    Nodes with the same root are connected.  Path halving; the root of a
    joined pair is the second node's root.
    """
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        parent[find(a)] = find(b)
    return np.array([find(i) for i in range(n)], dtype=np.int64)
