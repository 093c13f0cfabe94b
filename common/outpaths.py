"""Where command options write: at most one missing folder level is created.

A typo in ``--out /data/runs/2026/x.png`` must not build a tree of folders
anywhere: the folder that would hold the output may be missing (it is then
created), its parent must exist.  Problems raise ``CabinwatchError`` naming
the option, printed as one line with exit 2.
"""

from __future__ import annotations

from pathlib import Path

from common.errors import CabinwatchError


def _make_folder(folder: Path, option: str) -> None:
    """``folder`` exists afterwards; only it, never its parents, is created."""
    if folder.is_dir():
        return
    if folder.exists():
        raise CabinwatchError(f"{option}: {folder} is not a folder")
    parent = folder.parent
    if not parent.is_dir():
        raise CabinwatchError(
            f"{option}: folder {parent} does not exist (only one missing level is created)"
        )
    try:
        folder.mkdir()
    except FileExistsError:
        pass  # made meanwhile
    except OSError as exc:
        raise CabinwatchError(f"{option}: cannot create {folder}: {exc.strerror or exc}") from None


def output_file(path: str | Path, option: str) -> Path:
    """``path`` ready to be written as a file: not a folder, its folder present
    (created if it is the only missing level)."""
    p = Path(path)
    if str(path).endswith(("/", "\\")) or p.is_dir():
        raise CabinwatchError(f"{option}: {path} is a folder; give a file name")
    _make_folder(p.parent if str(p.parent) else Path("."), option)
    return p


def output_folder(path: str | Path, option: str, *, default: bool = False) -> Path:
    """``path`` as a folder that exists (created if it is the only missing level;
    ``default``: the path is the command's own default, not typed, and is created
    with its parents)."""
    p = Path(path)
    if default and not p.is_dir():
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CabinwatchError(f"{option}: cannot create {p}: {exc.strerror or exc}") from None
    _make_folder(p, option)
    return p
