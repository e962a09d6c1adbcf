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

from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

from . import _checks
from .models import Params
from .tasks import Tasks, check_tasks
from .variants import VARIANTS

TaskLoss = Callable[[Params, Tensor, Tensor], Tensor]


def mse(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error written out: ``F.mse_loss`` breaks forward-over-reverse HVPs in torch 2.13.

    Shapes must match exactly: an (N, 1) prediction against (N,) targets would broadcast to an
    (N, N) difference and return a plausible, wrong loss.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(prediction.shape)} and target shape {tuple(target.shape)} "
                         "differ; mse needs them equal (targets per point are (points, outputs))")
    return ((prediction - target) ** 2).mean()


def functional_loss(model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor] = mse) -> TaskLoss:
    """Turn a module and a criterion into L(params, x, y), the form every transform here needs."""
    _checks.module(model)
    _checks.function("criterion", criterion)

    def loss(params: Params, x: Tensor, y: Tensor) -> Tensor:
        return criterion(functional_call(model, params, (x,)), y)

    return loss


def parameters_of(model: nn.Module) -> Params:
    """A detached copy of the module's parameters: θ0 as a pytree."""
    _checks.module(model)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def adapt(loss: TaskLoss, params: Params, x: Tensor, y: Tensor, alpha: Tensor, steps: int,
          gradient: Callable | None = None) -> Params:
    """k steps of gradient descent on the support loss (Eq. 1), differentiable in θ.

    ``gradient(params, x, y)``: how the support gradient is taken; ``torch.func.grad(loss)`` by
    default (composes with vmap), or :func:`autograd_gradient` outside any transform.
    """
    gradient = gradient or grad(loss)
    for _ in range(steps):
        g = gradient(params, x, y)
        params = {k: p - alpha * g[k] for k, p in params.items()}
    return params


def autograd_gradient(loss: TaskLoss) -> Callable[[Params, Tensor, Tensor], Params]:
    """∇L with ``torch.autograd`` and its graph kept (so it can be differentiated again): outside
    vmap the same numbers as ``torch.func.grad`` (bit for bit on Conv4), 12 % faster per
    second-order Conv4 meta-gradient on the development CPU, because no transform wraps every
    tensor."""

    def gradient(params: Params, x: Tensor, y: Tensor) -> Params:
        values = torch.autograd.grad(loss(params, x, y), list(params.values()), create_graph=True)
        return dict(zip(params, values))

    return gradient


def _one_task(loss: TaskLoss, steps: int, gradient: Callable | None = None):
    """The per-task pieces every variant is made of, so the batched and looped forms share them."""

    def adapted(params, xs, ys, alpha):
        return adapt(loss, params, xs, ys, alpha, steps, gradient)

    def adapted_loss(params, xs, ys, xq, yq, alpha):
        return loss(adapted(params, xs, ys, alpha), xq, yq)

    def pulled_back(params, xs, ys, xq, yq, alpha, cotangent):
        """⟨θ_k(θ), cotangent⟩ (its gradient is the Jacobian's transpose times the cotangent), and the loss."""
        q = adapted(params, xs, ys, alpha)
        return sum((q[k] * cotangent[k]).sum() for k in q), loss(q, xq, yq)

    return adapted, adapted_loss, pulled_back


def batched_meta_gradient(loss: TaskLoss, variant: str, steps: int):
    """(params, tasks, α) -> (mean meta-loss, mean meta-gradient) over the task axis; no checks, vmappable.

    The task mean is taken inside one gradient transform (not as a mean of per-task gradients),
    so per-task copies of the gradient are never materialised: the sweep's hot path. Only the
    variant and step count are checked, here, once; the returned function checks nothing.
    """
    _checks.choice("variant", variant, VARIANTS)
    steps = _checks.integer("steps", steps, minimum=1)
    adapted, adapted_loss, pulled_back = _one_task(loss, steps)
    over_tasks = dict(in_dims=(None, 0, 0, 0, 0, None))

    def second(params, tasks, alpha):
        g, value = grad_and_value(lambda p: vmap(adapted_loss, **over_tasks)(p, *tasks, alpha).mean())(params)
        return value, g

    def first(params, tasks, alpha):
        adapted_params = vmap(adapted, in_dims=(None, 0, 0, None))(params, tasks.x_support, tasks.y_support, alpha)
        grads, losses = vmap(grad_and_value(loss))(adapted_params, tasks.x_query, tasks.y_query)
        return losses.mean(), {k: g.mean(0) for k, g in grads.items()}

    def simplified(params, tasks, alpha):
        query_grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, tasks.x_query, tasks.y_query)

        def mean_pulled_back(p):
            inner, losses = vmap(pulled_back, in_dims=(None, 0, 0, 0, 0, None, 0))(p, *tasks, alpha, query_grads)
            return inner.mean(), losses.mean()

        g, value = grad(mean_pulled_back, has_aux=True)(params)
        return value, g

    return {"second": second, "first": first, "simplified": simplified}[variant]


def looped_meta_gradient(loss: TaskLoss, variant: str, steps: int):
    """Same contract as :func:`batched_meta_gradient`, one task at a time and without ``vmap``.

    On a CPU, ``vmap`` over tasks turns every task's adapted convolution weights into one grouped
    convolution, slower than a plain loop of ordinary ones; and outside ``vmap`` a model's layers
    may use torch's fused kernels (``fewshot.conv4.PureBatchNorm2d`` uses the native batch norm
    there, 1.5× faster, and its own formula under ``vmap``, where torch's backward is wrong).
    Gradients come from ``torch.autograd`` (:func:`autograd_gradient`), so the result is not
    itself differentiable; they are summed in place; the variants are the same per-task pieces
    as the batched form.
    """
    _checks.choice("variant", variant, VARIANTS)
    steps = _checks.integer("steps", steps, minimum=1)
    adapted, adapted_loss, pulled_back = _one_task(loss, steps, autograd_gradient(loss))

    def leaves(params):
        return {k: v.detach().requires_grad_() for k, v in params.items()}

    def gradient_of(value, wrt):
        return value.detach(), dict(zip(wrt, torch.autograd.grad(value, list(wrt.values()))))

    def second(params, xs, ys, xq, yq, alpha):
        theta = leaves(params)
        return gradient_of(adapted_loss(theta, xs, ys, xq, yq, alpha), theta)

    def first(params, xs, ys, xq, yq, alpha):
        adapted_params = leaves(adapted(leaves(params), xs, ys, alpha))
        return gradient_of(loss(adapted_params, xq, yq), adapted_params)

    def simplified(params, xs, ys, xq, yq, alpha):
        theta = leaves(params)
        _, cotangent = gradient_of(loss(theta, xq, yq), theta)
        inner, value = pulled_back(theta, xs, ys, xq, yq, alpha, cotangent)
        return value.detach(), gradient_of(inner, theta)[1]

    one_task = {"second": second, "first": first, "simplified": simplified}[variant]

    def meta_gradient(params, tasks, alpha):
        total_loss, total = None, None
        for xs, ys, xq, yq in zip(*tasks):
            value, g = one_task(params, xs, ys, xq, yq, alpha)
            if total is None:
                total_loss, total = value, g
            else:
                total_loss = total_loss + value
                for k in total:
                    total[k].add_(g[k])
        n = tasks.n_tasks
        return total_loss / n, {k: v / n for k, v in total.items()}

    return meta_gradient


def mean_task_gradient_norm(loss: TaskLoss, params: Params, tasks: Tasks) -> Tensor:
    """Mean over tasks of ‖∇L_support(θ)‖: the quantity of the paper's Fig. 1 (training data).

    Unchecked: it is a training monitor, called with the tasks and θ the loop already checked.
    """

    def norm(xs, ys):
        g = grad(loss)(params, xs, ys)
        return torch.sqrt(sum((v**2).sum() for v in g.values()))

    return vmap(norm)(tasks.x_support, tasks.y_support).mean()


def check_fit(loss: TaskLoss, params: Params, tasks: Tasks) -> Tasks:
    """The first task's support and query sets go through the loss to a scalar, or one line says why.

    A shape the model or criterion cannot take (a wrong feature width, targets without their
    output axis) fails here, once, instead of inside ``vmap`` or, worse, by broadcasting.
    """
    like = next(iter(params.values()))
    for side, x, y in (("support", tasks.x_support, tasks.y_support), ("query", tasks.x_query, tasks.y_query)):
        if x.is_floating_point() and x.dtype != like.dtype:
            raise _checks.refuse(f"tasks.x_{side}.dtype", x.dtype, f"the parameters are {like.dtype}; "
                                 f"convert with tasks.to(dtype={like.dtype})")
        try:
            with torch.no_grad():
                value = loss(params, x[0].to(like.device), y[0].to(like.device))
        except (RuntimeError, ValueError, IndexError, TypeError) as error:
            reason = " ".join(str(error).split())[:200]
            raise ValueError(f"tasks.x_{side}/y_{side} shaped {tuple(x.shape)}/{tuple(y.shape)} do not fit the "
                             f"model and loss: {reason}") from None
        if not isinstance(value, Tensor) or value.ndim != 0:
            shown = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"loss returned {shown} for one task's {side} set; it must return a scalar tensor")
    return tasks


def meta_gradient(
    loss: TaskLoss, params: Params, tasks: Tasks, alpha, *, steps: int = 1, variant: str = "second"
) -> tuple[Tensor, Params]:
    """Mean MAML meta-loss and meta-gradient over a meta-batch of tasks (the checked entry point)."""
    _checks.function("loss", loss)
    _checks.params(params)
    _checks.choice("variant", variant, VARIANTS)
    steps = _checks.integer("steps", steps, minimum=1)
    alpha = _checks.rate("alpha", alpha, allow_zero=True)
    check_fit(loss, params, check_tasks(tasks))
    like = next(iter(params.values()))
    alpha_t = torch.tensor(alpha, dtype=like.dtype, device=like.device)
    return batched_meta_gradient(loss, variant, steps)(params, tasks, alpha_t)
