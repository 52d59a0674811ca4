"""An exclusive lock on an output directory: one molenv process writes a run directory at a
time (`molenv simulate`, `molenv train sf|gnn`).

The lock is ``fcntl.flock`` on the file `LOCK_NAME` inside the directory. The kernel holds
it for the open file, so it goes away with its holder however that ends (kill -9
included): there is no stale lock to clean up, and a lock file left behind by a killed
holder is simply taken over. The holder writes who it is (pid, host, command, start time)
into the file, which is what a refused process reports. A clean release removes the file.

A directory written by a process that does not take the lock (a run started before the
lock existed) has no lock file; that is not an error, the next process takes the lock.
flock works between processes of one machine, and on NFS (Linux maps it to byte-range
locks there) between machines.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

__all__ = ["LOCK_NAME", "DirectoryLocked", "DirectoryLock", "holder"]

LOCK_NAME = ".molenv.lock"


class DirectoryLocked(ValueError):
    """The directory is locked by another process; the message names it."""


def holder(directory: str | os.PathLike) -> dict | None:
    """What the lock file of `directory` says about its holder (None: no file or unreadable)."""
    try:
        return json.loads((Path(directory) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None


def _describe(info: dict | None, path: Path) -> str:
    if not info:
        return f"holder unknown: its lock file {path} is empty"
    parts = [f"pid {info.get('pid')} on {info.get('host')}"]
    if info.get("started"):
        parts.append(f"since {info['started']}")
    text = ", ".join(parts)
    if info.get("command"):
        text += f": {info['command']}"
    return text


class DirectoryLock:
    """``with DirectoryLock(directory, command=...):`` holds the directory's lock or raises
    `DirectoryLocked` at once (no waiting). The directory must exist. ``what`` names the
    directory in the message (e.g. "run directory")."""

    def __init__(self, directory: str | os.PathLike, command: str | None = None, what: str = "directory"):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.command = command if command else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
        self.what = what
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> DirectoryLock:
        if self.fd is not None:
            return self
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                try:
                    text = os.pread(fd, 1 << 16, 0).decode("utf-8", "replace")
                    info = json.loads(text) if text.strip() else None
                except ValueError:
                    info = None
                os.close(fd)
                raise DirectoryLocked(f"{self.directory}: this {self.what} is in use by another molenv process "
                                      f"({_describe(info, self.path)}); wait for it to end, or stop it, or use another --out") from None
            # the file may have been removed (and perhaps made anew) by a holder releasing it
            # between our open and our lock: then the lock is on a file nobody else sees
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:  # pragma: no cover - a file replaced a hundred times in a row
            raise DirectoryLocked(f"{self.directory}: could not take the lock {self.path} (it keeps being replaced)")
        info = {"pid": os.getpid(), "host": platform.node(), "command": self.command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            # removed while still held: a process that opened it meanwhile sees (samestat) that
            # it is no longer the directory's lock file and opens the new one
            if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the flock

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
