"""Tests of mamlpaper.plotting: grid edges, stability maps, overlays, deterministic saving."""

import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import LogNorm, to_rgba  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402

from mamlpaper import plotting  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def decade_grid(lo: int, hi: int) -> np.ndarray:
    """The paper's grids: 1, 2, …, 9 × 10^k for k = lo … hi."""
    return np.array([m * 10.0**k for k in range(lo, hi + 1) for m in range(1, 10)])


@pytest.fixture
def fig_ax():
    with matplotlib.rc_context():
        plotting.use_style()
        fig, ax = plt.subplots()
        yield fig, ax
    plt.close(fig)


def sample_map(fig_ax):
    """A small map with converged, slow and diverged cells."""
    fig, ax = fig_ax
    alphas, betas = decade_grid(-3, -2), decade_grid(-1, 0)
    values = np.full((betas.size, alphas.size), 1e-3)
    values[betas > 2.0, :] = 0.5
    values[betas > 5.0, :] = np.nan
    values[0, 0] = np.inf
    plotting.stability_map(ax, alphas, betas, values, threshold=1e-2)
    plotting.theory_curve(ax, alphas, 3.0 / (1 + alphas), label="β_c")
    plotting.alpha_line(ax, 5e-2)
    plotting.beta_line(ax, 2.0, label="β_c(0)")
    ax.legend(loc="lower left")
    return fig


# ---- grid_edges -------------------------------------------------------------------------


def test_grid_edges_on_decade_grid():
    values = decade_grid(-2, 0)
    edges = plotting.grid_edges(values)
    assert edges.shape == (values.size + 1,)
    np.testing.assert_allclose(edges[1:-1], np.sqrt(values[:-1] * values[1:]), rtol=1e-12)
    assert np.all(edges[:-1] < values) and np.all(values < edges[1:])
    # Outer edges mirror the nearest inner edge in log space.
    np.testing.assert_allclose(edges[0], values[0] ** 2 / edges[1], rtol=1e-12)
    np.testing.assert_allclose(edges[-1], values[-1] ** 2 / edges[-2], rtol=1e-12)
    # Non-uniform in log space: the 9→10 cell is much narrower than the 1→2 cell.
    log_widths = np.diff(np.log(edges))
    assert log_widths.max() / log_widths.min() > 5


def test_grid_edges_single_value_gets_one_decade():
    np.testing.assert_allclose(plotting.grid_edges([1e-2]), [1e-2 / 10**0.5, 1e-2 * 10**0.5])


@pytest.mark.parametrize(
    "bad",
    [[], [0.0, 1.0], [-1.0, 1.0], [1.0, np.nan], [1.0, np.inf], [2.0, 1.0], [1.0, 1.0], [[1.0]]],
)
def test_grid_edges_rejects_bad_grids(bad):
    with pytest.raises(ValueError, match="values") as err:
        plotting.grid_edges(bad)
    assert "\n" not in str(err.value)


# ---- stability_map ----------------------------------------------------------------------


def test_non_finite_cells_are_masked(fig_ax):
    _, ax = fig_ax
    alphas, betas = decade_grid(-3, -3), decade_grid(-1, -1)
    values = np.ones((9, 9))
    values[2, 3] = np.nan
    values[4, :] = np.nan
    values[7, 8] = np.inf
    mesh = plotting.stability_map(ax, alphas, betas, values)
    arr = mesh.get_array()
    mask = np.ma.getmaskarray(arr).reshape(values.shape)
    np.testing.assert_array_equal(mask, ~np.isfinite(values))
    rgba = mesh.to_rgba(arr).reshape(9, 9, 4)
    assert np.all(rgba[~np.isfinite(values), 3] == 0)  # uncoloured: background shows through
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "inner learning rate α"
    assert ax.get_ylabel() == "meta learning rate β"
    edges_a, edges_b = plotting.grid_edges(alphas), plotting.grid_edges(betas)
    np.testing.assert_allclose(ax.get_xlim(), (edges_a[0], edges_a[-1]))
    np.testing.assert_allclose(ax.get_ylim(), (edges_b[0], edges_b[-1]))


def test_binary_threshold_colours_and_legend(fig_ax):
    fig, ax = fig_ax
    alphas, betas = np.array([1e-3, 1e-2, 1e-1]), np.array([0.1, 1.0])
    values = np.array([[1e-3, 1e-2, np.nan], [0.5, 9.99e-3, 2.0]])
    mesh = plotting.stability_map(ax, alphas, betas, values, threshold=1e-2)
    rgba = mesh.to_rgba(mesh.get_array()).reshape(2, 3, 4)
    black, grey = to_rgba("black"), to_rgba("0.6")
    expected = [[black, grey, None], [grey, black, grey]]
    for i in range(2):
        for j in range(3):
            if expected[i][j] is None:
                assert rgba[i, j, 3] == 0
            else:
                np.testing.assert_allclose(rgba[i, j], expected[i][j])
    keys = [c for c in ax.get_children() if isinstance(c, Legend)]
    texts = [t.get_text() for k in keys for t in k.get_texts()]
    assert texts == ["loss < 0.01", "loss ≥ 0.01", "diverged (uncoloured)"]
    # A later legend for the curves must not replace the colour key.
    plotting.theory_curve(ax, alphas, [1.0, 2.0, 3.0], label="β_c")
    ax.legend()
    assert keys[0] in ax.get_children() and ax.get_legend() is not keys[0]
    assert len(fig.axes) == 1  # binary map: no colorbar


def test_continuous_map_uses_lognorm_and_colorbar(fig_ax):
    fig, ax = fig_ax
    values = np.array([[1e-4, 1e-2], [np.nan, 1.0]])
    mesh = plotting.stability_map(ax, [1e-2, 1e-1], [0.1, 1.0], values, label="loss")
    assert isinstance(mesh.norm, LogNorm)
    assert (mesh.norm.vmin, mesh.norm.vmax) == (1e-4, 1.0)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "loss"


@pytest.mark.parametrize("threshold", [None, 1e-2])
def test_all_nan_map_draws_without_warnings(fig_ax, threshold):
    fig, ax = fig_ax
    alphas, betas = decade_grid(-2, -1), decade_grid(-1, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mesh = plotting.stability_map(
            ax, alphas, betas, np.full((betas.size, alphas.size), np.nan), threshold=threshold
        )
        fig.canvas.draw()
    assert np.ma.getmaskarray(mesh.get_array()).all()
    edges = plotting.grid_edges(alphas)
    np.testing.assert_allclose(ax.get_xlim(), (edges[0], edges[-1]))
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


@pytest.mark.parametrize(
    ("alphas", "betas", "values", "kwargs", "name"),
    [
        ([1e-2, 1e-1], [0.1, 1.0, 2.0], np.ones((2, 2)), {}, "values"),
        ([1e-2, 1e-1], [0.1, 1.0], np.ones((2, 3)), {}, "values"),
        ([1e-2, 1e-1], [0.1, 1.0], np.ones(4), {}, "values"),
        ([0.0, 1e-1], [0.1, 1.0], np.ones((2, 2)), {}, "alphas"),
        ([1e-2, 1e-1], [-0.1, 1.0], np.ones((2, 2)), {}, "betas"),
        ([1e-2, 1e-1], [0.1, 1.0], np.ones((2, 2)), {"threshold": np.nan}, "threshold"),
        ([1e-2, 1e-1], [0.1, 1.0], np.ones((2, 2)), {"threshold": 1, "norm": LogNorm()}, "norm"),
    ],
)
def test_stability_map_rejects_bad_input(fig_ax, alphas, betas, values, kwargs, name):
    _, ax = fig_ax
    with pytest.raises(ValueError, match=name) as err:
        plotting.stability_map(ax, alphas, betas, values, **kwargs)
    assert "\n" not in str(err.value)


# ---- overlays ---------------------------------------------------------------------------


def test_theory_curve_masks_and_keeps_limits(fig_ax):
    _, ax = fig_ax
    alphas, betas = decade_grid(-3, -2), decade_grid(-1, 0)
    plotting.stability_map(ax, alphas, betas, np.ones((betas.size, alphas.size)))
    limits = (ax.get_xlim(), ax.get_ylim())
    a = np.array([1e-4, 1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 0.0])
    b = np.array([1e3, 1.0, -1.0, 0.0, np.nan, np.inf, 1.0])
    line = plotting.theory_curve(ax, a, b, label="β_c", color="C1")
    np.testing.assert_array_equal(
        np.ma.getmaskarray(line.get_ydata()), [False, False, True, True, True, True, True]
    )
    assert line.get_label() == "β_c"
    assert plotting.alpha_line(ax, 1e-1) is not None  # outside the map: clipped, not rescaled
    assert plotting.alpha_line(ax, np.inf) is None
    hline = plotting.beta_line(ax, 50.0, label="β_0")
    assert hline.get_linestyle() == "--" and hline.get_label() == "β_0"
    ax.figure.canvas.draw()
    assert (ax.get_xlim(), ax.get_ylim()) == limits


def test_mark_cells_marks_the_true_cells_at_their_grid_points(fig_ax):
    fig, ax = fig_ax
    alphas, betas = np.array([1e-3, 1e-2, 1e-1]), np.array([0.1, 1.0])
    plotting.stability_map(ax, alphas, betas, np.ones((2, 3)))
    limits = ax.get_xlim(), ax.get_ylim()
    mask = np.array([[False, True, False], [False, False, True]])
    points = plotting.mark_cells(ax, alphas, betas, mask, label="collapsed")
    np.testing.assert_allclose(points.get_offsets(), [[1e-2, 0.1], [1e-1, 1.0]])
    assert (ax.get_xlim(), ax.get_ylim()) == limits
    assert plotting.mark_cells(ax, alphas, betas, np.zeros((2, 3), bool), label="none") is None
    with pytest.raises(ValueError, match=r"mask has shape \(3, 2\)"):
        plotting.mark_cells(ax, alphas, betas, mask.T, label="wrong")


def test_theory_curve_keeps_alpha_zero_on_linear_axis(fig_ax):
    _, ax = fig_ax
    ax.set_yscale("log")
    line = plotting.theory_curve(ax, [0.0, 0.05, 0.1], [0.1, 0.2, -0.1], label="β_c")
    np.testing.assert_array_equal(np.ma.getmaskarray(line.get_ydata()), [False, False, True])


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, "x"])
def test_reference_lines_reject_bad_levels(fig_ax, bad):
    _, ax = fig_ax
    with pytest.raises(ValueError, match="alpha_c"):
        plotting.alpha_line(ax, bad)
    with pytest.raises(ValueError, match="beta"):
        plotting.beta_line(ax, bad, label="β")


def test_theory_curve_rejects_mismatched_lengths(fig_ax):
    with pytest.raises(ValueError, match="beta_c"):
        plotting.theory_curve(fig_ax[1], [1e-3, 1e-2], [1.0], label="β_c")


# ---- save -------------------------------------------------------------------------------


def test_save_is_byte_identical_in_process(fig_ax, tmp_path):
    fig = sample_map(fig_ax)
    first = plotting.save(fig, "fig", tmp_path / "a")
    second = plotting.save(fig, "fig", tmp_path / "b")
    assert [p.name for p in first] == ["fig.png", "fig.pdf"]
    for p, q in zip(first, second):
        assert p.read_bytes() == q.read_bytes()
    assert first[0].read_bytes().startswith(b"\x89PNG")
    assert first[1].read_bytes().startswith(b"%PDF")
    assert b"CreationDate" not in first[1].read_bytes()
    assert sorted(os.listdir(tmp_path / "a")) == ["fig.pdf", "fig.png"]


SCRIPT = textwrap.dedent(
    """
    import sys
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from mamlpaper import plotting

    plotting.use_style()
    alphas = np.array([m * 10.0**k for k in (-3, -2) for m in range(1, 10)])
    betas = np.array([m * 10.0**k for k in (-1, 0) for m in range(1, 10)])
    values = np.outer(betas, 1 + alphas) * 1e-3
    values[betas > 5, :] = np.nan
    fig, ax = plt.subplots()
    plotting.stability_map(ax, alphas, betas, values, threshold=1e-3)
    plotting.theory_curve(ax, alphas, 2 / (10 - alphas * 100), label="β_c(α) ≥ 0")
    plotting.alpha_line(ax, 0.05)
    ax.legend(loc="lower left")
    plotting.save(fig, "map", sys.argv[1])
    """
)


def test_save_is_byte_identical_across_processes(tmp_path):
    """Separate interpreters (different hash seeds) must subset fonts and write PDFs alike."""
    script = tmp_path / "render.py"
    script.write_text(SCRIPT, encoding="utf-8")
    procs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "MPLBACKEND": "Agg"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / seed)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    names = sorted(os.listdir(tmp_path / "1"))
    assert names == ["map.pdf", "map.png"]
    for name in names:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name


@pytest.mark.parametrize("failing_format", ["png", "pdf"])
def test_failed_save_leaves_old_figures_and_no_temp(fig_ax, tmp_path, monkeypatch, failing_format):
    fig, ax = fig_ax
    ax.plot([1, 2, 3], label="before")
    good = {p.name: p.read_bytes() for p in plotting.save(fig, "fig", tmp_path)}
    real_savefig = fig.savefig

    def broken_savefig(fname, *args, **kwargs):
        if kwargs.get("format") != failing_format:
            return real_savefig(fname, *args, **kwargs)
        fname.write(b"partial figure bytes")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken_savefig)
    ax.set_title("changed")
    with pytest.raises(RuntimeError, match="disk full"):
        plotting.save(fig, "fig", tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(good)
    for name, data in good.items():
        assert (tmp_path / name).read_bytes() == data
    with pytest.raises(RuntimeError, match="disk full"):
        plotting.save(fig, "other", tmp_path / "fresh")
    assert os.listdir(tmp_path / "fresh") == []


@pytest.mark.parametrize("name", ["", "a/b", "fig.png", ".hidden", None])
def test_save_rejects_bad_names(fig_ax, tmp_path, name):
    with pytest.raises(ValueError, match="name") as err:
        plotting.save(fig_ax[0], name, tmp_path)
    assert "\n" not in str(err.value)
    assert os.listdir(tmp_path) == []


# ---- notebook figures: the maps with their overlays, β_c(α), Fig. 1, Fig. 5 -------------------


def sweep_table(seeds=(0,)):
    """A run_sweep-like table on α ∈ {0, 0.1, 1} × β ∈ {1, 3, 10}: α = 0 finite up to 3, α = 0.1 finite
    everywhere (collapsed at 10), α = 1 diverged from 3 up; losses 1 + α + β/100, the same per seed."""
    import pandas as pd

    rows = []
    for seed in seeds:
        for alpha in (0.0, 0.1, 1.0):
            for beta in (1.0, 3.0, 10.0):
                diverged = (alpha == 0 and beta == 10) or (alpha == 1 and beta > 1)
                rows.append({"alpha": alpha, "beta": beta, "seed": seed, "diverged": diverged, "unstable": diverged,
                             "collapsed": alpha == 0.1 and beta == 10,
                             "loss_final": np.nan if diverged else 1 + alpha + beta / 100})
    return pd.DataFrame(rows)


def close_after(fig):
    plt.close(fig)
    return fig


def test_legend_below_only_when_something_is_labelled(fig_ax):
    _, ax = fig_ax
    assert plotting.legend_below(ax) is None and ax.get_legend() is None
    ax.plot([1, 2], label="a")
    ax.plot([1, 2], label="_hidden")
    legend = plotting.legend_below(ax, ncol=3, anchor=(1.1, -0.2))
    assert ax.get_legend() is legend and [t.get_text() for t in legend.get_texts()] == ["a"]
    assert legend._ncols == 3 and not legend.get_frame_on()
    with pytest.raises(ValueError, match="^ncol=0 is not allowed"):
        plotting.legend_below(ax, ncol=0)
    with pytest.raises(ValueError, match="^anchor="):
        plotting.legend_below(ax, anchor=(0.5,))


@pytest.mark.parametrize("seeds, label", [((0,), "training loss at the end"),
                                           ((0, 1, 2), "median training loss at the end")])
def test_loss_map_draws_alpha_above_zero_with_diverged_cells_blank_and_collapsed_ones_marked(seeds, label):
    with matplotlib.rc_context():
        plotting.use_style()
        fig, ax = plotting.loss_map(sweep_table(seeds), title="t", collapsed_label="collapsed")
    close_after(fig)
    (mesh,) = [c for c in ax.collections if hasattr(c, "get_array") and c.get_array() is not None
               and c.get_array().ndim == 2]
    values = mesh.get_array()  # rows β (1, 3, 10), columns α (0.1, 1): α = 0 has no cell
    assert values.shape == (3, 2)
    np.testing.assert_allclose(values[:, 0], [1.11, 1.13, 1.2])
    assert values.mask[:, 1].tolist() == [False, True, True] and values[0, 1] == pytest.approx(2.01)
    (marks,) = [c for c in ax.collections if c.get_label() == "collapsed"]
    np.testing.assert_allclose(marks.get_offsets(), [[0.1, 10.0]])
    assert fig.axes[1].get_ylabel() == label and ax.get_title() == "t"
    with pytest.raises(ValueError, match="^table=DataFrame is not allowed"):
        plotting.loss_map(sweep_table()[lambda t: t.alpha == 0], title="t", collapsed_label="c")


def test_alpha_zero_line_sits_on_the_edge_above_the_largest_finite_beta(fig_ax):
    _, ax = fig_ax
    line = plotting.alpha_zero_line(ax, sweep_table())
    edge = plotting.grid_edges([1.0, 3.0, 10.0])[2]  # between 3, which held, and 10, which diverged
    np.testing.assert_allclose(line.get_ydata(), [edge, edge])
    assert line.get_label() == "α = 0 diverges above β = 3" and line.get_color() == "white"
    never = sweep_table().assign(diverged=False)
    assert plotting.alpha_zero_line(ax, never) is None  # nothing failed at α = 0: no such β in the grid
    always = sweep_table().assign(diverged=True)
    assert plotting.alpha_zero_line(ax, always) is None
    with pytest.raises(ValueError, match="^table=DataFrame is not allowed; table must be one seed's sweep"):
        plotting.alpha_zero_line(ax, sweep_table((0, 1)))


def test_classifier_map_adds_the_alpha_zero_line_and_the_searched_band():
    import pandas as pd

    beta_50 = pd.DataFrame({"alpha": [0.0, 0.1], "beta_50": [3.0, 5.0], "low": [2.0, 4.0], "high": [4.0, 6.0],
                            "seeds": [3, 3], "censored": ["", ""]})
    with matplotlib.rc_context():
        plotting.use_style()
        ax = close_after(plotting.classifier_map(sweep_table(), title="t", beta_50=beta_50)).axes[0]
        bare = close_after(plotting.classifier_map(sweep_table(), title="t")).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["finite but collapsed to one class", "searched β_50 (3 seeds)",
                              "α = 0 diverges above β = 3"]
    assert "searched β_50 (3 seeds)" not in [t.get_text() for t in bare.get_legend().get_texts()]
    with pytest.raises(ValueError, match="^beta_50=dict is not allowed"):
        plotting.classifier_map(sweep_table(), title="t", beta_50={"alpha": [0.0]})


def test_beta_critical_figure_draws_each_reading_over_alpha_above_zero_and_the_finite_beta_c0():
    import pandas as pd

    alphas = [0.0, 0.1, 1.0]
    per_alpha = pd.DataFrame({("sgd", "finite"): [3.0, 10.0, 1.0], ("sgd", "trained"): [1.0, 1.0, 1.0],
                              ("sgd", "learned"): [np.nan, 1.0, 1.0], ("adam", "finite"): [np.nan, 3.0, 3.0],
                              ("adam", "trained"): [1.0, 1.0, 3.0]}, index=alphas)
    with matplotlib.rc_context():
        plotting.use_style()
        ax = close_after(plotting.beta_critical_figure(per_alpha, [1.0, 3.0, 10.0], title="t", learned=0.6)).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["measured, SGD, finite"].get_xdata(), [0.1, 1.0])
    np.testing.assert_allclose(lines["measured, SGD, finite"].get_ydata(), [10.0, 1.0])
    assert "measured, SGD, accuracy ≥ 60%" in lines
    np.testing.assert_allclose(lines["finite at α = 0, SGD"].get_ydata(), [3.0, 3.0])
    assert "finite at α = 0, Adam" not in lines  # NaN: every run at α = 0 failed
    assert ax.get_xlim() == pytest.approx((0.05, 2.0)) and ax.get_ylim() == pytest.approx((0.5, 20.0))
    with pytest.raises(ValueError, match="^per_alpha=DataFrame is not allowed"):
        plotting.beta_critical_figure(per_alpha.drop(columns=[("sgd", "learned")]), [1.0, 3.0], title="t")


def test_gradient_norms_draws_each_run_raw_and_as_its_running_mean():
    import pandas as pd

    norms = pd.DataFrame({"a": [1.0, 3.0, 5.0, 7.0], "b": [2.0, 2.0, 2.0, 2.0]})
    with matplotlib.rc_context():
        plotting.use_style()
        ax = close_after(plotting.gradient_norms(norms, window=2, title="t")).axes[0]
    raw_a, mean_a, raw_b, mean_b = ax.get_lines()
    np.testing.assert_allclose(raw_a.get_ydata(), [1, 3, 5, 7])
    np.testing.assert_allclose(mean_a.get_ydata(), [1, 2, 4, 6])
    assert mean_a.get_label() == "a" and raw_a.get_alpha() == 0.2 and mean_b.get_color() == raw_b.get_color()
    assert ax.get_xlim() == (0, 3) and [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    with pytest.raises(ValueError, match="^window=0 is not allowed"):
        plotting.gradient_norms(norms, window=0, title="t")


@pytest.mark.parametrize("errors", [False, True])
def test_curvature_bars_show_each_panel_and_the_norms_error_where_estimated(errors):
    import pandas as pd

    curvature = pd.DataFrame({"λ_1": [0.1, 2.0, 2.05], "λ_2": [0.05, 1.0, 1.02], "‖·‖_F": [0.3, 4.0, np.nan],
                              "‖·‖_F std. error": [0.01, 0.2, np.nan]}, index=["Tg", "H2", "Tg+H2"])
    with matplotlib.rc_context():
        plotting.use_style()
        axes = close_after(plotting.curvature_bars(curvature, title="t", errors=errors)).axes
    heights = [[bar.get_height() for bar in ax.patches] for ax in axes]
    assert heights == [[0.1, 2.0, 2.05], [0.05, 1.0, 1.02], [0.3, 4.0]]
    assert [t.get_text() for t in axes[2].get_xticklabels()] == ["Tg", "H²"]
    labels = [t.get_text() for t in axes[2].texts]
    assert any("±" in text for text in labels) == errors
    with pytest.raises(ValueError, match="^curvature=DataFrame is not allowed"):
        plotting.curvature_bars(curvature.drop(index="Tg"), title="t", errors=errors)
