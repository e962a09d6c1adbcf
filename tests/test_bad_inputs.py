"""Every public entry point refuses what it cannot handle: one line, naming the parameter, before any work.

One table across the package. Each row is (parameter named in the message, a call that must
raise ``ValueError``). Training and Lanczos entry points are replaced by tripwires while the
table runs, so a check that comes after the first training step fails here.
"""
from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mamlpaper import appendix_d, bounds, diagnostics, hessian, maml, metaopt, models, pipeline, plotting, runtime
from mamlpaper import advisor, metaproblem, problems, stability, sweep, tasks
from mamlpaper import symbolic as sym
from mamlpaper.tasks import Tasks

GOOD = np.array([1.0, 2.0])


def sine_tasks(n_tasks=3, n_points=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, xq = (4 * torch.rand(n_tasks, n_points, 1, generator=g, dtype=torch.float64) - 2 for _ in range(2))
    return Tasks(xs, torch.sin(xs), xq, torch.sin(xq))


def tiny_model():
    return models.mlp(torch.Generator().manual_seed(0), widths=(1, 6, 1), activation="tanh").double()


def problem_with(**changes):
    t = sine_tasks()
    base = metaproblem.MetaProblem("tiny", tiny_model(), lambda g: t, spec={"seed": 0})
    return dataclasses.replace(base, **changes)


def replaced(t: Tasks, **fields) -> Tasks:
    return t._replace(**fields)


def mixed_dtype_model():
    model = nn.Sequential(nn.Linear(1, 2).float(), nn.Linear(2, 1).double())
    return model


T = sine_tasks()
MODEL = tiny_model()
LOSS = maml.functional_loss(MODEL)
PARAMS = maml.parameters_of(MODEL)
PROBLEM = problem_with()
BATCHED_META_GRADIENT = maml.batched_meta_gradient  # the tripwire below replaces the module's name


def meta(tasks_=T, alpha=0.1, params=PARAMS, loss=LOSS, **kwargs):
    return maml.meta_gradient(loss, params, tasks_, alpha, **kwargs)


def run(alphas=(0.1,), betas=(0.1,), problem=PROBLEM, **kwargs):
    return sweep.run_sweep(problem, list(alphas) if isinstance(alphas, tuple) else alphas,
                           list(betas) if isinstance(betas, tuple) else betas,
                           **{"iterations": 2, "progress": False, **kwargs})


def train(alpha=0.1, beta=0.1, **kwargs):
    return sweep.train(PROBLEM, alpha, beta, **{"iterations": 2, **kwargs})


def single_loss(p):
    return LOSS(p, T.x_support[0], T.y_support[0])


def on_axes(draw):
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_yscale("log")
    try:
        return draw(ax)
    finally:
        plt.close(fig)


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
TABLE = sweep.run_sweep(PROBLEM, [0.0, 0.1], [0.1, 1.0], iterations=2, progress=False)

CASES = [
    # maml.meta_gradient: rates, counts, names
    ("alpha", lambda: meta(alpha=True)),
    ("alpha", lambda: meta(alpha="0.1")),
    ("alpha", lambda: meta(alpha=torch.ones(2))),
    ("alpha", lambda: meta(alpha=np.array([0.1, 0.2]))),
    ("alpha", lambda: meta(alpha=float("nan"))),
    ("alpha", lambda: meta(alpha=float("inf"))),
    ("alpha", lambda: meta(alpha=-0.1)),
    ("alpha", lambda: meta(alpha=None)),
    ("steps", lambda: meta(steps=0)),
    ("steps", lambda: meta(steps=1.5)),
    ("steps", lambda: meta(steps=True)),
    ("variant", lambda: meta(variant="third")),
    ("variant", lambda: meta(variant="exact")),
    ("loss", lambda: meta(loss="mse")),
    ("params", lambda: meta(params={})),
    ("params", lambda: meta(params=[PARAMS])),
    ("params", lambda: meta(params={"a": torch.zeros(2, dtype=torch.float32), "b": torch.zeros(2, dtype=torch.float64)})),
    ("params", lambda: meta(params={"w": torch.zeros(2, dtype=torch.int64)})),
    # maml.meta_gradient: the shapes, dtypes and values of the meta-batch
    ("tasks.y_support", lambda: meta(Tasks(T.x_support, T.y_support[..., 0], T.x_query, T.y_query[..., 0]))),
    ("tasks.y_query", lambda: meta(replaced(T, y_query=T.y_query[..., 0]))),
    ("tasks.x_support", lambda: meta(T.to(dtype=torch.float32))),
    ("tasks", lambda: meta(replaced(T, x_support=T.x_support.repeat(1, 1, 2), x_query=T.x_query.repeat(1, 1, 2)))),
    ("tasks", lambda: meta(replaced(T, y_support=T.y_support.repeat(1, 1, 2), y_query=T.y_query.repeat(1, 1, 2)))),
    ("tasks", lambda: meta(replaced(T, x_support=T.x_support[:2], y_support=T.y_support[:2]))),
    ("tasks", lambda: meta(replaced(T, y_support=T.y_support[:, :4]))),
    ("tasks", lambda: meta(tuple(T))),
    ("tasks", lambda: meta(replaced(T, x_query=T.x_query[:0], y_query=T.y_query[:0]))),
    ("tasks.x_query", lambda: meta(replaced(T, x_query=T.x_query[0, :, 0]))),
    ("tasks.x_query", lambda: meta(replaced(T, x_query=T.x_query.clone().fill_(float("nan"))))),
    ("tasks.x_support", lambda: meta(replaced(T, x_support=T.x_support.long()))),
    ("tasks.y_support", lambda: meta(replaced(T, y_support=-torch.ones(3, 5, dtype=torch.long),
                                              y_query=torch.zeros(3, 5, dtype=torch.long)))),
    ("tasks.y_support", lambda: meta(replaced(T, y_support=T.y_support.float(), y_query=T.y_query.float()))),
    ("tasks.y_support", lambda: meta(replaced(T, y_support=T.y_support > 0, y_query=T.y_query > 0))),
    ("tasks", lambda: meta(replaced(T, y_query=torch.zeros(3, 5, dtype=torch.long)))),
    ("tasks.x_support", lambda: meta(replaced(T, x_support="x"))),
    # maml: models and criteria
    ("model", lambda: maml.parameters_of(nn.ReLU())),
    ("model", lambda: maml.parameters_of(mixed_dtype_model())),
    ("model", lambda: maml.functional_loss("net")),
    ("criterion", lambda: maml.functional_loss(MODEL, criterion=3)),
    ("variant", lambda: BATCHED_META_GRADIENT(LOSS, "fomaml", 1)),
    ("steps", lambda: BATCHED_META_GRADIENT(LOSS, "first", np.float64(1))),
    # sweep.run_sweep
    ("cells", lambda: sweep.run_cells(PROBLEM, [], iterations=2)),
    ("cells", lambda: sweep.run_cells(PROBLEM, [0.1, 0.2], iterations=2)),
    ("cells", lambda: sweep.run_cells(PROBLEM, [(0.1, 0.2), (0.1, 0.2)], iterations=2)),
    ("cells' betas", lambda: sweep.run_cells(PROBLEM, [(0.1, 0.0)], iterations=2)),
    ("cells' alphas", lambda: sweep.run_cells(PROBLEM, [(-0.1, 0.2)], iterations=2)),
    ("iterations", lambda: sweep.run_cells(PROBLEM, [(0.1, 0.2)], iterations=0)),
    ("seeds", lambda: run(seeds=0)),
    ("seeds", lambda: run(seeds=True)),
    ("seeds", lambda: run(seeds="3")),
    ("seeds", lambda: run(seeds=[])),
    ("seeds", lambda: run(seeds=[1, 1])),
    ("seeds entry", lambda: run(seeds=[0, -1])),
    ("seeds entry", lambda: run(seeds=[0, 1.5])),
    ("seed", lambda: run(seed=2, seeds=3)),
    ("alphas", lambda: run(alphas=[])),
    ("alphas", lambda: run(alphas=[[0.1]])),
    ("alphas", lambda: run(alphas=[-1.0])),
    ("alphas", lambda: run(alphas="0.1")),
    ("alphas", lambda: run(alphas=[0.1, "a"])),
    ("alphas", lambda: run(alphas=[True, False])),
    ("alphas", lambda: run(alphas={0.1, 0.2})),
    ("alphas", lambda: run(alphas=None)),
    ("betas", lambda: run(betas=[0.0])),
    ("betas", lambda: run(betas=[float("nan")])),
    ("betas", lambda: run(betas=[0.1, 0.2, 0.1])),
    ("betas", lambda: run(betas=[1j])),
    ("iterations", lambda: run(iterations=0)),
    ("iterations", lambda: run(iterations=2.0)),
    ("iterations", lambda: run(iterations=True)),
    ("variant", lambda: run(variant="zeroth")),
    ("optimizer", lambda: run(optimizer="lbfgs")),
    ("optimizer", lambda: run(optimizer=None)),
    ("steps", lambda: run(steps=0)),
    ("seed", lambda: run(seed=-1)),
    ("seed", lambda: run(seed="0")),
    ("chunk_size", lambda: run(chunk_size=0)),
    ("memory_budget", lambda: run(memory_budget=0)),
    ("memory_budget", lambda: run(memory_budget="4GB")),
    ("dtype", lambda: run(dtype="float16")),
    ("dtype", lambda: run(dtype=torch.int32)),
    ("divergence_threshold", lambda: run(divergence_threshold=-1)),
    ("divergence_threshold", lambda: run(divergence_threshold=float("nan"))),
    pytest.param("device", lambda: run(device="cuda"), marks=NO_CUDA),
    ("device", lambda: run(device="tpu")),
    ("device", lambda: run(device=0.5)),
    ("progress", lambda: run(progress="yes")),
    ("cpu_tuning", lambda: run(cpu_tuning=1)),
    ("cache_dir", lambda: run(cache_dir=3)),
    ("problem", lambda: run(problem="sinusoid")),
    ("tasks.y_support", lambda: run(problem=problem_with(
        sample_tasks=lambda g: Tasks(T.x_support, T.y_support[..., 0], T.x_query, T.y_query[..., 0])))),
    ("tasks", lambda: run(problem=problem_with(sample_tasks=lambda g: tuple(T)))),
    ("problem.model", lambda: run(problem=problem_with(
        model=models.mlp(torch.Generator().manual_seed(0), widths=(1, 4, 2)).double(),
        criterion=lambda p, t: ((p - t) ** 2).mean()))),
    # sweep.train and MetaProblem
    ("alpha", lambda: train(alpha=float("nan"))),
    ("beta", lambda: train(beta=0.0)),
    ("beta", lambda: train(beta=True)),
    ("monitor", lambda: train(monitor=5)),
    ("iterations", lambda: train(iterations=np.float32(3))),
    ("name", lambda: problem_with(name="../escape")),
    ("name", lambda: problem_with(name="")),
    ("model", lambda: problem_with(model=nn.Identity())),
    ("sample_tasks", lambda: problem_with(sample_tasks=None)),
    ("criterion", lambda: problem_with(criterion="mse")),
    ("spec", lambda: problem_with(spec=[1])),
    ("cache_token", lambda: problem_with(cache_token="")),
    ("data_identity", lambda: problem_with(data_identity=3)),
    ("readout", lambda: problem_with(readout=("accuracy",))),
    # sweep: grids and tables
    ("mantissas", lambda: problems.paper_grid(1e-2, 1.0, mantissas=(0, 5))),
    ("mantissas", lambda: problems.paper_grid(1e-2, 1.0, mantissas="125")),
    ("mantissas", lambda: problems.paper_grid(1e-2, 1.0, mantissas=())),
    ("low", lambda: problems.paper_grid(1.0, 1e-2)),
    ("low", lambda: problems.paper_grid("1e-3", 1.0)),
    ("high", lambda: problems.paper_grid(1e-3, -1.0)),
    ("table", lambda: stability.measured_beta_critical(TABLE.drop(columns="diverged"))),
    ("table", lambda: stability.measured_beta_critical(TABLE.to_dict())),
    ("table", lambda: stability.measured_beta_critical(pd.concat([TABLE, TABLE]))),
    ("reading", lambda: stability.measured_beta_critical(TABLE, reading="survived")),
    ("table", lambda: stability.as_grid(pd.concat([TABLE.assign(seed=0), TABLE.assign(seed=1)]), "beta")),
    ("column", lambda: stability.as_grid(TABLE, "nope")),
    # stability
    ("failures", lambda: stability.wilson_interval(6, 5)),
    ("failures", lambda: stability.wilson_interval(1.5, 5)),
    ("z", lambda: stability.wilson_interval(1, 5, z=0.0)),
    ("outcome", lambda: stability.failure_probability(TABLE, outcome="collapsed")),
    ("table", lambda: stability.failure_probability(TABLE.drop(columns="seed"))),
    ("table", lambda: stability.claim_ratios(TABLE[TABLE.alpha > 0])),
    ("reading", lambda: stability.claim_ratios(TABLE, reading="all")),
    ("ratios", lambda: stability.claim_summary("2.0")),
    ("threshold", lambda: stability.claim_summary(stability.claim_ratios(TABLE), threshold=-1)),
    ("table", lambda: stability.export_map(TABLE.drop(columns="loss_final"))),
    ("table", lambda: stability.export_map(TABLE.iloc[:0])),
    ("iterations", lambda: stability.export_map(TABLE, iterations=5)),
    ("problem", lambda: stability.export_map(TABLE, problem=float("nan"))),
    ("seeds[1]", lambda: stability.export_map(TABLE, seeds=[0, object()])),
    ("data", lambda: stability.import_map([1])),
    ("data", lambda: stability.import_map({"cells": {}})),
    ("path", lambda: stability.read_maps(3)),
    # tasks, models, metaopt, runtime, pipeline
    ("n_tasks", lambda: tasks.sinusoid(torch.Generator(), n_tasks=0)),
    ("n_support", lambda: tasks.sinusoid(torch.Generator(), n_support=2.5)),
    ("generator", lambda: tasks.sinusoid(0)),
    ("n_points", lambda: tasks.linear_regression(torch.Generator(), n_points=True)),
    ("widths", lambda: models.mlp(torch.Generator(), widths=(1, 0, 1))),
    ("widths", lambda: models.mlp(torch.Generator(), widths=(1, 2.5, 1))),
    ("widths", lambda: models.mlp(torch.Generator(), widths=5)),
    ("activation", lambda: models.mlp(torch.Generator(), activation="gelu")),
    ("generator", lambda: models.linear_model(0)),
    ("optimizer", lambda: metaopt.init_state("rmsprop", PARAMS)),
    ("optimizer", lambda: metaopt.update_rule("Adam")),
    ("profile", lambda: runtime.check_profile("fast")),
    ("threads", lambda: runtime.use_threads(-1, "default")),
    ("threads", lambda: runtime.use_threads(True, "default")),
    ("profile", lambda: runtime.use_threads(1, "fast")),
    pytest.param("device", lambda: runtime.resolve_device("cuda:0"), marks=NO_CUDA),
    ("device", lambda: runtime.resolve_device(3)),
    ("path", lambda: runtime.resolve_path(None)),
    ("notebook", lambda: pipeline.execute("README.md", "build/x.ipynb")),
    ("output", lambda: pipeline.execute("notebooks/01_derivation.py", "build/x.html")),
    ("parameters", lambda: pipeline.execute("notebooks/01_derivation.py", "build/x.ipynb", parameters=[1])),
    # diagnostics and hessian
    ("k", lambda: diagnostics.task_spectrum(LOSS, PARAMS, T, k=0)),
    ("tasks", lambda: diagnostics.task_spectrum(LOSS, PARAMS, tuple(T))),
    ("loss", lambda: diagnostics.task_spectrum("mse", PARAMS, T)),
    ("loss", lambda: diagnostics.task_curvature_operators(None, PARAMS, T)),
    ("loss", lambda: diagnostics.mean_support_loss(1.0, T)),
    ("method", lambda: hessian.hessian_operator(single_loss, PARAMS, method="fwd")),
    ("params", lambda: diagnostics.task_spectrum(LOSS, {}, T)),
    ("loss", lambda: hessian.hessian_operator("loss", PARAMS)),
    ("params", lambda: hessian.hessian_operator(single_loss, {"w": torch.zeros(2, dtype=torch.int64)})),
    ("params", lambda: hessian.dense_hessian(single_loss, {"a": torch.zeros(2, dtype=torch.float32), "b": torch.zeros(2).double()})),
    ("k", lambda: hessian.top_eigenvalues(single_loss, PARAMS, k=0)),
    ("k", lambda: hessian.top_eigenvalues(single_loss, PARAMS, k=19)),
    ("k", lambda: hessian.top_eigenvalues(single_loss, PARAMS, k=2.0)),
    ("which", lambda: hessian.top_eigenvalues(single_loss, PARAMS, which="LR")),
    ("tol", lambda: hessian.top_eigenvalues(single_loss, PARAMS, tol=0.0)),
    ("tol", lambda: hessian.top_eigenvalues(single_loss, PARAMS, tol="1e-8")),
    ("seed", lambda: hessian.top_eigenvalues(single_loss, PARAMS, seed=-1)),
    ("k", lambda: hessian.spectrum(single_loss, PARAMS, k=19)),
    ("tol", lambda: hessian.spectrum(single_loss, PARAMS, tol=-1.0)),
    ("method", lambda: hessian.spectrum(single_loss, PARAMS, method="fwd")),
    ("params", lambda: hessian.spectrum(single_loss, {})),
    ("start", lambda: hessian.top_eigenpair(np.eye(3), start=np.zeros(3))),
    ("start", lambda: hessian.top_eigenpair(np.eye(3), start=np.ones(4))),
    ("tol", lambda: hessian.top_eigenpair(np.eye(3), tol=0.0)),
    ("max_products", lambda: hessian.top_eigenpair(np.eye(3), max_products=0)),
    ("d", lambda: hessian.top_eigenvalues_of(lambda x: x)),
    ("d", lambda: hessian.top_eigenvalues_of(np.eye(3), d=4)),
    ("matrix", lambda: hessian.top_eigenvalues_of(np.zeros((2, 3)))),
    ("operator", lambda: hessian.top_eigenvalues_of("H")),
    ("exact", lambda: hessian.frobenius_norm(np.eye(3), exact="yes")),
    ("samples", lambda: hessian.frobenius_norm(np.eye(3), samples=1)),
    ("d", lambda: hessian.frobenius_norm(lambda x: x, d=0)),
    ("vector", lambda: hessian.unflatten(torch.zeros(5), PARAMS)),
    ("matrix", lambda: hessian.eigenvalues(torch.zeros(2, 3))),
    # advisor: checked before any estimate or warm-up step
    ("model", lambda: advisor.advise(nn.ReLU(), T)),
    ("model", lambda: advisor.advise(mixed_dtype_model(), T)),
    ("model", lambda: advisor.advise("net", T)),
    ("tasks", lambda: advisor.advise(MODEL, tuple(T))),
    ("tasks", lambda: advisor.advise(MODEL, lambda g: tuple(T))),
    ("tasks.y_support", lambda: advisor.advise(MODEL, replaced(T, y_support=T.y_support[..., 0],
                                                               y_query=T.y_query[..., 0]))),
    ("tasks", lambda: advisor.advise(MODEL, replaced(T, x_support=T.x_support.repeat(1, 1, 2),
                                                     x_query=T.x_query.repeat(1, 1, 2)), warmup=3)),
    ("variant", lambda: advisor.advise(MODEL, T, variant="penalty")),
    ("variant", lambda: advisor.advise(MODEL, T, variant="exact")),
    ("steps", lambda: advisor.advise(MODEL, T, steps=0)),
    ("alphas", lambda: advisor.advise(MODEL, T, alphas=[-0.1, 0.1])),
    ("alphas", lambda: advisor.advise(MODEL, T, alphas=[0.0, 0.1])),
    ("alphas", lambda: advisor.advise(MODEL, T, alphas=[])),
    ("alphas", lambda: advisor.advise(MODEL, T, alphas=0.1)),
    ("safety", lambda: advisor.advise(MODEL, T, safety=0.0)),
    ("safety", lambda: advisor.advise(MODEL, T, safety=1.5)),
    ("safety", lambda: advisor.advise(MODEL, T, safety=float("nan"))),
    ("safety", lambda: advisor.advise(MODEL, T, safety="0.5")),
    ("k", lambda: advisor.advise(MODEL, T, k=0)),
    ("seed", lambda: advisor.advise(MODEL, T, seed=-1)),
    ("warmup", lambda: advisor.advise(MODEL, T, warmup=-1)),
    ("warmup_alpha", lambda: advisor.advise(MODEL, T, warmup=3, warmup_alpha=-0.1)),
    ("warmup_beta", lambda: advisor.advise(MODEL, T, warmup=3, warmup_beta=0.0)),
    ("tol", lambda: advisor.advise(MODEL, T, tol=0.0)),
    ("tol", lambda: advisor.advise(MODEL, T, tol=1e-8, dtype="float32")),
    ("tol", lambda: advisor.advise(MODEL, T, tol=1.0)),
    ("dtype", lambda: advisor.advise(MODEL, T, dtype="float16")),
    ("direct", lambda: advisor.advise(MODEL, T, direct="every")),
    ("max_products", lambda: advisor.advise(MODEL, T, max_products=0)),
    ("max_products", lambda: advisor.advise(MODEL, T, max_products=2.5)),
    ("max_products", lambda: advisor.advise(MODEL, T, max_products=True)),
    ("model", lambda: advisor.advise(nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)), T)),
    ("criterion", lambda: advisor.advise(MODEL, T, criterion="mse")),
    ("loss", lambda: advisor.meta_curvature_operator("mse", PARAMS, T, 0.1)),
    ("params", lambda: advisor.meta_curvature_operator(LOSS, {}, T, 0.1)),
    ("tasks", lambda: advisor.meta_curvature_operator(LOSS, PARAMS, tuple(T), 0.1)),
    ("alpha", lambda: advisor.meta_curvature_operator(LOSS, PARAMS, T, -0.1)),
    ("variant", lambda: advisor.meta_curvature_operator(LOSS, PARAMS, T, 0.1, variant="penalty")),
    ("steps", lambda: advisor.meta_curvature_operator(LOSS, PARAMS, T, 0.1, steps=0)),
    # bounds
    ("model", lambda: bounds.curvature(GOOD, 0.1, model="second")),
    ("model", lambda: bounds.alpha_critical(GOOD, model="Exact")),
    ("steps", lambda: bounds.curvature(GOOD, 0.1, steps=0)),
    ("steps", lambda: bounds.beta_critical(0.1, GOOD, steps=1.0)),
    ("steps", lambda: bounds.beta_critical(0.1, GOOD, steps=True)),
    ("steps", lambda: bounds.alpha_critical(GOOD, model="penalty", steps=2)),
    ("alpha", lambda: bounds.curvature(GOOD, -0.1)),
    ("alpha", lambda: bounds.beta_critical(np.inf, GOOD)),
    ("alpha", lambda: bounds.beta_critical(np.nan, GOOD)),
    ("alpha", lambda: bounds.curvature(GOOD, [])),
    ("alpha", lambda: bounds.curvature(GOOD, True)),
    ("eigenvalues", lambda: bounds.curvature([], 0.1)),
    ("eigenvalues", lambda: bounds.curvature([1.0, np.nan], 0.1)),
    ("eigenvalues", lambda: bounds.alpha_critical([1.0, np.inf])),
    ("eigenvalues", lambda: bounds.alpha_critical([-1.0, 0.0])),
    ("eigenvalues", lambda: bounds.curvature(["a"], 0.1)),
    ("eigenvalues", lambda: bounds.curvature([1j], 0.1)),
    ("eigenvalues", lambda: bounds.curvature("12", 0.1)),
    ("upper", lambda: bounds.beta_critical_interval(0.1, GOOD, 0.0, 1.5)),
    ("upper", lambda: bounds.beta_critical_interval(0.1, GOOD, 0.0, np.inf)),
    ("lower", lambda: bounds.beta_critical_interval(0.1, GOOD, 1.5, 1.0)),
    ("lower", lambda: bounds.beta_critical_interval(0.1, GOOD, 1.5)),
    ("lower", lambda: bounds.beta_critical_interval(0.1, GOOD, np.nan)),
    ("lower", lambda: bounds.beta_critical_interval(0.1, GOOD, "0")),
    ("lower", lambda: bounds.beta_critical_interval(0.1, GOOD, [0.0, 0.5])),
    ("top", lambda: bounds.beta_critical_interval(0.1, [-1.0, 0.0], -2.0)),
    ("top", lambda: bounds.beta_critical_interval(0.1, [], 0.0)),
    ("alpha", lambda: bounds.beta_critical_interval(-0.1, GOOD, 0.0)),
    ("model", lambda: bounds.beta_critical_interval(0.1, GOOD, 0.0, model="second")),
    ("steps", lambda: bounds.beta_critical_interval(0.1, GOOD, 0.0, model="penalty", steps=2)),
    ("alpha", lambda: bounds.curvature_peak(np.nan)),
    ("model", lambda: bounds.curvature_peak(0.1, model="Exact")),
    ("betas", lambda: bounds.predicted_stable([0.1], [0.0], GOOD)),
    ("betas", lambda: bounds.predicted_stable([0.1], [0.2, 0.2], GOOD)),
    ("alphas", lambda: bounds.predicted_stable([-0.1], [1.0], GOOD)),
    ("alphas", lambda: bounds.predicted_stable([[0.1]], [1.0], GOOD)),
    ("betas", lambda: bounds.predicted_stable([0.1], [], GOOD)),
    ("model", lambda: bounds.predicted_stable([0.1], [1.0], GOOD, model="x")),
    ("margin", lambda: bounds.agreement(np.ones((2, 2), bool), np.ones((2, 2), bool), margin=-1)),
    ("margin", lambda: bounds.agreement(np.ones((2, 2), bool), np.ones((2, 2), bool), margin=1.0)),
    ("predicted_stable", lambda: bounds.agreement(np.ones((2, 2)), np.ones((2, 2), bool))),
    ("measured_stable", lambda: bounds.agreement(np.ones((2, 2), bool), np.ones((2, 2), int))),
    ("measured_stable", lambda: bounds.agreement(np.ones((2, 2), bool), np.ones((2, 3), bool))),
    ("predicted_stable", lambda: bounds.agreement(np.ones(4, bool), np.ones(4, bool))),
    ("predicted_stable", lambda: bounds.agreement(np.ones((0, 3), bool), np.ones((0, 3), bool))),
    # symbolic
    ("model", lambda: sym.curvature_expr("second")),
    ("steps", lambda: sym.curvature_expr("exact", 0)),
    ("steps", lambda: sym.curvature_expr("exact", True)),
    ("steps", lambda: sym.beta_critical_expr("penalty", 2)),
    ("steps", lambda: sym.alpha_critical_expr("simplified", 1.5)),
    ("variant", lambda: sym.quadratic_meta_gradient("fomaml")),
    ("variant", lambda: sym.quadratic_meta_gradient("first_order")),
    ("expr", lambda: sym.linear_coefficient(sym.theta**2 + sym.theta, sym.theta)),
    ("expr", lambda: sym.linear_coefficient(sym.theta + 1, sym.theta)),
    ("x", lambda: sym.is_majorized([1.0, 2.0], [1.0])),
    ("x", lambda: sym.is_majorized(["a"], [1.0])),
    # appendix_d
    ("hess", lambda: appendix_d.paper_condition(np.ones((2, 3)), np.eye(2), 0.1)),
    ("hess", lambda: appendix_d.paper_condition(np.array([[1.0, 2.0], [0.0, 1.0]]), np.eye(2), 0.1)),
    ("hess", lambda: appendix_d.corrected_condition(np.ones(3), np.eye(3), 0.1)),
    ("hess", lambda: appendix_d.weyl_interval([[1.0, np.nan], [np.nan, 1.0]], np.eye(2), 0.1)),
    ("tg", lambda: appendix_d.paper_beta_bound(np.eye(2), np.eye(3), 0.1)),
    ("tg", lambda: appendix_d.corrected_beta_bound(np.eye(2), "Tg", 0.1)),
    ("alpha", lambda: appendix_d.paper_condition(np.eye(2), np.eye(2), -0.1)),
    ("alpha", lambda: appendix_d.corrected_condition(np.eye(2), np.eye(2), True)),
    ("alpha", lambda: appendix_d.weyl_interval(np.stack([np.eye(2)] * 3), np.stack([np.eye(2)] * 3), [0.1, 0.2])),
    ("equation", lambda: appendix_d.paper_condition(np.eye(2), np.eye(2), 0.1, equation="47")),
    ("equation", lambda: appendix_d.paper_condition(np.eye(2), np.eye(2), 0.1, equation=49)),
    ("inclusive", lambda: appendix_d.paper_beta_bound(np.eye(2), np.eye(2), 0.1, inclusive="yes")),
    ("threshold", lambda: appendix_d.paper_condition(np.eye(2), np.eye(2), 0.1, threshold=-1.0)),
    ("beta", lambda: appendix_d.spectral_radius(np.eye(2), np.eye(2), 0.1, 0.0)),
    ("beta", lambda: appendix_d.meta_gd_norms(np.eye(2), np.eye(2), 0.1, np.inf, np.ones(2), 3)),
    ("theta0", lambda: appendix_d.meta_gd_norms(np.eye(2), np.eye(2), 0.1, 0.5, np.ones(3), 3)),
    ("steps", lambda: appendix_d.meta_gd_norms(np.eye(2), np.eye(2), 0.1, 0.5, np.ones(2), 0)),
    ("rng", lambda: appendix_d.random_instances(0, 10)),
    ("count", lambda: appendix_d.random_instances(np.random.default_rng(0), 0)),
    ("dim", lambda: appendix_d.random_instances(np.random.default_rng(0), 10, dim=1)),
    ("family", lambda: appendix_d.random_instances(np.random.default_rng(0), 10, family="psd")),
    ("fraction", lambda: appendix_d.find_counterexample(np.random.default_rng(0), fraction=1.0)),
    ("count", lambda: appendix_d.find_counterexample(np.random.default_rng(0), count=2.5)),
    # plotting
    ("alphas", lambda: on_axes(lambda ax: plotting.stability_map(ax, [0.1, 0.1], [1.0], np.ones((1, 2))))),
    ("alphas", lambda: on_axes(lambda ax: plotting.stability_map(ax, [0.2, 0.1], [1.0], np.ones((1, 2))))),
    ("betas", lambda: on_axes(lambda ax: plotting.stability_map(ax, [0.1], ["1"], np.ones((1, 1))))),
    ("values", lambda: on_axes(lambda ax: plotting.stability_map(ax, [0.1], [1.0], np.ones((2, 1))))),
    ("threshold", lambda: on_axes(lambda ax: plotting.stability_map(ax, [0.1], [1.0], np.ones((1, 1)), threshold="a"))),
    ("alpha_c", lambda: on_axes(lambda ax: plotting.alpha_line(ax, -1.0))),
    ("beta", lambda: on_axes(lambda ax: plotting.beta_line(ax, "1", label="b"))),
    ("beta_c", lambda: on_axes(lambda ax: plotting.theory_curve(ax, [0.1, 0.2], [1.0], label="c"))),
    ("mask", lambda: on_axes(lambda ax: plotting.mark_cells(ax, [0.1], [1.0], np.ones((1, 1)), label="m"))),
    ("name", lambda: plotting.save(plt.figure(), "a/b", "build")),
    ("values", lambda: plotting.grid_edges([])),
]


@pytest.fixture
def tripwires(monkeypatch):
    """Training, meta-gradient and Lanczos entry points that fail the test if anything reaches them."""

    def tripped(*args, **kwargs):
        raise AssertionError("work started before the bad input was refused")

    for module, name in [(sweep, "_run_chunk"), (sweep, "_initial_state"), (maml, "batched_meta_gradient"),
                         (sweep, "fastest_meta_gradient"), (hessian, "_lanczos"), (hessian, "_hvp_closure")]:
        monkeypatch.setattr(module, name, tripped)


def _ids():
    return [f"{i:03d}-{case.values[0] if hasattr(case, 'values') else case[0]}" for i, case in enumerate(CASES)]


@pytest.mark.parametrize("parameter, call", CASES, ids=_ids())
def test_bad_input_is_refused_in_one_line_naming_the_parameter_before_any_work(tripwires, parameter, call):
    with pytest.raises(ValueError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text, text
    assert text.startswith(parameter) and text[len(parameter)] in "=: ./ ", text


def test_the_table_is_large():
    assert len(CASES) >= 40


def test_numpy_and_zero_d_torch_scalars_are_accepted_where_python_numbers_are():
    expected_loss, expected = meta(alpha=0.1, steps=1)
    for alpha in (np.float64(0.1), np.array(0.1), torch.tensor(0.1, dtype=torch.float64)):
        loss, grads = meta(alpha=alpha, steps=np.int64(1))
        assert loss == expected_loss and all(torch.equal(grads[k], expected[k]) for k in grads)
    table = run(alphas=np.array([0.0, 0.1]), betas=(np.float32(0.5),), iterations=np.int32(2), seed=np.uint8(0),
                chunk_size=np.int64(128))
    pd.testing.assert_frame_equal(table, run(alphas=[0.0, 0.1], betas=[0.5], iterations=2), check_exact=True)


def test_the_int_targets_case_of_the_issue_is_refused_not_broadcast():
    """(tasks, points) float targets used to broadcast against (points, 1) predictions to (points, points)."""
    flat = Tasks(T.x_support, T.y_support[..., 0], T.x_query, T.y_query[..., 0])
    with pytest.raises(ValueError, match=r"y\.unsqueeze\(-1\)"):
        meta(flat)
    with pytest.raises(ValueError, match="prediction shape"):
        maml.mse(torch.zeros(5, 1), torch.zeros(5))
