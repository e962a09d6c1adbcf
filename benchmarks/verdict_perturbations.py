"""Does the sinusoid verdict survive what differs between two machines?

Reruns notebook 03's SGD boundary search — its settings read from ``figures/03_sinusoid.json``,
so run this after the notebook (``make figures``) — as given and under each of
``boundary.PERTURBATIONS``: float64 instead of the notebook's float32, one CPU thread instead of
torch's default, θ0 jittered by 1e-7 relative. Prints and writes
``benchmarks/results/verdict_perturbations.json``: per search, how many of the runs it shares with
the original (same α, β, seed) changed outcome, whether each α's β_50 stays inside the original's
95 % interval, and R with its interval and verdict. Notebook 03 shows that file when its settings
match the notebook's. About four searches of wall time (float64 is the slowest); the "as given"
search is read from the sweep cache when the notebook ran on this machine with the same threads.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import pandas as pd
import torch

from mamlpaper import boundary, problems, runtime

SETTINGS = "figures/03_sinusoid.json"
RESULT = "benchmarks/results/verdict_perturbations.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default="build/cache", help="the sweep cache (default: the notebooks')")
    args = parser.parse_args()
    record = json.loads(runtime.resolve_path(SETTINGS).read_text(encoding="utf-8"))
    search = record["search"]
    spec = search["problem"]
    problem = problems.sinusoid(spec["seed"], n_tasks=spec["n_tasks"], n_support=spec["n_support"],
                                n_query=spec["n_query"], activation=spec["activation"])
    if problem.spec != spec:
        raise SystemExit(f"{SETTINGS} names a problem this version does not build: {spec}")
    settings = boundary.for_optimizer(search, "sgd")
    options = {k: v for k, v in settings.items() if k not in ("alphas", "seeds", "problem")}
    start = time.perf_counter()
    results = boundary.perturbed(problem, search["alphas"], search["seeds"],
                                 cache_dir=runtime.resolve_path(args.cache_dir), **options)
    seconds = time.perf_counter() - start
    table = boundary.perturbation_table(results)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.round(3))
    document = runtime.plain({
        "settings": settings, "table": table.reset_index().to_dict(orient="list"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
                   f"{torch.__version__}",
        "date": time.strftime("%Y-%m-%d"), "seconds": round(seconds, 1),
    })
    path = runtime.write_results("verdict_perturbations", document, runtime.resolve_path(RESULT).parent)
    print(f"{seconds:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
