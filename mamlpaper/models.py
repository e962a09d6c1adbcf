"""The paper's networks as plain ``nn.Module``s, initialised from a ``torch.Generator``.

They are used functionally (``torch.func.functional_call``), so a module only holds the
architecture and the initial parameters θ0 that every configuration of a sweep starts from.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import _checks

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def init_parameters(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """PyTorch's default Linear init (U(±1/√fan_in)), but drawn from ``generator`` for reproducibility."""
    _checks.module(model)
    _checks.generator(generator)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)
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
