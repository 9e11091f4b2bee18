"""``NodeLocks``: which Kairos processes on this machine are alive, told by the kernel.

Every node a process serves holds an exclusive ``flock`` on a file of its own in one directory
(beside a SQLite database). The kernel drops the lock the moment the process dies, however it
dies (SIGKILL, OOM), and at no other time: unlike a database connection, a file lock is not lost
while its process lives. A node whose file nobody holds is therefore certainly gone, and its runs
can be taken over at once instead of when its lease runs out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from kairos.errors import StoreUnavailable

__all__ = ["NodeLocks"]


class NodeLocks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._held: dict[str, int] = {}
        """Node id -> the open file descriptor holding its lock."""

    def hold(self, node_id: str) -> None:
        """Take ``node_id``'s lock (a no-op while held); raise ``StoreUnavailable`` if another
        process holds it."""
        if node_id in self._held:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path(node_id), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the node lock in {self.directory} ({exc.strerror}); check that"
                " this process may write beside the database"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreUnavailable(f"another process holds the lock of node {node_id}") from None
        os.write(fd, f"{node_id}\n".encode())
        self._held[node_id] = fd

    def release(self, node_id: str) -> None:
        """Give up ``node_id``'s lock and remove its file."""
        fd = self._held.pop(node_id, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path(node_id))
            os.close(fd)

    def close(self) -> None:
        """Give up every lock held, leaving the files: a node that did not leave the cluster
        (``release``) is then seen gone, as if its process had died, and its runs are taken
        over."""
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()

    def gone(self, node_ids: Iterable[str]) -> set[str]:
        """Those of ``node_ids`` whose lock file exists and no process holds: their process
        died. A node with no file (one of another machine, or of an older version) cannot be
        told, and is not among them."""
        return {node_id for node_id in node_ids if self._unheld(node_id)}

    def forget(self, node_ids: Iterable[str]) -> None:
        """Remove the files of nodes taken over (their locks are free)."""
        for node_id in node_ids:
            if node_id not in self._held:
                with contextlib.suppress(OSError):
                    os.unlink(self._path(node_id))

    def _unheld(self, node_id: str) -> bool:
        if node_id in self._held:
            return False
        try:
            fd = os.open(self._path(node_id), os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # closing releases the lock if this took it
        return True

    def _path(self, node_id: str) -> Path:
        # Node ids hold a host name: hashed, any id makes a safe file name.
        return self.directory / f"{hashlib.sha256(node_id.encode()).hexdigest()[:24]}.lock"
