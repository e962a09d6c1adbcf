"""What a sweep trains, in the engine's vocabulary: a :class:`MetaProblem` (model, criterion, task
stream) and its :class:`Readout` (the columns it adds to a result table and which runs collapsed).

Its own module so that the problems, their readouts and the cache can name a problem without
importing the engine that trains it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from . import _checks
from .maml import mse
from .models import Params
from .tasks import Tasks

COLLAPSE_TOLERANCE = 1e-3
"""A trained model whose predictions vary over the inputs by less than this fraction of the
targets' spread has collapsed to a constant (for a ReLU MLP: every unit of a layer died). It
neither diverged nor learned, so it says nothing about the stability the paper bounds."""


class Readout(NamedTuple):
    """What a problem reports about each trained configuration besides its loss, and which of them
    collapsed: stayed finite without learning, which says nothing about the stability the paper
    bounds (a regression net that became a constant, a classifier that predicts one class)."""

    columns: tuple[str, ...]
    compute: Callable[..., dict[str, Tensor]]
    """(problem, θ of one configuration, the last meta-batch, α, inner steps) -> {column: scalar}."""
    collapsed: Callable[[dict[str, np.ndarray]], np.ndarray]
    """{column: values over configurations} -> bool per configuration (NaN readouts: False)."""


def output_spread(problem: "MetaProblem", params: Params, tasks: Tasks, alpha: Tensor, steps: int) -> dict:
    """Std of the model's predictions over the meta-batch's query inputs, relative to the targets' std."""
    x = tasks.x_query.reshape(-1, tasks.x_query.shape[-1])
    y = tasks.y_query.reshape(-1, tasks.y_query.shape[-1])
    predictions = functional_call(problem.model, params, (x,))
    return {"output_spread": (predictions.std(dim=0) / y.std(dim=0)).amax()}


OUTPUT_SPREAD = Readout(("output_spread",), output_spread,
                        lambda columns: columns["output_spread"] < COLLAPSE_TOLERANCE)
"""The regression readout: collapsed when the predictions vary by less than ``COLLAPSE_TOLERANCE``."""


@dataclass(frozen=True)
class MetaProblem:
    """What a sweep trains: the model (architecture and θ0), the criterion, and the task stream.

    ``spec`` names everything that defines the problem (family, its ranges, seeds), for the
    cache key and for the reader of a result table. ``data_identity`` names the data behind
    ``sample_tasks`` beyond what its first meta-batch shows (e.g. a dataset's checksum);
    ``cache_token`` stands for a criterion, readout or layer class with no importable name (a
    lambda, a closure, a notebook cell); it enters the cache key as given. ``readout`` adds the
    problem's own columns to a sweep's table and says which runs collapsed.
    """

    name: str
    model: nn.Module
    sample_tasks: Callable[[torch.Generator], Tasks]
    criterion: Callable[[Tensor, Tensor], Tensor] = mse
    spec: dict = field(default_factory=dict)
    data_identity: str = ""
    cache_token: str | None = None
    readout: Readout = OUTPUT_SPREAD

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise _checks.refuse("name", self.name, "a problem's name must be letters, digits, '_', '.', '-' "
                                 "(it names cache folders)")
        _checks.module(self.model)
        _checks.function("sample_tasks", self.sample_tasks)
        _checks.function("criterion", self.criterion)
        if not isinstance(self.spec, dict):
            raise _checks.refuse("spec", self.spec, "spec must be a dict")
        if not isinstance(self.data_identity, str):
            raise _checks.refuse("data_identity", self.data_identity, "data_identity must be a string")
        if self.cache_token is not None and (not isinstance(self.cache_token, str) or not self.cache_token):
            raise _checks.refuse("cache_token", self.cache_token, "cache_token must be None or a non-empty string")
        if not isinstance(self.readout, Readout):
            raise _checks.refuse("readout", self.readout, "readout must be a mamlpaper.metaproblem.Readout",
                                 shown=type(self.readout).__name__)
