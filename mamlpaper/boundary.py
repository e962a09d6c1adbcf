"""Where a run's outcome flips: per (α, seed), a bracket on β narrowed round by round.

A grid reads the stability boundary at its own resolution (a factor 2–2.5 in the default
profiles) and spends most of its runs far from it. Here every (α, seed) keeps a bracket
[β_lo, β_hi] — β_hi the smallest β whose run failed, β_lo the largest β below it whose run did
not, under a reading of :data:`stability.READINGS` — and each round runs one β per unfinished
bracket: first ``start``; then steps of ``factor`` up (after a run that held) or down (after one
that failed) until the bracket closes or the range [low, high] ends; then the geometric
midpoint, until β_hi/β_lo <= ``resolution``. Each round is one batched call of the engine
(:func:`sweep.run_each`) over every unfinished (α, seed), cached like any sweep, so a rerun of
the search replays every round from the cache.

A bracket never contradicts a monotone boundary: a β is only tried inside it. Another seed,
thread count or round-off may still put the flip elsewhere — runs near the boundary are
chaotic — so a search's intervals are data for :func:`stability.beta_50` and
:func:`stability.claim_verdict`, not a boundary on their own. A range end that no run crossed is
reported as censored ("above": no failure up to ``high``, "below": a failure down to ``low``),
never as a number.
"""
from __future__ import annotations

import json
import math
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import _checks, stability, sweep
from .metaproblem import MetaProblem
from .runtime import resolve_path

INTERVAL_COLUMNS = ("alpha", "seed", "beta_lo", "beta_hi", "censored", "resolved", "runs", "gradients")
"""Per (α, seed): the bracket (NaN where a side was never seen), :data:`stability.CENSORED`, whether
β_hi/β_lo reached the resolution, the runs it took and the meta-gradients those runs computed."""


class Boundary(NamedTuple):
    """A search's result: ``intervals`` (columns :data:`INTERVAL_COLUMNS`, α-major, seed inner) and
    ``runs``, every run's row of the engine's table with its ``round`` (from 1)."""

    intervals: pd.DataFrame
    runs: pd.DataFrame
    reading: str


def gradients_computed(table: pd.DataFrame) -> np.ndarray:
    """Per run, the meta-gradients it computed: iterations + 1, or up to the one that diverged."""
    iterations = table["iterations"].to_numpy(np.int64)
    at = table["diverged_at"].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(at), iterations + 1, np.nan_to_num(at) + 1).astype(np.int64)


def search(problem: MetaProblem, alphas, seeds, *, iterations: int, low: float, high: float,
           start: float | None = None, factor: float = 4.0, resolution: float = 1.1, max_rounds: int = 8,
           reading: str = "finite", progress: bool = True, **engine) -> Boundary:
    """The stability boundary in β for every α and seed, by bracketing and bisection in log β.

    ``seeds``: a count n (0…n-1) or a list; each seed its own θ0 and task stream at every α, as in
    :func:`sweep.run_sweep`. ``low``, ``high``: the β range searched; ``start`` the first β (default
    their geometric mean). ``factor`` > 1: the step while no bracket is closed. ``resolution`` > 1:
    a bracket is done when β_hi/β_lo is at most this. ``max_rounds``: at most this many runs per
    (α, seed); an unfinished bracket is returned as it stands (``resolved`` False). ``engine``: the
    keyword arguments of :func:`sweep.run_each` (variant, optimizer, steps, dtype, device, jitter,
    cache_dir, executor: each round's runs on a process pool or a Dask cluster, ...). Every argument
    is checked, and the problem against its model, before any run.
    """
    alphas = _checks.grid("alphas", alphas, allow_zero=True)
    seeds = _checks.seeds(seeds)
    reading = _checks.choice("reading", reading, stability.READINGS)
    low, high = _checks.rate("low", low), _checks.rate("high", high)
    if not low < high:
        raise _checks.refuse("low", low, f"low must be below high={high!r}")
    start = math.sqrt(low * high) if start is None else _checks.rate("start", start)
    if not low <= start <= high:
        raise _checks.refuse("start", start, f"start must lie in [low, high] = [{low:g}, {high:g}]")
    factor = _checks.real("factor", factor, above=1.0)
    resolution = _checks.real("resolution", resolution, above=1.0)
    max_rounds = _checks.integer("max_rounds", max_rounds, minimum=1)
    progress = _checks.flag("progress", progress)
    for name in ("seed", "seeds", "progress"):
        if name in engine:
            raise _checks.refuse(name, engine[name], f"{name} is not an engine option of search; pass seeds as "
                                 "the third argument and progress as its own keyword")

    alpha = np.repeat(alphas, len(seeds))
    seed = np.tile(np.array(seeds, dtype=np.int64), len(alphas))
    lo, hi = np.full(alpha.size, np.nan), np.full(alpha.size, np.nan)
    done = np.zeros(alpha.size, dtype=bool)
    runs, gradients = np.zeros(alpha.size, dtype=np.int64), np.zeros(alpha.size, dtype=np.int64)
    tables = []
    with tqdm(total=max_rounds, desc=f"{problem.name} boundary search", unit="round", leave=False,
              disable=not progress) as bar:
        for round_ in range(1, max_rounds + 1):
            todo = np.flatnonzero(~done)
            if todo.size == 0:
                break
            beta = np.where(np.isnan(lo[todo]) & np.isnan(hi[todo]), start,
                            np.where(np.isnan(hi[todo]), np.minimum(lo[todo] * factor, high),
                                     np.where(np.isnan(lo[todo]), np.maximum(hi[todo] / factor, low),
                                              np.sqrt(lo[todo] * hi[todo]))))
            table = sweep.run_each(problem, alpha[todo], beta, seed[todo], iterations=iterations,
                                   progress=progress, **engine)
            bad = stability.failed(table, reading)
            hi[todo] = np.where(bad, beta, hi[todo])
            lo[todo] = np.where(bad, lo[todo], beta)
            runs[todo] += 1
            gradients[todo] += gradients_computed(table)
            tables.append(table.assign(round=round_))
            closed = ~np.isnan(lo) & ~np.isnan(hi) & (hi <= lo * resolution)
            done |= closed | (np.isnan(hi) & (lo >= high)) | (np.isnan(lo) & (hi <= low))
            bar.update(1)
            bar.set_postfix(open=int((~done).sum()))
    censored = np.where(np.isnan(hi), "above", np.where(np.isnan(lo), "below", ""))
    intervals = pd.DataFrame({
        "alpha": alpha, "seed": seed, "beta_lo": lo, "beta_hi": hi, "censored": censored,
        "resolved": ~np.isnan(lo) & ~np.isnan(hi) & (hi <= lo * resolution),
        "runs": runs, "gradients": gradients,
    })
    return Boundary(intervals, pd.concat(tables, ignore_index=True), reading)


class Claim(NamedTuple):
    """One optimizer's boundary search and what it says about the paper's claim."""

    boundary: Boundary
    beta_50: pd.DataFrame
    """:func:`stability.beta_50` of the search."""
    verdict: dict
    """:func:`stability.claim_verdict` of the search."""


SETTINGS = ("alphas", "seeds", "iterations", "low", "high", "start", "factor", "resolution", "max_rounds", "reading",
            "dtype")
"""The keys of a search's settings as notebooks write them to their results file (``start`` a number, or
one per optimizer), so that a benchmark or another machine reruns exactly that search."""


def for_optimizer(settings: dict, optimizer: str) -> dict:
    """One optimizer's search from notebook ``settings``: its own ``start`` and ``optimizer`` named, the
    form :func:`search` takes (after alphas and seeds) and a benchmark compares against its record."""
    start = settings["start"][optimizer] if isinstance(settings["start"], dict) else settings["start"]
    return {**settings, "start": start, "optimizer": optimizer}


def claims(problem: MetaProblem, settings: dict, optimizers: Sequence[str] = ("sgd", "adam"),
           **engine) -> dict[str, Claim]:
    """:func:`search` with ``settings`` (keys :data:`SETTINGS`) once per meta-optimizer, with β_50 and
    the claim's verdict of each. ``engine``: further keyword arguments of :func:`search` (steps,
    device, cache_dir, progress, ...)."""
    if not isinstance(settings, dict) or set(settings) != set(SETTINGS):
        raise _checks.refuse("settings", settings, f"settings must be a dict with exactly the keys {', '.join(SETTINGS)}",
                             shown=type(settings).__name__ if not isinstance(settings, dict) else
                             f"dict with keys {', '.join(sorted(settings))}")
    if isinstance(optimizers, str) or not isinstance(optimizers, Sequence) or not optimizers:
        raise _checks.refuse("optimizers", optimizers, "optimizers must be a non-empty list of meta-optimizer names")
    found = {}
    for optimizer in optimizers:
        options = {k: v for k, v in for_optimizer(settings, optimizer).items() if k not in ("alphas", "seeds")}
        result = search(problem, settings["alphas"], settings["seeds"], **options, **engine)
        found[optimizer] = Claim(result, stability.beta_50(result.intervals), stability.claim_verdict(result.intervals))
    return found


def describe(found: dict[str, Claim]) -> str:
    """The verdicts of :func:`claims`, one line per optimizer (:func:`stability.describe_verdict`)."""
    return "\n".join(f"{optimizer.upper()}: {stability.describe_verdict(claim.verdict)}"
                     for optimizer, claim in found.items())


def beta_50_table(found: dict[str, Claim]) -> pd.DataFrame:
    """The β_50 tables of :func:`claims` side by side: one row per α, a column group per optimizer."""
    return pd.concat({optimizer: claim.beta_50.set_index("alpha") for optimizer, claim in found.items()}, axis=1)


def report(found: dict[str, Claim]) -> dict:
    """What a results file keeps of :func:`claims`: per optimizer the verdict, the β_50 table, and the
    runs and meta-gradients the search spent (values not finite, i.e. censored, are left to the writer)."""
    return {optimizer: {"verdict": claim.verdict, "beta_50": claim.beta_50.to_dict(orient="list"),
                        "runs": int(claim.boundary.intervals["runs"].sum()),
                        "gradients": int(claim.boundary.intervals["gradients"].sum())}
            for optimizer, claim in found.items()}


PERTURBATIONS = {
    "float64": {"dtype": "float64"},
    "1 thread": {"threads": 1},
    "θ0 jittered by 1e-7": {"jitter": 1e-7},
}
"""What differs between two machines that run the same code, each applied alone: the precision
(round-off of another size), the thread count (another order of the sums in a reduction), and θ0
moved by about one float32 unit in the last place (any difference in the first step)."""


def perturbed(problem: MetaProblem, alphas, seeds, *, perturbations: dict | None = None,
              **search_options) -> dict[str, Boundary]:
    """The same :func:`search` as given and under each perturbation ("as given" first).

    ``perturbations``: name -> engine options to override, plus ``threads`` (torch's CPU threads for
    that search, put back afterwards); default :data:`PERTURBATIONS`. The thread count enters the
    sweep cache's key, so a cached search is never served to another thread count.
    """
    perturbations = PERTURBATIONS if perturbations is None else perturbations
    if not isinstance(perturbations, dict) or not perturbations or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in perturbations.items()):
        raise _checks.refuse("perturbations", perturbations, "perturbations must be a non-empty dict of "
                             "name -> dict of engine options")
    results = {"as given": search(problem, alphas, seeds, **search_options)}
    for name, change in perturbations.items():
        options = {**search_options, **{k: v for k, v in change.items() if k != "threads"}}
        found = torch.get_num_threads()
        if "threads" in change:
            torch.set_num_threads(_checks.integer("threads", change["threads"], minimum=1))
        try:
            results[name] = search(problem, alphas, seeds, **options)
        finally:
            torch.set_num_threads(found)
    return results


def perturbation_table(results: dict[str, Boundary], *, threshold: float = 1.5, draws: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """One row per search of :func:`perturbed`: the runs it shares with "as given" (same α, β, seed)
    and how many of them changed outcome; per α, whether β_50 stays inside the interval of "as
    given"; the claim ratio R, its interval and the verdict (:func:`stability.claim_verdict`)."""
    if not isinstance(results, dict) or "as given" not in results or not all(
            isinstance(b, Boundary) for b in results.values()):
        raise _checks.refuse("results", results, "results must be the dict perturbed() returns",
                             shown=type(results).__name__)
    base = results["as given"]
    key = ["alpha", "beta", "seed"]
    base_runs = base.runs[key].assign(failed=stability.failed(base.runs, base.reading))
    base_50 = stability.beta_50(base.intervals, draws=draws, seed=seed).set_index("alpha")
    rows = []
    for name, found in results.items():
        runs = found.runs[key].assign(failed=stability.failed(found.runs, found.reading))
        shared = runs.merge(base_runs, on=key, suffixes=("", "_base"))
        at = stability.beta_50(found.intervals, draws=draws, seed=seed).set_index("alpha")
        inside = (at["beta_50"] >= base_50["low"]) & (at["beta_50"] <= base_50["high"])
        verdict = stability.claim_verdict(found.intervals, threshold=threshold, draws=draws, seed=seed)
        rows.append({"search": name, "runs": len(runs), "shared runs": len(shared),
                     "changed outcome": int((shared["failed"] != shared["failed_base"]).sum()),
                     "β_50 inside the base interval": f"{int(inside.sum())} of {len(inside)} α",
                     "R": verdict["ratio"], "R low": verdict["low"], "R high": verdict["high"],
                     "verdict": verdict["verdict"]})
    return pd.DataFrame(rows).set_index("search")


def search_cost(found: dict[str, Claim], tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """What a search cost against the grid sweep it replaces, per (α, seed) over the searched α, one
    column per optimizer: runs, meta-gradients computed (a diverging run stops early) and resolution
    (the median β_hi/β_lo of the search, the median step between neighbouring β of the grid), and how
    many brackets closed: the case for searching the boundary instead of sweeping a finer grid."""
    if not isinstance(found, dict) or not found or not all(isinstance(c, Claim) for c in found.values()):
        raise _checks.refuse("found", found, "found must be the dict claims() returns", shown=type(found).__name__)
    if not isinstance(tables, dict) or not set(found) <= set(tables):
        raise _checks.refuse("tables", tables, f"tables must hold a run_sweep table for each of {', '.join(found)}",
                             shown=type(tables).__name__)
    columns = {}
    for optimizer, claim in found.items():
        intervals, table = claim.boundary.intervals, tables[optimizer]
        if not isinstance(table, pd.DataFrame) or not {"alpha", "beta", "seed", "diverged"} <= set(table.columns):
            raise _checks.refuse("tables", tables, f"tables[{optimizer!r}] must be a run_sweep table", shown="dict")
        betas = np.sort(table["beta"].unique())
        grid = table[table["alpha"].isin(intervals["alpha"].unique())]
        columns[optimizer] = {
            "search: runs": intervals.runs.mean(), "search: meta-gradients": intervals.gradients.mean(),
            "search: resolution": (intervals.beta_hi / intervals.beta_lo).median(),
            "search: brackets resolved": f"{int(intervals.resolved.sum())} of {len(intervals)}",
            "grid: runs": len(betas),
            "grid: meta-gradients": gradients_computed(grid).sum() / grid.groupby(["alpha", "seed"]).ngroups,
            "grid: resolution": float(np.median(betas[1:] / betas[:-1])),
        }
    return pd.DataFrame(columns)


def recorded_perturbations(path, settings: dict) -> tuple[pd.DataFrame | None, str]:
    """The table of :func:`perturbation_table` that ``benchmarks/verdict_perturbations.py`` recorded at
    ``path``, if it checked the search ``settings`` describe (:func:`for_optimizer` with a ``problem``
    spec): the check costs about four searches, so a notebook shows the record instead of rerunning it,
    and only where the record is of its own search. Returns (the table or None, a line saying which)."""
    if not isinstance(settings, dict):
        raise _checks.refuse("settings", settings, "settings must be a dict: for_optimizer(...) with 'problem'",
                             shown=type(settings).__name__)
    path = resolve_path(path)
    if not path.is_file():
        return None, f"{path} does not exist; run benchmarks/verdict_perturbations.py after this notebook"
    record = json.loads(path.read_text(encoding="utf-8"))
    differs = sorted(k for k in set(settings) | set(record["settings"]) if settings.get(k) != record["settings"].get(k))
    if differs:
        return None, (f"{path.name} was made with other settings ({', '.join(differs)}); rerun "
                      "benchmarks/verdict_perturbations.py after this notebook to check these")
    return pd.DataFrame(record["table"]).set_index("search"), f"made on {record['machine']}, {record['date']}"
