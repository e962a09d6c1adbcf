"""Sinusoid second-order MAML sweep throughput, in config·iterations per second.

(a) the way it is usually done: a Python loop over configurations and tasks with `higher`;
(b) our engine with one configuration; (c) our engine on a 256-configuration grid.
All three run in this process on this machine; medians of repeated timings; the ratios and an
achieved-GFLOP/s estimate against this machine's own sgemm rate are printed.
With --paper-grid, also times the paper-profile Fig. 4a grid (972 configs × 500 iterations)
and reports its peak memory.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from mamlpaper import maml, mlp_adaptation, problems, sweep

from timing import median_time


def sgemm_rate(repeats: int) -> float:
    a, b = torch.randn(2048, 1024), torch.randn(1024, 1024)
    return 2 * 2048 * 1024 * 1024 / median_time(lambda: a @ b, repeats) / 1e9


def flops_per_config_iteration(problem, alpha: float) -> float:
    """Floating-point operations of one meta-gradient of one configuration, as the engine computes it
    (the closed-form MLP step), counted by torch."""
    params = {k: v.float() for k, v in maml.parameters_of(problem.model).items()}
    tasks = problem.sample_tasks(torch.Generator().manual_seed(0)).to(dtype=torch.float32)
    with FlopCounterMode(display=False) as counter:
        mlp_adaptation.second_order_meta_gradient(problem.model)(params, tasks, torch.tensor(alpha))
    return counter.get_total_flops()


def higher_loop(problem, alphas, betas, iterations: int) -> None:
    """Sequential baseline: configs one by one, tasks one by one, `higher` for the inner loop."""
    import higher

    for alpha, beta in zip(alphas, betas):
        net = problems.sinusoid(seed=0).model.float()
        net.load_state_dict(problem.model.state_dict())
        inner = torch.optim.SGD(net.parameters(), lr=float(alpha))
        outer = torch.optim.SGD(net.parameters(), lr=float(beta))
        generator = torch.Generator().manual_seed(0)
        for _ in range(iterations):
            tasks = problem.sample_tasks(generator).to(dtype=torch.float32)
            outer.zero_grad()
            for xs, ys, xq, yq in zip(*tasks):
                with higher.innerloop_ctx(net, inner, copy_initial_weights=False) as (fnet, diffopt):
                    diffopt.step(((fnet(xs) - ys) ** 2).mean())
                    (((fnet(xq) - yq) ** 2).mean() / tasks.n_tasks).backward()
            outer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5, help="iterations per timed sweep")
    parser.add_argument("--paper-grid", action="store_true", help="also time the 972-config × 500-iteration grid")
    parser.add_argument("--quick", action="store_true", help="one repeat, tiny sizes (smoke)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    repeats, iterations = (1, 2) if args.quick else (args.repeats, args.iterations)
    problem = problems.sinusoid(seed=0)
    small_alphas = np.geomspace(1e-4, 1e-2, 16)
    small_betas = np.geomspace(1e-3, 1e-2, 16)
    n_grid = 16 if args.quick else 256
    grid_alphas, grid_betas = (small_alphas[:4], small_betas[:4]) if args.quick else (small_alphas, small_betas)
    run = dict(iterations=iterations, dtype="float32", progress=False)

    a_configs, a_iterations = 2, 1 if args.quick else 2
    t_a = median_time(lambda: higher_loop(problem, small_alphas[:a_configs], small_betas[:a_configs], a_iterations), repeats)
    rate_a = a_configs * a_iterations / t_a
    t_b = median_time(lambda: sweep.run_sweep(problem, [1e-3], [1e-3], **run), repeats)
    rate_b = (iterations + 1) / t_b
    t_c = median_time(lambda: sweep.run_sweep(problem, grid_alphas, grid_betas, **run), repeats)
    rate_c = n_grid * (iterations + 1) / t_c
    flops = flops_per_config_iteration(problem, 1e-3)
    peak = sgemm_rate(repeats)
    print(f"machine: {torch.get_num_threads()} torch threads; sgemm {peak:.1f} GFLOP/s; "
          f"one sinusoid config·iteration = {flops / 1e6:.1f} MFLOP (counted)")
    print(f"{'route':<44}{'config·it/s':>12}{'GFLOP/s':>10}{'of sgemm':>10}")
    for name, rate in [("(a) higher, loop over configs and tasks", rate_a),
                       ("(b) mamlpaper engine, 1 config", rate_b),
                       (f"(c) mamlpaper engine, {n_grid}-config grid", rate_c)]:
        print(f"{name:<44}{rate:>12.1f}{rate * flops / 1e9:>10.2f}{rate * flops / 1e9 / peak:>10.1%}")
    print(f"ratios: c/a = {rate_c / rate_a:.0f}x (target >= 100x), b/a = {rate_b / rate_a:.1f}x")
    if args.paper_grid:
        alphas, betas = problems.paper_grid(1e-4, 9e-1), problems.paper_grid(1e-2, 9.0)
        start = time.perf_counter()
        table = sweep.run_sweep(problem, alphas, betas, iterations=500, dtype="float32", progress=not args.quiet)
        elapsed = time.perf_counter() - start
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"paper grid {len(alphas)}x{len(betas)} = {len(table)} configs x 500 iterations: {elapsed:.0f} s "
              f"(target <= 300 s), diverged {table.diverged.mean():.0%}, peak RSS {peak_rss:.2f} GiB (target <= 4 GiB)")


if __name__ == "__main__":
    main()
