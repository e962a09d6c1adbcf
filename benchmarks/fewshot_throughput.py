"""Omniglot Conv4 second-order MAML sweep throughput, in config·iterations per second.

The paper's Fig. 4b setting: 5-way 1-shot, 15 queries, 2 inner steps, exact second order, 32
tasks per meta-batch, Conv4-64, float32, SGD. (a) how MAML is usually run: a Python loop over
configurations and tasks with `higher`, torch's own BatchNorm; (b) the package's engine with
one configuration; (c) the engine on a grid. All in this process, same device; medians of
repeated timings. Prints config·it/s, the peak tensor memory of one meta-iteration, achieved
GFLOP/s against this device's own matmul rate, and the time the paper's 972-configuration ×
100-iteration grid would take at rate (c) if no configuration diverged. The engine's rates are
those of its training loop (a sweep of 2k iterations minus one of k), which is what a
100-iteration grid spends its time in. The images are random
(throughput does not depend on them), so this runs without the dataset.
"""
from __future__ import annotations

import argparse
import copy
import math

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mamlpaper import maml, memory, metaproblem, sweep
from mamlpaper.fewshot import conv4, episodes, readout
from mamlpaper.runtime import resolve_device

from timing import median_time

PAPER_CONFIGS, PAPER_ITERATIONS = 36 * 27, 100


def matmul_rate(device, repeats: int) -> float:
    a, b = torch.randn(2048, 1024, device=device), torch.randn(1024, 1024, device=device)

    def product():
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()

    return 2 * 2048 * 1024 * 1024 / median_time(product, repeats) / 1e9


def omniglot_like_problem(tasks: int, filters: int, device) -> metaproblem.MetaProblem:
    images = torch.randint(0, 256, (100, 20, 28, 28), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8).numpy()
    sampler = episodes.EpisodeSampler(images, ways=5, shots=1, queries=15, tasks_per_batch=tasks)
    model = conv4.conv4(torch.Generator().manual_seed(0), 5, filters=filters)
    return metaproblem.MetaProblem("omniglot-like", model, sampler, criterion=conv4.cross_entropy,
                             readout=readout.ADAPTED_ACCURACY)


def with_native_batchnorm(model: nn.Module) -> nn.Module:
    """The same network with torch's ``nn.BatchNorm2d``, as people write it (right without vmap)."""
    native = copy.deepcopy(model)
    for block in (native.block1, native.block2, native.block3, native.block4):
        block.norm = nn.BatchNorm2d(block.norm.num_features, track_running_stats=False)
    native.load_state_dict(model.state_dict())
    return native


def higher_loop(problem, alphas, betas, iterations: int, device) -> None:
    """Sequential baseline: configs one by one, tasks one by one, `higher` for the 2 inner steps."""
    import higher

    for alpha, beta in zip(alphas, betas):
        net = with_native_batchnorm(problem.model).to(device)
        inner = torch.optim.SGD(net.parameters(), lr=float(alpha))
        outer = torch.optim.SGD(net.parameters(), lr=float(beta))
        generator = torch.Generator().manual_seed(0)
        for _ in range(iterations):
            tasks = problem.sample_tasks(generator).to(device=device)
            outer.zero_grad()
            for xs, ys, xq, yq in zip(*tasks):
                with higher.innerloop_ctx(net, inner, copy_initial_weights=False) as (fnet, diffopt):
                    for _ in range(2):
                        diffopt.step(conv4.cross_entropy(fnet(xs), ys))
                    (conv4.cross_entropy(fnet(xq), yq) / tasks.n_tasks).backward()
            outer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()


def one_meta_iteration(problem, device):
    """The engine's meta-gradient of one configuration on one meta-batch, as a thunk."""
    fn, _ = sweep.fastest_meta_gradient(problem.model, problem.criterion, "second", 2, device)
    params = {k: v.to(device) for k, v in maml.parameters_of(problem.model).items()}
    tasks = problem.sample_tasks(torch.Generator().manual_seed(0)).to(device=device)
    return lambda: fn(params, tasks, torch.tensor(0.1, device=device))


def counted_flops(problem, device) -> int:
    """FLOPs of one configuration·iteration, counted on the loop over tasks: torch's FlopCounter
    charges the backward of a grouped convolution (what vmap makes of per-task weights) as if it
    were ungrouped, 2.5× too much at 4 tasks and 10× at 32."""
    loss = maml.functional_loss(problem.model, problem.criterion)
    params = {k: v.to(device) for k, v in maml.parameters_of(problem.model).items()}
    tasks = problem.sample_tasks(torch.Generator().manual_seed(0)).to(device=device)
    with FlopCounterMode(display=False) as counter:
        maml.looped_meta_gradient(loss, "second", 2)(params, tasks, torch.tensor(0.1, device=device))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2, help="iterations per timed sweep")
    parser.add_argument("--grid", type=int, default=4, help="configurations in (c)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="one repeat, 4 tasks, Conv4-8 (smoke)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    repeats, tasks, filters = (1, 4, 8) if args.quick else (args.repeats, 32, 64)
    problem = omniglot_like_problem(tasks, filters, device)
    alphas, betas = np.geomspace(1e-2, 1e-1, args.grid), np.geomspace(1e-2, 1e-1, args.grid)
    run = dict(iterations=args.iterations, steps=2, dtype="float32", device=device, progress=False)

    t_a = median_time(lambda: higher_loop(problem, alphas[:1], betas[:1], args.iterations, device), repeats)
    rate_a = args.iterations / t_a
    chunk = sweep.default_chunk_size(problem, steps=2, dtype="float32", device=device)

    def marginal_rate(configs: int) -> float:
        """config·iterations/s of a sweep's training loop: the time of a sweep with twice the
        iterations minus that of one with the given number, so the per-sweep costs (checks, the
        readout, the first evaluation) that a 100-iteration sweep amortises do not count."""
        times = [median_time(lambda k=k: sweep.run_sweep(problem, alphas[:configs], betas[:1], chunk_size=chunk,
                                                         **{**run, "iterations": k}), repeats)
                 for k in (args.iterations, 2 * args.iterations)]
        if times[1] <= times[0]:
            print(f"{configs} configuration(s): the longer sweep was not slower ({times[1]:.2f} s vs {times[0]:.2f} s): "
                  "noise exceeds the loop's time; rerun on an idle machine with more --repeats or --iterations")
            return math.nan
        return configs * args.iterations / (times[1] - times[0])

    rate_b = marginal_rate(1)
    rate_c = marginal_rate(args.grid)
    routes = []
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        routes = [("(c') as (c), cudnn.benchmark on", marginal_rate(args.grid))]
        torch.backends.cudnn.benchmark = False
    step = one_meta_iteration(problem, device)
    flops = counted_flops(problem, device)
    peak_engine = memory.peak_bytes(step)
    peak_higher = memory.peak_bytes(lambda: higher_loop(problem, alphas[:1], betas[:1], 1, device))
    rate = matmul_rate(device, repeats)
    print(f"device: {device} ({torch.get_num_threads()} torch threads); matmul {rate:.1f} GFLOP/s; "
          f"one config·iteration = {flops / 1e9:.1f} GFLOP (counted), {tasks} tasks, Conv4-{filters}")
    print(f"{'route':<44}{'config·it/s':>12}{'GFLOP/s':>10}{'of matmul':>11}{'peak MiB':>10}")
    for name, r, peak in [("(a) higher, loop over configs and tasks", rate_a, peak_higher),
                          ("(b) mamlpaper engine, 1 config", rate_b, peak_engine),
                          (f"(c) mamlpaper engine, {args.grid}-config grid", rate_c, peak_engine),
                          *((name, r, peak_engine) for name, r in routes)]:
        print(f"{name:<44}{r:>12.3f}{r * flops / 1e9:>10.2f}{r * flops / 1e9 / rate:>11.1%}{peak / 2**20:>10.0f}")
    print(f"(c) ran in chunks of {chunk} configurations (memory budget and 32-bit indexing)")
    print(f"ratios: b/a = {rate_b / rate_a:.2f}x, c/a = {rate_c / rate_a:.2f}x (target on a CPU: >= 1)")
    best = np.nanmax([rate_c] + [r for _, r in routes])
    hours = PAPER_CONFIGS * PAPER_ITERATIONS / best / 3600
    print(f"paper Omniglot grid ({PAPER_CONFIGS} configs x {PAPER_ITERATIONS} iterations) at the best grid rate, "
          f"none diverging: {hours:.1f} h on this device")


if __name__ == "__main__":
    main()
