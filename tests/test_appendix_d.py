"""appendix_d: the paper's Tg-kept condition admits diverging meta-GD; the Weyl condition never does."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from mamlpaper import appendix_d as ad
from mamlpaper import symbolic as sym

HESS, TG, ALPHA, BETA = np.diag([2.0, 0.0]), np.diag([0.0, -1e-3]), 0.75, 0.5
THETA0 = np.ones(2) / np.sqrt(2)


def test_the_counterexample_meets_eq_49_and_diverges():
    assert ad.paper_condition(HESS, TG, ALPHA)
    assert ad.paper_beta_bound(HESS, TG, ALPHA) == 1.0 > BETA
    np.testing.assert_allclose(np.linalg.eigvalsh(sym.curvature_matrix(HESS, ALPHA, TG)), [-1.0, 7.5e-4])
    assert ad.spectral_radius(HESS, TG, ALPHA, BETA) == pytest.approx(1.5)
    norms = ad.meta_gd_norms(HESS, TG, ALPHA, BETA, THETA0, 200)
    assert norms.shape == (201,) and norms[0] == pytest.approx(1.0)
    assert norms[-1] == pytest.approx(1.5**200 / np.sqrt(2), rel=1e-9)


def test_the_counterexample_is_rejected_by_eq_45_and_by_the_corrected_condition():
    assert not ad.paper_condition(HESS, TG, ALPHA, equation="45")
    assert not ad.corrected_condition(HESS, TG, ALPHA)
    assert ad.corrected_beta_bound(HESS, TG, ALPHA) == 0.0


def test_the_literal_reading_of_the_tail_admits_a_variant_of_the_counterexample():
    assert not ad.paper_condition(HESS, TG, ALPHA, inclusive=True)  # asks λ(Tg)_k = 0 < 0
    literal = -1e-3 * np.eye(2)
    assert ad.paper_condition(HESS, literal, ALPHA, inclusive=True)
    assert ad.spectral_radius(HESS, literal, ALPHA, 0.5 * ad.paper_beta_bound(HESS, literal, ALPHA, inclusive=True)) > 1


def test_eq_45_fails_in_the_tail():
    hess, tg, alpha = np.diag([1.0, 0.0]), np.diag([-0.1, 0.1]), 0.3
    assert ad.paper_condition(hess, tg, alpha) and ad.paper_condition(hess, tg, alpha, equation="45")
    assert np.linalg.eigvalsh(sym.curvature_matrix(hess, alpha, tg))[0] == pytest.approx(-0.03)
    assert not ad.corrected_condition(hess, tg, alpha)


@pytest.mark.parametrize("family", ad.FAMILIES)
def test_the_corrected_condition_is_sufficient_on_random_instances(family):
    rng = np.random.default_rng(1)
    hess, tg, alpha = ad.random_instances(rng, 3000, dim=3, family=family)
    spectrum = np.linalg.eigvalsh(sym.curvature_matrix(hess, alpha[:, None, None], tg))
    lower, upper = ad.weyl_interval(hess, tg, alpha)
    assert np.all(lower - 1e-12 <= spectrum[:, 0]) and np.all(spectrum[:, -1] <= upper + 1e-12)
    admitted = ad.corrected_condition(hess, tg, alpha)
    assert admitted.sum() > 100
    assert np.all(spectrum[admitted, 0] > 0)
    beta = rng.uniform(0.01, 0.999, size=admitted.sum()) * ad.corrected_beta_bound(hess, tg, alpha)[admitted]
    assert np.all(ad.spectral_radius(hess[admitted], tg[admitted], alpha[admitted], beta) < 1)
    assert np.all(ad.corrected_beta_bound(hess, tg, alpha)[~admitted] == 0)


def test_the_paper_condition_admits_unstable_random_instances():
    rng = np.random.default_rng(2)
    hess, tg, alpha = ad.random_instances(rng, 3000, dim=3)
    admitted = ad.paper_condition(hess, tg, alpha)
    beta = 0.5 * np.where(admitted, ad.paper_beta_bound(hess, tg, alpha), 1.0)
    unstable = admitted & (ad.spectral_radius(hess, tg, alpha, beta) >= 1)
    assert unstable.sum() > 0.2 * admitted.sum()
    assert not np.any(unstable & ad.corrected_condition(hess, tg, alpha))


def test_random_instances_meet_the_appendix_assumptions():
    hess, tg, alpha = ad.random_instances(np.random.default_rng(3), 200, dim=4)
    assert hess.shape == tg.shape == (200, 4, 4) and alpha.shape == (200,)
    lam = np.linalg.eigvalsh(hess)
    assert np.all(np.abs(lam[:, 0]) < 1e-9) and np.all(lam[:, -1] >= 0.1)  # singular, positive semi-definite
    assert np.all(alpha * lam[:, -1] < 1.5)
    assert np.all(np.abs(np.linalg.eigvalsh(tg)).max(axis=-1) <= 0.3 * lam[:, -1] + 1e-12)


def test_find_counterexample_is_reproducible_and_diverges():
    found = ad.find_counterexample(np.random.default_rng(0), count=500)
    again = ad.find_counterexample(np.random.default_rng(0), count=500)
    assert found is not None and np.array_equal(found.hess, again.hess) and found.beta == again.beta
    assert ad.paper_condition(found.hess, found.tg, found.alpha)
    assert found.beta < ad.paper_beta_bound(found.hess, found.tg, found.alpha)
    norms = ad.meta_gd_norms(found.hess, found.tg, found.alpha, found.beta, THETA0, 100)
    assert norms[-1] > 1e6 * norms[0]


def test_stacks_and_scalars_agree():
    hess, tg, alpha = ad.random_instances(np.random.default_rng(4), 5, dim=3)
    stacked = ad.paper_beta_bound(hess, tg, alpha)
    single = [float(ad.paper_beta_bound(h, t, a)) for h, t, a in zip(hess, tg, alpha)]
    np.testing.assert_array_equal(stacked, single)
    norms = ad.meta_gd_norms(hess, tg, alpha, 0.1, np.ones(3), 3)
    assert norms.shape == (5, 4)
    np.testing.assert_allclose(norms[2], ad.meta_gd_norms(hess[2], tg[2], alpha[2], 0.1, np.ones(3), 3))


def _relation_margin(relation):
    return relation.gts - relation.lts


def test_sympy_steps_lambdified_equal_the_numpy_functions():
    """Eq. 49/51 and the Weyl pair, evaluated eigenvalue by eigenvalue from SymPy, against the package."""
    steps, fixed = ad.paper_steps(), ad.corrected_steps()
    eq45 = sp.lambdify((ad.lam_i, ad.t_i, sym.alpha), _relation_margin(steps["45"]), "numpy")
    eq49 = sp.lambdify((ad.lam_i, ad.t_i, sym.alpha), _relation_margin(steps["49"]), "numpy")
    tail = sp.lambdify(ad.t_i, _relation_margin(steps["49, i > k"]), "numpy")
    eq51 = sp.lambdify((ad.lam_i, ad.t_i, sym.alpha), _relation_margin(steps["51"]) + sym.beta, "numpy")
    lower = sp.lambdify((ad.lam_i, ad.t_max, sym.alpha), fixed["lower"], "numpy")
    upper = sp.lambdify((ad.lam_i, ad.t_min, sym.alpha), fixed["upper"], "numpy")
    for family in ad.FAMILIES:
        hess, tg, alpha = ad.random_instances(np.random.default_rng(5), 400, dim=4, family=family)
        lam, t = np.linalg.eigvalsh(hess)[:, ::-1], np.linalg.eigvalsh(tg)[:, ::-1]
        a = alpha[:, None]
        top = lam > 1e-9
        condition = np.where(top, eq49(lam, t, a) > 0, tail(t) > 0).all(axis=-1)
        np.testing.assert_array_equal(ad.paper_condition(hess, tg, alpha), condition)
        np.testing.assert_array_equal(ad.paper_condition(hess, tg, alpha, equation="45"), (eq45(lam, t, a) > 0).all(-1))
        bound = np.where(condition, np.where(top, eq51(lam, t, a), np.inf).min(axis=-1), 0.0)
        np.testing.assert_allclose(ad.paper_beta_bound(hess, tg, alpha), bound, rtol=1e-12)
        low = lower(lam, t.max(axis=-1, keepdims=True), a).min(axis=-1)
        high = upper(lam, t.min(axis=-1, keepdims=True), a).max(axis=-1)
        np.testing.assert_allclose(ad.weyl_interval(hess, tg, alpha), (low, high), rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(ad.corrected_condition(hess, tg, alpha), low > 0)
        np.testing.assert_allclose(ad.corrected_beta_bound(hess, tg, alpha), np.where(low > 0, 2 / high, 0.0), rtol=1e-12)


def test_the_faulty_step_in_sympy():
    steps = ad.paper_steps()
    margin = {label: _relation_margin(relation) for label, relation in steps.items()}
    assert sp.expand(margin["48"] - margin["47"]) == 0
    assert sp.expand(margin["49"] - margin["48"].subs(ad.lam_min, 0)) == 0
    assert sp.expand(margin["47"] - margin["45"] - sym.alpha * (ad.lam_i**2 - ad.lam_min**2)) == 0
    point = {ad.lam_i: 2, ad.lam_min: 0, ad.t_i: 0, sym.alpha: sp.Rational(3, 4), sym.beta: sp.Rational(1, 2)}
    assert steps["45"].subs(point) == sp.false and steps["49"].subs(point) == sp.true
    assert steps["51"].subs(point) == sp.true


def test_the_corrected_forms_reduce_to_section_3_without_tg():
    fixed = ad.corrected_steps()
    no_tg = {ad.t_max: 0, ad.t_min: 0, ad.lam_i: sym.lam}
    assert sp.simplify(fixed["lower"].subs(no_tg) - sym.curvature_expr("simplified")) == 0
    assert sp.simplify(2 / fixed["upper"].subs(no_tg) - sym.beta_critical_expr("simplified")) == 0
