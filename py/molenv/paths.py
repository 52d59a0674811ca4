"""What a path given for a file or a directory is, when it is not one: the error messages.

``Path.is_file()`` is False for a directory, a FIFO and a missing path alike, so checking it
alone reports a directory given as a model as "not found"; and opening a FIFO to read it
waits for a writer that may never come. Every reader of a named file or directory asks
`file_problem` / `directory_problem` first and raises its own error type with the message.
"""
from __future__ import annotations

import stat
from pathlib import Path

__all__ = ["file_problem", "directory_problem", "output_directory_problem"]

# what a path that exists but is neither a regular file nor a directory is
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def file_problem(path: str | Path, what: str = "file") -> str | None:
    """None where `path` is a regular file (or a link to one); else the message, naming the
    path: ``PATH: WHAT not found``, ``PATH: is a directory, not a WHAT``, ``PATH: is a FIFO
    (named pipe), not a WHAT``."""
    path = Path(path)
    if path.is_file():
        return None
    if not path.exists():
        return f"{path}: {what} not found"
    if path.is_dir():
        return f"{path}: is a directory, not a {what}"
    return f"{path}: is {_kind(path)}, not a {what}: give a regular file"


def directory_problem(path: str | Path, what: str = "directory") -> str | None:
    """None where `path` is a directory; else ``PATH: WHAT not found`` or ``PATH: is a file,
    not a WHAT``."""
    path = Path(path)
    if path.is_dir():
        return None
    if not path.exists():
        return f"{path}: {what} not found"
    if path.is_file():
        return f"{path}: is a file, not a {what}"
    return f"{path}: is {_kind(path)}, not a {what}"


def output_directory_problem(path: str | Path) -> str | None:
    """None where `path` is a directory or can be made one (it, or its nearest existing
    ancestor, is a directory); else the message naming the file in the way. Asked before a
    command computes anything, so that the results are not lost to a mkdir that fails."""
    path = Path(path)
    for q in (path, *path.parents):
        if q.is_dir():
            return None
        if q.exists() or q.is_symlink():
            what = "a file" if q.is_file() else ("a broken link" if not q.exists() else _kind(q))
            return f"{q}: is {what}, not a directory" + ("" if q == path else f" (on the way to the output directory {path})")
    return None
