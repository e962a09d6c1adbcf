"""How much memory a computation needs, so a sweep can size its batches from a budget.

``peak_bytes`` runs a function once while watching every tensor the operators create (a torch
dispatch mode, below ``vmap``, so batched tensors count at their full size) and releasing each
when its storage is freed: the high-water mark of tensor memory, on any device, without the
allocator's own statistics (the CPU has none). ``default_budget`` is what a sweep may use when
the caller does not say.
"""
from __future__ import annotations

import os
import weakref
from typing import Callable

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
        self.current = self.peak = 0
        self.live: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
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


def peak_bytes(fn: Callable[[], object]) -> int:
    """The largest total size of tensors that ``fn()`` held at once (its inputs not counted)."""
    watch = _Watch()
    with watch:
        fn()
    return watch.peak


def default_budget(device: torch.device) -> int:
    """Bytes a sweep may use: a share of the GPU's free memory, or of the machine's RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(CUDA_SHARE * free)
    return int(CPU_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
