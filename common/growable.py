"""A numpy array that grows at its end, for records whose count is not known up front.

Rows live in a buffer whose capacity at least doubles when it fills (amortized
O(1) per row, no Python object per row); ``array`` is a view of the filled rows.
"""

from __future__ import annotations

import numpy as np


class GrowableArray:
    """Rows of shape ``row_shape`` and ``dtype``, appended one at a time or in blocks.

    ``capacity`` rows are reserved up front.  ``array`` is a view of the rows so
    far; it stays valid until the next ``append``/``extend`` that has to grow.
    """

    def __init__(self, row_shape: tuple[int, ...] = (), dtype=np.float64, capacity: int = 64):
        self._buf = np.empty((max(int(capacity), 1), *row_shape), dtype=dtype)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        """Rows the buffer holds before it grows."""
        return len(self._buf)

    @property
    def array(self) -> np.ndarray:
        """The filled rows (a view)."""
        return self._buf[: self._n]

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in all: at least double the capacity if it grows."""
        if rows > len(self._buf):
            new = np.empty((max(2 * len(self._buf), rows), *self._buf.shape[1:]), self._buf.dtype)
            new[: self._n] = self._buf[: self._n]
            self._buf = new

    def append(self, row) -> None:
        """Add one row (anything that broadcasts to the row shape)."""
        n = self._n
        if n == len(self._buf):
            self.reserve(n + 1)
        self._buf[n] = row
        self._n = n + 1

    def extend(self, rows) -> None:
        """Add the rows of ``rows`` (an array of shape (m, *row_shape))."""
        m = len(rows)
        n = self._n
        self.reserve(n + m)
        self._buf[n : n + m] = rows
        self._n = n + m
