"""Atomic file replacement shared by every writer in the engine."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Temporary names are short and fixed-shape: the final name may already be near the
# file-system limit (255 bytes), and a crashed run's leftovers must be recognisable.
TEMP_PREFIX = ".dune-"
TEMP_SUFFIX = ".part"


@contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`, fsync, then rename over `path`, so a
    half-written file never appears under the final name; on any error the temporary is
    removed and the old file (if any) is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        # mkstemp creates the file private (0600); protected images are made to be
        # published, so they get the mode any other program would give a new file
        os.chmod(tmp, _final_mode(path))
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _final_mode(path: Path) -> int:
    """The mode `path` has now (a replaced file keeps it), else 0666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    # Linux reports the umask without changing it; elsewhere it can only be read by
    # setting it, which is briefly visible to other threads, hence the /proc path first
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
