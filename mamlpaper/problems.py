"""The paper's experimental settings: its problems as ready-made
:class:`~mamlpaper.metaproblem.MetaProblem`s (and rebuilt from the spec they carry), the closed-form
Hessian of the linear-regression task, and its grid of learning rates."""
from __future__ import annotations

import functools
import inspect
import math
from typing import Sequence

import numpy as np
import torch

from . import _checks, models, tasks
from .metaproblem import MetaProblem
from .runtime import plain


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


def linear_regression_eigenvalues(task: tasks.Tasks) -> np.ndarray:
    """The eigenvalues (ascending) of the Hessian 2XᵀX/n of one linear-regression task, X = [x, 1].

    The loss mean((w·x + b − y)²) is quadratic, so this Hessian is the same at every θ and gives
    every bound of Section 3 in closed form, without training or autograd.
    """
    tasks.check_tasks(task)
    if task.n_tasks != 1 or task.x_support.ndim != 3 or task.x_support.shape[-1] != 1:
        raise _checks.refuse("task", task, "task must hold one task with one input feature, as "
                             "linear_regression's sample_tasks gives", shown=f"x_support of shape "
                             f"{tuple(task.x_support.shape)}")
    x = task.x_support[0, :, 0].cpu().numpy()
    X = np.c_[x, np.ones_like(x)]
    return np.linalg.eigvalsh(2 * X.T @ X / len(x))


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


def from_spec(name: str, spec: dict) -> MetaProblem:
    """The paper problem ``name`` rebuilt from the ``spec`` it carries (``MetaProblem.spec``, or a
    measured map's ``labels["spec"]``), so a problem that was swept can be measured again without
    retyping its settings.

    The spec's entries that are arguments of the problem's function are passed to it (the data
    root excepted: ``$MAMLPAPER_DATA`` as always); every entry must then equal what the rebuilt
    problem records, so a spec of other data (another class count) or with an unknown entry is
    refused instead of silently rebuilt as something else. A dataset that is absent raises
    ``fewshot.datasets.DataMissing``.
    """
    if not isinstance(name, str) or name not in PROBLEMS:
        raise _checks.refuse("name", name, f"name must be one of {', '.join(PROBLEMS)}")
    if not isinstance(spec, dict):
        raise _checks.refuse("spec", spec, "spec must be a dict (a MetaProblem's spec or a map's labels['spec'])",
                             shown=type(spec).__name__)
    build = PROBLEMS[name]
    arguments = {k: v for k, v in spec.items() if k in inspect.signature(build).parameters and k != "root"}
    problem = build(**arguments)
    recorded = plain(problem.spec)
    for key, value in plain(spec).items():
        if key not in recorded or recorded[key] != value:
            raise _checks.refuse(f"spec[{key!r}]", value, f"the rebuilt {name} problem records "
                                 f"{recorded.get(key, 'no such entry')!r}; pass the spec the problem carried")
    return problem


def paper_grid(low: float, high: float, mantissas: Sequence[int] = tuple(range(1, 10))) -> np.ndarray:
    """The paper's 1…9 × 10^k grid from ``low`` to ``high`` inclusive (e.g. 1e-4 … 9e-1).

    ``mantissas=(1, 2, 5)`` gives a coarser grid over the same range, for quicker profiles.
    """
    low, high = _checks.rate("low", low), _checks.rate("high", high)
    if low > high:
        raise _checks.refuse("low", low, f"low must not exceed high={high!r}")
    if isinstance(mantissas, (str, bytes)) or not isinstance(mantissas, Sequence) or not mantissas:
        raise _checks.refuse("mantissas", mantissas, "mantissas must be a non-empty sequence of integers from 1 to 9")
    mantissas = [_checks.integer("mantissas entry", m, minimum=1, maximum=9) for m in mantissas]
    values = []
    for k in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for m in sorted(set(mantissas)):
            v = float(f"{m}e{k}")
            if low * (1 - 1e-12) <= v <= high * (1 + 1e-12):
                values.append(v)
    return np.array(values)


PROBLEMS = {"linear_regression": linear_regression, "sinusoid": sinusoid, "omniglot": omniglot,
            "miniimagenet": miniimagenet}
"""The paper's problems by the name their :class:`~mamlpaper.metaproblem.MetaProblem` carries."""
