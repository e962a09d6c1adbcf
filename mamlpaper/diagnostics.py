"""Diagnostics of a trained MAML model: the curvature operators of the multi-task meta-loss.

Near a minimum, one-step MAML over tasks τ is gradient descent on mean_τ [L_τ − (α/2)‖g_τ‖²]
(Eq. 20-22), whose Hessian is H̃ = mean_τ [H_τ − α(T_τ g_τ + H_τ²)] (Appendix B, per task). The
paper drops the Tg term (Appendix C) and sets β_c by the eigenvalues of H; the operators here
let a reader check both choices on a trained network without forming any d × d matrix.

Every quantity is taken per task on the task's *support* data (the inner loop's training loss)
and averaged over the tasks of one meta-batch. Two of the sums are Hessians of one scalar, so
:mod:`mamlpaper.hessian` handles them directly: mean_τ H_τ is the Hessian of the mean loss, and
mean_τ T_τ g_τ is the Hessian of ψ(θ) = mean_τ ⟨∇L_τ(θ), g_τ⟩ with every g_τ held fixed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor
from torch.func import grad, vjp, vmap

from . import _checks, hessian
from .maml import TaskLoss
from .models import Params
from .tasks import Tasks, check_tasks

OPERATORS = ("H", "Tg", "H2", "Tg+H2")


def _float64(params: Params, tasks: Tasks) -> tuple[Params, Tensor, Tensor]:
    """θ and the support data in float64: Lanczos needs products symmetric far below float32 round-off."""
    _checks.params(params)
    check_tasks(tasks)
    params = {k: p.detach().to(torch.float64) for k, p in params.items()}
    tasks = tasks.to(device=next(iter(params.values())).device, dtype=torch.float64)  # class labels stay integers
    return params, tasks.x_support, tasks.y_support


def mean_support_loss(loss: TaskLoss, tasks: Tasks) -> Callable[[Params], Tensor]:
    """θ ↦ mean_τ L_τ(θ; support), in θ's dtype: the training loss whose Hessian the bounds use."""
    _checks.function("loss", loss)
    check_tasks(tasks)
    per_task = vmap(loss, in_dims=(None, 0, 0))

    def mean_loss(params: Params) -> Tensor:
        like = next(iter(params.values()))
        batch = tasks.to(device=like.device, dtype=like.dtype)  # class labels stay integers
        return per_task(params, batch.x_support, batch.y_support).mean()

    return mean_loss


def task_curvature_operators(loss: TaskLoss, params: Params, tasks: Tasks) -> dict[str, LinearOperator]:
    """Symmetric float64 operators (keys :data:`OPERATORS`) of the multi-task sums at ``params``.

    H = mean_τ H_τ, Tg = mean_τ T_τ g_τ, H2 = mean_τ H_τ², Tg+H2 their sum: the α-coefficient of
    the meta-loss Hessian. Every product replays graphs linearised once at ``params``: H and Tg
    are "reverse" Hessian-vector products of a scalar; H² is (1/n) Jᵀ(J v) with J the Jacobian
    of the stacked per-task gradients (blocks H_τ), Jᵀ its pullback and J the pullback's own
    pullback (the pullback is linear).
    """
    _checks.function("loss", loss)
    params, xs, ys = _float64(params, tasks)
    n = xs.shape[0]
    task_gradients = vmap(grad(loss), in_dims=(None, 0, 0))

    def stacked(flat: Tensor) -> Tensor:
        g = task_gradients(hessian.unflatten(flat, params), xs, ys)
        return torch.cat([t.reshape(n, -1) for t in g.values()], 1)

    theta = hessian.flatten(params)
    fixed = stacked(theta).detach()

    def pairing(p: Params) -> Tensor:
        return (stacked(hessian.flatten(p)) * fixed).sum() / n

    _, pullback = vjp(stacked, theta)
    _, pushforward = vjp(lambda u: pullback(u)[0], fixed)

    def h2(v: np.ndarray) -> np.ndarray:
        (u,) = pushforward(torch.from_numpy(np.asarray(v, dtype=np.float64).reshape(-1)).to(theta.device))
        return (pullback(u)[0] / n).cpu().numpy()

    d = theta.numel()
    operators = {
        "H": hessian.hessian_operator(mean_support_loss(loss, tasks), params, method="reverse"),
        "Tg": hessian.hessian_operator(pairing, params, method="reverse"),
        "H2": LinearOperator((d, d), matvec=h2, rmatvec=h2, dtype=np.float64),
    }
    operators["Tg+H2"] = operators["Tg"] + operators["H2"]
    return operators


def _every_task(loss: TaskLoss, params: Params, tasks: Tasks) -> tuple[Callable[[Params], Tensor], Params]:
    """Σ_τ L_τ(θ_τ) over one copy θ_τ of the parameters per task, and the copies: its block-diagonal
    Hessian has the union of the tasks' spectra, which Eq. 23-26 bound α and β by.
    """
    _checks.function("loss", loss)
    params, xs, ys = _float64(params, tasks)
    n = xs.shape[0]
    copies = {name: p.expand(n, *p.shape).contiguous() for name, p in params.items()}
    per_task = vmap(loss, in_dims=(0, 0, 0))
    return (lambda p: per_task(p, xs, ys).sum()), copies


def task_spectrum(loss: TaskLoss, params: Params, tasks: Tasks, k: int = 5, tol: float = 1e-8,
                  seed: int = 0) -> hessian.Spectrum:
    """The top k and the smallest eigenvalue of the union of the tasks' spectra: Eq. 26's interval form."""
    every_task, copies = _every_task(loss, params, tasks)
    return hessian.spectrum(every_task, copies, k=k, tol=tol, seed=seed, method="reverse")
