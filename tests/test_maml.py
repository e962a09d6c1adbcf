"""MAML meta-gradients against independent computations: `higher`, finite differences, closed forms."""
import numpy as np
import pytest
import torch

from mamlpaper import maml, models
from mamlpaper.tasks import Tasks

torch.set_default_dtype(torch.float64)


def regression_tasks(seed, n_tasks=3, n_support=5, n_query=7):
    g = torch.Generator().manual_seed(seed)
    amp = 0.1 + 4.9 * torch.rand(n_tasks, 1, 1, generator=g)
    phase = torch.pi * torch.rand(n_tasks, 1, 1, generator=g)
    xs = 10 * torch.rand(n_tasks, n_support, 1, generator=g) - 5
    xq = 10 * torch.rand(n_tasks, n_query, 1, generator=g) - 5
    return Tasks(xs, amp * torch.sin(xs + phase), xq, amp * torch.sin(xq + phase))


def tanh_net(seed=1):
    return models.mlp(torch.Generator().manual_seed(seed), widths=(1, 8, 8, 1), activation="tanh").double()


def plain_meta_loss(model, params, tasks, alpha, steps):
    """The meta-loss written with torch.autograd only: an implementation independent of torch.func."""
    names = list(params)
    total = 0.0
    for xs, ys, xq, yq in zip(*tasks):
        p = [params[k].detach().clone().requires_grad_() for k in names]
        for _ in range(steps):
            out = torch.func.functional_call(model, dict(zip(names, p)), (xs,))
            g = torch.autograd.grad(((out - ys) ** 2).mean(), p, create_graph=True)
            p = [pi - alpha * gi for pi, gi in zip(p, g)]
        out = torch.func.functional_call(model, dict(zip(names, p)), (xq,))
        total = total + float(((out - yq) ** 2).mean().detach())
    return total / tasks.n_tasks


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_matches_higher(steps):
    higher = pytest.importorskip("higher")
    model, tasks, alpha = tanh_net(), regression_tasks(0), 0.03
    loss, grads = maml.meta_gradient(maml.functional_loss(model), maml.parameters_of(model), tasks, alpha,
                                     steps=steps, variant="second")
    model.zero_grad()
    inner = torch.optim.SGD(model.parameters(), lr=alpha)
    total = 0.0
    for xs, ys, xq, yq in zip(*tasks):
        with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(((fmodel(xs) - ys) ** 2).mean())
            query = ((fmodel(xq) - yq) ** 2).mean() / tasks.n_tasks
            query.backward()
            total += float(query.detach())
    assert float(loss) == pytest.approx(total, rel=1e-12)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_matches_finite_differences(steps):
    model, tasks, alpha = tanh_net(2), regression_tasks(1), 0.05
    params = maml.parameters_of(model)
    _, grads = maml.meta_gradient(maml.functional_loss(model), params, tasks, alpha, steps=steps, variant="second")
    h = 1e-6
    for name, p in params.items():
        for i in range(p.numel()):
            up = {k: v.clone() for k, v in params.items()}
            down = {k: v.clone() for k, v in params.items()}
            up[name].view(-1)[i] += h
            down[name].view(-1)[i] -= h
            fd = (plain_meta_loss(model, up, tasks, alpha, steps) - plain_meta_loss(model, down, tasks, alpha, steps)) / (2 * h)
            assert float(grads[name].view(-1)[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)


def linear_closed_forms(theta, tasks, alpha, steps):
    """Meta-gradients of linear regression (a quadratic) in numpy: H = 2XᵀX/n, g = 2Xᵀ(Xθ − y)/n."""
    out = {v: np.zeros(2) for v in maml.VARIANTS}
    for xs, ys, xq, yq in zip(*tasks):
        Xs = np.c_[xs.numpy()[:, 0], np.ones(len(xs))]
        Xq = np.c_[xq.numpy()[:, 0], np.ones(len(xq))]
        Hs, Hq = 2 * Xs.T @ Xs / len(Xs), 2 * Xq.T @ Xq / len(Xq)
        bs, bq = 2 * Xs.T @ ys.numpy()[:, 0] / len(Xs), 2 * Xq.T @ yq.numpy()[:, 0] / len(Xq)
        J = np.linalg.matrix_power(np.eye(2) - alpha * Hs, steps)
        adapted = theta.copy()
        for _ in range(steps):
            adapted = adapted - alpha * (Hs @ adapted - bs)
        out["first"] += Hq @ adapted - bq
        out["simplified"] += J @ (Hq @ theta - bq)
        out["second"] += J @ (Hq @ adapted - bq)
    return {v: g / tasks.n_tasks for v, g in out.items()}


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("variant", maml.VARIANTS)
def test_variants_match_closed_forms_on_a_quadratic(variant, steps):
    model = models.linear_model(torch.Generator().manual_seed(3)).double()
    params = maml.parameters_of(model)
    tasks, alpha = regression_tasks(4), 0.02
    _, grads = maml.meta_gradient(maml.functional_loss(model), params, tasks, alpha, steps=steps, variant=variant)
    theta = np.array([float(params["weight"]), float(params["bias"])])
    expected = linear_closed_forms(theta, tasks, alpha, steps)
    got = np.array([float(grads["weight"]), float(grads["bias"])])
    np.testing.assert_allclose(got, expected[variant], rtol=1e-11)
    others = [v for v in maml.VARIANTS if v != variant and not np.allclose(expected[v], expected[variant])]
    assert others, "the closed forms must tell the variants apart on this data"


def test_simplified_is_g_minus_alpha_Hg_with_shared_data():
    model = models.linear_model(torch.Generator().manual_seed(5)).double()
    params = maml.parameters_of(model)
    t = regression_tasks(6, n_tasks=1)
    tasks = Tasks(t.x_support, t.y_support, t.x_support, t.y_support)
    alpha = 0.04
    loss = maml.functional_loss(model)
    _, grads = maml.meta_gradient(loss, params, tasks, alpha, variant="simplified")
    flat = lambda v: torch.cat([v["weight"].reshape(-1), v["bias"].reshape(-1)])  # noqa: E731
    unflat = lambda v: {"weight": v[:1].reshape(1, 1), "bias": v[1:]}  # noqa: E731
    f = lambda v: loss(unflat(v), tasks.x_support[0], tasks.y_support[0])  # noqa: E731
    theta = flat(params)
    g = torch.func.grad(f)(theta)
    H = torch.func.hessian(f)(theta)
    torch.testing.assert_close(flat(grads), g - alpha * H @ g, rtol=1e-12, atol=1e-12)


def test_alpha_zero_is_plain_gradient_for_every_variant():
    model, tasks = tanh_net(7), regression_tasks(8)
    params = maml.parameters_of(model)
    loss = maml.functional_loss(model)
    plain = torch.func.grad(lambda p: torch.stack([loss(p, x, y) for x, y in zip(tasks.x_query, tasks.y_query)]).mean())(params)
    for variant in maml.VARIANTS:
        _, grads = maml.meta_gradient(loss, params, tasks, 0.0, variant=variant)
        for k in params:
            torch.testing.assert_close(grads[k], plain[k], rtol=1e-12, atol=1e-14)
