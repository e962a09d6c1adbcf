"""advisor: closed forms on a quadratic, dense Hessians on an MLP, finite differences of the meta-gradient.

On a linear model with MSE the task loss is quadratic with H = (2/N) Σ φφᵀ, φ = (x, 1), known in
closed form; with support = query every variant's meta-update is linear and its curvature along
the i-th eigenvector is c(λ_i, α) of its model (first/simplified λ(1 − αλ)^k, second λ(1 − αλ)^{2k}).
"""
from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mamlpaper import advisor, diagnostics, hessian, maml, models, stability, tasks
from mamlpaper.fewshot.conv4 import cross_entropy
from mamlpaper.tasks import Tasks

VARIANT_STEPS = [(v, s) for v in ("second", "first", "simplified") for s in (1, 2)]


def closed_form_curvature(lam, alpha, variant, steps):
    power = 2 * steps if variant == "second" else steps
    return lam[None, :] * (1.0 - np.asarray(alpha)[:, None] * lam[None, :]) ** power


def closed_form_beta(lam, alpha, variant, steps):
    """min_i 2/c_i; 0 where some c_i < 0 (no β converges), written out, not taken from bounds."""
    c = closed_form_curvature(lam, alpha, variant, steps)
    with np.errstate(divide="ignore"):
        beta = np.where(c > 0, 2.0 / np.where(c > 0, c, 1.0), np.inf).min(axis=1)
    return np.where((c < 0).any(axis=1), 0.0, beta)


def linear_problem(features, n_points=40, seed=0):
    """A linear model and one regression task with support = query, and the eigenvalues of its H."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(features, 1).double()
    models.init_parameters(model, g)
    x = torch.randn(1, n_points, features, generator=g, dtype=torch.float64)
    y = torch.randn(1, n_points, 1, generator=g, dtype=torch.float64)
    phi = torch.cat([x[0], torch.ones(n_points, 1, dtype=torch.float64)], 1).numpy()
    lam = np.linalg.eigvalsh(2.0 / n_points * phi.T @ phi)[::-1]
    return model, Tasks(x, y, x, y), lam


@pytest.mark.parametrize("variant,steps", VARIANT_STEPS)
def test_quadratic_gives_the_closed_forms_exactly(variant, steps):
    """d = 2 (y = w·x + b): every eigenvalue is known, so estimator (a) is exact, and (b) is too."""
    model, batch, lam = linear_problem(1)
    alphas = np.array([0.05, 0.2, 0.5, 0.9, 1.3, 1.9]) / lam[0]
    advice = advisor.advise(model, batch, variant=variant, steps=steps, alphas=alphas)
    for spectrum in (advice.tasks_spectrum, advice.mean_spectrum):
        np.testing.assert_allclose(spectrum.top, lam, rtol=1e-12)
        assert spectrum.lower == pytest.approx(lam[-1], rel=1e-12)
    expected_alpha_c = 1.0 / lam[0] if variant != "second" and steps % 2 == 1 else np.inf
    assert advice.alpha_critical == pytest.approx(expected_alpha_c, rel=1e-12)
    expected = closed_form_beta(lam, alphas, variant, steps)
    assert (expected == 0).any() == (expected_alpha_c < np.inf)  # α beyond α_c is in the grid
    for column in ("beta_c_tasks", "beta_c_mean"):
        np.testing.assert_allclose(advice.table[column], expected, rtol=1e-10)
    np.testing.assert_allclose(advice.beta_critical(alphas), expected, rtol=1e-10)
    np.testing.assert_allclose(advice.table["lambda_max_direct"],
                               closed_form_curvature(lam, alphas, variant, steps).max(axis=1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variant,steps", VARIANT_STEPS)
def test_quadratic_by_lanczos(variant, steps):
    """d = 9 > k + 1: Lanczos. Top k exact; the interval bound equals the closed form while the peak of
    c lies above the top k, and never exceeds it; the meta-Hessian's λ_max is max_i c(λ_i, α)."""
    model, batch, lam = linear_problem(8, n_points=30, seed=1)
    k = 3
    alphas = np.geomspace(1e-3, 1.5, 12) / lam[0]
    advice = advisor.advise(model, batch, variant=variant, steps=steps, alphas=alphas, k=k)
    np.testing.assert_allclose(advice.tasks_spectrum.top, lam[:k], rtol=1e-8)
    np.testing.assert_allclose(advice.mean_spectrum.top, lam[:k], rtol=1e-8)
    assert advice.tasks_spectrum.lower == pytest.approx(lam[-1], rel=1e-6)
    expected = closed_form_beta(lam, alphas, variant, steps)
    got = advice.table["beta_c_tasks"].to_numpy()
    power = 2 * steps if variant == "second" else steps
    covered = 1.0 / ((power + 1) * alphas) >= lam[k - 1]  # the peak of c over λ is among the top k
    assert covered.any() and not covered.all()
    np.testing.assert_allclose(got[covered], expected[covered], rtol=1e-7)
    assert np.all(got <= expected * (1 + 1e-9))
    np.testing.assert_allclose(advice.table["lambda_max_direct"],
                               closed_form_curvature(lam, alphas, variant, steps).max(axis=1), rtol=1e-7)


@pytest.fixture(scope="module")
def mlp_setting():
    g = torch.Generator().manual_seed(4)
    model = models.mlp(g, widths=(1, 8, 8, 1), activation="relu").double()
    return model, tasks.sinusoid(g, n_tasks=4, n_support=6, n_query=5)


def meta_objective(loss, batch, alpha, steps):
    """F(θ) = mean_τ L_query(θ_k), one task at a time: no vmap, no maml.batched_meta_gradient."""

    def value(params):
        rate = torch.tensor(alpha, dtype=torch.float64)
        total = 0.0
        for xs, ys, xq, yq in zip(*batch):
            total = total + loss(maml.adapt(loss, params, xs, ys, rate, steps), xq, yq)
        return total / batch.n_tasks

    return value


@pytest.mark.parametrize("steps", [1, 2])
def test_mlp_eigenvalues_match_dense_hessians(mlp_setting, steps):
    model, batch = mlp_setting
    k = 3
    alphas = np.array([0.01, 0.05])
    advice = advisor.advise(model, batch, steps=steps, alphas=alphas, k=k)
    loss = maml.functional_loss(model)
    params = maml.parameters_of(model)
    per_task = np.concatenate([hessian.eigenvalues(hessian.dense_hessian(lambda p: loss(p, x, y), params))
                               for x, y in zip(batch.x_support, batch.y_support)])
    np.testing.assert_allclose(advice.tasks_spectrum.top, np.sort(per_task)[::-1][:k], rtol=1e-6)
    assert advice.tasks_spectrum.lower == pytest.approx(per_task.min(), rel=1e-6, abs=1e-9)
    mean = hessian.eigenvalues(hessian.dense_hessian(diagnostics.mean_support_loss(loss, batch), params))
    np.testing.assert_allclose(advice.mean_spectrum.top, mean[::-1][:k], rtol=1e-6)
    assert advice.mean_spectrum.lower == pytest.approx(mean[0], rel=1e-6, abs=1e-9)
    for alpha, lam in zip(alphas, advice.table["lambda_max_direct"]):
        dense = hessian.eigenvalues(hessian.dense_hessian(meta_objective(loss, batch, alpha, steps), params))
        assert lam == pytest.approx(dense[-1], rel=1e-6)


@pytest.mark.parametrize("variant,steps", VARIANT_STEPS)
def test_meta_curvature_operator_matches_finite_differences_of_the_meta_gradient(variant, steps):
    """float64 tanh MLP; second: the Hessian itself (symmetric); first/simplified: the Jacobian's symmetric part."""
    g = torch.Generator().manual_seed(5)
    model = models.mlp(g, widths=(1, 4, 3, 1), activation="tanh").double()
    batch = tasks.sinusoid(g, n_tasks=3, n_support=5, n_query=4)
    loss = maml.functional_loss(model)
    params = maml.parameters_of(model)
    alpha, eps = 0.3, 1e-5
    theta = hessian.flatten(params)
    d = theta.numel()

    def meta_gradient(flat):
        return hessian.flatten(maml.meta_gradient(loss, hessian.unflatten(flat, params), batch, alpha,
                                                  steps=steps, variant=variant)[1]).numpy()

    columns = [(meta_gradient(theta + eps * e) - meta_gradient(theta - eps * e)) / (2 * eps)
               for e in torch.eye(d, dtype=torch.float64)]
    jacobian = np.stack(columns, axis=1)
    operator = advisor.meta_curvature_operator(loss, params, batch, alpha, variant=variant, steps=steps)
    dense = operator.matmat(np.eye(d))
    np.testing.assert_allclose(dense, 0.5 * (jacobian + jacobian.T), rtol=1e-6, atol=1e-8)
    if variant == "second":
        np.testing.assert_allclose(dense, jacobian, rtol=1e-6, atol=1e-8)
    else:
        assert np.abs(jacobian - jacobian.T).max() > 1e-4  # the symmetric part is a real choice here


@pytest.mark.parametrize("variant", ["second", "first"])
def test_recommendation_follows_the_guideline_with_its_margin(mlp_setting, variant):
    model, batch = mlp_setting
    advice = advisor.advise(model, batch, variant=variant, k=3, safety=0.5)
    top = advice.tasks_spectrum.top
    alpha_max = min(1.0 / top[0] if variant == "first" else np.inf, 2.0 / top[0])
    assert advice.alpha_max == pytest.approx(alpha_max, rel=1e-12)
    assert advice.alpha == pytest.approx(0.5 * alpha_max, rel=1e-12)
    limits = [float(advice.beta_critical(advice.alpha, e)) for e in ("tasks", "direct")]
    assert advice.beta == pytest.approx(0.5 * min(limits), rel=1e-9)
    assert 0 < advice.beta < min(limits)
    assert len(advice.table) == 10 and advice.table["alpha"].is_monotonic_increasing
    mean_top = advice.mean_spectrum.top[0]
    mean_max = min(1.0 / mean_top if variant == "first" else np.inf, 2.0 / mean_top)
    assert advice.table["alpha"].iloc[-1] == pytest.approx(0.95 * max(alpha_max, mean_max), rel=1e-12)
    full = advisor.advise(model, batch, variant=variant, k=3, safety=1.0)
    assert full.alpha == pytest.approx(2 * advice.alpha, rel=1e-12)
    assert full.beta == pytest.approx(min(float(full.beta_critical(full.alpha, e)) for e in ("tasks", "direct")))


@pytest.mark.parametrize("variant", ["second", "first", "simplified"])
def test_default_grid_stops_short_of_the_limit_and_alpha_c_itself_has_no_beta(variant):
    """One task, support = query: both (a) estimates allow the same α. The default grid spans two
    decades up to 95 % of it, where every β_c is positive and finite; at α_c = 1/λ_max itself, as
    the advisor computes it, first-order and simplified MAML have β_c = 0, not a round-off value."""
    model, batch, lam = linear_problem(1)
    advice = advisor.advise(model, batch, variant=variant)
    alphas = advice.table["alpha"].to_numpy()
    assert len(alphas) == 10 and alphas[-1] < advice.alpha_max
    np.testing.assert_allclose(alphas[[0, -1]], [0.0095 * advice.alpha_max, 0.95 * advice.alpha_max], rtol=1e-12)
    last = advice.table.iloc[-1]
    for column in ("beta_c_tasks", "beta_c_mean", "beta_c_direct"):
        assert 0 < last[column] < np.inf, column
    if variant == "second":
        return
    assert advice.alpha_critical == advice.alpha_max == 1.0 / advice.tasks_spectrum.top.max()
    at_limit = advisor.advise(model, batch, variant=variant, alphas=[0.5 * advice.alpha_max, advice.alpha_max])
    assert (at_limit.table[["beta_c_tasks", "beta_c_mean"]].iloc[-1] == 0.0).all()
    assert at_limit.beta_critical(advice.alpha_critical) == 0.0
    assert 0 < at_limit.beta_critical(advice.alpha_critical * (1 - 1e-9)) < np.inf


def test_direct_estimator_out_of_products_raises_naming_alpha_and_residual(mlp_setting):
    """d = 105: three products cannot reach tol 1e-8, so the first α of the grid (the smallest) raises
    rather than report a λ_max that may lie well below the true one; enough products do not raise."""
    model, batch = mlp_setting
    with pytest.raises(hessian.NotConverged) as info:
        advisor.advise(model, batch, alphas=[0.01, 0.05], k=3, max_products=3)
    text = str(info.value)
    assert "\n" not in text
    assert re.search(r"alpha=0\.01 .*max_products=3 .*relative residual \d\.\d\de-\d\d > tol=1e-08", text), text
    assert "raise max_products or loosen tol" in text
    advice = advisor.advise(model, batch, alphas=[0.01], k=3, max_products=advisor.MAX_PRODUCTS)
    assert np.isfinite(advice.table["lambda_max_direct"]).all()


def test_repr_plot_and_determinism(mlp_setting):
    model, batch = mlp_setting
    advice = advisor.advise(model, batch, k=3)
    text = repr(advice)
    assert "variant='second'" in text and f"α = {advice.alpha:.4g}" in text and f"β = {advice.beta:.4g}" in text
    assert "safety 0.5" in text and "beta_c_direct" in text and len(text.splitlines()) == 6 + 1 + len(advice.table)
    fig, ax = plt.subplots()
    try:
        assert advice.plot(ax) is ax
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        labels = [line.get_label() for line in ax.get_lines()]
        assert any("recommended" in label for label in labels) and any("direct" in label for label in labels)
    finally:
        plt.close(fig)
    plt.close(advice.plot().figure)
    again = advisor.advise(model, batch, k=3)
    assert again.table.equals(advice.table) and (again.alpha, again.beta) == (advice.alpha, advice.beta)


def test_sampler_and_warm_up(mlp_setting):
    """A sampler is drawn from the seed; a warm-up moves θ (so the curvature) and leaves the model alone."""
    model, _ = mlp_setting
    before = {k: v.clone() for k, v in maml.parameters_of(model).items()}

    def sampler(generator):
        return tasks.sinusoid(generator, n_tasks=4, n_support=6, n_query=5)

    cold = advisor.advise(model, sampler, k=3, alphas=[0.01])
    assert cold.table.equals(advisor.advise(model, sampler, k=3, alphas=[0.01]).table)
    expected = advisor.advise(model, sampler(torch.Generator().manual_seed(0)), k=3, alphas=[0.01])
    assert cold.table.equals(expected.table)
    warm = advisor.advise(model, sampler, k=3, alphas=[0.01], warmup=5, warmup_beta=1e-2)
    assert not np.allclose(warm.tasks_spectrum.top, cold.tasks_spectrum.top)
    assert all(torch.equal(before[k], v) for k, v in maml.parameters_of(model).items())


def test_classification_labels_stay_integers():
    """Cross-entropy on integer labels: the float64 estimates must not cast the labels."""
    g = torch.Generator().manual_seed(6)
    model = models.mlp(g, widths=(4, 6, 3), activation="tanh")
    x = torch.randn(2, 6, 4, generator=g)
    y = torch.randint(0, 3, (2, 6), generator=g)
    advice = advisor.advise(model, Tasks(x, y, x, y), criterion=cross_entropy, variant="first", k=2, alphas=[0.1, 1.0])
    assert np.all(np.isfinite(advice.table["lambda_max_direct"])) and advice.beta > 0


def test_direct_at_the_recommendation_only_recommends_the_same_and_float32_agrees(mlp_setting):
    """direct="recommended" runs (b) once: the same recommendation, the table's direct columns NaN
    (filled on demand); float32 products at tol 1e-4 land within 1e-3 of float64's λ_max."""
    model, batch = mlp_setting
    alphas = np.array([0.01, 0.05, 0.2])
    full = advisor.advise(model, batch, alphas=alphas, k=3)
    once = advisor.advise(model, batch, alphas=alphas, k=3, direct="recommended")
    assert once.alpha == full.alpha and once.beta == pytest.approx(full.beta, rel=1e-9)
    assert once.table[["beta_c_direct", "lambda_max_direct"]].isna().all().all()
    np.testing.assert_allclose(once.beta_critical(alphas, "direct"), full.table["beta_c_direct"], rtol=1e-6)
    np.testing.assert_allclose(once.table["beta_c_tasks"], full.table["beta_c_tasks"], rtol=1e-12)
    single = advisor.advise(model, batch, alphas=alphas, k=3, tol=1e-4, dtype="float32")
    np.testing.assert_allclose(single.table["lambda_max_direct"], full.table["lambda_max_direct"], rtol=1e-3)


@pytest.mark.parametrize("variant,steps", [("second", 1), ("first", 2)])
def test_meta_lambda_max_at_any_theta_is_the_largest_model_curvature(variant, steps, mlp_setting):
    """On a quadratic λ_max is max_i c(λ_i, α) wherever θ is (d = 9, so Lanczos); on the MLP a budget
    short of tol raises instead of returning a value below λ_max."""
    model, batch, lam = linear_problem(8, n_points=30, seed=1)
    loss, params = maml.functional_loss(model), maml.parameters_of(model)
    moved = {k: p + 1.0 for k, p in params.items()}
    alpha = 0.3 / lam[0]
    expected = closed_form_curvature(lam, [alpha], variant, steps).max()
    for theta in (params, moved):
        got = advisor.meta_lambda_max(loss, theta, batch, alpha, variant=variant, steps=steps, seed=3)
        assert got == pytest.approx(expected, rel=1e-7)
    mlp, mlp_batch = mlp_setting
    with pytest.raises(hessian.NotConverged, match=r"alpha=0\.05 stopped at max_products=2 "):
        advisor.meta_lambda_max(maml.functional_loss(mlp), maml.parameters_of(mlp), mlp_batch, 0.05, max_products=2)


def synthetic_advice(direct_calls):
    """An Advice whose answers are known: one eigenvalue per spectrum (tasks 4, mean 2), simplified
    model, so β_c = 2/(λ − αλ²); the direct estimator's table says 7 at α = 0.05 and NaN (not run)
    at α = 0.1, and run anywhere else it finds λ_max = 4."""
    def lambda_max(alphas):
        direct_calls.append(np.array(alphas))
        return np.full(np.shape(alphas), 4.0)

    table = pd.DataFrame({"alpha": [0.05, 0.1], "beta_c_tasks": np.nan, "beta_c_mean": np.nan,
                          "beta_c_direct": [7.0, np.nan], "lambda_max_direct": [2 / 7, np.nan]})
    return advisor.Advice(variant="simplified", steps=1, model="simplified", safety=0.5,
                          tasks_spectrum=hessian.Spectrum(np.array([4.0]), 4.0, 0.0),
                          mean_spectrum=hessian.Spectrum(np.array([2.0]), 2.0, 0.0), alpha_critical=0.25,
                          alpha_max=0.25, alpha=0.125, beta=0.5, table=table, _direct=lambda_max)


def synthetic_map():
    """α ∈ {0, 0.05, 0.1}, β ∈ {0.25, 0.5, 1, 2}, seeds 0 and 1. Seed 0, trained reading: β_c(0) = 0.5
    (β = 1 ended above its start), at 0.05 every β trained (≥ 2, censored above), at 0.1 none did
    (below the grid, NaN). Finite reading: β = 2 diverged at α = 0 and 0.1, so β_c = 1 there and ≥ 2
    at 0.05. Seed 1: all stable."""
    rows = []
    for seed in (0, 1):
        for alpha in (0.0, 0.05, 0.1):
            for beta in (0.25, 0.5, 1.0, 2.0):
                unstable = seed == 0 and ((alpha == 0.0 and beta >= 1.0) or alpha == 0.1)
                diverged = seed == 0 and beta == 2.0 and alpha != 0.05
                rows.append({"seed": seed, "alpha": alpha, "beta": beta, "diverged": diverged,
                             "unstable": unstable or diverged, "collapsed": False,
                             "loss_final": np.nan if diverged else 1.0})
    table = pd.DataFrame(rows)
    exported = stability.export_map(table, problem="synthetic", variant="simplified", optimizer="sgd", steps=1)
    return stability.import_map(json.loads(json.dumps(exported)))


def test_score_puts_each_estimator_beside_the_reading_and_keeps_censored_ones_bounds():
    calls = []
    advice, measured = synthetic_advice(calls), synthetic_map()
    got = advisor.score(advice, measured)
    assert list(got.columns) == ["seed", "reading", "alpha", "measured", "censored", "estimator", "predicted",
                                 "ratio", "within_2x"]
    assert (got["seed"] == 0).all() and len(got) == 2 * 3 * 3
    trained = got[got.reading == "trained"].set_index(["alpha", "estimator"])
    nan = np.nan
    expected = {  # (α, estimator): measured, censored, predicted, ratio, within 2×
        (0.0, "tasks"): (0.5, "", 0.5, 1.0, True),  # bracket [0.5, 1), widened [0.25, 2)
        (0.0, "mean"): (0.5, "", 1.0, 2.0, True),
        (0.0, "direct"): (0.5, "", 0.5, 1.0, True),  # not in the advice's table: run
        (0.05, "tasks"): (2.0, "above", 2 / (4 - 0.05 * 16), nan, False),  # β_c ≥ 2: 0.625 is below half of it
        (0.05, "mean"): (2.0, "above", 2 / (2 - 0.05 * 4), nan, True),  # 1.11 ≥ 2/2
        (0.05, "direct"): (2.0, "above", 7.0, nan, True),  # read from the table, no bound above
        (0.1, "tasks"): (nan, "below", 2 / (4 - 0.1 * 16), nan, False),  # β_c < 0.25: 0.83 > 2 × 0.25
        (0.1, "mean"): (nan, "below", 2 / (2 - 0.1 * 4), nan, False),
        (0.1, "direct"): (nan, "below", nan, nan, False),  # not run at the table's α: NaN, never within
    }
    for key, (measured_value, censored, predicted, ratio, within) in expected.items():
        row = trained.loc[key]
        np.testing.assert_allclose([row.measured, row.predicted, row.ratio], [measured_value, predicted, ratio],
                                   rtol=1e-12, err_msg=str(key))
        assert (row.censored, bool(row.within_2x)) == (censored, within), key
    finite = got[got.reading == "finite"].set_index(["alpha", "estimator"])
    assert finite.loc[(0.0, "mean"), ["measured", "censored", "ratio"]].tolist() == [1.0, "", 1.0]
    assert finite.loc[(0.1, "tasks"), ["measured", "censored"]].tolist() == [1.0, ""]
    assert finite.loc[(0.05, "direct"), ["measured", "censored"]].tolist() == [2.0, "above"]
    assert np.isnan(finite.loc[(0.05, "direct"), "ratio"])
    assert [list(a) for a in calls] == [[0.0]], "the direct estimator runs only where the advice's table has no entry"


def test_score_picks_the_seed_and_alphas_and_refuses_what_the_map_does_not_hold():
    advice, measured = synthetic_advice([]), synthetic_map()
    other = advisor.score(advice, measured, seed=1, alphas=[0.1])
    assert (other["seed"] == 1).all() and (other["alpha"] == 0.1).all()
    assert (other["measured"] == 2.0).all() and (other["censored"] == "above").all() and other["ratio"].isna().all()
    np.testing.assert_allclose(advisor.predict(advice, [0.0, 0.05])[["tasks", "direct"]].to_numpy(),
                               [[0.5, 0.5], [2 / 3.2, 7.0]], rtol=1e-12)
    with pytest.raises(ValueError, match=r"^seed=7 is not allowed; seed must be one the map holds: 0, 1$"):
        advisor.score(advice, measured, seed=7)
    with pytest.raises(ValueError, match=r"^alphas=.* is not allowed; alphas must be a 1-d list of the map's own α$"):
        advisor.score(advice, measured, alphas=[0.3])
    with pytest.raises(ValueError, match=r"^measured=dict is not allowed"):
        advisor.score(advice, {"second-sgd": measured})
    with pytest.raises(ValueError, match=r"^advice=str is not allowed"):
        advisor.predict("advice", [0.1])
