"""The sinusoid paper grid (Fig. 4a: 36 α × 27 β, float32) with its chunks on 1 and 2 worker processes.

Every sweep runs with one CPU thread per process (the thread count is part of a chunk's cache
key, and 2 workers × 2 threads would only fight over 2 cores), so the comparison is of processes:
- in-process, 1 thread, and a process pool of 1 worker: the same compute, here and on a worker;
- a process pool of 2 workers: the scaling on this machine (ideal 2× on 2 free cores);
- in-process with 2 threads: what a user gets without an executor, for reference;
- with --dask, a Dask LocalCluster of 2 workers.
The time a chunk spends outside compute is measured directly, per chunk, as what an executor adds
to it: packing what the chunk needs (its problem, with model and task sampler, and its runs) with
cloudpickle, unpacking it, and a round trip of those bytes through the pool (submit to result).
Every sweep is run once untimed first (imports, workers starting); medians of ``--repeats`` runs; iterations are cut
from the paper's 500 to ``--iterations`` (the per-iteration cost is constant, so the ratios hold).
Writes ``benchmarks/results/distributed_scaling.json``, with wall-time estimates of the paper
profile's grids at 10 seeds from the measured rates: the sinusoid grid on this CPU, the Omniglot
grid on k GPUs from the H100 rate in ``benchmarks/device-results`` (k workers, one GPU each,
assumed to scale as the chunks are independent: an estimate, not a measurement).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
from concurrent.futures import ProcessPoolExecutor

import cloudpickle
import torch

from mamlpaper import problems, sweep
from mamlpaper.atomic import write_bytes

from timing import median_time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "distributed_scaling.json")
H100 = os.path.join("device-results", "h100-2026-11-28", "throughput.txt")
"""Where the Omniglot rate on one H100 was measured: the row (c') of its table, config·it/s."""
PAPER_RUNS = {"sinusoid": 972 * 500 * 10, "omniglot": 972 * 100 * 10}
"""config·iterations of the paper profile's α×β grids at 10 seeds: 972 configurations, 500 (sinusoid)
or 100 (Omniglot) iterations."""


def h100_rate() -> float:
    with open(os.path.join(HERE, H100)) as table:
        row = next(line for line in table if line.startswith("(c')"))
    return float(re.findall(r"\d+\.\d+", row)[0])


def outside_compute(problem, alphas, betas, executor, repeats: int) -> dict[str, float]:
    """Median seconds per chunk of what shipping it costs: pack, unpack, and the bytes' round trip."""
    payload = (problem, alphas, betas)
    packed = cloudpickle.dumps(payload)
    return {"pack_s": median_time(lambda: cloudpickle.dumps(payload), repeats),
            "unpack_s": median_time(lambda: cloudpickle.loads(packed), repeats),
            "round_trip_s": median_time(lambda: executor.submit(len, packed).result(), repeats),
            "bytes": len(packed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dask", action="store_true", help="also time a Dask LocalCluster of 2 workers")
    parser.add_argument("--quick", action="store_true", help="a 6 × 6 grid, 2 iterations, 1 repeat (smoke)")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.repeats = 2, 1
    problem = problems.sinusoid(seed=0)
    alphas, betas = problems.paper_grid(1e-4, 9e-1), problems.paper_grid(1e-2, 9.0)
    if args.quick:
        alphas, betas = alphas[::6], betas[::5]
    run = dict(iterations=args.iterations, dtype="float32", progress=False)
    torch.set_num_threads(1)
    chunk = sweep.default_chunk_size(problem, dtype="float32")
    chunks = -(-len(alphas) * len(betas) // chunk)

    def sweep_on(executor=None):
        return lambda: sweep.run_sweep(problem, alphas, betas, chunk_size=chunk, executor=executor, **run)

    seconds = {}
    seconds["in-process, 1 thread"] = median_time(sweep_on(), args.repeats)
    spawn = multiprocessing.get_context("spawn")
    for workers in (1, 2):
        with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            if workers == 1:
                shipping = outside_compute(problem, alphas[:chunk], betas[:chunk], pool, 20)
            seconds[f"process pool, {workers} worker{'s' * (workers > 1)}"] = median_time(sweep_on(pool), args.repeats)
    if args.dask:
        import distributed

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            seconds["Dask LocalCluster, 2 workers"] = median_time(sweep_on(client.get_executor()), args.repeats)
    torch.set_num_threads(2)
    seconds["in-process, 2 threads"] = median_time(sweep_on(), args.repeats)

    alone, one, two = (seconds[k] for k in ("in-process, 1 thread", "process pool, 1 worker", "process pool, 2 workers"))
    configs = len(alphas) * len(betas)
    result = {
        "grid": {"alphas": len(alphas), "betas": len(betas), "configs": configs, "iterations": args.iterations,
                 "chunk_size": chunk, "chunks": chunks, "dtype": "float32"},
        "repeats": args.repeats, "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__},
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "cfg_it_per_s": {k: round(configs * args.iterations / v, 1) for k, v in seconds.items()},
        "speedup_2_workers_over_1": round(one / two, 3),
        "speedup_2_workers_over_in_process_2_threads": round(seconds["in-process, 2 threads"] / two, 3),
        "outside_compute_per_chunk": {k: round(v, 5) if k != "bytes" else v for k, v in shipping.items()},
        "outside_compute_per_chunk_s": round(shipping["pack_s"] + shipping["unpack_s"] + shipping["round_trip_s"], 4),
        "outside_compute_share": round((shipping["pack_s"] + shipping["unpack_s"] + shipping["round_trip_s"])
                                       * chunks / one, 4),
        "in_process_over_1_worker": round(alone / one, 3),
        "estimates_hours": {
            "sinusoid paper grid, 10 seeds, this CPU in-process": round(
                PAPER_RUNS["sinusoid"] * seconds["in-process, 2 threads"] / (configs * args.iterations) / 3600, 1),
            "sinusoid paper grid, 10 seeds, this CPU 2 workers": round(
                PAPER_RUNS["sinusoid"] * two / (configs * args.iterations) / 3600, 1),
            **{f"omniglot paper grid, 10 seeds, {k} H100": round(PAPER_RUNS["omniglot"] / (k * h100_rate()) / 3600, 1)
               for k in (1, 4, 8)},
        },
        "h100_rate_cfg_it_per_s": h100_rate(),
        "h100_rate_source": f"benchmarks/{H100}",
    }
    if not args.quick:
        write_bytes(RESULTS, (json.dumps(result, indent=1) + "\n").encode())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
