"""An exclusive lock on an output folder, so two runs never write the same folder at once.

Why: two ``generate`` runs into one ``--out`` both made every image, and the second died with
``FileNotFoundError`` when the first removed its part files. The lock is an ``flock`` on a file in the
folder: the operating system releases it when the process ends, however it ends, so a killed run
never leaves a stale lock behind. A second run is refused at once with the first one's pid and command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from handsynth.data.folder import check_output_folder
from handsynth.errors import UserError

LOCK_NAME = ".handsynth.lock"


class FolderLock:
    """Holds ``folder``'s lock from construction until :meth:`release` (or the object is freed).

    ``rank`` > 0: the processes of one distributed run share the folder, each with its own lock file,
    so only a second run (whose ranks collide with the first's) is refused.
    """

    def __init__(self, folder: str | os.PathLike, command: str | None = None, rank: int = 0) -> None:
        self._fd: int | None = None  # set first: __del__ runs even when __init__ refuses
        self.folder = Path(folder)
        check_output_folder(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / (LOCK_NAME if rank == 0 else f"{LOCK_NAME}.rank{rank}")
        try:
            import fcntl
        except ImportError:  # no flock on this platform: run unlocked rather than not at all
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise UserError(
                f"{self.folder} is being written by another handsynth run ({holder}); wait for it to "
                "finish or choose another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {command or command_line()}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def command_line() -> str:
    """This process's command line, short, for the lock file (what a refused second run is told)."""
    return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:160]
