"""Task families that emit batched tensors; every draw comes from a ``torch.Generator``.

A meta-batch is a :class:`Tasks`: support (inner-loop) and query (outer-loop) data, each
with a leading task axis, so MAML can ``vmap`` over tasks. Two layouts exist, told apart by
the targets: regression, inputs (tasks, points, features) and float targets
(tasks, points, outputs); classification, inputs (tasks, points, features) or images
(tasks, points, channels, height, width) and integer labels (tasks, points).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from . import _checks


class Tasks(NamedTuple):
    """A meta-batch: support and query inputs and targets, each with a leading task axis."""

    x_support: Tensor
    y_support: Tensor
    x_query: Tensor
    y_query: Tensor

    @property
    def n_tasks(self) -> int:
        return self.x_support.shape[0]

    def to(self, device=None, dtype=None) -> "Tasks":
        """Move every tensor; ``dtype`` casts floating tensors only, so class labels stay integers."""
        return Tasks(*(t.to(device=device, dtype=dtype if t.is_floating_point() else None) for t in self))


def linear_regression(generator: torch.Generator, n_points: int = 100) -> Tasks:
    """One task y = a·x + b, a, b ~ U[0, 5], x ~ U[-5, 5], same data inner and outer (Section 5.1).

    Using the query set as the support set is what makes the paper's quadratic analysis exact.
    """
    _checks.generator(generator)
    _checks.integer("n_points", n_points, minimum=1)
    a, b = 5.0 * torch.rand(2, generator=generator, dtype=torch.float64)
    x = 10.0 * torch.rand(1, n_points, 1, generator=generator, dtype=torch.float64) - 5.0
    y = a * x + b
    return Tasks(x, y, x, y)


def sinusoid(generator: torch.Generator, n_tasks: int = 100, n_support: int = 10, n_query: int = 10) -> Tasks:
    """y = A·sin(x + φ), A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[-5, 5] (Section 5.2, after Finn et al.).

    Support and query points are drawn separately, as MAML does in practice (Appendix A.1).
    """
    _checks.generator(generator)
    for name, value in (("n_tasks", n_tasks), ("n_support", n_support), ("n_query", n_query)):
        _checks.integer(name, value, minimum=1)
    amplitude = 0.1 + 4.9 * torch.rand(n_tasks, 1, 1, generator=generator, dtype=torch.float64)
    phase = torch.pi * torch.rand(n_tasks, 1, 1, generator=generator, dtype=torch.float64)
    xs = 10.0 * torch.rand(n_tasks, n_support, 1, generator=generator, dtype=torch.float64) - 5.0
    xq = 10.0 * torch.rand(n_tasks, n_query, 1, generator=generator, dtype=torch.float64) - 5.0
    return Tasks(xs, amplitude * torch.sin(xs + phase), xq, amplitude * torch.sin(xq + phase))


def _check_side(tasks: Tasks, side: str) -> str:
    """One side's inputs and targets; returns the layout they form."""
    x, y = getattr(tasks, f"x_{side}"), getattr(tasks, f"y_{side}")
    if not x.is_floating_point() or x.ndim not in (3, 5):
        raise _checks.refuse(f"tasks.x_{side}", x, "inputs must be floating, shaped (tasks, points, features) or "
                             "(tasks, points, channels, height, width)")
    if y.is_floating_point():
        if y.ndim != 3 or x.ndim != 3:
            raise _checks.refuse(f"tasks.y_{side}", y, "regression targets must be (tasks, points, outputs) beside "
                                 f"inputs (tasks, points, features), here {tuple(x.shape)}; one output per point "
                                 "is y.unsqueeze(-1); class labels must be an integer tensor")
        if y.dtype != x.dtype:
            raise _checks.refuse(f"tasks.y_{side}", y, f"targets must have the inputs' dtype {x.dtype}")
        layout = "regression"
    elif y.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        if y.ndim != 2:
            raise _checks.refuse(f"tasks.y_{side}", y, "class labels must be (tasks, points)")
        if y.numel() and int(y.min()) < 0:
            raise _checks.refuse(f"tasks.y_{side}", y, f"class labels must be >= 0; found {int(y.min())}")
        layout = "classification"
    else:
        raise _checks.refuse(f"tasks.y_{side}", y, "targets must be floating (regression) or integer class labels")
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"tasks: the {side} set has {tuple(x.shape[:2])} (tasks, points) of inputs but "
                         f"{tuple(y.shape[:2])} of targets; they must match")
    if x.shape[1] == 0:
        raise ValueError(f"tasks: the {side} set has no points; each task needs at least one")
    for name, t in ((f"x_{side}", x), (f"y_{side}", y)):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"tasks.{name} has non-finite values; data must be finite")
    return layout


def check_tasks(tasks: Tasks) -> Tasks:
    """The layout is checked once, before any work, so a mistake names itself instead of failing
    in ``vmap`` or, worse, broadcasting to a wrong answer (the layouts: module docstring)."""
    if not isinstance(tasks, Tasks):
        raise _checks.refuse("tasks", tasks, "tasks must be a mamlpaper.tasks.Tasks", shown=type(tasks).__name__)
    for name, t in zip(Tasks._fields, tasks):
        if not isinstance(t, Tensor):
            raise _checks.refuse(f"tasks.{name}", t, "every field must be a tensor", shown=type(t).__name__)
    layouts = {_check_side(tasks, side) for side in ("support", "query")}
    counts = sorted({t.shape[0] for t in tasks})
    if len(counts) != 1 or counts[0] == 0:
        raise ValueError(f"tasks have task counts {counts}; all four tensors need the same non-zero leading size")
    if len(layouts) != 1:
        raise ValueError(f"tasks mix layouts {sorted(layouts)}; support and query must both be regression or "
                         "both classification")
    for field in ("x", "y"):
        s, q = getattr(tasks, f"{field}_support"), getattr(tasks, f"{field}_query")
        if s.shape[2:] != q.shape[2:] or s.dtype != q.dtype:
            raise ValueError(f"tasks.{field}_support is {s.dtype} {tuple(s.shape)} but tasks.{field}_query is "
                             f"{q.dtype} {tuple(q.shape)}; they must agree past the (tasks, points) axes")
    return tasks
