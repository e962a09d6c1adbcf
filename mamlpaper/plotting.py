"""Figures of the paper: one style, α×β stability maps on log axes, deterministic saving.

Maps are drawn with ``pcolormesh`` on cell edges computed from the (log-spaced, possibly
non-uniform) grid, so theory curves β_c(α) can be overlaid in data coordinates; a
categorical heatmap would put α and β on index axes and make that impossible. The figures that
several notebooks draw from a sweep table (:func:`loss_map`, :func:`classifier_map`,
:func:`beta_critical_figure`) read it through :mod:`mamlpaper.stability`, so every notebook
reads a map the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from matplotlib.collections import QuadMesh
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, Normalize
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import _checks, stability
from .atomic import atomic_paths

__all__ = [
    "use_style",
    "grid_edges",
    "stability_map",
    "probability_map",
    "seed_readings",
    "beta_50_band",
    "theory_curve",
    "alpha_line",
    "beta_line",
    "OUTLINE",
    "legend_below",
    "loss_map",
    "alpha_zero_line",
    "classifier_map",
    "beta_critical_figure",
    "gradient_norms",
    "curvature_bars",
    "save",
]

_STYLE = pathlib.Path(__file__).with_name("mamlpaper.mplstyle")
_BELOW_COLOUR = "black"
_ABOVE_COLOUR = "0.6"
_FORMATS = ("png", "pdf")
# Timestamps and version strings are the only varying parts of matplotlib's output.
_METADATA = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


def use_style() -> None:
    """Apply the package style so every notebook's figures look alike."""
    plt.style.use(_STYLE)


def _style_rc() -> dict:
    """Saving settings read from the shipped style, so output does not depend on the session."""
    rc = mpl.rc_params_from_file(_STYLE, use_default_template=False)
    return {k: v for k, v in rc.items() if k.startswith(("savefig.", "pdf."))}


def _floats(x, name: str) -> np.ndarray:
    """Real numbers as a float array (NaN and inf allowed: diverged cells), or one line naming ``name``."""
    return _checks.real_array(name, x, finite=False)


def _edges(values, name: str) -> np.ndarray:
    """Cell edges of a log grid, with errors naming the caller's parameter."""
    v = _checks.grid(name, values, increasing=True)
    logs = np.log(v)
    if v.size == 1:
        half = 0.5 * math.log(10.0)
        return np.exp(np.array([logs[0] - half, logs[0] + half]))
    mids = 0.5 * (logs[:-1] + logs[1:])
    first = 2 * logs[0] - mids[0]
    last = 2 * logs[-1] - mids[-1]
    return np.exp(np.concatenate([[first], mids, [last]]))


def grid_edges(values) -> np.ndarray:
    """Cell edges for a log-spaced grid such as 1…9×10^k.

    Inner edges are geometric means of neighbours; the outer ones mirror the nearest inner
    edge in log space, so every value sits strictly inside its own cell. A single value gets
    a cell one decade wide.
    """
    return _edges(values, "values")


def _default_norm(finite: np.ndarray) -> LogNorm:
    """LogNorm over the finite positive losses; clip=True colours zeros as the minimum."""
    positive = finite[finite > 0]
    if positive.size == 0:
        return LogNorm(vmin=0.1, vmax=10.0, clip=True)
    vmin, vmax = float(positive.min()), float(positive.max())
    if vmin == vmax:
        vmin, vmax = vmin / math.sqrt(10.0), vmax * math.sqrt(10.0)
    return LogNorm(vmin=vmin, vmax=vmax, clip=True)


def _map_axes(ax, x_edges: np.ndarray, y_edges: np.ndarray) -> None:
    """Log α and β axes that end on the grid's outer cell edges, labelled: every map's frame."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_xlabel("inner learning rate α")
    ax.set_ylabel("meta learning rate β")


def stability_map(
    ax,
    alphas,
    betas,
    values,
    *,
    threshold=None,
    norm=None,
    cmap="viridis",
    colorbar=True,
    label="training loss",
) -> QuadMesh:
    """Draw an α×β map (rows β, columns α) on log axes; diverged (non-finite) cells stay blank.

    With ``threshold`` the map is binary as in the paper's Fig. 3 (black below, grey at or
    above) with a legend naming the three states; otherwise the loss is coloured on a log
    scale (non-positive losses take the lowest colour) with an optional colorbar.
    """
    x_edges = _edges(alphas, "alphas")
    y_edges = _edges(betas, "betas")
    v = _floats(values, "values")
    if v.ndim != 2:
        raise ValueError(f"values has ndim {v.ndim}: must be 2-D (len(betas), len(alphas))")
    expected = (y_edges.size - 1, x_edges.size - 1)
    if v.shape != expected:
        raise ValueError(
            f"values has shape {v.shape}: must be (len(betas), len(alphas)) = {expected}"
        )
    data = np.ma.masked_invalid(v)

    if threshold is not None:
        if norm is not None:
            raise ValueError(f"norm={norm!r}: must be None when threshold is given (binary map)")
        thr = _checks.real("threshold", threshold)
        map_cmap = ListedColormap([_BELOW_COLOUR, _ABOVE_COLOUR]).with_extremes(bad=(0, 0, 0, 0))
        map_norm: Normalize = BoundaryNorm([-np.inf, thr, np.inf], ncolors=2)
    else:
        map_cmap = cmap
        map_norm = norm if norm is not None else _default_norm(data.compressed())

    mesh = ax.pcolormesh(x_edges, y_edges, data, cmap=map_cmap, norm=map_norm, shading="flat")
    _map_axes(ax, x_edges, y_edges)

    if threshold is not None:
        handles = [
            Patch(facecolor=_BELOW_COLOUR, edgecolor=_BELOW_COLOUR, label=f"loss < {thr:g}"),
            Patch(facecolor=_ABOVE_COLOUR, edgecolor=_ABOVE_COLOUR, label=f"loss ≥ {thr:g}"),
            Patch(facecolor="none", edgecolor="0.3", linewidth=0.5, label="diverged (uncoloured)"),
        ]
        # An extra artist, so a later ax.legend() for the curves does not replace it; right of
        # the axes, where the continuous map has its colorbar, so a title above stays free.
        key = Legend(
            ax,
            handles,
            [h.get_label() for h in handles],
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
            handlelength=1.0,
            handletextpad=0.4,
            frameon=False,
        )
        ax.add_artist(key)
        key.set_clip_on(False)
    elif colorbar:
        ax.get_figure().colorbar(mesh, ax=ax, label=label)
    return mesh


def probability_map(ax, alphas, betas, p, *, label="P(diverged) over seeds", colorbar=True) -> QuadMesh:
    """Draw the fraction of seeds whose run failed, per cell, from 0 (white) to 1 (dark red), on
    the same log axes and cell edges as :func:`stability_map`."""
    x_edges = _edges(alphas, "alphas")
    y_edges = _edges(betas, "betas")
    v = _floats(p, "p")
    if v.shape != (y_edges.size - 1, x_edges.size - 1):
        raise ValueError(f"p has shape {v.shape}: must be (len(betas), len(alphas)) = "
                         f"{(y_edges.size - 1, x_edges.size - 1)}")
    if np.any((v < 0) | (v > 1)):
        raise _checks.refuse("p", "values outside [0, 1]", "p holds probabilities, each in [0, 1]")
    mesh = ax.pcolormesh(x_edges, y_edges, v, cmap="Reds", norm=Normalize(0.0, 1.0), shading="flat")
    _map_axes(ax, x_edges, y_edges)
    if colorbar:
        ax.get_figure().colorbar(mesh, ax=ax, label=label)
    return mesh


def seed_readings(ax, readings, *, label, color="C0", marker="o"):
    """Per-seed β_c(α) as points (a small horizontal jitter per seed, so equal readings stay
    visible) with their median as a line, on log axes; α = 0 is left out (draw it with
    :func:`beta_line`). ``readings``: columns seed, alpha, beta_c (``stability.measured_beta_critical``)."""
    import seaborn as sns

    for column in ("seed", "alpha", "beta_c"):
        if not hasattr(readings, "columns") or column not in readings.columns:
            raise _checks.refuse("readings", readings, "readings must be a DataFrame with columns seed, alpha, "
                                 "beta_c (stability.measured_beta_critical)", shown=type(readings).__name__)
    data = readings[(readings["alpha"] > 0) & np.isfinite(readings["beta_c"])].copy()
    seeds = sorted(data["seed"].unique())
    offsets = {seed: 1.0 + 0.06 * (i - (len(seeds) - 1) / 2) / max(len(seeds), 1) for i, seed in enumerate(seeds)}
    data["jittered"] = data["alpha"] * data["seed"].map(offsets)
    with _keep_limits(ax) if ax.has_data() else contextlib.nullcontext():
        sns.scatterplot(data=data, x="jittered", y="beta_c", ax=ax, color=color, marker=marker, s=14,
                        alpha=0.6, linewidth=0, legend=False)
        median = data.groupby("alpha")["beta_c"].median()
        (line,) = ax.plot(median.index, median.to_numpy(), color=color, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inner learning rate α")
    ax.set_ylabel("measured β_c(α)")
    return line


def beta_50_band(ax, table, *, label, color="C0", zero_line=True, **kwargs) -> Line2D:
    """β_50(α) of a boundary search (``stability.beta_50``) as a line over α > 0 inside its interval
    band; α = 0, which a log axis cannot show, as a dashed horizontal line with its interval as a
    light horizontal band (``zero_line=False`` leaves it out). Censored ends are drawn at the edge
    of the axes (an infinite upper end fills to the top), censored medians are not drawn as points."""
    needed = ("alpha", "beta_50", "low", "high", "censored")
    if not hasattr(table, "columns") or not set(needed) <= set(table.columns):
        raise _checks.refuse("table", table, "table must be the DataFrame stability.beta_50 returns (columns "
                             f"{', '.join(needed)})", shown=type(table).__name__)
    inner = table[table["alpha"] > 0].sort_values("alpha")
    alphas = inner["alpha"].to_numpy(float)
    edge = np.finfo(float).max ** 0.5
    low = np.clip(inner["low"].to_numpy(float), 1 / edge, edge)
    high = np.clip(inner["high"].to_numpy(float), 1 / edge, edge)
    median = np.where(inner["censored"].to_numpy(str) == "", inner["beta_50"].to_numpy(float), np.nan)
    with _keep_limits(ax) if ax.has_data() else contextlib.nullcontext():
        ax.fill_between(alphas, low, high, color=color, alpha=0.25, linewidth=0)
        (line,) = ax.plot(alphas, median, color=color, marker="o", markersize=2.5, label=label, **kwargs)
        zero = table[table["alpha"] == 0]
        if zero_line and len(zero):
            row = zero.iloc[0]
            if row["censored"] == "":
                ax.axhline(row["beta_50"], color=color, linestyle="--", linewidth=0.9, **kwargs)
            ax.axhspan(np.clip(row["low"], 1 / edge, edge), np.clip(row["high"], 1 / edge, edge), color=color,
                       alpha=0.12, linewidth=0)
    return line


@contextlib.contextmanager
def _keep_limits(ax):
    """Overlays must not rescale the map they are drawn on."""
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    try:
        yield
    finally:
        ax.set_xlim(xlim, auto=None)
        ax.set_ylim(ylim, auto=None)


def theory_curve(ax, alphas, beta_c, *, label, **kwargs) -> Line2D:
    """Overlay β_c(α) in data coordinates, clipped to the map.

    Points with β_c ≤ 0 (no stable β) or non-finite values are not drawn, nor α ≤ 0 on a log
    α axis; the axes limits are left as they are.
    """
    a = _floats(alphas, "alphas")
    b = _floats(beta_c, "beta_c")
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"alphas has shape {a.shape}: must be a non-empty 1-D array")
    if b.shape != a.shape:
        raise ValueError(f"beta_c has shape {b.shape}: must match alphas, shape {a.shape}")
    with np.errstate(invalid="ignore"):
        hidden = ~np.isfinite(a) | ~np.isfinite(b) | (b <= 0)
        if ax.get_xscale() == "log":
            hidden |= a <= 0
    with _keep_limits(ax):
        (line,) = ax.plot(
            np.ma.array(a, mask=hidden),
            np.ma.array(b, mask=hidden),
            label=label,
            scalex=False,
            scaley=False,
            **kwargs,
        )
    return line


def mark_cells(ax, alphas, betas, mask, *, label, **kwargs):
    """A marker at the centre of every cell where ``mask`` (shape (len(betas), len(alphas))) is
    true, e.g. runs that stayed finite only because the model collapsed; None when none is."""
    x = _floats(alphas, "alphas")
    y = _floats(betas, "betas")
    m = np.asarray(mask)
    if m.dtype != bool:
        raise _checks.refuse("mask", mask, "mask must be a bool array")
    if m.shape != (y.size, x.size):
        raise ValueError(f"mask has shape {m.shape}: must be (len(betas), len(alphas)) = {(y.size, x.size)}")
    rows, cols = np.nonzero(m)
    if rows.size == 0:
        return None
    style = {"marker": "x", "s": 6, "linewidths": 0.6, "color": "white", **kwargs}
    with _keep_limits(ax):
        return ax.scatter(x[cols], y[rows], label=label, **style)


def _level(name: str, value) -> float | None:
    """A positive level for a reference line; +inf means there is none to draw."""
    x = _checks.real(name, value, above=0.0, allow_inf=True)
    return None if math.isinf(x) else x


def alpha_line(ax, alpha_c, *, label="α_c", **kwargs) -> Line2D | None:
    """Dashed vertical line at α_c; None (nothing drawn) when α_c is infinite (no α limit)."""
    x = _level("alpha_c", alpha_c)
    if x is None:
        return None
    style = {"linestyle": "--", "label": label, **kwargs}
    with _keep_limits(ax):
        (line,) = ax.plot(
            [x, x], [0, 1], transform=ax.get_xaxis_transform(), scalex=False, scaley=False,
            **style,
        )
    return line


def beta_line(ax, beta, *, label, **kwargs) -> Line2D | None:
    """Dashed horizontal line at β (e.g. where α=0 starts to diverge); None when β is inf."""
    y = _level("beta", beta)
    if y is None:
        return None
    style = {"linestyle": "--", "label": label, **kwargs}
    with _keep_limits(ax):
        (line,) = ax.plot(
            [0, 1], [y, y], transform=ax.get_yaxis_transform(), scalex=False, scaley=False,
            **style,
        )
    return line


OUTLINE = [patheffects.Stroke(linewidth=2.2, foreground="black"), patheffects.Normal()]
"""``path_effects`` of a line drawn over a map: a black edge keeps it visible on every colour."""


def legend_below(ax, *, ncol: int = 2, anchor=(0.5, -0.2)) -> Legend | None:
    """The legend of ``ax`` under it, small and frameless, since a map's overlays leave no room
    inside; ``anchor`` is its top centre in axes coordinates. None (nothing drawn) when nothing is
    labelled."""
    ncol = _checks.integer("ncol", ncol, minimum=1)
    where = _checks.real_array("anchor", anchor)
    if where.shape != (2,):
        raise _checks.refuse("anchor", anchor, "anchor must be two numbers (x, y) in axes coordinates")
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(loc="upper center", bbox_to_anchor=anchor, ncol=ncol, fontsize="x-small", frameon=False)


def loss_map(table, *, title: str, collapsed_label: str):
    """A sweep's α × β map over α > 0 as a new figure, for the overlays (bounds, β_50, the α = 0
    line) to be drawn on: the final loss, the median over the seeds that stayed finite (uncoloured
    where most diverged), and a red × where most finite runs collapsed, since such a run neither
    diverged nor trained. α = 0 has no cell on a log axis. Returns (fig, ax)."""
    title, collapsed_label = _checks.text("title", title), _checks.text("collapsed_label", collapsed_label)
    needed = ("alpha", "beta", "seed", "diverged", "collapsed", "loss_final")
    if not hasattr(table, "columns") or not set(needed) <= set(table.columns) or not (table["alpha"] > 0).any():
        raise _checks.refuse("table", table, f"table must be a run_sweep table (columns {', '.join(needed)}) with "
                             "some alpha > 0", shown=type(table).__name__)
    inner = table[table["alpha"] > 0]
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    a, b, values = stability.as_grid(stability.median_map(inner), "loss_final")
    median = "median " if inner["seed"].nunique() > 1 else ""
    stability_map(ax, a, b, values, label=f"{median}training loss at the end")
    collapsed = stability.median_map(inner.assign(collapsed=inner["collapsed"].astype(float)), "collapsed")
    mark_cells(ax, a, b, stability.as_grid(collapsed, "collapsed")[2] >= 0.5, label=collapsed_label, color="red")
    ax.set_title(title)
    return fig, ax


def alpha_zero_line(ax, table) -> Line2D | None:
    """The α = 0 runs of a one-seed sweep on its map, where a log α axis has no room for them: a
    white dashed line on the upper edge of the cell of the largest β that stayed finite at α = 0,
    the β above which joint training diverges (the paper's dashed line). None where nothing
    failed at α = 0 (no such β in the grid) or everything did."""
    reading = stability.measured_beta_critical(table)
    if reading["alpha"].duplicated().any() or not (reading["alpha"] == 0).any():
        raise _checks.refuse("table", table, "table must be one seed's sweep with alpha = 0", shown="DataFrame")
    beta0 = float(reading.loc[reading["alpha"] == 0, "beta_c"].iloc[0])
    if np.isnan(beta0):
        return None
    betas = np.sort(table["beta"].unique())
    upper = grid_edges(betas)[np.searchsorted(betas, beta0) + 1] if beta0 < betas[-1] else np.inf
    return beta_line(ax, upper, label=f"α = 0 diverges above β = {beta0:g}", color="white", linewidth=1.0,
                     path_effects=OUTLINE)


def classifier_map(table, *, title: str, beta_50=None):
    """Fig. 4b/4c and 6b/6c: a few-shot sweep of one seed as :func:`loss_map` draws it, with the α = 0
    line of the same sweep (:func:`alpha_zero_line`) and, where a boundary search was run, its β_50
    over α > 0 (``stability.beta_50``; its α = 0 is the line already) and the legend. Returns the figure."""
    if beta_50 is not None and (not hasattr(beta_50, "columns") or "seeds" not in beta_50.columns):
        raise _checks.refuse("beta_50", beta_50, "beta_50 must be None or the DataFrame stability.beta_50 returns",
                             shown=type(beta_50).__name__)
    fig, ax = loss_map(table, title=title, collapsed_label="finite but collapsed to one class")
    alpha_zero_line(ax, table)
    if beta_50 is not None:
        beta_50_band(ax, beta_50, label=f"searched β_50 ({int(beta_50['seeds'].iloc[0])} seeds)", color="magenta",
                     zero_line=False, path_effects=OUTLINE)
    legend_below(ax)
    return fig


_BETA_C_LINES = (("sgd", "finite", "SGD, finite", "C0", "o", "-"),
                 ("sgd", "trained", "SGD, trained", "C0", "x", ":"),
                 ("adam", "finite", "Adam, finite", "C1", "s", "-"),
                 ("adam", "trained", "Adam, trained", "C1", "+", ":"),
                 ("sgd", "learned", "SGD, accuracy ≥ {learned:.0%}", "C2", "^", "--"))
"""(optimizer, reading, label, colour, marker, line style) of each line of :func:`beta_critical_figure`."""


def beta_critical_figure(per_alpha, betas, *, title: str, learned: float = stability.LEARNED_ACCURACY):
    """The measured β_c(α) of a few-shot notebook (``stability.beta_c_per_alpha``) as lines over α > 0,
    SGD and Adam, finite and trained, and SGD's "learned", with each optimizer's finite β_c(0) as a
    dashed line: the claim is read by comparing the lines' highest point with the dashed one. The
    axes span the grid (``betas``) with a factor 2 of margin. Returns the figure."""
    title = _checks.text("title", title)
    learned = _checks.real("learned", learned, above=0.0)
    grid = _checks.grid("betas", betas, increasing=True)
    needed = {(optimizer, reading) for optimizer, reading, *_ in _BETA_C_LINES}
    if not hasattr(per_alpha, "columns") or not needed <= set(per_alpha.columns) or not (per_alpha.index > 0).any():
        raise _checks.refuse("per_alpha", per_alpha, "per_alpha must be the DataFrame stability.beta_c_per_alpha "
                             "returns for sgd and adam", shown=type(per_alpha).__name__)
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    for optimizer, reading, name, colour, marker, style in _BETA_C_LINES:
        bc = per_alpha[optimizer, reading]
        inner = bc[bc.index > 0]
        ax.plot(inner.index, inner.to_numpy(), color=colour, marker=marker, markersize=3, linewidth=0.9,
                linestyle=style, label=f"measured, {name.format(learned=learned)}")
    for optimizer, name, colour in [("sgd", "SGD", "C0"), ("adam", "Adam", "C1")]:
        zero = per_alpha[optimizer, "finite"].get(0.0, np.nan)
        if not np.isnan(zero):
            beta_line(ax, zero, label=f"finite at α = 0, {name}", color=colour, linewidth=0.8)
    alphas = per_alpha.index[per_alpha.index > 0]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(alphas[0] / 2, alphas[-1] * 2)
    ax.set_ylim(grid[0] / 2, grid[-1] * 2)
    ax.set_xlabel("inner learning rate α")
    ax.set_ylabel("largest β of the reading, β_c(α)")
    ax.set_title(title)
    legend_below(ax)
    return fig


def gradient_norms(norms, *, window: int, title: str):
    """Fig. 1: per-task gradient norms over training, one column of ``norms`` (a DataFrame indexed by
    iteration, from 0) per run, each raw (faint) and as a running mean over ``window`` iterations,
    since the raw curve of a stochastic meta-batch is too noisy to compare runs by. Returns the figure."""
    window = _checks.integer("window", window, minimum=1)
    title = _checks.text("title", title)
    if not hasattr(norms, "columns") or norms.empty:
        raise _checks.refuse("norms", norms, "norms must be a non-empty DataFrame, one column per run",
                             shown=type(norms).__name__)
    smooth = norms.rolling(window, min_periods=1).mean()
    fig, ax = plt.subplots()
    for i, label in enumerate(norms):
        ax.plot(norms.index, norms[label], color=f"C{i}", alpha=0.2, linewidth=0.4)
        ax.plot(smooth.index, smooth[label], color=f"C{i}", label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean per-task gradient norm")
    ax.set_xlim(0, norms.index[-1])
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(loc="lower right")
    return fig


_CURVATURE_NAMES = {"Tg": "Tg", "H2": "H²", "Tg+H2": "Tg + H²"}
_CURVATURE_PANELS = (("λ_1", "(a) largest eigenvalue", ("Tg", "H2", "Tg+H2")),
                     ("λ_2", "(b) second-largest eigenvalue", ("Tg", "H2", "Tg+H2")),
                     ("‖·‖_F", "(c) Frobenius norm", ("Tg", "H2")))


def curvature_bars(curvature, *, title: str, errors: bool):
    """Fig. 5: Tg against H² as bars, three panels (largest and second-largest eigenvalue, Frobenius
    norm), each bar labelled with its value, since the claim is a ratio to read off. ``curvature``:
    rows Tg, H2, Tg+H2; columns λ_1, λ_2, ‖·‖_F and, for ``errors`` (norms estimated from random
    probes), ‖·‖_F std. error, drawn as ± two standard errors. Returns the figure."""
    title, errors = _checks.text("title", title), _checks.flag("errors", errors)
    columns = ["λ_1", "λ_2", "‖·‖_F"] + (["‖·‖_F std. error"] if errors else [])
    if not hasattr(curvature, "columns") or not set(columns) <= set(curvature.columns) or not set(
            _CURVATURE_NAMES) <= set(curvature.index):
        raise _checks.refuse("curvature", curvature, "curvature must be a DataFrame with rows "
                             f"{', '.join(_CURVATURE_NAMES)} and columns {', '.join(columns)}",
                             shown=type(curvature).__name__)
    fig, axes = plt.subplots(1, 3, figsize=(6.8, 2.2))
    for ax, (column, panel, names) in zip(axes, _CURVATURE_PANELS):
        names = list(names)
        heights = curvature.loc[names, column].to_numpy(float)
        bars = ax.bar([_CURVATURE_NAMES[n] for n in names], heights, color=[f"C{i}" for i in range(len(names))])
        if column == "‖·‖_F" and errors:
            spread = 2 * curvature.loc[names, "‖·‖_F std. error"].to_numpy(float)
            ax.bar_label(bars, [f"{h:.3g}\n± {e:.1g}" for h, e in zip(heights, spread)], fontsize=6)
        else:
            ax.bar_label(bars, fmt="%.3g", fontsize=6)
        ax.set_title(panel, pad=12)
        ax.set_ylim(0, 1.2 * heights.max())
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    fig.suptitle(title, y=1.1)
    fig.subplots_adjust(wspace=0.45)
    return fig


def _check_name(name) -> str:
    """A figure name is a bare stem: save() adds the directory and both suffixes itself."""
    if not isinstance(name, str) or not name:
        raise _checks.refuse("name", name, "name must be a non-empty file stem such as 'fig3'")
    separators = {"/", "\\", os.sep, os.altsep} - {None}
    if any(s in name for s in separators) or name.startswith(".") or pathlib.PurePath(name).suffix:
        raise ValueError(
            f"name={name!r}: must be a bare file stem"
            " (no path separator, no suffix, no leading dot)"
        )
    return name


def save(fig, name, directory) -> list[pathlib.Path]:
    """Write ``<directory>/<name>.png`` and ``.pdf`` byte-identically across runs.

    Both files are rendered to temporary files in the target directory first and only then
    renamed into place, so a failure leaves the previous figures untouched and no partial
    file behind. A figure with a layout engine (``layout="constrained"``) is laid out from
    its previous draw, so only its first save in a process is reproducible; the package
    style uses no layout engine, which makes every save identical.
    """
    stem = _check_name(name)
    if not isinstance(directory, (str, os.PathLike)):
        raise _checks.refuse("directory", directory, "directory must be a str or os.PathLike")
    out_dir = pathlib.Path(directory)
    rc = _style_rc()
    targets = [out_dir / f"{stem}.{fmt}" for fmt in _FORMATS]
    with mpl.rc_context(rc), atomic_paths(targets) as temps:
        for fmt, tmp in zip(_FORMATS, temps):
            with open(tmp, "wb") as fh:
                fig.savefig(fh, format=fmt, dpi=rc["savefig.dpi"], metadata=_METADATA[fmt])
    return targets
