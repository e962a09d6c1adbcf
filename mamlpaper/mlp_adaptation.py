"""Exact one-step second-order MAML for an MLP in closed form, forward and reverse by hand.

For a linear layer z = a Wᵀ + b, one gradient step on the support loss changes W by
-α δᵀa_s and b by -α Σδ (δ = ∂L_s/∂z on the support points). The adapted layer applied to
query activations a_q is therefore

    z_q' = a_q Wᵀ + b - α (a_q a_sᵀ + 1) δ,

a shared-weight product (one large matrix multiply for all tasks) plus an N_q × N_s kernel
per task: per-(config, task) weight copies (C·T·40·40 floats for the sinusoid MLP in a sweep)
are never built. The meta-gradient is the reverse pass of that expression, written out too:
through the query path, the kernels, the support backward pass (the second-order terms) and the
support forward pass. Compared with autograd over the same expression it saves the graph, the
saved tensors and half the elementwise passes; a vmapped α×β sweep spends nearly all its time
here. The tests hold it to autograd (`maml.batched_meta_gradient`) and to `higher`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from .models import Params
from .tasks import Tasks


class _Activation(NamedTuple):
    forward: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor, Tensor], Tensor]
    """σ'(z), from z and σ(z)."""
    curvature: Callable[[Tensor, Tensor], Tensor] | None
    """σ''(z), from z and σ(z); None where it is zero almost everywhere (ReLU)."""


_ACTIVATIONS: dict[type, _Activation] = {
    nn.ReLU: _Activation(torch.relu, lambda z, a: torch.sign(a), None),
    nn.Tanh: _Activation(torch.tanh, lambda z, a: 1 - a * a, lambda z, a: -2 * a * (1 - a * a)),
}


def mlp_layers(model: nn.Module) -> list[tuple[str, str, type | None]] | None:
    """(weight name, bias name, activation after it) per Linear of a Sequential MLP; None if not one."""
    if not isinstance(model, nn.Sequential) or len(model) == 0:
        return None
    layers: list[list] = []
    for index, module in enumerate(model):
        if isinstance(module, nn.Linear) and module.bias is not None:
            layers.append([f"{index}.weight", f"{index}.bias", None])
        elif type(module) in _ACTIVATIONS and layers and layers[-1][2] is None:
            layers[-1][2] = type(module)
        else:
            return None
    if not isinstance(model[-1], nn.Linear):
        return None
    return [tuple(layer) for layer in layers]


def _product(x: Tensor, y: Tensor) -> Tensor:
    """x @ y, as a broadcast product when the contracted size is 1 (a batched GEMM is slow there)."""
    return x * y if x.shape[-1] == 1 else x @ y


def _scaled(x: Tensor, slope: Tensor | None) -> Tensor:
    return x if slope is None else x * slope


def _summed_outer(left: Tensor, right: Tensor) -> Tensor:
    """Σ over tasks and points of leftᵀ right: a weight gradient, as one matrix product."""
    return left.reshape(-1, left.shape[-1]).mT @ right.reshape(-1, right.shape[-1])


def _meta_loss_and_gradient(layers, params: Params, tasks: Tasks, alpha: Tensor) -> tuple[Tensor, Params]:
    # No autograd graph here, so results are updated in place: every fresh (configs, tasks,
    # points, width) tensor costs an allocation and its page faults. -α multiplies the small
    # N_q × N_s kernels, never the wide tensors. In-place targets always depend on both θ and
    # α, so this stays vmappable over either.
    xs, ys, xq, yq = tasks
    weights = [params[w] for w, _, _ in layers]
    biases = [params[b] for _, b, _ in layers]
    acts = [_ACTIVATIONS[a] if a else None for _, _, a in layers]
    n = len(layers)
    minus_alpha = -alpha

    # Support forward (a[l] feeds layer l) and backward (deltas[l] = ∂L_support/∂z[l]).
    a, z, slopes = [xs], [], []
    for w, b, act in zip(weights, biases, acts):
        z.append(_product(a[-1], w.mT).add_(b))
        a.append(act.forward(z[-1]) if act else z[-1])
        slopes.append(act.slope(z[-1], a[-1]) if act else None)
    deltas, through = [None] * n, [None] * n
    support_scale = 2 / (ys.shape[-2] * ys.shape[-1])  # ∂(mean squared error)/∂prediction per residual
    deltas[-1] = (a[-1] - ys).mul_(support_scale)
    for l in range(n - 1, 0, -1):
        through[l - 1] = _product(deltas[l], weights[l])
        deltas[l - 1] = _scaled(through[l - 1], slopes[l - 1])

    # Query forward through the adapted layers; kernels hold -α (a_q a_sᵀ + 1).
    q, kernels, query_slopes = [xq], [], []
    for l in range(n):
        kernels.append(_product(q[l], a[l].mT).add_(1) * minus_alpha)
        u = (kernels[l] @ deltas[l]).add_(_product(q[l], weights[l].mT)).add_(biases[l])
        q.append(acts[l].forward(u) if acts[l] else u)
        query_slopes.append(acts[l].slope(u, q[-1]) if acts[l] else None)
    residual = q[-1] - yq
    loss = (residual * residual).mean()

    # Reverse: query path, then the support backward pass, then the support forward pass.
    grad_w, grad_b = [None] * n, [None] * n
    a_bar, delta_bar, z_bar = [None] * (n + 1), [None] * n, [None] * n
    q_bar = residual.mul_(2 / residual.numel())
    for l in reversed(range(n)):
        u_bar = _scaled(q_bar, query_slopes[l])
        grad_w[l] = _summed_outer(u_bar, q[l])
        grad_b[l] = u_bar.sum((0, 1))
        m = _product(u_bar, deltas[l].mT).mul_(minus_alpha)
        if l:
            q_bar = _product(u_bar, weights[l]).add_(m @ a[l])
            a_bar[l] = m.mT @ q[l]
        delta_bar[l] = kernels[l].mT @ u_bar
    for l in range(n - 1):
        masked = _scaled(delta_bar[l], slopes[l])
        delta_bar[l + 1] = delta_bar[l + 1].add_(masked @ weights[l + 1].mT)
        grad_w[l + 1] = grad_w[l + 1].add_(_summed_outer(deltas[l + 1], masked))
        if acts[l] and acts[l].curvature:
            z_bar[l] = delta_bar[l] * through[l] * acts[l].curvature(z[l], a[l + 1])
    a_bar[n] = delta_bar[n - 1].mul_(support_scale)
    for l in reversed(range(n)):
        zb = _scaled(a_bar[l + 1], slopes[l])
        if z_bar[l] is not None:
            zb = zb.add_(z_bar[l])
        grad_w[l] = grad_w[l].add_(_summed_outer(zb, a[l]))
        grad_b[l] = grad_b[l].add_(zb.sum((0, 1)))
        if l:
            a_bar[l] = a_bar[l].add_(_product(zb, weights[l]))
    grads = {}
    for (w, b, _), gw, gb in zip(layers, grad_w, grad_b):
        grads[w], grads[b] = gw, gb
    return loss, grads


def second_order_meta_gradient(model: nn.Module):
    """(params, tasks, α) -> (mean meta-loss, gradient) of exact one-step MAML with MSE, for an MLP.

    Same contract as ``maml.batched_meta_gradient(loss, "second", 1)`` (and vmappable over
    configurations like it), but not itself differentiable; ``None`` when the model is not a
    Sequential of biased Linear layers with ReLU/Tanh between them.
    """
    layers = mlp_layers(model)
    if layers is None:
        return None

    def meta_gradient(params: Params, tasks: Tasks, alpha: Tensor):
        return _meta_loss_and_gradient(layers, params, tasks, alpha)

    return meta_gradient
