import numpy as np
import pytest
import torch

from mamlpaper import hessian, maml, problems


def test_dense_hessian_of_linear_regression_is_2XtX_over_n():
    problem = problems.linear_regression(seed=2, n_points=30)
    tasks = problem.sample_tasks(None)
    loss = maml.functional_loss(problem.model)
    params = maml.parameters_of(problem.model)
    H = hessian.dense_hessian(lambda p: loss(p, tasks.x_support[0], tasks.y_support[0]), params)
    x = tasks.x_support[0, :, 0].numpy()
    X = np.c_[x, np.ones_like(x)]
    np.testing.assert_allclose(H.numpy(), 2 * X.T @ X / len(x), rtol=1e-12)
    np.testing.assert_allclose(hessian.eigenvalues(H), np.linalg.eigvalsh(2 * X.T @ X / len(x)), rtol=1e-12)


def test_flatten_roundtrip_and_shape_check():
    params = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([7.0])}
    back = hessian.unflatten(hessian.flatten(params), params)
    assert all(torch.equal(back[k], params[k]) for k in params)
    with pytest.raises(ValueError, match=r"vector has shape \(5,\); expected \(7,\)"):
        hessian.unflatten(torch.zeros(5), params)


def test_eigenvalues_rejects_non_square():
    with pytest.raises(ValueError, match="expected a square"):
        hessian.eigenvalues(torch.zeros(2, 3))
