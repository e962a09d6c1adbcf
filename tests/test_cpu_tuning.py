"""The training-time CPU settings take effect inside their scope and are undone after it."""
import resource

import pytest
import torch
from torch.func import vmap

from mamlpaper import cpu_tuning, maml, mlp_adaptation, problems

DENORMAL = 1e-40  # below float32's smallest normal number (1.2e-38)


def _survives(value: float) -> bool:
    return float(torch.tensor(value, dtype=torch.float32) * 1.0) != 0.0


def test_denormals_flushed_inside_only():
    assert _survives(DENORMAL)
    with cpu_tuning.flushed_denormals():
        assert not _survives(DENORMAL)
    assert _survives(DENORMAL)


def test_denormal_flag_restored_after_an_error():
    with pytest.raises(RuntimeError), cpu_tuning.training_settings():
        raise RuntimeError("interrupted")
    assert _survives(DENORMAL)


@pytest.mark.skipif(cpu_tuning._LIBC is None, reason="glibc malloc tuning only")
def test_retained_heap_stops_a_sweeps_page_faults():
    problem = problems.sinusoid(seed=0)
    params = {k: v.float().expand(128, *v.shape).clone() for k, v in maml.parameters_of(problem.model).items()}
    tasks = problem.sample_tasks(torch.Generator().manual_seed(0)).to(dtype=torch.float32)
    step = vmap(mlp_adaptation.second_order_meta_gradient(problem.model), in_dims=(0, None, 0))
    alphas = torch.full((128,), 1e-2)

    def faults(warm=3, rounds=5):
        for _ in range(warm):
            step(params, tasks, alphas)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            step(params, tasks, alphas)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    # glibc's documented static defaults (128 KiB): every wide activation is mapped afresh and
    # page-faulted in on each step. (Its dynamic default reuses blocks only some of the time.)
    cpu_tuning._LIBC.mallopt(cpu_tuning._M_MMAP_THRESHOLD, 128 * 1024)
    cpu_tuning._LIBC.mallopt(cpu_tuning._M_TRIM_THRESHOLD, 128 * 1024)
    plain = faults()
    with cpu_tuning.retained_heap():
        retained = faults()
    assert retained < plain / 10, (plain, retained)
