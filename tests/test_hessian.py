import numpy as np
import pytest
import torch

from mamlpaper import hessian, maml, models, problems, tasks


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


# --- HVPs, Lanczos, Tg and Frobenius norms against dense, independent computations -------------


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These products are small: a second intra-op thread only adds synchronisation (badly so on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sine_regression(n_points, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 10 * torch.rand(n_points, 1, generator=g, dtype=torch.float64) - 5
    return x, 2.0 * torch.sin(x + 0.5)


def tanh_mlp(widths, seed=0):
    return models.mlp(torch.Generator().manual_seed(seed), widths=widths, activation="tanh").double()


@pytest.fixture(scope="module")
def big():
    """The paper's 1-40-40-1 MLP (tanh, float64, d = 1761) on 200 sine points, its dense Hessian and spectrum.

    The spectrum comes from torch's eigh: NumPy's threaded OpenBLAS is 30x slower on a busy 2-core CPU.
    """
    model = tanh_mlp((1, 40, 40, 1))
    x, y = sine_regression(200)
    loss = maml.functional_loss(model)
    task_loss = lambda p: loss(p, x, y)  # noqa: E731
    params = maml.parameters_of(model)
    H = hessian.dense_hessian(task_loss, params)
    return task_loss, params, H.numpy(), torch.linalg.eigvalsh(0.5 * (H + H.T)).numpy()


@pytest.fixture(scope="module")
def small():
    """A 1-6-5-1 tanh net (d = 53) on 30 points: small enough for torch.func.hessian and dense Tg."""
    model = tanh_mlp((1, 6, 5, 1), seed=4)
    x, y = sine_regression(30, seed=5)
    loss = maml.functional_loss(model)
    return (lambda p: loss(p, x, y)), maml.parameters_of(model)


def reference_hessian(loss, params, at=None):
    """torch.func.hessian of the flattened loss: independent of the module's row-by-row build."""
    theta = hessian.flatten(params) if at is None else at
    return torch.func.hessian(lambda v: loss(hessian.unflatten(v, params)))(theta)


def test_dense_hessian_matches_torch_func_hessian(small):
    loss, params = small
    expected = reference_hessian(loss, params)
    torch.testing.assert_close(hessian.dense_hessian(loss, params), expected, rtol=1e-12, atol=1e-14)


def test_hessian_operator_forward_equals_reverse_equals_dense(big):
    loss, params, H, spectrum = big
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = H @ v.numpy()
    forward = hessian.hessian_operator(loss, params, method="forward").matvec(v.numpy())
    reverse = hessian.hessian_operator(loss, params, method="reverse").matvec(v.numpy())
    np.testing.assert_allclose(forward, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(reverse, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("which, method", [("LA", "forward"), ("SA", "reverse"), ("LM", "reverse")])
def test_lanczos_top5_matches_dense_eigh(big, which, method):
    loss, params, H, spectrum = big
    expected = {"LA": spectrum[::-1][:5], "SA": spectrum[:5], "LM": spectrum[np.argsort(-np.abs(spectrum))][:5]}[which]
    values, residuals = hessian.top_eigenvalues(loss, params, k=5, which=which, method=method)
    np.testing.assert_allclose(values, expected, rtol=1e-8)
    assert residuals.shape == (5,) and np.all(residuals <= 1e-6 * np.abs(spectrum).max())


def test_lanczos_is_reproducible_and_operator_is_float64(big):
    loss, params, H, spectrum = big
    first = hessian.top_eigenvalues(loss, params, k=3, method="reverse", seed=7)
    second = hessian.top_eigenvalues(loss, params, k=3, method="reverse", seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    op = hessian.hessian_operator(loss, params, method="reverse")
    v = np.random.default_rng(2).standard_normal(H.shape[0])
    assert op.shape == H.shape and op.matvec(v).dtype == np.float64
    np.testing.assert_allclose(op.matvec(v), H @ v, rtol=1e-10, atol=1e-12)


def test_float32_parameters_give_close_eigenvalues(big):
    _, _, _, spectrum = big
    model = tanh_mlp((1, 40, 40, 1)).float()
    x, y = (t.float() for t in sine_regression(200))
    loss = maml.functional_loss(model)
    params = maml.parameters_of(model)
    single = lambda p: loss(p, x, y)  # noqa: E731
    values, residuals = hessian.top_eigenvalues(single, params, k=2, method="reverse")
    np.testing.assert_allclose(values, spectrum[::-1][:2], rtol=1e-5)
    assert np.all(residuals <= 1e-5 * values[0])


def meta_objective(loss, tasks_, alpha, steps):
    """Mean over tasks of L_query(adapt(θ)): the exact MAML meta-loss, whose Hessian is the meta-Hessian."""

    def one(p, xs, ys, xq, yq):
        return loss(maml.adapt(loss, p, xs, ys, alpha, steps), xq, yq)

    return lambda p: torch.func.vmap(one, in_dims=(None, 0, 0, 0, 0))(p, *tasks_).mean()


def test_meta_hessian_hvp_equals_dense_hessian_of_meta_loss():
    model = tanh_mlp((1, 5, 4, 1), seed=2)
    g = torch.Generator().manual_seed(3)
    amp, phase = (torch.rand(3, 1, 1, generator=g, dtype=torch.float64) for _ in range(2))
    xs, xq = (10 * torch.rand(3, n, 1, generator=g, dtype=torch.float64) - 5 for n in (6, 8))
    batch = tasks.Tasks(xs, amp * torch.sin(xs + phase), xq, amp * torch.sin(xq + phase))
    meta_loss = meta_objective(maml.functional_loss(model), batch, torch.tensor(0.05, dtype=torch.float64), steps=2)
    params = maml.parameters_of(model)
    H = reference_hessian(meta_loss, params).numpy()
    v = torch.randn(H.shape[0], generator=g, dtype=torch.float64)
    for method in hessian.METHODS:
        np.testing.assert_allclose(hessian.hessian_operator(meta_loss, params, method=method).matvec(v.numpy()),
                                   H @ v.numpy(), rtol=1e-10, atol=1e-12)
    values, _ = hessian.top_eigenvalues(meta_loss, params, k=3)
    np.testing.assert_allclose(values, np.linalg.eigvalsh(H)[::-1][:3], rtol=1e-8)


def test_top_eigenvalues_of_an_operator_a_matvec_and_a_matrix_agree(small):
    loss, params = small
    H = reference_hessian(loss, params).numpy()
    d = H.shape[0]
    op = hessian.hessian_operator(loss, params)
    expected = np.linalg.eigvalsh(H)
    for operand, kwargs in ((op, {}), (op.matvec, {"d": d}), (H, {})):
        values, residuals = hessian.top_eigenvalues_of(operand, k=2, which="SA", **kwargs)
        np.testing.assert_allclose(values, expected[:2], rtol=1e-8, atol=1e-10)
        assert np.all(residuals <= 1e-7 * np.abs(expected).max())


def test_frobenius_exact_and_hutchinson(small):
    loss, params = small
    H = reference_hessian(loss, params).numpy()
    expected = np.linalg.norm(H, "fro")
    op = hessian.hessian_operator(loss, params, method="reverse")
    assert hessian.frobenius_norm(H) == (pytest.approx(expected, rel=1e-14), 0.0)
    assert hessian.frobenius_norm(torch.from_numpy(H)) == (pytest.approx(expected, rel=1e-14), 0.0)
    assert hessian.frobenius_norm(op, exact=True) == (pytest.approx(expected, rel=1e-9), 0.0)
    assert hessian.frobenius_norm(op.matvec, d=H.shape[0], samples=H.shape[0])[0] == pytest.approx(expected, rel=1e-9)
    estimate, error = hessian.frobenius_norm(op, exact=False, samples=200, seed=3)
    assert 0 < error < 0.2 * expected and abs(estimate - expected) <= 4 * error
    assert hessian.frobenius_norm(op, exact=False, samples=200, seed=3) == (estimate, error)


def test_spectrum_top_k_and_smallest_equal_numpy_eigh(small, big):
    loss, params = small
    expected = np.linalg.eigvalsh(reference_hessian(loss, params).numpy())
    assert expected[0] < 0  # an indefinite Hessian: the smallest eigenvalue is not the smallest magnitude
    result = hessian.spectrum(loss, params, k=4)
    np.testing.assert_allclose(result.top, expected[::-1][:4], rtol=1e-8)
    assert result.lower == pytest.approx(expected[0], rel=1e-8)
    assert 0 <= result.residual <= 1e-7 * np.abs(expected).max()
    big_loss, big_params, _, big_spectrum = big
    assert hessian.spectrum(big_loss, big_params, k=2).lower == pytest.approx(big_spectrum[0], rel=1e-8)


def _symmetric_with_spectrum(values, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(values), len(values))))
    return q @ np.diag(values) @ q.T, q


def test_top_eigenpair_matches_eigh_and_its_residual_is_honest():
    values = np.r_[10.0, 7.0, np.linspace(-3.0, 5.0, 78)]
    a, _ = _symmetric_with_spectrum(values)
    pair = hessian.top_eigenpair(a, tol=1e-10)
    assert pair.value == pytest.approx(10.0, rel=1e-10)
    assert np.linalg.norm(pair.vector) == pytest.approx(1.0)
    assert np.linalg.norm(a @ pair.vector - pair.value * pair.vector) <= 1.01 * pair.residual + 1e-12
    loose = hessian.top_eigenpair(a, tol=1e-2)
    assert loose.products < pair.products and loose.residual <= 1e-2 * abs(loose.value)
    assert loose.value <= 10.0 + 1e-12  # a Ritz value never exceeds λ_max
    assert abs(loose.value - 10.0) <= loose.residual ** 2 / (10.0 - 7.0) * 1.01 + 1e-12


def test_top_eigenpair_from_a_good_start_is_cheap_and_from_a_wrong_eigenvector_is_stuck():
    """A start near the top eigenvector converges in a few products; an exact *other* eigenvector
    spans an invariant subspace, so Lanczos returns it: why the advisor mixes in a random share."""
    values = np.r_[10.0, 7.0, np.linspace(-3.0, 5.0, 78)]
    a, q = _symmetric_with_spectrum(values)
    noise = np.random.default_rng(1).standard_normal(80)
    cold = hessian.top_eigenpair(a, tol=1e-6).products
    assert hessian.top_eigenpair(a, tol=1e-6, start=q[:, 0] + 1e-4 * noise).products < cold
    assert hessian.top_eigenpair(a, tol=1e-6, start=q[:, 0] + 1e-8 * noise).products <= 2
    stuck = hessian.top_eigenpair(a, tol=1e-6, start=q[:, 1])
    assert stuck.value == pytest.approx(7.0) and stuck.products == 1 and stuck.converged  # invariant, not short
    mixed = q[:, 1] + np.random.default_rng(2).standard_normal(80) / np.sqrt(80)
    assert hessian.top_eigenpair(a, tol=1e-6, start=mixed).value == pytest.approx(10.0, rel=1e-6)


def test_top_eigenpair_says_when_it_ran_out_of_products():
    """A clustered top (1, 1 − 1e-9, 1 − 2e-9, ...) needs dozens of products for tol 1e-12: capped at
    5, the pair comes back short of tol and says so; with room it converges; a Krylov space that
    fills the whole space is exact, whatever tol asked."""
    a, _ = _symmetric_with_spectrum(1.0 - 1e-9 * np.arange(200))
    short = hessian.top_eigenpair(a, tol=1e-12, max_products=5)
    assert not short.converged and short.products == 5
    assert short.residual > 1e-12 * abs(short.value)
    full = hessian.top_eigenpair(a, tol=1e-12, max_products=200)
    assert full.converged and full.residual <= 1e-12 * abs(full.value) and full.products < 200
    assert full.value == pytest.approx(1.0, rel=1e-12)
    small, _ = _symmetric_with_spectrum([3.0, 2.0, 1.0])
    exhausted = hessian.top_eigenpair(small, tol=1e-300, max_products=10)
    assert exhausted.converged and exhausted.products == 3 and exhausted.value == pytest.approx(3.0, rel=1e-14)
