"""Property-based tests (hypothesis) of the shape checks and the grid helpers.

Each property states what holds for every input of a kind, valid or broken, rather than for
the few hand-picked cases of the other tests.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mamlpaper import _checks, plotting, problems
from mamlpaper.tasks import Tasks, check_tasks

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.integers(min_value=1, max_value=4)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def regression_shapes(draw):
    t, ns, nq, f, o = (draw(sizes) for _ in range(5))
    return {"x_support": (t, ns, f), "y_support": (t, ns, o), "x_query": (t, nq, f), "y_query": (t, nq, o)}


def make(shapes: dict, dtypes: dict | None = None) -> Tasks:
    dtypes = dtypes or {}
    return Tasks(**{name: torch.zeros(shape, dtype=dtypes.get(name, torch.float64)) for name, shape in shapes.items()})


@SETTINGS
@given(regression_shapes())
def test_every_consistent_regression_layout_is_accepted(shapes):
    tasks = make(shapes)
    assert check_tasks(tasks) is tasks


@SETTINGS
@given(regression_shapes(), st.sampled_from(["x_support", "y_support", "x_query", "y_query"]),
       st.sampled_from(["drop_last_axis", "add_axis", "tasks", "points", "trailing"]), sizes)
def test_every_inconsistent_layout_is_refused_and_named(shapes, field, change, extra):
    shape = list(shapes[field])
    if change == "drop_last_axis":
        shape = shape[:-1]
    elif change == "add_axis":
        shape = shape + [extra]
    elif change == "tasks":
        shape[0] += extra
    elif change == "points":
        shape[1] += extra
    else:
        shape[-1] += extra
    broken = dict(shapes, **{field: tuple(shape)})
    # a trailing-axis change that both sides share is still a valid layout; only a mismatch is an error
    assume(not (change == "trailing" and broken[field[0] + "_support"][2:] == broken[field[0] + "_query"][2:]))
    with pytest.raises(ValueError) as info:
        check_tasks(make(broken))
    assert str(info.value).startswith("tasks") and "\n" not in str(info.value)


@SETTINGS
@given(regression_shapes(), st.sampled_from(["x_support", "y_support", "x_query", "y_query"]),
       st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_a_single_non_finite_value_anywhere_is_refused(shapes, field, bad):
    tasks = make(shapes)
    getattr(tasks, field).view(-1)[-1] = bad
    with pytest.raises(ValueError, match=f"tasks.{field} has non-finite values"):
        check_tasks(tasks)


@SETTINGS
@given(sizes, sizes, sizes, st.integers(min_value=2, max_value=5), st.booleans())
def test_classification_layouts_take_integer_labels_and_images(t, ns, nq, ways, images):
    x_shape = (1, 3, 3) if images else (4,)
    labels = lambda n: torch.randint(0, ways, (t, n), generator=torch.Generator().manual_seed(n))  # noqa: E731
    tasks = Tasks(torch.zeros(t, ns, *x_shape), labels(ns), torch.zeros(t, nq, *x_shape), labels(nq))
    assert check_tasks(tasks) is tasks
    moved = tasks.to(dtype=torch.float64)
    assert moved.y_support.dtype == torch.int64 and moved.x_support.dtype == torch.float64


distinct_rates = st.lists(positive, min_size=1, max_size=12, unique=True)


@SETTINGS
@given(distinct_rates)
def test_grid_keeps_any_distinct_positive_rates_as_given(values):
    np.testing.assert_array_equal(_checks.grid("g", values), np.asarray(values, dtype=np.float64))


@SETTINGS
@given(distinct_rates, st.data())
def test_grid_refuses_any_repeat(values, data):
    repeated = data.draw(st.sampled_from(values))
    position = data.draw(st.integers(min_value=0, max_value=len(values)))
    with pytest.raises(ValueError, match="g=.* entries must be distinct"):
        _checks.grid("g", values[:position] + [repeated] + values[position:])


@SETTINGS
@given(distinct_rates, st.sampled_from([0.0, -1.0, float("nan"), float("inf"), "0.1", True, None]), st.data())
def test_grid_refuses_any_bad_entry(values, bad, data):
    position = data.draw(st.integers(min_value=0, max_value=len(values)))
    with pytest.raises(ValueError, match="^g="):
        _checks.grid("g", values[:position] + [bad] + values[position:])


@SETTINGS
@given(distinct_rates)
def test_grid_edges_put_every_value_strictly_inside_its_own_cell(values):
    values = sorted(values)
    assume(np.all(np.diff(np.log(values)) > 1e-9))  # a float exists strictly between neighbours
    edges = plotting.grid_edges(values)
    assert edges.shape == (len(values) + 1,)
    assert np.all(edges[:-1] < values) and np.all(np.asarray(values) < edges[1:])


@SETTINGS
@given(st.integers(min_value=-6, max_value=2), st.integers(min_value=0, max_value=4),
       st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=9),
       st.sets(st.integers(min_value=1, max_value=9), min_size=1))
def test_paper_grid_is_every_mantissa_times_a_power_of_ten_in_range(k_low, decades, m_low, m_high, mantissas):
    low, high = float(f"{m_low}e{k_low}"), float(f"{m_high}e{k_low + decades}")
    assume(low <= high)
    grid = problems.paper_grid(low, high, mantissas=tuple(mantissas))
    expected = sorted(float(f"{m}e{k}") for k in range(k_low, k_low + decades + 1) for m in mantissas
                      if low <= float(f"{m}e{k}") <= high)
    np.testing.assert_array_equal(grid, expected)
    assert np.all(np.diff(grid) > 0)


@SETTINGS
@given(st.integers(min_value=-10**6, max_value=10**6), st.sampled_from([int, np.int8, np.int32, np.int64, np.uint16]))
def test_integer_accepts_every_integral_type_in_range_and_nothing_else(value, kind):
    assume(kind is int or np.iinfo(kind).min <= value <= np.iinfo(kind).max)
    typed = kind(value)
    if value >= 0:
        assert _checks.integer("n", typed, minimum=0) == value
    else:
        with pytest.raises(ValueError, match="^n="):
            _checks.integer("n", typed, minimum=0)
    for other in (float(value), str(value), bool(value % 2), np.bool_(value % 2)):
        with pytest.raises(ValueError, match="^n="):
            _checks.integer("n", other)


@SETTINGS
@given(st.floats(allow_nan=True, allow_infinity=True), st.booleans())
def test_rate_accepts_exactly_the_finite_non_negative_numbers(value, allow_zero):
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    for form in (value, np.float64(value), torch.tensor(value, dtype=torch.float64)):
        if ok:
            assert _checks.rate("r", form, allow_zero=allow_zero) == value
        else:
            with pytest.raises(ValueError, match="^r="):
                _checks.rate("r", form, allow_zero=allow_zero)
