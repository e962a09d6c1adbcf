"""Few-shot episodes and Conv4: the sampler's contract, per-task BatchNorm, the exact meta-gradient
against `higher`, a cross-entropy that survives forward-over-reverse, and one-line refusals."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, hessian, jvp, vmap

from mamlpaper import maml
from mamlpaper.fewshot.conv4 import PureBatchNorm2d, accuracy, conv4, cross_entropy
from mamlpaper.models import init_parameters
from mamlpaper.fewshot.episodes import EpisodeSampler
from mamlpaper.tasks import Tasks, check_tasks

CLASSES, PER_CLASS, SIZE = 7, 6, 16


def labelled_images(colour=False, seed=0):
    """Random uint8 images whose pixel (0, 0) holds the class and pixel (0, 1) the example index."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (CLASSES, PER_CLASS, SIZE, SIZE) + ((3,) if colour else ()), dtype=np.uint8)
    channel_axis = [1] if colour else []
    images[:, :, 0, 0] = np.arange(CLASSES).reshape(CLASSES, 1, *channel_axis)
    images[:, :, 0, 1] = np.arange(PER_CLASS).reshape(1, PER_CLASS, *channel_axis)
    return images


def identities(x):
    """(class, example) of every image, read back from the marked pixels."""
    pixels = torch.round(x[:, :, 0, 0, :2] * 255).long()
    return pixels[..., 0], pixels[..., 1]


def tiny_setting(n_tasks=2, seed=0):
    """A float64 Conv4 with 4 filters on 16×16 images, and a 3-way 1-shot 2-query meta-batch."""
    model = conv4(torch.Generator().manual_seed(seed), 3, image_size=SIZE, filters=4).double()
    sampler = EpisodeSampler(labelled_images(), ways=3, shots=1, queries=2, tasks_per_batch=n_tasks,
                             dtype=torch.float64)
    return model, sampler(torch.Generator().manual_seed(seed + 1))


# ---------------------------------------------------------------- the sampler

def test_episodes_have_the_tasks_layout_and_label_each_task_0_to_ways_minus_1():
    ways, shots, queries, n = 3, 2, 3, 5
    t = EpisodeSampler(labelled_images(), ways, shots, queries, n)(torch.Generator().manual_seed(0))
    assert check_tasks(t) is t
    assert t.x_support.shape == (n, ways * shots, 1, SIZE, SIZE)
    assert t.x_query.shape == (n, ways * queries, 1, SIZE, SIZE)
    assert t.x_support.dtype == t.x_query.dtype == torch.float32
    assert t.y_support.dtype == t.y_query.dtype == torch.int64
    assert all(x.is_contiguous() for x in t)
    assert float(t.x_support.min()) >= 0 and float(t.x_support.max()) <= 1
    torch.testing.assert_close(t.y_support, torch.arange(ways).repeat_interleave(shots).expand(n, -1), rtol=0, atol=0)
    torch.testing.assert_close(t.y_query, torch.arange(ways).repeat_interleave(queries).expand(n, -1), rtol=0, atol=0)


def test_each_task_has_distinct_classes_in_random_order_and_disjoint_support_and_query():
    images = labelled_images()
    t = EpisodeSampler(images, 3, 2, 3, 32)(torch.Generator().manual_seed(1))
    (cs, es), (cq, eq) = identities(t.x_support), identities(t.x_query)
    for task in range(32):
        support_class = [set(cs[task][t.y_support[task] == j].tolist()) for j in range(3)]
        query_class = [set(cq[task][t.y_query[task] == j].tolist()) for j in range(3)]
        assert support_class == query_class and all(len(c) == 1 for c in support_class)
        assert len(set.union(*support_class)) == 3
        for j in range(3):
            s, q = es[task][t.y_support[task] == j].tolist(), eq[task][t.y_query[task] == j].tolist()
            assert len(set(s + q)) == len(s) + len(q)
    order = cs[:, ::2]  # the class of labels 0, 1, 2 (two shots each)
    assert not bool((order[:, :-1] < order[:, 1:]).all()), "labels follow the class order: not shuffled per task"
    # the pixels are the array's, divided by 255
    c, e = int(cs[0, 0]), int(es[0, 0])
    torch.testing.assert_close(t.x_support[0, 0, 0], torch.from_numpy(images[c, e]).float() / 255, rtol=0, atol=0)


def test_colour_images_come_out_channels_first_and_float64_when_asked():
    images = labelled_images(colour=True)
    images.flags.writeable = False  # a memory-mapped dataset is read-only; it is never written
    sampler = EpisodeSampler(images, 2, 1, 2, 3, dtype=torch.float64)
    assert sampler.image_shape == (3, SIZE, SIZE)
    t = sampler(torch.Generator().manual_seed(2))
    assert t.x_query.shape == (3, 4, 3, SIZE, SIZE) and t.x_query.dtype == torch.float64
    c, e = identities(t.x_support)
    expected = torch.from_numpy(images[int(c[0, 0]), int(e[0, 0])]).permute(2, 0, 1).double() / 255
    torch.testing.assert_close(t.x_support[0, 0], expected, rtol=0, atol=0)


def test_episodes_are_a_function_of_the_generator():
    sampler = EpisodeSampler(labelled_images(), 3, 1, 2, 4)
    a, b = (sampler(torch.Generator().manual_seed(5)) for _ in range(2))
    c = sampler(torch.Generator().manual_seed(6))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.x_support, c.x_support)


# ---------------------------------------------------------------- the model

def test_conv4_has_the_paper_shapes_and_no_buffers():
    omniglot = conv4(torch.Generator().manual_seed(0), 5)
    mini = conv4(torch.Generator().manual_seed(0), 5, channels=3, image_size=84, filters=32)
    assert omniglot.head.in_features == 64 and mini.head.in_features == 32 * 5 * 5
    assert omniglot(torch.rand(3, 1, 28, 28)).shape == (3, 5) and mini(torch.rand(2, 3, 84, 84)).shape == (2, 5)
    assert list(omniglot.buffers()) == []
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(omniglot.eval()(x), omniglot.train()(x), rtol=0, atol=0)  # batch statistics always


def test_init_is_seeded_and_follows_one_rule_per_layer_type():
    a, b, c = (conv4(torch.Generator().manual_seed(s), 5, filters=8) for s in (0, 0, 1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.block2.conv.weight, c.block2.conv.weight)
    assert float(a.block2.conv.weight.detach().abs().max()) <= 1 / (8 * 9) ** 0.5
    assert torch.equal(a.block3.norm.weight, torch.ones(8)) and torch.equal(a.block3.norm.bias, torch.zeros(8))
    mlp = init_parameters(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)), torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the rule by hand: U(±1/√fan_in), weight then bias, layer by layer
    by_hand = [torch.empty(shape, dtype=p.dtype).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=g)
               for p, (shape, fan_in) in zip(mlp.parameters(), (((4, 3), 3), ((4,), 3), ((2, 4), 4), ((2,), 4)))]
    assert all(torch.equal(p, q) for p, q in zip(mlp.parameters(), by_hand))


def with_native_batchnorm(model):
    """The same network and parameters with torch's own ``nn.BatchNorm2d``: an independent forward."""
    native = copy.deepcopy(model)
    for block in (native.block1, native.block2, native.block3, native.block4):
        block.norm = nn.BatchNorm2d(block.norm.num_features, track_running_stats=False).double()
    native.load_state_dict(model.state_dict())
    return native


def test_pure_batchnorm_is_torchs_batchnorm_in_value_and_derivatives():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    ours = PureBatchNorm2d(3).double()
    init_parameters(ours, g)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5, generator=g)
        ours.bias.uniform_(-1, 1, generator=g)
    native = nn.BatchNorm2d(3, track_running_stats=False).double()
    native.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x), native(x), rtol=1e-12, atol=1e-12)
    cube = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)

    def scalar(module, z):
        return (torch.tanh(module(z)) * cube).sum()

    torch.testing.assert_close(hessian(lambda z: scalar(ours, z))(x), hessian(lambda z: scalar(native, z))(x),
                               rtol=1e-10, atol=1e-12)


def test_conv_biases_before_batchnorm_get_no_meta_gradient():
    """The norm cancels a bias in front of it, so every variant's meta-gradient for it is 0.

    ``nn.BatchNorm2d`` fails this under ``grad(vmap(grad))`` in torch 2.13 (see PureBatchNorm2d).
    """
    model, tasks = tiny_setting()
    params, loss = maml.parameters_of(model), maml.functional_loss(model, cross_entropy)
    alpha = torch.tensor(0.1, dtype=torch.float64)
    for variant in ("second", "first", "simplified"):
        for build in (maml.batched_meta_gradient, maml.looped_meta_gradient):
            _, grads = build(loss, variant, 2)(params, tasks, alpha)
            for i in range(1, 5):
                assert float(grads[f"block{i}.conv.bias"].abs().max()) < 1e-12, (variant, build.__name__, i)


@pytest.mark.parametrize("form", ["batched", "looped"])
def test_conv4_exact_two_step_meta_gradient_matches_higher(form):
    """`higher` unrolls the inner loop with torch.autograd, task by task, on the network with nn.BatchNorm2d.

    batched: vmap over tasks (the batch norm's own formula); looped: the CPU's task loop (torch's kernel).
    """
    higher = pytest.importorskip("higher")
    ours, tasks = tiny_setting()
    alpha, steps = 0.1, 2
    build = maml.batched_meta_gradient if form == "batched" else maml.looped_meta_gradient
    loss, grads = build(maml.functional_loss(ours, cross_entropy), "second", steps)(
        maml.parameters_of(ours), tasks, torch.tensor(alpha, dtype=torch.float64))
    model = with_native_batchnorm(ours)
    inner = torch.optim.SGD(model.parameters(), lr=alpha)
    total = 0.0
    for xs, ys, xq, yq in zip(*tasks):
        context = higher.innerloop_ctx(model, inner, copy_initial_weights=False, track_higher_grads=True)
        with context as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(F.cross_entropy(fmodel(xs), ys))
            query = F.cross_entropy(fmodel(xq), yq) / tasks.n_tasks
            query.backward()
            total += float(query.detach())
    assert float(loss) == pytest.approx(total, rel=1e-10)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-8, atol=1e-12)


def test_batch_statistics_are_per_task_under_vmap():
    model, tasks = tiny_setting()
    loss = maml.functional_loss(model, cross_entropy)
    params = maml.parameters_of(model)
    losses, grads = vmap(lambda x, y: (loss(params, x, y), grad(loss)(params, x, y)))(tasks.x_query, tasks.y_query)
    for i in range(tasks.n_tasks):
        torch.testing.assert_close(losses[i], loss(params, tasks.x_query[i], tasks.y_query[i]), rtol=1e-12, atol=0)
        alone = grad(loss)(params, tasks.x_query[i], tasks.y_query[i])
        for k in params:
            torch.testing.assert_close(grads[k][i], alone[k], rtol=1e-10, atol=1e-13)
    # the statistics are the batch's: pooled over both tasks, task 0's loss would differ
    with torch.no_grad():
        pooled = cross_entropy(model(tasks.x_query.flatten(0, 1))[: tasks.x_query.shape[1]], tasks.y_query[0])
    assert abs(float(pooled) - float(losses[0])) > 1e-6
    # and the exact meta-gradient of the meta-batch is the mean of each task's alone
    both = maml.meta_gradient(loss, params, tasks, 0.1, steps=2)[1]
    alone = [maml.meta_gradient(loss, params, Tasks(*(t[i:i + 1] for t in tasks)), 0.1, steps=2)[1]
             for i in range(tasks.n_tasks)]
    for k in params:
        torch.testing.assert_close(both[k], (alone[0][k] + alone[1][k]) / 2, rtol=1e-10, atol=1e-13)


def test_another_tasks_images_do_not_move_a_tasks_meta_gradient_through_batchnorm():
    model, tasks = tiny_setting()
    loss = maml.functional_loss(model, cross_entropy)
    params = maml.parameters_of(model)
    changed = tasks._replace(x_support=tasks.x_support.clone(), x_query=tasks.x_query.clone())
    changed.x_support[1] = 1 - changed.x_support[1]
    changed.x_query[1] = changed.x_query[1] * 0.5
    per_task = maml.batched_meta_gradient(loss, "second", 2)
    alpha = torch.tensor(0.1, dtype=torch.float64)
    first_task = vmap(lambda t: per_task(params, Tasks(*(x.unsqueeze(0) for x in t)), alpha))
    (la, ga), (lb, gb) = first_task(tasks), first_task(changed)
    torch.testing.assert_close(la[0], lb[0], rtol=1e-12, atol=0)
    assert abs(float(la[1] - lb[1])) > 1e-6
    for k in params:
        torch.testing.assert_close(ga[k][0], gb[k][0], rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------- loss and readout

def test_cross_entropy_equals_torch_in_value_gradient_and_forward_over_reverse():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (7,), generator=g)
    torch.testing.assert_close(cross_entropy(logits, labels), F.cross_entropy(logits, labels), rtol=1e-14, atol=0)
    torch.testing.assert_close(grad(cross_entropy)(logits, labels), grad(F.cross_entropy)(logits, labels),
                               rtol=1e-12, atol=1e-15)
    v = torch.randn(7, 4, generator=g, dtype=torch.float64)
    _, hvp = jvp(lambda z: grad(cross_entropy)(z, labels), (logits,), (v,))
    dense = hessian(F.cross_entropy)(logits, labels).reshape(28, 28) @ v.reshape(28)
    torch.testing.assert_close(hvp.reshape(28), dense, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(cross_entropy(logits, labels.int()), cross_entropy(logits, labels), rtol=0, atol=0)


def test_accuracy_is_the_fraction_of_argmax_hits():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    assert float(accuracy(logits, torch.tensor([0, 1, 1, 0]))) == 0.5


# ---------------------------------------------------------------- refusals

GOOD = labelled_images()
BAD = [
    ("images", lambda: EpisodeSampler(GOOD.tolist(), 2, 1, 1, 1)),
    ("images", lambda: EpisodeSampler(GOOD.astype(np.float32), 2, 1, 1, 1)),
    ("images", lambda: EpisodeSampler(GOOD[0], 2, 1, 1, 1)),
    ("images", lambda: EpisodeSampler(np.zeros((3, 4, 5, 5, 4), np.uint8), 2, 1, 1, 1)),
    ("images", lambda: EpisodeSampler(GOOD[:0], 2, 1, 1, 1)),
    ("ways", lambda: EpisodeSampler(GOOD, CLASSES + 1, 1, 1, 1)),
    ("ways", lambda: EpisodeSampler(GOOD, 2.0, 1, 1, 1)),
    ("shots", lambda: EpisodeSampler(GOOD, 2, 0, 1, 1)),
    ("queries", lambda: EpisodeSampler(GOOD, 2, 3, PER_CLASS - 2, 1)),
    ("tasks_per_batch", lambda: EpisodeSampler(GOOD, 2, 1, 1, 0)),
    ("dtype", lambda: EpisodeSampler(GOOD, 2, 1, 1, 1, dtype=torch.float16)),
    ("generator", lambda: EpisodeSampler(GOOD, 2, 1, 1, 1)(0)),
    ("generator", lambda: conv4(0, 5)),
    ("ways", lambda: conv4(torch.Generator(), 0)),
    ("channels", lambda: conv4(torch.Generator(), 5, channels=True)),
    ("image_size", lambda: conv4(torch.Generator(), 5, image_size=8)),
    ("filters", lambda: conv4(torch.Generator(), 5, filters=0)),
    ("model", lambda: init_parameters(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), torch.Generator())),
    ("logits", lambda: cross_entropy(torch.zeros(5, 3), torch.zeros(5, 1, dtype=torch.long))),
    ("logits", lambda: cross_entropy(torch.zeros(5), torch.zeros(5, dtype=torch.long))),
    ("logits", lambda: accuracy(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))),
    ("labels", lambda: cross_entropy(torch.zeros(5, 3), torch.zeros(5))),
]


@pytest.mark.parametrize("parameter, call", BAD, ids=[f"{i:02d}-{p}" for i, (p, _) in enumerate(BAD)])
def test_bad_input_is_refused_in_one_line_naming_the_parameter(parameter, call):
    with pytest.raises(ValueError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text, text
    assert text.startswith(parameter) and text[len(parameter)] in "=: ", text
