"""One writer at a time on a dataset folder: an exclusive `fcntl.flock` on a sibling lock file (beside the folder,
so the renames that pack a dataset leave it alone). The kernel drops the lock when its holder dies, so a killed
writer never leaves a stale lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from ..errors import UserError


class DatasetLocked(UserError):
    """Another process is writing the dataset; the message names the lock file and its holder."""


def lock_path(root: str | Path) -> Path:
    root = Path(root).absolute()
    return root.with_name(f".{root.name}.lock")


@contextlib.contextmanager
def exclusive(root: str | Path):
    """Hold the write lock on dataset folder `root` for the block, or raise DatasetLocked at once."""
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise DatasetLocked(f"{str(root)!r} is being written by another process (pid {holder}; lock file "
                                f"{str(path)!r}); wait for it to finish or write to another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing drops the lock
