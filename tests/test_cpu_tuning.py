"""The training-time CPU settings take effect inside their scope and put back what they found."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mamlpaper import cpu_tuning


@pytest.fixture(params=[False, True], ids=["off-before", "on-before"])
def flushed_before(request):
    """The denormal flag as a caller left it before a scope; off again afterwards."""
    if not torch.set_flush_denormal(request.param) and request.param:
        pytest.skip("this CPU cannot flush denormals")
    assert cpu_tuning.denormals_flushed() == request.param
    yield request.param
    torch.set_flush_denormal(False)


def test_denormals_flushed_inside_and_restored_after(flushed_before):
    with cpu_tuning.flushed_denormals():
        assert cpu_tuning.denormals_flushed()
    assert cpu_tuning.denormals_flushed() == flushed_before


def test_nested_scopes_keep_the_outer_settings(flushed_before):
    with cpu_tuning.training_settings():
        with cpu_tuning.training_settings():
            assert cpu_tuning.denormals_flushed()
        assert cpu_tuning.denormals_flushed(), "the inner scope's exit kept the outer's flag"
    assert cpu_tuning.denormals_flushed() == flushed_before


def test_settings_restored_after_an_error(flushed_before):
    with pytest.raises(RuntimeError), cpu_tuning.training_settings():
        raise RuntimeError("interrupted")
    assert cpu_tuning.denormals_flushed() == flushed_before


def test_disabled_settings_change_nothing(flushed_before):
    with cpu_tuning.training_settings(False):
        assert cpu_tuning.denormals_flushed() == flushed_before
    assert cpu_tuning.denormals_flushed() == flushed_before


def test_enabled_must_be_a_flag():
    with pytest.raises(ValueError, match="enabled='yes' is not allowed"), cpu_tuning.training_settings("yes"):
        pass


# The retained heap is a process-start setting: the Makefile's GLIBC_TUNABLES for the processes
# it starts. A process with glibc's documented static defaults (128 KiB) maps every wide
# activation of a vmapped step afresh and page-faults it in on each step; one started with the
# Makefile's setting does not. Subprocesses keep pytest's own heap untouched.
_FAULTS = """
import json, resource
import torch
from torch.func import vmap
from mamlpaper import maml, mlp_adaptation, problems

problem = problems.sinusoid(seed=0)
params = {k: v.float().expand(128, *v.shape).clone() for k, v in maml.parameters_of(problem.model).items()}
tasks = problem.sample_tasks(torch.Generator().manual_seed(0)).to(dtype=torch.float32)
step = vmap(mlp_adaptation.second_order_meta_gradient(problem.model), in_dims=(0, None, 0))
alphas = torch.full((128,), 1e-2)
torch.set_flush_denormal(True)  # else the slow denormal path dominates the step
for _ in range(3):
    step(params, tasks, alphas)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step(params, tasks, alphas)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""
REPO = Path(cpu_tuning.__file__).resolve().parents[1]


def makefile_tunables() -> str:
    """The GLIBC_TUNABLES value the Makefile exports (its `?=` default)."""
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith("export GLIBC_TUNABLES ?="):
            return line.split("?=", 1)[1].strip()
    raise AssertionError("the Makefile no longer exports GLIBC_TUNABLES")


def page_faults(tunables: str) -> int:
    env = {**os.environ, "GLIBC_TUNABLES": tunables,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tunables only")
def test_the_makefiles_heap_setting_stops_a_sweeps_page_faults():
    plain = page_faults("glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072")
    retained = page_faults(makefile_tunables())
    assert retained < plain / 10, (plain, retained)


def test_a_notebook_thread_setting_uses_the_profile_value_and_an_explicit_count():
    from mamlpaper import runtime

    before = torch.get_num_threads()
    try:
        assert runtime.use_threads(0, "smoke") == 1
        torch.set_num_threads(before)
        assert runtime.use_threads(0, "default") == before
        assert runtime.use_threads(1, "default") == 1
    finally:
        torch.set_num_threads(before)
