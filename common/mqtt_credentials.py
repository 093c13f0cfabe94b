"""A broker account file: TOML with ``username = "..."`` and ``password = "..."``, nothing else.

Read by the board (``[station] credentials``) and the aggregator (the station
file's ``credentials``) alike; a missing key, an empty password or another key
is a ``ConfigError`` naming that file and key (one line, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.tomltable import Table, read_toml


@dataclass(frozen=True)
class Credentials:
    """A broker account."""

    username: str
    password: str


def read_credentials(path: Path) -> Credentials:
    """The credentials file ``path`` (see the module docstring)."""
    t = Table(str(path), "", read_toml(path))
    user = t.ident("username")
    password = t.str("password")
    if not password:
        raise t.err("password", "must not be empty")
    t.done()
    return Credentials(user, password)
