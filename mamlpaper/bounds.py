"""Closed forms for the learning-rate bounds: α_c (Eq. 11, 23) and β_c(α) (Eq. 18-19, 26).

Near a minimum every meta-update is gradient descent on a quadratic whose curvature along
the i-th Hessian eigenvector is c(λ_i, α); the curvature models (:mod:`mamlpaper.variants`)
differ only in c. The forms are the paper's Eq. 9-11 and 18-19 with c varied as its
Sections 3.1-3.2 and Appendix B allow; they are checked against the SymPy derivation in
:mod:`mamlpaper.symbolic`.

A large model's Hessian is known by its top k eigenvalues only, and c(λ, α) peaks inside
the spectrum once α grows, so β_c from the top k alone can exceed the true one. The interval
form (:func:`beta_critical_interval`) adds what Lanczos also gives cheaply, an interval that
holds every other eigenvalue, and returns the β_c of the worst spectrum consistent with it:
a guarantee. α_c needs λ_max only, which the top k hold, so it has no interval form.
"""
from __future__ import annotations

import numpy as np

from . import _checks
from .variants import CURVATURE_MODELS

ZERO_ULPS = 4
"""How many ulps of 1 the factor 1 − αλ may be off 0 and still count as 0 (α at α_c = 1/λ exactly).

α = 1.0/λ in floating point gives αλ within 2 ulps of 1, so 1 − αλ comes out 0 or ±1e-16 by
rounding alone and would put α_c itself on either side of the bound; 4 ulps (9e-16) cover that
with a margin and touch only α within 1e-15 (relative) of 1/λ.
"""


def _check_model(model, steps):
    _checks.choice("model", model, CURVATURE_MODELS)
    _checks.integer("steps", steps, minimum=1)
    if model == "penalty" and steps != 1:
        raise _checks.refuse("steps", steps, "model='penalty' is one-step; use steps=1")


def _eigenvalues(value, name="eigenvalues"):
    eigenvalues = _checks.real_array(name, value)
    if not np.any(eigenvalues > 0):
        raise _checks.refuse(name, value, "the bounds are about a minimum, which needs a positive "
                             f"eigenvalue; the largest is {float(eigenvalues.max())!r}")
    return eigenvalues


def _rates(value, name, *, allow_zero):
    rates = _checks.real_array(name, value)
    bad = rates < 0 if allow_zero else rates <= 0
    if np.any(bad):
        allowed = ">= 0 (0 is plain gradient descent)" if allow_zero else "> 0"
        raise _checks.refuse(name, value, f"every entry must be {allowed}; found {float(rates[bad].flat[0])!r}")
    return rates


def _power(model, steps):
    """m in c = λ·f^m: odd where c changes sign at f = 0 (an α_c), even where it only touches 0."""
    return 1 if model == "penalty" else steps if model == "simplified" else 2 * steps


def _factor(lam, a, model):
    """f = 1 − αλ (1 − 2αλ for the penalty form), 0 within :data:`ZERO_ULPS` of it."""
    f = 1.0 - (2.0 * a if model == "penalty" else a) * lam
    return np.where(np.abs(f) <= ZERO_ULPS * np.finfo(np.float64).eps, 0.0, f)


def _c(lam, a, model, steps):
    """c(λ, α) = λ·f^m elementwise, λ and α broadcast against each other."""
    return lam * _factor(lam, a, model) ** _power(model, steps)


def _crossed(lam, a, model, steps):
    """α at or beyond α_c along the last axis: f <= 0 at some λ > 0 where c changes sign there.

    At f = 0 itself (α = α_c) meta-descent does not contract along that λ for any β, so it counts
    with the far side; under an even power c only touches 0 and imposes no bound.
    """
    sign_change = _power(model, steps) % 2 == 1
    return sign_change & np.any((lam > 0) & (_factor(lam, a, model) <= 0), axis=-1)


def _curvature(eigenvalues, alpha, model, steps):
    return _c(eigenvalues, alpha.reshape(alpha.shape + (1,) * eigenvalues.ndim), model, steps)


def _peak(alpha, model, steps):
    """argmax over λ > 0 of c(λ, α): 1/(4α) for λ − 2αλ², 1/((m + 1)α) for λ(1 − αλ)^m; inf at α = 0."""
    with np.errstate(divide="ignore"):
        inverse = 1.0 / alpha
    if model == "penalty":
        return inverse / 4.0
    return inverse / ((steps if model == "simplified" else 2 * steps) + 1.0)


def _interval_beta_critical(alpha, lower, upper, model, steps):
    """min over λ in [lower, upper] ∩ (0, ∞) of β_c: 2 / max c, or 0 at or beyond α_c somewhere.

    c is smooth in λ with critical points only at the peak and at λ = 1/α (a zero of c), so its
    extremes over the interval lie at the ends or at those points clipped into it.
    """
    if upper <= 0.0:
        return np.full(alpha.shape, np.inf)
    lower = max(lower, 0.0)
    with np.errstate(divide="ignore"):
        zero = 1.0 / alpha
    ends = np.broadcast_to(np.array([lower, upper]), alpha.shape + (2,))
    points = np.clip(np.concatenate([ends, _peak(alpha, model, steps)[..., None], zero[..., None]], -1), lower, upper)
    largest = _c(points, alpha[..., None], model, steps).max(axis=-1)
    with np.errstate(divide="ignore"):
        bound = np.where(largest > 0, 2.0 / np.where(largest > 0, largest, 1.0), np.inf)
    return np.where(_crossed(points, alpha[..., None], model, steps), 0.0, bound)


def _beta_critical(alpha, eigenvalues, model, steps):
    positive = eigenvalues[eigenvalues > 0]
    c = _curvature(positive, alpha, model, steps)
    with np.errstate(divide="ignore"):
        bound = np.where(c > 0, 2.0 / np.where(c > 0, c, 1.0), np.inf).min(axis=-1)
    return np.where(_crossed(positive, alpha[..., None], model, steps), 0.0, bound)


def curvature(eigenvalues, alpha, model="simplified", steps=1) -> np.ndarray:
    """Effective curvature c(λ, α) of the meta-update along each Hessian eigenvector.

    simplified (g − αHg, Eq. 4, and first-order MAML): λ(1 − αλ)^k (Eq. 9 for k = 1);
    penalty (L − α gᵀg read literally, Eq. 5-7): λ − 2αλ²; exact k-step MAML: λ(1 − αλ)^{2k}.
    Shape: alpha.shape + eigenvalues.shape.
    """
    _check_model(model, steps)
    eigenvalues = _eigenvalues(eigenvalues)
    alpha = _rates(alpha, "alpha", allow_zero=True)
    return _curvature(eigenvalues, alpha, model, steps)


def alpha_critical(eigenvalues, model="simplified", steps=1) -> float:
    """Supremum of the inner rates that keep θ* a minimum (Eq. 11; Eq. 23 over all tasks' eigenvalues).

    Set by the largest eigenvalue of any task; np.inf where the curvature never turns
    negative (exact MAML, and first-order MAML with an even number of steps).
    """
    _check_model(model, steps)
    largest = float(_eigenvalues(eigenvalues).max())
    if model == "simplified" and steps % 2 == 1:
        return 1.0 / largest
    if model == "penalty":
        return 1.0 / (2.0 * largest)
    return float(np.inf)


def beta_critical(alpha, eigenvalues, model="simplified", steps=1) -> np.ndarray:
    """Meta rate below which the meta-update converges near θ* (Eq. 18-19; Eq. 26 multi-task).

    min over every eigenvalue of every task of 2/c(λ, α); 0 at or beyond α_c, where some curvature
    is negative or crosses 0 (θ* is no strict minimum, no β works; at α_c within :data:`ZERO_ULPS`);
    eigenvalues <= 0 and the zero curvatures of an even power (exact MAML at α = 1/λ) impose no bound.
    """
    _check_model(model, steps)
    eigenvalues = _eigenvalues(eigenvalues)
    alpha = _rates(alpha, "alpha", allow_zero=True)
    return _beta_critical(alpha, eigenvalues, model, steps)


def curvature_peak(alpha, model="simplified", steps=1) -> np.ndarray:
    """The eigenvalue λ* = argmax_λ c(λ, α): beyond α > 1/(3λ_k) (exact one-step) it lies below the top k.

    1/((k + 1)α) for λ(1 − αλ)^k, 1/((2k + 1)α) for λ(1 − αλ)^{2k}, 1/(4α) for λ − 2αλ²; inf at α = 0,
    where c = λ grows without bound and λ_max sets β_c. Shape: alpha.shape.
    """
    _check_model(model, steps)
    return _peak(_rates(alpha, "alpha", allow_zero=True), model, steps)


def beta_critical_interval(alpha, top, lower, upper=None, model="simplified", steps=1) -> np.ndarray:
    """β_c(α) that holds for the whole spectrum when only the top eigenvalues and a range for the rest are known.

    ``top``: the k largest eigenvalues (of every task, for Eq. 26); ``lower`` <= ``upper`` <= min(top):
    an interval holding every other eigenvalue, by default up to the k-th largest, with ``lower``
    the smallest eigenvalue (e.g. from Lanczos, :func:`mamlpaper.hessian.spectrum`). Returns the
    minimum of :func:`beta_critical` over ``top`` and of 2/max c(λ, α) over the interval: the β_c
    of the worst spectrum consistent with that knowledge, so never above the true one, and equal
    to it once the spectrum holds the interval's maximiser of c (:func:`curvature_peak` or an end).
    Conventions as in :func:`beta_critical`: eigenvalues <= 0 impose no bound (the interval counts
    from 0 up), and 0 at or beyond α_c anywhere in it (which ``top`` already sets).
    """
    _check_model(model, steps)
    top = _eigenvalues(top, "top")
    lower = _checks.real("lower", lower)
    smallest = float(top.min())
    upper = smallest if upper is None else _checks.real("upper", upper)
    if upper > smallest:
        raise _checks.refuse("upper", upper, f"upper must be <= min(top) = {smallest!r}: the interval holds "
                             "the eigenvalues below the top k")
    if lower > upper:
        raise _checks.refuse("lower", lower, f"lower must be <= upper = {upper!r}")
    alpha = _rates(alpha, "alpha", allow_zero=True)
    return np.minimum(_beta_critical(alpha, top, model, steps), _interval_beta_critical(alpha, lower, upper, model, steps))


def predicted_stable(alphas, betas, eigenvalues, model="simplified", steps=1) -> np.ndarray:
    """Theory's stability map on an α×β grid: rows β, columns α, as pcolormesh draws it.

    A cell is stable iff 0 < β < β_c(α) (Eq. 19); α at or beyond α_c has β_c = 0 and is never stable.
    """
    _check_model(model, steps)
    alphas = _checks.grid("alphas", alphas, allow_zero=True)
    betas = _checks.grid("betas", betas)
    eigenvalues = _eigenvalues(eigenvalues)
    return betas[:, None] < _beta_critical(alphas, eigenvalues, model, steps)[None, :]


def agreement(predicted_stable, measured_stable, margin=1) -> tuple[float, int]:
    """Fraction of grid cells where theory and measurement agree, away from the boundary.

    Cells within `margin` grid steps of the predicted boundary are skipped: a grid only
    resolves the boundary to one step, so disagreement there says nothing about the theory.
    Returns (fraction, number of cells counted).
    """
    margin = _checks.integer("margin", margin, minimum=0)
    predicted = np.asarray(predicted_stable)
    measured = np.asarray(measured_stable)
    for name, array in (("predicted_stable", predicted), ("measured_stable", measured)):
        if array.dtype != bool:
            raise ValueError(f"{name} has dtype {array.dtype}; {name} must be a bool array")
        if array.ndim != 2 or array.size == 0:
            raise ValueError(f"{name} has shape {array.shape}; {name} must be a non-empty 2-D grid")
    if predicted.shape != measured.shape:
        raise ValueError(f"measured_stable has shape {measured.shape}; it must match predicted_stable's {predicted.shape}")
    size = 2 * margin + 1
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(predicted, margin, mode="edge"), (size, size))
    counted = windows.all(axis=(-2, -1)) | ~windows.any(axis=(-2, -1))
    n = int(counted.sum())
    if n == 0:
        raise ValueError(f"margin={margin!r} leaves no cell of the {predicted.shape} grid away from the "
                         "predicted boundary; use a smaller margin or a finer grid")
    return float(np.mean(predicted[counted] == measured[counted])), n
