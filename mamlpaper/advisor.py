"""The paper's guideline as one call: measure the curvature at θ, read α_c and β_c(α), recommend (α, β).

The guideline (abstract and Section 6): search for α close to α_c, then tune β for that α; β_c may
then exceed what plain gradient descent allows. Both limits are curvature, so this module only joins
the curvature estimates of :mod:`mamlpaper.hessian` / :mod:`mamlpaper.diagnostics` to the closed forms
of :mod:`mamlpaper.bounds`. It never sweeps: a few Lanczos runs stand in for a grid search.

Two estimators, both reported, because each rests on assumptions the other does not make:

(a) ``tasks`` and ``mean`` -- the paper's. The top k Hessian eigenvalues of the support losses, of
    every task (their union, Eq. 23-26) and of the mean loss, and the smallest eigenvalue, put into
    the curvature model of the variant (:data:`mamlpaper.variants.CURVATURE_MODEL_OF`) by the
    full-spectrum bound :func:`mamlpaper.bounds.beta_critical_interval`. Assumes θ near a minimum
    (the loss quadratic over one meta-step), Tg negligible (Appendix C), and that the support-loss
    Hessian stands for the query loss's; the per-task union is the paper's sufficient condition,
    the mean loss the optimistic single-task reading. Gives α_c where the model has one.
(b) ``direct``. The largest eigenvalue λ_max(α) of the Hessian of the exact MAML meta-objective
    F(θ) = mean_τ L_query(θ_k), θ_k after ``steps`` inner steps on the support set, by Lanczos on
    its Hessian-vector products (reverse-over-reverse through the inner loop); β_c(α) = 2/λ_max(α).
    No quadratic model of the task losses, no Tg dropped, the query data as they are; it assumes
    F is quadratic over one meta-step around the current θ, full-batch meta-gradient descent (no
    SGD noise, no fresh batches), and measures only the largest curvature, so it sees no α_c:
    an update that turns a direction uphill (α beyond α_c) shows there as β_c = 0 in (a) only.
    The first-order and simplified updates descend no objective; for them the operator is the
    symmetric part of their meta-gradient's Jacobian, equal to the Jacobian near a quadratic with
    support = query (where both give λ(1 − αλ)^k).

The recommendation takes α = safety × the largest α estimator (a) allows over all tasks (α_c, or
2/λ_max where the model has no α_c: beyond it one inner step grows the support loss along the top
eigenvector), then β = safety × the smaller of (a)'s per-task and (b)'s β_c at that α.

:func:`score` holds an :class:`Advice` against a map that was measured (:func:`mamlpaper.stability.read_maps`):
per α, each estimator's β_c beside the measured one, keeping a censored reading a bound.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.sparse.linalg import LinearOperator
from torch import nn
from torch.func import vjp

from . import _checks, bounds, diagnostics, hessian, maml, metaopt, stability, sweep
from .maml import TaskLoss, check_fit
from .models import Params
from .tasks import Tasks, check_tasks
from .variants import CURVATURE_MODEL_OF, VARIANTS

ESTIMATORS = ("tasks", "mean", "direct")
"""(a) over the union of the tasks' spectra (Eq. 26), (a) on the mean loss, and (b)."""

DIRECT = ("grid", "recommended")
"""Where :func:`advise` runs estimator (b): at every α of the table, or only at the recommended α."""

TOL = 1e-8
"""Lanczos' relative tolerance: far below the safety margin, and a few iterations short of 1e-10."""

MAX_PRODUCTS = 200
"""Estimator (b)'s budget of products per Lanczos run; running out raises :class:`~mamlpaper.hessian.NotConverged`."""

DTYPES = {"float64": torch.float64, "float32": torch.float32}
"""Precisions of estimator (b)'s products; float32 only with ``tol`` >= :data:`FLOAT32_TOL`."""

FLOAT32_TOL = 1e-5
"""The tightest relative tolerance float32 products resolve (their round-off is ~1e-7 of λ)."""

_NATIVE_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

DEFAULT_ALPHAS = 0.95 * np.geomspace(1e-2, 1.0, 10)
"""Default α grid as fractions of the largest α any estimate allows: two decades, on a log axis.

It stops 5 % short of the limit: where the limit is α_c (first-order, simplified) β_c is 0 there,
no β converging, so a row at the limit shows the cliff instead of β_c(α) beside it; at 0.95 the
top curvature λ(1 − αλ) is still 5 % of λ, far above round-off, and β_c positive and finite.
"""


def meta_curvature_operator(loss: TaskLoss, params: Params, tasks: Tasks, alpha, *, variant: str = "second",
                            steps: int = 1, dtype=torch.float64) -> LinearOperator:
    """Estimator (b)'s operator at θ for one α: β_c(α) = 2/λ_max of it.

    second: the Hessian of F(θ) = mean_τ L_query(θ_k), the vector-Jacobian product of exact MAML's
    meta-gradient (:func:`mamlpaper.maml.batched_meta_gradient`, so the same code that trains).
    first / simplified: the symmetric part (J + Jᵀ)/2 of their meta-gradient's Jacobian J, with
    Jv from the pullback's own pullback (it is linear), as in :mod:`mamlpaper.diagnostics`.
    Products run in ``dtype`` (float64, or float32: 3× faster for Conv4 on a CPU) on float64 vectors.
    """
    _checks.function("loss", loss)
    _checks.params(params)
    _checks.choice("variant", variant, VARIANTS)
    steps = _checks.integer("steps", steps, minimum=1)
    alpha = _checks.rate("alpha", alpha, allow_zero=True)
    dtype = _checks.dtype(dtype, DTYPES)
    check_tasks(tasks)
    params = {k: p.detach().to(dtype) for k, p in params.items()}
    theta = hessian.flatten(params)
    tasks = tasks.to(device=theta.device, dtype=dtype)
    check_fit(loss, params, tasks)
    meta_gradient = maml.batched_meta_gradient(loss, variant, steps)
    alpha_t = torch.tensor(alpha, dtype=dtype, device=theta.device)

    def gradient(flat):
        return hessian.flatten(meta_gradient(hessian.unflatten(flat, params), tasks, alpha_t)[1])

    _, pullback = vjp(gradient, theta)
    if variant == "second":
        return hessian.linear_operator(lambda v: pullback(v)[0], theta)
    _, pushforward = vjp(lambda u: pullback(u)[0], torch.zeros_like(theta))
    return hessian.linear_operator(lambda v: 0.5 * (pullback(v)[0] + pushforward(v)[0]), theta)


def _whole(values: np.ndarray) -> hessian.Spectrum:
    """Every eigenvalue known: the interval for the rest shrinks to the smallest, so the bounds are exact."""
    values = np.sort(values)[::-1]
    return hessian.Spectrum(values, float(values[-1]), 0.0)


def _paper_spectra(loss: TaskLoss, params: Params, tasks: Tasks, k: int, seed: int, tol: float):
    """Estimator (a)'s spectra (union over tasks, mean loss); dense where Lanczos would need all of them."""
    mean_loss = diagnostics.mean_support_loss(loss, tasks)
    if hessian.flatten(params).numel() > k + 1:
        return (diagnostics.task_spectrum(loss, params, tasks, k=k, tol=tol, seed=seed),
                hessian.spectrum(mean_loss, params, k=k, tol=tol, seed=seed))
    per_task = [hessian.eigenvalues(hessian.dense_hessian(lambda p: loss(p, x, y), params))
                for x, y in zip(tasks.x_support, tasks.y_support)]
    return _whole(np.concatenate(per_task)), _whole(hessian.eigenvalues(hessian.dense_hessian(mean_loss, params)))


def _converged(pair: hessian.Eigenpair, alpha, tol: float) -> hessian.Eigenpair:
    """The pair, or :class:`~mamlpaper.hessian.NotConverged`: short of ``tol`` its value may lie well below λ_max."""
    if not pair.converged:
        reached = pair.residual / abs(pair.value) if pair.value else np.inf
        raise hessian.NotConverged(
            f"estimator (b)'s Lanczos at alpha={float(alpha)!r} stopped at max_products={pair.products} with "
            f"relative residual {reached:.2e} > tol={tol:g}; raise max_products or loosen tol")
    return pair


def meta_lambda_max(loss: TaskLoss, params: Params, tasks: Tasks, alpha, *, variant: str = "second", steps: int = 1,
                    dtype="float64", tol=TOL, seed: int = 0, max_products: int = MAX_PRODUCTS) -> float:
    """λ_max of :func:`meta_curvature_operator` at any θ: estimator (b) at one point, e.g. along a run.

    Where 2/λ_max falls below the β a run uses, a quadratic would diverge; a network that keeps
    training there has moved its curvature (the "edge of stability"). Lanczos from a ``seed``ed
    start; a run short of ``tol`` after ``max_products`` raises :class:`~mamlpaper.hessian.NotConverged`.
    """
    tol = _checks.real("tol", tol, above=0.0)
    operator = meta_curvature_operator(loss, params, tasks, alpha, variant=variant, steps=steps, dtype=dtype)
    return _converged(hessian.top_eigenpair(operator, tol=tol, max_products=max_products, seed=seed), alpha, tol).value


def _direct_lambda_max(loss, params, tasks, alphas: np.ndarray, variant: str, steps: int, k: int, seed: int,
                       tol: float, dtype: torch.dtype, max_products: int) -> np.ndarray:
    """λ_max of :func:`meta_curvature_operator` at each α (dense below the size Lanczos needs).

    The α run in increasing order, each Lanczos started from the previous α's eigenvector plus an
    equal share of a random vector: the operator moves little between neighbouring α, so a few
    products suffice, and the random share keeps Lanczos from settling on the old eigenvector
    when another eigenvalue overtakes it (the old one stays an eigenvector of a quadratic's operator).
    A run that stops at ``max_products`` short of ``tol`` raises: its value may lie well below
    λ_max, so 2/λ_max would overstate β_c.
    """
    order = np.unique(alphas.ravel())
    values, start, fresh = {}, None, np.random.default_rng(seed)
    for a in order:
        operator = meta_curvature_operator(loss, params, tasks, float(a), variant=variant, steps=steps, dtype=dtype)
        d = operator.shape[0]
        if d <= k + 1:
            values[a] = float(np.linalg.eigvalsh(operator.matmat(np.eye(d)))[-1])
        else:
            pair = _converged(hessian.top_eigenpair(operator, tol=tol, start=start, max_products=max_products,
                                                    seed=seed), a, tol)
            noise = fresh.standard_normal(d)
            values[a], start = pair.value, pair.vector + noise / np.linalg.norm(noise)
    return np.array([values[a] for a in alphas.ravel()]).reshape(alphas.shape)


def _two_over(lam: np.ndarray) -> np.ndarray:
    """2/λ, and no bound (inf) where λ <= 0, the convention of :mod:`mamlpaper.bounds`; NaN (not run) stays NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isnan(lam), np.nan, np.where(lam > 0, 2.0 / np.where(lam > 0, lam, 1.0), np.inf))


def _alpha_max(top: np.ndarray, model: str, steps: int) -> float:
    """The largest α the estimate allows: α_c, capped at 2/λ_max where the inner step itself stops converging."""
    return min(bounds.alpha_critical(top, model, steps), 2.0 / float(top.max()))


def _model_formula(model: str, steps: int) -> str:
    power = steps if model == "simplified" else 2 * steps
    return "λ(1 − αλ)" + ("" if power == 1 else f"^{power}")


@dataclass(frozen=True, eq=False, repr=False)
class Advice:
    """What :func:`advise` measured and recommends; ``beta_critical`` is β_c(α) at any α."""

    variant: str
    steps: int
    model: str
    """The curvature model the variant obeys (:data:`mamlpaper.variants.CURVATURE_MODEL_OF`)."""
    safety: float
    tasks_spectrum: hessian.Spectrum
    """Top k and smallest eigenvalue of the union of the tasks' support-loss Hessians (Eq. 23-26)."""
    mean_spectrum: hessian.Spectrum
    """Top k and smallest eigenvalue of the Hessian of the mean support loss."""
    alpha_critical: float
    """α_c of the model over every task (inf where the model has none)."""
    alpha_max: float
    """The largest α estimator (a) allows over every task: min(α_c, 2/λ_max)."""
    alpha: float
    """Recommended inner rate: safety × alpha_max."""
    beta: float
    """Recommended meta rate: safety × the smaller of β_c (tasks) and β_c (direct) at ``alpha``."""
    table: pd.DataFrame
    """β_c(α) per estimator over the α grid, and the direct estimator's λ_max(α)."""
    _direct: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def beta_critical(self, alpha, estimator: str = "tasks") -> np.ndarray:
        """β_c at each α (any shape) by one estimator; ``direct`` runs one Lanczos per α."""
        _checks.choice("estimator", estimator, ESTIMATORS)
        if estimator == "direct":
            alphas = _checks.real_array("alpha", alpha)
            if np.any(alphas < 0):
                raise _checks.refuse("alpha", alpha, "every entry must be >= 0 (0 is plain gradient descent)")
            return _two_over(self._direct(alphas))
        spectrum = self.tasks_spectrum if estimator == "tasks" else self.mean_spectrum
        return bounds.beta_critical_interval(alpha, spectrum.top, spectrum.lower, model=self.model, steps=self.steps)

    def __repr__(self) -> str:
        def values(spectrum):
            top = ", ".join(f"{v:.4g}" for v in spectrum.top)
            return f"top [{top}], smallest {spectrum.lower:.4g} (residual {spectrum.residual:.1e})"

        columns = ["alpha", "beta_c_tasks", "beta_c_mean", "beta_c_direct"]
        table = self.table[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
        return "\n".join([
            f"Advice(variant={self.variant!r}, steps={self.steps}: curvature model {self.model!r}, "
            f"{_model_formula(self.model, self.steps)})",
            f"  recommended α = {self.alpha:.4g}, β = {self.beta:.4g}  (safety {self.safety:g}: that fraction of the "
            "largest α allowed, then of the smaller β_c of 'tasks' and 'direct' there)",
            f"  α_c = {self.alpha_critical:.4g}; largest α allowed = min(α_c, 2/λ_max) = {self.alpha_max:.4g}",
            f"  support-loss Hessian, every task: {values(self.tasks_spectrum)}",
            f"  support-loss Hessian, mean loss:  {values(self.mean_spectrum)}",
            "  β_c(α): 'tasks', 'mean' the paper's full-spectrum bounds, 'direct' 2/λ_max of the meta-objective",
            *("    " + line for line in table.splitlines()),
        ])

    def plot(self, ax=None):
        """β_c(α) of each estimator on log axes, α_c and the largest α allowed, and the recommendation."""
        if ax is None:
            _, ax = plt.subplots()
        alphas = self.table["alpha"].to_numpy()
        fine = np.geomspace(alphas.min(), alphas.max(), 200)
        for estimator, label in (("tasks", "every task (Eq. 26)"), ("mean", "mean loss")):
            curve = self.beta_critical(fine, estimator)
            ax.plot(fine, np.where(np.isfinite(curve) & (curve > 0), curve, np.nan), label=f"β_c, {label}")
        direct = self.table["beta_c_direct"].to_numpy()
        ax.plot(alphas, np.where(np.isfinite(direct), direct, np.nan), "o", label="β_c, direct (meta-Hessian)")
        if np.isfinite(self.alpha_critical):
            ax.axvline(self.alpha_critical, linestyle="--", color="0.3", label="α_c")
        ax.axvline(self.alpha_max, linestyle=":", color="0.3", label="largest α allowed")
        ax.plot([self.alpha], [self.beta], "*", color="k", markersize=12, label=f"recommended (safety {self.safety:g})")
        ax.set(xscale="log", yscale="log", xlabel="inner rate α", ylabel="meta rate β")
        ax.legend()
        return ax


def _check_batch_norms(model: nn.Module) -> None:
    """torch's own batch norms are refused: under ``vmap`` their backward is wrong (functorch #534)."""
    for name, layer in model.named_modules():
        if type(layer) in _NATIVE_BATCH_NORMS:
            raise _checks.refuse("model", model, f"model has a torch {type(layer).__name__} at {name!r}, whose second "
                                 "derivatives under vmap are wrong in torch 2.13; use "
                                 "mamlpaper.fewshot.conv4.PureBatchNorm2d (batch statistics, the same numbers)",
                                 shown=type(model).__name__)


def _draw(tasks, generator: torch.Generator) -> Callable[[], Tasks]:
    """A meta-batch source: the same batch every time, or the sampler's next draw."""
    if isinstance(tasks, Tasks):
        return lambda: tasks
    if callable(tasks):
        return lambda: tasks(generator)
    raise _checks.refuse("tasks", tasks, "tasks must be a mamlpaper.tasks.Tasks or a sampler torch.Generator -> Tasks",
                         shown=type(tasks).__name__)


def _warm_up(model, criterion, variant, steps, params, draw, iterations, alpha, beta) -> Params:
    """Adam on the variant's meta-gradient: brings θ nearer a minimum, where estimator (a) holds.

    Adam, because its step does not scale with the curvature that is not yet measured.
    """
    like = next(iter(params.values()))
    meta_gradient, _ = sweep.fastest_meta_gradient(model, criterion, variant, steps, like.device)
    alpha_t, beta_t = (torch.tensor(v, dtype=like.dtype, device=like.device) for v in (alpha, beta))
    state = metaopt.init_state("adam", params)
    for _ in range(iterations):
        _, grads = meta_gradient(params, draw().to(device=like.device, dtype=like.dtype), alpha_t)
        params, state = metaopt.adam(params, grads, state, beta_t)
    if not all(bool(torch.isfinite(p).all()) for p in params.values()):
        raise RuntimeError(f"the warm-up diverged within {iterations} Adam steps at warmup_beta={beta!r}; lower it")
    return params


def advise(model: nn.Module, tasks, *, criterion=maml.mse, variant: str = "second", steps: int = 1, alphas=None,
           warmup: int = 0, warmup_alpha=0.0, warmup_beta=1e-3, safety=0.5, k: int = 5, seed: int = 0,
           tol=TOL, dtype="float64", direct: str = "grid", max_products: int = MAX_PRODUCTS) -> Advice:
    """α_c, β_c(α) and a recommended (α, β) for MAML on this model and these tasks (estimators: module doc).

    ``tasks``: a :class:`~mamlpaper.tasks.Tasks` meta-batch, or a sampler ``torch.Generator -> Tasks``
    drawn from ``torch.Generator().manual_seed(seed)`` (the estimates use its first batch, the warm-up
    the next ones). ``criterion``: (prediction, target) -> scalar, written out where it is
    differentiated twice (:func:`mamlpaper.maml.mse`). ``alphas``: the table's grid, by default ten
    values over two decades up to 95 % of the largest α either (a) estimate allows
    (:data:`DEFAULT_ALPHAS`). ``warmup``: Adam steps at (``warmup_alpha``, ``warmup_beta``) before
    measuring (α = 0 is joint training). ``safety`` in (0, 1]: the fraction of each limit the
    recommendation uses. ``k``: eigenvalues per Lanczos run. ``tol``: Lanczos' relative tolerance.
    ``max_products``: estimator (b)'s products per Lanczos run; one that runs out short of ``tol``
    raises :class:`~mamlpaper.hessian.NotConverged` (estimator (a)'s ARPACK raises on its own).
    Estimator (a) runs in float64, (b) in ``dtype``, on the model's device; the model itself is not
    changed. ``direct``: "grid" runs (b) at every α of the table, "recommended" only at the
    recommended α (one Lanczos run; the table's direct columns are NaN,
    ``Advice.beta_critical(α, "direct")`` still computes any α on demand). For a network of ~10^5
    parameters (Conv4) on a CPU, ``tol=1e-2, dtype="float32", direct="recommended"`` and a
    handful of tasks keep a call under a minute (``benchmarks/advisor_speed.py``): a Lanczos
    residual of 1 % of λ puts λ within ~1e-4·λ²/gap, far inside any safety margin.
    """
    _checks.module(model)
    _check_batch_norms(model)
    _checks.function("criterion", criterion)
    _checks.choice("variant", variant, VARIANTS)
    steps = _checks.integer("steps", steps, minimum=1)
    grid = None if alphas is None else np.sort(_checks.grid("alphas", alphas))
    warmup = _checks.integer("warmup", warmup, minimum=0)
    warmup_alpha = _checks.rate("warmup_alpha", warmup_alpha, allow_zero=True)
    warmup_beta = _checks.rate("warmup_beta", warmup_beta)
    if not 0.0 < _checks.real("safety", safety) <= 1.0:
        raise _checks.refuse("safety", safety, "safety must be in (0, 1]: the fraction of each limit to use")
    safety = float(safety)
    k = _checks.integer("k", k, minimum=1)
    seed = _checks.integer("seed", seed, minimum=0)
    dtype = _checks.dtype(dtype, DTYPES)
    direct_at = _checks.choice("direct", direct, DIRECT)
    tol = _checks.real("tol", tol, above=0.0)
    if not tol < 1.0 or (dtype == torch.float32 and tol < FLOAT32_TOL):
        raise _checks.refuse("tol", tol, f"tol must be in [{FLOAT32_TOL:g}, 1) with float32 products and in (0, 1) "
                             "with float64 ones")
    max_products = _checks.integer("max_products", max_products, minimum=1)
    draw = _draw(tasks, torch.Generator().manual_seed(seed))
    batch = check_tasks(draw())
    loss = maml.functional_loss(model, criterion)
    params = maml.parameters_of(model)
    like = next(iter(params.values()))
    check_fit(loss, params, batch.to(device=like.device, dtype=like.dtype))

    if warmup:
        params = _warm_up(model, criterion, variant, steps, params, draw, warmup, warmup_alpha, warmup_beta)
    params = {name: p.to(torch.float64) for name, p in params.items()}
    batch = batch.to(device=like.device, dtype=torch.float64)
    model_name = CURVATURE_MODEL_OF[variant]
    every_task, mean = _paper_spectra(loss, params, batch, k, seed, tol)
    limits = [_alpha_max(s.top, model_name, steps) for s in (every_task, mean)]
    grid = max(limits) * DEFAULT_ALPHAS if grid is None else grid

    def lambda_max(alpha_values: np.ndarray) -> np.ndarray:
        return _direct_lambda_max(loss, params, batch, alpha_values, variant, steps, k, seed, tol, dtype, max_products)

    alpha = safety * limits[0]
    if direct_at == "grid":
        lam = lambda_max(np.append(grid, alpha))
    else:
        lam = np.append(np.full(grid.shape, np.nan), lambda_max(np.array([alpha])))
    critical = {name: bounds.beta_critical_interval(grid, s.top, s.lower, model=model_name, steps=steps)
                for name, s in (("tasks", every_task), ("mean", mean))}
    at_alpha = bounds.beta_critical_interval(alpha, every_task.top, every_task.lower, model=model_name, steps=steps)
    table = pd.DataFrame({"alpha": grid, "beta_c_tasks": critical["tasks"], "beta_c_mean": critical["mean"],
                          "beta_c_direct": _two_over(lam[:-1]), "lambda_max_direct": lam[:-1]})
    return Advice(
        variant=variant, steps=steps, model=model_name, safety=safety, tasks_spectrum=every_task,
        mean_spectrum=mean, alpha_critical=bounds.alpha_critical(every_task.top, model_name, steps),
        alpha_max=limits[0], alpha=alpha, beta=safety * float(min(at_alpha, _two_over(lam[-1]))),
        table=table, _direct=lambda_max,
    )


def predict(advice: Advice, alphas) -> pd.DataFrame:
    """β_c by every estimator at each α: columns alpha and one per :data:`ESTIMATORS`.

    The direct estimator is read from the advice's table where it ran at that α, and run (one
    Lanczos run per α) only where it did not, so holding an advice against a map costs no second
    pass over the grid.
    """
    if not isinstance(advice, Advice):
        raise _checks.refuse("advice", advice, "advice must be what advisor.advise returns",
                             shown=type(advice).__name__)
    alphas = _checks.real_array("alphas", alphas)
    if alphas.ndim != 1 or np.any(alphas < 0):
        raise _checks.refuse("alphas", alphas, "alphas must be a 1-d list of rates >= 0 (0 is plain gradient descent)")
    table = advice.table.set_index("alpha")
    rows = {"alpha": alphas}
    for estimator in ESTIMATORS:
        if estimator == "direct":
            known = np.isin(alphas, table.index)
            values = np.full(alphas.shape, np.nan)
            values[known] = table.loc[alphas[known], "beta_c_direct"].to_numpy()
            if (~known).any():
                values[~known] = advice.beta_critical(alphas[~known], "direct")
        else:
            values = advice.beta_critical(alphas, estimator)
        rows[estimator] = values
    return pd.DataFrame(rows)


def _bracket(reading: float, censored: str, betas: np.ndarray) -> tuple[float, float]:
    """Where the true β_c lies given the grid's reading: [reading, next β), at least the top, or below the bottom."""
    if censored == "below":
        return 0.0, float(betas[0])
    if censored == "above":
        return reading, np.inf
    return reading, float(np.append(betas, np.inf)[np.searchsorted(betas, reading, side="right")])


def score(advice: Advice, measured: stability.MeasuredMap, *, seed: int | None = None, alphas=None) -> pd.DataFrame:
    """Each estimator's β_c against one seed's measured β_c, under each reading of :data:`stability.READINGS`.

    One row per (reading, α, estimator): ``measured`` (NaN where no β counted as stable) and its
    ``censored`` (:data:`stability.CENSORED`), ``predicted``, ``ratio`` predicted/measured, NaN where
    the reading is censored (at the grid's top it says only "β_c ≥ measured", below it nothing), and
    ``within_2x``: the prediction lies in the bracket of the true β_c (from the reading to the next β
    of the grid; open above at the top; from 0 to the smallest β below it) widened 2× at each end.
    ``seed``: whose reading (default the map's smallest seed); ``alphas``: some of the map's α
    (default all of them).
    """
    if not isinstance(measured, stability.MeasuredMap):
        raise _checks.refuse("measured", measured, "measured must be a stability.MeasuredMap (stability.read_maps)",
                             shown=type(measured).__name__)
    critical = measured.beta_critical
    seeds = sorted(int(s) for s in critical["seed"].unique())
    seed = seeds[0] if seed is None else _checks.integer("seed", seed, minimum=0)
    if seed not in seeds:
        raise _checks.refuse("seed", seed, f"seed must be one the map holds: {', '.join(map(str, seeds))}")
    per_seed = critical[critical["seed"] == seed].set_index("alpha")
    alphas = per_seed.index.to_numpy(float) if alphas is None else _checks.real_array("alphas", alphas)
    if alphas.ndim != 1 or not np.isin(alphas, per_seed.index).all():
        raise _checks.refuse("alphas", alphas, "alphas must be a 1-d list of the map's own α")
    betas = np.sort(measured.cells["beta"].unique())
    prediction = predict(advice, alphas)
    rows = []
    for reading in stability.READINGS:
        for _, p in prediction.iterrows():
            value_measured, censored = per_seed.at[p.alpha, reading], per_seed.at[p.alpha, f"{reading}_censored"]
            low, high = _bracket(value_measured, censored, betas)
            for estimator in ESTIMATORS:
                value = p[estimator]
                rows.append({"seed": seed, "reading": reading, "alpha": p.alpha, "measured": value_measured,
                             "censored": censored, "estimator": estimator, "predicted": value,
                             "ratio": value / value_measured if censored == "" else np.nan,
                             "within_2x": bool(low / 2 <= value <= 2 * high)})
    return pd.DataFrame(rows)
