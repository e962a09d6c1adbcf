"""Reading stability from several seeds, on hand-made tables whose answers are known."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from mamlpaper import stability


def table_from(outcomes: dict) -> pd.DataFrame:
    """{(alpha, beta): [diverged per seed]} -> a run_sweep-like table."""
    rows = [{"alpha": a, "beta": b, "seed": s, "diverged": bool(d), "unstable": bool(d), "collapsed": False}
            for (a, b), per_seed in outcomes.items() for s, d in enumerate(per_seed)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("k, n", [(0, 5), (5, 5), (2, 5), (1, 10), (7, 20)])
def test_wilson_interval_equals_scipys(k, n):
    low, high = stability.wilson_interval(k, n)
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert float(low) == pytest.approx(expected.low, abs=1e-12)
    assert float(high) == pytest.approx(expected.high, abs=1e-12)


def test_failure_probability_counts_seeds_per_cell():
    table = table_from({(0.0, 1.0): [0, 0, 0, 0], (0.0, 2.0): [1, 0, 1, 1], (0.1, 1.0): [1, 1, 1, 1]})
    cells = stability.failure_probability(table).set_index(["alpha", "beta"])
    assert cells.loc[(0.0, 2.0), "p"] == 0.75 and cells.loc[(0.0, 2.0), "failed"] == 3
    assert cells.loc[(0.0, 1.0), "low"] == 0.0 and 0.0 < cells.loc[(0.0, 1.0), "high"] < 1.0
    assert cells.loc[(0.1, 1.0), "high"] == 1.0 and cells["runs"].eq(4).all()


def test_claim_ratios_per_seed_and_their_summary():
    # seed 0: beta_c(0) = 1, beta_c(0.1) = 2 -> ratio 2; seed 1: beta_c(0) = 2, beta_c(0.1) = 2 -> 1;
    # seed 2: alpha = 0 diverges everywhere -> NaN
    table = table_from({
        (0.0, 1.0): [0, 0, 1], (0.0, 2.0): [1, 0, 1],
        (0.1, 1.0): [0, 0, 0], (0.1, 2.0): [0, 0, 1],
    })
    ratios = stability.claim_ratios(table).set_index("seed")
    assert ratios.loc[0, "ratio"] == 2.0 and ratios.loc[0, "at_alpha"] == 0.1
    assert ratios.loc[1, "ratio"] == 1.0 and np.isnan(ratios.loc[2, "ratio"])
    summary = stability.claim_summary(ratios.reset_index(), threshold=1.5)
    assert summary == {"seeds": 3, "with_ratio": 2, "median": 1.5, "min": 1.0, "max": 2.0, "threshold": 1.5,
                       "at_least": 1}
    assert stability.describe_claim(summary) == "ratio >= 1.5 in 1 of 3 seeds (median 1.5, range 1-2)"


def test_trained_reading_drops_runs_that_grew_or_collapsed():
    table = table_from({(0.0, 1.0): [0], (0.0, 2.0): [0], (0.1, 1.0): [0], (0.1, 2.0): [0]})
    table.loc[(table.alpha == 0.1) & (table.beta == 2.0), "collapsed"] = True
    assert stability.claim_ratios(table).ratio.iloc[0] == 1.0
    assert stability.claim_ratios(table, reading="trained").ratio.iloc[0] == 0.5


def test_marginal_cells_are_the_split_ones_and_those_bordering_the_boundary():
    # beta rows 1, 2, 3 x alpha columns 0, 0.1: majority diverges from beta = 3 at alpha = 0 and
    # from beta = 2 at alpha = 0.1; (0.1, 2.0) is split between seeds
    table = table_from({
        (0.0, 1.0): [0, 0, 0], (0.0, 2.0): [0, 0, 0], (0.0, 3.0): [1, 1, 1],
        (0.1, 1.0): [0, 0, 0], (0.1, 2.0): [1, 1, 0], (0.1, 3.0): [1, 1, 1],
    })
    cells = stability.marginal_cells(table).set_index(["alpha", "beta"])
    assert set(cells.index) == {(0.0, 2.0), (0.0, 3.0), (0.1, 1.0), (0.1, 2.0)}
    assert cells.loc[(0.1, 2.0), "reason"] == "seeds disagree"
    assert cells.loc[(0.0, 3.0), "reason"] == "borders the boundary"


def test_compare_precisions_says_which_cells_round_off_decided():
    low = table_from({(0.0, 1.0): [0, 1, 0], (0.0, 2.0): [1, 1, 1]})
    high = table_from({(0.0, 1.0): [0, 0, 0], (0.0, 2.0): [1, 1, 1]})
    cells = stability.compare_precisions(low, high).set_index(["alpha", "beta"])
    assert cells.loc[(0.0, 1.0), "changed"] == 1 and cells.loc[(0.0, 1.0), "decided_by"] == "round-off"
    assert cells.loc[(0.0, 2.0), "decided_by"] == "the problem"
    with pytest.raises(ValueError, match="high has a run that low lacks"):
        stability.compare_precisions(low, table_from({(0.5, 1.0): [0]}))


def test_median_map_keeps_cells_where_most_seeds_survive():
    table = table_from({(0.0, 1.0): [0, 0, 1], (0.0, 2.0): [1, 1, 0]})
    table["loss_final"] = [1.0, 3.0, np.nan, np.nan, np.nan, 7.0]
    cells = stability.median_map(table).set_index(["alpha", "beta"])["loss_final"]
    assert cells[(0.0, 1.0)] == 2.0 and np.isnan(cells[(0.0, 2.0)])


def test_probability_map_and_seed_readings_draw(tmp_path):
    import matplotlib.pyplot as plt

    from mamlpaper import plotting, sweep

    table = table_from({(a, b): [int(b > 2 + 10 * a), int(b > 1 + 10 * a)] for a in (0.0, 0.1, 0.2) for b in (1.0, 2.0, 3.0)})
    cells = stability.failure_probability(table)
    alphas, betas, p = sweep.as_grid(cells, "p")
    fig, (left, right) = plt.subplots(1, 2)
    mesh = plotting.probability_map(left, alphas[1:], betas, p[:, 1:])
    assert mesh.get_array().max() <= 1.0
    line = plotting.seed_readings(right, sweep.measured_beta_critical(table), label="median")
    assert list(line.get_xdata()) == [0.1, 0.2] and list(line.get_ydata()) == [2.5, 3.0]
    with pytest.raises(ValueError, match="^p="):
        plotting.probability_map(left, alphas[1:], betas, p[:, 1:] + 1.5)
    plt.close(fig)
