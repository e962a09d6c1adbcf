"""Functional one- and k-step MAML over parameter pytrees (dicts of tensors), with ``torch.func``.

Three meta-gradients, all evaluated on the same inner path θ_k = θ - α Σ ∇L_support:

* ``second``     exact MAML: ∇_θ L_query(θ_k), differentiating through the inner loop;
* ``first``      first-order MAML (FOMAML): ∇L_query evaluated at θ_k, Jacobian dropped;
* ``simplified`` the paper's Eq. 3-4: the inner-loop Jacobian kept, the gradient at the
  adapted point replaced by ∇L_query(θ); for one step with support = query this is g - αHg.

α is a tensor so that whole grids of α can be ``vmap``-ped; the reported loss is always the
meta-objective L_query(θ_k), so the variants are compared on one number.
"""
from __future__ import annotations

import math
from typing import Callable, Dict

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

from .tasks import Tasks, check_tasks

Params = Dict[str, Tensor]
TaskLoss = Callable[[Params, Tensor, Tensor], Tensor]
VARIANTS = ("second", "first", "simplified")


def mse(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error written out: ``F.mse_loss`` breaks forward-over-reverse HVPs in torch 2.13."""
    return ((prediction - target) ** 2).mean()


def functional_loss(model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor] = mse) -> TaskLoss:
    """Turn a module and a criterion into L(params, x, y), the form every transform here needs."""

    def loss(params: Params, x: Tensor, y: Tensor) -> Tensor:
        return criterion(functional_call(model, params, (x,)), y)

    return loss


def parameters_of(model: nn.Module) -> Params:
    """A detached copy of the module's parameters: θ0 as a pytree."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def adapt(loss: TaskLoss, params: Params, x: Tensor, y: Tensor, alpha: Tensor, steps: int) -> Params:
    """k steps of gradient descent on the support loss (Eq. 1), differentiable in θ."""
    for _ in range(steps):
        g = grad(loss)(params, x, y)
        params = {k: p - alpha * g[k] for k, p in params.items()}
    return params


def batched_meta_gradient(loss: TaskLoss, variant: str, steps: int):
    """(params, tasks, α) -> (mean meta-loss, mean meta-gradient) over the task axis; no checks, vmappable.

    The task mean is taken inside one gradient transform (not as a mean of per-task gradients),
    so per-task copies of the gradient are never materialised: the sweep's hot path.
    """
    over_tasks = dict(in_dims=(None, 0, 0, None))

    def adapted(params, xs, ys, alpha):
        return adapt(loss, params, xs, ys, alpha, steps)

    def second(params, tasks, alpha):
        def meta_loss(p):
            return vmap(lambda xs, ys, xq, yq: loss(adapted(p, xs, ys, alpha), xq, yq))(*tasks).mean()

        g, value = grad_and_value(meta_loss)(params)
        return value, g

    def first(params, tasks, alpha):
        adapted_params = vmap(adapted, **over_tasks)(params, tasks.x_support, tasks.y_support, alpha)
        grads, losses = vmap(grad_and_value(loss))(adapted_params, tasks.x_query, tasks.y_query)
        return losses.mean(), {k: g.mean(0) for k, g in grads.items()}

    def simplified(params, tasks, alpha):
        query_grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, tasks.x_query, tasks.y_query)

        def pulled_back(p):
            def one(xs, ys, xq, yq, cotangent):
                q = adapted(p, xs, ys, alpha)
                inner = sum((q[k] * cotangent[k]).sum() for k in q)
                return inner, loss(q, xq, yq)

            inner, losses = vmap(one)(*tasks, query_grads)
            return inner.mean(), losses.mean()

        g, value = grad(pulled_back, has_aux=True)(params)
        return value, g

    return {"second": second, "first": first, "simplified": simplified}[variant]


def mean_task_gradient_norm(loss: TaskLoss, params: Params, tasks: Tasks) -> Tensor:
    """Mean over tasks of ‖∇L_support(θ)‖: the quantity of the paper's Fig. 1 (training data)."""

    def norm(xs, ys):
        g = grad(loss)(params, xs, ys)
        return torch.sqrt(sum((v**2).sum() for v in g.values()))

    return vmap(norm)(tasks.x_support, tasks.y_support).mean()


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not allowed; choose one of {', '.join(VARIANTS)}")
    return variant


def check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be an integer >= 1 (inner gradient steps)")
    return steps


def check_rate(name: str, value, allow_zero: bool) -> float:
    """α may be 0 (joint training, plain GD); β must be positive; both finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a real number") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}={value!r} is not allowed; it must be finite and {allowed}")
    return v


def meta_gradient(
    loss: TaskLoss, params: Params, tasks: Tasks, alpha, *, steps: int = 1, variant: str = "second"
) -> tuple[Tensor, Params]:
    """Mean MAML meta-loss and meta-gradient over a meta-batch of tasks (the checked entry point)."""
    check_variant(variant)
    check_steps(steps)
    check_rate("alpha", alpha, allow_zero=True)
    check_tasks(tasks)
    if not params:
        raise ValueError("params={} is empty; pass the model's parameters, e.g. parameters_of(model)")
    dtype = next(iter(params.values())).dtype
    alpha_t = torch.as_tensor(alpha, dtype=dtype)
    return batched_meta_gradient(loss, variant, steps)(params, tasks, alpha_t)
