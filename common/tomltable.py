"""One reader for TOML tables: typed getters, unknown keys rejected, one message format.

Used by the monitor configuration, the runtime configuration and the scenarios.
Every mistake raises ``ConfigError(file, key path, problem)``, printed as one
line ``FILE: KEY.PATH: PROBLEM``; the problems read alike everywhere:

* ``missing``; ``unknown key (allowed: a, b, c)``; ``must be a table``;
* ``must be a string``, ``must be true or false``, ``must be a number``,
  ``must be finite``, ``must be an integer``;
* ``must be > 0 (got -2.0)``, ``must be >= 0.0 (got -1.0)``, ``must be in 1..247 (got 300)``;
* ``(file)`` and ``(syntax)`` stand for the key when the file cannot be read or parsed
  (not a regular file, larger than ``MAX_FILE_BYTES``, not UTF-8);
* numbers are also checked against a named range of ``common.bounds``
  (``must be in 0.001..1000 (got 1e+300)``); names (``ident``) must be non-empty,
  short and free of control characters.

A ``Table`` remembers every key it was asked for; ``done()`` then rejects the
others, naming those it knows.
"""

from __future__ import annotations

import math
import stat
import tomllib
from pathlib import Path
from typing import Any

from common import bounds
from common.errors import ConfigError

#: Default of a getter whose key must be present.
REQUIRED: Any = object()


#: The largest TOML file read (bytes): a configuration or scenario is a few KiB.
MAX_FILE_BYTES = 4 * 2**20
#: The longest name (characters) of a volume, sensor, hatch, link or leak.
MAX_NAME_CHARS = 64


def read_toml(path: str | Path) -> dict:
    """The parsed TOML file; ``ConfigError`` with key ``(file)`` or ``(syntax)``.

    Only a regular file of at most ``MAX_FILE_BYTES`` is read (a FIFO or a
    device would block or never end); a UTF-8 byte-order mark is skipped.
    """
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(str(p), "(file)", "is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(str(p), "(file)", "not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise ConfigError(
                str(p), "(file)", f"too large ({st.st_size} bytes, limit {MAX_FILE_BYTES})"
            )
        with p.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(p), "(file)", exc.strerror or str(exc)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(str(p), "(file)", f"too large (limit {MAX_FILE_BYTES} bytes)")
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(str(p), "(file)", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "(syntax)", str(exc)) from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ConfigError(str(p), "(syntax)", str(exc).split(";")[0]) from None


class Table:
    """The TOML table ``data`` at key path ``key`` ("" for the top level) of file ``path``.

    ``expected`` says what ``data`` should have been if it is not a table.
    Getters take a ``default`` (``REQUIRED``: the key must be present) and return
    it untouched when the key is absent.
    """

    def __init__(self, path: str, key: str, data: Any, expected: str = "a table"):
        if not isinstance(data, dict):
            raise ConfigError(path, key or "(top level)", f"must be {expected}")
        self.path, self.key, self.data = path, key, data
        self.known: set[str] = set()

    def name(self, key: str) -> str:
        """The full key path of ``key`` in this table."""
        return f"{self.key}.{key}" if self.key else key

    def err(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.path, self.name(key), problem)

    def has(self, key: str) -> bool:
        self.known.add(key)
        return key in self.data

    def raw(self, key: str, default: Any = REQUIRED) -> Any:
        self.known.add(key)
        if key not in self.data:
            if default is REQUIRED:
                raise self.err(key, "missing")
            return default
        return self.data[key]

    def str(self, key: str, default: Any = REQUIRED) -> Any:
        v = self.raw(key, default)
        if key in self.data and not isinstance(v, str):
            raise self.err(key, "must be a string")
        return v

    def ident(self, key: str, default: Any = REQUIRED) -> Any:
        """A name (of a volume, sensor, link...): a non-empty string of at most
        ``MAX_NAME_CHARS`` characters, none of them a control character (NUL...)."""
        v = self.str(key, default)
        if key not in self.data:
            return v
        if not v or not v.strip():
            raise self.err(key, "must not be empty")
        if len(v) > MAX_NAME_CHARS:
            raise self.err(key, f"must be at most {MAX_NAME_CHARS} characters (got {len(v)})")
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise self.err(key, "must not contain control characters (NUL, newline...)")
        return v

    def path_str(self, key: str, default: Any = REQUIRED) -> Any:
        """A file or folder path, a URL or a port: a string without NUL or line breaks."""
        v = self.str(key, default)
        if key in self.data and any(c in v for c in "\x00\n\r"):
            raise self.err(key, "must not contain NUL or line breaks")
        return v

    def bool(self, key: str, default: Any = REQUIRED) -> Any:
        v = self.raw(key, default)
        if key in self.data and not isinstance(v, bool):
            raise self.err(key, "must be true or false")
        return v

    def num(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        min: float | None = None,
        positive: bool = False,
        rng: bounds.Range = bounds.MAGNITUDE,
    ) -> Any:
        """A finite number as float; ``positive``: > 0; ``min``: >= min; always in
        ``rng`` (``common.bounds``: by default no more than 1e12 in magnitude)."""
        if key not in self.data:
            return self.raw(key, default)
        return self.check_num(self.raw(key), self.name(key), min=min, positive=positive, rng=rng)

    def check_num(
        self,
        v: Any,
        full_key: str,
        *,
        min: float | None = None,
        positive: bool = False,
        rng: bounds.Range = bounds.MAGNITUDE,
    ) -> float:
        """``v`` (found at ``full_key``) as a finite float in ``rng``, or ``ConfigError``."""
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(self.path, full_key, "must be a number")
        if not math.isfinite(v):
            raise ConfigError(self.path, full_key, "must be finite")
        if positive and v <= 0:
            raise ConfigError(self.path, full_key, f"must be > 0 (got {v})")
        if min is not None and v < min:
            raise ConfigError(self.path, full_key, f"must be >= {min} (got {v})")
        why = bounds.problem(v, rng)
        if why is not None:
            raise ConfigError(self.path, full_key, why)
        return float(v)

    def int(
        self, key: str, default: Any = REQUIRED, *, lo: int | None = None, hi: int | None = None
    ) -> Any:
        """An integer (not a bool) in ``lo..hi`` (either end open when None)."""
        v = self.raw(key, default)
        if key not in self.data:
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(key, "must be an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            if hi is None:
                raise self.err(key, f"must be >= {lo} (got {v})")
            if lo is None:
                raise self.err(key, f"must be <= {hi} (got {v})")
            raise self.err(key, f"must be in {lo}..{hi} (got {v})")
        return v

    def pair(self, key: str, default: Any = REQUIRED) -> Any:
        """``[min, max]``: two finite numbers, min below max, as a tuple of floats."""
        v = self.raw(key, default)
        if key not in self.data:
            return v
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise self.err(key, "must be a list of two numbers [min, max]")
        lo = self.check_num(v[0], f"{self.name(key)}[0]")
        hi = self.check_num(v[1], f"{self.name(key)}[1]")
        if not lo < hi:
            raise self.err(key, "min must be below max")
        return lo, hi

    def tables(self, key: str) -> list[Table]:
        """The array of tables ``[[key]]`` (none if absent)."""
        v = self.raw(key, [])
        if not isinstance(v, list):
            raise self.err(key, f"must be an array of tables [[{self.name(key)}]]")
        return [type(self)(self.path, f"{self.name(key)}[{i}]", item) for i, item in enumerate(v)]

    def sub(self, key: str, expected: str = "a table") -> Table:
        """The table ``[key]`` (empty if absent)."""
        return type(self)(self.path, self.name(key), self.raw(key, {}), expected)

    def done(self) -> None:
        """Reject the keys no getter asked for."""
        for k in self.data:
            if k not in self.known:
                allowed = ", ".join(sorted(self.known)) or "none"
                raise self.err(k, f"unknown key (allowed: {allowed})")
