"""Curvature of a loss over a parameter pytree: the eigenvalues the bounds are written in.

Parameters are handled as one flat vector, so a Hessian is a plain (d × d) matrix whose
eigenvalues λ_i enter α_c = 1/λ_max and β_c(α).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .maml import Params


def flatten(params: Params) -> Tensor:
    """One vector in the pytree's key order."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(vector: Tensor, like: Params) -> Params:
    """The inverse of :func:`flatten`, shaped like ``like``."""
    sizes = [p.numel() for p in like.values()]
    if vector.ndim != 1 or vector.numel() != sum(sizes):
        raise ValueError(f"vector has shape {tuple(vector.shape)}; expected ({sum(sizes)},) to match the parameters")
    chunks = torch.split(vector, sizes)
    return {k: c.reshape(p.shape) for (k, p), c in zip(like.items(), chunks)}


def dense_hessian(loss: Callable[[Params], Tensor], params: Params) -> Tensor:
    """The full Hessian of ``loss`` at ``params``: exact, and affordable for small models."""
    if not params:
        raise ValueError("params={} is empty; pass the model's parameters")
    return torch.func.hessian(lambda v: loss(unflatten(v, params)))(flatten(params).detach())


def eigenvalues(matrix: Tensor) -> np.ndarray:
    """Ascending eigenvalues of a symmetric matrix (symmetrised first against round-off)."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix has shape {tuple(matrix.shape)}; expected a square 2-D matrix")
    sym = 0.5 * (matrix + matrix.T)
    return torch.linalg.eigvalsh(sym.to(torch.float64)).cpu().numpy()
