"""symbolic: the derivation reproduces the paper's steps and the three curvature models."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from mamlpaper import symbolic as sym
from mamlpaper.symbolic import alpha, beta, lam

def is_zero(expr):
    """Strictly True or False: an undecided SymPy answer must not pass a negative assertion."""
    entries = expr if isinstance(expr, sp.MatrixBase) else [expr]
    return all(sp.simplify(sp.expand(e)) == 0 for e in entries)


CLOSED_FORMS = {("penalty", 1): lam - 2 * alpha * lam**2}
for _k in (1, 2, 3):
    CLOSED_FORMS["simplified", _k] = lam * (1 - alpha * lam) ** _k
    CLOSED_FORMS["exact", _k] = lam * (1 - alpha * lam) ** (2 * _k)


@pytest.mark.parametrize("model,steps", list(CLOSED_FORMS))
def test_curvature_models(model, steps):
    curv = sym.curvature_expr(model, steps)
    assert is_zero(curv - CLOSED_FORMS[model, steps])
    assert is_zero(sym.beta_critical_expr(model, steps) - 2 / CLOSED_FORMS[model, steps])


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_first_order_matches_simplified_on_the_quadratic_only(steps):
    fo = sym.quadratic_meta_gradient("first", steps)
    assert is_zero(fo - sym.quadratic_meta_gradient("simplified", steps))
    assert not is_zero(fo - sym.quadratic_meta_gradient("second", steps))


def test_one_step_curvatures_differ():
    curvs = [sym.curvature_expr(m) for m in ("simplified", "penalty", "exact")]
    assert all(not is_zero(a - b) for i, a in enumerate(curvs) for b in curvs[i + 1:])


@pytest.mark.parametrize("model,steps,expected", [
    ("simplified", 1, 1 / lam), ("simplified", 2, sp.oo), ("simplified", 3, 1 / lam),
    ("penalty", 1, 1 / (2 * lam)), ("exact", 1, sp.oo), ("exact", 2, sp.oo),
])
def test_alpha_critical(model, steps, expected):
    assert sym.alpha_critical_expr(model, steps) == expected


def test_beta_interval_and_trajectory():
    assert sym.stable_beta_interval() == sp.Interval.open(0, 2 / sym.c)
    trajectory, t, v0 = sym.meta_gd_solution()
    assert is_zero(trajectory - v0 * (1 - beta * sym.c) ** t)


def test_beta_critical_diverges_and_grows():
    bc = sym.beta_critical_expr("simplified")
    assert sp.limit(bc, alpha, 1 / lam, "-") == sp.oo
    assert sym.is_positive_on(sp.diff(bc, alpha), alpha, 1 / lam) is True
    assert sym.is_positive_on(bc - 2 / lam, alpha, 1 / lam) is True
    assert sym.is_positive_on(2 / lam - bc, alpha, 1 / lam) is False
    assert sym.is_positive_on(sym.curvature_expr("penalty"), alpha, 1 / lam) is not True  # negative past 1/(2λ)


def test_generic_loss_maml_gradients():
    loss, params = sym.generic_loss()
    g, h = sym.gradient(loss, params), sym.hessian(loss, params)
    point = sym.adapted_point(loss, params)
    exact = sym.maml_gradient(loss, params, "second")
    assert is_zero(exact - (sp.eye(2) - alpha * h) * g.subs(dict(zip(params, point)), simultaneous=True))
    assert is_zero(sym.alpha_coefficient(exact, 1) + 2 * h * g)
    simplified = sym.maml_gradient(loss, params, "simplified")
    assert is_zero(simplified - (g - alpha * h * g))
    assert is_zero(sym.alpha_coefficient(sym.maml_gradient(loss, params, "first"), 1) + h * g)
    assert is_zero(sym.maml_gradient(loss, params, "penalty") - (g - 2 * alpha * h * g))
    assert is_zero(sym.gradient(sym.penalty_loss(loss, params, sp.Rational(1, 2)), params) - simplified)
    maml_loss = loss.subs(dict(zip(params, point)), simultaneous=True)
    assert is_zero(sym.alpha_coefficient(maml_loss, 1) + (g.T * g)[0])


def test_appendix_b_hessian():
    loss, params = sym.generic_loss()
    g, h = sym.gradient(loss, params), sym.hessian(loss, params)
    tg = sym.third_derivative_contraction(loss, params, g)
    assert not is_zero(tg)
    h_tilde = sym.hessian(sym.penalty_loss(loss, params, sp.Rational(1, 2)), params)
    assert is_zero(h_tilde - (h - alpha * (tg + h * h)))
    assert not is_zero(h_tilde - (h - alpha * h * h))


def test_meta_jacobians_at_a_stationary_point():
    loss, params = sym.generic_loss(stationary_origin=True)
    origin = {p: 0 for p in params}
    assert is_zero(sym.gradient(loss, params).subs(origin))
    h = sym.hessian(loss, params).subs(origin)
    eye = sp.eye(2)
    assert is_zero(sym.meta_jacobian(loss, params, "second").subs(origin) - (eye - alpha * h) * h * (eye - alpha * h))
    assert is_zero(sym.meta_jacobian(loss, params, "simplified").subs(origin) - (h - alpha * h * h))
    assert is_zero(sym.meta_jacobian(loss, params, "penalty").subs(origin) - (h - 2 * alpha * h * h))


def test_diagonal_quadratic_has_one_curvature_per_eigenvalue():
    lams = sp.symbols("lambda_1:3", positive=True)
    loss, params = sym.quadratic_loss(sp.diag(*lams))
    jac = sym.meta_jacobian(loss, params, "second", 2)
    assert is_zero(jac - sp.diag(*[lam_i * (1 - alpha * lam_i) ** 4 for lam_i in lams]))


def test_eigendecomposition_eq9():
    phi = sp.Symbol("phi", real=True)
    lams = sp.symbols("lambda_1:3", positive=True)
    p = sym.rotation_matrix(phi)
    lam_m = sp.diag(*lams)
    h = p * lam_m * p.T
    assert is_zero(h - alpha * h * h - p * (lam_m - alpha * lam_m**2) * p.T)
    loss, params = sym.quadratic_loss(h)
    jac = sym.meta_jacobian(loss, params, "simplified")
    assert is_zero(jac - p * (lam_m - alpha * lam_m**2) * p.T)


def test_random_matrices():
    rng = np.random.default_rng(0)
    q = sym.random_orthogonal(rng, 4)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    eigs = np.array([0.5, 1.0, 2.0, 3.0])
    h = sym.random_symmetric(rng, 4, eigs)
    np.testing.assert_allclose(h, h.T)
    np.testing.assert_allclose(np.linalg.eigvalsh(h), eigs)
    np.testing.assert_allclose(np.linalg.eigvalsh(sym.curvature_matrix(h, 0.2)), np.sort(eigs - 0.2 * eigs**2))
    assert not np.allclose(sym.random_symmetric(rng, 3), sym.random_symmetric(rng, 3))


def test_is_majorized_known_cases():
    assert sym.is_majorized([1, 1, 1], [3, 0, 0])
    assert sym.is_majorized([2, 1, 0], [0, 3, 0])  # order does not matter
    assert not sym.is_majorized([3, 0, 0], [1, 1, 1])
    assert not sym.is_majorized([1, 1, 1], [3, 1, 0])  # totals differ
    with pytest.raises(ValueError, match="same length"):
        sym.is_majorized([1, 2], [1, 2, 3])


def test_lidskii_majorization_on_random_matrices():
    rng = np.random.default_rng(5)
    for _ in range(30):
        a, b = sym.random_symmetric(rng, 5), sym.random_symmetric(rng, 5)
        spectrum = np.linalg.eigvalsh(a + b)
        assert sym.is_majorized(sym.lidskii_lower(a, b), spectrum)
        upper = np.linalg.eigvalsh(a)[::-1] + np.linalg.eigvalsh(b)[::-1]
        assert sym.is_majorized(spectrum, upper)
        assert not sym.is_majorized(upper, spectrum)
