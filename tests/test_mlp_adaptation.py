"""The closed-form one-step MLP adaptation against the generic torch.func MAML and `higher`."""
import pytest
import torch
from torch import nn

from mamlpaper import maml, mlp_adaptation, models
from mamlpaper.tasks import Tasks, sinusoid


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("widths", [(1, 40, 40, 1), (1, 5, 3)])
def test_matches_generic_second_order_maml(activation, widths):
    model = models.mlp(torch.Generator().manual_seed(0), widths=widths, activation=activation).double()
    tasks = sinusoid(torch.Generator().manual_seed(1), n_tasks=6, n_support=10, n_query=7).to(dtype=torch.float64)
    if widths[-1] != 1:
        tasks = Tasks(tasks.x_support, tasks.y_support.expand(-1, -1, widths[-1]),
                      tasks.x_query, tasks.y_query.expand(-1, -1, widths[-1]) * 0.5)
    params = maml.parameters_of(model)
    alpha = torch.tensor(0.07, dtype=torch.float64)
    value, grads = mlp_adaptation.second_order_meta_gradient(model)(params, tasks, alpha)
    ref_value, ref_grads = maml.batched_meta_gradient(maml.functional_loss(model), "second", 1)(params, tasks, alpha)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-12)
    for k in params:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-10, atol=1e-13)


def test_matches_higher():
    higher = pytest.importorskip("higher")
    model = models.mlp(torch.Generator().manual_seed(2), widths=(1, 8, 8, 1), activation="tanh").double()
    tasks = sinusoid(torch.Generator().manual_seed(3), n_tasks=3).to(dtype=torch.float64)
    _, grads = mlp_adaptation.second_order_meta_gradient(model)(
        maml.parameters_of(model), tasks, torch.tensor(0.03, dtype=torch.float64))
    inner = torch.optim.SGD(model.parameters(), lr=0.03)
    for xs, ys, xq, yq in zip(*tasks):
        with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
            diffopt.step(((fmodel(xs) - ys) ** 2).mean())
            (((fmodel(xq) - yq) ** 2).mean() / tasks.n_tasks).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(1, 4), nn.ReLU()),
        nn.Sequential(nn.Linear(1, 4, bias=False), nn.ReLU(), nn.Linear(4, 1)),
        nn.Sequential(nn.Linear(1, 4), nn.Sigmoid(), nn.Linear(4, 1)),
        nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 1)),
        nn.Linear(1, 1),
        nn.Sequential(),
    ],
    ids=["ends-in-activation", "no-bias", "sigmoid", "double-activation", "not-sequential", "empty"],
)
def test_other_models_fall_back(model):
    assert mlp_adaptation.mlp_layers(model) is None
    assert mlp_adaptation.second_order_meta_gradient(model) is None


def test_layer_structure_of_the_sinusoid_mlp():
    model = models.mlp(torch.Generator().manual_seed(0))
    assert mlp_adaptation.mlp_layers(model) == [
        ("0.weight", "0.bias", nn.ReLU), ("2.weight", "2.bias", nn.ReLU), ("4.weight", "4.bias", None)]


@pytest.mark.parametrize("batched", ["alpha", "params", "both"])
def test_vmaps_over_configurations_of_alpha_or_theta(batched):
    """The hand-written reverse pass updates tensors in place; vmapped over α alone, θ alone or
    both, every configuration must still equal its own unbatched call."""
    model = models.mlp(torch.Generator().manual_seed(4), widths=(1, 6, 5, 1)).double()
    tasks = sinusoid(torch.Generator().manual_seed(5), n_tasks=3).to(dtype=torch.float64)
    base = maml.parameters_of(model)
    g = torch.Generator().manual_seed(6)
    thetas = [{k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in base.items()} for _ in range(3)]
    alphas = torch.tensor([0.0, 0.05, 0.3], dtype=torch.float64)
    if batched == "alpha":
        thetas = [base] * 3
    if batched == "params":
        alphas = torch.full((3,), 0.05, dtype=torch.float64)
    stacked = {k: torch.stack([t[k] for t in thetas]) for k in base}
    meta_gradient = mlp_adaptation.second_order_meta_gradient(model)
    in_dims = {"alpha": (None, None, 0), "params": (0, None, None), "both": (0, None, 0)}[batched]
    args = (base if batched == "alpha" else stacked, tasks, alphas[0] if batched == "params" else alphas)
    values, grads = torch.func.vmap(meta_gradient, in_dims=in_dims)(*args)
    for i in range(3):
        value, grad = meta_gradient(thetas[i], tasks, alphas[i])
        assert float(values[i]) == pytest.approx(float(value), rel=1e-13)
        for k in base:
            torch.testing.assert_close(grads[k][i], grad[k], rtol=1e-12, atol=1e-14)
