import pytest
import torch

from mamlpaper import metaopt


def test_adam_matches_torch_optim_adam():
    g = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(3, 4, generator=g, dtype=torch.float64), "b": torch.randn(4, generator=g, dtype=torch.float64)}
    reference = {k: v.clone().requires_grad_() for k, v in params.items()}
    torch_adam = torch.optim.Adam(reference.values(), lr=0.01)
    state = metaopt.init_state("adam", params)
    lr = torch.tensor(0.01, dtype=torch.float64)
    for _ in range(25):
        grads = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}
        params, state = metaopt.adam(params, grads, state, lr)
        for k, p in reference.items():
            p.grad = grads[k].clone()
        torch_adam.step()
    for k in params:
        torch.testing.assert_close(params[k], reference[k].detach(), rtol=1e-12, atol=1e-14)


def test_sgd_is_a_plain_step():
    params, grads = {"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([0.5, -1.0])}
    new, _ = metaopt.sgd(params, grads, {}, torch.tensor(0.1))
    torch.testing.assert_close(new["w"], torch.tensor([0.95, 2.1]))


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer='rmsprop' is not allowed; choose one of sgd, adam"):
        metaopt.init_state("rmsprop", {"w": torch.zeros(1)})
