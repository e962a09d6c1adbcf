"""Chunks of a sweep on other processes: the same table as in-process, failures named, the cache the result store.

The pool's workers are spawned (a fresh interpreter, as Dask's are), so everything a chunk needs
travels with it; float64 runs compared bit for bit against the in-process sweep.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

from mamlpaper import boundary, metaproblem, models, runtime, sweep
from mamlpaper.tasks import Tasks

ALPHAS, BETAS = [0.0, 0.05], [0.01, 0.1, 40.0]
RUN = dict(iterations=4, seeds=2, chunk_size=3, progress=False)


def sine_problem(stop=None):
    """A tiny tanh MLP on sine tasks. ``stop(seed, draws)`` runs before every meta-batch a worker
    draws (never in the test's own process): it may raise, or end the process."""
    model = models.mlp(torch.Generator().manual_seed(0), widths=(1, 6, 1), activation="tanh").double()
    home = os.getpid()
    draws = {}

    def sample(g):
        seed = g.initial_seed()
        draws[seed] = draws.get(seed, 0) + 1
        if stop is not None and os.getpid() != home:
            stop(seed, draws[seed])
        amp = 0.5 + torch.rand(4, 1, 1, generator=g)
        xs, xq = (4 * torch.rand(4, 5, 1, generator=g) - 2 for _ in range(2))
        return Tasks(xs, amp * torch.sin(xs), xq, amp * torch.sin(xq))

    return metaproblem.MetaProblem("sine", model, sample, spec={"widths": [1, 6, 1]})


@pytest.fixture(scope="module")
def in_process():
    return sweep.run_sweep(sine_problem(), ALPHAS, BETAS, **RUN)


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


def test_a_process_pool_gives_the_in_process_table(in_process, pool, tmp_path):
    table = sweep.run_sweep(sine_problem(), ALPHAS, BETAS, executor=pool, cache_dir=tmp_path, **RUN)
    pd.testing.assert_frame_equal(table, in_process, check_exact=True)
    assert in_process.diverged.any() and not in_process.diverged.all()
    assert len(list(tmp_path.rglob("chunk-*.npz"))) == 4  # 12 runs in chunks of 3, saved by the workers


def test_run_each_on_a_pool_equals_in_process(pool):
    runs = ([0.0, 0.05, 0.05], [0.1, 0.01, 40.0], [1, 0, 1])
    kwargs = dict(iterations=4, chunk_size=2, progress=False)
    pd.testing.assert_frame_equal(sweep.run_each(sine_problem(), *runs, executor=pool, **kwargs),
                                  sweep.run_each(sine_problem(), *runs, **kwargs), check_exact=True)


def test_the_callers_default_dtype_travels_with_each_chunk(pool):
    """A sampler's torch.rand draws in the default dtype; a spawned worker starts with float32."""
    found = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32 if found == torch.float64 else torch.float64)
    try:
        here = sweep.run_sweep(sine_problem(), ALPHAS, BETAS, **RUN)
        on_pool = sweep.run_sweep(sine_problem(), ALPHAS, BETAS, executor=pool, **RUN)
    finally:
        torch.set_default_dtype(found)
    pd.testing.assert_frame_equal(on_pool, here, check_exact=True)
    assert not np.array_equal(here.loss_initial, sweep.run_sweep(sine_problem(), ALPHAS, BETAS, **RUN).loss_initial)


def test_the_default_chunk_size_is_measured_on_a_worker_and_changes_nothing(pool):
    run = {**RUN, "chunk_size": None, "iterations": 2}
    pd.testing.assert_frame_equal(sweep.run_sweep(sine_problem(), ALPHAS, BETAS, executor=pool, **run),
                                  sweep.run_sweep(sine_problem(), ALPHAS, BETAS, **run), check_exact=True)


def test_a_boundary_search_runs_its_rounds_on_a_pool(pool):
    options = dict(iterations=4, low=0.01, high=40.0, max_rounds=3, progress=False, chunk_size=2)
    on_pool = boundary.search(sine_problem(), [0.0, 0.05], 2, executor=pool, **options)
    here = boundary.search(sine_problem(), [0.0, 0.05], 2, **options)
    pd.testing.assert_frame_equal(on_pool.intervals, here.intervals, check_exact=True)
    pd.testing.assert_frame_equal(on_pool.runs, here.runs, check_exact=True)


def test_a_dask_local_cluster_gives_the_in_process_table(in_process):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        table = sweep.run_sweep(sine_problem(), ALPHAS, BETAS, executor=client.get_executor(), **RUN)
    pd.testing.assert_frame_equal(table, in_process, check_exact=True)


def fail_on_seed_1(seed, draws):
    if seed == 1:
        raise ValueError("no tasks for seed 1")


def test_a_failing_chunk_is_reported_with_its_runs(pool):
    with pytest.raises(sweep.ChunkFailed, match=r"on a worker: ValueError: no tasks for seed 1") as raised:
        sweep.run_sweep(sine_problem(fail_on_seed_1), ALPHAS, BETAS, executor=pool, **RUN)
    assert "seed=1" in str(raised.value)
    assert isinstance(raised.value.__cause__, ValueError)


def test_a_failing_chunk_in_process_is_reported_the_same_way():
    def fail(g):
        raise ValueError("no tasks")

    problem = sine_problem()
    broken = metaproblem.MetaProblem("sine", problem.model, lambda g: (fail(g) if g.initial_seed() == 1 else
                                                                       problem.sample_tasks(g)), spec=problem.spec)
    with pytest.raises(sweep.ChunkFailed, match=r"chunk 0 of sine \(3 runs: \(α=0, β=0.01, seed=0\), "
                                                r"\(α=0, β=0.01, seed=1\), \(α=0, β=0.1, seed=0\)\) failed: "
                                                r"ValueError: no tasks"):
        sweep.run_sweep(broken, ALPHAS, BETAS, **RUN)


def die_in_chunk_with_seed_1(seed, draws):
    if seed == 1 and draws == 3 and os.path.exists(os.environ["MAMLPAPER_TEST_KILL"]):
        os._exit(9)


def test_a_worker_killed_mid_chunk_leaves_only_whole_chunks_and_a_rerun_completes(tmp_path, monkeypatch):
    runs = ([0.0, 0.05, 0.0, 0.05, 0.0, 0.05], [0.1] * 6, [0, 0, 2, 2, 1, 1])  # the third chunk of two holds seed 1
    kwargs = dict(iterations=4, chunk_size=2, progress=False, cache_dir=tmp_path / "cache")
    marker = tmp_path / "kill"
    marker.touch()
    monkeypatch.setenv("MAMLPAPER_TEST_KILL", str(marker))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as executor, \
            pytest.raises(sweep.ChunkFailed, match=r"chunk \d of sine .* failed on a worker: BrokenProcessPool"):
        sweep.run_each(sine_problem(die_in_chunk_with_seed_1), *runs, executor=executor, **kwargs)
    files = [p for p in kwargs["cache_dir"].rglob("*") if p.is_file()]
    chunks = {p: p.stat().st_mtime_ns for p in files if p.suffix == ".npz"}
    assert all(p.name.startswith("chunk-") for p in chunks) and "chunk-00002.npz" not in {p.name for p in chunks}
    assert [p.suffix for p in files if p not in chunks] == [".json"], "a partial file was left behind"
    marker.unlink()
    with ProcessPoolExecutor(2, mp_context=spawn) as executor:
        table = sweep.run_each(sine_problem(die_in_chunk_with_seed_1), *runs, executor=executor, **kwargs)
    assert all(p.stat().st_mtime_ns == t for p, t in chunks.items()), "a finished chunk was computed again"
    reference = sweep.run_each(sine_problem(), *runs, iterations=4, chunk_size=2, progress=False)
    pd.testing.assert_frame_equal(table, reference, check_exact=True)


def test_an_executor_must_be_able_to_submit():
    with pytest.raises(ValueError, match=r"executor=.* must be None or a concurrent.futures.Executor"):
        sweep.run_sweep(sine_problem(), ALPHAS, BETAS, executor="tcp://localhost:8786", **RUN)


def test_an_executor_is_named_by_one_string(in_process):
    with runtime.executor("") as none:
        assert none is None
    with runtime.executor("processes:2") as pool:
        assert isinstance(pool, ProcessPoolExecutor) and pool._max_workers == 2
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with runtime.executor(cluster.scheduler_address) as remote:
            table = sweep.run_sweep(sine_problem(), ALPHAS, BETAS, executor=remote, **RUN)
    pd.testing.assert_frame_equal(table, in_process, check_exact=True)


def test_a_notebook_executor_stays_open_until_the_kernel_exits(monkeypatch):
    closers = []
    monkeypatch.setattr("atexit.register", closers.append)
    assert runtime.notebook_executor("") is None
    pool = runtime.notebook_executor("processes:1")
    assert pool.submit(abs, -3).result() == 3
    assert len(closers) == 2
    closers[1]()
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(abs, -3)


@pytest.mark.parametrize("address", ["processes:0", "processes:two", "dask", "http://host:8786", "tcp://", 2])
def test_a_malformed_executor_string_is_refused(address):
    with pytest.raises(ValueError, match=r"executor=.* (must be one of|must be a string)"):
        with runtime.executor(address):
            pass
