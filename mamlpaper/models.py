"""The paper's networks as plain ``nn.Module``s, initialised from a ``torch.Generator``.

They are used functionally (``torch.func.functional_call``), so a module only holds the
architecture and the initial parameters θ0 that every configuration of a sweep starts from.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor, nn

from . import _checks

Params = Dict[str, Tensor]
"""A model's parameters as a pytree (name -> tensor): what every functional part of the package
takes, trains and differentiates."""

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


_FAN_IN_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def init_parameters(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """One seeded rule for every layer type, drawn from ``generator`` in module order.

    Linear and convolutions: weight and bias ~ U(±1/√fan_in), PyTorch's default bounds;
    BatchNorm: weight 1, bias 0. A layer of any other type that holds parameters is refused
    rather than left at an unseeded default.
    """
    _checks.module(model)
    _checks.generator(generator)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, _FAN_IN_LAYERS):
                bound = 1.0 / math.sqrt(module.weight[0].numel())  # fan_in: inputs × kernel size
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, _NORM_LAYERS):
                if module.affine:
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
            elif next(module.parameters(recurse=False), None) is not None:
                raise _checks.refuse("model", model, f"its layer {name!r} ({type(module).__name__}) has parameters "
                                     "and no seeded init rule; known: Linear, Conv1d-3d, BatchNorm1d-3d",
                                     shown=type(model).__name__)
    return model


def linear_model(generator: torch.Generator) -> nn.Module:
    """y = w·x + b: the model of the paper's linear regression (Section 5.1)."""
    _checks.generator(generator)
    return init_parameters(nn.Linear(1, 1), generator)


def mlp(generator: torch.Generator, widths: tuple[int, ...] = (1, 40, 40, 1), activation: str = "relu") -> nn.Module:
    """The sinusoid MLP 1-40-40-1 (Section 5.2); tanh is allowed where smoothness matters (finite differences)."""
    _checks.generator(generator)
    _checks.choice("activation", activation, ACTIVATIONS)
    if isinstance(widths, (str, bytes)) or not isinstance(widths, (tuple, list)) or len(widths) < 2:
        raise _checks.refuse("widths", widths, "widths must be a tuple of at least two layer widths")
    widths = tuple(_checks.integer("widths entry", w, minimum=1) for w in widths)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return init_parameters(nn.Sequential(*layers), generator)
