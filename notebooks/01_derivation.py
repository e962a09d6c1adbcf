# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 — The derivation, step by step
#
# This notebook retraces the theory of *Role of Two Learning Rates in Convergence of
# Model-agnostic Meta-learning* in SymPy, in the paper's order: the MAML gradient and its
# simplification (Eq. 3–7), the Hessian of the simplified loss (Appendix B), the
# eigen-decomposition argument that gives α_c and β_c(α) (Eq. 9–19), the three curvature
# models that the paper's single formula hides, the multi-task condition (Eq. 23–26) and the
# majorization argument of Appendix D, which we find does not reach its conclusion (with a
# counterexample and a corrected condition). Every step is checked by an `assert`, symbolically
# where SymPy can, on random matrices where it cannot. It ends with Fig. 2.
#
# The expressions are built by `mamlpaper.symbolic`; the numbers the other notebooks use come
# from `mamlpaper.bounds`, and this notebook checks that the two agree.
#
# It carries more code than prose, on purpose: the SymPy cells *are* the derivation, each step of
# the paper written once as an expression and checked by an assert, so the prose between them
# says what each step means rather than restating it.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
seed: int = 0  # seeds every random check
device: str = "auto"  # unused here (no tensors), kept so every notebook takes the same parameters
figures_dir: str = "figures"  # where PNG + PDF go, relative to the repository root

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sympy as sp
from IPython.display import Math, display

from mamlpaper import appendix_d, bounds, plotting, runtime
from mamlpaper import symbolic as sym
from mamlpaper.symbolic import alpha, beta, lam

runtime.check_profile(profile)
plotting.use_style()
figures_path = runtime.resolve_path(figures_dir)
rng = np.random.default_rng(seed)
n_trials = {"smoke": 3, "default": 20, "paper": 200}[profile]

# %% [markdown]
# ## Eq. 1–4: the MAML gradient and the simplified gradient
#
# One inner step θ' = θ − α g(θ) (Eq. 1), then the meta-gradient ∇_θ L(θ') (Eq. 2). To see the
# general structure we take a *generic* smooth loss of θ ∈ ℝ²: every monomial up to degree 3
# with its own symbolic coefficient, so its gradient g, Hessian H and third-derivative tensor
# T are all non-trivial.

# %%
L, params = sym.generic_loss(dim=2, degree=3)
g = sym.gradient(L, params)
H = sym.hessian(L, params)
display(sp.Eq(sp.Symbol("L"), L, evaluate=False))

theta_1 = sym.adapted_point(L, params, steps=1)
g_at_adapted = g.subs(dict(zip(params, theta_1)), simultaneous=True)
maml_exact = sym.maml_gradient(L, params, "second")

# Eq. 3: the chain rule, ∇_θ L(θ') = (I − αH(θ)) g(θ').
assert sp.expand(maml_exact - (sp.eye(2) - alpha * H) * g_at_adapted) == sp.zeros(2, 1)

# %% [markdown]
# Eq. 4 keeps the Jacobian (I − αH) but evaluates the gradient at θ instead of θ':
# the *simplified* gradient g − αHg. First-order MAML (FOMAML) does the opposite: it drops the
# Jacobian and keeps g(θ'). The two agree to first order in α, and both differ from exact MAML
# already at first order: exact MAML's α-coefficient is −2Hg, theirs is −Hg.

# %%
simplified = sym.maml_gradient(L, params, "simplified")
first_order = sym.maml_gradient(L, params, "first")
assert sp.expand(simplified - (g - alpha * H * g)) == sp.zeros(2, 1)
assert sp.expand(sym.alpha_coefficient(first_order, 1) + H * g) == sp.zeros(2, 1)
assert sp.expand(sym.alpha_coefficient(maml_exact, 1) + 2 * H * g) == sp.zeros(2, 1)
assert sp.expand(first_order - simplified) != sp.zeros(2, 1)  # they differ at O(α²) on a cubic

# %% [markdown]
# ## Eq. 5–7: a negative gradient penalty — and a factor of 2
#
# Because ∇(½ gᵀg) = Hg, the simplified gradient is the *exact* gradient of
# L − (α/2) gᵀg (Eq. 5). The paper then reads the same loss as the Taylor expansion of
# L(θ − αg) (Eq. 6–7), which gives L − α gᵀg, whose gradient is g − 2αHg. The two readings
# differ by a factor 2 in front of the penalty; near a minimum that is the difference between
# curvature λ − αλ² and λ − 2αλ² (the "simplified" and "penalty" models below).

# %%
assert sp.expand(sym.gradient((g.T * g)[0] / 2, params) - H * g) == sp.zeros(2, 1)
assert sp.expand(sym.gradient(sym.penalty_loss(L, params, sp.Rational(1, 2)), params) - simplified) == sp.zeros(2, 1)

maml_loss = L.subs(dict(zip(params, theta_1)), simultaneous=True)
taylor = sym.alpha_coefficient(maml_loss, 0) + alpha * sym.alpha_coefficient(maml_loss, 1)
assert sp.expand(taylor - sym.penalty_loss(L, params, 1)) == 0  # Eq. 7: L − α gᵀg
penalty = sym.maml_gradient(L, params, "penalty")
assert sp.expand(penalty - (g - 2 * alpha * H * g)) == sp.zeros(2, 1)
display(sp.Eq(sp.Symbol("L_penalty"), L - alpha * sp.Symbol("g^T g"), evaluate=False))

# %% [markdown]
# ## Appendix B: the Hessian of the simplified loss
#
# Differentiating g − αHg once more gives H̃ = H − α(Tg + H²), with (Tg)_ij = Σ_k T_ijk g_k.
# The literal penalty L − α gᵀg has twice the correction, H − 2α(Tg + H²).

# %%
Tg = sym.third_derivative_contraction(L, params, g)
H_simplified = sym.hessian(sym.penalty_loss(L, params, sp.Rational(1, 2)), params)
H_penalty = sym.hessian(sym.penalty_loss(L, params, 1), params)
assert sp.expand(H_simplified - (H - alpha * (Tg + H * H))) == sp.zeros(2, 2)
assert sp.expand(H_penalty - (H - 2 * alpha * (Tg + H * H))) == sp.zeros(2, 2)
assert Tg != sp.zeros(2, 2)

# %% [markdown]
# At a stationary point θ* the gradient vanishes, so Tg = 0 there and the Hessians of the
# three meta-objectives become pure functions of H: exact MAML (I − αH)H(I − αH), simplified
# H − αH², penalty H − 2αH². We check this on the generic loss with its linear terms removed,
# so that θ* = 0 is stationary — no quadratic approximation is assumed.

# %%
L0, params0 = sym.generic_loss(dim=2, degree=3, stationary_origin=True)
at_origin = {p: 0 for p in params0}
H0 = sym.hessian(L0, params0).subs(at_origin)
I2 = sp.eye(2)
expected = {
    "second": (I2 - alpha * H0) * H0 * (I2 - alpha * H0),
    "simplified": H0 - alpha * H0**2,
    "first": (I2 - alpha * H0) * H0,
    "penalty": H0 - 2 * alpha * H0**2,
}
for variant, matrix in expected.items():
    jac = sym.meta_jacobian(L0, params0, variant).subs(at_origin)
    assert sp.expand(jac - matrix) == sp.zeros(2, 2), variant

# %% [markdown]
# ## Eq. 9–11: the condition on α
#
# With Tg dropped (the paper measures it to be small, Appendix C) the simplified Hessian is
# H − αH². H is symmetric, so H = PΛPᵀ with P orthogonal, and H − αH² = P(Λ − αΛ²)Pᵀ: its
# eigenvalues are λ_i − αλ_i² on the same eigenvectors. Symbolically for a 2×2 H
# written with a rotation P(φ), numerically for random 3×3 matrices.

# %%
phi = sp.Symbol("phi", real=True)
l1, l2 = sp.symbols("lambda_1 lambda_2", positive=True)
P = sym.rotation_matrix(phi)
Lam = sp.diag(l1, l2)
H_sym = P * Lam * P.T
assert sp.simplify(H_sym - alpha * H_sym**2 - P * (Lam - alpha * Lam**2) * P.T) == sp.zeros(2, 2)
assert sp.simplify(P.T * P) == I2

for _ in range(n_trials):
    eigs = rng.uniform(0.1, 5.0, size=3)
    a = rng.uniform(0.0, 0.5)
    numeric = np.linalg.eigvalsh(sym.curvature_matrix(sym.random_symmetric(rng, 3, eigs), a))
    assert np.allclose(numeric, np.sort(bounds.curvature(eigs, a))), (eigs, a)

# %% [markdown]
# θ* stays a minimum of the simplified loss iff every λ_i − αλ_i² > 0 (Eq. 9–10). Solving that
# inequality for α gives α < 1/λ_i, so α_c = 1/λ_max (Eq. 11).

# %%
alpha_c = sym.alpha_critical_expr("simplified")
display(sp.Eq(sp.Symbol("alpha_c"), alpha_c))
assert sp.simplify(alpha_c - 1 / lam) == 0

# %% [markdown]
# ## Eq. 12–19: the condition on β
#
# In the eigenbasis v = Pᵀ(θ − θ*) the simplified loss is ½ vᵀ(Λ − αΛ²)v, and gradient descent
# with rate β moves each coordinate independently: v(t+1) = (1 − βc) v(t) with
# c = λ − αλ² (Eq. 15). SymPy solves that recurrence ...

# %%
trajectory, t, v0 = sym.meta_gd_solution()
display(sp.Eq(sp.Function("v")(t), trajectory))
assert sp.simplify(trajectory - v0 * (1 - beta * sym.c) ** t) == 0

# %% [markdown]
# ... which converges iff |1 − βc| < 1 (Eq. 16). For c > 0 the solution is 0 < β < 2/c
# (Eq. 17–18); with c = λ − αλ² this is β_c(α) = 2/(λ − αλ²), and over all eigenvalues the
# minimum of these (Eq. 19).

# %%
interval = sym.stable_beta_interval()
display(interval)
assert interval == sp.Interval.open(0, 2 / sym.c)
beta_c = sym.beta_critical_expr("simplified")
display(sp.Eq(sp.Symbol("beta_c"), beta_c))
assert sp.simplify(beta_c - 2 / (lam - alpha * lam**2)) == 0

# %% [markdown]
# ### β_c(α) grows with α
#
# At α = 0 (plain gradient descent) β_c = 2/λ_max (LeCun et al., 1998). Each eigenvalue's
# 2/(λ − αλ²) increases on (0, 1/λ) and diverges at α = 1/λ, so the minimum over eigenvalues
# only grows: β_c(α) ≥ β_c(0) for all α < α_c, and close to α_c the largest eigenvalue no
# longer matters. Which one takes over? At α ≈ 1/λ_max eigenvalue λ contributes
# 2/(λ(1 − λ/λ_max)), smallest at λ = λ_max/2. So the second-largest eigenvalue sets β_c when
# it is at most half the largest — the usual picture of a Hessian with a few outliers above a
# bulk — but with crowded eigenvalues (1, 2, 3, 4, 5) it is the middle ones.

# %%
assert sp.limit(beta_c, alpha, 1 / lam, "-") == sp.oo
assert sym.is_positive_on(sp.diff(beta_c, alpha), alpha, 1 / lam) is True
assert sym.is_positive_on(beta_c - beta_c.subs(alpha, 0), alpha, 1 / lam) is True
assert sym.is_positive_on(-sp.diff(beta_c, alpha), alpha, 1 / lam) is False

spread = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
a_c = bounds.alpha_critical(spread)
assert a_c == 1 / spread.max()
assert bounds.beta_critical(0.0, spread) == 2 / spread.max()
near = 0.999 * a_c
assert np.isclose(bounds.beta_critical(near, spread), 2 / (8.0 - near * 8.0**2))  # set by the second-largest, 8
assert bounds.beta_critical(near, spread) > 3 * bounds.beta_critical(0.0, spread)

crowded = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
near = 0.999 * bounds.alpha_critical(crowded)
per_eigenvalue = [float(bounds.beta_critical(near, [l])) for l in crowded]
assert int(np.argmin(per_eigenvalue)) in (1, 2)  # λ = 2 or 3, not the second-largest 4

# %% [markdown]
# ## Three curvature models
#
# The paper's formula is one of three, depending on which update is run. For the quadratic
# L = λθ²/2 — exactly the situation of linear regression — every meta-gradient is linear in θ,
# and its coefficient is the effective curvature c(λ, α) that replaces λ − αλ² above. We
# derive it from each update, for k inner steps:
#
# * simplified g − αHg, and first-order MAML: λ(1 − αλ)^k (for k steps "simplified" keeps the
#   Jacobian of the whole inner loop and takes the gradient at θ; FOMAML does the reverse),
# * the literal penalty L − α gᵀg (one step): λ − 2αλ²,
# * exact second-order MAML: λ(1 − αλ)^{2k}.

# %%
for k in (1, 2, 3):
    display(sp.Eq(sp.Symbol(f"nabla_second_{k}"), sym.quadratic_meta_gradient("second", k)))
    assert sp.simplify(sym.quadratic_meta_gradient("first", k) - sym.quadratic_meta_gradient("simplified", k)) == 0

closed_forms = {("penalty", 1): lam - 2 * alpha * lam**2}
for k in (1, 2, 3):
    closed_forms["simplified", k] = lam * (1 - alpha * lam) ** k
    closed_forms["exact", k] = lam * (1 - alpha * lam) ** (2 * k)
for (model, k), form in closed_forms.items():
    derived = sym.curvature_expr(model, k)
    display(sp.Eq(sp.Symbol(f"c_{model}_{k}"), derived))
    assert sp.simplify(derived - form) == 0, (model, k)

# %% [markdown]
# The α limit is where a curvature first turns negative; β_c = 2/c below it. The simplified
# model (odd k) stops at 1/λ, the penalty model at 1/(2λ). Exact MAML has no α limit at all:
# its curvature λ(1 − αλ)^{2k} only touches 0 at α = 1/λ and is positive again beyond — so
# α_c = 1/λ_max is a property of the simplified / first-order update, not of MAML itself.

# %%
expected_alpha_c = {("simplified", 1): 1 / lam, ("simplified", 2): sp.oo, ("simplified", 3): 1 / lam,
                    ("penalty", 1): 1 / (2 * lam), ("exact", 1): sp.oo, ("exact", 2): sp.oo, ("exact", 3): sp.oo}
for (model, k), expected_value in expected_alpha_c.items():
    derived_alpha_c = sym.alpha_critical_expr(model, k)
    display(sp.Eq(sp.Symbol(f"alpha_c_{model}_{k}"), derived_alpha_c))
    assert derived_alpha_c == expected_value, (model, k)
assert sp.limit(sym.beta_critical_expr("penalty"), alpha, 1 / (2 * lam), "-") == sp.oo
assert sp.limit(sym.beta_critical_expr("exact"), alpha, 1 / lam) == sp.oo

# %% [markdown]
# With several parameters, a diagonal quadratic ½ Σ λ_i θ_i² gets one such curvature per
# eigenvalue on the diagonal of the meta-Jacobian:

# %%
lams3 = sp.symbols("lambda_1:4", positive=True)
L_diag, params_diag = sym.quadratic_loss(sp.diag(*lams3))
for model, k in closed_forms:
    jac = sym.meta_jacobian(L_diag, params_diag, sym.DEFINING_VARIANT[model], k)
    curv = sym.curvature_expr(model, k)
    assert sp.simplify(jac - sp.diag(*[curv.subs(lam, li) for li in lams3])) == sp.zeros(3, 3), (model, k)

# %% [markdown]
# `mamlpaper.bounds` holds the same forms in NumPy for the experiments. They must equal these
# derivations: compare on random points.

# %%
for (model, k) in closed_forms:
    c_num = sp.lambdify((lam, alpha), sym.curvature_expr(model, k), "numpy")
    b_num = sp.lambdify((lam, alpha), sym.beta_critical_expr(model, k), "numpy")
    a_num = sp.lambdify(lam, sym.alpha_critical_expr(model, k), "numpy")
    lams = rng.uniform(0.1, 10.0, size=n_trials)
    alphas = rng.uniform(0.0, 0.3, size=n_trials)
    curv = bounds.curvature(lams, alphas, model, k).diagonal()
    assert np.allclose(curv, c_num(lams, alphas)), (model, k)
    positive = curv > 0
    bc = np.array([bounds.beta_critical(a, [l], model, k) for a, l in zip(alphas, lams)])
    assert np.allclose(bc[positive], b_num(lams, alphas)[positive]) and np.all(bc[~positive] == 0)
    assert np.isclose(bounds.alpha_critical(lams, model, k), np.min(np.broadcast_to(a_num(lams), lams.shape)))

# %% [markdown]
# ### Where the curvature peaks, and why β_c can keep rising with α
#
# For a fixed α > 0, c(λ, α) is not increasing in λ: it rises from 0, peaks at some λ*, and falls
# back to 0 at λ = 1/α (1/(2α) for the penalty model; beyond it an odd power turns negative). So
# the eigenvalue that limits β need not be the largest: once λ* < λ_max, an eigenvalue near λ* is
# steeper in the meta-objective than λ_max itself. Setting ∂c/∂λ = 0 gives λ* = 1/((k + 1)α) for
# λ(1 − αλ)^k, 1/((2k + 1)α) for exact MAML and 1/(4α) for the penalty model. The height of the
# peak, c(λ*, α), falls as 1/α (α·c(λ*, α) is a constant): so wherever the spectrum holds λ* (a
# network's Hessian has a dense bulk below its top eigenvalues), β_c = 2/c(λ*, α) grows in
# proportion to α. For exact MAML, which has no α_c, that is why its β_c can keep rising with α
# instead of ending at a cliff. It is also the worst case `bounds.beta_critical_interval` assumes
# when only the top eigenvalues and a range for the rest are known (the advisor's estimator (a)),
# so `bounds.curvature_peak` must be this maximiser.

# %%
for (model, k) in closed_forms:
    curvature = sym.curvature_expr(model, k)
    stationary = sp.solve(sp.diff(curvature, lam), lam)
    peak, = [r for r in stationary if sp.simplify(sp.diff(curvature, lam, 2).subs(lam, r)).is_negative]
    display(sp.Eq(sp.Symbol(f"lambda*_{model}_{k}"), peak))
    assert alpha not in sp.simplify(alpha * curvature.subs(lam, peak)).free_symbols  # c(λ*, α) ∝ 1/α
    peak_alphas = np.geomspace(1e-3, 1.0, 7)
    assert np.allclose(bounds.curvature_peak(peak_alphas, model, k), sp.lambdify(alpha, peak)(peak_alphas),
                       rtol=1e-12, atol=0), (model, k)

# %% [markdown]
# ## Eq. 23–26: several tasks
#
# The meta-objective averages the task losses, so its Hessian is the average of the
# H_T − αH_T², which are not simultaneously diagonalizable. The paper's condition asks every
# eigenvalue of every task to satisfy the single-task bounds. That is sufficient because the
# eigenvalues of an average lie between the smallest and the largest eigenvalue of its terms
# (Weyl): if all task curvatures are in (0, 2/β), so are the averaged ones.

# %%
n_tasks, dim = 4, 5
for _ in range(n_trials):
    task_eigs = rng.uniform(0.1, 3.0, size=(n_tasks, dim))
    hessians = np.stack([sym.random_symmetric(rng, dim, e) for e in task_eigs])
    a = rng.uniform(0.0, 0.95) * bounds.alpha_critical(task_eigs)
    b = 0.99 * float(bounds.beta_critical(a, task_eigs))
    per_task = bounds.curvature(task_eigs, a)
    averaged = np.linalg.eigvalsh(sym.curvature_matrix(hessians, a).mean(axis=0))
    assert per_task.min() - 1e-12 <= averaged.min() and averaged.max() <= per_task.max() + 1e-12
    assert np.max(np.abs(1 - b * averaged)) < 1  # every mode of the averaged meta-update contracts

# %% [markdown]
# It is only sufficient: two tasks whose large eigenvalue lies on different axes can each
# violate α < 1/λ_max while θ* is still a minimum of their average.

# %%
h_tasks = np.array([np.diag([5.0, 2.0]), np.diag([2.0, 5.0])])
a = 0.21
assert a > bounds.alpha_critical(np.array([[5.0, 2.0], [2.0, 5.0]]))
assert bounds.beta_critical(a, np.array([[5.0, 2.0], [2.0, 5.0]])) == 0.0
assert np.all(np.linalg.eigvalsh(sym.curvature_matrix(h_tasks, a).mean(axis=0)) > 0)

# %% [markdown]
# ## Appendix D: keeping Tg
#
# With Tg kept, H̃ = A + B with A = H − αH² and B = −αTg, which do not commute. Lidskii's
# theorem (Eq. 37) bounds the spectrum of the sum: λ↓(A) + λ↑(B) ≺ λ(A + B), where x ≺ y means
# the descending partial sums of x never exceed those of y and the totals agree (Eq. 38–39).
# We check it on random symmetric matrices, together with the direction that must fail.

# %%
for _ in range(n_trials):
    hess = sym.random_symmetric(rng, 6, rng.uniform(0.0, 2.0, size=6))
    tg = 0.1 * sym.random_symmetric(rng, 6)
    a = rng.uniform(0.0, 0.4)
    A, B = sym.curvature_matrix(hess, a), -a * tg
    spectrum = np.linalg.eigvalsh(sym.curvature_matrix(hess, a, tg))
    assert np.allclose(spectrum, np.linalg.eigvalsh(A + B))
    assert sym.is_majorized(sym.lidskii_lower(A, B), spectrum)
    assert sym.is_majorized(spectrum, np.linalg.eigvalsh(A)[::-1] + np.linalg.eigvalsh(B)[::-1])
    assert spectrum.min() >= np.linalg.eigvalsh(A).min() + np.linalg.eigvalsh(B).min() - 1e-12  # Weyl, k = d
assert not sym.is_majorized(np.linalg.eigvalsh(A)[::-1] + np.linalg.eigvalsh(B)[::-1], spectrum)

# %% [markdown]
# ### Appendix D does not reach its conclusion
#
# From the majorization the appendix goes on to a condition on α (Eq. 49) and a bound on β
# (Eq. 51). Its steps, with λ_i = λ(H)_i and t_i = λ(Tg)_i both sorted descending (Eq. 41) and
# k the number of eigenvalues of H that are not (assumed) zero:
#
# * Eq. 42–44: partial sums of the majorization; with the top k eigenvalues of A, Tg and A + B
#   each assumed about equal, term by term: λ(A + B)_i ≥ λ(A)_i − αt_i for i ≤ k;
# * Eq. 45: hence λ(H − αH²)_i − αt_i > 0 *for every i* is sufficient for a minimum;
# * Eq. 46: with λ_i = 0 for i > k the tail reads αt_i < 0;
# * Eq. 47: λ(H − αH²)_i = λ_i − αλ_i² is replaced by λ_i − αλ(H)²_min;
# * Eq. 48: rearranged; Eq. 49: λ(H)_min = 0, leaving λ_i − αt_i > 0 for i ≤ k and t_i < 0 below;
# * Eq. 50–51: β < 2/(λ_i − αt_i).
#
# The same steps as SymPy relations (`mamlpaper.appendix_d.paper_steps`), and what holds
# between them:

# %%
steps = appendix_d.paper_steps()
for label, relation in steps.items():
    display(Math(rf"\text{{Eq. {label}:}}\quad {sp.latex(relation)}"))
margin = {label: relation.gts - relation.lts for label, relation in steps.items()}  # each relation is margin > 0
lam_i, lam_min, t_i = appendix_d.lam_i, appendix_d.lam_min, appendix_d.t_i

assert sp.expand(margin["46, i > k"] - margin["45"].subs(lam_i, 0)) == 0  # Eq. 46: Eq. 45 where λ_i = 0
assert sp.expand(margin["48"] - margin["47"]) == 0  # Eq. 48 only rearranges Eq. 47
assert sp.expand(margin["49"] - margin["48"].subs(lam_min, 0)) == 0  # Eq. 49 is Eq. 48 at λ_min = 0
assert sp.expand(margin["51"] - (2 / margin["49"] - beta)) == 0  # Eq. 51: β times Eq. 49's margin below 2

gap = sp.factor(margin["47"] - margin["45"])
display(sp.Eq(sp.Symbol("margin_47 - margin_45"), gap))
assert sp.expand(gap - alpha * (lam_i - lam_min) * (lam_i + lam_min)) == 0
excess = sp.Symbol("s", nonnegative=True)
assert sp.factor(gap.subs(lam_i, lam_min + excess)).is_nonnegative is True  # λ_i ≥ λ_min ≥ 0

# %% [markdown]
# Eq. 47's margin exceeds Eq. 45's by α(λ_i² − λ_min²) ≥ 0: Eq. 45 implies Eq. 47, not the
# other way round. The appendix needs Eq. 47 ⇒ Eq. 45 (the *new* condition must be the stronger
# one), so from Eq. 47 on, the H² term that sets α_c = 1/λ_max in Section 3 is gone: for the top
# k eigenvalues Eq. 49 asks λ_i > αt_i, no limit on α at all when Tg is small. At the point
# λ_i = 2, λ_min = 0, t_i = 0, α = 3/4 the steps disagree:

# %%
point = {lam_i: 2, lam_min: 0, t_i: 0, alpha: sp.Rational(3, 4), beta: sp.Rational(1, 2)}
verdicts = {label: relation.subs(point) for label, relation in steps.items() if "i > k" not in label}
display(verdicts)
assert verdicts == {"45": sp.false, "47": sp.true, "48": sp.true, "49": sp.true, "51": sp.true}

# %% [markdown]
# #### The counterexample
#
# H = diag(2, 0), Tg = diag(0, −10⁻³), α = 0.75. Its spectra meet every assumption of the
# appendix exactly: λ(H)_min = 0, k = 1 (so "the top k eigenvalues are about equal" is true and
# Eq. 43 is Weyl's inequality, no approximation), and the d − k = 1 smallest eigenvalue of Tg is
# negative. Eq. 49 admits it and Eq. 51 allows β < 1. But H − α(Tg + H²) = diag(−1, 7.5·10⁻⁴):
# θ* is a saddle, and meta-gradient descent θ ← θ − β(H − α(Tg + H²))θ with β = 0.5 multiplies
# the first coordinate by 1 + 0.5 = 1.5 at every step. Eq. 46–49 write the tail as "k ≤ i ≤ d",
# which also asks t_1 < 0; Tg = −10⁻³·I meets that reading too and fails the same way.

# %%
ce_hess, ce_tg, ce_alpha, ce_beta = np.diag([2.0, 0.0]), np.diag([0.0, -1e-3]), 0.75, 0.5
ce_steps = 200
theta0 = np.ones(2) / np.sqrt(2)
ce_spectrum = np.linalg.eigvalsh(sym.curvature_matrix(ce_hess, ce_alpha, ce_tg))
ce_norms = appendix_d.meta_gd_norms(ce_hess, ce_tg, ce_alpha, ce_beta, theta0, ce_steps)
literal_tg = -1e-3 * np.eye(2)
display({"Eq. 49 admits": bool(appendix_d.paper_condition(ce_hess, ce_tg, ce_alpha)),
         "Eq. 51 bound": float(appendix_d.paper_beta_bound(ce_hess, ce_tg, ce_alpha)),
         "eigenvalues of H − α(Tg + H²)": ce_spectrum,
         f"‖θ_{ce_steps}‖ / ‖θ_0‖": ce_norms[-1] / ce_norms[0]})

assert appendix_d.paper_condition(ce_hess, ce_tg, ce_alpha)
assert not appendix_d.paper_condition(ce_hess, ce_tg, ce_alpha, equation="45")
assert appendix_d.paper_beta_bound(ce_hess, ce_tg, ce_alpha) == 1.0 and ce_beta < 1.0
assert np.allclose(ce_spectrum, [-1.0, 7.5e-4])
assert ce_norms[-1] / ce_norms[0] > 1e30 and np.isclose(ce_norms[-1] / ce_norms[-2], 1.5)
assert appendix_d.paper_condition(ce_hess, literal_tg, ce_alpha, inclusive=True)
assert 0.5 < appendix_d.paper_beta_bound(ce_hess, literal_tg, ce_alpha, inclusive=True)
assert np.linalg.eigvalsh(sym.curvature_matrix(ce_hess, ce_alpha, literal_tg))[0] < -0.99

# %% [markdown]
# #### A second gap: Eq. 45 for i > k
#
# Eq. 42–44 establish the term-by-term bound for the top k eigenvalues only; Eq. 45 asks it for
# every i. It fails in the tail, where λ(A + B)_d ≥ λ(A)_d + λ_min(B) is all Weyl gives, not
# λ(A)_d + λ_max(B). A positive eigenvalue of Tg on the null space of H makes θ* a saddle at any
# α > 0, and Eq. 45 and 49 still admit it as long as the d − k *smallest* eigenvalues of Tg are
# negative: H = diag(1, 0), Tg = diag(−0.1, 0.1), α = 0.3 (k = 1, so every assumption of the
# appendix holds again). Read literally ("k ≤ i ≤ d"), Eq. 49 also asks t_k < 0; then this needs
# k ≥ 2 and top eigenvalues of Tg that differ, which Eq. 43 assumes away.

# %%
tail_hess, tail_tg, tail_alpha = np.diag([1.0, 0.0]), np.diag([-0.1, 0.1]), 0.3
tail_beta = 0.5 * float(appendix_d.paper_beta_bound(tail_hess, tail_tg, tail_alpha))
tail_norms = appendix_d.meta_gd_norms(tail_hess, tail_tg, tail_alpha, tail_beta, theta0, ce_steps)
assert appendix_d.paper_condition(tail_hess, tail_tg, tail_alpha)
assert appendix_d.paper_condition(tail_hess, tail_tg, tail_alpha, equation="45")
assert np.isclose(np.linalg.eigvalsh(sym.curvature_matrix(tail_hess, tail_alpha, tail_tg))[0], -0.03)
assert tail_norms[-1] > 100 * tail_norms[0]

# %% [markdown]
# #### What holds instead
#
# Weyl's inequality for symmetric A and B, λ_i(A) + λ_min(B) ≤ λ_i(A + B) ≤ λ_i(A) + λ_max(B),
# with A = H − αH² (eigenvalues c_i = λ_i − αλ_i², Section 3) and B = −αTg (λ_min(B) =
# −αλ_max(Tg), λ_max(B) = −αλ_min(Tg)), puts every eigenvalue of H̃ = H − α(Tg + H²) in
#
#   [min_i c_i − αλ_max(Tg),  max_i c_i − αλ_min(Tg)].
#
# H̃ is symmetric, so meta-GD moves each of its eigenvectors independently (Eq. 15–18 with H̃'s
# eigenvalues in place of c) and converges iff they all lie in (0, 2/β). Hence, sufficient:
#
# * θ* is a strict minimum if min_i(λ_i − αλ_i²) > αλ_max(Tg);
# * meta-GD then converges for every β < 2/(max_i(λ_i − αλ_i²) − αλ_min(Tg)).
#
# Both ends move by at most α‖Tg‖₂, so min_i c_i > α‖Tg‖₂ and β < 2/(max_i c_i + α‖Tg‖₂) is a
# simpler (stronger) sufficient condition. With Tg = 0 both reduce to Section 3's Eq. 10 and 19.
# The counterexample fails it (min_i c_i = −1). At α = 0.25 the same H and Tg give a minimum that
# it cannot certify (λ_max(Tg) = 0 on the null space of H: it is only sufficient), while
# Tg = −10⁻³·I passes it.

# %%
corrected = appendix_d.corrected_steps()
display(corrected["condition"], corrected["beta"])
no_tg = {appendix_d.t_max: 0, appendix_d.t_min: 0, appendix_d.lam_i: lam}
assert sp.simplify(corrected["lower"].subs(no_tg) - sym.curvature_expr("simplified")) == 0
assert sp.simplify(corrected["upper"].subs(no_tg) - sym.curvature_expr("simplified")) == 0
assert sp.simplify(2 / corrected["upper"].subs(no_tg) - beta_c) == 0

assert not appendix_d.corrected_condition(ce_hess, ce_tg, ce_alpha)
assert not appendix_d.corrected_condition(tail_hess, tail_tg, tail_alpha)
safe_alpha = 0.25
assert not appendix_d.corrected_condition(ce_hess, ce_tg, safe_alpha)  # only sufficient: λ_max(Tg) = 0 ...
assert np.all(np.linalg.eigvalsh(sym.curvature_matrix(ce_hess, safe_alpha, ce_tg)) > 0)  # ... yet a minimum
safe_beta = 0.9 * float(appendix_d.corrected_beta_bound(ce_hess, literal_tg, safe_alpha))
assert appendix_d.corrected_condition(ce_hess, literal_tg, safe_alpha) and safe_beta > 0
safe_norms = appendix_d.meta_gd_norms(ce_hess, literal_tg, safe_alpha, safe_beta, theta0, ce_steps)
assert np.all(np.diff(safe_norms) < 0)

for _ in range(n_trials):
    hess = sym.random_symmetric(rng, 5)
    tg = 0.3 * sym.random_symmetric(rng, 5)
    a = rng.uniform(0.0, 0.5)
    lower, upper = appendix_d.weyl_interval(hess, tg, a)
    spectrum = np.linalg.eigvalsh(sym.curvature_matrix(hess, a, tg))
    assert lower - 1e-12 <= spectrum.min() and spectrum.max() <= upper + 1e-12

# %% [markdown]
# #### On random instances
#
# How often does the paper's condition admit a diverging run, and does the corrected one ever?
# `appendix_d.random_instances` draws problems that meet the appendix's assumptions exactly
# (H positive semi-definite of rank k < d with λ_i = 0 below, d = 4; Tg small beside H², its
# eigenvalues in [−1, 0.5]·s with s between 10⁻³ and 0.3 of λ_max; α uniform in (0, 1.5/λ_max)).
# Each instance is run at β = u × the bound it is tested against, u uniform in (0, 1): a user who
# follows the bound. "Unstable" is ρ(I − βH̃) ≥ 1: meta-GD does not converge from every start.
# The corrected condition is also tried on a general family (any symmetric H and Tg).

# %%
n_instances = {"smoke": 2000, "default": 20000, "paper": 200000}[profile]
r_hess, r_tg, r_alpha = appendix_d.random_instances(rng, n_instances, dim=4)
u = rng.uniform(size=n_instances)
r_lmax = np.linalg.eigvalsh(r_hess)[:, -1]
is_minimum = np.linalg.eigvalsh(sym.curvature_matrix(r_hess, r_alpha[:, None, None], r_tg))[:, 0] > 0
eq45 = appendix_d.paper_condition(r_hess, r_tg, r_alpha, equation="45")


def unstable_admitted(hess, tg, alphas, admitted, bound):
    """Which admitted instances do not converge at β = u × bound."""
    radius = appendix_d.spectral_radius(hess, tg, alphas, np.where(admitted, u * bound, 1.0))
    return admitted & (radius >= 1)


rows, unstable = {}, {}
for reading, inclusive in [("Eq. 49, tail i > k (prose)", False), ("Eq. 49, tail k ≤ i (literal)", True)]:
    admitted = appendix_d.paper_condition(r_hess, r_tg, r_alpha, inclusive=inclusive)
    bound = appendix_d.paper_beta_bound(r_hess, r_tg, r_alpha, inclusive=inclusive)
    bad = unstable_admitted(r_hess, r_tg, r_alpha, admitted, bound)
    unstable[reading] = bad
    rows[reading] = {"admitted": admitted.sum(), "unstable": bad.sum(), "unstable / admitted": bad.sum() / admitted.sum(),
                     "of which α > 1/λ_max": (bad & (r_alpha * r_lmax > 1)).sum(),
                     "of which Eq. 45 rejects (H² step)": (bad & ~eq45).sum(),
                     "of which Eq. 45 admits (tail)": (bad & eq45).sum(),
                     "of which a minimum (β too large)": (bad & is_minimum).sum()}
corrected_admitted = appendix_d.corrected_condition(r_hess, r_tg, r_alpha)
corrected_bad = unstable_admitted(r_hess, r_tg, r_alpha, corrected_admitted,
                                  appendix_d.corrected_beta_bound(r_hess, r_tg, r_alpha))
rows["corrected (Weyl)"] = {"admitted": corrected_admitted.sum(), "unstable": corrected_bad.sum(),
                            "unstable / admitted": corrected_bad.sum() / corrected_admitted.sum()}
g_hess, g_tg, g_alpha = appendix_d.random_instances(rng, n_instances, dim=4, family="general")
g_admitted = appendix_d.corrected_condition(g_hess, g_tg, g_alpha)
g_bad = unstable_admitted(g_hess, g_tg, g_alpha, g_admitted, appendix_d.corrected_beta_bound(g_hess, g_tg, g_alpha))
rows["corrected (Weyl), general H, Tg"] = {"admitted": g_admitted.sum(), "unstable": g_bad.sum(),
                                           "unstable / admitted": g_bad.sum() / g_admitted.sum()}
appendix_d_table = pd.DataFrame(rows).T
appendix_d_table

# %% [markdown]
# A search over two-dimensional draws (`appendix_d.find_counterexample`: of the draws Eq. 49
# admits, run at half Eq. 51's bound, the one whose meta-GD grows fastest) finds one unaided:

# %%
found = appendix_d.find_counterexample(rng, count=n_instances // 4, dim=2)
found_radius = float(appendix_d.spectral_radius(found.hess, found.tg, found.alpha, found.beta))
display({"λ(H)": np.linalg.eigvalsh(found.hess), "λ(Tg)": np.linalg.eigvalsh(found.tg), "α": found.alpha,
         "α·λ_max": found.alpha * np.linalg.eigvalsh(found.hess)[-1], "β": found.beta,
         "λ(H − α(Tg + H²))": np.linalg.eigvalsh(sym.curvature_matrix(found.hess, found.alpha, found.tg)),
         "ρ(I − βH̃)": found_radius, "Eq. 45 admits": bool(appendix_d.paper_condition(found.hess, found.tg, found.alpha,
                                                                                    equation="45"))})
assert appendix_d.paper_condition(found.hess, found.tg, found.alpha) and found_radius > 1
assert not appendix_d.corrected_condition(found.hess, found.tg, found.alpha)

# %% [markdown]
# The three runs of meta-GD side by side: the counterexample at β = 0.5 (half Eq. 51's bound),
# the tail counterexample at half Eq. 51's bound, and H = diag(2, 0), Tg = −10⁻³·I at α = 0.25,
# where the corrected condition holds, at 0.9 × the corrected bound (its slow mode has
# eigenvalue 2.5·10⁻⁴, so it converges slowly, but it converges).

# %%
fig, ax = plt.subplots()
ax.set_yscale("log")
steps_axis = np.arange(ce_steps + 1)
ax.plot(steps_axis, ce_norms / ce_norms[0], color="C3", label=f"counterexample, β = {ce_beta:g} (Eq. 49, 51 hold)")
ax.plot(steps_axis, tail_norms / tail_norms[0], color="C1", label=f"tail case, β = {tail_beta:.2f} (Eq. 49, 51 hold)")
ax.plot(steps_axis, safe_norms / safe_norms[0], color="C0", label=f"Tg = −1e-3·I, α = {safe_alpha:g}, β = {safe_beta:.2f} (corrected)")
ax.set_xlabel("meta-iteration t")
ax.set_ylabel(r"$\|\theta_t\| / \|\theta_0\|$")
ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
paths = plotting.save(fig, "appendix_d_meta_gd", figures_path)
assert all(p.exists() and p.stat().st_size > 0 for p in paths)

# %%
prose, literal = unstable["Eq. 49, tail i > k (prose)"], unstable["Eq. 49, tail k ≤ i (literal)"]
assert corrected_bad.sum() == 0 and g_bad.sum() == 0  # the corrected condition never admits an unstable instance
assert corrected_admitted.sum() > 0 and g_admitted.sum() > 0  # ... and it is not empty
assert rows["Eq. 49, tail i > k (prose)"]["unstable / admitted"] > 0.2
assert rows["Eq. 49, tail k ≤ i (literal)"]["unstable / admitted"] > 0.2
assert (prose & ~eq45).any() and (literal & ~eq45).any()  # failures of the H² step under both readings
assert (prose & eq45).any()  # and of Eq. 45 itself in the tail
assert not (corrected_admitted & ~is_minimum).any()
runtime.write_results("01_derivation", {
    "notebook": "01_derivation", "profile": profile, "seed": seed,
    "counterexample": {"growth_after_steps": float(ce_norms[-1] / ce_norms[0]), "steps": int(ce_steps),
                       "growth_per_step": float(ce_norms[-1] / ce_norms[-2])},
    "random_instances": {name: {"admitted": int(row["admitted"]), "unstable": int(row["unstable"]),
                                "unstable_fraction": float(row["unstable / admitted"])}
                         for name, row in rows.items()},
}, figures_path)

# %% [markdown]
# So Appendix D's conclusion is wrong, and not by a matter of approximation. The asserts above
# check the qualitative facts; the numbers quoted here are those of seed 0 with the default
# profile (20 000 draws; the table above has the ones for the parameters this notebook ran with).
#
# * **The step that fails is Eq. 46 → 47.** It replaces λ_i − αλ_i² by λ_i − αλ(H)²_min, which is
#   larger, so Eq. 49 follows from the condition it should imply. The H² term — the one that
#   gives α_c = 1/λ_max in the main text — disappears, and Eq. 49 admits any α when Tg is small.
#   The counterexample H = diag(2, 0), Tg = diag(0, −10⁻³), α = 0.75 meets Eq. 49 and every
#   assumption of the appendix exactly, yet H − α(Tg + H²) has the eigenvalue −1, and meta-GD at
#   β = 0.5, half Eq. 51's bound of 1, grows by 1.5 per step: ‖θ_200‖/‖θ_0‖ = 1.2·10³⁵.
# * **Eq. 45 is not established for i > k** either: with a positive eigenvalue of Tg on the null
#   space of H, θ* is a saddle for every α > 0, and Eq. 45 and 49 admit it (H = diag(1, 0),
#   Tg = diag(−0.1, 0.1), α = 0.3: eigenvalue −0.03).
# * **The search found its own counterexample** at the H² step (Eq. 45 rejects it) with
#   α·λ_max = 0.70 < 1: once Tg is kept, dropping αλ_i² matters below 1/λ_max too.
# * **On random instances that meet the appendix's assumptions**, more than half of what Eq. 49
#   admits does not converge at a β below Eq. 51's bound: 9 388 of 16 496 (57 %) with the tail
#   read as the prose says, 4 980 of 11 160 (45 %) read literally. 5 492 and 3 630 of them fail
#   at the H² step (Eq. 45 rejects them), 3 896 and 1 350 in the tail; 5 417 and 3 608 have
#   α > 1/λ_max, which Eq. 49 no longer sees. In every one of them θ* is not a minimum at all.
#   Eq. 51 on its own (a minimum, β too large) never failed here, though it is not sound either:
#   Eq. 50 asks β·(a lower bound of λ(H̃)_i) < 2 where β·λ(H̃)_i < 2 is needed, and the tail's
#   curvature −αλ(Tg)_i is left out, so it can fail when Tg is not small.
# * **The corrected condition** — min_i(λ_i − αλ_i²) > αλ_max(Tg), β < 2/(max_i(λ_i − αλ_i²) −
#   αλ_min(Tg)) — follows from Weyl's inequality in one line and never admitted an unstable
#   instance: 0 of 2 726 admitted on the appendix's family, 0 of 5 222 on general symmetric H and
#   Tg. It is a sufficient condition and a conservative one: where H is singular, as the appendix
#   assumes, it asks for λ_max(Tg) < 0 and misses minima such as the one at α = 0.25 above. What
#   the appendix wanted to show — that a small Tg moves the conditions of Section 3 only a
#   little — holds in this form: by α‖Tg‖₂ at most, at each end of the spectrum.

# %% [markdown]
# ## Fig. 2: β_c(α) for five eigenvalues
#
# Each eigenvalue λ_i has its own curve 2/(λ_i − αλ_i²), diverging at α = 1/λ_i. β must lie
# below all of them and α below α_c = 1/λ_max: the shaded region. At α = 0 the bound is
# 2/λ_max (dashed); near α_c the largest eigenvalue's curve has gone to infinity and λ_3
# sets the bound, which is several times higher. The illustrative eigenvalues double from
# one to the next, so that λ_3 is indeed the one that takes over.

# %%
fig2_eigs = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
fig2_alphas = np.linspace(0.0, 0.3, 1201)[1:]
fig2_alpha_c = bounds.alpha_critical(fig2_eigs)
curves = [np.where(fig2_alphas < 1 / l, bounds.beta_critical(fig2_alphas, [l]), np.nan) for l in fig2_eigs]
envelope = bounds.beta_critical(fig2_alphas, fig2_eigs)
admissible = fig2_alphas < fig2_alpha_c

beta_c_num = sp.lambdify((lam, alpha), beta_c, "numpy")
for l, curve in zip(fig2_eigs, curves):
    below = fig2_alphas < 1 / l
    assert np.allclose(curve[below], beta_c_num(l, fig2_alphas[below]))
assert np.allclose(envelope[admissible], np.nanmin(np.stack(curves), axis=0)[admissible])
assert np.all(envelope[fig2_alphas > fig2_alpha_c] == 0.0)
assert np.isclose(envelope[admissible][-1], curves[3][admissible][-1])  # λ_3 sets β_c next to α_c

fig, ax = plt.subplots()
ax.set_yscale("log")
ax.set_xlim(0.0, fig2_alphas[-1])
ax.set_ylim(0.05, 20.0)
ax.fill_between(fig2_alphas[admissible], 0.05, envelope[admissible], color="0.8", linewidth=0,
                label="admissible (α, β)")
for i, (l, curve) in enumerate(zip(fig2_eigs, curves)):
    plotting.theory_curve(ax, fig2_alphas, curve, label=f"$\\beta_c$ for $\\lambda_{i}={l:g}$", color=f"C{i + 1}")
plotting.beta_line(ax, float(bounds.beta_critical(0.0, fig2_eigs)), label=r"$\beta_c(0)=2/\lambda_{max}$", color="k")
plotting.alpha_line(ax, fig2_alpha_c, label=r"$\alpha_c=1/\lambda_{max}$", color="0.4")
ax.set_xlabel(r"inner learning rate $\alpha$")
ax.set_ylabel(r"$\beta_c(\alpha)$")
ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
paths = plotting.save(fig, "fig2_beta_critical", figures_path)
assert all(p.exists() and p.stat().st_size > 0 for p in paths)
