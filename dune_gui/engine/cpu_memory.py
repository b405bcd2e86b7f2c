"""Process-wide memory settings that keep a CPU run's buffers in the process.

Every forward and backward pass allocates activation and gradient buffers of megabytes and
frees them again. By default glibc serves large buffers with mmap and unmaps them on free
(and trims the heap's top), so the next pass faults every page in anew and the kernel
zero-fills it: at photo resolution a large share of the CPU time went to the system, not
to the network. Three ``mallopt`` settings keep that memory for the next pass:

- no buffer is served by mmap (glibc's ceiling on its mmap threshold is 32 MB, and a
  photo-sized activation is larger), so every one comes from the heap and is reused;
- freed memory at the heap's top is kept up to ``TRIM_THRESHOLD_BYTES``;
- one arena for every thread, so a run in a worker thread (the app's) allocates from the
  same growable heap as the main thread, not from 64 MB per-thread heaps that fall back to
  mmap for large buffers.

Torch's own transparent-huge-page allocation (``THP_MEM_ALLOC_ENABLE=1``) was measured too
and is left as the user has it (``python -m dune_gui.bench.cpu_memory`` measures both). A
user's own glibc settings win: any ``MALLOC_*_`` tuning variable in the environment leaves
glibc as configured, and ``DUNE_CPU_MEMORY=system`` changes nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# freed memory at the heap's top kept up to this much before it is returned to the system
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024

_P = ParamSpec("_P")
_R = TypeVar("_R")

OPT_OUT_VARIABLE = "DUNE_CPU_MEMORY"  # "system": change nothing
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_",
                    "MALLOC_ARENA_MAX", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


_kept = False  # whether keep_cpu_memory applied the settings in this process


def keep_cpu_memory() -> bool:
    """Apply the settings unless the environment says otherwise; whether they apply."""
    global _kept
    if os.environ.get(OPT_OUT_VARIABLE) == "system" or not sys.platform.startswith("linux"):
        return False
    if any(v in os.environ for v in MALLOC_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt to find)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _kept = all([mallopt(_M_MMAP_MAX, 0) == 1,
                 mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1,
                 mallopt(_M_ARENA_MAX, 1) == 1])
    return _kept


def release_cpu_memory() -> None:
    """Hand the memory a finished run freed back to the system: the app stays open between
    runs, and with the settings above glibc would keep it."""
    if _kept:
        ctypes.CDLL(None).malloc_trim(0)


def releases_cpu_memory(run: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a long entry point of the engine (protect, evaluate; not the preview,
    which the app calls again and again and which would only fault its memory back in):
    release_cpu_memory once it returns."""
    @functools.wraps(run)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return run(*args, **kwargs)
        finally:
            release_cpu_memory()
    return wrapper
