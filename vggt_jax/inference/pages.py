"""Resident memory of memory-mapped arrays (long sequences).

Every page read or written through a memory map counts in the process's resident memory until it is released, so
a run that reads each frame of a 10,000-frame ``.npy`` once would end holding all of them. ``release_pages`` drops
a map's pages from this process (written pages are flushed first; the data stays in the file and the page cache)
and ``frames`` walks an array a frame at a time, releasing as it goes: resident memory stays flat in frames.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np


def _mapping(array) -> mmap.mmap | None:
    """The ``mmap`` under ``array`` (an ``np.memmap``, or a view of one), else None."""
    while array is not None:
        handle = getattr(array, "_mmap", None)
        if handle is not None:
            return handle
        array = getattr(array, "base", None)
    return None


def release_pages(*arrays) -> None:
    """Flush and drop from this process the pages of every memory-mapped array in ``arrays``; others are skipped."""
    if not hasattr(mmap, "MADV_DONTNEED"):  # not Linux/BSD/macOS: nothing to release
        return
    for array in arrays:
        handle = _mapping(array)
        if handle is not None and not handle.closed:
            handle.flush()
            handle.madvise(mmap.MADV_DONTNEED)


def frames(array: np.ndarray, every: int = 8) -> Iterator[np.ndarray]:
    """``array[0], array[1], ...``, releasing a memory map's pages every ``every`` frames and at the end."""
    for k in range(len(array)):
        yield array[k]
        if k % every == every - 1:
            release_pages(array)
    release_pages(array)
