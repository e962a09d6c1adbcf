"""N-way K-shot episodes drawn from an in-memory image array, as the package's :class:`Tasks`.

The sampler knows nothing of files: it takes the uint8 array a dataset reader returns,
``(classes, per_class, H, W)`` grey or ``(classes, per_class, H, W, 3)`` colour, and every
draw comes from the ``torch.Generator`` it is called with, so it can serve as a
``MetaProblem.sample_tasks``. A task's ``ways`` classes are drawn without replacement and in
random order, and label j is the j-th drawn class, so the labels 0..N-1 are shuffled per task;
each class gives ``shots`` support and ``queries`` query images, disjoint, drawn without
replacement. Points are class-major (all of label 0, then label 1, ...): nothing computed on a
task (a mean loss, batch statistics, accuracy) depends on their order.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .. import _checks
from ..tasks import Tasks

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _image_array(images) -> torch.Tensor:
    """The reader's array as a uint8 tensor sharing its memory, viewed as (classes, per_class, C, H, W)."""
    rule = ("images must be a uint8 NumPy array shaped (classes, per_class, height, width) or "
            "(classes, per_class, height, width, 3)")
    if not isinstance(images, np.ndarray):
        raise _checks.refuse("images", images, rule, shown=type(images).__name__)
    if images.dtype != np.uint8:
        raise _checks.refuse("images", images, rule)
    if images.ndim not in (4, 5) or (images.ndim == 5 and images.shape[-1] != 3) or 0 in images.shape:
        raise _checks.refuse("images", images, rule + ", every axis non-empty")
    with warnings.catch_warnings():  # a read-only array (np.load with mmap_mode='r') is only ever read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        data = torch.from_numpy(np.ascontiguousarray(images))
    return data.permute(0, 1, 4, 2, 3) if data.ndim == 5 else data.unsqueeze(2)


class EpisodeSampler:
    """``sampler(generator) -> Tasks``: a meta-batch of ``tasks_per_batch`` N-way K-shot tasks.

    Images come out ``(tasks, ways·shots, C, H, W)`` (support) and ``(tasks, ways·queries, C, H, W)``
    (query) in ``dtype`` with values uint8/255 in [0, 1]; labels are int64 in 0..ways-1.
    The array is wrapped once as a channels-first view, without a copy (a MiniImagenet array is
    ~0.8 GB); each call gathers the meta-batch with one index operation and converts only it.
    """

    def __init__(self, images, ways: int, shots: int, queries: int, tasks_per_batch: int,
                 dtype=torch.float32):
        self._data = _image_array(images)
        classes, per_class = self._data.shape[:2]
        self.ways = _checks.integer("ways", ways, minimum=1)
        self.shots = _checks.integer("shots", shots, minimum=1)
        self.queries = _checks.integer("queries", queries, minimum=1)
        if self.ways > classes:
            raise _checks.refuse("ways", ways, f"ways must be <= the {classes} classes in images")
        if self.shots + self.queries > per_class:
            raise _checks.refuse("queries", queries, f"shots + queries must be <= the {per_class} images per class "
                                 f"(shots={self.shots}); support and query images are distinct")
        self.tasks_per_batch = _checks.integer("tasks_per_batch", tasks_per_batch, minimum=1)
        self.dtype = _checks.dtype(dtype, DTYPES)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image, as the model sees it."""
        return tuple(self._data.shape[2:])

    def __call__(self, generator: torch.Generator) -> Tasks:
        _checks.generator(generator)
        classes, per_class = self._data.shape[:2]
        n, k, per = self.tasks_per_batch, self.ways, self.shots + self.queries
        # the k largest of uniform keys, in order: a uniformly random ordered k-subset; float64 keys
        # make ties (a bias) negligible even among thousands of classes
        chosen = torch.rand(n, classes, generator=generator, dtype=torch.float64).topk(k, dim=1).indices
        examples = torch.rand(n, k, per_class, generator=generator, dtype=torch.float64).topk(per, dim=2).indices
        batch = self._data[chosen[:, :, None], examples]  # (n, k, per, C, H, W): the one gather
        batch = batch.contiguous().to(self.dtype).div_(255.0)  # uint8 made contiguous: the cheaper copy
        labels = torch.arange(k).view(1, k, 1)

        def side(part: torch.Tensor, count: int):
            images = part.reshape(n, k * count, *part.shape[3:]).contiguous()
            return images, labels.expand(n, k, count).reshape(n, k * count)

        x_support, y_support = side(batch[:, :, :self.shots], self.shots)
        x_query, y_query = side(batch[:, :, self.shots:], self.queries)
        return Tasks(x_support, y_support, x_query, y_query)

    def __repr__(self) -> str:
        classes, per_class = self._data.shape[:2]
        return (f"EpisodeSampler({self.ways}-way {self.shots}-shot, {self.queries} queries, "
                f"{self.tasks_per_batch} tasks, {classes}x{per_class} images {self.image_shape}, {self.dtype})")
