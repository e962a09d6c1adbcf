"""Meta-optimizers over parameter pytrees, as pure functions so that configs ``vmap``.

State is a dict of tensors (Adam's moments and step count); the learning rate is a tensor,
so a grid of β is one batched program. Adam follows ``torch.optim.Adam`` (Kingma & Ba).
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor

from . import _checks
from .models import Params

OPTIMIZERS = ("sgd", "adam")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def init_state(name: str, params: Params) -> Dict[str, Tensor]:
    """Fresh optimizer state: nothing for SGD; zero moments and step 0 for Adam."""
    _checks.choice("optimizer", name, OPTIMIZERS)
    _checks.params(params)
    if name == "sgd":
        return {}
    state = {f"m.{k}": torch.zeros_like(p) for k, p in params.items()}
    state.update({f"v.{k}": torch.zeros_like(p) for k, p in params.items()})
    state["step"] = torch.zeros((), dtype=next(iter(params.values())).dtype, device=next(iter(params.values())).device)
    return state


def sgd(params: Params, grads: Params, state: Dict[str, Tensor], lr: Tensor):
    """θ ← θ - β ∇: the steepest descent the paper's Section 3 analyses."""
    return {k: p - lr * grads[k] for k, p in params.items()}, state


def adam(params: Params, grads: Params, state: Dict[str, Tensor], lr: Tensor):
    """Adam with bias correction, written to vmap over a leading config axis."""
    b1, b2 = ADAM_BETAS
    step = state["step"] + 1
    bc1 = 1 - b1**step
    bc2 = 1 - b2**step
    new_params, new_state = {}, {"step": step}
    for k, p in params.items():
        m = b1 * state[f"m.{k}"] + (1 - b1) * grads[k]
        v = b2 * state[f"v.{k}"] + (1 - b2) * grads[k] * grads[k]
        new_params[k] = p - (lr / bc1) * m / (torch.sqrt(v) / torch.sqrt(bc2) + ADAM_EPS)
        new_state[f"m.{k}"], new_state[f"v.{k}"] = m, v
    return new_params, new_state


def update_rule(name: str):
    """The pure update function for an optimizer name."""
    return {"sgd": sgd, "adam": adam}[_checks.choice("optimizer", name, OPTIMIZERS)]
