"""Process-wide CPU settings under which training runs fast: flushed denormals, a retained heap.

Both are scoped to a sweep or a training loop: the denormal flag is restored after it; the heap
is trimmed, with glibc left at static thresholds (see ``retained_heap``).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

import torch

# glibc's mallopt parameters (malloc.h) and the values used while training.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20
_TRAINING_TRIM_THRESHOLD = 2**31 - 1
_AFTER_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD


def _glibc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


@contextlib.contextmanager
def flushed_denormals():
    """Flush float denormals to zero: tiny ReLU-MLP gradients otherwise hit the CPU's slow
    denormal path (3× slower sweeps). torch has no getter for this flag; its default, off, is
    restored."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextlib.contextmanager
def retained_heap():
    """Keep freed memory in the process (glibc; elsewhere nothing happens).

    A vmapped sweep allocates and frees tens of (configs, tasks, points, width) tensors per
    iteration; glibc hands such blocks back to the kernel and the next iteration page-faults
    them in again: 20 % of a sweep's time here, 2× when sweeps alternate with other work. While this holds, blocks up to
    32 MiB come from the heap and the heap is never trimmed; afterwards the heap is trimmed
    once and glibc's static thresholds are left at 32 MiB / 64 MiB (where its own dynamic
    rule ends after such a sweep).
    """
    if _LIBC is None:
        yield
        return
    _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    _LIBC.mallopt(_M_TRIM_THRESHOLD, _TRAINING_TRIM_THRESHOLD)
    try:
        yield
    finally:
        _LIBC.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM_THRESHOLD)
        _LIBC.malloc_trim(0)


@contextlib.contextmanager
def training_settings():
    """Both settings above, for the span of one sweep or training run."""
    with flushed_denormals(), retained_heap():
        yield
