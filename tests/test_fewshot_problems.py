"""Few-shot problems in the sweep: the accuracy readout against a by-hand computation, the collapse
rule, and the Omniglot problem on the real shared subset."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mamlpaper import maml, metaproblem, problems, sweep
from mamlpaper.fewshot import conv4, episodes, readout

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_problem(seed=0, classes=7):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (classes, 6, 28, 28), generator=g, dtype=torch.uint8).numpy()
    sampler = episodes.EpisodeSampler(images, ways=3, shots=1, queries=2, tasks_per_batch=2, dtype=torch.float64)
    model = conv4.conv4(torch.Generator().manual_seed(seed), 3, filters=4).double()
    return metaproblem.MetaProblem("tiny", model, sampler, criterion=conv4.cross_entropy, readout=readout.ADAPTED_ACCURACY)


def test_adapted_accuracy_is_the_query_accuracy_after_the_inner_steps():
    problem = tiny_problem()
    params, tasks = maml.parameters_of(problem.model), problem.sample_tasks(torch.Generator().manual_seed(1))
    alpha = torch.tensor(0.5, dtype=torch.float64)
    got = readout.adapted_accuracy(problem, params, tasks, alpha, 2)
    loss = maml.functional_loss(problem.model, conv4.cross_entropy)
    accuracies, distinct = [], []
    for xs, ys, xq, yq in zip(*tasks):
        adapted = maml.adapt(loss, params, xs, ys, alpha, 2)
        predicted = torch.func.functional_call(problem.model, adapted, (xq,)).argmax(1)
        accuracies.append(float((predicted == yq).double().mean()))
        distinct.append(len(set(predicted.tolist())))
    assert float(got["query_accuracy"]) == pytest.approx(np.mean(accuracies), abs=1e-12)
    assert float(got["predicted_classes"]) == pytest.approx(np.mean(distinct), abs=1e-12)


def test_a_classifier_that_predicts_one_class_everywhere_is_collapsed():
    problem = tiny_problem()
    with torch.no_grad():
        problem.model.head.weight.zero_()
        problem.model.head.bias.copy_(torch.tensor([0.0, 1e3, 0.0]))
    table = sweep.run_sweep(problem, [0.0, 1e-3], [1e-6], iterations=1, progress=False)
    assert (table.predicted_classes == 1.0).all() and table.collapsed.all() and not table.diverged.any()
    healthy = sweep.run_sweep(tiny_problem(), [0.0, 0.1], [1e-3], iterations=1, progress=False)
    assert (healthy.predicted_classes > 1).all() and not healthy.collapsed.any()
    assert healthy.query_accuracy.between(0, 1).all()


@pytest.mark.skipif(not (SHARED / "omniglot").is_dir() and "MAMLPAPER_DATA" not in os.environ,
                    reason="needs the Omniglot subset (../shared/data/omniglot or $MAMLPAPER_DATA)")
def test_omniglot_problem_on_the_real_subset_trains_in_the_sweep(monkeypatch):
    if "MAMLPAPER_DATA" not in os.environ:
        monkeypatch.setenv("MAMLPAPER_DATA", str(SHARED))
    problem = problems.omniglot(tasks_per_batch=2, queries=1, filters=4)
    assert problem.spec["classes"] == 612 and problem.data_identity
    batch = problem.sample_tasks(torch.Generator().manual_seed(0))
    assert batch.x_support.shape == (2, 5, 1, 28, 28) and batch.y_query.dtype == torch.int64
    table = sweep.run_sweep(problem, [0.0, 0.4], [1e-3], iterations=2, steps=2, optimizer="adam",
                            dtype="float32", progress=False)
    assert table.loss_final.notna().all() and table.query_accuracy.between(0, 1).all()
    assert {"query_accuracy", "predicted_classes", "collapsed"} <= set(table.columns)
