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
