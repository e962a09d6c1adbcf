"""The paper's experimental settings as ready-made :class:`~mamlpaper.sweep.MetaProblem`s."""
from __future__ import annotations

import functools

import torch

from . import _checks, models, tasks
from .sweep import MetaProblem


def linear_regression(seed: int = 0, n_points: int = 100) -> MetaProblem:
    """Section 5.1: one fixed task y = a·x + b, full batch, same data inner and outer.

    θ0 comes from ``seed``; the task from the seed of the sweep's task stream (the same task at
    every iteration, as in the paper), drawn as ``linear_regression(that seed)`` draws it, so a
    sweep with ``seed=s`` trains the task of problem ``s``, and a seed-batched sweep trains one
    data draw per seed. ``sample_tasks(None)`` is the task of ``seed``.
    """
    _checks.integer("seed", seed, minimum=0)
    _checks.integer("n_points", n_points, minimum=1)
    model = models.linear_model(torch.Generator().manual_seed(seed)).double()

    @functools.lru_cache(maxsize=64)
    def task_of(data_seed: int) -> tasks.Tasks:
        generator = torch.Generator().manual_seed(data_seed)
        models.linear_model(generator)  # θ0's draws come first, as in every release before seeds
        return tasks.linear_regression(generator, n_points)

    return MetaProblem(
        name="linear_regression",
        model=model,
        sample_tasks=lambda generator: task_of(seed if generator is None else generator.initial_seed()),
        spec={"family": "linear_regression", "seed": seed, "n_points": n_points, "a_b_range": [0, 5],
              "x_range": [-5, 5], "data": "drawn from the task stream's seed"},
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


def _conv4_problem(name: str, data, seed: int, ways: int, shots: int, queries: int, tasks_per_batch: int,
                   filters: int, spec: dict) -> MetaProblem:
    """Conv4 on N-way K-shot episodes of a loaded dataset: what Omniglot and MiniImagenet share."""
    from .fewshot import conv4, episodes, readout

    sampler = episodes.EpisodeSampler(data.images, ways, shots, queries, tasks_per_batch)
    channels, size, _ = sampler.image_shape
    model = conv4.conv4(torch.Generator().manual_seed(seed), ways, channels=channels, image_size=size, filters=filters)
    return MetaProblem(
        name=name, model=model, sample_tasks=sampler, criterion=conv4.cross_entropy,
        spec={"family": name, "seed": seed, "ways": ways, "shots": shots, "queries": queries,
              "tasks_per_batch": tasks_per_batch, "filters": filters, **spec},
        data_identity=data.data_identity, readout=readout.ADAPTED_ACCURACY,
    )


def omniglot(seed: int = 0, *, ways: int = 5, shots: int = 1, queries: int = 15, tasks_per_batch: int = 32,
             filters: int = 64, split: str = "train", split_seed: int = 0, rotations=(0, 90, 180, 270),
             root=None, subset: str = "auto") -> MetaProblem:
    """Section 5.3 (Fig. 4b): Conv4 on N-way K-shot Omniglot episodes, a fresh meta-batch per iteration.

    ``seed`` draws θ0; ``split_seed`` the split of characters (fixed, so every seed meets the
    same classes); the task stream comes from the sweep's seed. Missing data raises
    ``fewshot.datasets.DataMissing`` with a message that says how to get it.
    """
    from .fewshot import datasets

    _checks.integer("seed", seed, minimum=0)
    data = datasets.load_omniglot(split, root=root, subset=subset, seed=split_seed, rotations=tuple(rotations))
    return _conv4_problem("omniglot", data, seed, ways, shots, queries, tasks_per_batch, filters,
                          {"split": split, "split_seed": split_seed, "rotations": list(rotations), "subset": subset,
                           "classes": int(data.images.shape[0])})


def miniimagenet(seed: int = 0, *, ways: int = 5, shots: int = 1, queries: int = 15, tasks_per_batch: int = 4,
                 filters: int = 32, split: str = "train", root=None) -> MetaProblem:
    """Section 5.3 (Fig. 4c): Conv4-32 on N-way K-shot MiniImagenet episodes (Ravi & Larochelle's split)."""
    from .fewshot import datasets

    _checks.integer("seed", seed, minimum=0)
    data = datasets.load_miniimagenet(split, root=root)
    return _conv4_problem("miniimagenet", data, seed, ways, shots, queries, tasks_per_batch, filters,
                          {"split": split, "classes": int(data.images.shape[0]),
                           "images_per_class": int(data.images.shape[1])})
