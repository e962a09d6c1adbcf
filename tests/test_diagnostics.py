"""The multi-task curvature operators against dense matrices built independently.

A tiny tanh network (smooth, so third derivatives are not zero almost everywhere as with
ReLU), float64: H_τ from torch.func.hessian, H_τ² as a matrix product, and T_τ g_τ as the
central finite difference of dense Hessians along g_τ.
"""
import numpy as np
import pytest
import torch

from mamlpaper import bounds, diagnostics, hessian, maml, models, tasks


@pytest.fixture(scope="module")
def setting():
    generator = torch.Generator().manual_seed(3)
    model = models.mlp(generator, widths=(1, 4, 3, 1), activation="tanh").double()
    params = maml.parameters_of(model)
    batch = tasks.sinusoid(generator, n_tasks=3, n_support=5, n_query=4)
    loss = maml.functional_loss(model)
    return loss, params, batch


def dense_per_task(loss, params, batch, eps=1e-5):
    """(H_τ, T_τ g_τ) for each task, from dense Hessians only."""
    out = []
    for x, y in zip(batch.x_support, batch.y_support):
        task_loss = lambda p: loss(p, x, y)  # noqa: E731
        H = hessian.dense_hessian(task_loss, params)
        g = hessian.flatten(torch.func.grad(task_loss)(params))
        theta = hessian.flatten(params)
        shifted = lambda s: hessian.dense_hessian(task_loss, hessian.unflatten(theta + s * eps * g, params))  # noqa: E731
        out.append((H.numpy(), ((shifted(1) - shifted(-1)) / (2 * eps)).numpy()))
    return out


def test_operators_equal_the_task_means_of_dense_matrices(setting):
    loss, params, batch = setting
    per_task = dense_per_task(loss, params, batch)
    expected = {
        "H": np.mean([H for H, _ in per_task], 0),
        "Tg": np.mean([Tg for _, Tg in per_task], 0),
        "H2": np.mean([H @ H for H, _ in per_task], 0),
    }
    expected["Tg+H2"] = expected["Tg"] + expected["H2"]
    operators = diagnostics.task_curvature_operators(loss, params, batch)
    assert sorted(operators) == sorted(diagnostics.OPERATORS)
    d = hessian.flatten(params).numel()
    for name, op in operators.items():
        dense = op @ np.eye(d)
        np.testing.assert_allclose(dense, dense.T, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(dense, expected[name], rtol=1e-6, atol=1e-8, err_msg=name)
        values, residuals = hessian.top_eigenvalues_of(op, k=2, which="LA")
        np.testing.assert_allclose(values, np.linalg.eigvalsh(expected[name])[::-1][:2], rtol=1e-6, err_msg=name)
        assert residuals.max() < 1e-8
        norm, error = hessian.frobenius_norm(op, exact=True)
        assert error == 0.0 and norm == pytest.approx(np.linalg.norm(expected[name]), rel=1e-6)
    assert np.linalg.norm(expected["Tg"]) > 1e-3  # the finite difference measured something


def test_float32_parameters_are_promoted_to_float64(setting):
    loss, params, batch = setting
    single = {k: v.float() for k, v in params.items()}
    v = np.random.default_rng(2).standard_normal(hessian.flatten(params).numel())
    for name, op in diagnostics.task_curvature_operators(loss, single, batch).items():
        exact = diagnostics.task_curvature_operators(loss, {k: p.double() for k, p in single.items()}, batch)[name]
        assert op.dtype == np.float64
        np.testing.assert_array_equal(op.matvec(v), exact.matvec(v), err_msg=name)


def test_mean_support_loss_and_union_of_task_spectra(setting):
    loss, params, batch = setting
    mean_loss = diagnostics.mean_support_loss(loss, batch)
    expected = np.mean([float(loss(params, x, y)) for x, y in zip(batch.x_support, batch.y_support)])
    assert float(mean_loss(params)) == pytest.approx(expected, rel=1e-14)
    found = diagnostics.task_spectrum(loss, params, batch, k=4)
    per_task = [np.linalg.eigvalsh(H) for H, _ in dense_per_task(loss, params, batch)]
    union = np.sort(np.concatenate(per_task))[::-1]
    np.testing.assert_allclose(found.top, union[:4], rtol=1e-8)
    assert found.residual < 1e-6
    # Eq. 26: the multi-task β_c is the smallest of the per-task bounds, i.e. the bound of the union.
    alphas = np.array([0.0, 0.05])
    per_task_bounds = [bounds.beta_critical(alphas, spectrum) for spectrum in per_task]
    np.testing.assert_allclose(bounds.beta_critical(alphas, union), np.min(per_task_bounds, 0))


def test_task_spectrum_brackets_the_union_of_task_spectra(setting):
    loss, params, batch = setting
    union = np.sort(np.concatenate([np.linalg.eigvalsh(H) for H, _ in dense_per_task(loss, params, batch)]))
    result = diagnostics.task_spectrum(loss, params, batch, k=3)
    np.testing.assert_allclose(result.top, union[::-1][:3], rtol=1e-8)
    assert result.lower == pytest.approx(union[0], rel=1e-8, abs=1e-10) and result.residual < 1e-6
    # Eq. 26 as a guarantee: never above the bound of every eigenvalue of every task.
    alphas = np.geomspace(1e-3, 1.0, 50)
    guaranteed = bounds.beta_critical_interval(alphas, result.top, result.lower, model="exact")
    assert np.all(guaranteed <= bounds.beta_critical(alphas, union, "exact") * (1 + 1e-6))
