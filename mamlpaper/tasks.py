"""Task families that emit batched tensors; every draw comes from a ``torch.Generator``.

A meta-batch is a :class:`Tasks`: support (inner-loop) and query (outer-loop) data, each
with a leading task axis, so MAML can ``vmap`` over tasks.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Tasks(NamedTuple):
    """A meta-batch: tensors shaped (tasks, points, features)."""

    x_support: Tensor
    y_support: Tensor
    x_query: Tensor
    y_query: Tensor

    @property
    def n_tasks(self) -> int:
        return self.x_support.shape[0]

    def to(self, device=None, dtype=None) -> "Tasks":
        return Tasks(*(t.to(device=device, dtype=dtype) for t in self))


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1")


def linear_regression(generator: torch.Generator, n_points: int = 100) -> Tasks:
    """One task y = a·x + b, a, b ~ U[0, 5], x ~ U[-5, 5], same data inner and outer (Section 5.1).

    Using the query set as the support set is what makes the paper's quadratic analysis exact.
    """
    _check_count("n_points", n_points)
    a, b = 5.0 * torch.rand(2, generator=generator, dtype=torch.float64)
    x = 10.0 * torch.rand(1, n_points, 1, generator=generator, dtype=torch.float64) - 5.0
    y = a * x + b
    return Tasks(x, y, x, y)


def sinusoid(generator: torch.Generator, n_tasks: int = 100, n_support: int = 10, n_query: int = 10) -> Tasks:
    """y = A·sin(x + φ), A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[-5, 5] (Section 5.2, after Finn et al.).

    Support and query points are drawn separately, as MAML does in practice (Appendix A.1).
    """
    for name, value in (("n_tasks", n_tasks), ("n_support", n_support), ("n_query", n_query)):
        _check_count(name, value)
    amplitude = 0.1 + 4.9 * torch.rand(n_tasks, 1, 1, generator=generator, dtype=torch.float64)
    phase = torch.pi * torch.rand(n_tasks, 1, 1, generator=generator, dtype=torch.float64)
    xs = 10.0 * torch.rand(n_tasks, n_support, 1, generator=generator, dtype=torch.float64) - 5.0
    xq = 10.0 * torch.rand(n_tasks, n_query, 1, generator=generator, dtype=torch.float64) - 5.0
    return Tasks(xs, amplitude * torch.sin(xs + phase), xq, amplitude * torch.sin(xq + phase))


def check_tasks(tasks: Tasks) -> Tasks:
    """Shapes are checked once, before any work, so a mistake names itself instead of failing in vmap."""
    if not isinstance(tasks, Tasks):
        raise ValueError(f"tasks={type(tasks).__name__} must be a mamlpaper.tasks.Tasks")
    for name, t in zip(Tasks._fields, tasks):
        if not isinstance(t, Tensor) or t.ndim < 2:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"tasks.{name} has shape {shape}; expected (tasks, points, ...) with at least 2 dims")
    n = {t.shape[0] for t in tasks}
    if len(n) != 1 or 0 in n:
        raise ValueError(f"tasks have task counts {sorted(n)}; all four tensors need the same non-zero leading size")
    for x, y, side in ((tasks.x_support, tasks.y_support, "support"), (tasks.x_query, tasks.y_query, "query")):
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"{side} set has {x.shape[1]} inputs but {y.shape[1]} targets per task; they must match")
    return tasks
