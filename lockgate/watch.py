"""Polling file watcher: calls back when any watched file changes.

Polling (mtime, size and inode of each file, once per interval) needs no
inotify dependency, works on every filesystem, and also sees a file replaced
by a rename, as editors and Kubernetes ConfigMap updates do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from lockgate.periodic import Periodic

log = logging.getLogger("lockgate.watch")

Stamp = tuple[tuple[str, int, int, int], ...]


def stamp_of(paths: Iterable[Path]) -> Stamp:
    """What changes when a file is edited, replaced, added or removed."""
    out = []
    for path in sorted(paths):
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class PollingWatcher(Periodic):
    """Runs `on_change()` when `stamp_of(files())` differs from the last look."""

    def __init__(
        self,
        files: Callable[[], Iterable[Path]],
        on_change: Callable[[], Awaitable[object]],
        interval: float = 1.0,
    ):
        super().__init__("file-watcher", interval, self._look)
        self.files = files
        self.on_change = on_change
        self.stamp = stamp_of(files())

    def mark_seen(self) -> None:
        """The current files are the ones in use (after an explicit reload)."""
        self.stamp = stamp_of(self.files())

    async def _look(self) -> None:
        try:
            stamp = stamp_of(self.files())
        except OSError:
            log.exception("cannot list the watched files")
            return
        if stamp != self.stamp:
            self.stamp = stamp
            await self.on_change()
