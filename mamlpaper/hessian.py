"""Curvature of a loss over a parameter pytree: the eigenvalues the bounds are written in.

Parameters are handled as one flat vector, so a Hessian is a plain (d × d) matrix whose
eigenvalues λ_i enter α_c = 1/λ_max and β_c(α). Small models get the dense matrix; large
ones never build it: Hessian-vector products (HVPs) feed Lanczos (``scipy.sparse.linalg.eigsh``)
through a ``LinearOperator``, and Frobenius norms come from Hutchinson's estimator.

The paper's Appendix B writes the Hessian of the simplified MAML objective as
H̃ = H − α(Tg + H²), with T the third-derivative tensor and (Tg)_ij = Σ_k T_ijk g_k for the
gradient g held fixed. Tg is the Hessian of ψ(θ) = ⟨∇L(θ), g⟩, so every tool for H works on
Tg unchanged; :mod:`mamlpaper.diagnostics` builds Tg and H² of a meta-batch that way (Fig. 5).

β_c(α) is a minimum over *every* eigenvalue, not only the top k that Lanczos resolves, so
:func:`spectrum` also returns the smallest eigenvalue: with the k-th largest it brackets all the
others, which is what :func:`mamlpaper.bounds.beta_critical_interval` needs for a guarantee.

``loss`` is always a callable params-pytree -> scalar tensor, e.g. one task's loss closed
over its data, or the MAML meta-loss (mean over tasks of L_query(adapt(θ))) for the
meta-Hessian.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Union

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, aslinearoperator, eigsh
from torch import Tensor
from torch.func import grad, jvp, vjp

from . import _checks
from .models import Params

METHODS = ("forward", "reverse")
WHICH = ("LA", "LM", "SA")

Loss = Callable[[Params], Tensor]
Operand = Union[LinearOperator, Tensor, np.ndarray, Callable[[np.ndarray], np.ndarray]]


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


def _check_params(params: Params) -> Tensor:
    """The flat, detached θ; one dtype and device, so every HVP runs in the parameters' precision."""
    return flatten(_checks.params(params)).detach()


def _check_loss(loss) -> Loss:
    return _checks.function("loss", loss)


def _check_method(method: str) -> str:
    return _checks.choice("method", method, METHODS)


def _hvp_closure(loss: Loss, params: Params, theta: Tensor, method: str) -> Callable[[Tensor], Tensor]:
    gradient = grad(lambda flat: loss(unflatten(flat, params)))
    if method == "reverse":
        _, pullback = vjp(gradient, theta)
        return lambda v: pullback(v)[0]
    return lambda v: jvp(gradient, (theta,), (v,))[1]


def dense_hessian(loss: Callable[[Params], Tensor], params: Params) -> Tensor:
    """The full Hessian of ``loss`` at ``params``: exact, and affordable for small models.

    On a CPU it is built row by row from one linearisation of ∇L (reverse-over-reverse), several
    times faster than ``torch.func.hessian``, whose batch of d tangents falls out of cache; on an
    accelerator the batch wins (0.01 s against 1.6 s for d = 1761 on an H100), so it is used there.
    """
    _check_loss(loss)
    theta = _check_params(params)
    if theta.device.type != "cpu":
        return torch.func.hessian(lambda flat: loss(unflatten(flat, params)))(theta)
    product = _hvp_closure(loss, params, theta, "reverse")
    basis = torch.eye(theta.numel(), dtype=theta.dtype)
    return torch.stack([product(e) for e in basis])


def eigenvalues(matrix: Tensor) -> np.ndarray:
    """Ascending eigenvalues of a symmetric matrix (symmetrised first against round-off)."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix has shape {tuple(matrix.shape)}; expected a square 2-D matrix")
    sym = 0.5 * (matrix + matrix.T)
    return torch.linalg.eigvalsh(sym.to(torch.float64)).cpu().numpy()


def linear_operator(product: Callable[[Tensor], Tensor], theta: Tensor) -> LinearOperator:
    """A symmetric float64 NumPy operator around a torch product in θ's dtype and device."""

    def matvec(x: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
        return product(v.to(dtype=theta.dtype, device=theta.device)).to(device="cpu", dtype=torch.float64).numpy()

    d = theta.numel()
    return LinearOperator((d, d), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def hessian_operator(loss: Loss, params: Params, method: str = "reverse") -> LinearOperator:
    """H as a SciPy ``LinearOperator`` on float64 vectors, for Lanczos on models too large to densify."""
    _check_loss(loss)
    theta = _check_params(params)
    _check_method(method)
    return linear_operator(_hvp_closure(loss, params, theta, method), theta)


def _as_operator(operator: Operand, d: int | None) -> LinearOperator:
    """A dense matrix, a ``LinearOperator`` or a NumPy matvec (with ``d``) as one square operator."""
    if isinstance(operator, (Tensor, np.ndarray)):
        operator = aslinearoperator(_as_matrix(operator))
    elif isinstance(operator, LinearOperator):
        if operator.shape[0] != operator.shape[1]:
            raise ValueError(f"operator has shape {operator.shape}; expected a square operator")
    elif callable(operator):
        if d is None:
            raise _checks.refuse("d", d, "a matvec callable needs its dimension d >= 1")
        d = _checks.integer("d", d, minimum=1)
        operator = LinearOperator((d, d), matvec=operator, dtype=np.float64)
    else:
        raise _checks.refuse("operator", operator, "operator must be a LinearOperator, a square matrix or a "
                             "matvec callable", shown=type(operator).__name__)
    if d is not None and operator.shape[0] != _checks.integer("d", d, minimum=1):
        raise _checks.refuse("d", d, f"it must match the operator's dimension {operator.shape[0]}")
    return operator


def _as_matrix(matrix: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(matrix, Tensor):
        array = matrix.detach().cpu().to(torch.float64).numpy()
    else:
        array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"matrix has shape {array.shape}; expected a square 2-D matrix")
    return array


def _check_eigsh_request(d: int, k, which: str, tol, seed) -> tuple[int, float, int]:
    k = _checks.integer("k", k, minimum=1, maximum=d - 1)
    _checks.choice("which", which, WHICH)
    return k, _checks.real("tol", tol, above=0.0), _checks.integer("seed", seed, minimum=0)


def _lanczos(operator: LinearOperator, k: int, which: str, tol: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    d = operator.shape[0]
    start = np.random.default_rng(seed).standard_normal(d)
    values, vectors = eigsh(operator, k=k, which=which, tol=tol, v0=start)
    key = {"LA": -values, "LM": -np.abs(values), "SA": values}[which]
    order = np.argsort(key, kind="stable")
    values, vectors = values[order], vectors[:, order]
    residuals = np.linalg.norm(operator.matmat(vectors) - vectors * values, axis=0)
    return values, residuals


def top_eigenvalues_of(
    operator: Operand, d: int | None = None, k: int = 5, which: str = "LA", tol: float = 1e-10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """k extreme eigenvalues of a symmetric operator by Lanczos, with residuals ‖Av − λv‖ to trust them.

    ``operator`` is a ``LinearOperator`` (e.g. :func:`tg_operator`), a dense symmetric matrix, or a
    callable float64 (d,) array -> (d,) array with ``d`` given. ``which``: LA largest algebraic
    (descending), LM largest magnitude (descending |λ|), SA smallest algebraic (ascending). The
    Lanczos start vector is drawn from ``seed``, so repeated calls give identical numbers; the
    residuals are computed with fresh products of unit eigenvectors.
    """
    op = _as_operator(operator, d)
    k, tol, seed = _check_eigsh_request(op.shape[0], k, which, tol, seed)
    return _lanczos(op, k, which, tol, seed)


def top_eigenvalues(
    loss: Loss,
    params: Params,
    k: int = 5,
    which: str = "LA",
    tol: float = 1e-10,
    seed: int = 0,
    method: str = "reverse",
) -> tuple[np.ndarray, np.ndarray]:
    """k extreme Hessian eigenvalues (λ_max first for LA) and their residuals, without building H."""
    _check_loss(loss)
    theta = _check_params(params)
    _check_method(method)
    k, tol, seed = _check_eigsh_request(theta.numel(), k, which, tol, seed)
    return _lanczos(linear_operator(_hvp_closure(loss, params, theta, method), theta), k, which, tol, seed)


class NotConverged(RuntimeError):
    """Lanczos ran out of products short of its tolerance: its value is only a lower bound on λ_max."""


class Eigenpair(NamedTuple):
    """The largest eigenvalue, its unit eigenvector, ‖Av − λv‖, the products it took, and whether tol was met."""

    value: float
    vector: np.ndarray
    residual: float
    products: int
    converged: bool
    """False when ``max_products`` ran out first: then the value may lie well below λ_max."""


def top_eigenpair(operator: Operand, d: int | None = None, *, tol: float = 1e-8, start: np.ndarray | None = None,
                  max_products: int = 200, seed: int = 0) -> Eigenpair:
    """λ_max by plain Lanczos (full reorthogonalisation), stopped at ‖Av − λv‖ <= tol·|λ|.

    Where ARPACK (:func:`top_eigenvalues_of`) spends at least 20 products on any call, this stops
    as soon as the Ritz pair is good enough, and takes a ``start`` vector: the previous eigenvector
    of a family of operators (the meta-Hessian at the next α) converges in a few products, which is
    what makes estimator (b) of :mod:`mamlpaper.advisor` affordable on a convolutional network.
    The residual is the Lanczos bound |b_m s_m|, the value a lower bound on λ_max. ``converged``
    is True when the residual met tol or the Krylov space closed (invariant, or all of it), False
    when ``max_products`` ran out first: a clustered top spectrum can need far more products.
    """
    op = _as_operator(operator, d)
    n = op.shape[0]
    tol = _checks.real("tol", tol, above=0.0)
    max_products = _checks.integer("max_products", max_products, minimum=1)
    seed = _checks.integer("seed", seed, minimum=0)
    if start is None:
        v = np.random.default_rng(seed).standard_normal(n)
    else:
        v = np.array(start, dtype=np.float64).reshape(-1)
        if v.shape != (n,) or not np.all(np.isfinite(v)) or not np.any(v):
            raise _checks.refuse("start", start, f"start must be a finite, nonzero vector of length {n}",
                                 shown=f"shape {v.shape}")
    basis, diagonal, off = [v / np.linalg.norm(v)], [], []
    for _ in range(min(max_products, n)):
        w = op.matvec(basis[-1])
        diagonal.append(float(basis[-1] @ w))
        stacked = np.stack(basis, axis=1)
        for _ in range(2):  # twice: one Gram-Schmidt pass leaves round-off along the old vectors
            w = w - stacked @ (stacked.T @ w)
        values, vectors = np.linalg.eigh(np.diag(diagonal) + np.diag(off, 1) + np.diag(off, -1))
        b = float(np.linalg.norm(w))
        residual = abs(b * vectors[-1, -1])
        converged = bool(residual <= tol * abs(values[-1]) or len(diagonal) == n
                         or b <= np.finfo(float).eps * max(abs(values).max(), 1.0))
        if converged:
            break
        off.append(b)
        basis.append(w / b)
    ritz = np.stack(basis[:len(diagonal)], axis=1) @ vectors[:, -1]
    return Eigenpair(float(values[-1]), ritz / np.linalg.norm(ritz), float(residual), len(diagonal), converged)


class Spectrum(NamedTuple):
    """The top k eigenvalues and the interval [lower, top[-1]] that holds all the others."""

    top: np.ndarray
    """The k largest eigenvalues, descending."""
    lower: float
    """The smallest eigenvalue."""
    residual: float
    """The largest ‖Hv − λv‖ over the k + 1 Ritz pairs: how far each value may be off."""


def spectrum(loss: Loss, params: Params, k: int = 5, tol: float = 1e-10, seed: int = 0,
             method: str = "reverse") -> Spectrum:
    """The top k eigenvalues of the Hessian and its smallest one: two Lanczos runs on one operator."""
    _check_loss(loss)
    theta = _check_params(params)
    _check_method(method)
    k, tol, seed = _check_eigsh_request(theta.numel(), k, "LA", tol, seed)
    operator = linear_operator(_hvp_closure(loss, params, theta, method), theta)
    top, top_residuals = _lanczos(operator, k, "LA", tol, seed)
    lowest, lowest_residual = _lanczos(operator, 1, "SA", tol, seed)
    return Spectrum(top, float(lowest[0]), float(max(top_residuals.max(), lowest_residual[0])))


def frobenius_norm(
    operator: Operand, d: int | None = None, exact: bool | None = None, samples: int = 100, seed: int = 0
) -> tuple[float, float]:
    """‖A‖_F and its standard error: exact (0.0 error) or Hutchinson's ‖A‖_F² = E‖Az‖², z Rademacher.

    Exact densifies a matvec column by column (d products); Hutchinson costs ``samples``
    products at any d. ``exact=None`` picks exact for a dense matrix or when d <= samples,
    where it is no dearer. The estimate's error is the delta-method standard error of
    √(mean ‖Az‖²); ``seed`` fixes the probe vectors.
    """
    matrix = _as_matrix(operator) if isinstance(operator, (Tensor, np.ndarray)) else None
    op = _as_operator(operator if matrix is None else matrix, d)
    if exact is not None:
        exact = _checks.flag("exact", exact)
    samples = _checks.integer("samples", samples, minimum=2)
    seed = _checks.integer("seed", seed, minimum=0)
    n = op.shape[0]
    if exact or (exact is None and (matrix is not None or n <= samples)):
        dense = op.matmat(np.eye(n)) if matrix is None else matrix
        return float(np.linalg.norm(dense, "fro")), 0.0
    probes = np.random.default_rng(seed).integers(0, 2, size=(n, samples)).astype(np.float64) * 2.0 - 1.0
    squares = np.square(op.matmat(probes)).sum(axis=0)
    norm = float(np.sqrt(squares.mean()))
    if norm == 0.0:
        return 0.0, 0.0
    return norm, float(squares.std(ddof=1)) / float(np.sqrt(samples)) / (2.0 * norm)
