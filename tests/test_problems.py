"""The paper's problems rebuilt from the spec they carry: the same θ0 and the same first meta-batch,
and a spec that does not describe the problem refused instead of rebuilt as something else; the
closed-form Hessian of the linear-regression task against autograd's."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mamlpaper import hessian, maml, problems
from mamlpaper.runtime import plain

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def assert_same_problem(original, rebuilt, stream_seed):
    """Identical θ0 and first meta-batch of the stream of ``stream_seed``."""
    assert rebuilt.name == original.name and plain(rebuilt.spec) == plain(original.spec)
    theta, again = maml.parameters_of(original.model), maml.parameters_of(rebuilt.model)
    assert theta.keys() == again.keys()
    for name in theta:
        assert torch.equal(theta[name], again[name]), name
    first = original.sample_tasks(torch.Generator().manual_seed(stream_seed))
    second = rebuilt.sample_tasks(torch.Generator().manual_seed(stream_seed))
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.parametrize("original", [
    problems.linear_regression(seed=3, n_points=17),
    problems.sinusoid(seed=2, n_tasks=7, n_support=3, n_query=4, activation="tanh"),
], ids=lambda p: p.name)
def test_from_spec_rebuilds_theta0_and_the_first_meta_batch(original):
    rebuilt = problems.from_spec(original.name, original.spec)
    assert_same_problem(original, rebuilt, stream_seed=5)
    default = problems.PROBLEMS[original.name]()  # seed 0, every other setting at its default
    assert any(not torch.equal(a, b) for a, b in zip(maml.parameters_of(default.model).values(),
                                                     maml.parameters_of(rebuilt.model).values())), \
        "the spec's seed must reach θ0"


def test_from_spec_passes_every_argument_the_spec_records():
    rebuilt = problems.from_spec("sinusoid", problems.sinusoid(seed=1, n_tasks=7, n_support=3, n_query=4).spec)
    batch = rebuilt.sample_tasks(torch.Generator().manual_seed(0))
    assert batch.x_support.shape[:2] == (7, 3) and batch.x_query.shape[:2] == (7, 4)
    assert problems.from_spec("linear_regression", {"seed": 1}).spec == problems.linear_regression(1).spec


@pytest.mark.skipif(not (SHARED / "omniglot").is_dir() and "MAMLPAPER_DATA" not in os.environ,
                    reason="needs the Omniglot subset (../shared/data/omniglot or $MAMLPAPER_DATA)")
def test_from_spec_rebuilds_omniglot_from_a_round_trip_through_json(monkeypatch):
    if "MAMLPAPER_DATA" not in os.environ:
        monkeypatch.setenv("MAMLPAPER_DATA", str(SHARED))
    original = problems.omniglot(seed=1, queries=2, tasks_per_batch=2, filters=4)
    rebuilt = problems.from_spec("omniglot", plain(original.spec))  # rotations as a list, as JSON gives them back
    assert_same_problem(original, rebuilt, stream_seed=3)
    assert rebuilt.data_identity == original.data_identity
    with pytest.raises(ValueError, match=r"spec\['classes'\]=3 is not allowed; the rebuilt omniglot problem records"):
        problems.from_spec("omniglot", {**plain(original.spec), "classes": 3})


def test_from_spec_refuses_an_unknown_name_or_a_spec_that_is_not_the_problem_s():
    with pytest.raises(ValueError, match=r"^name='omniglott' is not allowed; name must be one of linear_regression, "
                                         r"sinusoid, omniglot, miniimagenet$"):
        problems.from_spec("omniglott", {})
    with pytest.raises(ValueError, match=r"^spec=list is not allowed"):
        problems.from_spec("sinusoid", [])
    spec = problems.sinusoid().spec
    with pytest.raises(ValueError, match=r"spec\['bogus'\]=2 is not allowed; the rebuilt sinusoid problem records "
                                         r"'no such entry'"):
        problems.from_spec("sinusoid", {**spec, "bogus": 2})
    with pytest.raises(ValueError, match=r"spec\['widths'\]"):
        problems.from_spec("sinusoid", {**spec, "widths": [1, 64, 64, 1]})
    with pytest.raises(ValueError, match=r"spec\['family'\]='linear_regression' is not allowed"):
        problems.from_spec("sinusoid", {"family": "linear_regression"})


def test_linear_regression_eigenvalues_are_the_autograd_hessian_s_at_any_theta():
    problem = problems.linear_regression(seed=4, n_points=30)
    task = problem.sample_tasks(None)
    got = problems.linear_regression_eigenvalues(task)
    loss = maml.functional_loss(problem.model)
    for shift in (0.0, 3.0):  # quadratic: the same Hessian wherever θ is
        theta = {k: p + shift for k, p in maml.parameters_of(problem.model).items()}
        dense = hessian.dense_hessian(lambda p: loss(p, task.x_support[0], task.y_support[0]), theta)
        np.testing.assert_allclose(got, np.sort(hessian.eigenvalues(dense)), rtol=1e-12)
    assert got[0] > 0 and np.all(np.diff(got) > 0)
    with pytest.raises(ValueError, match=r"^task=x_support of shape \(3, 10, 1\) is not allowed; task must hold one task"):
        problems.linear_regression_eigenvalues(problems.sinusoid(n_tasks=3).sample_tasks(torch.Generator()))


def test_paper_grid():
    np.testing.assert_allclose(problems.paper_grid(5e-3, 2e-2), [5e-3, 6e-3, 7e-3, 8e-3, 9e-3, 1e-2, 2e-2])
    assert len(problems.paper_grid(1e-4, 9e-1)) == 36 and len(problems.paper_grid(1e-2, 9)) == 27
    np.testing.assert_allclose(problems.paper_grid(1e-2, 1.0, mantissas=(1, 2, 5)), [1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"mantissas entry=0 is not allowed"):
        problems.paper_grid(1e-2, 1.0, mantissas=(0, 5))
