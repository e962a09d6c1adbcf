"""The boundary search: its brackets against a known flip point, against the closed-form β_c of a
quadratic, and against single runs of the reference loop; β_50 and the claim's verdict on
hand-made intervals; the perturbation table's bookkeeping."""
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from mamlpaper import boundary, bounds, maml, problems, stability, sweep


def fake_engine(flip, calls):
    """A stand-in for sweep.run_each whose run fails exactly when β > flip(α, seed); records each call."""
    def run_each(problem, alphas, betas, seeds, *, iterations, **kwargs):
        calls.append(pd.DataFrame({"alpha": alphas, "beta": betas, "seed": seeds}))
        diverged = np.array([b > flip(a, s) for a, b, s in zip(alphas, betas, seeds)])
        return pd.DataFrame({"alpha": alphas, "beta": betas, "seed": seeds, "iterations": iterations,
                             "diverged": diverged, "unstable": diverged, "collapsed": False,
                             "diverged_at": pd.array([3 if d else pd.NA for d in diverged], dtype="Int64")})
    return run_each


FLIPS = {(0.0, 0): 0.3, (0.0, 1): 0.45, (0.1, 0): 2.0, (0.1, 1): 0.011, (0.2, 0): 50.0, (0.2, 1): 0.005}


def test_search_brackets_the_flip_point_at_the_resolution_and_censors_the_range_ends(monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "run_each", fake_engine(lambda a, s: FLIPS[a, s], calls))
    found = boundary.search(problems.sinusoid(0, n_tasks=2), [0.0, 0.1, 0.2], [0, 1], iterations=7, low=0.01,
                            high=9.0, start=0.3, factor=2.0, resolution=1.05, max_rounds=12, progress=False)
    rows = found.intervals.set_index(["alpha", "seed"])
    for (a, s), flip in FLIPS.items():
        row = rows.loc[(a, s)]
        if flip >= 9.0:
            assert row.censored == "above" and row.beta_lo == 9.0 and np.isnan(row.beta_hi)
        elif flip < 0.01:
            assert row.censored == "below" and row.beta_hi == 0.01 and np.isnan(row.beta_lo)
        else:
            assert row.censored == "" and row.resolved and row.beta_lo <= flip < row.beta_hi <= 1.05 * row.beta_lo
    for call in calls:  # one batched call per round, one run per unfinished (α, seed)
        assert not call.duplicated(["alpha", "seed"]).any()
    assert len(calls) == found.runs["round"].max() <= 12
    assert rows["runs"].sum() == len(found.runs) == sum(map(len, calls))
    ran = found.runs.assign(failed=stability.failed(found.runs)).groupby(["alpha", "seed"])
    assert (rows["gradients"] == ran.apply(lambda r: (np.where(r.failed, 4, 8)).sum())).all()


def test_search_stops_after_max_rounds_with_the_bracket_it_has(monkeypatch):
    monkeypatch.setattr(sweep, "run_each", fake_engine(lambda a, s: FLIPS[a, s], []))
    found = boundary.search(problems.sinusoid(0, n_tasks=2), [0.0, 0.1], [0, 1], iterations=5, low=0.01, high=9.0,
                            start=0.3, factor=2.0, max_rounds=2, progress=False)
    rows = found.intervals.set_index(["alpha", "seed"])
    assert rows.loc[(0.0, 0)].tolist()[:4] == [0.3, 0.6, "", False]  # held at 0.3, failed at 0.6
    assert rows.loc[(0.1, 1)].censored == "below" and rows.loc[(0.1, 1)].beta_hi == 0.15
    assert rows.loc[(0.1, 0)].censored == "above" and rows.loc[(0.1, 0)].beta_lo == 0.6
    assert (rows["runs"] == 2).all()


def test_search_finds_the_closed_form_beta_c_of_a_quadratic_and_each_end_replays_in_the_reference_loop():
    """Linear regression is quadratic: exact one-step MAML diverges above min_i 2/(λ_i(1 − αλ_i)²)."""
    problem = problems.linear_regression(0, n_points=20)
    task = problem.sample_tasks(None)
    loss = maml.functional_loss(problem.model)
    hessian = torch.func.hessian(lambda p: loss(p, task.x_support[0], task.y_support[0]))(maml.parameters_of(problem.model))
    lam = np.linalg.eigvalsh(torch.cat([torch.cat([hessian[a][b].reshape(1, -1) for b in ("weight", "bias")], 1)
                                        for a in ("weight", "bias")]).numpy())
    alphas = [0.0, 0.5 / lam.max()]
    found = boundary.search(problem, alphas, [0], iterations=300, low=1e-3, high=10.0, factor=2.0, resolution=1.01,
                            max_rounds=20, progress=False)
    for row in found.intervals.itertuples():
        beta_c = float(bounds.beta_critical(row.alpha, lam, "exact"))
        assert row.censored == "" and row.resolved
        assert beta_c * (1 - 1e-9) < row.beta_hi and row.beta_lo < 1.03 * beta_c  # 300 steps: 1e8 within 3 %
        for beta, diverges in ((row.beta_lo, False), (row.beta_hi, True)):
            run = sweep.train(problem, row.alpha, beta, iterations=300, seed=0)
            assert (run.diverged_at is not None) == diverges


def intervals_from(flips: dict) -> pd.DataFrame:
    """{alpha: [flip point per seed]} -> search intervals, 5 % wide around each flip (inf / 0: censored)."""
    rows = []
    for alpha, per_seed in flips.items():
        for seed, flip in enumerate(per_seed):
            censored = "above" if flip == np.inf else "below" if flip == 0 else ""
            lo = 9.0 if censored == "above" else np.nan if censored == "below" else flip / 1.025
            hi = np.nan if censored == "above" else 0.01 if censored == "below" else flip * 1.025
            rows.append({"alpha": alpha, "seed": seed, "beta_lo": lo, "beta_hi": hi, "censored": censored})
    return pd.DataFrame(rows)


def test_beta_50_is_the_median_flip_point_with_censored_seeds_ranked_not_averaged():
    table = stability.beta_50(intervals_from({0.0: [1.0, 2.0, 4.0, 8.0], 0.1: [1.0, np.inf, np.inf, 3.0],
                                              0.2: [np.inf, np.inf, np.inf, 1.0], 0.3: [0, 0, np.inf, np.inf]}))
    rows = table.set_index("alpha")
    assert rows.loc[0.0, "beta_50"] == pytest.approx(np.sqrt(2.0 * 4.0)) and rows.loc[0.0, "censored"] == ""
    assert rows.loc[0.1, "beta_50"] == np.inf and rows.loc[0.1, "censored"] == "above"  # middle pair 3, inf
    assert rows.loc[0.2, "censored"] == "above" and rows.loc[0.3, "censored"] == "undetermined"
    assert (rows["low"] <= rows["beta_50"].fillna(np.inf)).all() and (rows["seeds"] == 4).all()
    assert rows.loc[0.0, "low"] >= 1.0 and rows.loc[0.0, "high"] <= 8.0


def test_claim_verdict_reads_rise_no_rise_and_undecided_from_the_interval_only():
    rng = np.random.default_rng(0)
    zero = list(np.exp(rng.normal(0, 0.1, 12)))
    rise = stability.claim_verdict(intervals_from({0.0: zero, 0.1: [3 * z for z in zero], 0.2: zero}))
    assert rise["verdict"] == "rise" and rise["low"] > 1.5 and rise["at_alpha"] == 0.1
    assert rise["ratio"] == pytest.approx(3.0) and rise["seeds_to_decide"] is None
    flat = stability.claim_verdict(intervals_from({0.0: zero, 0.1: zero[::-1]}))
    assert flat["verdict"] == "no rise" and flat["high"] < 1.5
    split = [1.0, 4.0] * 3  # three seeds rise four-fold, three do not: the median sits between
    mixed = stability.claim_verdict(intervals_from({0.0: [1.0] * 6, 0.1: split}))
    assert mixed["verdict"] == "undecided" and mixed["low"] <= 1.5 <= mixed["high"]
    assert mixed["seeds_to_decide"] is None or mixed["seeds_to_decide"] > 6
    assert "undecided" in stability.describe_verdict(mixed)
    censored = stability.claim_verdict(intervals_from({0.0: [np.inf] * 4 + [1.0] * 2, 0.1: [2.0] * 6}))
    assert censored["verdict"] == "undecided" and censored["seeds_to_decide"] is None
    assert censored["low"] == 0.0  # beta_50(0) is censored above: R could be anything down to 0


def test_claim_verdict_interval_ends_are_attained_by_resamples():
    flips = {0.0: [1.0, 1.5, 2.0], 0.1: [1.2, 3.0, 2.5]}
    verdict = stability.claim_verdict(intervals_from(flips), draws=4000)
    ratios = set()
    for pick in itertools.product(range(3), repeat=3):
        medians = {a: np.median(np.log(np.array(v)[list(pick)])) for a, v in flips.items()}
        ratios.add(round(float(np.exp(medians[0.1] - medians[0.0])), 9))
    assert round(verdict["low"], 9) in ratios and round(verdict["high"], 9) in ratios
    assert min(ratios) <= verdict["low"] <= verdict["ratio"] <= verdict["high"] <= max(ratios)


@pytest.mark.parametrize("intervals, message", [
    ("x", "^intervals=str is not allowed"),
    (intervals_from({0.0: [1.0]}).drop(columns="censored"), "^intervals=DataFrame is not allowed"),
    (pd.concat([intervals_from({0.0: [1.0]})] * 2), "one row per"),
    (intervals_from({0.0: [1.0, 2.0], 0.1: [1.0]}), "same seeds"),
])
def test_bad_intervals_are_refused(intervals, message):
    with pytest.raises(ValueError, match=message):
        stability.beta_50(intervals)


def test_claim_verdict_needs_alpha_zero_and_a_positive_alpha():
    with pytest.raises(ValueError, match="alpha = 0 and some alpha > 0"):
        stability.claim_verdict(intervals_from({0.1: [1.0], 0.2: [2.0]}))
    with pytest.raises(ValueError, match="^level=1.0 is not allowed"):
        stability.claim_verdict(intervals_from({0.0: [1.0], 0.2: [2.0]}), level=1.0)


def boundary_of(rows, reading="finite") -> boundary.Boundary:
    runs = pd.DataFrame(rows, columns=["alpha", "beta", "seed", "diverged"]).assign(
        unstable=lambda t: t.diverged, collapsed=False)
    flips = {(a, s): g for (a, s), g in runs.groupby(["alpha", "seed"])}
    intervals = []
    for (a, s), g in flips.items():
        lo, hi = g.loc[~g.diverged, "beta"].max(), g.loc[g.diverged, "beta"].min()
        intervals.append({"alpha": a, "seed": s, "beta_lo": lo, "beta_hi": hi, "censored": ""})
    return boundary.Boundary(pd.DataFrame(intervals), runs, reading)


def test_perturbation_table_counts_the_shared_runs_that_changed_outcome():
    base = boundary_of([(0.0, 1.0, 0, False), (0.0, 2.0, 0, True), (0.1, 1.0, 0, False), (0.1, 3.0, 0, True),
                        (0.0, 1.0, 1, False), (0.0, 2.0, 1, True), (0.1, 1.0, 1, False), (0.1, 3.0, 1, True)])
    other = boundary_of([(0.0, 1.0, 0, False), (0.0, 2.0, 0, False), (0.0, 4.0, 0, True),  # (0, 2, 0) flipped
                         (0.1, 1.0, 0, False), (0.1, 3.0, 0, True),
                         (0.0, 1.0, 1, True), (0.0, 0.5, 1, False),  # (0, 1, 1) flipped
                         (0.1, 1.0, 1, False), (0.1, 3.0, 1, True)])
    table = boundary.perturbation_table({"as given": base, "other": other}, draws=200)
    assert table.loc["as given", "changed outcome"] == 0 and table.loc["as given", "shared runs"] == 8
    assert table.loc["other", "shared runs"] == 7 and table.loc["other", "changed outcome"] == 2
    assert table.loc["as given", "verdict"] in stability.VERDICTS
    with pytest.raises(ValueError, match="^results=dict is not allowed"):
        boundary.perturbation_table({"other": other})


def test_perturbed_runs_each_search_and_puts_the_thread_count_back(tmp_path):
    problem = problems.sinusoid(0, n_tasks=3, n_support=4, n_query=4)
    before = torch.get_num_threads()
    found = boundary.perturbed(problem, [0.0, 0.1], [0, 1], iterations=4, low=0.01, high=9.0, start=1.0,
                               max_rounds=2, dtype="float32", progress=False, cache_dir=tmp_path)
    assert torch.get_num_threads() == before
    assert list(found) == ["as given", *boundary.PERTURBATIONS]
    losses = {name: b.runs.loc[b.runs["round"] == 1, "loss_initial"].to_numpy() for name, b in found.items()}
    assert not np.array_equal(losses["as given"], losses["float64"])
    assert not np.array_equal(losses["as given"], losses["θ0 jittered by 1e-7"])
    np.testing.assert_allclose(losses["as given"], losses["θ0 jittered by 1e-7"], rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"low": 1.0, "high": 1.0}, "^low=1.0 is not allowed; low must be below high=1.0"),
    ({"start": 20.0}, r"^start=20.0 is not allowed; start must lie in \[low, high\]"),
    ({"factor": 1.0}, "^factor=1.0 is not allowed"),
    ({"resolution": 0.5}, "^resolution=0.5 is not allowed"),
    ({"max_rounds": 0}, "^max_rounds=0 is not allowed"),
    ({"reading": "alive"}, "^reading='alive' is not allowed"),
    ({"seeds": [1, 1]}, "^seeds=\\[1, 1\\] is not allowed"),
    ({"seed": 3}, "^seed=3 is not allowed"),
    ({"optimizer": "rmsprop"}, "^optimizer='rmsprop' is not allowed"),
])
def test_search_refuses_bad_arguments_before_any_run(kwargs, message):
    options = {"seeds": [0], "low": 0.01, "high": 9.0, "iterations": 3, "progress": False, **kwargs}
    seeds = options.pop("seeds")
    with pytest.raises(ValueError, match=message):
        boundary.search(problems.sinusoid(0, n_tasks=2), [0.0, 0.1], seeds, **options)


def test_claims_run_one_search_per_optimizer_from_its_own_start(monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "run_each", fake_engine(lambda a, s: FLIPS[a, s], calls))
    settings = {"alphas": [0.0, 0.1], "seeds": [0, 1], "iterations": 3, "low": 0.01, "high": 9.0,
                "start": {"sgd": 0.3, "adam": 0.5}, "factor": 2.0, "resolution": 1.1, "max_rounds": 3,
                "reading": "finite", "dtype": "float32"}
    found = boundary.claims(problems.sinusoid(0, n_tasks=2), settings, progress=False)
    firsts = [call.beta.unique().tolist() for call in calls if len(call) == 4 and call.beta.nunique() == 1]
    assert firsts == [[0.3], [0.5]]
    assert list(found) == ["sgd", "adam"] and all(c.verdict["verdict"] in stability.VERDICTS for c in found.values())
    assert boundary.for_optimizer(settings, "adam")["start"] == 0.5
    with pytest.raises(ValueError, match="^settings=dict with keys"):
        boundary.claims(problems.sinusoid(0, n_tasks=2), {**settings, "extra": 1})


def test_search_cost_sets_the_search_per_alpha_and_seed_against_the_grid():
    intervals = pd.DataFrame({"alpha": [0.0, 0.0, 0.1, 0.1], "seed": [0, 1, 0, 1], "beta_lo": [1.0, 1.0, 2.0, 4.0],
                              "beta_hi": [1.1, 1.2, 2.2, 8.0], "censored": ["", "", "", ""],
                              "resolved": [True, True, True, False], "runs": [4, 5, 6, 3],
                              "gradients": [40, 50, 60, 30]})
    claim = boundary.Claim(boundary.Boundary(intervals, pd.DataFrame(), "finite"), pd.DataFrame(), {})
    grid = pd.DataFrame([{"alpha": a, "beta": b, "seed": s, "diverged": at is not None, "iterations": 9,
                          "diverged_at": at}
                         for a in (0.0, 0.1, 1.0) for s in (0, 1)
                         for b, at in ((1.0, None), (2.0, None), (4.0, 2 if a == 0 else None))])
    grid["diverged_at"] = grid["diverged_at"].astype("Int64")
    cost = boundary.search_cost({"sgd": claim}, {"sgd": grid})["sgd"]
    assert (cost["search: runs"], cost["search: meta-gradients"]) == (4.5, 45.0)
    assert cost["search: resolution"] == pytest.approx(1.15) and cost["search: brackets resolved"] == "3 of 4"
    assert cost["grid: runs"] == 3 and cost["grid: resolution"] == 2.0
    # per (α, seed) over the searched α only: α = 0 computes 10 + 10 + 3, α = 0.1 computes 10 + 10 + 10
    assert cost["grid: meta-gradients"] == pytest.approx((23 * 2 + 30 * 2) / 4)
    with pytest.raises(ValueError, match="^tables=dict is not allowed"):
        boundary.search_cost({"sgd": claim}, {"adam": grid})


def test_recorded_perturbations_are_shown_only_for_the_search_they_checked(tmp_path):
    import json

    settings = {"alphas": [0.0, 0.1], "seeds": [0, 1], "optimizer": "sgd", "problem": {"family": "sinusoid"}}
    record = {"settings": settings, "machine": "cpu", "date": "today",
              "table": {"search": ["as given", "float64"], "changed outcome": [0, 3], "verdict": ["undecided"] * 2}}
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))
    table, said = boundary.recorded_perturbations(path, settings)
    assert table.loc["float64", "changed outcome"] == 3 and said == "made on cpu, today"
    table, said = boundary.recorded_perturbations(path, {**settings, "seeds": [0, 1, 2], "dtype": "float32"})
    assert table is None and "other settings (dtype, seeds)" in said
    table, said = boundary.recorded_perturbations(tmp_path / "none.json", settings)
    assert table is None and "does not exist" in said
    with pytest.raises(ValueError, match="^settings=list is not allowed"):
        boundary.recorded_perturbations(path, [settings])
