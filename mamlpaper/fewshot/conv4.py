"""Finn et al.'s Conv4 for few-shot classification, with the cross-entropy and accuracy it is read by.

Four blocks of [3×3 conv (padding 1), BatchNorm, ReLU, 2×2 max-pool] and a linear head, as the
paper describes it (64 filters for Omniglot, 32 for MiniImagenet; Finn's own Omniglot code uses
stride-2 convolutions instead of pooling). BatchNorm always normalises with the statistics of
the batch it is given and keeps no running buffers (``track_running_stats=False``), as
cbfinn/maml and the torch.func MAML example do: the model stays a pure function of
(parameters, images), so under ``vmap`` over tasks each task is normalised by its own
statistics, at meta-training and meta-test alike. It is :class:`PureBatchNorm2d`, not
``nn.BatchNorm2d``: see there why.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch._C._functorch import TransformType
from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

from .. import _checks
from ..models import init_parameters

def _under_vmap() -> bool:
    """Whether any ``vmap`` level is active around this call (torch.func's interpreter stack)."""
    return any(i.key() == TransformType.Vmap for i in retrieve_all_functorch_interpreters())


class PureBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d(track_running_stats=False)`` that stays right under ``vmap``.

    In torch 2.13 the ``vmap`` batching rule of the native batch-norm backward is wrong
    (functorch issue #534): ``grad(vmap(grad(...)))``, i.e. exact MAML over a batch of tasks,
    returns wrong second derivatives (e.g. a nonzero gradient for a bias in front of the
    norm, which the norm cancels), while the same without ``vmap`` is right. So under ``vmap``
    the mean and variance are written out with plain tensor operations, which compose with
    every transform; elsewhere (the CPU's per-task loop) torch's fused kernel runs, 1.5× faster.
    Same parameters, same numbers.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__(num_features, eps=eps, affine=True, track_running_stats=False)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not _under_vmap():
            return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)
        centred = x - x.mean(dim=(0, 2, 3), keepdim=True)
        variance = (centred * centred).mean(dim=(0, 2, 3), keepdim=True)  # biased, as batch_norm normalises
        scale = self.weight[:, None, None] * torch.rsqrt(variance + self.eps)
        return centred * scale + self.bias[:, None, None]


def conv4(generator: torch.Generator, ways: int, *, channels: int = 1, image_size: int = 28,
          filters: int = 64) -> nn.Module:
    """Conv4 on (points, channels, image_size, image_size) images, ``ways`` logits per point.

    Omniglot: ``channels=1, image_size=28, filters=64``; MiniImagenet: ``channels=3,
    image_size=84, filters=32``. The head's width follows the size left after four poolings
    (28 → 1, 84 → 5).
    """
    _checks.generator(generator)
    ways = _checks.integer("ways", ways, minimum=1)
    channels = _checks.integer("channels", channels, minimum=1)
    image_size = _checks.integer("image_size", image_size, minimum=16)
    filters = _checks.integer("filters", filters, minimum=1)
    blocks, size = [], image_size
    for i in range(4):
        blocks.append((f"block{i + 1}", nn.Sequential(OrderedDict(
            conv=nn.Conv2d(channels if i == 0 else filters, filters, kernel_size=3, padding=1),
            norm=PureBatchNorm2d(filters),
            relu=nn.ReLU(),
            pool=nn.MaxPool2d(2)))))
        size //= 2
    layers = OrderedDict(blocks, flatten=nn.Flatten(), head=nn.Linear(filters * size * size, ways))
    return init_parameters(nn.Sequential(layers), generator)


def _check_logits_labels(logits: Tensor, labels: Tensor) -> None:
    """Refuse shapes that would broadcast or index to a plausible, wrong number."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits shape {tuple(logits.shape)} and labels shape {tuple(labels.shape)} do not fit; "
                         "logits must be (points, classes) and labels (points,)")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels dtype {labels.dtype} is not allowed; class labels must be an integer tensor")


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy as logsumexp minus the true logit: differentiable twice and forward-over-reverse.

    Written out, like ``maml.mse``, so that Hessian-vector products do not rest on a fused
    loss's derivative formulas (``F.mse_loss``'s break under ``jvp(grad(...))`` in torch 2.13;
    ``F.cross_entropy``'s work there, and equal this one).
    """
    _check_logits_labels(logits, labels)
    true = logits.gather(1, labels.long().unsqueeze(1)).squeeze(1)
    return (torch.logsumexp(logits, dim=1) - true).mean()


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of points whose largest logit is the true class: a readout, not differentiable."""
    _check_logits_labels(logits, labels)
    return (logits.argmax(dim=1) == labels).to(logits.dtype).mean()
