"""Train a whole α×β grid as one batched program, and single configurations as a plain loop.

Configurations are stacked on a leading axis and ``vmap``-ped (tasks are ``vmap``-ped inside
each configuration). Every configuration sees the same task stream, drawn from one seeded
generator, so the grid compares learning rates on identical data. With ``seeds``, every
configuration runs once per seed, each seed with its own θ0 and task stream, and the
(configuration, seed) runs share the batch axis: more seeds are a wider batch, not more sweeps. A configuration whose loss
or gradient turns non-finite, or whose loss exceeds ``divergence_threshold``, is recorded as
diverged at that iteration and dropped from the batch, so it can never touch the others.
Chunks of configurations are cached on disk (atomically, :mod:`mamlpaper.cache`), keyed by
every parameter, the model, the criterion's code, the data and the package's source; an
interrupted sweep resumes from the chunks it finished, and a damaged chunk is recomputed.

The engine also picks each problem's meta-gradient (:func:`fastest_meta_gradient`): which exact
path is fastest depends on the model and the device, a question of how to run, not of MAML.
What a sweep trains is described in :mod:`mamlpaper.metaproblem`; its tables are read (β_c, maps)
by :mod:`mamlpaper.stability`.
"""
from __future__ import annotations

import concurrent.futures
import copy
import functools
import os
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import cloudpickle
import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from tqdm import tqdm

from . import __version__, _checks, cache, memory
from .cpu_tuning import training_settings
from .maml import (batched_meta_gradient, check_fit, functional_loss, looped_meta_gradient, mse,
                   parameters_of)
from .metaopt import OPTIMIZERS, init_state, update_rule
from .metaproblem import MetaProblem
from .mlp_adaptation import second_order_meta_gradient
from .models import Params, init_parameters
from .tasks import Tasks, check_tasks
from .variants import VARIANTS

DTYPES = {"float32": torch.float32, "float64": torch.float64}
class TrainResult(NamedTuple):
    """One configuration's run: loss per evaluation (NaN after divergence), divergence iteration, θ.

    ``monitored`` holds ``monitor(params, tasks)`` per evaluation (NaN after divergence), or is
    None without a monitor.
    """

    losses: np.ndarray
    diverged_at: int | None
    params: Params
    monitored: np.ndarray | None = None


@dataclass(frozen=True)
class _Settings:
    iterations: int
    variant: str
    optimizer: str
    steps: int
    seed: int
    dtype: torch.dtype
    device: torch.device
    divergence_threshold: float
    jitter: float = 0.0


def _check_settings(iterations, variant, optimizer, steps, seed, dtype, device, divergence_threshold,
                    jitter=0.0) -> _Settings:
    return _Settings(
        _checks.integer("iterations", iterations, minimum=1),
        _checks.choice("variant", variant, VARIANTS),
        _checks.choice("optimizer", optimizer, OPTIMIZERS),
        _checks.integer("steps", steps, minimum=1),
        _checks.integer("seed", seed, minimum=0),
        _checks.dtype(dtype, DTYPES),
        _checks.device(device),
        _checks.real("divergence_threshold", divergence_threshold, above=0.0),
        _checks.real("jitter", jitter, at_least=0.0),
    )


def _check_problem(problem: MetaProblem, s: _Settings) -> Tasks:
    """The problem's first meta-batch, checked against its model: every shape error shows here."""
    if not isinstance(problem, MetaProblem):
        raise _checks.refuse("problem", problem, "problem must be a mamlpaper.metaproblem.MetaProblem",
                             shown=type(problem).__name__)
    tasks = next(_task_stream(problem, s))
    params = {k: p.to(device=s.device, dtype=s.dtype) for k, p in parameters_of(problem.model).items()}
    check_fit(functional_loss(problem.model, problem.criterion), params, tasks)
    if tasks.y_support.is_floating_point():
        with torch.no_grad():
            out = functional_call(problem.model, params, (tasks.x_support[0],))
        if out.shape != tasks.y_support.shape[1:]:
            raise ValueError(f"problem.model maps one task's support inputs {tuple(tasks.x_support.shape[1:])} to "
                             f"{tuple(out.shape)}, but its targets are {tuple(tasks.y_support.shape[1:])}; "
                             "they must match")
    return tasks


def _progress_bar(progress: bool, **kwargs) -> tqdm:
    """A tqdm bar; `progress=False` silences it, otherwise TQDM_DISABLE=1 (tqdm's own setting) does.

    One refresh a second: an executed notebook stores every refresh, and long runs made them MBs.
    """
    return tqdm(leave=False, mininterval=1.0, **kwargs) if progress else tqdm(disable=True, **kwargs)


def has_convolutions(model: nn.Module) -> bool:
    """Whether per-task weights would turn into grouped convolutions under ``vmap``."""
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def fastest_meta_gradient(model: nn.Module, criterion, variant: str, steps: int, device) -> tuple[Callable, bool]:
    """The fastest exact meta-gradient for this model and device, and whether configs may be vmapped.

    Same contract and numbers (to round-off) for every choice: the closed-form MLP step
    (:mod:`mamlpaper.mlp_adaptation`) for one-step exact MAML with :func:`mse`; for a model with
    convolutions on a CPU, a loop over tasks, and over configurations too (vmap would make grouped
    convolutions of the per-task weights: 1.5-2× slower here, and the second-order graphs of
    several configurations did not fit in memory); otherwise ``vmap`` over tasks and configs.
    """
    _checks.module(model)
    _checks.choice("variant", variant, VARIANTS)
    steps = _checks.integer("steps", steps, minimum=1)
    device = _checks.device(device)
    if variant == "second" and steps == 1 and criterion is mse:
        closed_form = second_order_meta_gradient(model)
        if closed_form is not None:
            return closed_form, True
    loss = functional_loss(model, criterion)
    if device.type == "cpu" and has_convolutions(model):
        return looped_meta_gradient(loss, variant, steps), False
    return batched_meta_gradient(loss, variant, steps), True


JITTER_STREAM = 7919
"""Offset of the seed of θ0's jitter draws from the run's seed, so they are not θ0's own draws."""


def _initial_params(problem: MetaProblem, s: _Settings, seed: int | None = None) -> Params:
    """θ0 in the run's dtype and device: the problem's model as given, or, for a seed, the same
    architecture drawn afresh by :func:`models.init_parameters` from ``Generator(seed)`` (the
    problems of :mod:`mamlpaper.problems` draw their model that way, so seed s is their seed=s).

    With ``jitter`` ε > 0 every weight w becomes w·(1 + ε·z), z standard normal from
    ``Generator(seed + JITTER_STREAM)``, in float64 before the cast to the run's dtype: at ε ≈ 1e-7
    a float32 weight moves by about one unit in the last place, the kind of difference another
    machine's arithmetic makes in the first step."""
    model = problem.model if seed is None else init_parameters(copy.deepcopy(problem.model),
                                                                torch.Generator().manual_seed(seed))
    params = parameters_of(model)
    if s.jitter:
        generator = torch.Generator().manual_seed((s.seed if seed is None else seed) + JITTER_STREAM)
        params = {k: p.double() * (1 + s.jitter * torch.randn(p.shape, generator=generator, dtype=torch.float64))
                  for k, p in params.items()}
    return {k: p.to(device=s.device, dtype=s.dtype) for k, p in params.items()}


def _initial_state(problem: MetaProblem, s: _Settings):
    """θ0 in the run's dtype and device, the fastest meta-gradient, and whether configs vmap."""
    meta_gradient, vmappable = fastest_meta_gradient(problem.model, problem.criterion, s.variant, s.steps, s.device)
    return _initial_params(problem, s), meta_gradient, vmappable


def _over_configs(fn, vmappable: bool, per_run_tasks: bool = False):
    """``fn`` of one configuration applied to stacked ones (leading axis of params and α, and of
    the tasks when runs have their own): ``vmap`` where the device gains from it, else a loop."""
    if vmappable:
        return vmap(fn, in_dims=(0, 0 if per_run_tasks else None, 0))

    def looped(params, tasks, alphas):
        own = (lambda i: Tasks(*(t[i] for t in tasks))) if per_run_tasks else (lambda i: tasks)
        results = [fn({k: v[i] for k, v in params.items()}, own(i), alphas[i]) for i in range(len(alphas))]
        return tuple(_stack([r[j] for r in results]) for j in range(len(results[0])))

    return looped


def _stack(values):
    if isinstance(values[0], dict):
        return {k: torch.stack([v[k] for v in values]) for k in values[0]}
    return torch.stack(values)


def _task_stream(problem: MetaProblem, s: _Settings, seed: int | None = None):
    generator = torch.Generator().manual_seed(s.seed if seed is None else seed)
    while True:
        yield check_tasks(problem.sample_tasks(generator)).to(device=s.device, dtype=s.dtype)


def train(
    problem: MetaProblem, alpha: float, beta: float, *, iterations: int, variant: str = "second",
    optimizer: str = "sgd", steps: int = 1, seed: int = 0, dtype="float64", device="cpu",
    divergence_threshold: float = 1e8, monitor: Callable[[Params, Tasks], Tensor] | None = None,
    progress: bool = False, cpu_tuning: bool = True,
) -> TrainResult:
    """One configuration, one iteration after another: the reference every vmapped sweep must equal.

    ``monitor`` is evaluated on (θ, meta-batch) before each update, e.g. the per-task gradient
    norm of the paper's Fig. 1. ``cpu_tuning``: flush float denormals while training (up to 3×
    faster on CPU), put back as found afterwards (:mod:`mamlpaper.cpu_tuning`).
    """
    s = _check_settings(iterations, variant, optimizer, steps, seed, dtype, device, divergence_threshold)
    alpha = _checks.rate("alpha", alpha, allow_zero=True)
    beta = _checks.rate("beta", beta)
    if monitor is not None:
        _checks.function("monitor", monitor)
    progress = _checks.flag("progress", progress)
    cpu_tuning = _checks.flag("cpu_tuning", cpu_tuning)
    _check_problem(problem, s)
    params, meta_gradient, _ = _initial_state(problem, s)
    state = init_state(s.optimizer, params)
    update = update_rule(s.optimizer)
    a = torch.tensor(float(alpha), dtype=s.dtype, device=s.device)
    b = torch.tensor(float(beta), dtype=s.dtype, device=s.device)
    losses = np.full(s.iterations + 1, np.nan)
    monitored = None if monitor is None else np.full(s.iterations + 1, np.nan)
    stream = _task_stream(problem, s)
    steps = _progress_bar(progress, iterable=range(s.iterations + 1), desc=f"{problem.name} α={alpha:g} β={beta:g}",
                          unit="it")
    with training_settings(cpu_tuning), steps:
        for t in steps:
            tasks = next(stream)
            loss, grads = meta_gradient(params, tasks, a)
            finite = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(g).all()) for g in grads.values())
            if not finite or float(loss) > s.divergence_threshold:
                return TrainResult(losses, t, params, monitored)
            losses[t] = float(loss)
            if monitor is not None:
                monitored[t] = float(monitor(params, tasks))
            if t < s.iterations:
                params, state = update(params, grads, state, b)
    return TrainResult(losses, None, params, monitored)


def _gather(batches: list[Tasks], index: Tensor) -> Tasks:
    """Each run's own meta-batch: ``batches`` holds one per seed, ``index`` a seed position per run."""
    return Tasks(*(torch.stack(parts)[index] for parts in zip(*batches)))


def _run_chunk(problem: MetaProblem, alphas: np.ndarray, betas: np.ndarray, seeds: np.ndarray | None,
               s: _Settings, bar) -> dict:
    """All runs of one chunk in lock-step; dead ones are dropped from the batch.

    ``seeds``: the seed of each run (its θ0 and task stream), or None for the problem's θ0 and
    the sweep's one stream, shared by every run (then the tasks are not copied per run).
    """
    n = len(alphas)
    distinct = [None] if seeds is None else sorted(set(seeds.tolist()))
    theta0 = {seed: _initial_params(problem, s, seed) for seed in distinct}
    meta_gradient, vmappable = fastest_meta_gradient(problem.model, problem.criterion, s.variant, s.steps, s.device)
    which = torch.as_tensor(np.zeros(n, dtype=np.int64) if seeds is None else np.searchsorted(distinct, seeds),
                            device=s.device)
    params = {k: torch.stack([theta0[distinct[w]][k] for w in which.tolist()]) for k in theta0[distinct[0]]}
    state = {k: v.expand(n, *v.shape).clone() for k, v in init_state(s.optimizer, theta0[distinct[0]]).items()}
    a = torch.tensor(alphas, dtype=s.dtype, device=s.device)
    b = torch.tensor(betas, dtype=s.dtype, device=s.device)
    alive = torch.arange(n, device=s.device)
    shared = len(distinct) == 1
    batched_gradient = _over_configs(meta_gradient, vmappable, per_run_tasks=not shared)
    batched_update = vmap(update_rule(s.optimizer))
    loss_initial = np.full(n, np.nan)
    loss_final = np.full(n, np.nan)
    readouts = {c: np.full(n, np.nan) for c in problem.readout.columns}
    diverged_at = np.full(n, -1, dtype=np.int64)
    streams = [_task_stream(problem, s, seed) for seed in distinct]
    runs_tasks = lambda: batches[0] if shared else _gather(batches, which[alive])  # noqa: E731
    for t in range(s.iterations + 1):
        batches = [next(stream) for stream in streams]
        if len(alive) == 0:
            continue
        loss, grads = batched_gradient(params, runs_tasks(), a)
        bad = ~torch.isfinite(loss) | (loss > s.divergence_threshold)
        for g in grads.values():
            bad |= ~torch.isfinite(g.reshape(len(alive), -1)).all(1)
        idx = alive.cpu().numpy()
        values = loss.detach().cpu().numpy()
        if t == 0:
            loss_initial[idx] = values
        if t == s.iterations:
            loss_final[idx] = np.where(bad.cpu().numpy(), np.nan, values)
        if bad.any():
            dead = bad.cpu().numpy()
            diverged_at[idx[dead]] = t
            bar.update(int(dead.sum()) * (s.iterations - t))
            keep = ~bad
            params = {k: p[keep] for k, p in params.items()}
            grads = {k: g[keep] for k, g in grads.items()}
            state = {k: v[keep] for k, v in state.items()}
            a, b, alive = a[keep], b[keep], alive[keep]
        if t < s.iterations:
            bar.update(len(alive))
            if len(alive):
                params, state = batched_update(params, grads, state, b)
    if len(alive):
        read = _over_configs(lambda p, batch, alpha: (problem.readout.compute(problem, p, batch, alpha, s.steps),),
                             vmappable, per_run_tasks=not shared)
        (values,) = read(params, runs_tasks(), a)
        for column in problem.readout.columns:
            readouts[column][alive.cpu().numpy()] = values[column].detach().cpu().numpy()
    return {"loss_initial": loss_initial, "loss_final": loss_final, "diverged_at": diverged_at, **readouts}


MAX_CHUNK = {"cpu": 16384, "cuda": 4096}
"""The largest batch of runs (a bound on the per-chunk bookkeeping; memory bounds it first)."""
CPU_CHUNK_BYTES = 2**29
"""On a CPU, the most tensor memory one chunk's step may hold: 128 sinusoid configurations in
float32 (3.9 MB each), the fastest chunk on the development CPU (256 ran slower: the activations
leave the cache). Small models get many more runs per chunk: 5760 linear-regression runs
(7 kB each) in one chunk took 83 s where chunks of 128 took over 5 minutes."""
LOOPED_CHUNK = 8
"""Chunk size where configurations run one after another: memory does not grow with it, so it
only sets how often a chunk is cached (how much an interruption loses)."""


def _chunk_size(problem: MetaProblem, s: _Settings, budget: float) -> int:
    """As many configurations as ``budget`` bytes hold, from one measured step of two of them,
    and no more than keep every tensor within 32-bit indexing (:data:`memory.INDEX_LIMIT`)."""
    params, meta_gradient, vmappable = _initial_state(problem, s)
    if not vmappable:
        return LOOPED_CHUNK
    tasks = next(_task_stream(problem, s))
    pair = {k: v.expand(2, *v.shape).clone() for k, v in params.items()}
    alphas = torch.zeros(2, dtype=s.dtype, device=s.device)
    use = memory.footprint(lambda: _over_configs(meta_gradient, True)(pair, tasks, alphas))
    if s.device.type == "cpu":
        budget = min(budget, CPU_CHUNK_BYTES)
    by_memory = budget // max(use.peak_bytes / 2, 1.0)
    by_indexing = memory.INDEX_LIMIT // max(use.largest_elements // 2, 1)
    return int(max(1, min(MAX_CHUNK[s.device.type], by_memory, by_indexing)))


def default_chunk_size(problem: MetaProblem, *, variant: str = "second", optimizer: str = "sgd", steps: int = 1,
                       dtype="float64", device="cpu", memory_budget: float | None = None) -> int:
    """The chunk size a sweep picks when given none: how many runs one batched step holds on
    ``device`` within ``memory_budget`` bytes (default :func:`memory.default_budget`). For sizing
    a sweep, or a benchmark's, before it runs."""
    s = _check_settings(1, variant, optimizer, steps, 0, dtype, device, 1e8)
    if memory_budget is not None:
        memory_budget = _checks.real("memory_budget", memory_budget, above=0.0)
    _check_problem(problem, s)
    return _measured_chunk_size(problem, s, memory_budget)


CHUNK_FIELDS = {"loss_initial": np.float64, "loss_final": np.float64, "diverged_at": np.int64}
"""What every chunk holds, beside the problem's readout columns (float64)."""


def _cache_key(problem: MetaProblem, grid_a, grid_b, grid_s, seeds, s: _Settings, chunk_size: int) -> dict:
    """Everything a chunk's numbers depend on (see :mod:`mamlpaper.cache`): a change anywhere misses.
    The CPU thread count is part of it: it orders the sums of a reduction, and near a stability
    boundary that decides outcomes."""
    first_tasks = problem.sample_tasks(torch.Generator().manual_seed(s.seed))
    token = problem.cache_token
    return {
        "problem": problem.name,
        "spec": problem.spec,
        "cache_token": token,
        "model": cache.model_identity(problem.model, token),
        "criterion": cache.callable_name(problem.criterion, "criterion", token),
        "data": {"identity": problem.data_identity, "first_tasks": cache.tensor_digest(list(first_tasks))},
        "readout": {"columns": list(problem.readout.columns),
                    "compute": cache.callable_name(problem.readout.compute, "readout.compute", token)},
        "alphas": grid_a.tolist(),
        "betas": grid_b.tolist(),
        "iterations": s.iterations,
        "variant": s.variant,
        "optimizer": s.optimizer,
        "steps": s.steps,
        "seed": s.seed,
        "seeds": None if seeds is None else list(seeds),
        "run_seeds": grid_s.tolist(),
        "dtype": str(s.dtype),
        "device": s.device.type,
        "divergence_threshold": s.divergence_threshold,
        "jitter": s.jitter,
        "threads": torch.get_num_threads() if s.device.type == "cpu" else None,
        "chunk_size": chunk_size,
        "version": __version__,
        "code": cache.code_digest(),
        **cache.versions(),
    }


def run_sweep(
    problem: MetaProblem, alphas, betas, *, iterations: int, variant: str = "second",
    optimizer: str = "sgd", steps: int = 1, seed: int = 0, seeds=None, dtype="float64", device="cpu",
    divergence_threshold: float = 1e8, jitter: float = 0.0, chunk_size: int | None = None,
    memory_budget: float | None = None, cache_dir=None, progress: bool = True, cpu_tuning: bool = True,
    executor=None,
) -> pd.DataFrame:
    """Train every (α, β) of the grid; one row per configuration and seed, α-major, seed innermost.

    ``seeds=None``: one run per configuration, from the problem's model with the task stream of
    ``seed``. ``seeds`` (a count n, meaning 0…n-1, or a list of distinct integers): one run per
    configuration and seed, each seed drawing its own θ0 (the problem's architecture initialised
    by :func:`models.init_parameters` from that seed) and its own task stream; the runs of all
    seeds share the batch. Reading them: :mod:`mamlpaper.stability`.

    Columns: alpha, beta, seed, variant, optimizer, steps, iterations, loss_initial, loss_final,
    diverged, diverged_at (evaluation index, <NA> if never), unstable (diverged, or ended
    above its starting loss: slow growth along negative curvature is instability too),
    then the problem's readout columns (regression: output_spread, the std of the final model's
    predictions over the last meta-batch's query inputs / std of their targets), NaN if
    diverged, and collapsed (the readout's rule: for regression, output_spread below
    ``COLLAPSE_TOLERANCE``, the model ended as a constant; never true for a diverged run).

    ``chunk_size`` runs train together (cached together); by default as many as
    ``memory_budget`` bytes hold (default :func:`memory.default_budget`: a share of the GPU's free
    memory or of RAM; on a CPU at most ``CPU_CHUNK_BYTES``), measured from one step; where configurations run
    one after another (convolutions on a CPU) ``LOOPED_CHUNK``.

    ``jitter`` ε > 0 multiplies every weight of θ0 by (1 + ε·z), z drawn per seed (0: θ0 as drawn):
    at ε ≈ 1e-7 it stands in for another machine's round-off, to see which outcomes that flips.

    ``cpu_tuning``: flush float denormals while training (up to 3× faster on CPU), put back as
    found afterwards (:mod:`mamlpaper.cpu_tuning`, which also says how to keep glibc from
    returning freed memory, the other 20 %). Every argument, and the problem's first meta-batch against
    its model, is checked before any training step.

    ``executor``: any ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``; Dask's
    ``Client(...).get_executor()`` for several machines) runs the chunks, each under this process's
    CPU thread count, and the same numbers come back. Workers write finished chunks to
    ``cache_dir`` (on a filesystem they share), so an interrupted sweep resumes from them; the
    default chunk size is measured on a worker, within its memory. A chunk that raises ends the
    sweep with :class:`ChunkFailed`, which names its runs.
    """
    alphas = _checks.grid("alphas", alphas, allow_zero=True)
    betas = _checks.grid("betas", betas)
    grid_a, grid_b = (g.ravel() for g in np.meshgrid(alphas, betas, indexing="ij"))
    return _run_configs(problem, grid_a, grid_b, iterations=iterations, variant=variant, optimizer=optimizer,
                        steps=steps, seed=seed, seeds=seeds, dtype=dtype, device=device,
                        divergence_threshold=divergence_threshold, jitter=jitter, chunk_size=chunk_size,
                        memory_budget=memory_budget, cache_dir=cache_dir, progress=progress, cpu_tuning=cpu_tuning,
                        executor=executor)


def run_cells(problem: MetaProblem, cells, **kwargs) -> pd.DataFrame:
    """:func:`run_sweep` for a list of (α, β) cells instead of a grid (e.g. the marginal cells of a
    map, rerun in float64); same keyword arguments, same table, rows in the order of ``cells``."""
    cells = _checks.real_array("cells", cells)
    if cells.ndim != 2 or cells.shape[1] != 2 or len(cells) == 0:
        raise _checks.refuse("cells", cells, "cells must be a non-empty list of (alpha, beta) pairs")
    _checks.grid("cells' alphas", np.unique(cells[:, 0]), allow_zero=True)
    _checks.grid("cells' betas", np.unique(cells[:, 1]))
    if len(np.unique(cells, axis=0)) != len(cells):
        raise _checks.refuse("cells", cells, "cells must be distinct")
    return _run_configs(problem, cells[:, 0].copy(), cells[:, 1].copy(), **kwargs)


def run_each(problem: MetaProblem, alphas, betas, seeds, **kwargs) -> pd.DataFrame:
    """One run per (α_i, β_i, seed_i): each run its own seed's θ0 and task stream, as in a sweep with
    ``seeds``; all runs train as one batch. What a search needs when every (α, seed) asks for its own β
    (:mod:`mamlpaper.boundary`). Keyword arguments as :func:`run_sweep` (without ``seed``/``seeds``);
    ``jitter`` ε > 0 perturbs every weight of θ0 by a relative ε (see ``_initial_params``); the
    table's rows are in the order of the runs."""
    alphas = _checks.real_array("alphas", alphas)
    betas = _checks.real_array("betas", betas)
    if "seed" in kwargs or "seeds" in kwargs:
        raise _checks.refuse("seeds", kwargs.get("seeds", kwargs.get("seed")), "run_each takes one seed per run "
                             "as its fourth argument; pass no seed= or seeds= keyword")
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise _checks.refuse("seeds", seeds, "seeds must be a list of integers >= 0, one per run")
    seeds = np.array([_checks.integer("seeds entry", v, minimum=0) for v in seeds], dtype=np.int64)
    if alphas.ndim != 1 or alphas.size == 0 or alphas.shape != betas.shape or alphas.shape != seeds.shape:
        raise _checks.refuse("alphas", alphas, "alphas, betas and seeds must be non-empty lists of one length "
                             f"(got {alphas.size}, {betas.size}, {seeds.size})")
    _checks.grid("alphas", np.unique(alphas), allow_zero=True)
    _checks.grid("betas", np.unique(betas))
    if len(pd.MultiIndex.from_arrays([alphas, betas, seeds]).drop_duplicates()) != len(alphas):
        raise _checks.refuse("alphas", alphas, "the (alpha, beta, seed) runs must be distinct (a repeated run is "
                             "the same numbers twice)")
    return _run_configs(problem, alphas.copy(), betas.copy(), run_seeds=seeds, **kwargs)


class ChunkFailed(RuntimeError):
    """A chunk of runs raised, here or on a worker: the message names its runs, the cause says why."""


class _Chunk(NamedTuple):
    """One chunk's runs and everything they depend on: all a worker needs, sent whole."""

    problem: MetaProblem
    alphas: np.ndarray
    betas: np.ndarray
    seeds: np.ndarray | None
    settings: _Settings
    threads: int
    default_dtype: torch.dtype
    cpu_tuning: bool
    store: cache.ChunkCache | None
    index: int

    def describe(self) -> str:
        seeds = [""] * len(self.alphas) if self.seeds is None else [f", seed={int(v)}" for v in self.seeds]
        runs = [f"(α={a:g}, β={b:g}{v})" for a, b, v in zip(self.alphas, self.betas, seeds)]
        more = f" and {len(runs) - 4} more" if len(runs) > 4 else ""
        return f"chunk {self.index} of {self.problem.name} ({len(runs)} runs: {', '.join(runs[:4])}{more})"


def _run_job(job: _Chunk, bar=None) -> dict[str, np.ndarray]:
    """Train one chunk under the caller's process-wide torch settings, then save it: on a worker, a
    finished chunk is in the shared cache before the caller hears of it. The settings travel with
    the chunk because they change the numbers: the CPU thread count orders a reduction's sums (its
    cache key records it), and the default dtype is what a task sampler's ``torch.rand`` draws."""
    found = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(job.threads)
    torch.set_default_dtype(job.default_dtype)
    try:
        with training_settings(job.cpu_tuning):
            chunk = _run_chunk(job.problem, job.alphas, job.betas, job.seeds, job.settings,
                               bar if bar is not None else tqdm(disable=True))
    finally:
        torch.set_num_threads(found[0])
        torch.set_default_dtype(found[1])
    if job.store is not None:
        job.store.save(job.index, chunk)
    return chunk


def _measured_chunk_size(problem: MetaProblem, s: _Settings, memory_budget: float | None) -> int:
    """:func:`_chunk_size` within the memory of the process that runs it (a worker's, on an executor)."""
    return _chunk_size(problem, s, memory_budget or memory.default_budget(s.device))


def _pack(call) -> bytes:
    """A call as bytes for a worker: cloudpickle, because problems hold lambdas (their task streams)."""
    return cloudpickle.dumps(call)


def _shipped(payload: bytes):
    """Run a call :func:`_pack` made (on a worker: it unpacks only what this process packed)."""
    return cloudpickle.loads(payload)()


def _computed(jobs: list[_Chunk], executor, bar):
    """(job, chunk) for every job, in this process one after another, or on ``executor`` as they
    finish; a chunk that raises ends the sweep with :class:`ChunkFailed` naming its runs (the
    chunks already finished stay cached, so a rerun resumes from them)."""
    if executor is None:
        for job in jobs:
            try:
                yield job, _run_job(job, bar)
            except Exception as error:
                raise ChunkFailed(f"{job.describe()} failed: {type(error).__name__}: {error}") from error
        return
    futures = {executor.submit(_shipped, _pack(functools.partial(_run_job, job))): job for job in jobs}
    try:
        for future in concurrent.futures.as_completed(futures):
            job = futures[future]
            try:
                chunk = future.result()
            except Exception as error:
                raise ChunkFailed(f"{job.describe()} failed on a worker: {type(error).__name__}: {error}") from error
            bar.update(job.settings.iterations * len(job.alphas))
            yield job, chunk
    finally:
        for future in futures:
            future.cancel()


def _run_configs(
    problem, grid_a, grid_b, *, iterations, variant="second", optimizer="sgd", steps=1, seed=0, seeds=None,
    run_seeds=None, dtype="float64", device="cpu", divergence_threshold=1e8, jitter=0.0, chunk_size=None,
    memory_budget=None, cache_dir=None, progress=True, cpu_tuning=True, executor=None,
) -> pd.DataFrame:
    """Runs of (grid_a, grid_b) once per seed of ``seeds`` (seed innermost), or, with ``run_seeds``,
    run i with seed run_seeds[i] alone."""
    s = _check_settings(iterations, variant, optimizer, steps, seed, dtype, device, divergence_threshold, jitter)
    seeds = _check_seeds(seeds, s.seed) if run_seeds is None else tuple(sorted(set(run_seeds.tolist())))
    if chunk_size is not None:
        chunk_size = _checks.integer("chunk_size", chunk_size, minimum=1)
    if memory_budget is not None:
        memory_budget = _checks.real("memory_budget", memory_budget, above=0.0)
    progress = _checks.flag("progress", progress)
    cpu_tuning = _checks.flag("cpu_tuning", cpu_tuning)
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise _checks.refuse("cache_dir", cache_dir, "cache_dir must be None or a path")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise _checks.refuse("executor", executor, "executor must be None or a concurrent.futures.Executor "
                             "(ProcessPoolExecutor, dask's Client.get_executor())", shown=type(executor).__name__)
    _check_problem(problem, s)
    if seeds is not None:
        _initial_params(problem, s, seeds[0])
    if chunk_size is None:
        measure = functools.partial(_measured_chunk_size, problem, s, memory_budget)
        chunk_size = measure() if executor is None else executor.submit(_shipped, _pack(measure)).result()
    if run_seeds is None:
        every = np.array([s.seed] if seeds is None else seeds, dtype=np.int64)
        grid_a, grid_b, grid_s = (np.repeat(grid_a, len(every)), np.repeat(grid_b, len(every)),
                                  np.tile(every, len(grid_a)))
    else:
        grid_s = run_seeds
    n = grid_a.size
    store = None
    fields = {**CHUNK_FIELDS, **{c: np.float64 for c in problem.readout.columns}}
    if cache_dir is not None:
        store = cache.ChunkCache(cache_dir, _cache_key(problem, grid_a, grid_b, grid_s, seeds, s, chunk_size),
                                 label=f"{problem.name}-{s.variant}-{s.optimizer}")
    starts = range(0, n, chunk_size)
    chunks, missing = {}, []
    threads, default_dtype = torch.get_num_threads(), torch.get_default_dtype()
    with _progress_bar(progress, total=s.iterations * n, unit="cfg·it",
                       desc=f"{problem.name} {s.variant}/{s.optimizer}") as bar:
        for i, start in enumerate(starts):
            stop = min(start + chunk_size, n)
            chunks[i] = store.load(i, stop - start, fields) if store else None
            if chunks[i] is None:
                missing.append(_Chunk(problem, grid_a[start:stop], grid_b[start:stop],
                                      None if seeds is None else grid_s[start:stop], s, threads, default_dtype,
                                      cpu_tuning, store, i))
            else:
                bar.update(s.iterations * (stop - start))
        for job, chunk in _computed(missing, executor, bar):
            chunks[job.index] = chunk
    merged = {k: np.concatenate([chunks[i][k] for i in range(len(starts))]) for k in chunks[0]}
    diverged = merged["diverged_at"] >= 0
    table = pd.DataFrame({
        "alpha": grid_a, "beta": grid_b, "seed": grid_s, "variant": s.variant, "optimizer": s.optimizer,
        "steps": s.steps, "iterations": s.iterations,
        "loss_initial": merged["loss_initial"], "loss_final": merged["loss_final"],
        "diverged": diverged,
        "diverged_at": pd.array([int(t) if t >= 0 else pd.NA for t in merged["diverged_at"]], dtype="Int64"),
    })
    table["unstable"] = diverged | ~(table["loss_final"] <= table["loss_initial"])
    columns = {c: merged[c] for c in problem.readout.columns}
    for column, values in columns.items():
        table[column] = values
    table["collapsed"] = np.asarray(problem.readout.collapsed(columns), dtype=bool) & ~diverged
    return table


def _check_seeds(seeds, seed: int) -> tuple[int, ...] | None:
    """None, or the seeds as a tuple: a count n means 0…n-1; a list must hold distinct integers ≥ 0."""
    if seeds is None:
        return None
    if seed != 0:
        raise _checks.refuse("seed", seed, "seed and seeds exclude each other: with seeds, each seed draws its "
                             "own θ0 and task stream; leave seed at 0")
    return _checks.seeds(seeds)
