"""bounds: equal to the SymPy derivation, right on known values, and right about real MAML runs."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import sympy as sp
import torch

from mamlpaper import bounds
from mamlpaper import symbolic as sym

CASES = [("simplified", 1), ("simplified", 2), ("simplified", 3), ("penalty", 1), ("exact", 1), ("exact", 2), ("exact", 3)]


@functools.lru_cache(maxsize=None)
def lambdified(model, steps):
    return (
        sp.lambdify((sym.lam, sym.alpha), sym.curvature_expr(model, steps), "numpy"),
        sp.lambdify((sym.lam, sym.alpha), sym.beta_critical_expr(model, steps), "numpy"),
        float(sym.alpha_critical_expr(model, steps).subs(sym.lam, 1)),
    )


@pytest.mark.parametrize("model,steps", CASES)
def test_curvature_equals_symbolic(model, steps):
    rng = np.random.default_rng(1)
    eigenvalues = rng.uniform(-1.0, 10.0, size=(3, 4))
    alphas = rng.uniform(0.0, 0.5, size=(2, 5))
    got = bounds.curvature(eigenvalues, alphas, model, steps)
    assert got.shape == (2, 5, 3, 4)
    c_sym, _, _ = lambdified(model, steps)
    want = c_sym(eigenvalues[None, None], alphas[:, :, None, None])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model,steps", CASES)
def test_beta_and_alpha_critical_equal_symbolic(model, steps):
    rng = np.random.default_rng(2)
    eigenvalues = rng.uniform(0.1, 10.0, size=(2, 3))
    alphas = rng.uniform(0.0, 0.4, size=50)
    c_sym, b_sym, alpha_c_unit = lambdified(model, steps)
    curv = c_sym(eigenvalues.ravel()[None], alphas[:, None])
    per_eigenvalue = b_sym(eigenvalues.ravel()[None], alphas[:, None])
    want = np.where((curv < 0).any(axis=1), 0.0, np.where(curv > 0, per_eigenvalue, np.inf).min(axis=1))
    np.testing.assert_allclose(bounds.beta_critical(alphas, eigenvalues, model, steps), want, rtol=1e-12)
    # α_c(λ) scales as 1/λ in every model, so the symbolic value at λ = 1 fixes it.
    assert bounds.alpha_critical(eigenvalues, model, steps) == pytest.approx(alpha_c_unit / eigenvalues.max())


def test_known_values():
    eigs = np.array([0.5, 1.0, 4.0])
    assert bounds.alpha_critical(eigs) == 0.25
    assert bounds.alpha_critical(eigs, "penalty") == 0.125
    assert bounds.alpha_critical(eigs, "exact") == np.inf
    assert bounds.alpha_critical(eigs, "exact", steps=3) == np.inf
    assert bounds.alpha_critical(eigs, "simplified", steps=2) == np.inf
    assert bounds.alpha_critical(eigs, "simplified", steps=3) == 0.25
    for model in bounds.CURVATURE_MODELS:
        assert bounds.beta_critical(0.0, eigs, model) == 0.5  # α = 0 is gradient descent: 2/λ_max
    assert bounds.beta_critical(0.1, eigs) == pytest.approx(2 / (4.0 - 0.1 * 16.0))
    assert bounds.beta_critical(0.3, eigs) == 0.0  # beyond α_c nothing is stable
    assert bounds.beta_critical(0.3, eigs, "exact") == pytest.approx(2 / (1.0 * 0.7**2))  # now λ = 1 sets it


def test_beta_critical_grows_then_second_largest_takes_over():
    eigs = np.array([0.3, 1.0, 2.0, 8.0])
    a_c = bounds.alpha_critical(eigs)
    alphas = np.linspace(0.0, a_c, 400, endpoint=False)
    bc = bounds.beta_critical(alphas, eigs)
    assert np.all(np.diff(bc) > 0)
    assert bc[0] == pytest.approx(2 / 8.0)
    near = a_c * (1 - 1e-6)
    assert bounds.beta_critical(near, eigs) == pytest.approx(2 / (2.0 - near * 4.0))
    assert bounds.beta_critical(near, eigs) > 3 * bc[0]


def test_multitask_uses_every_task():
    tasks = np.array([[1.0, 2.0], [0.5, 5.0]])
    assert bounds.alpha_critical(tasks) == 0.2
    a = 0.1
    assert bounds.beta_critical(a, tasks) == pytest.approx(min(2 / (l - a * l * l) for l in tasks.ravel()))
    assert bounds.beta_critical(a, tasks) != bounds.beta_critical(a, tasks[0])


def test_multitask_condition_is_sufficient_for_the_averaged_update():
    rng = np.random.default_rng(3)
    for _ in range(20):
        task_eigs = rng.uniform(0.1, 3.0, size=(4, 5))
        hessians = np.stack([sym.random_symmetric(rng, 5, e) for e in task_eigs])
        a = rng.uniform(0.0, 0.95) * bounds.alpha_critical(task_eigs)
        b = 0.99 * float(bounds.beta_critical(a, task_eigs))
        averaged = np.linalg.eigvalsh(sym.curvature_matrix(hessians, a).mean(axis=0))
        assert np.all(averaged > 0) and np.max(np.abs(1 - b * averaged)) < 1


def test_ignored_eigenvalues():
    assert bounds.beta_critical(0.0, [-3.0, 0.0, 2.0]) == 1.0
    assert bounds.beta_critical(0.5, [2.0, 1.0], "exact") == pytest.approx(2 / 0.25)  # λ = 2 has curvature 0
    assert bounds.alpha_critical([-10.0, 2.0]) == 0.5


def test_predicted_stable_layout():
    alphas = np.array([0.0, 0.1, 0.3])
    betas = np.array([0.4, 0.6, 1.0])
    grid = bounds.predicted_stable(alphas, betas, [4.0])
    assert grid.dtype == bool and grid.shape == (3, 3)
    # β_c: 0.5 at α=0, 2/(4-1.6)=0.833 at α=0.1, 0 at α=0.3 > α_c=0.25
    np.testing.assert_array_equal(grid, [[True, True, False], [False, True, False], [False, False, False]])
    assert bounds.predicted_stable(alphas, betas, [4.0], "exact")[:, 2].tolist() == [True, True, True]


def test_agreement_known_answer():
    predicted = np.zeros((5, 5), dtype=bool)
    predicted[:, :2] = True
    measured = predicted.copy()
    measured[0, 4] = True  # far from the boundary: counted with margin 0 and 1
    measured[2, 2] = True  # next to the boundary: counted only with margin 0
    assert bounds.agreement(predicted, measured, margin=0) == (23 / 25, 25)
    # margin 1 keeps column 0 and columns 3-4: 15 cells, one of them wrong
    assert bounds.agreement(predicted, measured, margin=1) == (14 / 15, 15)
    assert bounds.agreement(predicted, predicted, margin=2) == (1.0, 5)
    with pytest.raises(ValueError, match="margin=3"):
        bounds.agreement(predicted, measured, margin=3)


def _run_meta_gd(hess, model, steps, alpha, beta, iterations=400):
    """Full-batch meta-gradient descent on ½θᵀHθ, with the meta-gradient from autograd."""
    h = torch.as_tensor(hess)
    theta = torch.ones(h.shape[0], dtype=torch.float64)

    def grad(p, create_graph):
        return torch.autograd.grad(0.5 * p @ h @ p, p, create_graph=create_graph)[0]

    start = theta.norm().item()
    for _ in range(iterations):
        p = theta.clone().requires_grad_(True)
        if model == "penalty":
            g = grad(p, True)
            meta = torch.autograd.grad(0.5 * p @ h @ p - alpha * g @ g, p)[0]
        else:
            q = p
            for _ in range(steps):
                q = q - alpha * grad(q, True)
            if model == "exact":
                meta = torch.autograd.grad(0.5 * q @ h @ q, p)[0]
            else:  # simplified: Jacobian of the inner loop kept, gradient taken at θ
                meta = torch.autograd.grad(q, p, grad_outputs=grad(p, False))[0]
        theta = theta - beta * meta.detach()
        if not torch.isfinite(theta).all() or theta.norm() > 1e6 * start:
            return False
    return theta.norm().item() < 1e-3 * start


@pytest.mark.parametrize("model,steps,alpha_fraction", [
    ("simplified", 1, 0.5), ("simplified", 2, 1.5), ("simplified", 3, 0.5),
    ("penalty", 1, 0.25), ("exact", 1, 1.5), ("exact", 2, 1.5), ("exact", 3, 0.6),
])
def test_beta_critical_against_simulation(model, steps, alpha_fraction):
    eigs = np.array([0.5, 1.0, 2.0])
    hess = sym.random_symmetric(np.random.default_rng(4), 3, eigs)
    alpha = alpha_fraction / eigs.max()  # > 1/λ_max for exact and even steps: no α bound there
    bc = float(bounds.beta_critical(alpha, eigs, model, steps))
    assert 0 < bc < np.inf
    assert _run_meta_gd(hess, model, steps, alpha, 0.97 * bc)
    assert not _run_meta_gd(hess, model, steps, alpha, 1.03 * bc)


def test_beyond_alpha_critical_nothing_converges():
    eigs = np.array([0.5, 1.0, 2.0])
    hess = np.diag(eigs)
    alpha = 1.5 * bounds.alpha_critical(eigs)
    assert bounds.beta_critical(alpha, eigs) == 0.0
    assert not _run_meta_gd(hess, "simplified", 1, alpha, 0.1)


@pytest.mark.parametrize("model,steps", [("simplified", 1), ("simplified", 3), ("penalty", 1)])
def test_at_alpha_critical_itself_nothing_converges(model, steps):
    """α = α_c as computed in floating point: 1 − αλ_max comes out 0 or an ulp off by rounding, and
    β_c is 0 there either way (top and interval form), not the next eigenvalue's bound; just below
    α_c that bound holds. Exact MAML's zero curvature at α = 1/λ_max still imposes no bound."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        spectrum = np.sort(np.exp(rng.uniform(-5.0, 5.0, 6)))[::-1]
        top, lowest = spectrum[:3], spectrum[-1]
        alpha_c = bounds.alpha_critical(spectrum, model, steps)
        assert bounds.beta_critical(alpha_c, spectrum, model, steps) == 0.0, spectrum
        assert bounds.beta_critical_interval(alpha_c, top, lowest, model=model, steps=steps) == 0.0, spectrum
        assert 0 < bounds.beta_critical(alpha_c * (1 - 1e-9), spectrum, model, steps) < np.inf
        assert 0 < bounds.beta_critical(1.0 / spectrum.max(), spectrum, "exact", steps) < np.inf


# --- the interval (full-spectrum) form: top k eigenvalues plus an interval holding the rest ---------


def split(spectrum, k):
    """What Lanczos gives: the k largest, descending, and the smallest eigenvalue."""
    ordered = np.sort(spectrum)[::-1]
    return ordered[:k], ordered[-1]


@pytest.mark.parametrize("model,steps", CASES)
def test_interval_bound_never_exceeds_the_full_spectrum_bound(model, steps):
    rng = np.random.default_rng(5)
    alphas = np.r_[0.0, np.geomspace(1e-3, 3.0, 200)]
    for _ in range(200):
        spectrum = np.r_[rng.uniform(-0.5, 0.1, rng.integers(0, 3)), np.exp(rng.uniform(-3, 2, rng.integers(2, 40)))]
        k = int(rng.integers(1, spectrum.size))
        top, lowest = split(spectrum, k)
        full = bounds.beta_critical(alphas, spectrum, model, steps)
        guaranteed = bounds.beta_critical_interval(alphas, top, lowest, model=model, steps=steps)
        assert np.all(guaranteed <= full * (1 + 1e-12)), (spectrum, k)
        assert np.all(guaranteed >= 0) and np.array_equal(guaranteed == 0, full == 0)


@pytest.mark.parametrize("model,steps", CASES)
def test_interval_bound_is_the_full_bound_of_a_spectrum_that_fills_the_interval(model, steps):
    rng = np.random.default_rng(6)
    top = np.array([9.0, 7.0, 6.5, 5.0])
    alphas = np.r_[0.0, rng.uniform(0.0, 0.3, 50)]
    guaranteed = bounds.beta_critical_interval(alphas, top, 0.2, model=model, steps=steps)
    dense = np.r_[top, np.linspace(0.2, 5.0, 100_001)]
    np.testing.assert_allclose(guaranteed, bounds.beta_critical(alphas, dense, model, steps), rtol=1e-8)
    # Exactly equal once the spectrum holds the maximiser of c over the interval, α by α.
    for a, bound in zip(alphas, guaranteed):
        maximiser = np.clip(bounds.curvature_peak(a, model, steps), 0.2, 5.0)
        assert bounds.beta_critical(a, np.r_[top, 0.2, 5.0, maximiser], model, steps) == pytest.approx(bound, rel=1e-12)


def test_top_k_alone_overestimates_once_the_peak_is_below_the_top_k():
    spectrum = np.array([10.0, 9.0, 8.0, 7.0, 6.0, 3.3, 1.0, 0.1])
    top, lowest = split(spectrum, 5)
    alpha = 0.1  # exact MAML's c = λ(1 − αλ)² peaks at λ = 1/(3α) ≈ 3.3, among the dropped eigenvalues
    top_only = float(bounds.beta_critical(alpha, top, "exact"))
    full = float(bounds.beta_critical(alpha, spectrum, "exact"))
    assert top_only == pytest.approx(2 / (6.0 * 0.4**2)) and full == pytest.approx(2 / (3.3 * 0.67**2))
    assert top_only > 1.4 * full
    assert bounds.beta_critical_interval(alpha, top, lowest, model="exact") == pytest.approx(full, rel=1e-3)
    # At small α the peak lies above the top k, and the top k alone are right.
    assert bounds.beta_critical(0.01, top, "exact") == bounds.beta_critical(0.01, spectrum, "exact")


def test_interval_conventions():
    top = np.array([4.0, 2.0])
    # Non-positive eigenvalues impose no bound: an interval at or below 0 adds nothing ...
    np.testing.assert_array_equal(bounds.beta_critical_interval([0.0, 0.1], top, -3.0, 0.0),
                                  bounds.beta_critical([0.0, 0.1], top))
    # ... and one reaching below 0 counts from 0: c = λ there, so at α = 0 the top k decide.
    assert bounds.beta_critical_interval(0.0, top, -3.0) == 0.5
    # Beyond α_c (c < 0 along λ_max) no β works, whatever the interval.
    assert bounds.beta_critical_interval(0.3, top, 1.0) == 0.0
    # c < 0 inside the interval alone: the interval may reach up to top's smallest, 2 > 1/α = 1.8.
    assert bounds.beta_critical_interval(1 / 1.8, [2.0], 0.5, 2.0) == 0.0
    # The default upper end is min(top), and the interval may be a single point.
    assert bounds.beta_critical_interval(0.2, top, 1.0) == bounds.beta_critical_interval(0.2, top, 1.0, 2.0)
    assert bounds.beta_critical_interval(0.2, top, 2.0, 2.0) == bounds.beta_critical(0.2, top)
    assert bounds.beta_critical_interval(np.zeros((2, 3)), top, 1.0).shape == (2, 3)


@pytest.mark.parametrize("model,steps", CASES)
def test_curvature_peak_is_the_symbolic_maximiser(model, steps):
    c = sym.curvature_expr(model, steps)
    peak = sp.nsimplify(float(bounds.curvature_peak(1.0, model, steps)))
    assert sp.simplify(sp.diff(c, sym.lam).subs({sym.lam: peak / sym.alpha})) == 0
    assert sp.simplify(sp.diff(c, sym.lam, 2).subs({sym.lam: peak / sym.alpha})) < 0
    assert bounds.curvature_peak(0.0, model, steps) == np.inf
    np.testing.assert_allclose(bounds.curvature_peak([0.5, 2.0], model, steps), [2 * float(peak), float(peak) / 2], rtol=1e-12)
