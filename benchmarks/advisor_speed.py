"""Wall time of one ``advisor.advise`` call: a recommendation over 10 values of α, both estimators.

Sinusoid: the paper's ReLU MLP 1-40-40-1 (d = 1761) on a meta-batch of 100 tasks × 10 + 10 points,
exact one-step MAML. ``--conv4``: Finn et al.'s Conv4 (64 filters, d ≈ 112 k) on Omniglot-shaped
random images, 5-way 1-shot with 15 queries, two inner steps, ``--conv4-tasks`` tasks, float32
products at a 1 % Lanczos residual, with estimator (b) only at the recommended α and then at every α
of the table. The MLP's time is one call after a warm-up call (the first pays for imports and
allocator growth), Conv4's its calls after that; the target in issue #10 is seconds for the MLP
and under a minute for Conv4 on a laptop CPU.
"""
from __future__ import annotations

import argparse
import time

import torch

from mamlpaper import advisor, models, tasks
from mamlpaper.fewshot.conv4 import conv4, cross_entropy
from mamlpaper.tasks import Tasks

CONV4_TOL = 1e-2
"""Conv4's Lanczos tolerance (float32 products): a residual of 1 % of λ puts λ within ~1e-4·λ²/gap, far inside the safety margin of 0.5."""


def timed(call, warm_up: bool) -> tuple[float, advisor.Advice]:
    if warm_up:
        call()
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def sinusoid(device: torch.device):
    generator = torch.Generator().manual_seed(0)
    model = models.mlp(generator, widths=(1, 40, 40, 1), activation="relu").to(device)
    batch = tasks.sinusoid(generator, n_tasks=100, n_support=10, n_query=10)
    return lambda: advisor.advise(model, batch, variant="second", steps=1)


def omniglot_like(n_tasks: int, device: torch.device, ways: int = 5, shots: int = 1, queries: int = 15):
    generator = torch.Generator().manual_seed(0)
    model = conv4(generator, ways).to(device)

    def side(per_class):
        images = torch.rand(n_tasks, ways * per_class, 1, 28, 28, generator=generator)
        labels = torch.arange(ways).repeat_interleave(per_class).expand(n_tasks, -1).contiguous()
        return images, labels

    batch = Tasks(*side(shots), *side(queries))
    return lambda direct: advisor.advise(model, batch, criterion=cross_entropy, variant="second", steps=2,
                                         tol=CONV4_TOL, dtype="float32", direct=direct)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--conv4", action="store_true", help="also time Conv4 on Omniglot-shaped images")
    parser.add_argument("--conv4-tasks", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="where the model and every product run (cpu, cuda)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    seconds, advice = timed(sinusoid(device), warm_up=True)
    print(f"sinusoid MLP (d = 1761, 100 tasks), 10 α, both estimators: {seconds:.2f} s")
    print(advice)
    if args.conv4:
        call = omniglot_like(args.conv4_tasks, device)
        for direct in advisor.DIRECT[::-1]:
            seconds, advice = timed(lambda: call(direct), warm_up=False)
            print(f"Conv4 (Omniglot-shaped, {args.conv4_tasks} tasks, 2 inner steps), 10 α, direct estimator at "
                  f"{'every α' if direct == 'grid' else 'the recommended α'}: {seconds:.1f} s")
            print(advice)


if __name__ == "__main__":
    main()
