"""Appendix D (Tg kept): the paper's condition and β bound as written, where they fail, and a pair that holds.

Appendix D bounds the spectrum of H̃ = H − α(Tg + H²) from below (Lidskii, Eq. 40-45), then
replaces λ(H − αH²)_i = λ_i − αλ_i² by λ_i − αλ(H)²_min (Eq. 47), which is larger, not smaller:
the condition it ends with (Eq. 49) and the β bound after it (Eq. 51) admit points that are not
minima and rates that diverge. Weyl's inequality gives what the appendix set out to show: with
c_i = λ_i − αλ_i², every eigenvalue of H̃ lies in [min_i c_i − αλ_max(Tg), max_i c_i − αλ_min(Tg)],
so a positive lower end and β < 2/(upper end) are sufficient.

Notebook 01 walks through the steps and the tests check them, so both live here once: the SymPy
statement of each step (`paper_steps`, `corrected_steps`), and NumPy functions of symmetric H and
Tg (or stacks of them, shape (..., d, d)) that evaluate the conditions, simulate meta-gradient
descent and search for counterexamples.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sympy as sp

from . import _checks
from . import symbolic as sym

lam_i = sp.Symbol("lambda_i", nonnegative=True)
lam_min = sp.Symbol("lambda_min", nonnegative=True)
t_i, t_max, t_min = sp.symbols("t_i t_max t_min", real=True)
"""λ(H)_i, λ(H)_min, and λ(Tg)_i, λ_max(Tg), λ_min(Tg); both spectra sorted descending as in Eq. 41."""

FAMILIES = ("paper", "general")
PAPER_EQUATIONS = ("45", "49")


class Instance(NamedTuple):
    """One meta-GD problem near θ*: the Hessian, Tg, and the two rates."""

    hess: np.ndarray
    tg: np.ndarray
    alpha: float
    beta: float


def paper_steps() -> dict:
    """Eq. 45-51 per index i as the paper writes them; "i ≤ k" for the top-k part, "i > k" for the tail.

    λ(H − αH²)_i is written λ_i − αλ_i²: H and H² share eigenvectors (Section 3).
    """
    return {
        "45": lam_i - sym.alpha * lam_i**2 - sym.alpha * t_i > 0,
        "47": lam_i - sym.alpha * lam_min**2 - sym.alpha * t_i > 0,
        "48": lam_i - sym.alpha * (lam_min**2 + t_i) > 0,
        "49": lam_i - sym.alpha * t_i > 0,
        "46, i > k": sym.alpha * t_i < 0,
        "49, i > k": t_i < 0,
        "51": sym.beta < 2 / (lam_i - sym.alpha * t_i),
    }


def corrected_steps() -> dict:
    """Weyl's two ends of the spectrum of H̃ per i, and the sufficient conditions on them (for every i)."""
    curvature = lam_i - sym.alpha * lam_i**2
    lower, upper = curvature - sym.alpha * t_max, curvature - sym.alpha * t_min
    return {"lower": lower, "upper": upper, "condition": lower > 0, "beta": sym.beta < 2 / upper}


def _symmetric(name, value) -> np.ndarray:
    matrix = _checks.real_array(name, value)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise _checks.refuse(name, value, f"{name} must be a square matrix or a stack of them, shape (..., d, d)")
    asymmetry = float(np.abs(matrix - np.swapaxes(matrix, -1, -2)).max())
    if asymmetry > 1e-10 * max(1.0, float(np.abs(matrix).max())):
        raise _checks.refuse(name, value, f"{name} must be symmetric; its largest asymmetry is {asymmetry:.3g}")
    return matrix


def _pair(hess, tg):
    hess = _symmetric("hess", hess)
    tg = _symmetric("tg", tg)
    if tg.shape != hess.shape:
        raise _checks.refuse("tg", tg, f"tg must have the shape of hess, {hess.shape}")
    return hess, tg


def _per_matrix(name, value, batch, *, positive) -> np.ndarray:
    """A rate per matrix of the stack (a scalar is shared), > 0 or >= 0."""
    rates = _checks.real_array(name, value)
    bad = rates <= 0 if positive else rates < 0
    if bad.any():
        raise _checks.refuse(name, value, f"every entry must be {'> 0' if positive else '>= 0'}; "
                                          f"found {float(rates[bad].flat[0])!r}")
    try:
        return np.broadcast_to(rates, batch)
    except ValueError:
        raise _checks.refuse(name, value, f"{name} must be a scalar or one value per matrix, shape {batch}") from None


def _descending(matrix) -> np.ndarray:
    return np.linalg.eigvalsh(matrix)[..., ::-1]


def _paper(hess, tg, alpha, equation, inclusive, threshold):
    """Eq. 45 or 49 and Eq. 51 on checked arrays: (condition, bound); k = #{λ(H)_i > threshold}."""
    lam, t = _descending(hess), _descending(tg)
    a = alpha[..., None]
    if equation == "45":
        return (lam - a * lam**2 - a * t > 0).all(axis=-1), None
    top = lam > threshold
    tail = ~np.concatenate([top[..., 1:], np.zeros_like(top[..., :1])], axis=-1) if inclusive else ~top
    margin = lam - a * t
    condition = (np.where(top, margin > 0, True) & np.where(tail, t < 0, True)).all(axis=-1)
    bound = np.where(top & condition[..., None], 2.0 / np.where(top, margin, 1.0), np.inf).min(axis=-1)
    return condition, np.where(condition, bound, 0.0)


def _weyl(hess, tg, alpha):
    lam, t = np.linalg.eigvalsh(hess), np.linalg.eigvalsh(tg)
    curvature = lam - alpha[..., None] * lam**2
    return curvature.min(axis=-1) - alpha * t.max(axis=-1), curvature.max(axis=-1) - alpha * t.min(axis=-1)


def _checked(hess, tg, alpha):
    hess, tg = _pair(hess, tg)
    return hess, tg, _per_matrix("alpha", alpha, hess.shape[:-2], positive=False)


def _paper_checked(hess, tg, alpha, equation, inclusive, threshold):
    hess, tg, alpha = _checked(hess, tg, alpha)
    equation = _checks.choice("equation", equation, PAPER_EQUATIONS)
    inclusive = _checks.flag("inclusive", inclusive)
    threshold = _checks.real("threshold", threshold, at_least=0.0)
    return _paper(hess, tg, alpha, equation, inclusive, threshold)


def paper_condition(hess, tg, alpha, equation="49", inclusive=False, threshold=1e-9) -> np.ndarray:
    """The paper's sufficient condition for θ* to be a minimum, at the step `equation`.

    "45": λ(H − αH²)_i − αλ(Tg)_i > 0 for every i, the condition before the H² term is dropped.
    "49": λ(H)_i − αλ(Tg)_i > 0 for i ≤ k and λ(Tg)_i < 0 for i > k, where k = #{λ(H)_i > threshold};
    the paper's final form, for λ(H)_min = 0. The prose reads the tail as "the smaller d − k
    eigenvalues of Tg"; inclusive=True reads Eq. 46-49's "k ≤ i ≤ d" literally (λ(Tg)_k < 0 too).
    """
    return _paper_checked(hess, tg, alpha, equation, inclusive, threshold)[0]


def paper_beta_bound(hess, tg, alpha, inclusive=False, threshold=1e-9) -> np.ndarray:
    """Eq. 51: min over i ≤ k of 2/(λ(H)_i − αλ(Tg)_i); 0 where Eq. 49 fails (as `bounds.beta_critical`)."""
    return _paper_checked(hess, tg, alpha, "49", inclusive, threshold)[1]


def weyl_interval(hess, tg, alpha):
    """(lower, upper): every eigenvalue of H − α(Tg + H²) lies in between (Weyl with B = −αTg)."""
    return _weyl(*_checked(hess, tg, alpha))


def corrected_condition(hess, tg, alpha) -> np.ndarray:
    """min_i(λ_i − αλ_i²) − αλ_max(Tg) > 0: sufficient for θ* to be a strict minimum of the simplified loss."""
    return _weyl(*_checked(hess, tg, alpha))[0] > 0


def corrected_beta_bound(hess, tg, alpha) -> np.ndarray:
    """2/(max_i(λ_i − αλ_i²) − αλ_min(Tg)) where the corrected condition holds, else 0: any smaller β converges."""
    lower, upper = _weyl(*_checked(hess, tg, alpha))
    return np.where(lower > 0, 2.0 / np.where(lower > 0, upper, 1.0), 0.0)


def spectral_radius(hess, tg, alpha, beta) -> np.ndarray:
    """ρ(I − βH̃): meta-GD near θ* converges from every start iff it is < 1 (Eq. 16 per eigenvector of H̃)."""
    hess, tg, alpha = _checked(hess, tg, alpha)
    beta = _per_matrix("beta", beta, hess.shape[:-2], positive=True)
    eigenvalues = np.linalg.eigvalsh(sym.curvature_matrix(hess, alpha[..., None, None], tg))
    return np.abs(1.0 - beta[..., None] * eigenvalues).max(axis=-1)


def meta_gd_norms(hess, tg, alpha, beta, theta0, steps) -> np.ndarray:
    """‖θ_t‖ for t = 0..steps of θ ← θ − β(H − α(Tg + H²))θ, the simplified meta-GD near θ* = 0.

    Shape (..., steps + 1); a diverging run may reach inf, which is its honest value.
    """
    hess, tg, alpha = _checked(hess, tg, alpha)
    batch, dim = hess.shape[:-2], hess.shape[-1]
    beta = _per_matrix("beta", beta, batch, positive=True)
    theta = _checks.real_array("theta0", theta0)
    if theta.shape[-1:] != (dim,):
        raise _checks.refuse("theta0", theta0, f"theta0 must end in the matrices' size d = {dim}")
    steps = _checks.integer("steps", steps, minimum=1)
    update = np.eye(dim) - beta[..., None, None] * sym.curvature_matrix(hess, alpha[..., None, None], tg)
    norms = [np.linalg.norm(theta, axis=-1)]
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            theta = (update @ theta[..., None])[..., 0]
            norms.append(np.linalg.norm(theta, axis=-1))
    return np.stack(np.broadcast_arrays(*norms), axis=-1)


def random_instances(rng, count, dim=4, family="paper"):
    """(hess, tg, alpha) stacks of `count` random problems of size `dim`.

    family="paper" meets the appendix's own assumptions, so a failure is its argument's: H positive
    semi-definite of random rank k < dim, with λ(H)_i = 0 exactly for i > k (Eq. 46), top eigenvalues
    uniform in [0.1, 2]; Tg random symmetric with eigenvalues uniform in [−1, 0.5]·s, s log-uniform
    in [1e-3, 0.3]·λ_max (Tg small beside H², Appendix C); α uniform in (0, 1.5/λ_max).
    family="general": any symmetric H (eigenvalues uniform in [−0.5, 2]) and Tg (in [−1, 1]·s).
    """
    if not isinstance(rng, np.random.Generator):
        raise _checks.refuse("rng", rng, "pass a numpy.random.Generator, e.g. np.random.default_rng(0)",
                             shown=type(rng).__name__)
    count = _checks.integer("count", count, minimum=1)
    dim = _checks.integer("dim", dim, minimum=2)
    family = _checks.choice("family", family, FAMILIES)
    if family == "paper":
        rank = rng.integers(1, dim, size=count)
        lam = np.where(np.arange(dim) < rank[:, None], rng.uniform(0.1, 2.0, size=(count, dim)), 0.0)
        t = rng.uniform(-1.0, 0.5, size=(count, dim))
    else:
        lam = rng.uniform(-0.5, 2.0, size=(count, dim))
        t = rng.uniform(-1.0, 1.0, size=(count, dim))
    largest = np.abs(lam).max(axis=-1)
    t = t * (largest * 10.0 ** rng.uniform(-3.0, np.log10(0.3), size=count))[:, None]
    hess, tg = (_rotated(rng, values) for values in (lam, t))
    return hess, tg, rng.uniform(0.0, 1.5, size=count) / largest


def _rotated(rng, eigenvalues):
    p = np.stack([sym.random_orthogonal(rng, eigenvalues.shape[-1]) for _ in range(len(eigenvalues))])
    return _symmetrized((p * eigenvalues[:, None, :]) @ np.swapaxes(p, -1, -2))


def _symmetrized(matrix):
    return (matrix + np.swapaxes(matrix, -1, -2)) / 2


def find_counterexample(rng, count=1000, dim=2, fraction=0.5) -> Instance | None:
    """The draw the paper's Eq. 49 admits, run at β = fraction × Eq. 51's bound, whose meta-GD grows fastest.

    None when no admitted draw among `count` (family "paper") diverges.
    """
    fraction = _checks.real("fraction", fraction, above=0.0)
    if fraction >= 1:
        raise _checks.refuse("fraction", fraction, "fraction must be in (0, 1): β below Eq. 51's bound")
    hess, tg, alpha = random_instances(rng, count, dim)
    admitted, bound = _paper(hess, tg, alpha, "49", False, 1e-9)
    beta = fraction * np.where(admitted, bound, 1.0)
    eigenvalues = np.linalg.eigvalsh(sym.curvature_matrix(hess, alpha[:, None, None], tg))
    radius = np.where(admitted, np.abs(1.0 - beta[:, None] * eigenvalues).max(axis=-1), 0.0)
    worst = int(np.argmax(radius))
    if radius[worst] <= 1:
        return None
    return Instance(hess[worst], tg[worst], float(alpha[worst]), float(beta[worst]))
