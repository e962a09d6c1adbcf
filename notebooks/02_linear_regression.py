# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Linear regression: theory against experiment (Fig. 3, and what the paper did not show)
#
# Section 5.1 of the paper trains one-step MAML on a single linear-regression task
# y = a·x + b (a, b ∈ [0, 5], x ∈ [-5, 5]) with full-batch gradient descent, the same data
# for the inner and the outer loop, and reports the training loss after 500 iterations on an
# α × β grid. The loss is quadratic, so the analysis of Section 3 is exact here — but *which*
# analysis depends on the MAML variant, which the paper does not name:
#
# | variant | curvature per eigenvalue λ | α limit |
# |---|---|---|
# | `first` (FOMAML) and `simplified` (the paper's g − αHg) | λ − αλ² | α < 1/λ_max |
# | literal penalty L − α‖g‖² (Eq. 5–7 read literally) | λ − 2αλ² | α < 1/(2λ_max) |
# | `second` (exact MAML) | λ(1 − αλ)² | none |
#
# We run all three MAML variants on the same grid, overlay the bounds, and count how often
# each curvature model predicts each variant's stable region — for several draws of the data
# (seeds), because the eigenvalues, and with them the boundary, depend on the draw, and a claim
# read from one draw is one sample.
#
# Why the three rows differ. On a quadratic L(θ) = ½(θ − θ*)ᵀH(θ − θ*) with the same data inner
# and outer, one inner step gives θ' − θ* = (I − αH)(θ − θ*), and every meta-gradient is a matrix
# times θ − θ*:
#
# * first-order MAML takes the gradient at θ', H(I − αH)(θ − θ*);
# * the simplified gradient g − αHg is (I − αH)H(θ − θ*), the same matrix, since H commutes with
#   I − αH;
# * exact MAML multiplies the gradient at θ' by the inner step's Jacobian, (I − αH)H(I − αH)(θ − θ*).
#
# In H's eigenbasis each matrix is diagonal, with entries λ(1 − αλ) for the first two and
# λ(1 − αλ)² for exact MAML: the "curvature per eigenvalue" of the table. Meta-gradient descent
# with rate β converges along an eigenvector iff 0 < β·c < 2, which gives β_c = 2/c and, for a
# curvature that turns negative, the α limit.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
seed: int = 0  # the draw shown in Fig. 3: its task (a, b, x) and initial θ
n_seeds: int = 0  # data draws (seeds seed, seed+1, …), trained as one batch; 0 means the profile value (5, paper 10)
device: str = "auto"  # auto | cpu | cuda
figures_dir: str = "figures"  # where PNG + PDF go, relative to the repository root
cache_dir: str = "build/cache"  # sweep results, keyed by every parameter ("" disables the cache)
executor: str = ""  # where sweeps run their chunks: "" here, "processes:N", or a Dask scheduler address
n_points: int = 100  # data points of the single task (the paper does not say)
iterations: int = 0  # meta-iterations per configuration; 0 means the profile value, 500
threshold: float = 1e-2  # Fig. 3 colours a cell black when its final loss is below this

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from mamlpaper import bounds, hessian, maml, plotting, problems, runtime, stability, sweep
from mamlpaper.variants import CURVATURE_MODEL_OF

runtime.check_profile(profile)
dev = runtime.resolve_device(device)
out_dir = runtime.resolve_path(figures_dir)
cache = runtime.resolve_path(cache_dir) if cache_dir else None
plotting.use_style()

# The paper's grid: α ∈ {1, 2, …, 9} × 10^k from 1e-5 to 9e-2, β from 5e-3 to 9. A linear
# model trains in milliseconds, so `default` already runs the paper's scale; smoke is a shape check.
if profile == "smoke":
    alphas = np.array([1e-4, 1e-3, 1e-2, 3e-2, 6e-2, 8e-2])
    betas = np.array([5e-3, 5e-2, 5e-1, 5.0])
    iterations = iterations or 30
    n_seeds = n_seeds or 2
else:
    alphas = problems.paper_grid(1e-5, 9e-2)
    betas = problems.paper_grid(5e-3, 9.0)
    iterations = iterations or 500
    n_seeds = n_seeds or {"default": 5, "paper": 10}[profile]
seeds = list(range(seed, seed + n_seeds))
print(f"{len(alphas)} α × {len(betas)} β = {len(alphas) * len(betas)} configurations × {n_seeds} data draws, "
      f"{iterations} iterations, on {dev}")

# %% [markdown]
# The smoke profile runs six α, four β, thirty iterations and two draws: enough to check that
# every cell and figure is produced, not enough to measure a boundary, since a run just above β_c
# grows by a factor |1 − β_c·c| per iteration, barely more than 1, and needs many iterations
# to show it. Its agreement numbers are printed but not asserted. The default and paper profiles
# run the paper's 500 iterations on its full grid, 5 and 10 draws.

# %% [markdown]
# ## The task and its Hessian
#
# The model is y = w·x + b with the mean squared error L(θ) = mean((w·x + b − y)²), so its
# Hessian is H = 2 XᵀX / n with X = [x, 1] — the same at every θ. The paper took the
# eigenvalues "of the Hessian of the training loss at the end of training with α = 5e-2,
# β = 7e-1"; we do the same (with autograd on the trained θ) and check them against the
# closed form (`problems.linear_regression_eigenvalues`, unit-tested against autograd).
#
# What to expect before looking: for x uniform on [−5, 5], XᵀX/n tends to [[E x², E x], [E x, 1]]
# = [[25/3, 0], [0, 1]], so H has one eigenvalue near 2·25/3 ≈ 17, along the slope w, and one near
# 2, along the intercept b. A finite draw of 100 points moves them, the large one by up to a fifth
# (13 to 17 over the default profile's five draws), and tilts the eigenvectors a little; that is
# the whole spread of the boundary between draws. The task's
# slope and intercept (a, b) do not enter H at all: they only move θ*.

# %%
problem = problems.linear_regression(seed=seed, n_points=n_points)
task = problem.sample_tasks(None)
loss = maml.functional_loss(problem.model)

paper_run = sweep.train(problem, 5e-2, 7e-1, iterations=iterations, variant="first", seed=seed, device=dev)
H_trained = hessian.dense_hessian(lambda p: loss(p, task.x_support[0].to(dev), task.y_support[0].to(dev)),
                                  paper_run.params)
eig_trained = hessian.eigenvalues(H_trained)
eig_exact = problems.linear_regression_eigenvalues(task)
np.testing.assert_allclose(eig_trained, eig_exact, rtol=1e-10)
spectra = {s: problems.linear_regression_eigenvalues(problem.sample_tasks(torch.Generator().manual_seed(s)))
           for s in seeds}
np.testing.assert_array_equal(spectra[seed], eig_exact)
status = "diverged" if paper_run.diverged_at is not None else "converged"
print(f"run at α=5e-2, β=7e-1 {status}"
      + (f" at iteration {paper_run.diverged_at}" if paper_run.diverged_at is not None else ""))
print("eigenvalues of H (trained θ):", eig_trained)
print("eigenvalues of 2XᵀX/n       :", eig_exact)
lam = eig_exact
alpha_c = bounds.alpha_critical(lam, "simplified")
print(f"α_c = 1/λ_max = {alpha_c:.4g};  β_c(0) = 2/λ_max = {bounds.beta_critical(0.0, lam)[()]:.4g}")
pd.DataFrame({s: {"λ_1": v[1], "λ_2": v[0], "α_c = 1/λ_1": 1 / v[1]} for s, v in spectra.items()}).T.rename_axis("seed")

# %% [markdown]
# The eigenvalues do not depend on where training stopped (the loss is quadratic), which is
# why the paper could read them off any run. With our draw of the data the paper's run at
# α = 5e-2, β = 7e-1 may itself lie outside the stable region: β_c depends on the data's
# spread, and the paper's own draw is not published.
#
# The two numbers printed under the table set everything below. α_c = 1/λ_max ≈ 0.06 falls inside
# the α range of the grid, so the maps show the cliff of the first-order variants and what exact
# MAML does beyond it. β_c(0) = 2/λ_max ≈ 0.12–0.15 is plain gradient descent's limit; as α
# grows towards α_c the largest eigenvalue's curvature λ(1 − αλ) shrinks, and β_c rises until the
# small eigenvalue λ_2 ≈ 2 takes over, at 2/(λ_2(1 − αλ_2)) ≈ 1.15 next to α_c: the "larger β for
# a larger α" of the paper's title, by a factor of eight to ten on this task.
#
# ## The three MAML variants on the paper's grid
#
# Every configuration of a draw starts from that draw's θ0 and sees that draw's task; the
# draws (seeds) share one batched sweep. A configuration is
# **diverged** when its loss or gradient turns non-finite or its loss exceeds 1e8 (it is then
# frozen, drawn uncoloured); it is **unstable** when it diverged *or* ended above its starting
# loss — slow growth along a direction of negative curvature is instability too. That one
# definition is used for every variant below.
#
# The summary counts, per variant over all draws, the share of cells that diverged, that were
# unstable, and that ended below the loss threshold of Fig. 3. The gap between "diverged" and
# "unstable" is the slow growth: beyond α_c a first-order run's curvature λ(1 − αλ) is slightly
# negative, so it grows by a factor 1 + β|c| per iteration, and in 500 iterations that can stay
# far below the 1e8 that counts as divergence. Exact MAML, whose curvature never turns negative,
# has no region of such growth, only the thin band of cells just above its β_c.

# %%
pool = runtime.notebook_executor(executor)  # None: the sweeps run in this process
tables = {
    variant: sweep.run_sweep(problem, alphas, betas, iterations=iterations, variant=variant, seeds=seeds,
                             device=dev, cache_dir=cache, executor=pool)
    for variant in maml.VARIANTS
}
shown = {variant: t[t.seed == seed] for variant, t in tables.items()}  # the draw of Fig. 3
summary = pd.DataFrame({
    variant: {"diverged": t.diverged.mean(), "unstable": t.unstable.mean(),
              f"loss < {threshold:g}": (t.loss_final < threshold).mean()}
    for variant, t in tables.items()
}).T
summary

# %% [markdown]
# On a quadratic with support = query, FOMAML and the paper's simplified gradient are the same
# update: (I − αH)·H(θ − θ*). Their tables must agree to round-off. They are computed in a
# different order (one differentiates at θ', the other multiplies by I − αH), so the losses agree
# to a relative 1e-8 rather than bit for bit; the verdicts "unstable" must agree exactly.

# %%
first, simplified = tables["first"], tables["simplified"]
assert (first.unstable == simplified.unstable).all()
np.testing.assert_allclose(first.loss_final, simplified.loss_final, rtol=1e-8, atol=1e-12, equal_nan=True)

# %% [markdown]
# ## Fig. 3: the paper's map, first-order / simplified MAML
#
# Black: final loss below 1e-2; grey: above; uncoloured: diverged. The curves are β_c(α) of
# each eigenvalue alone, 2 / (λ_i − αλ_i²); the dashed line is α_c = 1/λ_max.
#
# The theory's stable region is below *both* curves and left of the dashed line. The curve of the
# large eigenvalue rises steeply towards α_c, where it goes to infinity, so near α_c the lower
# curve, of the small eigenvalue, sets β_c. Grey cells inside the region trained but slowly: a
# β far below β_c, or an α where one eigenvalue's curvature λ(1 − αλ) is nearly zero, leaves a
# component of θ − θ* that 500 iterations do not remove. Right of the dashed line every β fails.

# %%
alpha_fine = np.geomspace(alphas[0] / 2, alphas[-1] * 2, 600)


def draw_map(table, model, title):
    fig, ax = plt.subplots()
    a, b, values = stability.as_grid(table, "loss_final")
    plotting.stability_map(ax, a, b, values, threshold=threshold)
    for i, l in enumerate(lam):
        plotting.theory_curve(ax, alpha_fine, bounds.beta_critical(alpha_fine, [l], model),
                              label=f"β_c: λ{i + 1} = {l:.3g}", color=f"C{i + 1}")
    plotting.alpha_line(ax, bounds.alpha_critical(lam, model), color="C3")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize="x-small", framealpha=0.9)
    return fig


fig = draw_map(shown["first"], CURVATURE_MODEL_OF["first"], "linear regression, first-order MAML")
plotting.save(fig, "fig3_linear_regression", out_dir)

# %% [markdown]
# ## The same grid with exact second-order MAML
#
# Exact MAML's meta-loss is L(θ − αg), whose Hessian on a quadratic is (I − αH)H(I − αH):
# eigenvalues λ(1 − αλ)², never negative. So there is **no** α_c: past 1/λ_max the region
# narrows but training still converges below β_c = 2 / (λ(1 − αλ)²), and β_c → ∞ at α = 1/λ_i.
#
# At α = 1/λ_i the inner step lands exactly on the minimum along eigenvector i, so the
# meta-gradient has no component there and no β can make that direction diverge; just past it
# the inner step overshoots, but the squared factor keeps the curvature positive. Along that
# direction, though, the meta-loss is flat near α = 1/λ_i, so training there is slow, not fast.

# %%
fig = draw_map(shown["second"], CURVATURE_MODEL_OF["second"], "linear regression, exact second-order MAML")
plotting.save(fig, "fig3b_linear_regression_exact", out_dir)

# %% [markdown]
# ## Over the data draws
#
# Each cell now shows the fraction of the draws whose run was unstable, and each draw's own
# bounds (the curve of its largest eigenvalue, which sets the upper boundary) are drawn thin.
# Where the fraction is strictly between 0 and 1 the boundary moved with the data, not with
# round-off: the runs of one draw are deterministic up to it.
#
# In the first-order panel the vertical line is the smallest α_c over the draws, the one a
# practitioner who must serve every draw would use. The columns between the draws' α_c are where the spread shows most:
# one draw is already past its cliff while another is not.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
for ax, variant in zip(axes, ("first", "second")):
    a, b, p = stability.as_grid(stability.failure_probability(tables[variant], outcome="unstable"), "p")
    plotting.probability_map(ax, a, b, p, label="P(unstable) over draws", colorbar=ax is axes[-1])
    for s, values in spectra.items():
        plotting.theory_curve(ax, alpha_fine, bounds.beta_critical(alpha_fine, values, CURVATURE_MODEL_OF[variant]),
                              label=f"β_c, draw {s}" if variant == "first" else None, color="0.2", linewidth=0.6)
    plotting.alpha_line(ax, bounds.alpha_critical(np.concatenate(list(spectra.values())), CURVATURE_MODEL_OF[variant]),
                        color="C3", label="α_c, smallest over draws")
    ax.set_title(f"{variant}: {n_seeds} data draws")
axes[1].set_ylabel("")
plotting.save(fig, "fig3_linear_regression_draws", out_dir)

# %% [markdown]
# ## Agreement of each curvature model with each variant
#
# For every (variant, curvature model) pair: the fraction of grid cells whose predicted label
# (stable iff 0 < β < β_c(α), which includes α < α_c) matches the measured one, counted over
# the cells more than one grid step away from the predicted boundary (a cell counts when its
# whole 3 × 3 neighbourhood has one predicted label).
#
# The margin is there because a cell next to the boundary is decided by where the grid's β
# happens to fall relative to β_c, and by how many iterations a run just above β_c needs to
# show its growth, neither of which says anything about which curvature model is right. The
# measured label is "stable" = not unstable, so the slowly growing first-order runs beyond α_c
# count as failures, as the theory says they are. The table gives mean, worst and best over the
# draws.

# %%
rows = []
for variant, table in tables.items():
    for s, values in spectra.items():
        a, b, unstable = stability.as_grid(table[table.seed == s], "unstable")
        measured_stable = ~unstable.astype(bool)
        for model in bounds.CURVATURE_MODELS:
            predicted = bounds.predicted_stable(a, b, values, model)
            fraction, cells = bounds.agreement(predicted, measured_stable, margin=1)
            rows.append({"variant": variant, "curvature model": model, "seed": s, "agreement": fraction,
                         "cells counted": cells})
per_draw = pd.DataFrame(rows)
agreement = per_draw.groupby(["variant", "curvature model"], sort=False)["agreement"].agg(["mean", "min", "max"])
agreement.style.format("{:.1%}")

# %% [markdown]
# The model that belongs to each variant predicts it cell for cell, in every draw, and every
# other model agrees less, in every draw. The cell then writes this notebook's results to
# `02_linear_regression.json` (the draws' eigenvalues and the agreement table) and the three
# measured maps to `maps/02_linear_regression.json`, where notebook 06 scores the advisor on them
# without rerunning a sweep; each map carries the problem's spec, so 06 can rebuild the problem.

# %%
own_model = list(CURVATURE_MODEL_OF.items())  # each variant with the curvature model it obeys
if profile != "smoke":
    for variant, model in own_model:
        worst = agreement.loc[(variant, model), "min"]
        assert worst >= 0.99, f"{variant} vs {model}: {worst:.1%} in its worst draw"
        for other in bounds.CURVATURE_MODELS:
            if other != model:
                best_other = agreement.loc[(variant, other), "max"]
                assert best_other < worst, f"{variant}: {other} agrees {best_other:.1%} >= {model} {worst:.1%}"
runtime.write_results("02_linear_regression", {
    "notebook": "02_linear_regression", "profile": profile, "seeds": seeds, "iterations": iterations,
    "grid": {"alphas": len(alphas), "betas": len(betas)},
    "eigenvalues": {str(s): [float(v) for v in values] for s, values in spectra.items()},
    "agreement": {f"{variant} vs {model}": {k: round(float(v), 4) for k, v in row.items()}
                  for (variant, model), row in agreement.iterrows()},
}, out_dir)
# The measured maps, for 06_guideline; a seed is a data draw (the spectra above, by seed).
runtime.write_results("02_linear_regression", {"notebook": "02_linear_regression", "profile": profile, "series": {
    f"{variant}-sgd": stability.export_map(t, problem=problem.name, spec=problem.spec, variant=variant, optimizer="sgd",
                                           iterations=iterations, steps=1, dtype="float64", seed_is="data draw")
    for variant, t in tables.items()}}, out_dir / "maps")
agreement.loc[own_model]

# %% [markdown]
# The other pairs are printed as they are. Read them as follows:
#
# * **paper's bound (λ − αλ²) against exact MAML** — it is right below α_c, where the two
#   curvatures differ only at O(α²), and wrong above it: exact MAML keeps training where the
#   paper's analysis says no β works. If the paper's Fig. 3 matches its bound, it ran the
#   first-order (or simplified) update.
# * **the literal penalty reading (λ − 2αλ²)** puts α_c at 1/(2λ_max), half the observed
#   limit, for every variant: the factor 2 of Eq. 5–7 is not what the dynamics follow.

# %%
agreement.loc[[idx for idx in agreement.index if idx not in own_model]]
