"""Reading stability from several seeds: a map cell is a probability, β_c a per-seed reading.

One run per cell decides the boundary cells by round-off and by individual meta-batches, so
the paper's headline ratio max_α β_c(α) / β_c(0) came out 1 on one machine and 2.5 on
another. Here a cell's outcome is the fraction of seeds that failed, with a Wilson 95 %
interval (honest at 0 and 1 out of a handful of seeds); a grid's β_c(α) is read per seed from
below, censored at the grid's ends. The boundary itself is measured by a search
(:mod:`mamlpaper.boundary`): :func:`beta_50` is the median of the seeds' flip points with a
bootstrap interval, and :func:`claim_verdict` reads the paper's claim from the interval of
R = max_α β_50(α) / β_50(0) only. The few-shot notebooks, one seed per map, read the claim off
their maps as the paper does and say which runs learned (:func:`claim_table`,
:func:`beta_c_per_alpha`, :func:`claim_results`).

A measured map also travels as JSON (:func:`write_maps`, :func:`export_map`, :func:`import_map`,
:func:`read_maps`):
notebooks 02-05 write theirs to ``figures/maps/<notebook>.json``, so that a later notebook draws
predicted boundaries over the measured maps without running the sweeps again.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch

from . import _checks
from .metaproblem import MetaProblem
from .runtime import REPO_ROOT, plain, resolve_path, write_results

def _check_table(table, needed: Sequence[str]) -> None:
    if not isinstance(table, pd.DataFrame):
        raise _checks.refuse("table", table, "table must be a pandas DataFrame returned by run_sweep",
                             shown=type(table).__name__)
    for column in needed:
        if column not in table:
            raise ValueError(f"table lacks column {column!r}; pass a table returned by run_sweep")
    key = ["alpha", "beta"] + (["seed"] if "seed" in table else [])
    duplicated = table.duplicated(key)
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise ValueError(f"table has more than one row for {', '.join(f'{k}={row[k]!r}' for k in key)}; "
                         "pass one sweep's table")


def as_grid(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alphas, betas, values) with values shaped (len(betas), len(alphas)), the layout of a map."""
    _check_table(table, ("alpha", "beta"))
    if not isinstance(column, str) or column not in table:
        raise ValueError(f"column={column!r} is not in the table; available: {', '.join(table.columns)}")
    if "seed" in table and table["seed"].nunique() > 1:
        raise ValueError(f"table holds {table['seed'].nunique()} seeds and a map shows one: pass "
                         "table[table.seed == s], or read them together with mamlpaper.stability")
    wide = table.pivot(index="beta", columns="alpha", values=column)
    return wide.columns.to_numpy(float), wide.index.to_numpy(float), wide.to_numpy()


READINGS = ("finite", "trained")
"""How a run counts as stable when β_c is read off a map: "finite", the paper's reading (it did
not diverge), or "trained" (neither unstable — non-finite, or ending above its starting loss —
nor collapsed)."""
CENSORED = ("", "above", "below")
"""How a β_c reading is bounded by the β range it was read from: "" inside it (a β failed and one
below it did not), "above" (no β failed: β_c is at least the value given), "below" (the smallest β
failed: β_c lies below the range, the value is NaN)."""


def failed(table: pd.DataFrame, reading: str = "finite") -> np.ndarray:
    """Per run, whether it failed under ``reading``: "finite", it diverged; "trained", it was
    unstable (diverged, or ended above its starting loss) or collapsed."""
    reading = _checks.choice("reading", reading, READINGS)
    _check_table(table, ("alpha", "beta", "diverged") + (("unstable", "collapsed") if reading == "trained" else ()))
    bad = table["diverged"].to_numpy(bool)
    if reading == "trained":
        bad = bad | table["unstable"].to_numpy(bool) | table["collapsed"].to_numpy(bool)
    return bad


def measured_beta_critical(table: pd.DataFrame, *, reading: str = "finite") -> pd.DataFrame:
    """Per α (and per seed, in a table with a seed column), β_c(α) read from below: the largest β
    whose run counts as stable under ``reading`` *below the smallest β that failed*.

    A run that survives above a failed β is not evidence of stability — near the boundary outcomes
    are chaotic, and a collapsed network survives any β — so it is never read as β_c. Columns
    (seed,) alpha, beta_c, censored (:data:`CENSORED`): "above" where no β failed (beta_c is the
    largest β: read "≥ beta_c"), "below" where the smallest β failed (beta_c NaN)."""
    bad = failed(table, reading)
    by = ["seed", "alpha"] if "seed" in table else ["alpha"]
    runs = table[by + ["beta"]].assign(failed=bad).sort_values(by + ["beta"], kind="stable")
    rows = []
    for key, group in runs.groupby(by, sort=True):
        betas, fails = group["beta"].to_numpy(float), group["failed"].to_numpy(bool)
        if not fails.any():
            beta_c, censored = betas[-1], "above"
        elif fails[0]:
            beta_c, censored = np.nan, "below"
        else:
            beta_c, censored = betas[np.argmax(fails) - 1], ""
        rows.append((*(key if isinstance(key, tuple) else (key,)), beta_c, censored))
    return pd.DataFrame(rows, columns=by + ["beta_c", "censored"])


OUTCOMES = ("diverged", "unstable")
"""What counts as a failed run in a probability map: "diverged" (the paper's: non-finite or above
the threshold) or "unstable" (diverged, or ended above its starting loss)."""
Z95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""


def wilson_interval(failures, runs, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a binomial proportion: within [0, 1], non-empty at 0/n and n/n."""
    k = _checks.real_array("failures", failures)
    n = _checks.real_array("runs", runs)
    z = _checks.real("z", z, above=0.0)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n) or np.any(k != np.round(k)) or np.any(n != np.round(n)):
        raise _checks.refuse("failures", failures, "failures and runs must be integer counts with 0 <= failures <= runs "
                             "and runs >= 1")
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def _outcome(table: pd.DataFrame, outcome: str) -> str:
    outcome = _checks.choice("outcome", outcome, OUTCOMES)
    _check_table(table, ("alpha", "beta", "seed", outcome))
    return outcome


def failure_probability(table: pd.DataFrame, *, outcome: str = "diverged") -> pd.DataFrame:
    """Per (α, β) cell: runs, failed runs, their fraction p and its Wilson 95 % interval."""
    outcome = _outcome(table, outcome)
    cells = table.groupby(["alpha", "beta"])[outcome].agg(runs="size", failed="sum").reset_index()
    cells["failed"] = cells["failed"].astype(int)
    cells["p"] = cells["failed"] / cells["runs"]
    cells["low"], cells["high"] = wilson_interval(cells["failed"].to_numpy(), cells["runs"].to_numpy())
    return cells


def median_map(table: pd.DataFrame, column: str = "loss_final", *, outcome: str = "diverged") -> pd.DataFrame:
    """Per cell, the median of ``column`` over the seeds whose run did not fail, where most did
    not (NaN where most failed, so the cell is drawn as failed); columns alpha, beta, ``column``."""
    outcome = _outcome(table, outcome)
    if not isinstance(column, str) or column not in table:
        raise ValueError(f"column={column!r} is not in the table; available: {', '.join(table.columns)}")
    kept = table[~table[outcome].astype(bool)]
    medians = kept.groupby(["alpha", "beta"])[column].median()
    cells = failure_probability(table, outcome=outcome).set_index(["alpha", "beta"])
    values = medians.reindex(cells.index).where(cells["p"] < 0.5)
    return values.rename(column).reset_index()


def claim_ratios(table: pd.DataFrame, *, reading: str = "finite") -> pd.DataFrame:
    """Per seed, the paper's claim statistic read off a grid: β_c(0), the largest β_c(α) over α > 0,
    where, their ratio, and what the ratio is (``ratio_is``).

    β_c is read from below (:func:`measured_beta_critical`), and a censored reading is never
    used as a number: the ratio is "undetermined" (NaN) where β_c(0) is censored — no β failed at
    α = 0 (it is only "≥ the grid's top"), or every β did — and "at least" where the largest β_c(α)
    is itself "≥ the grid's top"; otherwise "exact" (0 where no α > 0 has a β_c).
    """
    reading = _checks.choice("reading", reading, READINGS)
    _check_table(table, ("alpha", "beta", "seed", "diverged"))
    if not (table["alpha"] == 0).any() or not (table["alpha"] > 0).any():
        raise ValueError("table must hold alpha = 0 and some alpha > 0: the claim compares them")
    rows = []
    for seed, read in measured_beta_critical(table, reading=reading).groupby("seed"):
        zero = read[read.alpha == 0].iloc[0]
        inner = read[read.alpha > 0].set_index("alpha")
        values = inner["beta_c"].fillna(0.0)
        largest, at = float(values.max()), float(values.idxmax()) if values.max() > 0 else np.nan
        if zero["censored"]:
            ratio, kind = np.nan, "undetermined"
        else:
            ratio = largest / float(zero["beta_c"])
            kind = "at least" if (inner["censored"] == "above").any() else "exact"
        rows.append({"seed": seed, "beta_c0": float(zero["beta_c"]), "beta_c0_censored": zero["censored"],
                     "max_beta_c": largest if largest > 0 else np.nan, "at_alpha": at, "ratio": ratio,
                     "ratio_is": kind})
    return pd.DataFrame(rows)


def claim_summary(ratios: pd.DataFrame, threshold: float = 1.5) -> dict:
    """How many seeds' ratios reach ``threshold``, how many stay below it, how many cannot say
    (undetermined, or "at least" a value below the threshold), and the median and range of the
    determined ratios ("at least" ones counted at their bound; NaN where no seed has one)."""
    if not isinstance(ratios, pd.DataFrame) or not {"ratio", "ratio_is"} <= set(ratios.columns):
        raise _checks.refuse("ratios", ratios, "ratios must be the DataFrame claim_ratios returns",
                             shown=type(ratios).__name__)
    threshold = _checks.real("threshold", threshold, above=0.0)
    values, kind = ratios["ratio"].to_numpy(float), ratios["ratio_is"].to_numpy(str)
    reached = (kind != "undetermined") & (values >= threshold)
    below = (kind == "exact") & (values < threshold)
    known = values[kind != "undetermined"]
    spread = (float(np.median(known)), float(known.min()), float(known.max())) if known.size else (np.nan,) * 3
    return {"seeds": int(values.size), "determined": int(reached.sum() + below.sum()),
            "median": spread[0], "min": spread[1], "max": spread[2],
            "threshold": threshold, "at_least": int(reached.sum()), "below": int(below.sum()),
            "undetermined": int(values.size - reached.sum() - below.sum())}


def describe_claim(summary: dict) -> str:
    """The claim statistic in one line, e.g. 'ratio >= 1.5 in 2 of 5 seeds, below in 2, undetermined in 1
    (median 1, range 1-2.5)'."""
    spread = (f"median {summary['median']:.3g}, range {summary['min']:.3g}-{summary['max']:.3g}"
              if np.isfinite(summary["median"]) else "no ratio determined: beta_c(0) is censored in every seed")
    return (f"ratio >= {summary['threshold']:g} in {summary['at_least']} of {summary['seeds']} seeds, below in "
            f"{summary['below']}, undetermined in {summary['undetermined']} ({spread})")


def _sweep_tables(tables, needed: Sequence[str], *, one_seed: bool = False) -> dict:
    """Sweep tables by meta-optimizer name, each checked; ``one_seed``: a map read as the paper reads it."""
    if not isinstance(tables, dict) or not tables or not all(isinstance(k, str) for k in tables):
        raise _checks.refuse("tables", tables, "tables must be a non-empty dict of run_sweep tables by optimizer "
                             "name, e.g. {'sgd': ..., 'adam': ...}", shown=type(tables).__name__)
    for optimizer, table in tables.items():
        _check_table(table, needed)
        if one_seed and "seed" in table and table["seed"].nunique() > 1:
            raise _checks.refuse("tables", tables, f"tables[{optimizer!r}] holds {table['seed'].nunique()} seeds; "
                                 "this reading is of one run per cell", shown="dict")
    return tables


def grid_claims(tables: dict, *, threshold: float = 1.5) -> dict:
    """Per optimizer and reading (:data:`READINGS`), the claim as the maps of several seeds say it:
    :func:`claim_summary` with the per-seed ratios and what each is. What a results file keeps beside
    the searched verdict, to show how much a grid's single runs can be trusted."""
    _sweep_tables(tables, ("alpha", "beta", "seed", "diverged"))
    found = {}
    for optimizer, table in tables.items():
        found[optimizer] = {}
        for reading in READINGS:
            ratios = claim_ratios(table, reading=reading)
            found[optimizer][reading] = {**claim_summary(ratios, threshold=threshold),
                                         "per_seed": ratios.ratio.tolist(), "per_seed_is": ratios.ratio_is.tolist()}
    return found


LEARNED_ACCURACY = 0.5
"""The query accuracy after adaptation that counts as having learned a 5-way task: chance is 0.2, so
a run at 0.5 has learned something, while one a little above chance may only have drifted."""


def sweep_overview(tables: dict) -> pd.DataFrame:
    """One row per optimizer: runs, how many diverged and at which iteration (median), how many finite
    runs collapsed, how many did neither, the best query accuracy (where the table has one) and the
    lowest final loss. The first thing to read: a map of runs that all diverged, or all collapsed,
    says nothing about a boundary."""
    _sweep_tables(tables, ("alpha", "beta", "diverged", "diverged_at", "collapsed", "loss_final"))
    rows = {}
    for optimizer, t in tables.items():
        rows[optimizer] = {"runs": len(t), "diverged": int(t.diverged.sum()),
                           "median divergence iteration": t.diverged_at.dropna().median(),
                           "collapsed (finite runs)": int(t.collapsed.sum()),
                           "finite, not collapsed": int((~t.diverged & ~t.collapsed).sum())}
        if "query_accuracy" in t:
            rows[optimizer]["best query accuracy after adaptation"] = t.query_accuracy.max()
        rows[optimizer]["lowest final loss"] = t.loss_final.min()
    return pd.DataFrame(rows).T


def beta_c_per_alpha(tables: dict, *, learned: float = LEARNED_ACCURACY) -> pd.DataFrame:
    """Per α (rows) and per optimizer and reading (columns), the largest β of the reading on a one-seed
    map: "finite" and "trained" read from below (:func:`measured_beta_critical`), and "learned", the
    largest β whose run stayed finite and reached a query accuracy of at least ``learned``.

    The two readings say whether a run survived; "learned" says whether it was of any use, so a β_c
    made of runs that collapsed or stayed at chance shows as such. It is NaN where no run learned, at
    α = 0 always (without inner steps, labels shuffled per task cannot be learned)."""
    learned = _checks.real("learned", learned, above=0.0)
    if learned > 1:
        raise _checks.refuse("learned", learned, "learned is a query accuracy, in (0, 1]")
    _sweep_tables(tables, ("alpha", "beta", "diverged", "unstable", "collapsed", "query_accuracy"), one_seed=True)
    columns = {}
    for optimizer, table in tables.items():
        for reading in READINGS:
            columns[optimizer, reading] = measured_beta_critical(table, reading=reading).set_index("alpha")["beta_c"]
        ok = table[~table.diverged & (table.query_accuracy >= learned)]
        columns[optimizer, "learned"] = ok.groupby("alpha")["beta"].max().reindex(columns[optimizer, "finite"].index)
    return pd.concat(columns, axis=1)


def claim_table(tables: dict) -> pd.DataFrame:
    """The paper's claim read off one-seed maps, a row per optimizer and reading: :func:`claim_ratios`,
    and how many finite runs at α > 0 lie above the trained reading's β_c(0) and how many of them
    collapsed: the runs a "finite" ratio above 1 rests on, and whether they trained at all."""
    _sweep_tables(tables, ("alpha", "beta", "seed", "diverged", "unstable", "collapsed"), one_seed=True)
    rows = {}
    for optimizer, table in tables.items():
        zero = measured_beta_critical(table, reading="trained").set_index("alpha")["beta_c"][0.0]
        above = table[~table.diverged & (table.alpha > 0) & (table.beta > np.nan_to_num(zero, nan=0.0))]
        for reading in READINGS:
            row = claim_ratios(table, reading=reading).iloc[0].drop("seed")
            rows[optimizer, reading] = {**row, "finite_above_trained_beta_c0": len(above),
                                        "collapsed_above_trained_beta_c0": int(above.collapsed.sum())}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["optimizer", "reading"])


def claim_results(tables: dict, *, learned: float = LEARNED_ACCURACY) -> dict:
    """Per optimizer, what a few-shot notebook's results file keeps of its sweep: the counts, the best
    query accuracy, per reading the claim's numbers (:func:`claim_table`) with β_c(α), the "learned" β
    per α (:func:`beta_c_per_alpha`), and the finite runs above the trained β_c(0); as plain JSON, with
    what is not finite (censored, undetermined) as None."""
    claim, per_alpha = claim_table(tables), beta_c_per_alpha(tables, learned=learned)

    def per_alpha_of(optimizer, reading):
        return {f"{a:g}": plain(b) for a, b in per_alpha[optimizer, reading].items()}

    found = {}
    for optimizer, table in tables.items():
        entry = {"runs": len(table), "diverged": int(table.diverged.sum()), "collapsed": int(table.collapsed.sum()),
                 "best_query_accuracy": plain(table.query_accuracy.max())}
        for reading in READINGS:
            row = claim.loc[(optimizer, reading)]
            entry[reading] = {"beta_c_at_alpha_0": row["beta_c0"], "max_beta_c": row["max_beta_c"],
                              "at_alpha": row["at_alpha"], "ratio": row["ratio"], "ratio_is": row["ratio_is"],
                              "beta_c": per_alpha_of(optimizer, reading)}
        entry["learned"] = {"query_accuracy_at_least": learned, "beta_c": per_alpha_of(optimizer, "learned")}
        for count in ("finite_above_trained_beta_c0", "collapsed_above_trained_beta_c0"):
            entry[count] = int(claim.loc[(optimizer, READINGS[0]), count])
        found[optimizer] = entry
    return plain(found)


def seed_boundaries(intervals: pd.DataFrame) -> pd.DataFrame:
    """Per (α, seed) of a boundary search (:func:`mamlpaper.boundary.search`), the β where its run's
    outcome flipped: the geometric midpoint of [β_lo, β_hi]; inf where censored above (no failure
    in range), 0 where censored below (no success). Columns alpha, seed, beta_star."""
    _check_intervals(intervals)
    lo, hi = intervals["beta_lo"].to_numpy(float), intervals["beta_hi"].to_numpy(float)
    censored = intervals["censored"].to_numpy(str)
    star = np.where(censored == "above", np.inf, np.where(censored == "below", 0.0, np.sqrt(lo * hi)))
    return pd.DataFrame({"alpha": intervals["alpha"].to_numpy(float), "seed": intervals["seed"].to_numpy(int),
                         "beta_star": star})


def _check_intervals(intervals) -> None:
    needed = ("alpha", "seed", "beta_lo", "beta_hi", "censored")
    if not isinstance(intervals, pd.DataFrame) or not set(needed) <= set(intervals.columns):
        raise _checks.refuse("intervals", intervals, "intervals must be the DataFrame of a boundary search "
                             f"(columns {', '.join(needed)}; mamlpaper.boundary.search(...).intervals)",
                             shown=type(intervals).__name__)
    if intervals.empty or intervals.duplicated(["alpha", "seed"]).any():
        raise _checks.refuse("intervals", intervals, "intervals must hold one row per (alpha, seed)",
                             shown="DataFrame")
    if intervals.groupby("alpha")["seed"].apply(frozenset).nunique() != 1:
        raise _checks.refuse("intervals", intervals, "every alpha must be searched with the same seeds (the "
                             "bootstrap resamples seeds across all alphas at once)", shown="DataFrame")


def _log_boundaries(intervals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, log β* as a seeds × alphas matrix)."""
    star = seed_boundaries(intervals).pivot(index="seed", columns="alpha", values="beta_star")
    with np.errstate(divide="ignore"):
        return star.columns.to_numpy(float), np.log(star.to_numpy(float))


def _resampled_medians(logs: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """Medians over seeds (axis 0) of ``draws`` bootstrap resamples of the seeds, all α resampled
    together (a seed is one θ0 and one task stream at every α): draws × alphas."""
    n = logs.shape[0]
    index = torch.randint(n, (draws, n), generator=torch.Generator().manual_seed(seed)).numpy()
    return _median(logs[index], axis=1)


def _median(logs: np.ndarray, axis: int = 0) -> np.ndarray:
    """The median of log values that may be ±inf (censored); NaN where the middle pair is -inf, inf."""
    with np.errstate(invalid="ignore"):
        return np.median(logs, axis=axis)


def _ends(samples: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A percentile interval that never interpolates into a censored (infinite) value, and counts an
    undetermined (NaN) draw against both ends."""
    tail = 100 * (1 - level) / 2
    low = np.percentile(np.where(np.isnan(samples), -np.inf, samples), tail, axis=axis, method="lower")
    high = np.percentile(np.where(np.isnan(samples), np.inf, samples), 100 - tail, axis=axis, method="higher")
    return low, high


def _check_bootstrap(level, draws, seed) -> tuple[float, int, int]:
    level = _checks.real("level", level, above=0.0)
    if not level < 1:
        raise _checks.refuse("level", level, "level must be in (0, 1), e.g. 0.95")
    return level, _checks.integer("draws", draws, minimum=100), _checks.integer("seed", seed, minimum=0)


def beta_50(intervals: pd.DataFrame, *, level: float = 0.95, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per α, β_50: the β at which half the seeds' runs fail — the median over seeds of each seed's
    flip point (:func:`seed_boundaries`) — with a bootstrap interval over seeds (``level``,
    ``draws`` resamples from ``torch.Generator().manual_seed(seed)``).

    Single runs near the boundary are chaotic, so one seed's flip point moves with round-off; their
    median over seeds does not, which is what makes it the quantity to compare across α and across
    machines. Censored seeds enter as 0 or inf (they rank, they are not averaged); a censored
    median is flagged, never printed as a number: ``censored`` "above" (β_50 ≥ the range's top, value
    inf), "below" (value 0), "undetermined" (NaN: the middle seeds are censored on both sides).
    Columns alpha, beta_50, low, high, seeds, censored.
    """
    level, draws, seed = _check_bootstrap(level, draws, seed)
    _check_intervals(intervals)
    alphas, logs = _log_boundaries(intervals)
    point = _median(logs)
    low, high = _ends(_resampled_medians(logs, draws, seed), level)
    censored = np.where(np.isnan(point), "undetermined",
                        np.where(point == np.inf, "above", np.where(point == -np.inf, "below", "")))
    return pd.DataFrame({"alpha": alphas, "beta_50": np.exp(point), "low": np.exp(low), "high": np.exp(high),
                         "seeds": logs.shape[0], "censored": censored})


VERDICTS = ("rise", "no rise", "undecided")
"""The claim read from the interval of R only: its lower end above the threshold, its upper end
below it, or neither."""


def claim_verdict(intervals: pd.DataFrame, *, threshold: float = 1.5, level: float = 0.95, draws: int = 2000,
                  seed: int = 0) -> dict:
    """The paper's claim as a measurement: R = max over α > 0 of β_50(α) / β_50(0), a bootstrap
    interval over seeds, and the verdict (:data:`VERDICTS`) that interval decides at ``threshold``.

    Each resample recomputes every β_50 and the maximum over α (so the interval carries the
    maximum's upward bias as well as the seeds' scatter). Where the verdict is "undecided",
    ``seeds_to_decide`` is the number of seeds at which an interval of the same shape, narrowed
    as 1/√n, would exclude the threshold if R stayed where it is (None where no number of seeds
    would: R at the threshold, or an end censored). Values may be inf (censored); keys: ratio,
    low, high, at_alpha, beta_50_0, verdict, seeds, seeds_to_decide, threshold, level.
    """
    threshold = _checks.real("threshold", threshold, above=0.0)
    level, draws, seed = _check_bootstrap(level, draws, seed)
    _check_intervals(intervals)
    alphas, logs = _log_boundaries(intervals)
    if not (alphas == 0).any() or not (alphas > 0).any():
        raise ValueError("intervals must hold alpha = 0 and some alpha > 0: the claim compares them")
    zero, inner = np.flatnonzero(alphas == 0)[0], np.flatnonzero(alphas > 0)

    def log_ratio(medians):
        with np.errstate(invalid="ignore"):
            return medians[..., inner].max(axis=-1) - medians[..., zero]

    point_medians = _median(logs)
    point = float(log_ratio(point_medians))
    low, high = (float(v) for v in _ends(log_ratio(_resampled_medians(logs, draws, seed)), level))
    mark = math.log(threshold)
    verdict = "rise" if low > mark else "no rise" if high < mark else "undecided"
    to_decide = None
    if verdict == "undecided" and np.isfinite([low, high, point]).all() and point != mark:
        to_decide = int(math.ceil(logs.shape[0] * ((high - low) / 2 / abs(point - mark)) ** 2))
    best = inner[np.nanargmax(point_medians[inner])] if np.isfinite(point_medians[inner]).any() else None
    return {"ratio": math.exp(point) if not np.isnan(point) else np.nan, "low": math.exp(low), "high": math.exp(high),
            "at_alpha": float(alphas[best]) if best is not None else np.nan,
            "beta_50_0": float(np.exp(point_medians[zero])), "verdict": verdict, "seeds": int(logs.shape[0]),
            "seeds_to_decide": to_decide, "threshold": threshold, "level": level}


def describe_verdict(verdict: dict) -> str:
    """A verdict in one line, e.g. 'R = 1.1 [0.93, 1.3] (95%, 10 seeds): no rise (threshold 1.5)'."""
    def number(v):
        return "≥ range" if v == np.inf else "undetermined" if np.isnan(v) else f"{v:.3g}"

    line = (f"R = {number(verdict['ratio'])} [{number(verdict['low'])}, {number(verdict['high'])}] "
            f"({verdict['level']:.0%}, {verdict['seeds']} seeds): {verdict['verdict']} "
            f"(threshold {verdict['threshold']:g})")
    if verdict["verdict"] == "undecided":
        more = verdict["seeds_to_decide"]
        line += (f"; about {more} seeds would decide it if R stayed at {number(verdict['ratio'])}" if more
                 else "; more seeds alone would not decide it")
    return line


MAP_FORMAT = "mamlpaper measured map 2"
"""The ``format`` entry of an exported map; :func:`import_map` reads this layout only."""
CELL_COLUMNS = {"alpha": "real", "beta": "real", "runs": "count", "diverged": "count", "unstable": "count",
                "collapsed": "count", "loss_median": "real or None"}
"""An exported map's per-(α, β) columns and what each holds."""
BETA_CRITICAL_COLUMNS = {"seed": "integer", "alpha": "real", "finite": "real or None", "trained": "real or None",
                         "finite_censored": "censoring", "trained_censored": "censoring"}
"""An exported map's per-(seed, α) columns: β_c(α) under each of ``READINGS``, read from below,
and how each is censored (``CENSORED``: "above" means "≥ the value")."""
_FROM_EXPORT = "pass a dict written by stability.export_map"


class MeasuredMap(NamedTuple):
    """A measured α×β map read back from JSON: what was run (``labels``), per-cell counts and median
    final loss (``cells``, columns of ``CELL_COLUMNS``), per-seed β_c (``beta_critical``, NaN where no β
    counted as stable)."""
    labels: dict
    cells: pd.DataFrame
    beta_critical: pd.DataFrame


def _finite_or_none(values) -> list:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def export_map(table: pd.DataFrame, **labels) -> dict:
    """A sweep table as a JSON-able dict, so that a map can be drawn again, and compared with a
    prediction, without rerunning its sweep.

    ``labels`` say what was run (e.g. problem, variant, optimizer, iterations, steps, dtype); each
    must be a plain JSON value, and one named like a table column (variant, optimizer, steps,
    iterations) must equal that column. ``cells``: per (α, β), sorted by α then β, the runs and how
    many diverged, were unstable, collapsed, and loss_median, the median final loss over the runs
    that did not diverge (None where all did). ``beta_critical``: per (seed, α), β_c under each
    reading of :func:`measured_beta_critical` (None where no β counts as stable) and its
    censoring in ``<reading>_censored``; a table
    without a seed column counts as seed 0. No NaN or inf anywhere: the dict passes
    ``json.dumps(..., allow_nan=False)``, and equal tables give equal dicts.
    """
    _check_table(table, ("alpha", "beta", "diverged", "unstable", "collapsed", "loss_final"))
    if table.empty:
        raise _checks.refuse("table", table, "table has no rows; pass a table returned by run_sweep", shown="empty")
    labels = {key: plain(value, strict=True, name=key) for key, value in labels.items()}
    for key in ("variant", "optimizer", "steps", "iterations"):
        if key in labels and key in table and (isinstance(labels[key], (list, dict))
                                               or not (table[key] == labels[key]).all()):
            found = ", ".join(map(repr, pd.unique(table[key]).tolist()))
            raise _checks.refuse(key, labels[key], f"the table's {key} is {found}; a label must describe the table")
    grid = {}
    for axis in ("alpha", "beta"):
        try:
            grid[axis] = _checks.real_array(f"table's {axis}", table[axis].to_numpy())
        except ValueError:
            raise _checks.refuse("table", table, f"table's {axis} must be finite real numbers",
                                 shown="DataFrame") from None
    if "seed" in table:
        seeds = pd.to_numeric(table["seed"], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(seeds) & (seeds == np.round(seeds))):
            raise _checks.refuse("table", table, "table's seed must hold integers", shown="DataFrame")

    failed = {c: table[c].astype(bool).to_numpy() for c in ("diverged", "unstable", "collapsed")}
    loss = table["loss_final"].to_numpy(float)
    runs = pd.DataFrame({**grid, **failed, "loss": np.where(failed["diverged"], np.nan, loss)})
    cells = runs.groupby(["alpha", "beta"], sort=True).agg(
        runs=("diverged", "size"), diverged=("diverged", "sum"), unstable=("unstable", "sum"),
        collapsed=("collapsed", "sum"), loss_median=("loss", "median")).reset_index()

    read = {reading: measured_beta_critical(table, reading=reading) for reading in READINGS}
    critical = read["finite"][[c for c in ("seed", "alpha") if c in read["finite"]]].copy()
    for reading, values in read.items():
        critical[reading] = values["beta_c"].to_numpy(float)
        critical[f"{reading}_censored"] = values["censored"].to_numpy(str)
    if "seed" not in critical:
        critical.insert(0, "seed", 0)
    critical = critical.sort_values(["seed", "alpha"], kind="stable")

    return {
        "format": MAP_FORMAT,
        "labels": labels,
        "cells": {"alpha": [float(a) for a in cells["alpha"]], "beta": [float(b) for b in cells["beta"]],
                  **{c: [int(n) for n in cells[c]] for c in ("runs", "diverged", "unstable", "collapsed")},
                  "loss_median": _finite_or_none(cells["loss_median"])},
        "beta_critical": {"seed": [int(s) for s in critical["seed"]], "alpha": [float(a) for a in critical["alpha"]],
                          **{reading: _finite_or_none(critical[reading]) for reading in READINGS},
                          **{f"{r}_censored": critical[f"{r}_censored"].tolist() for r in READINGS}},
    }


def _column(part: str, name: str, values, kind: str) -> np.ndarray:
    """One column of an exported map, checked against what export_map writes."""
    def ok(v):
        if kind == "censoring":
            return v in CENSORED
        if kind == "real or None" and v is None:
            return True
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return False
        if kind in ("count", "integer"):
            return isinstance(v, numbers.Integral) and (kind == "integer" or v >= 0)
        return bool(np.isfinite(v))

    if not isinstance(values, list) or not all(ok(v) for v in values):
        raise ValueError(f"data.{part}.{name} must be a list of {kind.replace('count', 'integers >= 0')} values; "
                         f"{_FROM_EXPORT}")
    if kind in ("count", "integer"):
        return np.array(values, dtype=np.int64)
    if kind == "censoring":
        return np.array(values, dtype=object)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _frame(data: dict, part: str, columns: dict) -> pd.DataFrame:
    table = data[part]
    if not isinstance(table, dict):
        raise ValueError(f"data.{part} must be a dict of column lists; {_FROM_EXPORT}")
    for name in columns:
        if name not in table:
            raise ValueError(f"data.{part} lacks column {name!r}; {_FROM_EXPORT}")
    frame = {name: _column(part, name, table[name], kind) for name, kind in columns.items()}
    if len({len(v) for v in frame.values()}) > 1:
        raise ValueError(f"data.{part} has columns of different lengths; {_FROM_EXPORT}")
    return pd.DataFrame(frame)


def import_map(data: dict) -> MeasuredMap:
    """A map written by :func:`export_map` (and read back from JSON) as DataFrames again: None
    becomes NaN, counts are integers. A dict of another layout is refused naming what it lacks."""
    if not isinstance(data, dict):
        raise _checks.refuse("data", data, f"data must be a dict; {_FROM_EXPORT}", shown=type(data).__name__)
    for key in ("format", "labels", "cells", "beta_critical"):
        if key not in data:
            raise ValueError(f"data lacks {key!r}; {_FROM_EXPORT}")
    if data["format"] != MAP_FORMAT:
        raise _checks.refuse("data.format", data["format"], f"this version reads {MAP_FORMAT!r}; {_FROM_EXPORT}")
    if not isinstance(data["labels"], dict):
        raise _checks.refuse("data.labels", data["labels"], f"data.labels must be a dict; {_FROM_EXPORT}")
    cells = _frame(data, "cells", CELL_COLUMNS)
    critical = _frame(data, "beta_critical", BETA_CRITICAL_COLUMNS)
    if cells.empty or (cells["runs"] < 1).any() or (cells[["diverged", "unstable", "collapsed"]].max(axis=1)
                                                     > cells["runs"]).any():
        raise ValueError("data.cells must count at least one run per cell and no more failures than runs; "
                         + _FROM_EXPORT)
    return MeasuredMap(labels=dict(data["labels"]), cells=cells, beta_critical=critical)


def read_maps(path: str | os.PathLike) -> dict[str, MeasuredMap]:
    """The measured maps a notebook wrote (``figures/maps/<notebook>.json``, by
    :func:`runtime.write_results` from :func:`export_map`), by series name (e.g. "second-sgd").

    Read as JSON, never unpickled. A missing file raises ``FileNotFoundError`` naming the notebook
    that writes it, so a notebook that draws over the maps says what to run instead of sweeping.
    """
    path = resolve_path(path)
    if not path.is_file():
        notebook = REPO_ROOT / "notebooks" / f"{path.stem}.py"
        how = (f"run notebooks/{notebook.name} (or `make figures`, which runs every notebook)" if notebook.exists()
               else "write it with runtime.write_results from stability.export_map (notebooks 02-05 do)")
        raise FileNotFoundError(f"{path} does not exist; {how}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _checks.refuse("path", str(path), f"the file is not JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("series"), dict) or not document["series"]:
        raise _checks.refuse("path", str(path), "the file lacks 'series' (a dict of maps by name); pass a maps file "
                             "a notebook wrote to figures/maps/")
    maps = {}
    for name, data in document["series"].items():
        try:
            maps[name] = import_map(data)
        except ValueError as error:
            raise ValueError(f"path={str(path)!r} is not allowed; series {name!r}: {error}") from None
    return maps


def write_maps(notebook: str, tables: dict, problem: MetaProblem, directory: str | os.PathLike, *, profile: str,
               variant: str, **labels) -> Path:
    """Write a notebook's measured maps, one series per optimizer ("<variant>-<optimizer>", from
    :func:`export_map`), to ``<directory>/<notebook>.json``: the file :func:`read_maps` reads, so that
    a later notebook draws predictions over the maps without running the sweeps again. Every series is
    labelled with the problem, its spec, the variant and optimizer, then ``labels`` (iterations, ...)."""
    if not isinstance(problem, MetaProblem):
        raise _checks.refuse("problem", problem, "problem must be a MetaProblem (mamlpaper.problems)",
                             shown=type(problem).__name__)
    _sweep_tables(tables, ("alpha", "beta"))
    series = {f"{variant}-{optimizer}": export_map(table, problem=problem.name, spec=problem.spec, variant=variant,
                                                   optimizer=optimizer, **labels)
              for optimizer, table in tables.items()}
    return write_results(notebook, {"notebook": notebook, "profile": profile, "series": series}, directory)
