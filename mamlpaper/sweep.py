"""Train a whole α×β grid as one batched program, and single configurations as a plain loop.

Configurations are stacked on a leading axis and ``vmap``-ped (tasks are ``vmap``-ped inside
each configuration). Every configuration sees the same task stream, drawn from one seeded
generator, so the grid compares learning rates on identical data. A configuration whose loss
or gradient turns non-finite, or whose loss exceeds ``divergence_threshold``, is recorded as
diverged at that iteration and dropped from the batch, so it can never touch the others.
Chunks of configurations are cached on disk (atomically), keyed by every parameter; an
interrupted sweep resumes from the chunks it finished.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from tqdm import tqdm

from . import __version__
from .cpu_tuning import training_settings
from .maml import Params, batched_meta_gradient, check_rate, check_steps, check_variant, functional_loss, mse, parameters_of
from .mlp_adaptation import second_order_meta_gradient
from .metaopt import check_optimizer, init_state, update_rule
from .tasks import Tasks, check_tasks

DTYPES = {"float32": torch.float32, "float64": torch.float64}
COLLAPSE_TOLERANCE = 1e-3
"""A trained model whose predictions vary over the inputs by less than this fraction of the
targets' spread has collapsed to a constant (for a ReLU MLP: every unit of a layer died). It
neither diverged nor learned, so it says nothing about the stability the paper bounds."""


@dataclass(frozen=True)
class MetaProblem:
    """What a sweep trains: the model (architecture and θ0), the criterion, and the task stream.

    ``spec`` names everything that defines the problem (family, its ranges, seeds), for the
    cache key and for the reader of a result table.
    """

    name: str
    model: nn.Module
    sample_tasks: Callable[[torch.Generator], Tasks]
    criterion: Callable[[Tensor, Tensor], Tensor] = mse
    spec: dict = field(default_factory=dict)


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


def _check_settings(iterations, variant, optimizer, steps, seed, dtype, device, divergence_threshold) -> _Settings:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations={iterations!r} must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is not allowed; choose one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype={dtype!r} is not allowed; choose torch.float32 or torch.float64")
    threshold = check_rate("divergence_threshold", divergence_threshold, allow_zero=False)
    return _Settings(
        iterations, check_variant(variant), check_optimizer(optimizer), check_steps(steps),
        seed, dtype, torch.device(device), threshold,
    )


def _progress_bar(progress: bool, **kwargs) -> tqdm:
    """A tqdm bar; `progress=False` silences it, otherwise TQDM_DISABLE=1 (tqdm's own setting) does.

    One refresh a second: an executed notebook stores every refresh, and long runs made them MBs.
    """
    return tqdm(leave=False, mininterval=1.0, **kwargs) if progress else tqdm(disable=True, **kwargs)


def _initial_state(problem: MetaProblem, s: _Settings):
    params = {k: p.to(device=s.device, dtype=s.dtype) for k, p in parameters_of(problem.model).items()}
    if s.variant == "second" and s.steps == 1 and problem.criterion is mse:
        closed_form = second_order_meta_gradient(problem.model)
        if closed_form is not None:
            return params, closed_form
    loss = functional_loss(problem.model, problem.criterion)
    return params, batched_meta_gradient(loss, s.variant, s.steps)


def _task_stream(problem: MetaProblem, s: _Settings):
    generator = torch.Generator().manual_seed(s.seed)
    while True:
        yield check_tasks(problem.sample_tasks(generator)).to(device=s.device, dtype=s.dtype)


def train(
    problem: MetaProblem, alpha: float, beta: float, *, iterations: int, variant: str = "second",
    optimizer: str = "sgd", steps: int = 1, seed: int = 0, dtype="float64", device="cpu",
    divergence_threshold: float = 1e8, monitor: Callable[[Params, Tasks], Tensor] | None = None,
    progress: bool = False,
) -> TrainResult:
    """One configuration, one iteration after another: the reference every vmapped sweep must equal.

    ``monitor`` is evaluated on (θ, meta-batch) before each update, e.g. the per-task gradient
    norm of the paper's Fig. 1.
    """
    s = _check_settings(iterations, variant, optimizer, steps, seed, dtype, device, divergence_threshold)
    check_rate("alpha", alpha, allow_zero=True)
    check_rate("beta", beta, allow_zero=False)
    params, meta_gradient = _initial_state(problem, s)
    state = init_state(s.optimizer, params)
    update = update_rule(s.optimizer)
    a = torch.tensor(float(alpha), dtype=s.dtype, device=s.device)
    b = torch.tensor(float(beta), dtype=s.dtype, device=s.device)
    losses = np.full(s.iterations + 1, np.nan)
    monitored = None if monitor is None else np.full(s.iterations + 1, np.nan)
    stream = _task_stream(problem, s)
    steps = _progress_bar(progress, iterable=range(s.iterations + 1), desc=f"{problem.name} α={alpha:g} β={beta:g}",
                          unit="it")
    with training_settings(), steps:
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


def _run_chunk(problem: MetaProblem, alphas: np.ndarray, betas: np.ndarray, s: _Settings, bar) -> dict:
    """All configurations of one chunk in lock-step; dead ones are dropped from the batch."""
    n = len(alphas)
    params, meta_gradient = _initial_state(problem, s)
    stack = lambda tree: {k: v.expand(n, *v.shape).clone() for k, v in tree.items()}  # noqa: E731
    state = stack(init_state(s.optimizer, params))
    params = stack(params)
    a = torch.tensor(alphas, dtype=s.dtype, device=s.device)
    b = torch.tensor(betas, dtype=s.dtype, device=s.device)
    alive = torch.arange(n, device=s.device)
    batched_gradient = vmap(meta_gradient, in_dims=(0, None, 0))
    batched_update = vmap(update_rule(s.optimizer))
    loss_initial = np.full(n, np.nan)
    loss_final = np.full(n, np.nan)
    output_spread = np.full(n, np.nan)
    diverged_at = np.full(n, -1, dtype=np.int64)
    stream = _task_stream(problem, s)
    for t in range(s.iterations + 1):
        tasks = next(stream)
        if len(alive) == 0:
            continue
        loss, grads = batched_gradient(params, tasks, a)
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
        output_spread[alive.cpu().numpy()] = _output_spread(problem.model, params, tasks).cpu().numpy()
    return {"loss_initial": loss_initial, "loss_final": loss_final, "output_spread": output_spread,
            "diverged_at": diverged_at}


def _output_spread(model: nn.Module, params: Params, tasks: Tasks) -> Tensor:
    """Per configuration: std of the model's predictions over the meta-batch's query inputs,
    relative to the std of their targets."""
    x = tasks.x_query.reshape(-1, tasks.x_query.shape[-1])
    y = tasks.y_query.reshape(-1, tasks.y_query.shape[-1])
    predictions = vmap(lambda p: functional_call(model, p, (x,)))(params)
    return (predictions.std(dim=1) / y.std(dim=0)).amax(dim=-1)


def _check_grid(name: str, values, allow_zero: bool) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} has shape {arr.shape}; expected a non-empty 1-D sequence of rates")
    for v in arr:
        check_rate(f"{name} entry", float(v), allow_zero)
    return arr


def _tensor_digest(tensors: Sequence[Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().to(torch.float64).contiguous().numpy().tobytes())
    return h.hexdigest()


def _code_digest() -> str:
    """The source of every module a sweep's numbers depend on: editing one invalidates the cache."""
    from . import cpu_tuning, maml, metaopt, mlp_adaptation, models, problems, tasks

    h = hashlib.sha256()
    for module in (cpu_tuning, maml, metaopt, mlp_adaptation, models, problems, tasks, sys.modules[__name__]):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def _cache_key(problem: MetaProblem, alphas, betas, s: _Settings, chunk_size: int) -> dict:
    first_tasks = problem.sample_tasks(torch.Generator().manual_seed(s.seed))
    return {
        "problem": problem.name,
        "spec": problem.spec,
        "criterion": getattr(problem.criterion, "__qualname__", repr(problem.criterion)),
        "theta0": _tensor_digest(list(parameters_of(problem.model).values())),
        "first_tasks": _tensor_digest(list(first_tasks)),
        "alphas": alphas.tolist(),
        "betas": betas.tolist(),
        "iterations": s.iterations,
        "variant": s.variant,
        "optimizer": s.optimizer,
        "steps": s.steps,
        "seed": s.seed,
        "dtype": str(s.dtype),
        "device": s.device.type,
        "divergence_threshold": s.divergence_threshold,
        "chunk_size": chunk_size,
        "version": __version__,
        "code": _code_digest(),
    }


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_chunk(path: Path) -> dict | None:
    if not path.exists():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _save_chunk(path: Path, chunk: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **chunk)
    _atomic_write(path, buffer.getvalue())


def run_sweep(
    problem: MetaProblem, alphas, betas, *, iterations: int, variant: str = "second",
    optimizer: str = "sgd", steps: int = 1, seed: int = 0, dtype="float64", device="cpu",
    divergence_threshold: float = 1e8, chunk_size: int = 128, cache_dir=None, progress: bool = True,
) -> pd.DataFrame:
    """Train every (α, β) of the grid; one row per configuration, α-major.

    Columns: alpha, beta, variant, optimizer, steps, iterations, loss_initial, loss_final,
    diverged, diverged_at (evaluation index, <NA> if never), unstable (diverged, or ended
    above its starting loss: slow growth along negative curvature is instability too),
    output_spread (std of the final model's predictions over the last meta-batch's query
    inputs / std of their targets; NaN if diverged), collapsed (output_spread below
    ``COLLAPSE_TOLERANCE``: the model ended as a constant).
    """
    s = _check_settings(iterations, variant, optimizer, steps, seed, dtype, device, divergence_threshold)
    alphas = _check_grid("alphas", alphas, allow_zero=True)
    betas = _check_grid("betas", betas, allow_zero=False)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be an integer >= 1")
    grid_a, grid_b = (g.ravel() for g in np.meshgrid(alphas, betas, indexing="ij"))
    n = grid_a.size
    folder = None
    if cache_dir is not None:
        key = _cache_key(problem, alphas, betas, s, chunk_size)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        folder = Path(cache_dir) / f"{problem.name}-{s.variant}-{s.optimizer}-{digest}"
        _atomic_write(folder / "key.json", json.dumps(key, indent=1, sort_keys=True, default=str).encode())
    starts = range(0, n, chunk_size)
    chunks = {}
    with training_settings(), _progress_bar(progress, total=s.iterations * n, unit="cfg·it",
                                            desc=f"{problem.name} {s.variant}/{s.optimizer}") as bar:
        for i, start in enumerate(starts):
            stop = min(start + chunk_size, n)
            path = folder / f"chunk-{i:05d}.npz" if folder else None
            chunk = _load_chunk(path) if path else None
            if chunk is None:
                chunk = _run_chunk(problem, grid_a[start:stop], grid_b[start:stop], s, bar)
                if path:
                    _save_chunk(path, chunk)
            else:
                bar.update(s.iterations * (stop - start))
            chunks[i] = chunk
    merged = {k: np.concatenate([chunks[i][k] for i in range(len(starts))]) for k in chunks[0]}
    diverged = merged["diverged_at"] >= 0
    table = pd.DataFrame({
        "alpha": grid_a, "beta": grid_b, "variant": s.variant, "optimizer": s.optimizer,
        "steps": s.steps, "iterations": s.iterations,
        "loss_initial": merged["loss_initial"], "loss_final": merged["loss_final"],
        "diverged": diverged,
        "diverged_at": pd.array([int(t) if t >= 0 else pd.NA for t in merged["diverged_at"]], dtype="Int64"),
    })
    table["unstable"] = diverged | ~(table["loss_final"] <= table["loss_initial"])
    table["output_spread"] = merged["output_spread"]
    table["collapsed"] = table["output_spread"] < COLLAPSE_TOLERANCE
    return table


def as_grid(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alphas, betas, values) with values shaped (len(betas), len(alphas)), the layout of a map."""
    if column not in table:
        raise ValueError(f"column={column!r} is not in the table; available: {', '.join(table.columns)}")
    wide = table.pivot(index="beta", columns="alpha", values=column)
    return wide.columns.to_numpy(float), wide.index.to_numpy(float), wide.to_numpy()


def measured_beta_critical(table: pd.DataFrame, *, exclude_collapsed: bool = False) -> pd.DataFrame:
    """Per α, the largest β that did not diverge (NaN where every β diverged): the empirical β_c(α).

    The paper's reading counts every run that stayed finite. With ``exclude_collapsed`` a run
    must also have kept a non-constant model, i.e. have trained.
    """
    needed = ("alpha", "beta", "diverged") + (("collapsed",) if exclude_collapsed else ())
    for column in needed:
        if column not in table:
            raise ValueError(f"table lacks column {column!r}; pass a table returned by run_sweep")
    kept = ~table["diverged"].astype(bool)
    if exclude_collapsed:
        kept &= ~table["collapsed"].astype(bool)
    kept = table[kept]
    largest = kept.groupby("alpha")["beta"].max()
    alphas = np.sort(table["alpha"].unique())
    return pd.DataFrame({"alpha": alphas, "beta_c": largest.reindex(alphas).to_numpy(float)})


def paper_grid(low: float, high: float, mantissas: Sequence[int] = tuple(range(1, 10))) -> np.ndarray:
    """The paper's 1…9 × 10^k grid from ``low`` to ``high`` inclusive (e.g. 1e-4 … 9e-1).

    ``mantissas=(1, 2, 5)`` gives a coarser grid over the same range, for quicker profiles.
    """
    low, high = check_rate("low", low, False), check_rate("high", high, False)
    if low > high:
        raise ValueError(f"low={low!r} must not exceed high={high!r}")
    if not mantissas or any(isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 9 for m in mantissas):
        raise ValueError(f"mantissas={mantissas!r} must be integers from 1 to 9")
    values = []
    for k in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for m in sorted(set(mantissas)):
            v = float(f"{m}e{k}")
            if low * (1 - 1e-12) <= v <= high * (1 + 1e-12):
                values.append(v)
    return np.array(values)
