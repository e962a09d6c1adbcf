"""Reading stability from several seeds: a map cell is a probability, β_c a per-seed reading.

One run per cell decides the boundary cells by round-off and by individual meta-batches, so
the paper's headline ratio max_α β_c(α) / β_c(0) came out 1 on one machine and 2.5 on
another. Here a cell's outcome is the fraction of seeds that failed, with a Wilson 95 %
interval (honest at 0 and 1 out of a handful of seeds); β_c(α) and the ratio are read per seed
and summarised by median and range; the cells where seeds disagree, or that border a change of
outcome, are the ones to rerun in float64 to tell round-off from real.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import _checks
from .sweep import READINGS, _check_table, measured_beta_critical

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
    """Per seed, the paper's claim statistic: β_c(0), the largest β_c(α) over α > 0, where, and their ratio.

    The ratio is NaN for a seed where every β diverged at α = 0 (no β_c(0) to compare with)
    and 0 where α = 0 has a β_c but no α > 0 does.
    """
    reading = _checks.choice("reading", reading, READINGS)
    _check_table(table, ("alpha", "beta", "seed", "diverged"))
    if not (table["alpha"] == 0).any() or not (table["alpha"] > 0).any():
        raise ValueError("table must hold alpha = 0 and some alpha > 0: the claim compares them")
    rows = []
    for seed, read in measured_beta_critical(table, reading=reading).groupby("seed"):
        at_zero = float(read.loc[read.alpha == 0, "beta_c"].iloc[0])
        inner = read[read.alpha > 0].set_index("alpha")["beta_c"]
        largest = float(inner.max()) if inner.notna().any() else np.nan
        rows.append({"seed": seed, "beta_c0": at_zero, "max_beta_c": largest,
                     "at_alpha": float(inner.idxmax()) if inner.notna().any() else np.nan,
                     "ratio": (np.nan_to_num(largest) / at_zero) if at_zero > 0 else np.nan})
    return pd.DataFrame(rows)


def claim_summary(ratios: pd.DataFrame, threshold: float = 1.5) -> dict:
    """Median and range of the per-seed ratios, and in how many seeds the ratio reached ``threshold``."""
    if not isinstance(ratios, pd.DataFrame) or "ratio" not in ratios:
        raise _checks.refuse("ratios", ratios, "ratios must be the DataFrame claim_ratios returns",
                             shown=type(ratios).__name__)
    threshold = _checks.real("threshold", threshold, above=0.0)
    values = ratios["ratio"].to_numpy(float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("ratios has no seed with a ratio (every seed diverged at alpha = 0 for every beta)")
    return {"seeds": int(values.size), "with_ratio": int(finite.size), "median": float(np.median(finite)),
            "min": float(finite.min()), "max": float(finite.max()), "threshold": threshold,
            "at_least": int((finite >= threshold).sum())}


def describe_claim(summary: dict) -> str:
    """The claim statistic in one line, e.g. 'ratio >= 1.5 in 3 of 5 seeds (median 2, range 1-3.3)'."""
    return (f"ratio >= {summary['threshold']:g} in {summary['at_least']} of {summary['seeds']} seeds "
            f"(median {summary['median']:.3g}, range {summary['min']:.3g}-{summary['max']:.3g})")


def marginal_cells(table: pd.DataFrame, *, outcome: str = "diverged") -> pd.DataFrame:
    """The cells whose outcome is in doubt: seeds disagree (0 < p < 1), or the cell's majority
    outcome differs from a neighbour's along α or β (it borders the boundary). Columns alpha, beta, p, reason."""
    cells = failure_probability(table, outcome=outcome)
    majority = cells.pivot(index="beta", columns="alpha", values="p").to_numpy() >= 0.5
    border = np.zeros_like(majority)
    for axis in (0, 1):
        change = np.diff(majority, axis=axis)
        lead = [slice(None)] * 2
        lead[axis] = slice(1, None)
        border[tuple(lead)] |= change
        lead[axis] = slice(None, -1)
        border[tuple(lead)] |= change
    alphas = np.sort(cells["alpha"].unique())
    betas = np.sort(cells["beta"].unique())
    on_border = {(alphas[j], betas[i]) for i, j in zip(*np.nonzero(border))}
    split = (cells["p"] > 0) & (cells["p"] < 1)
    near = np.array([(a, b) in on_border for a, b in zip(cells["alpha"], cells["beta"])], dtype=bool)
    chosen = cells[split | near].copy()
    chosen["reason"] = np.where(split[split | near], "seeds disagree", "borders the boundary")
    return chosen[["alpha", "beta", "p", "reason"]].reset_index(drop=True)


def compare_precisions(low: pd.DataFrame, high: pd.DataFrame, *, outcome: str = "diverged") -> pd.DataFrame:
    """Per cell of ``high`` (a float64 rerun of some runs of ``low``, same seeds): the failed
    fraction in each precision and how many runs changed outcome. A cell whose runs change is
    decided by round-off; one whose runs keep their outcome is a property of the problem."""
    outcome = _outcome(low, outcome)
    _outcome(high, outcome)
    key = ["alpha", "beta", "seed"]
    joined = high[key + [outcome]].merge(low[key + [outcome]], on=key, how="left", suffixes=("_high", "_low"),
                                         indicator=True)
    if (joined["_merge"] != "both").any():
        row = joined[joined["_merge"] != "both"].iloc[0]
        raise ValueError(f"high has a run that low lacks: alpha={row.alpha!r}, beta={row.beta!r}, seed={row.seed!r}")
    joined["changed"] = joined[f"{outcome}_high"].astype(bool) != joined[f"{outcome}_low"].astype(bool)
    cells = joined.groupby(["alpha", "beta"]).agg(runs=("seed", "size"), p_low=(f"{outcome}_low", "mean"),
                                                  p_high=(f"{outcome}_high", "mean"), changed=("changed", "sum"))
    cells = cells.reset_index()
    cells["changed"] = cells["changed"].astype(int)
    cells["decided_by"] = np.where(cells["changed"] > 0, "round-off", "the problem")
    return cells
