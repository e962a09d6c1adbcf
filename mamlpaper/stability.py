"""Reading stability from several seeds: a map cell is a probability, β_c a per-seed reading.

One run per cell decides the boundary cells by round-off and by individual meta-batches, so
the paper's headline ratio max_α β_c(α) / β_c(0) came out 1 on one machine and 2.5 on
another. Here a cell's outcome is the fraction of seeds that failed, with a Wilson 95 %
interval (honest at 0 and 1 out of a handful of seeds); β_c(α) and the ratio are read per seed
and summarised by median and range; the cells where seeds disagree, or that border a change of
outcome, are the ones to rerun in float64 to tell round-off from real.

A measured map also travels as JSON (:func:`export_map`, :func:`import_map`, :func:`read_maps`):
notebooks 02-05 write theirs to ``figures/maps/<notebook>.json``, so that a later notebook draws
predicted boundaries over the measured maps without running the sweeps again.
"""
from __future__ import annotations

import json
import numbers
import os
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import _checks
from .runtime import REPO_ROOT, resolve_path
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


MAP_FORMAT = "mamlpaper measured map 1"
"""The ``format`` entry of an exported map; :func:`import_map` reads this layout only."""
CELL_COLUMNS = {"alpha": "real", "beta": "real", "runs": "count", "diverged": "count", "unstable": "count",
                "collapsed": "count", "loss_median": "real or None"}
"""An exported map's per-(α, β) columns and what each holds."""
BETA_CRITICAL_COLUMNS = {"seed": "integer", "alpha": "real", "finite": "real or None", "trained": "real or None"}
"""An exported map's per-(seed, α) columns: β_c(α) under each of ``sweep.READINGS``."""
_FROM_EXPORT = "pass a dict written by stability.export_map"


class MeasuredMap(NamedTuple):
    """A measured α×β map read back from JSON: what was run (``labels``), per-cell counts and median
    final loss (``cells``, columns of ``CELL_COLUMNS``), per-seed β_c (``beta_critical``, NaN where no β
    counted as stable)."""
    labels: dict
    cells: pd.DataFrame
    beta_critical: pd.DataFrame


def _label(name: str, value):
    """A label as a plain JSON value (NumPy scalars become Python ones), so that the file reads back as written."""
    rule = (f"{name} must be a plain JSON value: str, int, finite float, bool, None, or lists and str-keyed "
            "dicts of them")
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not np.isfinite(float(value)):
            raise _checks.refuse(name, value, rule)
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_label(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _label(f"{name}.{k}", v) for k, v in value.items()}
    raise _checks.refuse(name, value, rule)


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
    reading of :func:`sweep.measured_beta_critical` (None where no β counts as stable); a table
    without a seed column counts as seed 0. No NaN or inf anywhere: the dict passes
    ``json.dumps(..., allow_nan=False)``, and equal tables give equal dicts.
    """
    _check_table(table, ("alpha", "beta", "diverged", "unstable", "collapsed", "loss_final"))
    if table.empty:
        raise _checks.refuse("table", table, "table has no rows; pass a table returned by run_sweep", shown="empty")
    labels = {key: _label(key, value) for key, value in labels.items()}
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
                          **{reading: _finite_or_none(critical[reading]) for reading in READINGS}},
    }


def _column(part: str, name: str, values, kind: str) -> np.ndarray:
    """One column of an exported map, checked against what export_map writes."""
    def ok(v):
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


def beta_critical_summary(measured: MeasuredMap, reading: str = "finite") -> pd.DataFrame:
    """Per α, the measured β_c over seeds: median, low (min) and high (max), and seeds, how many seeds
    have a β_c there. The spread is what a prediction is judged against: a predicted boundary within
    [low, high] is as close as the seeds agree with each other. A seed with no stable β at some α
    (NaN) is left out of that α's numbers (seeds < runs there)."""
    reading = _checks.choice("reading", reading, READINGS)
    if not isinstance(measured, MeasuredMap):
        raise _checks.refuse("measured", measured, "measured must be a MeasuredMap (stability.import_map, read_maps)",
                             shown=type(measured).__name__)
    values = measured.beta_critical.groupby("alpha", sort=True)[reading]
    summary = values.agg(median="median", low="min", high="max", seeds="count").reset_index()
    summary["seeds"] = summary["seeds"].astype(int)
    return summary


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
