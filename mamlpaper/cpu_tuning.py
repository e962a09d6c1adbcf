"""CPU settings under which training runs fast, each put back exactly as found.

Flushed float denormals are a per-thread flag that torch can set but not read; it is read by
its effect (:func:`denormals_flushed`) and restored after every training scope.

A retained heap is not set here. A vmapped sweep allocates and frees tens of wide tensors per
iteration; glibc returns that memory to the kernel (blocks above its mmap threshold, a heap top
above its trim threshold) and the next iteration page-faults it back in (a float32 sinusoid step
of 128 configs: ~10^5 faults per 5 steps, ~20 % of its time). Its thresholds can be changed at
run time (``mallopt``) but not read, and changing one ends glibc's dynamic rule for the rest of
the process: a library cannot put that back. So it is a process-start setting that the caller
asks for, ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647``,
which ``make figures`` and ``make benchmarks`` set for the processes they start.
"""
from __future__ import annotations

import contextlib

import torch

from . import _checks


def denormals_flushed() -> bool:
    """Whether this thread flushes float denormals to zero: torch can set the flag but not read it."""
    return float(torch.tensor(1e-40, dtype=torch.float32) * 1.0) == 0.0


@contextlib.contextmanager
def flushed_denormals():
    """Flush float denormals to zero: tiny ReLU-MLP gradients otherwise hit the CPU's slow
    denormal path (3× slower sweeps). The flag (the calling thread's) found on entry is put back
    on exit, so nested scopes and a flag set by the caller beforehand are kept."""
    found = denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(found)


@contextlib.contextmanager
def training_settings(enabled: bool = True):
    """The settings above for the span of one sweep or training run; ``enabled=False`` changes nothing."""
    if _checks.flag("enabled", enabled):
        with flushed_denormals():
            yield
    else:
        yield
