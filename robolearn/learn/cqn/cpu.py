"""CPU learner tuning: keep freed memory in the process instead of returning it to the OS.

A CQN update on RLBench shapes allocates and frees hundreds of tensors of 100–400 MB
(uint8→float views, conv/LayerNorm/SiLU activations). glibc serves every allocation above
its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free, so each update
page-faults all of that memory in again; on the 2-core development machine this was about a
third of the update's CPU time. Turning mmap off for malloc (and never trimming the heap)
lets freed blocks be reused from the second update on.

This changes process-wide malloc behaviour, so it is opt-in: call it once at the start of a
dedicated learner process, not from library code that shares a process with other work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc malloc reuse freed memory instead of unmapping it.

    Returns:
        True if applied; False where it does not apply (not Linux/glibc), logged at DEBUG.
    """
    if not sys.platform.startswith("linux"):
        log.debug("keep_freed_memory: not Linux (%s); nothing done", sys.platform)
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:
        log.debug("keep_freed_memory: no glibc mallopt (%s); nothing done", exc)
        return False
    ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    if not ok:
        log.warning("keep_freed_memory: mallopt refused the settings; allocator unchanged")
    return ok
