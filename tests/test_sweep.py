"""The vmapped grid engine against per-config sequential runs, isolation of diverging configs, caching."""
import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mamlpaper import cache, cpu_tuning, maml, memory, metaproblem, models, problems, stability, sweep
from mamlpaper.tasks import Tasks


def sine_problem(seed=0):
    """A tiny tanh MLP on freshly drawn sine tasks: a problem whose task stream changes every iteration."""
    model = models.mlp(torch.Generator().manual_seed(seed), widths=(1, 6, 1), activation="tanh").double()

    def sample(g):
        amp = 0.5 + torch.rand(4, 1, 1, generator=g)
        xs, xq = (4 * torch.rand(4, 5, 1, generator=g) - 2 for _ in range(2))
        return Tasks(xs, amp * torch.sin(xs), xq, amp * torch.sin(xq))

    return metaproblem.MetaProblem("sine", model, sample, spec={"seed": seed})


ALPHAS = [0.0, 0.05, 0.3]
BETAS = [0.01, 0.1, 40.0]  # β = 40 makes SGD diverge
# Adam at a large β stays finite but chaotic: round-off grows past 1e-10 in 20 steps, so it is
# compared where its trajectory is well conditioned.
GRID_BETAS = {"sgd": BETAS, "adam": [0.001, 0.01, 0.05]}


def hand_written_mse(prediction, target):
    return ((prediction - target) ** 2).mean()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("variant", ["second", "second-generic", "first", "simplified"])
def test_every_vmapped_config_equals_its_sequential_run(optimizer, variant):
    problem = sine_problem()
    if variant == "second-generic":  # a criterion other than maml.mse bypasses the MLP closed form
        problem, variant = dataclasses.replace(problem, criterion=hand_written_mse), "second"
    betas = GRID_BETAS[optimizer]
    table = sweep.run_sweep(problem, ALPHAS, betas, iterations=20, variant=variant, optimizer=optimizer, progress=False)
    assert len(table) == len(ALPHAS) * len(betas)
    for row in table.itertuples():
        run = sweep.train(problem, row.alpha, row.beta, iterations=20, variant=variant, optimizer=optimizer)
        assert row.loss_initial == pytest.approx(run.losses[0], rel=1e-10, abs=1e-12)
        if run.diverged_at is None:
            assert not row.diverged
            assert row.loss_final == pytest.approx(run.losses[-1], rel=1e-10, abs=1e-12)
        else:
            assert row.diverged and row.diverged_at == run.diverged_at and np.isnan(row.loss_final)
    if optimizer == "sgd":
        assert table.loc[table.beta == 40.0, "diverged"].all(), "the test grid must contain diverging configs"


def test_a_diverging_config_leaves_the_others_bit_identical():
    problem = sine_problem(1)
    with_bad = sweep.run_sweep(problem, [0.05, 0.1], [0.05, 0.2, 500.0], iterations=25, progress=False)
    without = sweep.run_sweep(problem, [0.05, 0.1], [0.05, 0.2], iterations=25, progress=False)
    bad = with_bad.beta == 500.0
    assert with_bad.loc[bad, "diverged"].all() and (with_bad.loc[bad, "diverged_at"] < 25).all()
    kept = with_bad.loc[~bad].reset_index(drop=True)
    assert np.array_equal(kept.loss_final.to_numpy(), without.loss_final.to_numpy())
    assert np.array_equal(kept.loss_initial.to_numpy(), without.loss_initial.to_numpy())


def test_same_seed_same_table_and_different_seed_different_table():
    problem = sine_problem(2)
    a = sweep.run_sweep(problem, ALPHAS, BETAS[:2], iterations=10, seed=3, progress=False)
    b = sweep.run_sweep(problem, ALPHAS, BETAS[:2], iterations=10, seed=3, progress=False)
    c = sweep.run_sweep(problem, ALPHAS, BETAS[:2], iterations=10, seed=4, progress=False)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not np.array_equal(a.loss_final.to_numpy(), c.loss_final.to_numpy())


def test_chunking_does_not_change_results():
    problem = sine_problem(3)
    whole = sweep.run_sweep(problem, ALPHAS, BETAS, iterations=15, chunk_size=64, progress=False)
    pieces = sweep.run_sweep(problem, ALPHAS, BETAS, iterations=15, chunk_size=2, progress=False)
    pd.testing.assert_frame_equal(whole, pieces, check_exact=False, rtol=1e-12)


def test_cache_is_reused_and_an_interrupted_sweep_resumes(tmp_path, monkeypatch):
    problem = sine_problem(4)
    kwargs = dict(iterations=10, chunk_size=3, cache_dir=tmp_path, progress=False)
    first = sweep.run_sweep(problem, ALPHAS, BETAS, **kwargs)
    chunks = sorted(tmp_path.glob("*/chunk-*.npz"))
    assert len(chunks) == 3
    chunks[1].unlink()
    calls = []
    original = sweep._run_chunk
    monkeypatch.setattr(sweep, "_run_chunk", lambda *a: calls.append(1) or original(*a))
    again = sweep.run_sweep(problem, ALPHAS, BETAS, **kwargs)
    assert len(calls) == 1, "only the missing chunk is recomputed"
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert not list(tmp_path.glob("**/*.tmp"))


def test_interrupt_during_chunk_leaves_no_partial_file(tmp_path, monkeypatch):
    problem = sine_problem(5)
    original = sweep._run_chunk
    done = []

    def interrupted(*a):
        if done:
            raise KeyboardInterrupt
        done.append(1)
        return original(*a)

    monkeypatch.setattr(sweep, "_run_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(problem, ALPHAS, BETAS, iterations=5, chunk_size=4, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*/chunk-*.npz"))) == 1
    assert not list(tmp_path.glob("**/*.tmp"))
    monkeypatch.setattr(sweep, "_run_chunk", original)
    resumed = sweep.run_sweep(problem, ALPHAS, BETAS, iterations=5, chunk_size=4, cache_dir=tmp_path, progress=False)
    fresh = sweep.run_sweep(problem, ALPHAS, BETAS, iterations=5, chunk_size=4, progress=False)
    pd.testing.assert_frame_equal(resumed, fresh, check_exact=True)


def test_a_changed_parameter_or_changed_code_misses_the_cache(tmp_path, monkeypatch):
    problem = sine_problem(6)
    sweep.run_sweep(problem, ALPHAS, BETAS, iterations=5, cache_dir=tmp_path, progress=False)
    sweep.run_sweep(problem, ALPHAS, BETAS, iterations=5, cache_dir=tmp_path, divergence_threshold=1e6, progress=False)
    sweep.run_sweep(sine_problem(7), ALPHAS, BETAS, iterations=5, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*/key.json"))) == 3
    sweep.run_sweep(problem, ALPHAS, BETAS, iterations=5, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*/key.json"))) == 3, "an identical call reuses its entry"
    monkeypatch.setattr(cache, "code_digest", lambda: "edited engine")
    sweep.run_sweep(problem, ALPHAS, BETAS, iterations=5, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*/key.json"))) == 4


def relu_twin(problem):
    """The same parameter values in a ReLU network: only the architecture differs."""
    twin = models.mlp(torch.Generator().manual_seed(0), widths=(1, 6, 1), activation="relu").double()
    twin.load_state_dict(problem.model.state_dict())
    return dataclasses.replace(problem, model=twin)


def scaled_mse(prediction, target):
    return 2.0 * ((prediction - target) ** 2).mean()


CACHE_CHANGES = {
    "architecture (tanh -> relu, same values)": relu_twin,
    "criterion source": lambda p: dataclasses.replace(p, criterion=scaled_mse),
    "cache_token": lambda p: dataclasses.replace(p, cache_token="my criterion v2"),
    "data identity": lambda p: dataclasses.replace(p, data_identity="omniglot sha256:1234"),
    "spec": lambda p: dataclasses.replace(p, spec={"seed": 6, "note": "other"}),
}


@pytest.mark.parametrize("change", list(CACHE_CHANGES))
def test_every_change_to_what_a_result_depends_on_misses_the_cache(tmp_path, change):
    problem = sine_problem(6)
    first = sweep.run_sweep(problem, ALPHAS, BETAS[:2], iterations=3, cache_dir=tmp_path, progress=False)
    changed = CACHE_CHANGES[change](problem)
    again = sweep.run_sweep(changed, ALPHAS, BETAS[:2], iterations=3, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*/key.json"))) == 2, change
    fresh = sweep.run_sweep(changed, ALPHAS, BETAS[:2], iterations=3, progress=False)
    pd.testing.assert_frame_equal(again, fresh, check_exact=True)
    if change in ("architecture (tanh -> relu, same values)", "criterion source"):
        assert not np.array_equal(first.loss_final.to_numpy(), again.loss_final.to_numpy())


@pytest.mark.parametrize("version", ["torch", "numpy", "python"])
def test_a_library_upgrade_misses_the_cache(tmp_path, monkeypatch, version):
    problem = sine_problem(6)
    sweep.run_sweep(problem, ALPHAS, BETAS[:2], iterations=3, cache_dir=tmp_path, progress=False)
    original = cache.versions
    monkeypatch.setattr(cache, "versions", lambda: {**original(), version: "99.0"})
    sweep.run_sweep(problem, ALPHAS, BETAS[:2], iterations=3, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*/key.json"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "garbage"])
def test_a_damaged_chunk_is_detected_and_recomputed_never_read(tmp_path, monkeypatch, damage):
    problem = sine_problem(4)
    kwargs = dict(iterations=10, chunk_size=3, cache_dir=tmp_path, progress=False)
    first = sweep.run_sweep(problem, ALPHAS, BETAS, **kwargs)
    chunk = sorted(tmp_path.glob("*/chunk-*.npz"))[1]
    data = bytearray(chunk.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip a byte":
        data[-200] ^= 0xFF
    else:
        data = bytearray(b"<html>not a chunk</html>")
    chunk.write_bytes(bytes(data))
    calls = []
    original = sweep._run_chunk
    monkeypatch.setattr(sweep, "_run_chunk", lambda *a: calls.append(1) or original(*a))
    with pytest.warns(RuntimeWarning, match="unusable"):
        again = sweep.run_sweep(problem, ALPHAS, BETAS, **kwargs)
    assert len(calls) == 1, "only the damaged chunk is recomputed"
    pd.testing.assert_frame_equal(first, again, check_exact=True)


def test_nan_on_first_iteration_and_all_diverging_grid():
    problem = sine_problem(8)
    table = sweep.run_sweep(problem, [0.1], [1e6, 1e7], iterations=5, divergence_threshold=1e-9, progress=False)
    assert table.diverged.all() and (table.diverged_at == 0).all() and table.loss_final.isna().all()
    assert table.unstable.all()


def test_unstable_means_diverged_or_ended_above_start():
    problem = problems.linear_regression(seed=0, n_points=20)
    table = sweep.run_sweep(problem, [1e-3, 0.2], [1e-3], iterations=50, variant="first", progress=False)
    slow = table[table.alpha == 0.2].iloc[0]
    assert not slow.diverged and slow.loss_final > slow.loss_initial and slow.unstable
    assert not table[table.alpha == 1e-3].iloc[0].unstable


def test_as_grid_layout():
    problem = sine_problem(9)
    table = sweep.run_sweep(problem, [0.01, 0.02, 0.03], [0.1, 0.2], iterations=2, progress=False)
    alphas, betas, values = stability.as_grid(table, "loss_final")
    assert values.shape == (2, 3) and list(alphas) == [0.01, 0.02, 0.03] and list(betas) == [0.1, 0.2]
    row = table[(table.alpha == 0.02) & (table.beta == 0.2)].iloc[0]
    assert values[1, 1] == row.loss_final


def test_train_monitor_records_the_task_gradient_norm():
    from mamlpaper import maml

    problem = sine_problem(10)
    loss = maml.functional_loss(problem.model)
    run = sweep.train(problem, 0.01, 0.01, iterations=3,
                      monitor=lambda p, t: maml.mean_task_gradient_norm(loss, p, t))
    tasks = problem.sample_tasks(torch.Generator().manual_seed(0)).to(dtype=torch.float64)
    params = maml.parameters_of(problem.model)
    by_hand = np.mean([
        torch.sqrt(sum((g**2).sum() for g in torch.func.grad(loss)(params, x, y).values())).item()
        for x, y in zip(tasks.x_support, tasks.y_support)
    ])
    assert run.monitored.shape == (4,) and run.monitored[0] == pytest.approx(by_hand, rel=1e-12)


def test_progress_bar_follows_tqdm_disable():
    import os
    import subprocess
    import sys

    code = ("from mamlpaper import problems, sweep; "
            "sweep.run_sweep(problems.linear_regression(), [0.01], [0.01], iterations=3, progress=True)")
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "linear_regression second/sgd" in shown.stderr
    quiet = subprocess.run([sys.executable, "-c", code], env={**env, "TQDM_DISABLE": "1"},
                           capture_output=True, text=True, check=True)
    assert quiet.stderr == ""


def test_one_config_grid_and_all_diverged_grid_draw_without_warnings():
    import warnings

    import matplotlib.pyplot as plt

    from mamlpaper import plotting

    problem = sine_problem(12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for betas, threshold in (([0.01], 1e8), ([1e3, 1e4], 1e-9)):
            table = sweep.run_sweep(problem, [0.05], betas, iterations=3, divergence_threshold=threshold,
                                    progress=False)
            alphas, grid_betas, values = stability.as_grid(table, "loss_final")
            fig, ax = plt.subplots()
            plotting.stability_map(ax, alphas, grid_betas, values)
            fig.canvas.draw()
            plt.close(fig)
    assert table.diverged.all()


def test_a_model_that_ends_constant_is_collapsed_and_a_live_one_is_not():
    live = sine_problem(10)
    dead_model = models.mlp(torch.Generator().manual_seed(0), widths=(1, 6, 1)).double()
    with torch.no_grad():
        dead_model[0].bias.fill_(-100.0)  # x ∈ [-2, 2]: every ReLU is off, the output is the last bias
    dead = dataclasses.replace(live, model=dead_model)
    for problem, collapsed in [(live, False), (dead, True)]:
        table = sweep.run_sweep(problem, [0.0, 0.05], [0.01, 40.0], iterations=5, progress=False)
        finite = table[~table.diverged]
        assert len(finite) >= 2 and (finite.collapsed == collapsed).all(), table
        assert table.loc[table.diverged, "output_spread"].isna().all()
    assert (table.output_spread.dropna() == 0).all()


def test_a_finite_loss_with_a_non_finite_gradient_is_diverged_at_once():
    """The query loss keeps its value but gets a NaN gradient (√0 = 0, its derivative inf · sign(0));
    the support loss (5 points, the query has 6) is untouched, so the inner loop stays finite."""

    def nan_gradient_on_query(prediction, target):
        value = ((prediction - target) ** 2).mean()
        if prediction.shape[0] == 6:
            value = value + torch.sqrt((prediction - prediction.detach()).abs().sum())
        return value

    base = sine_problem(8)
    six_queries = lambda g: (lambda t: t._replace(x_query=t.x_query[:, :4].repeat(1, 2, 1)[:, :6],  # noqa: E731
                                                  y_query=t.y_query[:, :4].repeat(1, 2, 1)[:, :6]))(base.sample_tasks(g))
    problem = dataclasses.replace(base, sample_tasks=six_queries, criterion=nan_gradient_on_query)
    table = sweep.run_sweep(problem, [0.0, 0.05], [0.01, 0.1], iterations=5, progress=False)
    assert np.isfinite(table.loss_initial).all(), "the loss itself stayed finite"
    assert table.diverged.all() and (table.diverged_at == 0).all()
    run = sweep.train(problem, 0.05, 0.1, iterations=5)
    assert run.diverged_at == 0 and np.isnan(run.losses).all()


@pytest.mark.parametrize("tuning", [True, False])
def test_cpu_tuning_is_a_parameter_and_leaves_the_flag_as_found(tuning):
    seen = []

    def monitor(params, tasks):
        seen.append(cpu_tuning.denormals_flushed())
        return torch.zeros(())

    before = cpu_tuning.denormals_flushed()
    sweep.train(sine_problem(9), 0.05, 0.1, iterations=2, monitor=monitor, cpu_tuning=tuning)
    assert seen == [tuning or before] * 3
    assert cpu_tuning.denormals_flushed() == before


def cross_entropy(logits, labels):
    return -torch.log_softmax(logits, dim=-1).gather(-1, labels[:, None]).mean()


def conv_problem(seed=0):
    """A tiny convolutional classifier: the kind of model the engine loops over on a CPU."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(32, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))

    def sample(generator):
        x = torch.rand(2, 2, 6, 1, 4, 4, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 3, (2, 2, 6), generator=generator)
        return Tasks(x[0], y[0], x[1], y[1])

    readout = metaproblem.Readout(
        ("mean_logit",),
        lambda problem, p, tasks, alpha, steps: {
            "mean_logit": torch.func.functional_call(problem.model, p, (tasks.x_query[0],)).mean()},
        lambda columns: np.zeros(len(columns["mean_logit"]), dtype=bool))
    return metaproblem.MetaProblem("conv", model, sample, criterion=cross_entropy, readout=readout)


@pytest.mark.parametrize("variant", ["second", "first", "simplified"])
def test_the_task_loop_equals_vmap_over_tasks(variant):
    problem = conv_problem()
    loss = maml.functional_loss(problem.model, cross_entropy)
    params, tasks = maml.parameters_of(problem.model), problem.sample_tasks(torch.Generator().manual_seed(1))
    alpha = torch.tensor(0.3, dtype=torch.float64)
    looped = maml.looped_meta_gradient(loss, variant, 2)(params, tasks, alpha)
    batched = maml.batched_meta_gradient(loss, variant, 2)(params, tasks, alpha)
    torch.testing.assert_close(looped[0], batched[0], rtol=1e-12, atol=1e-14)
    for k in params:
        torch.testing.assert_close(looped[1][k], batched[1][k], rtol=1e-10, atol=1e-13)


def test_convolutions_on_a_cpu_loop_over_configs_and_tasks_and_agree_with_vmap(monkeypatch):
    problem = conv_problem()
    _, vmappable = sweep.fastest_meta_gradient(problem.model, cross_entropy, "second", 2, "cpu")
    assert not vmappable
    _, mlp_vmappable = sweep.fastest_meta_gradient(sine_problem().model, maml.mse, "second", 2, "cpu")
    assert mlp_vmappable
    kwargs = dict(iterations=4, steps=2, optimizer="adam", progress=False)
    looped = sweep.run_sweep(problem, [0.0, 0.3], [0.01, 0.05], **kwargs)
    monkeypatch.setattr(sweep, "fastest_meta_gradient", lambda model, criterion, variant, steps, device: (
        maml.batched_meta_gradient(maml.functional_loss(model, criterion), variant, steps), True))
    vmapped = sweep.run_sweep(problem, [0.0, 0.3], [0.01, 0.05], **kwargs)
    pd.testing.assert_frame_equal(looped, vmapped, check_exact=False, rtol=1e-9)
    assert not looped.diverged.any() and looped.mean_logit.notna().all()
    assert list(looped.columns[-2:]) == ["mean_logit", "collapsed"]


def test_peak_bytes_counts_what_is_held_at_once_and_chunks_follow_the_budget():
    def held(n):
        kept = [torch.ones(1000, dtype=torch.float64) * i for i in range(n)]
        return sum(float(k[0]) for k in kept)

    assert memory.peak_bytes(lambda: held(10)) >= 10 * 8000
    assert memory.peak_bytes(lambda: [float(torch.ones(1000, dtype=torch.float64).sum()) for _ in range(10)]) < 3 * 8000
    problem = sine_problem()
    s = sweep._check_settings(2, "second", "sgd", 1, 0, "float64", "cpu", 1e8)
    per_config = memory.peak_bytes(lambda: sweep._over_configs(sweep._initial_state(problem, s)[1], True)(
        {k: v[None] for k, v in maml.parameters_of(problem.model).items()},
        next(sweep._task_stream(problem, s)), torch.zeros(1, dtype=torch.float64)))
    assert sweep._chunk_size(problem, s, budget=3.5 * per_config) in (2, 3, 4)
    assert sweep._chunk_size(problem, s, budget=1.0) == 1
    assert sweep._chunk_size(problem, s, budget=1e15) == min(sweep.MAX_CHUNK["cpu"],
                                                             int(sweep.CPU_CHUNK_BYTES // per_config))
    assert sweep._chunk_size(conv_problem(), s, budget=1.0) == sweep.LOOPED_CHUNK
    largest = memory.footprint(lambda: torch.zeros(3, 7) + 1).largest_elements
    assert largest == 21


def test_gpu_budget_counts_the_allocators_unused_cache_as_free(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 60 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 20 * 2**30)
    assert memory.default_budget(torch.device("cuda")) == int(memory.CUDA_SHARE * 50 * 2**30)


def test_chunks_keep_every_tensor_within_32_bit_indexing(monkeypatch):
    problem = sine_problem()
    s = sweep._check_settings(2, "second", "sgd", 1, 0, "float64", "cpu", 1e8)
    pair = {k: v.expand(2, *v.shape).clone() for k, v in maml.parameters_of(problem.model).items()}
    per_config = memory.footprint(lambda: sweep._over_configs(sweep._initial_state(problem, s)[1], True)(
        pair, next(sweep._task_stream(problem, s)), torch.zeros(2, dtype=torch.float64))).largest_elements // 2
    monkeypatch.setattr(memory, "INDEX_LIMIT", 5 * per_config + 1)
    assert sweep._chunk_size(problem, s, budget=1e15) == 5
    table = sweep.run_sweep(problem, ALPHAS, BETAS, iterations=3, memory_budget=2.5 * per_config, progress=False)
    pd.testing.assert_frame_equal(table, sweep.run_sweep(problem, ALPHAS, BETAS, iterations=3, progress=False),
                                  check_exact=False, rtol=1e-12)


def alone(problem, seed):
    """The reference for one seed of a seed-batched sweep: its θ0 and its stream, as a plain sweep."""
    theta0 = models.init_parameters(copy.deepcopy(problem.model), torch.Generator().manual_seed(seed))
    return dataclasses.replace(problem, model=theta0)


@pytest.mark.parametrize("make, optimizer", [(sine_problem, "sgd"), (sine_problem, "adam"), (conv_problem, "sgd")],
                         ids=["vmapped-sgd", "vmapped-adam", "looped-sgd"])
def test_a_seed_batched_sweep_equals_each_seed_run_alone(make, optimizer):
    problem = make()
    alphas, betas = (ALPHAS, [0.01, 0.1, 40.0]) if optimizer == "sgd" else (ALPHAS, [0.001, 0.01])
    if make is conv_problem:  # the loop is slow: fewer runs, same checks
        alphas, betas = [0.0, 0.3], [0.01, 40.0]
    seeds = [0, 3, 5]
    kwargs = dict(iterations=4 if make is conv_problem else 8, steps=2, optimizer=optimizer, progress=False,
                  chunk_size=4)
    batched = sweep.run_sweep(problem, alphas, betas, seeds=seeds, **kwargs)
    assert len(batched) == len(alphas) * len(betas) * len(seeds)
    assert list(batched.seed[:3]) == seeds and list(batched.columns[:3]) == ["alpha", "beta", "seed"]
    for seed in seeds:
        own = batched[batched.seed == seed].reset_index(drop=True)
        reference = sweep.run_sweep(alone(problem, seed), alphas, betas, seed=seed, **kwargs)
        pd.testing.assert_frame_equal(own, reference, check_exact=False, rtol=1e-12, atol=1e-14)
    first_losses = batched.groupby("seed").loss_initial.first()
    assert first_losses.nunique() == len(seeds), "each seed must start from its own θ0 and data"
    if optimizer == "sgd" and make is sine_problem:  # cross-entropy stays finite at β = 40
        assert batched.loc[batched.beta == 40.0, "diverged"].any()


def test_seeds_count_means_the_first_n_and_seed_s_is_the_problems_seed_s():
    problem = problems.sinusoid(seed=0, n_tasks=3)
    small = dict(iterations=2, progress=False)
    counted = sweep.run_sweep(problem, [0.01], [0.1], seeds=2, **small)
    listed = sweep.run_sweep(problem, [0.01], [0.1], seeds=[0, 1], **small)
    pd.testing.assert_frame_equal(counted, listed)
    own = sweep.run_sweep(problems.sinusoid(seed=1, n_tasks=3), [0.01], [0.1], seed=1, **small)
    pd.testing.assert_frame_equal(listed[listed.seed == 1].reset_index(drop=True), own)


def test_a_diverging_seed_leaves_the_other_seeds_bit_identical():
    base = sine_problem(4)

    def sample(generator):  # seed 1's data is 1e5 times larger: its loss starts above the threshold
        tasks = base.sample_tasks(generator)
        scale = 1e5 if generator.initial_seed() == 1 else 1.0
        return Tasks(tasks.x_support, scale * tasks.y_support, tasks.x_query, scale * tasks.y_query)

    problem = dataclasses.replace(base, sample_tasks=sample)
    kwargs = dict(iterations=15, progress=False)
    with_bad = sweep.run_sweep(problem, [0.05, 0.1], [0.05, 0.2], seeds=[0, 1, 2], **kwargs)
    without = sweep.run_sweep(problem, [0.05, 0.1], [0.05, 0.2], seeds=[0, 2], **kwargs)
    assert with_bad.loc[with_bad.seed == 1, "diverged"].all()
    assert not with_bad.loc[with_bad.seed != 1, "diverged"].any()
    kept = with_bad[with_bad.seed != 1].reset_index(drop=True)
    assert np.array_equal(kept.loss_final.to_numpy(), without.loss_final.to_numpy())
    assert np.array_equal(kept.output_spread.to_numpy(), without.output_spread.to_numpy())


def test_run_cells_equals_the_same_cells_of_a_grid():
    problem = sine_problem(3)
    kwargs = dict(iterations=6, steps=1, seeds=[1, 2], progress=False)
    grid = sweep.run_sweep(problem, ALPHAS, BETAS, **kwargs)
    cells = [(0.3, 40.0), (0.0, 0.01), (0.05, 0.1)]
    some = sweep.run_cells(problem, cells, **kwargs)
    assert list(zip(some.alpha, some.beta))[::2] == cells
    expected = pd.concat([grid[(grid.alpha == a) & (grid.beta == b)] for a, b in cells]).reset_index(drop=True)
    pd.testing.assert_frame_equal(some, expected, check_exact=False, rtol=1e-12, atol=1e-14)


def test_run_each_gives_each_run_its_own_seed_and_equals_the_same_runs_of_a_grid():
    problem = sine_problem(3)
    grid = sweep.run_sweep(problem, ALPHAS, BETAS, iterations=6, seeds=[0, 1, 2], progress=False)
    runs = [(0.3, 40.0, 2), (0.0, 0.01, 0), (0.05, 0.1, 1), (0.05, 0.1, 2)]
    some = sweep.run_each(problem, *zip(*runs), iterations=6, progress=False)
    assert list(zip(some.alpha, some.beta, some.seed)) == runs
    expected = pd.concat([grid[(grid.alpha == a) & (grid.beta == b) & (grid.seed == s)] for a, b, s in runs])
    pd.testing.assert_frame_equal(some, expected.reset_index(drop=True), check_exact=False, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("call, message", [
    (lambda p: sweep.run_each(p, [0.1, 0.2], [0.1], [0, 1], iterations=2), "must be non-empty lists of one length"),
    (lambda p: sweep.run_each(p, [0.1, 0.1], [0.1, 0.1], [0, 0], iterations=2), "must be distinct"),
    (lambda p: sweep.run_each(p, [0.1], [0.1], [-1], iterations=2), r"^seeds entry=-1 is not allowed"),
    (lambda p: sweep.run_each(p, [0.1], [0.1], "0", iterations=2), r"^seeds='0' is not allowed"),
    (lambda p: sweep.run_each(p, [0.1], [0.1], [0], iterations=2, seed=0), "takes one seed per run"),
    (lambda p: sweep.run_each(p, [0.1], [0.1], [0], iterations=2, jitter=-1e-7), r"^jitter=-1e-07 is not allowed"),
])
def test_run_each_refuses_bad_runs_before_any_work(call, message):
    with pytest.raises(ValueError, match=message):
        call(sine_problem(0))


def test_jitter_moves_theta0_by_its_relative_size_the_same_way_every_time():
    problem = sine_problem(0)
    kwargs = dict(iterations=2, progress=False)
    plain = sweep.run_each(problem, [0.05, 0.05], [0.1, 0.1], [0, 1], **kwargs)
    jittered = [sweep.run_each(problem, [0.05, 0.05], [0.1, 0.1], [0, 1], jitter=1e-7, **kwargs) for _ in range(2)]
    pd.testing.assert_frame_equal(jittered[0], jittered[1], check_exact=True)
    change = np.abs(jittered[0].loss_initial / plain.loss_initial - 1)
    assert np.all(change > 0) and np.all(change < 1e-5)
    s = sweep._check_settings(2, "second", "sgd", 1, 0, "float64", "cpu", 1e8, 1e-7)
    theta = sweep._initial_params(problem, s, 4)
    reference = sweep._initial_params(problem, dataclasses.replace(s, jitter=0.0), 4)
    ratio = torch.cat([(theta[k] / reference[k] - 1).reshape(-1) for k in theta])
    assert 0.5e-7 < float(ratio.std()) < 2e-7 and abs(float(ratio.mean())) < 5e-8


def test_the_cpu_thread_count_is_part_of_the_cache_key(tmp_path):
    problem = sine_problem(2)
    found = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            sweep.run_sweep(problem, ALPHAS, BETAS[:2], iterations=2, cache_dir=tmp_path, progress=False)
    finally:
        torch.set_num_threads(found)
    assert len(list(tmp_path.glob("*/key.json"))) == 2
