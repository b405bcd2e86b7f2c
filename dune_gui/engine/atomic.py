"""Atomic file replacement shared by every writer in the engine."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
    fd, tmp = _create_temporary(path.parent)
    try:
        with suppress(FileNotFoundError):  # a replaced file keeps the mode its owner gave it
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: object, path: Path) -> None:
    """torch.save, replacing `path` atomically."""
    import torch  # here: the rest of this module serves Qt-free, torch-free callers too

    with atomic_write(path) as fh:
        torch.save(obj, fh)


def _create_temporary(folder: Path) -> tuple[int, str]:
    """Like tempfile.mkstemp, but created 0666 so the kernel applies the umask: outputs get
    the mode any other program would give a new file, not mkstemp's private 0600, which
    would keep a web server or a second user from the images a user means to publish."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(folder / f"{TEMP_PREFIX}{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")
