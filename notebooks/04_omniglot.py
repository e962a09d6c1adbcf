# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Omniglot: the two learning rates on a convolutional classifier (Fig. 4b, 6b)
#
# Section 5.3 of the paper carries the claim from the sinusoid to few-shot classification:
# Omniglot, 5-way 1-shot, 15 query images per class, two inner steps, 32 tasks per meta-batch,
# Finn et al.'s Conv4 (64 filters, 3×3 convolutions, BatchNorm, ReLU, 2×2 max-pooling),
# the training loss after 100 iterations on α ∈ [1e-3, 9] × β ∈ [1e-1, 90]. The claim, read off
# Fig. 4b: **the largest β that does not diverge is larger when α is close to the largest α
# that trains than at α = 0** (the dashed line), with SGD as the meta-optimizer; with Adam
# (Fig. 6b, Appendix E) it is not.
#
# We run exact second-order two-step MAML on the same grid ranges, with α = 0 (joint
# training) in the same sweep, and read the maps two ways, as notebook 03 does for the
# sinusoid: a run that stays finite (the paper's reading), and a run that stays finite **and**
# has not collapsed (after adaptation it still predicts more than one class for some task's
# queries). A classifier whose logits were driven apart by a large step can predict one class
# for everything and still have a finite loss: it neither diverged nor trained.
#
# This notebook needs Omniglot: `$MAMLPAPER_DATA/omniglot/` with the full set
# (`images_background.zip`, `images_evaluation.zip`) or the small one
# (`images_background_small1.zip`, `images_background_small2.zip`); without it, it stops in
# its first code cell and `make figures` reports it as skipped.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
seed: int = 0  # draws θ0 and the task stream shared by every configuration
device: str = "auto"  # auto | cpu | cuda
figures_dir: str = "figures"  # where PNG + PDF + JSON go, relative to the repository root
cache_dir: str = "build/cache"  # sweep results keyed by every parameter; empty disables the cache
iterations: int = 0  # meta-iterations of every configuration; 0 means the profile value (paper: 100)
filters: int = 0  # Conv4 filters per layer; 0 means the profile value (paper: 64)
tasks_per_batch: int = 0  # tasks per meta-batch; 0 means the profile value (paper: 32)
queries: int = 0  # query images per class; 0 means the profile value (paper: 15)
alpha_mantissas: list = []  # the α grid is m × 10^k over [1e-3, 9] for these m; empty means the profile value
beta_mantissas: list = []  # the β grid is m × 10^k over [1e-1, 90] for these m; empty means the profile value
dtype: str = "float32"  # precision of the sweeps: float32 | float64
threads: int = 0  # torch CPU threads; 0 means the profile value: 1 for smoke, the torch default otherwise

# %%
import json
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib import patheffects

from mamlpaper import atomic, plotting, problems, runtime, stability, sweep

runtime.check_profile(profile)
dev = runtime.resolve_device(device)
out_dir = runtime.resolve_path(figures_dir)
cache = runtime.resolve_path(cache_dir) if cache_dir else None
if dtype not in sweep.DTYPES:
    raise ValueError(f"dtype={dtype!r} is not allowed; choose one of {', '.join(sweep.DTYPES)}")
for name, value in (("iterations", iterations), ("filters", filters), ("tasks_per_batch", tasks_per_batch),
                    ("queries", queries)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} is not allowed; use 0 for the profile value or a positive integer")
for name, value in (("alpha_mantissas", alpha_mantissas), ("beta_mantissas", beta_mantissas)):
    if not isinstance(value, list):
        raise ValueError(f"{name}={value!r} is not allowed; use a list of integers from 1 to 9, or [] for the "
                         f"profile value")
runtime.use_threads(threads, profile)
plotting.use_style()


def plain(value):
    """A JSON value: NaN and missing become null, NumPy scalars Python numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


PAPER = {"filters": 64, "tasks_per_batch": 32, "queries": 15, "iterations": 100, "mantissas": tuple(range(1, 10))}
chosen = {
    # a shape check for the tests: seconds
    "smoke": {"filters": 8, "tasks_per_batch": 2, "queries": 1, "iterations": 2},
    # what `make figures` runs on a 2-core CPU in minutes (see "What the default profile reduces")
    "default": {"filters": 32, "tasks_per_batch": 8, "queries": 5, "iterations": 20,
                "alpha_mantissas": (1,), "beta_mantissas": (1, 3)},
    "paper": {**PAPER, "alpha_mantissas": PAPER["mantissas"], "beta_mantissas": PAPER["mantissas"]},
}[profile]
filters = filters or chosen["filters"]
tasks_per_batch = tasks_per_batch or chosen["tasks_per_batch"]
queries = queries or chosen["queries"]
iterations = iterations or chosen["iterations"]
STEPS = 2  # inner steps, as in the paper
if profile == "smoke" and not (alpha_mantissas or beta_mantissas):
    alphas, betas = np.array([0.1, 1.0]), np.array([1.0, 90.0])
else:
    alphas = sweep.paper_grid(1e-3, 9.0, tuple(alpha_mantissas) or chosen["alpha_mantissas"])
    betas = sweep.paper_grid(1e-1, 90.0, tuple(beta_mantissas) or chosen["beta_mantissas"])

# The data: DataMissing (with what to put where) stops the notebook here, and `make figures`
# reports it as skipped.
problem = problems.omniglot(seed, queries=queries, tasks_per_batch=tasks_per_batch, filters=filters)
print(f"{problem.spec['classes']} training classes ({problem.spec['classes'] // 4} characters × 4 rotations); "
      f"{len(alphas)} α (+ α = 0) × {len(betas)} β, {iterations} iterations per configuration, "
      f"{tasks_per_batch} tasks × 5 ways × (1 + {queries}) images per meta-batch, Conv4-{filters}, "
      f"{STEPS} inner steps; on {dev}, {torch.get_num_threads()} CPU threads")

# %% [markdown]
# ## What the default profile reduces, and why
#
# The paper's experiment is 36 α (+ α = 0) × 27 β = 999 configurations × 100 iterations of
# exact two-step MAML on 32 tasks with 15 queries per class: about 100 000 meta-gradients.
# On the 2-core development CPU one such meta-gradient (Conv4-64, 32 tasks, 15 queries,
# float32, the engine's per-task loop) takes 3.1 s, so the paper profile would run for three to
# four days there; it is meant for a GPU (`profile=paper`). The `default` profile, which
# `make figures` runs and which made the committed figures, has to finish in about 8 minutes
# on that CPU, so it cuts every factor of the product. Measured cost of one meta-iteration on
# the same CPU and engine (float32, two threads, otherwise idle machine):
#
# | Conv4 filters | tasks | queries per class | seconds per iteration |
# |---|---|---|---|
# | 64 | 32 | 15 | 3.1 (the paper's setting) |
# | 64 | 8 | 5 | 0.50 |
# | 32 | 8 | 5 | 0.31 (`default`) |
# | 32 | 4 | 5 | 0.16 |
#
# | | paper (`paper`) | `default` | why |
# |---|---|---|---|
# | Conv4 filters | 64 | 32 | 0.50 s → 0.31 s per iteration; 32 is Finn et al.'s MiniImagenet width |
# | tasks per meta-batch | 32 | 8 | the per-task loop is most of the cost; the meta-gradient is noisier |
# | queries per class | 15 | 5 | 75 → 25 query images per task |
# | iterations | 100 | 20 | 5× fewer; a run that diverges mostly does so within a few iterations, but one that would diverge later counts as finite here |
# | α grid | 1…9 × 10^k, 1e-3 … 9 (36) | 1 × 10^k: 1e-3, 1e-2, 0.1, 1 (4) | a factor 10 between α's: where along α β_c peaks is resolved only to a decade |
# | β grid | 1…9 × 10^k, 0.1 … 90 (27) | 1, 3 × 10^k: 0.1, 0.3, …, 30 (6) | β_c resolved to a factor 3 (paper: 1.1–2); the grid stops at 30, not 90 |
# | data | Omniglot, 1200 training characters (Finn et al.) | what `$MAMLPAPER_DATA` holds: on the development machine the small set, 153 training characters × 4 rotations | what the machine has |
#
# That is 5 × 6 = 30 configurations per optimizer, at most 30 × 21 meta-gradients × 0.31 s ≈
# 3.3 minutes each (runs that diverge stop early). Measured on the idle development CPU without
# the cache: both sweeps 377 s, the whole notebook 6 min 42 s. Kept as in the paper: 5-way 1-shot, two inner
# steps, exact second-order MAML, SGD and Adam, both grid ranges (β up to 30), α = 0 in the same
# sweep. What the reductions cost in faithfulness is said with the results. Every factor is a
# parameter (`filters`, `tasks_per_batch`, `queries`, `iterations`, `alpha_mantissas`,
# `beta_mantissas`), so a reader with a GPU can run the paper's setting or anything between.

# %%
setting = pd.DataFrame({
    "paper": {"Conv4 filters": PAPER["filters"], "tasks per meta-batch": PAPER["tasks_per_batch"],
              "queries per class": PAPER["queries"], "iterations": PAPER["iterations"],
              "α values (+ α = 0)": len(sweep.paper_grid(1e-3, 9.0)), "β values": len(sweep.paper_grid(1e-1, 90.0))},
    "this run": {"Conv4 filters": filters, "tasks per meta-batch": tasks_per_batch, "queries per class": queries,
                 "iterations": iterations, "α values (+ α = 0)": len(alphas), "β values": len(betas)},
})
setting

# %% [markdown]
# ## The sweeps
#
# Every configuration starts from the same θ0 and sees the same stream of meta-batches (a fresh
# one every iteration). A run is **diverged** (uncoloured on the maps) when its meta-loss or
# meta-gradient turns non-finite or its loss exceeds 1e8; the colour is the meta-loss (query
# cross-entropy after the two inner steps) at the last iteration. A red × marks a run that
# stayed finite but **collapsed**: after adaptation it predicts a single class for all queries
# of every task of the last meta-batch. Chance is a loss of ln 5 ≈ 1.61 and an accuracy of 20 %.
#
# α = 0 is joint training: plain SGD (or Adam) on the query loss of θ itself. Its labels are
# shuffled in every task, so it cannot do better than chance; what it shows is how large a β
# the meta-optimizer tolerates without the inner steps, the paper's dashed line.

# %%
start = time.perf_counter()
tables = {
    optimizer: sweep.run_sweep(problem, np.r_[0.0, alphas], betas, iterations=iterations, steps=STEPS,
                               optimizer=optimizer, seed=seed, dtype=dtype, device=dev, cache_dir=cache)
    for optimizer in ("sgd", "adam")
}
sweep_seconds = time.perf_counter() - start
critical = {optimizer: sweep.measured_beta_critical(table).set_index("alpha")["beta_c"]
            for optimizer, table in tables.items()}
trained = {optimizer: sweep.measured_beta_critical(table, reading="trained").set_index("alpha")["beta_c"]
           for optimizer, table in tables.items()}
overview = pd.DataFrame({
    optimizer: {"runs": len(t), "diverged": int(t.diverged.sum()),
                "median divergence iteration": t.diverged_at.dropna().median(),
                "collapsed (finite runs)": int(t.collapsed.sum()),
                "finite, not collapsed": int((~t.diverged & ~t.collapsed).sum()),
                "best query accuracy after adaptation": t.query_accuracy.max(),
                "lowest final loss": t.loss_final.min()}
    for optimizer, t in tables.items()
}).T
print(f"both sweeps: {sweep_seconds:.0f} s")
overview

# %% [markdown]
# ## Fig. 4b: the α × β map with SGD
#
# α = 0 is run in the same sweep; a log axis cannot show it, so it is the white dashed line:
# the β above which α = 0 diverges (drawn on the upper edge of the largest finite β's cell).

# %%
outline = [patheffects.Stroke(linewidth=2.2, foreground="black"), patheffects.Normal()]


def alpha_zero_line(ax, optimizer):
    """Dashed line on the cell edge above the largest β that stays finite at α = 0 (none if all do)."""
    beta0 = critical[optimizer][0.0]
    if np.isnan(beta0):
        return
    upper = plotting.grid_edges(betas)[np.searchsorted(betas, beta0) + 1] if beta0 < betas[-1] else np.inf
    plotting.beta_line(ax, upper, label=f"α = 0 diverges above β = {beta0:g}", color="white", linewidth=1.0,
                       path_effects=outline)


def draw_map(optimizer, title):
    table = tables[optimizer]
    inner = table[table.alpha > 0]
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    a, b, values = sweep.as_grid(inner, "loss_final")
    plotting.stability_map(ax, a, b, values, label="training loss at the end")
    plotting.mark_cells(ax, a, b, sweep.as_grid(inner, "collapsed")[2].astype(bool),
                        label="finite but collapsed to one class", color="red")
    alpha_zero_line(ax, optimizer)
    ax.set_title(title)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize="x-small", frameon=False)
    return fig


fig = draw_map("sgd", f"Omniglot 5-way 1-shot, SGD, {iterations} iterations")
plotting.save(fig, "fig4b_omniglot_sgd", out_dir)

# %% [markdown]
# ## Fig. 6b: the same with Adam (Appendix E)

# %%
fig = draw_map("adam", f"Omniglot 5-way 1-shot, Adam, {iterations} iterations")
plotting.save(fig, "fig6b_omniglot_adam", out_dir)

# %% [markdown]
# ## The measured β_c(α), and the paper's claim
#
# For every α, the largest β of the grid whose run stayed finite (the paper's reading), and the
# largest whose run trained: neither unstable (non-finite, or ending above its starting loss)
# nor collapsed. The claim is that the largest
# β_c(α) over α > 0 exceeds β_c(0) with SGD, and does not with Adam. A ratio is NaN where a
# reading has no β at α = 0 (every run there diverged or collapsed).

# %%
readings = {"finite": critical, "trained": trained}
rows = {}
for reading, values in readings.items():
    for optimizer, bc in values.items():
        inner = bc[bc.index > 0]
        peak = inner.max()
        rows[optimizer, reading] = {
            "β_c(0)": bc[0.0], "max β_c(α), α > 0": peak,
            "at α": inner.idxmax() if not np.isnan(peak) else np.nan,
            "ratio": peak / bc[0.0] if bc[0.0] > 0 else np.nan,
        }
claim = pd.DataFrame(rows).T
finite_above = {}
for optimizer, table in tables.items():
    limit = np.nan_to_num(trained[optimizer][0.0], nan=0.0)
    finite_above[optimizer] = table[~table.diverged & (table.alpha > 0) & (table.beta > limit)]
claim["finite runs, α > 0, above the trained β_c(0)"] = [len(finite_above[o]) for o, _ in claim.index]
claim["of them collapsed"] = [int(finite_above[o].collapsed.sum()) for o, _ in claim.index]
claim

# %% [markdown]
# Neither reading asks whether a run learned anything. Per α, beside the two readings, the
# largest β whose run reached a query accuracy after adaptation of at least 50 % (chance: 20 %)
# on the last meta-batch. At α = 0 there is none by construction: without inner steps the
# shuffled labels cannot be predicted.

# %%
LEARNED = 0.5  # query accuracy after adaptation that counts as having learned (chance is 0.2)
learned = {optimizer: table[~table.diverged & (table.query_accuracy >= LEARNED)].groupby("alpha")["beta"].max()
           .reindex(critical[optimizer].index) for optimizer, table in tables.items()}
columns = {"finite": critical, "trained": trained, f"accuracy ≥ {LEARNED:.0%}": learned}
per_alpha = pd.concat({(optimizer, reading): values[optimizer]
                       for optimizer in tables for reading, values in columns.items()}, axis=1)
per_alpha.index.name = "α"
per_alpha

# %%
fig, ax = plt.subplots(figsize=(4.2, 2.8))
lines = [("sgd", "finite", "SGD, finite", "C0", "o", "-"), ("sgd", "trained", "SGD, trained", "C0", "x", ":"),
         ("adam", "finite", "Adam, finite", "C1", "s", "-"), ("adam", "trained", "Adam, trained", "C1", "+", ":"),
         ("sgd", "learned", f"SGD, accuracy ≥ {LEARNED:.0%}", "C2", "^", "--")]
for optimizer, reading, name, colour, marker, style in lines:
    bc = {**readings, "learned": learned}[reading][optimizer]
    inner = bc[bc.index > 0]
    ax.plot(inner.index, inner.to_numpy(), color=colour, marker=marker, markersize=3, linewidth=0.9,
            linestyle=style, label=f"measured, {name}")
for optimizer, name, colour in [("sgd", "SGD", "C0"), ("adam", "Adam", "C1")]:
    if not np.isnan(critical[optimizer][0.0]):
        plotting.beta_line(ax, critical[optimizer][0.0], label=f"finite at α = 0, {name}", color=colour,
                           linewidth=0.8)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlim(alphas[0] / 2, alphas[-1] * 2)
ax.set_ylim(betas[0] / 2, betas[-1] * 2)
ax.set_xlabel("inner learning rate α")
ax.set_ylabel("largest β of the reading, β_c(α)")
ax.set_title("Omniglot: measured β_c(α)")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize="x-small", frameon=False)
plotting.save(fig, "fig4b_measured_beta_critical", out_dir)

# %% [markdown]
# How sharp is the SGD boundary that sets the ratio? The cells that decide it, run again alone
# (same θ0, same task stream) in float64: the α = 0 cell just above β_c(0) (the grid's top β if
# none diverged), and, where the ratio exceeds 1, the cell of the largest β_c(α). Only
# round-off differs from the sweep's float32 runs.

# %%
start = time.perf_counter()
sgd = tables["sgd"]
b0, peak = critical["sgd"][0.0], claim.loc[("sgd", "finite")]
above = betas[betas > b0] if not np.isnan(b0) else betas
cells = [(0.0, float(above[0] if len(above) else betas[-1]))] + (
    [(float(peak["at α"]), float(peak["max β_c(α), α > 0"]))] if peak["ratio"] > 1 else [])
reruns = {}
for a, b in cells:
    cell = sgd[(sgd.alpha == a) & (sgd.beta == b)].iloc[0]
    run = sweep.train(problem, a, b, iterations=iterations, steps=STEPS, seed=seed, dtype="float64", device=dev)
    reruns[f"α = {a:g}, β = {b:g}"] = {
        "alpha": a, "beta": b, f"diverged at ({dtype} sweep)": plain(cell.diverged_at),
        f"final loss ({dtype} sweep)": plain(cell.loss_final), "collapsed (sweep)": bool(cell.collapsed),
        "diverged at (float64 alone)": run.diverged_at,
        "final loss (float64 alone)": None if run.diverged_at is not None else float(run.losses[-1])}
rerun_seconds = time.perf_counter() - start
pd.DataFrame(reruns).T

# %% [markdown]
# The numbers the README quotes are written beside the figures, to `fig4b_omniglot.json`
# (NaN is written as `null`).

# %%
result = {
    "notebook": "04_omniglot", "figures": ["fig4b_omniglot_sgd", "fig6b_omniglot_adam", "fig4b_measured_beta_critical"],
    "profile": profile,
    "setting": {"ways": 5, "shots": 1, "queries": queries, "tasks_per_batch": tasks_per_batch, "filters": filters,
                "inner_steps": STEPS, "variant": "second", "iterations": iterations, "dtype": dtype, "seed": seed,
                "data": {"training_characters": problem.spec["classes"] // 4, "rotations": 4,
                         "training_classes": problem.spec["classes"]},
                "alphas": [0.0, *map(float, alphas)], "betas": list(map(float, betas))},
    "readings": {"finite": "largest beta whose run stayed finite (the paper's reading)",
                 "trained": "largest beta whose run was neither unstable (non-finite, or ended above its starting "
                            "loss) nor collapsed to one predicted class",
                 "learned": "largest beta whose run reached the given query accuracy after adaptation (no ratio: "
                            "alpha = 0 cannot learn shuffled labels)"},
}
for optimizer, table in tables.items():
    entry = {"runs": len(table), "diverged": int(table.diverged.sum()), "collapsed": int(table.collapsed.sum()),
             "best_query_accuracy": plain(table.query_accuracy.max())}
    for reading, values in readings.items():
        row = claim.loc[(optimizer, reading)]
        entry[reading] = {"beta_c_at_alpha_0": plain(row["β_c(0)"]), "max_beta_c": plain(row["max β_c(α), α > 0"]),
                          "at_alpha": plain(row["at α"]), "ratio": plain(row["ratio"]),
                          "beta_c": {f"{a:g}": plain(b) for a, b in values[optimizer].items()}}
    entry["learned"] = {"query_accuracy_at_least": LEARNED,
                        "beta_c": {f"{a:g}": plain(b) for a, b in learned[optimizer].items()}}
    if optimizer == "sgd":
        entry["float64_reruns"] = list(reruns.values())
    entry["finite_above_trained_beta_c0"] = len(finite_above[optimizer])
    entry["collapsed_above_trained_beta_c0"] = int(finite_above[optimizer].collapsed.sum())
    result[optimizer] = entry
out_dir.mkdir(parents=True, exist_ok=True)
atomic.write_bytes(out_dir / "fig4b_omniglot.json",
                   (json.dumps(result, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode())
# The measured maps, for 06_guideline.
runtime.write_results("04_omniglot", {"notebook": "04_omniglot", "profile": profile, "series": {
    f"second-{optimizer}": stability.export_map(t, problem=problem.name, spec=problem.spec, variant="second", optimizer=optimizer,
                                                iterations=iterations, steps=STEPS, dtype=dtype, seed_is="θ0, tasks")
    for optimizer, t in tables.items()}}, out_dir / "maps")
print(json.dumps({o: {r: result[o][r]["ratio"] for r in readings} for o in tables}))

# %% [markdown]
# ## Checks on what the runs must show
#
# On every profile: a diverged run has no final loss and never counts as collapsed, a finite one
# has a final loss and an accuracy. Beyond the smoke run, what holds with a margin:
#
# * joint training (α = 0) never learns the shuffled labels (accuracy below 50 %; chance is 20 %);
# * with SGD some α > 0 does (at least 50 %), so the map is one of MAML training, not noise;
# * with SGD, at the grid's largest β no run learns: each diverged or ended at chance, i.e. SGD
#   has a β ceiling at every α;
# * with Adam, the largest β_c(α) over α > 0 is at most β_c(0) in the paper's reading (Appendix E).
#
# Which α = 0 run diverges at the top of the default grid is *not* asserted, nor the SGD ratio:
# single cells there decide them, and they can flip with round-off (see below). The paper's
# SGD claim (ratio above 1) is asserted for `profile=paper` only.

# %%
for optimizer, table in tables.items():
    assert table.loss_final[table.diverged].isna().all() and table.loss_final[~table.diverged].notna().all(), optimizer
    assert not (table.collapsed & table.diverged).any(), optimizer
    assert table.query_accuracy[~table.diverged].between(0, 1).all(), optimizer
if profile != "smoke":
    for optimizer, table in tables.items():
        assert not (table.query_accuracy[table.alpha == 0] >= LEARNED).any(), (optimizer, table[table.alpha == 0])
    sgd = tables["sgd"]
    assert sgd.query_accuracy[sgd.alpha > 0].max() >= LEARNED, sgd
    top = sgd[sgd.beta == betas[-1]]
    assert (top.diverged | (top.query_accuracy < 0.3)).all(), top
    assert not (claim.loc[("adam", "finite"), "ratio"] > 1.0), claim
if profile == "paper":
    assert claim.loc[("sgd", "finite"), "ratio"] > 1.0, claim

# %% [markdown]
# ## What this says about the claim
#
# In our default run (seed 0, float32 sweeps; if you change a parameter, trust the tables above,
# not this text):
#
# * **SGD, the paper's reading:** β_c(0) = 10 (α = 0 diverges at β = 30 after 6 iterations, in
#   float64 too), while two α > 0 stay finite at β = 30, α = 1e-3 and α = 0.1: ratio 3, the
#   claim as the paper reads its maps. But both of those runs collapsed: after adaptation they
#   predict one class for every query, with a loss of 6–9 (chance: 1.61). They did not train;
#   they only failed to overflow in 20 iterations. The α = 0.1 cell is also decided by round-off:
#   in a development run whose only difference was the batch-norm kernel (torch's fused one
#   instead of the same formula written out), it diverged at iteration 8. And the peak at
#   α = 1e-3, where two inner steps barely move θ, is no effect of α approaching its limit.
# * **SGD, counting only runs that trained** (neither unstable — non-finite, or ending above
#   their starting loss — nor collapsed): ratio 1. β_c is 10 at α = 0 and 1e-3, 0.3 at 1e-2,
#   and 1 at α = 0.1 and 1. Even this reading is generous: every run at β = 10 ends at chance
#   accuracy (20 %) and predicts a single class in most tasks (1.1–1.25 distinct classes per
#   task on average), which the collapse rule (a single class in *every* task) lets through.
# * **What learned:** only α = 0.01 (up to β = 0.1: 62.5 %) and α = 0.1 (up to β = 1; 80.5 % at
#   β = 0.1) reach 50 % query accuracy in 20 iterations. α = 1 overshoots in the inner loop (its
#   loss at θ0, 5.0, is above chance) and never learns. So the largest α that trains lies
#   between 0.1 and 1, and there the largest β that trains is 1, a tenth of the β_c(0) = 10 of
#   joint training, which by construction learns nothing.
# * **Adam:** no run diverged in 20 iterations on the paper's β range (0.1 to 30 here), so in
#   the paper's reading β_c(0) is the top of the grid and the ratio is 1; counting only runs
#   that trained, β_c(0) = 1 (above it the loss ends higher than it started) and no α > 0 does
#   better: ratio 1 again. That agrees with
#   Appendix E, but trivially. No Adam run reached 50 % either (best 46 %): per-coordinate
#   steps of 0.1 and more are far above what Adam trains with (Finn et al. use 1e-3). Its
#   finite losses reach 30: a cross-entropy grows only linearly with the logits, so the 1e8
#   threshold for "diverged" is rarely reached.
#
# So this coarse, short, reduced run bears out the paper's Omniglot claim in the paper's own
# reading, by one β step and only through runs that collapsed. In any reading that asks for
# training, the claim does not show. What the reductions may hide: with 100 iterations a run that
# is finite at 20 can still diverge; with 32 tasks and 15 queries the meta-gradient is less
# noisy, so the boundary may be less ragged; a 1…9 grid resolves β_c to 1.1–2 instead of 3 and
# has α's between 0.1 and 1, where the claim says β_c should peak. `profile=paper` runs the
# paper's setting (on a GPU) and asserts its SGD claim; it has not been run here.

# %%
pd.Series({"both sweeps": sweep_seconds, "float64 reruns": rerun_seconds}, name="seconds").round(1)
