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


def test_claim_ratios_never_use_a_censored_reading_as_a_number():
    # betas 1, 2, 3; per seed (alpha = 0 | alpha = 0.1):
    # 0: flips at 2 | flips at 3 -> 2 / 1 = 2, exact;   1: beta_c 1 | never fails (>= 3) -> at least 3;
    # 2: never fails at alpha = 0 -> undetermined;      3: fails from beta = 1 at alpha = 0 -> undetermined;
    # 4: beta_c 2 | 2 -> 1, exact
    table = table_from({
        (0.0, 1.0): [0, 0, 0, 1, 0], (0.0, 2.0): [1, 1, 0, 1, 0], (0.0, 3.0): [1, 1, 0, 1, 1],
        (0.1, 1.0): [0, 0, 0, 0, 0], (0.1, 2.0): [0, 0, 0, 0, 0], (0.1, 3.0): [1, 0, 1, 1, 1],
    })
    ratios = stability.claim_ratios(table).set_index("seed")
    assert ratios["ratio_is"].tolist() == ["exact", "at least", "undetermined", "undetermined", "exact"]
    assert ratios.loc[0, "ratio"] == 2.0 and ratios.loc[0, "at_alpha"] == 0.1 and ratios.loc[1, "ratio"] == 3.0
    assert ratios.loc[4, "ratio"] == 1.0 and ratios[["ratio"]].iloc[2:4].isna().all().all()
    assert ratios["beta_c0_censored"].tolist() == ["", "", "above", "below", ""]
    summary = stability.claim_summary(ratios.reset_index(), threshold=1.5)
    assert summary == {"seeds": 5, "determined": 3, "median": 2.0, "min": 1.0, "max": 3.0, "threshold": 1.5,
                       "at_least": 2, "below": 1, "undetermined": 2}
    assert stability.describe_claim(summary) == ("ratio >= 1.5 in 2 of 5 seeds, below in 1, undetermined in 2 "
                                                 "(median 2, range 1-3)")
    at_least_low = stability.claim_summary(ratios.reset_index(), threshold=5.0)
    assert (at_least_low["at_least"], at_least_low["below"], at_least_low["undetermined"]) == (0, 2, 3)


def test_claim_summary_of_seeds_that_are_all_undetermined_says_so():
    table = table_from({(0.0, 1.0): [0, 0], (0.1, 1.0): [0, 1]})  # nothing fails at alpha = 0: beta_c(0) >= 1
    summary = stability.claim_summary(stability.claim_ratios(table))
    assert (summary["undetermined"], summary["determined"]) == (2, 0) and np.isnan(summary["median"])
    assert stability.describe_claim(summary).endswith("(no ratio determined: beta_c(0) is censored in every seed)")


def test_trained_reading_drops_runs_that_grew_or_collapsed():
    table = table_from({(0.0, 1.0): [0], (0.0, 2.0): [1], (0.1, 1.0): [0], (0.1, 2.0): [0], (0.1, 3.0): [1]})
    table.loc[(table.alpha == 0.1) & (table.beta == 2.0), "collapsed"] = True
    assert stability.claim_ratios(table).ratio.iloc[0] == 2.0
    assert stability.claim_ratios(table, reading="trained").ratio.iloc[0] == 1.0


def test_median_map_keeps_cells_where_most_seeds_survive():
    table = table_from({(0.0, 1.0): [0, 0, 1], (0.0, 2.0): [1, 1, 0]})
    table["loss_final"] = [1.0, 3.0, np.nan, np.nan, np.nan, 7.0]
    cells = stability.median_map(table).set_index(["alpha", "beta"])["loss_final"]
    assert cells[(0.0, 1.0)] == 2.0 and np.isnan(cells[(0.0, 2.0)])


def test_probability_map_and_seed_readings_draw(tmp_path):
    import matplotlib.pyplot as plt

    from mamlpaper import plotting

    table = table_from({(a, b): [int(b > 2 + 10 * a), int(b > 1 + 10 * a)] for a in (0.0, 0.1, 0.2) for b in (1.0, 2.0, 3.0)})
    cells = stability.failure_probability(table)
    alphas, betas, p = stability.as_grid(cells, "p")
    fig, (left, right) = plt.subplots(1, 2)
    mesh = plotting.probability_map(left, alphas[1:], betas, p[:, 1:])
    assert mesh.get_array().max() <= 1.0
    line = plotting.seed_readings(right, stability.measured_beta_critical(table), label="median")
    assert list(line.get_xdata()) == [0.1, 0.2] and list(line.get_ydata()) == [2.5, 3.0]
    with pytest.raises(ValueError, match="^p="):
        plotting.probability_map(left, alphas[1:], betas, p[:, 1:] + 1.5)
    plt.close(fig)


def map_table() -> pd.DataFrame:
    """Three seeds on 2 α × 2 β with known counts, medians and β_c; (0.1, 2.0) diverges in every seed."""
    runs = {  # (alpha, beta): [(diverged, unstable, collapsed, loss_final) per seed]
        (0.0, 1.0): [(0, 0, 0, 0.5), (0, 1, 0, 2.5), (0, 0, 1, 1.0)],
        (0.0, 2.0): [(1, 1, 0, np.nan), (0, 0, 0, 4.0), (1, 1, 0, np.inf)],
        (0.1, 1.0): [(0, 0, 0, 0.25), (0, 0, 0, 0.75), (1, 1, 0, 3e9)],
        (0.1, 2.0): [(1, 1, 0, np.nan), (1, 1, 0, np.nan), (1, 1, 0, 1e9)],
    }
    rows = [{"alpha": a, "beta": b, "seed": s, "diverged": bool(d), "unstable": bool(u), "collapsed": bool(c),
             "loss_final": loss, "variant": "second", "optimizer": "sgd", "steps": 1, "iterations": 30}
            for (a, b), per_seed in runs.items() for s, (d, u, c, loss) in enumerate(per_seed)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)  # order must not matter


def test_export_map_counts_medians_and_per_seed_beta_c_and_round_trips_through_json():
    import json

    table = map_table()
    data = stability.export_map(table, problem="toy", variant="second", optimizer="sgd", iterations=np.int64(30),
                                steps=1, dtype="float32", seeds=[0, 1, 2])
    text = json.dumps(data, allow_nan=False)
    assert json.dumps(stability.export_map(table.iloc[::-1], problem="toy", variant="second", optimizer="sgd",
                                           iterations=30, steps=1, dtype="float32", seeds=[0, 1, 2]),
                      allow_nan=False) == text  # deterministic, whatever the row order
    cells = data["cells"]
    assert cells["alpha"] == [0.0, 0.0, 0.1, 0.1] and cells["beta"] == [1.0, 2.0, 1.0, 2.0]
    assert cells["runs"] == [3, 3, 3, 3]
    assert cells["diverged"] == [0, 2, 1, 3] and cells["unstable"] == [1, 2, 1, 3]
    assert cells["collapsed"] == [1, 0, 0, 0]
    assert all(type(v) is int for v in cells["diverged"]) and all(type(v) is float for v in cells["alpha"])
    assert cells["loss_median"] == [1.0, 4.0, 0.5, None]
    assert data["labels"] == {"problem": "toy", "variant": "second", "optimizer": "sgd", "iterations": 30,
                              "steps": 1, "dtype": "float32", "seeds": [0, 1, 2]}

    measured = stability.import_map(json.loads(text))
    assert measured.labels == data["labels"]
    assert measured.cells["diverged"].tolist() == [0, 2, 1, 3] and np.isnan(measured.cells["loss_median"].iloc[3])
    read = measured.beta_critical
    assert list(read.columns) == ["seed", "alpha", "finite", "trained", "finite_censored", "trained_censored"]
    # by hand, read from below: seed 0 finite 1, 1 / trained 1, 1; seed 1 finite >= 2 (nothing failed), 1 /
    # trained none (beta 1 unstable; beta 2 trained, but above a failure), 1; seed 2 finite 1, none /
    # trained none (collapsed), none
    expected_finite = [1.0, 1.0, 2.0, 1.0, 1.0, np.nan]
    expected_trained = [1.0, 1.0, np.nan, 1.0, np.nan, np.nan]
    np.testing.assert_array_equal(read["finite"], expected_finite)
    np.testing.assert_array_equal(read["trained"], expected_trained)
    assert read["finite_censored"].tolist() == ["", "", "above", "", "", "below"]
    assert read["trained_censored"].tolist() == ["", "", "below", "", "below", "below"]
    for reading in stability.READINGS:
        reference = stability.measured_beta_critical(table, reading=reading)
        np.testing.assert_array_equal(read[["seed", "alpha"]].to_numpy(float),
                                      reference[["seed", "alpha"]].to_numpy(float))
        np.testing.assert_array_equal(read[reading], reference["beta_c"])
        assert read[f"{reading}_censored"].tolist() == reference["censored"].tolist()
    assert data["beta_critical"]["trained"][4] is None


def test_export_map_of_a_table_without_seed_column_counts_it_as_seed_0():
    table = map_table()
    one = table[table.seed == 1].drop(columns="seed")
    data = stability.export_map(one)
    assert data["labels"] == {} and data["cells"]["runs"] == [1, 1, 1, 1]
    assert data["cells"]["loss_median"] == [2.5, 4.0, 0.75, None]
    assert data["beta_critical"] == {"seed": [0, 0], "alpha": [0.0, 0.1], "finite": [2.0, 1.0], "trained": [None, 1.0],
                                     "finite_censored": ["above", ""], "trained_censored": ["below", ""]}
    assert stability.import_map(data).beta_critical["seed"].tolist() == [0, 0]


def test_a_real_sweep_exports_and_reads_back_from_a_maps_file(tmp_path):
    import json

    from mamlpaper import problems, runtime, sweep

    problem = problems.linear_regression(n_points=10)
    table = sweep.run_sweep(problem, [0.0, 0.01], [1e-3, 50.0], iterations=3, seeds=2, progress=False)
    series = {"second-sgd": stability.export_map(table, problem=problem.name, variant="second", optimizer="sgd",
                                                 iterations=3, steps=1)}
    document = {"notebook": "99_toy", "profile": "smoke", "series": series}
    path = runtime.write_results("99_toy", document, tmp_path / "maps")
    assert path == tmp_path / "maps" / "99_toy.json"
    maps = stability.read_maps(path)
    assert list(maps) == ["second-sgd"] and maps["second-sgd"].labels["problem"] == "linear_regression"
    assert maps["second-sgd"].cells["runs"].sum() == len(table) == 8
    assert maps["second-sgd"].cells["diverged"].tolist() == table.groupby(["alpha", "beta"]).diverged.sum().tolist()
    assert 0 < table.diverged.sum() < len(table)
    with pytest.raises(ValueError, match="^iterations=4 is not allowed; the table's iterations is 3"):
        stability.export_map(table, iterations=4)
    with pytest.raises(FileNotFoundError, match="run notebooks/03_sinusoid.py"):
        stability.read_maps(tmp_path / "maps" / "03_sinusoid.json")
    (tmp_path / "bad.json").write_text(json.dumps({"series": {"x": {"cells": {}}}}))
    with pytest.raises(ValueError, match="series 'x': data lacks 'format'"):
        stability.read_maps(tmp_path / "bad.json")
    (tmp_path / "none.json").write_text(json.dumps({"notebook": "x"}))
    with pytest.raises(ValueError, match="lacks 'series'"):
        stability.read_maps(tmp_path / "none.json")


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("cells"), "^data lacks 'cells'; pass a dict written by stability.export_map$"),
    (lambda d: d.update(format="other"), "^data.format='other' is not allowed"),
    (lambda d: d["cells"].pop("runs"), "^data.cells lacks column 'runs'"),
    (lambda d: d["cells"]["runs"].__setitem__(0, -1), "^data.cells.runs must be a list of integers >= 0"),
    (lambda d: d["cells"]["alpha"].__setitem__(0, None), "^data.cells.alpha must be a list of real"),
    (lambda d: d["cells"]["beta"].pop(), "^data.cells has columns of different lengths"),
    (lambda d: d["cells"]["diverged"].__setitem__(0, 9), "^data.cells must count"),
    (lambda d: d["beta_critical"]["seed"].__setitem__(0, 0.5), "^data.beta_critical.seed must be a list of integer"),
    (lambda d: d.update(labels=[1]), "^data.labels=\\[1\\] is not allowed"),
    (lambda d: d["beta_critical"]["finite_censored"].__setitem__(0, "yes"),
     "^data.beta_critical.finite_censored must be a list of censoring"),
])
def test_import_map_refuses_a_dict_that_is_not_an_export(change, message):
    data = stability.export_map(map_table())
    change(data)
    with pytest.raises(ValueError, match=message):
        stability.import_map(data)


def test_measured_beta_critical_is_read_from_below_and_says_where_it_is_censored():
    table = pd.DataFrame({
        "alpha": [0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.4, 0.4],
        "beta": [1.0, 2.0, 3.0] * 4,
        "diverged": [False, False, True, True, True, True, False, True, False, False, False, False],
    })
    measured = stability.measured_beta_critical(table)
    assert measured.alpha.tolist() == [0.1, 0.2, 0.3, 0.4]
    assert measured.beta_c.iloc[0] == 2.0 and np.isnan(measured.beta_c.iloc[1])
    assert measured.beta_c.iloc[2] == 1.0  # the run that survived beta = 3 above the failure at 2 is not read
    assert measured.beta_c.iloc[3] == 3.0
    assert measured.censored.tolist() == ["", "below", "", "above"]
    with pytest.raises(ValueError, match="table lacks column 'diverged'"):
        stability.measured_beta_critical(table.drop(columns="diverged"))


def test_measured_beta_critical_trained_reading_drops_collapsed_and_unstable_runs():
    table = pd.DataFrame({
        "alpha": [0.1, 0.1, 0.1, 0.1],
        "beta": [1.0, 2.0, 3.0, 4.0],
        "diverged": [False, False, False, True],
        "unstable": [False, False, True, True],
        "collapsed": [False, True, False, False],
    })
    assert stability.measured_beta_critical(table).beta_c.iloc[0] == 3.0
    assert stability.measured_beta_critical(table, reading="trained").beta_c.iloc[0] == 1.0
    with pytest.raises(ValueError, match="table lacks column 'collapsed'"):
        stability.measured_beta_critical(table.drop(columns="collapsed"), reading="trained")


def test_measured_beta_critical_is_read_per_seed():
    table = pd.DataFrame({
        "alpha": [0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.1],
        "beta": [1.0, 1.0, 2.0, 2.0] * 2,
        "seed": [0, 1] * 4,
        "diverged": [False, False, False, True, True, False, True, True],
    })
    read = stability.measured_beta_critical(table)
    assert list(read.columns) == ["seed", "alpha", "beta_c", "censored"]
    assert read.set_index(["seed", "alpha"]).beta_c.to_dict() == pytest.approx(
        {(0, 0.0): 2.0, (0, 0.1): np.nan, (1, 0.0): 1.0, (1, 0.1): 1.0}, nan_ok=True)


def fewshot_table() -> pd.DataFrame:
    """One seed of a few-shot sweep on α ∈ {0, 0.1, 1} × β ∈ {1, 3, 10} whose readings are known:
    α = 0: finite up to 3 (3 ended above its start), diverged at 10;
    α = 0.1: never diverged, learned at 1, collapsed at 3 and 10;
    α = 1: learned at 1, diverged at 3, finite (collapsed) again at 10."""
    runs = {  # (alpha, beta): (diverged, unstable, collapsed, loss_final, query_accuracy, diverged_at)
        (0.0, 1.0): (0, 0, 0, 1.6, 0.2, None), (0.0, 3.0): (0, 1, 0, 1.9, 0.2, None),
        (0.0, 10.0): (1, 1, 0, np.nan, np.nan, 4),
        (0.1, 1.0): (0, 0, 0, 0.6, 0.8, None), (0.1, 3.0): (0, 0, 1, 7.0, 0.2, None),
        (0.1, 10.0): (0, 0, 1, 9.0, 0.2, None),
        (1.0, 1.0): (0, 0, 0, 1.0, 0.6, None), (1.0, 3.0): (1, 1, 0, np.nan, np.nan, 6),
        (1.0, 10.0): (0, 0, 1, 8.0, 0.2, None),
    }
    rows = [{"alpha": a, "beta": b, "seed": 0, "diverged": bool(d), "unstable": bool(u), "collapsed": bool(c),
             "loss_final": loss, "query_accuracy": accuracy, "diverged_at": at}
            for (a, b), (d, u, c, loss, accuracy, at) in runs.items()]
    table = pd.DataFrame(rows)
    table["diverged_at"] = table["diverged_at"].astype("Int64")
    return table


def test_sweep_overview_counts_what_each_sweep_did():
    overview = stability.sweep_overview({"sgd": fewshot_table()})
    row = overview.loc["sgd"]
    assert (row["runs"], row["diverged"], row["collapsed (finite runs)"], row["finite, not collapsed"]) == (9, 2, 3, 4)
    assert row["median divergence iteration"] == 5 and row["best query accuracy after adaptation"] == 0.8
    assert row["lowest final loss"] == 0.6
    without_accuracy = stability.sweep_overview({"sgd": fewshot_table().drop(columns="query_accuracy")})
    assert "best query accuracy after adaptation" not in without_accuracy.columns


def test_beta_c_per_alpha_reads_both_readings_from_below_and_what_learned():
    per_alpha = stability.beta_c_per_alpha({"sgd": fewshot_table(), "adam": fewshot_table()})
    assert set(per_alpha.columns) == {(o, r) for o in ("sgd", "adam") for r in ("finite", "trained", "learned")}
    sgd = per_alpha["sgd"]
    assert sgd["finite"].tolist() == [3.0, 10.0, 1.0]  # α = 1 survives at 10 above its failure at 3: not read
    assert sgd["trained"].tolist() == [1.0, 1.0, 1.0]
    assert np.isnan(sgd.loc[0.0, "learned"]) and sgd["learned"].tolist()[1:] == [1.0, 1.0]
    assert stability.beta_c_per_alpha({"sgd": fewshot_table()}, learned=0.7)["sgd"]["learned"].tolist()[1] == 1.0
    assert np.isnan(stability.beta_c_per_alpha({"sgd": fewshot_table()}, learned=0.7)["sgd"].loc[1.0, "learned"])


def test_claim_table_and_results_say_what_a_ratio_rests_on():
    claim = stability.claim_table({"sgd": fewshot_table()})
    finite, trained = claim.loc[("sgd", "finite")], claim.loc[("sgd", "trained")]
    assert (finite["beta_c0"], finite["max_beta_c"], finite["at_alpha"]) == (3.0, 10.0, 0.1)
    assert finite["ratio"] == pytest.approx(10 / 3) and finite["ratio_is"] == "at least"
    assert (trained["beta_c0"], trained["ratio"], trained["ratio_is"]) == (1.0, 1.0, "exact")
    # finite runs at α > 0 above the trained β_c(0) = 1: (0.1, 3), (0.1, 10), (1, 10), all collapsed
    assert finite["finite_above_trained_beta_c0"] == 3 and finite["collapsed_above_trained_beta_c0"] == 3

    import json

    entry = stability.claim_results({"sgd": fewshot_table()})["sgd"]
    json.dumps(entry, allow_nan=False)
    assert list(entry) == ["runs", "diverged", "collapsed", "best_query_accuracy", "finite", "trained", "learned",
                           "finite_above_trained_beta_c0", "collapsed_above_trained_beta_c0"]
    assert entry["finite"] == {"beta_c_at_alpha_0": 3.0, "max_beta_c": 10.0, "at_alpha": 0.1,
                               "ratio": pytest.approx(10 / 3), "ratio_is": "at least",
                               "beta_c": {"0": 3.0, "0.1": 10.0, "1": 1.0}}
    assert entry["learned"] == {"query_accuracy_at_least": 0.5, "beta_c": {"0": None, "0.1": 1.0, "1": 1.0}}
    assert (entry["runs"], entry["diverged"], entry["collapsed"], entry["best_query_accuracy"]) == (9, 2, 3, 0.8)


@pytest.mark.parametrize("call, message", [
    (lambda: stability.claim_table([fewshot_table()]), "^tables=list is not allowed"),
    (lambda: stability.claim_table({"sgd": pd.concat([fewshot_table(), fewshot_table().assign(seed=1)])}),
     "^tables=dict is not allowed; tables\\['sgd'\\] holds 2 seeds"),
    (lambda: stability.beta_c_per_alpha({"sgd": fewshot_table()}, learned=1.5), "^learned=1.5 is not allowed"),
    (lambda: stability.beta_c_per_alpha({"sgd": fewshot_table().drop(columns="query_accuracy")}),
     "lacks column 'query_accuracy'"),
])
def test_fewshot_readings_refuse_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_grid_claims_keep_the_summary_and_every_seeds_ratio():
    table = table_from({
        (0.0, 1.0): [0, 0, 0], (0.0, 2.0): [1, 1, 0], (0.0, 3.0): [1, 1, 1],
        (0.1, 1.0): [0, 0, 0], (0.1, 2.0): [0, 1, 0], (0.1, 3.0): [1, 1, 0],
    })
    found = stability.grid_claims({"sgd": table})
    assert set(found["sgd"]) == set(stability.READINGS)
    finite = found["sgd"]["finite"]
    expected = stability.claim_ratios(table)
    assert finite["per_seed"] == pytest.approx(expected.ratio.tolist(), nan_ok=True)
    assert finite["per_seed_is"] == ["exact", "exact", "at least"]
    assert finite["per_seed"][:2] == [2.0, 1.0] and finite["at_least"] == 2 and finite["below"] == 1
    assert {k: finite[k] for k in stability.claim_summary(expected)} == pytest.approx(stability.claim_summary(expected))


def test_write_maps_writes_one_series_per_optimizer_that_read_maps_reads_back(tmp_path):
    from mamlpaper import problems

    problem = problems.sinusoid(0, n_tasks=2)
    path = stability.write_maps("99_test", {"sgd": map_table(), "adam": map_table().assign(optimizer="adam")}, problem,
                                tmp_path, profile="smoke", variant="second", iterations=30, steps=1)
    assert path == tmp_path / "99_test.json"
    maps = stability.read_maps(path)
    assert sorted(maps) == ["second-adam", "second-sgd"]
    labels = maps["second-adam"].labels
    assert list(labels) == ["problem", "spec", "variant", "optimizer", "iterations", "steps"]
    assert (labels["problem"], labels["optimizer"], labels["iterations"]) == ("sinusoid", "adam", 30)
    with pytest.raises(ValueError, match="^problem=str is not allowed"):
        stability.write_maps("99_test", {"sgd": map_table()}, "sinusoid", tmp_path, profile="smoke", variant="second")
