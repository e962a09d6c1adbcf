"""What a few-shot sweep reports about each trained configuration: accuracy after adaptation.

A classifier that stays finite without learning is the few-shot analogue of the sinusoid's
constant predictor: after the inner steps it predicts one class for every query of a task (a
large β drove the head's logits apart for good). The sweep counts it as collapsed, not stable.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.func import functional_call

from .. import maml
from ..metaproblem import Readout
from ..models import Params
from ..tasks import Tasks
from .conv4 import accuracy


def adapted_accuracy(problem, params: Params, tasks: Tasks, alpha: Tensor, steps: int) -> dict[str, Tensor]:
    """Mean over the meta-batch of the query accuracy after ``steps`` inner steps with rate α, and of
    the number of distinct classes the adapted model predicts for a task's queries."""
    loss = maml.functional_loss(problem.model, problem.criterion)
    accuracies, distinct = [], []
    for xs, ys, xq, yq in zip(*tasks):
        adapted = maml.adapt(loss, params, xs, ys, alpha, steps)
        logits = functional_call(problem.model, adapted, (xq,)).detach()
        accuracies.append(accuracy(logits, yq))
        predicted = torch.zeros(logits.shape[1], dtype=logits.dtype, device=logits.device)
        distinct.append(predicted.scatter(0, logits.argmax(dim=1), 1.0).sum())
    return {"query_accuracy": torch.stack(accuracies).mean(), "predicted_classes": torch.stack(distinct).mean()}


ADAPTED_ACCURACY = Readout(("query_accuracy", "predicted_classes"), adapted_accuracy,
                           lambda columns: columns["predicted_classes"] <= 1.0)
"""Collapsed: every task's queries all predicted as one class after adaptation."""
