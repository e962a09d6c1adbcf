"""How much memory a computation needs, so a sweep can size its batches from a budget.

``footprint`` runs a function once while watching every tensor the operators create (a torch
dispatch mode, below ``vmap``, so batched tensors count at their full size) and releasing each
when its storage is freed: the high-water mark of tensor memory, on any device, without the
allocator's own statistics (the CPU has none), and the largest single tensor, in elements (CUDA
kernels such as convolution index a tensor with 32-bit integers, so a batch is bounded by that
too: 64 Conv4 configurations × 32 tasks made a 8·10⁹-element input on an H200 and the convolution
refused it). ``default_budget`` is what a sweep may use when the caller does not say.
"""
from __future__ import annotations

import os
import weakref
from typing import Callable, NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

CPU_SHARE = 0.25
"""Of the machine's physical memory, what a CPU sweep may hold by default (the rest: the OS,
the notebook, glibc's retained heap)."""
CUDA_SHARE = 0.8
"""Of the device's free memory, what a CUDA sweep may hold by default (the rest: fragmentation)."""


class _Watch(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.current = self.peak = self.largest = 0
        self.live: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
                storage = t.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.live:
                    self.live.add(key)
                    self.current += size
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key, size)
        return out

    def _free(self, key: int, size: int) -> None:
        self.live.discard(key)
        self.current -= size


INDEX_LIMIT = 2**31 - 1
"""The most elements a tensor may have for kernels that index it with 32-bit integers (CUDA's)."""


class Footprint(NamedTuple):
    peak_bytes: int
    """The largest total size of tensors held at once (the function's inputs not counted)."""
    largest_elements: int
    """The element count of the largest tensor created."""


def footprint(fn: Callable[[], object]) -> Footprint:
    """What ``fn()`` needs: its peak tensor memory and its largest tensor."""
    watch = _Watch()
    with watch:
        fn()
    return Footprint(watch.peak, watch.largest)


def peak_bytes(fn: Callable[[], object]) -> int:
    """The largest total size of tensors that ``fn()`` held at once (its inputs not counted)."""
    return footprint(fn).peak_bytes


def default_budget(device: torch.device) -> int:
    """Bytes a sweep may use: a share of the GPU's free memory, or of the machine's RAM.

    On a GPU, memory that torch's caching allocator holds but no tensor uses counts as free:
    after one sweep the cache holds what that sweep needed, and the driver's figure alone then
    sized the next sweep's chunks 4× too small (seen on an H200).
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(CUDA_SHARE * (free + cached))
    return int(CPU_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
