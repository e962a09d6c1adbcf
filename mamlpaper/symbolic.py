"""The paper's derivation in SymPy, so every closed form in `bounds` is derived, not quoted.

The MAML meta-gradient variants are built from a loss by differentiation (`maml_gradient`);
applied to the quadratic L = λθ²/2 they give the curvature models (`curvature_expr`), and
the bounds follow by solving inequalities (`beta_critical_expr`, `alpha_critical_expr`).
The numeric helpers at the end check the matrix facts (Eq. 23-26, Appendix D) on random
matrices where no closed form exists.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from . import _checks
from .variants import CURVATURE_MODELS, VARIANTS

lam = sp.Symbol("lambda", positive=True)
alpha = sp.Symbol("alpha", positive=True)
beta = sp.Symbol("beta", positive=True)
theta = sp.Symbol("theta", real=True)
c = sp.Symbol("c", positive=True)

META_GRADIENTS = VARIANTS + ("penalty",)
"""The runnable variants of :mod:`mamlpaper.variants`, plus the literal penalty ∇(L − α gᵀg)."""

DEFINING_VARIANT = {"simplified": "simplified", "penalty": "penalty", "exact": "second"}
"""The meta-gradient whose quadratic form defines each curvature model."""


def _check_steps(steps, variant):
    _checks.integer("steps", steps, minimum=1)
    if variant == "penalty" and steps != 1:
        raise _checks.refuse("steps", steps, "'penalty' is one-step; use steps=1")


def _check_model(model, steps):
    _checks.choice("model", model, CURVATURE_MODELS)
    _check_steps(steps, model)


def _at(expr, params, point):
    return expr.subs(dict(zip(params, point)), simultaneous=True)


def gradient(loss, params) -> sp.Matrix:
    """g(θ) = ∇L(θ) as a column."""
    return sp.Matrix([sp.diff(loss, p) for p in params])


def hessian(loss, params) -> sp.Matrix:
    """H(θ) = ∇²L(θ)."""
    return sp.hessian(loss, list(params))


def third_derivative_contraction(loss, params, vector) -> sp.Matrix:
    """(Tv)_ij = Σ_k ∂³L/∂θ_i∂θ_j∂θ_k v_k; with v = g this is the Tg of Appendix B."""
    n = len(params)
    return sp.Matrix(n, n, lambda i, j: sum(sp.diff(loss, params[i], params[j], params[k]) * vector[k] for k in range(n)))


def generic_loss(dim=2, degree=3, stationary_origin=False):
    """A generic smooth loss: every monomial of degree 1..degree with its own symbolic coefficient.

    Degree 3 keeps a non-zero third-derivative tensor T, so Tg is really there. With
    stationary_origin the linear terms are dropped, making θ = 0 a stationary point.
    Returns (L, θ as a column of symbols).
    """
    params = sp.Matrix(sp.symbols(f"x1:{dim + 1}", real=True))
    monomials = [m for d in range(2 if stationary_origin else 1, degree + 1)
                 for m in sorted(sp.itermonomials(list(params), d, d), key=sp.default_sort_key)]
    coefficients = sp.symbols(f"a1:{len(monomials) + 1}", real=True)
    return sum(a * m for a, m in zip(coefficients, monomials)), params


def quadratic_loss(hess):
    """L(θ) = ½ θᵀHθ for a given (symbolic or numeric) symmetric H; returns (L, θ).

    A 1×1 H uses the scalar symbol `theta`, so [[lam]] gives the 1-D quadratic λθ²/2.
    """
    hess = sp.Matrix(hess)
    n = hess.shape[0]
    params = sp.Matrix([theta]) if n == 1 else sp.Matrix(sp.symbols(f"theta1:{n + 1}", real=True))
    return sp.expand((params.T * hess * params)[0] / 2), params


def adapted_point(loss, params, steps=1) -> sp.Matrix:
    """θ_k after k inner gradient steps θ_{j+1} = θ_j − α g(θ_j) (Eq. 1)."""
    _check_steps(steps, None)
    g = gradient(loss, params)
    point = sp.Matrix(params)
    for _ in range(steps):
        point = point - alpha * _at(g, params, point)
    return point


def penalty_loss(loss, params, weight=1):
    """L − weight·α·gᵀg: weight 1 is the Taylor form of Eq. 6-7, weight ½ the loss of Eq. 5/App. B."""
    g = gradient(loss, params)
    return loss - weight * alpha * (g.T * g)[0]


def maml_gradient(loss, params, variant, steps=1) -> sp.Matrix:
    """The meta-gradient each MAML variant follows, built from the loss by differentiation.

    second: ∇_θ L(θ_k(θ)) (exact MAML); first: g(θ_k) (FOMAML); simplified:
    (∂θ_k/∂θ)ᵀ g(θ), the paper's g − αHg for k = 1 (Eq. 3-4); penalty: ∇(L − α gᵀg) (Eq. 7).
    """
    _checks.choice("variant", variant, META_GRADIENTS)
    _check_steps(steps, variant)
    if variant == "penalty":
        return gradient(penalty_loss(loss, params), params)
    point = adapted_point(loss, params, steps)
    if variant == "second":
        return gradient(_at(loss, params, point), params)
    if variant == "first":
        return _at(gradient(loss, params), params, point)
    return point.jacobian(params).T * gradient(loss, params)


def meta_jacobian(loss, params, variant, steps=1) -> sp.Matrix:
    """∂(meta-gradient)/∂θ: the matrix the meta-update multiplies near θ* (Eq. 13-14)."""
    return maml_gradient(loss, params, variant, steps).jacobian(params)


def alpha_coefficient(expr, order):
    """Coefficient of α^order in the power series of expr about α = 0 (what Eq. 4 and 7 truncate)."""
    return sp.diff(expr, alpha, order).subs(alpha, 0) / sp.factorial(order)


def quadratic_meta_gradient(variant, steps=1):
    """The meta-gradient of `variant` on the 1-D quadratic λθ²/2 (exact for linear regression)."""
    loss, params = quadratic_loss([[lam]])
    return sp.factor(maml_gradient(loss, params, variant, steps)[0])


def linear_coefficient(expr, var):
    """c with expr = c·var; raises if expr is not linear and homogeneous in var."""
    poly = sp.Poly(sp.expand(expr), var)
    if poly.degree() > 1 or poly.coeff_monomial(1) != 0:
        raise ValueError(f"expr={expr} is not of the form c*{var}")
    return sp.factor(poly.coeff_monomial(var))


def curvature_expr(model, steps=1):
    """Effective curvature per eigenvalue: the coefficient of θ in the quadratic's meta-gradient.

    simplified: λ(1 − αλ)^k, penalty: λ − 2αλ², exact: λ(1 − αλ)^{2k}.
    """
    _check_model(model, steps)
    return linear_coefficient(quadratic_meta_gradient(DEFINING_VARIANT[model], steps), theta)


def meta_gd_solution():
    """v(t) solving v(t+1) = (1 − βc)v(t) (Eq. 15): gradient descent along one eigenvector."""
    t = sp.Symbol("t", integer=True, nonnegative=True)
    v = sp.Function("v")
    v0 = sp.Symbol("v_0", real=True)
    return sp.rsolve(v(t + 1) - (1 - beta * c) * v(t), v(t), {v(0): v0}), t, v0


def stable_beta_interval():
    """{β > 0 : |1 − βc| < 1} for curvature c > 0 (Eq. 16-18)."""
    return sp.solve_univariate_inequality(sp.Abs(1 - beta * c) < 1, beta, relational=False)


def beta_critical_expr(model, steps=1):
    """β_c = sup of the stable β interval with c the model's curvature: 2/c (Eq. 18); valid for α < α_c."""
    return stable_beta_interval().sup.subs(c, curvature_expr(model, steps))


def alpha_critical_expr(model, steps=1):
    """α_c: the first α where the curvature turns negative (Eq. 10-11); sympy.oo when it never does.

    Solving curvature < 0 rather than > 0 lets an even power touch zero at α = 1/λ without
    counting as a bound: there the curvature is ≥ 0 for every α.
    """
    unstable = sp.solve_univariate_inequality(curvature_expr(model, steps) < 0, alpha, relational=False)
    return sp.oo if unstable is sp.S.EmptySet else unstable.inf


def is_positive_on(expr, var, upper):
    """SymPy's verdict on expr > 0 for every var in (0, upper): True, False or None (undecided).

    Substitutes var = upper/(1 + u) with u > 0, which sweeps exactly that open interval.
    """
    u = sp.Symbol("u", positive=True)
    return sp.simplify(sp.factor(expr.subs(var, upper / (1 + u)))).is_positive


def rotation_matrix(phi) -> sp.Matrix:
    """2-D rotation: the orthogonal P of a symmetric 2×2 H = PΛPᵀ (Eq. 9, 12)."""
    return sp.Matrix([[sp.cos(phi), -sp.sin(phi)], [sp.sin(phi), sp.cos(phi)]])


def random_orthogonal(rng, dim) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def random_symmetric(rng, dim, eigenvalues=None) -> np.ndarray:
    """A random symmetric matrix, with the given eigenvalues when they are given."""
    if eigenvalues is None:
        g = rng.standard_normal((dim, dim))
        return (g + g.T) / 2
    p = random_orthogonal(rng, dim)
    return (p * np.asarray(eigenvalues, dtype=float)) @ p.T


def curvature_matrix(hess, alpha_value, tg=None) -> np.ndarray:
    """H − α(Tg + H²), the simplified loss's Hessian (App. B); Tg = 0 unless given. Stacks of H work."""
    hess = np.asarray(hess, dtype=float)
    third = 0.0 if tg is None else np.asarray(tg, dtype=float)
    return hess - alpha_value * (third + hess @ hess)


def lidskii_lower(a, b) -> np.ndarray:
    """λ↓(A) + λ↑(B), the vector majorized by λ(A + B) for symmetric A, B (Eq. 37)."""
    return np.linalg.eigvalsh(a)[::-1] + np.linalg.eigvalsh(b)


def is_majorized(x, y, atol=1e-9) -> bool:
    """x ≺ y (Eq. 38-39): partial sums of x sorted descending never exceed y's, totals equal."""
    x = _checks.real_array("x", x)
    y = _checks.real_array("y", y)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x has shape {x.shape} and y {y.shape}; both must be non-empty 1-D of the same length")
    sx = np.cumsum(np.sort(x)[::-1])
    sy = np.cumsum(np.sort(y)[::-1])
    return bool(np.all(sx[:-1] <= sy[:-1] + atol) and abs(sx[-1] - sy[-1]) <= atol)
