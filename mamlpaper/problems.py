"""The paper's experimental settings as ready-made :class:`~mamlpaper.sweep.MetaProblem`s."""
from __future__ import annotations

import torch

from . import _checks, models, tasks
from .sweep import MetaProblem


def linear_regression(seed: int = 0, n_points: int = 100) -> MetaProblem:
    """Section 5.1: one fixed task y = a·x + b, full batch, same data inner and outer.

    θ0 and the task come from ``seed``; every iteration sees the same task, as in the paper.
    """
    _checks.integer("seed", seed, minimum=0)
    generator = torch.Generator().manual_seed(seed)
    model = models.linear_model(generator).double()
    task = tasks.linear_regression(generator, n_points)
    return MetaProblem(
        name="linear_regression",
        model=model,
        sample_tasks=lambda _generator: task,
        spec={"family": "linear_regression", "seed": seed, "n_points": n_points, "a_b_range": [0, 5], "x_range": [-5, 5]},
    )


def sinusoid(seed: int = 0, n_tasks: int = 100, n_support: int = 10, n_query: int = 10,
             activation: str = "relu") -> MetaProblem:
    """Section 5.2: MLP 1-40-40-1 on sine tasks, a fresh meta-batch of ``n_tasks`` every iteration.

    ``seed`` draws θ0; the task stream is drawn from the sweep's own seed, shared by all configs.
    """
    _checks.integer("seed", seed, minimum=0)
    for name, value in (("n_tasks", n_tasks), ("n_support", n_support), ("n_query", n_query)):
        _checks.integer(name, value, minimum=1)
    model = models.mlp(torch.Generator().manual_seed(seed), activation=activation)
    return MetaProblem(
        name="sinusoid",
        model=model,
        sample_tasks=lambda generator: tasks.sinusoid(generator, n_tasks, n_support, n_query),
        spec={"family": "sinusoid", "seed": seed, "n_tasks": n_tasks, "n_support": n_support,
              "n_query": n_query, "activation": activation, "amplitude": [0.1, 5], "phase": [0, "pi"],
              "x_range": [-5, 5], "widths": [1, 40, 40, 1]},
    )
