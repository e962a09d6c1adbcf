"""The sweep cache misses on every change that could change a result, refuses what it cannot name,
and never reads a damaged chunk."""
import copy
import functools
import dataclasses
import hashlib
import importlib.util
import io
import json
import math
import os
import pickle
import platform
import shutil
import sys
import textwrap
import types
import warnings
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mamlpaper import cache, maml, models, sweep
from mamlpaper.metaproblem import MetaProblem, output_spread
from mamlpaper.tasks import Tasks


def user_module(tmp_path, monkeypatch, source, name="user_code"):
    """A module imported from a file of ``source``: code beside a notebook, hashed by content."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def cell_module(monkeypatch, source):
    """A module without a file or distribution: the cells of a notebook."""
    module = types.ModuleType("notebook_cells")
    exec(textwrap.dedent(source), module.__dict__)
    monkeypatch.setitem(sys.modules, "notebook_cells", module)
    return module


# ---------------------------------------------------------------- model_identity

def sequential(activation):
    model = nn.Sequential(nn.Linear(1, 4), activation(), nn.Linear(4, 1))
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape) + i)
    return model


def test_model_identity_is_equal_for_equal_models():
    assert cache.model_identity(sequential(nn.ReLU)) == cache.model_identity(sequential(nn.ReLU))
    model = sequential(nn.ReLU)
    assert cache.model_identity(copy.deepcopy(model)) == cache.model_identity(model)


def test_relu_to_tanh_with_identical_values_misses():
    relu, tanh = sequential(nn.ReLU), sequential(nn.Tanh)
    assert all(torch.equal(a, b) for a, b in zip(relu.parameters(), tanh.parameters()))
    assert cache.model_identity(relu) != cache.model_identity(tanh)


def test_a_changed_layer_setting_held_in_a_tuple_misses():
    """A convolution's stride is in its repr, not in its parameters or plain attributes."""
    one, two = nn.Conv2d(1, 1, 3, stride=1), nn.Conv2d(1, 1, 3, stride=2)
    two.load_state_dict(one.state_dict())
    assert cache.model_identity(one) != cache.model_identity(two)


def test_a_changed_parameter_value_misses():
    model = sequential(nn.Tanh)
    before = cache.model_identity(model)
    with torch.no_grad():
        model[2].bias.copy_(torch.nextafter(model[2].bias, torch.tensor(10.0)))  # one ulp
    assert cache.model_identity(model) != before


def test_a_changed_dtype_misses():
    assert cache.model_identity(sequential(nn.Tanh).float()) != cache.model_identity(sequential(nn.Tanh).double())


class Scaled(nn.Module):
    """A layer whose output depends on a parameter's name only through the name."""

    def __init__(self, name="w", scale=1.0):
        super().__init__()
        self.register_parameter(name, nn.Parameter(torch.ones(2)))
        self.scale = scale

    def forward(self, x):
        return x * next(iter(self.parameters())) * self.scale


def test_a_changed_parameter_name_misses():
    assert repr(Scaled("w")) == repr(Scaled("v"))
    assert cache.model_identity(Scaled("w")) != cache.model_identity(Scaled("v"))


def test_a_changed_plain_attribute_or_training_mode_misses():
    assert cache.model_identity(Scaled(scale=1.0)) != cache.model_identity(Scaled(scale=2.0))
    assert cache.model_identity(Scaled().eval()) != cache.model_identity(Scaled())


def test_a_changed_buffer_misses():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    before = cache.model_identity(model)
    model[1].running_mean += 1
    assert cache.model_identity(model) != before
    model[1].running_mean -= 1
    assert cache.model_identity(model) == before


LAYER = """
    import torch
    from torch import nn

    class Act(nn.Module):
        def forward(self, x):
            return {body}
"""


def test_a_changed_forward_of_a_user_layer_in_a_file_misses(tmp_path, monkeypatch):
    linear = nn.Linear(1, 2)
    relu = user_module(tmp_path, monkeypatch, LAYER.format(body="torch.relu(x)"))
    before = cache.model_identity(nn.Sequential(linear, relu.Act()))
    assert before["layers"]["1"][0].startswith("user_code.Act sha256:")
    tanh = user_module(tmp_path, monkeypatch, LAYER.format(body="torch.tanh(x)"))
    assert repr(relu.Act()) == repr(tanh.Act())
    assert cache.model_identity(nn.Sequential(linear, tanh.Act())) != before


def test_a_layer_without_an_importable_name_needs_the_cache_token(monkeypatch):
    cells = cell_module(monkeypatch, LAYER.format(body="torch.relu(x)"))
    model = nn.Sequential(nn.Linear(1, 2), cells.Act())
    with pytest.raises(ValueError, match=r"^model layer=<class 'notebook_cells.Act'> is not allowed; .*cache_token$"):
        cache.model_identity(model)
    assert cache.model_identity(model, "relu layer v1")["layers"]["1"][0] == "token:relu layer v1"


def test_tied_parameters_differ_from_equal_untied_ones():
    untied = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        untied[1].weight.copy_(untied[0].weight)
    tied = copy.deepcopy(untied)
    tied[1].weight = tied[0].weight
    assert cache.model_identity(tied) != cache.model_identity(untied)


def test_model_identity_refuses_a_non_module():
    with pytest.raises(ValueError, match="model=dict is not allowed"):
        cache.model_identity({})


# ---------------------------------------------------------------- callable_name

def scaled_mse(prediction, target):
    return 2.0 * ((prediction - target) ** 2).mean()


def test_package_code_is_named_alone_and_library_code_with_its_version():
    """The package's code is in the key through code_digest(), the standard library's through versions()."""
    assert cache.callable_name(maml.mse, "criterion") == "mamlpaper.maml.mse"
    assert cache.callable_name(F.mse_loss, "criterion") == f"torch.nn.functional.mse_loss@{torch.__version__}"
    assert cache.callable_name(math.hypot, "criterion") == "math.hypot"


def test_code_in_a_file_is_named_with_its_content(tmp_path, monkeypatch):
    source = "def criterion(p, y):\n    return ((p - y) ** {power}).mean()\n"
    before = cache.callable_name(user_module(tmp_path, monkeypatch, source.format(power=2)).criterion, "criterion")
    sha = hashlib.sha256(source.format(power=2).encode()).hexdigest()
    assert before == f"user_code.criterion sha256:{sha}"
    after = cache.callable_name(user_module(tmp_path, monkeypatch, source.format(power=4)).criterion, "criterion")
    assert after != before


def test_a_name_is_verified_to_import_back_to_the_same_object():
    impostor = types.FunctionType(scaled_mse.__code__, scaled_mse.__globals__, "mse")
    impostor.__module__, impostor.__qualname__ = "mamlpaper.maml", "mse"
    with pytest.raises(ValueError, match="^criterion=<function mse at .* is not allowed"):
        cache.callable_name(impostor, "criterion")


def closure(scale):
    return lambda p, y: scale * ((p - y) ** 2).mean()


def local_function():
    def criterion(p, y):
        return ((p - y) ** 2).mean()
    return criterion


UNNAMEABLE = {
    "lambda": lambda p, y: ((p - y) ** 2).mean(),
    "closure": closure(2.0),
    "local function": local_function(),
    "callable object": nn.MSELoss(),
    "bound method": nn.MSELoss().forward,
    "partial": functools.partial(F.mse_loss, reduction="sum"),
}


@pytest.mark.parametrize("kind", list(UNNAMEABLE))
def test_a_callable_without_an_importable_name_is_refused_in_one_line(kind):
    with pytest.raises(ValueError, match=r"^readout\.compute=.* is not allowed; the sweep cache names it by "
                                         r"module\.qualname: pass a module-level function or class, or set "
                                         r"MetaProblem\.cache_token$"):
        cache.callable_name(UNNAMEABLE[kind], "readout.compute")


def test_notebook_code_without_a_file_is_refused(monkeypatch):
    cells = cell_module(monkeypatch, "def criterion(p, y):\n    return ((p - y) ** 2).mean()\n")
    assert cells.criterion.__module__ == "notebook_cells" and sys.modules["notebook_cells"].criterion is cells.criterion
    with pytest.raises(ValueError, match="^criterion=<function criterion at .* is not allowed"):
        cache.callable_name(cells.criterion, "criterion")


def test_the_cache_token_stands_for_what_has_no_name():
    assert cache.callable_name(UNNAMEABLE["closure"], "criterion", "mse x2 v1") == "token:mse x2 v1"
    assert cache.callable_name(maml.mse, "criterion", "mse x2 v1") == "mamlpaper.maml.mse"


def test_a_non_callable_is_refused():
    with pytest.raises(ValueError, match="^criterion=3 is not allowed; criterion must be callable"):
        cache.callable_name(3, "criterion")


# ---------------------------------------------------------------- the sweep's key

def sample(generator):
    xs, xq = (4 * torch.rand(2, 3, 1, generator=generator, dtype=torch.float64) - 2 for _ in range(2))
    return Tasks(xs, torch.sin(xs), xq, torch.sin(xq))


def other_sample(generator):
    tasks = sample(generator)
    return tasks._replace(y_query=2 * tasks.y_query)


def spread_twice(problem, params, tasks, alpha, steps):
    return {"output_spread": 2 * output_spread(problem, params, tasks, alpha, steps)["output_spread"]}


def mlp(activation="tanh"):
    return models.mlp(torch.Generator().manual_seed(0), widths=(1, 3, 1), activation=activation).double()


def sine(**changes):
    return dataclasses.replace(MetaProblem("sine", mlp(), sample, spec={"seed": 0}), **changes)


def key(p, **settings):
    s = sweep._check_settings(**{"iterations": 2, "variant": "second", "optimizer": "sgd", "steps": 1, "seed": 0,
                                 "dtype": "float64", "device": "cpu", "divergence_threshold": 1e8, **settings})
    grid = np.array([0.1])
    return sweep._cache_key(p, grid, grid, np.array([0]), None, s, 1)


def nudged(p):
    with torch.no_grad():
        next(p.model.parameters()).view(-1)[0] += 1e-12
    return p


KEY_CHANGES = {
    "spec": lambda: key(sine(spec={"seed": 1})),
    "θ0": lambda: key(nudged(sine())),
    "architecture (tanh -> relu, same θ0)": lambda: key(sine(model=mlp("relu"))),
    "parameter dtype": lambda: key(sine(model=mlp().float())),
    "first meta-batch": lambda: key(sine(sample_tasks=other_sample)),
    "data identity": lambda: key(sine(data_identity="sha256:1234")),
    "criterion name": lambda: key(sine(criterion=scaled_mse)),
    "cache_token": lambda: key(sine(cache_token="v2")),
    "readout name": lambda: key(sine(readout=sine().readout._replace(compute=spread_twice))),
    "iterations": lambda: key(sine(), iterations=3),
    "dtype": lambda: key(sine(), dtype="float32"),
    "jitter": lambda: key(sine(), jitter=1e-7),
}


def test_an_identical_problem_has_an_identical_key():
    assert key(sine()) == key(sine())


@pytest.mark.parametrize("change", list(KEY_CHANGES))
def test_every_change_to_what_a_result_depends_on_changes_the_key(change):
    assert KEY_CHANGES[change]() != key(sine()), change


@pytest.mark.parametrize("changed", ["code_digest", "versions"])
def test_changed_package_code_or_libraries_change_the_key(monkeypatch, changed):
    before = key(sine())
    original = getattr(cache, changed)
    monkeypatch.setattr(cache, changed, lambda: original() + "edited" if changed == "code_digest"
                        else {**original(), "torch": "99.0"})
    assert key(sine()) != before


def test_a_sweep_with_an_unnameable_readout_is_refused_before_any_run(tmp_path, monkeypatch):
    unnamed = sine(readout=sine().readout._replace(compute=lambda *args: output_spread(*args)))
    runs = []
    monkeypatch.setattr(sweep, "_run_chunk", lambda *args: runs.append(args))
    with pytest.raises(ValueError, match=r"^readout\.compute=<function .* is not allowed; .*cache_token$"):
        sweep.run_sweep(unnamed, [0.1], [0.1], iterations=2, cache_dir=tmp_path, progress=False)
    assert runs == [] and list(tmp_path.iterdir()) == []


def test_a_cache_token_lets_an_unnameable_criterion_be_cached(tmp_path):
    mse = closure(1.0)
    tokened = sine(criterion=mse, cache_token="plain mse v1")
    first = sweep.run_sweep(tokened, [0.1], [0.1], iterations=2, cache_dir=tmp_path, progress=False)
    (folder,) = tmp_path.iterdir()
    stored = json.loads((folder / "key.json").read_text())
    assert stored["criterion"] == "token:plain mse v1" and stored["cache_token"] == "plain mse v1"
    again = sweep.run_sweep(tokened, [0.1], [0.1], iterations=2, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == [folder]
    np.testing.assert_array_equal(first.loss_final, again.loss_final)


# ---------------------------------------------------------------- code_digest, versions, the key's folder

def package_copy(tmp_path):
    root = tmp_path / "mamlpaper"
    shutil.copytree(cache.PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_code_digest_covers_the_installed_package(tmp_path):
    assert cache.code_digest() == cache.code_digest(package_copy(tmp_path))


def test_every_source_file_of_the_package_is_in_the_code_digest(tmp_path):
    root = package_copy(tmp_path)
    before = cache.code_digest(root)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "models.cpython-311.pyc").write_bytes(b"\0")
    (root / "notes.txt").write_text("not code")
    assert cache.code_digest(root) == before
    (root / "models.py").write_text((root / "models.py").read_text() + "\n# edited\n")
    edited = cache.code_digest(root)
    assert edited != before
    (root / "subpackage").mkdir()
    (root / "subpackage" / "episodes.py").write_text("WAYS = 5\n")
    added = cache.code_digest(root)
    assert added != edited
    (root / "subpackage" / "episodes.py").rename(root / "subpackage" / "sampler.py")
    assert cache.code_digest(root) != added


def test_code_digest_refuses_a_missing_root(tmp_path):
    with pytest.raises(ValueError, match="must be an existing directory"):
        cache.code_digest(tmp_path / "absent")


def test_versions_name_the_libraries_whose_code_is_keyed_by_name():
    assert cache.versions() == {"python": platform.python_version(), "torch": torch.__version__,
                                "numpy": np.__version__}


def folder(tmp_path, key):
    return cache.ChunkCache(tmp_path, key, label="k").folder.name


def test_the_key_folder_is_canonical_and_sees_every_array_element(tmp_path):
    assert folder(tmp_path, {"a": 1, "b": [1.5, "x"]}) == folder(tmp_path, {"b": [1.5, "x"], "a": 1})
    assert folder(tmp_path, {"a": 1}) != folder(tmp_path, {"a": 2})
    big = np.zeros(10_000)
    changed = big.copy()
    changed[5_000] = 1  # str() of both prints the same elided text
    assert str(big) == str(changed)
    assert folder(tmp_path, {"data": big}) != folder(tmp_path, {"data": changed})
    single, double = torch.zeros(3, dtype=torch.float32), torch.zeros(3, dtype=torch.float64)
    assert folder(tmp_path, {"data": single}) != folder(tmp_path, {"data": double})


def test_a_key_json_cannot_order_is_refused(tmp_path):
    with pytest.raises(ValueError, match="key=list is not allowed"):
        cache.ChunkCache(tmp_path, [1], label="k")
    with pytest.raises(ValueError, match="JSON-serialisable"):
        cache.ChunkCache(tmp_path, {"spec": {1: "a", "b": 2}}, label="k")


def test_tensor_digest_sees_dtype_shape_and_every_byte():
    x = torch.arange(6, dtype=torch.float32)
    assert cache.tensor_digest([x]) == cache.tensor_digest(x.clone())
    assert cache.tensor_digest([x]) != cache.tensor_digest([x.double()])
    assert cache.tensor_digest([x]) != cache.tensor_digest([x.reshape(2, 3)])
    assert cache.tensor_digest([torch.tensor(0.0)]) != cache.tensor_digest([torch.tensor(-0.0)])
    assert cache.tensor_digest([x.numpy()]) == cache.tensor_digest([x.numpy().copy()])
    with pytest.raises(ValueError, match=r"values\[0\]=list is not allowed"):
        cache.tensor_digest([[1.0]])


# ---------------------------------------------------------------- ChunkCache

KEY = {"problem": "sine", "alphas": [0.0, 0.1], "code": "abc"}
FIELDS = {"loss": np.float64, "diverged_at": np.int64}


def chunk(rows=3, offset=0.0):
    return {"loss": np.linspace(0, 1, rows) + offset, "diverged_at": np.arange(rows, dtype=np.int64) - 1}


def load_quietly(store, i=0, rows=3, fields=FIELDS):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return store.load(i, rows, fields)


def test_chunks_round_trip(tmp_path):
    store = cache.ChunkCache(tmp_path, KEY, label="sine-second-sgd")
    canonical = json.dumps(KEY, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert store.folder == tmp_path / f"sine-second-sgd-{hashlib.sha256(canonical.encode()).hexdigest()[:20]}"
    assert load_quietly(store) is None
    store.save(0, chunk())
    loaded = load_quietly(store)
    assert loaded.keys() == FIELDS.keys()
    for name, value in chunk().items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == value.dtype
    assert sorted(p.name for p in store.folder.iterdir()) == ["chunk-00000.npz", "key.json"]


def test_chunk_bytes_are_deterministic(tmp_path):
    a = cache.ChunkCache(tmp_path / "a", KEY, label="x").save(0, chunk())
    b = cache.ChunkCache(tmp_path / "b", KEY, label="x").save(0, chunk())
    assert a.read_bytes() == b.read_bytes()


def test_an_interrupted_sweep_resumes_from_its_finished_chunks(tmp_path):
    computed = []

    def sweep(n_chunks, interrupt_at=None):
        store = cache.ChunkCache(tmp_path, KEY, label="sine")
        results = []
        for i in range(n_chunks):
            result = load_quietly(store, i)
            if result is None:
                if i == interrupt_at:
                    raise KeyboardInterrupt()
                result = chunk(offset=i)
                computed.append(i)
                store.save(i, result)
            results.append(result["loss"])
        return np.concatenate(results)

    with pytest.raises(KeyboardInterrupt):
        sweep(4, interrupt_at=2)
    assert computed == [0, 1]
    resumed = sweep(4)
    assert computed == [0, 1, 2, 3]
    np.testing.assert_array_equal(resumed, np.concatenate([chunk(offset=i)["loss"] for i in range(4)]))
    np.testing.assert_array_equal(sweep(4), resumed)
    assert computed == [0, 1, 2, 3]


def test_an_interrupted_write_leaves_no_chunk_and_no_temp(tmp_path, monkeypatch):
    store = cache.ChunkCache(tmp_path, KEY, label="sine")

    def interrupted(src, dst):
        raise KeyboardInterrupt()

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.save(0, chunk())
    monkeypatch.undo()
    assert sorted(p.name for p in store.folder.iterdir()) == ["key.json"]
    assert load_quietly(store) is None


class Tripwire:
    """Unpickling this records it: the proof that a loader unpickled."""

    def __reduce__(self):
        return UNPICKLED.append, ("unpickled",)


UNPICKLED = []


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def flip_a_data_byte(path):
    data = bytearray(path.read_bytes())
    at = bytes(data).find(chunk()["loss"].tobytes()) + 5
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(path, contents):
    """A valid zip (good CRCs) with the given members: only our own digest can tell."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def changed_values_with_good_crc(path):
    rezip(path, {**members(path), "loss.npy": npy(chunk()["loss"] + 1)})


def missing_field(path):
    rezip(path, {k: v for k, v in members(path).items() if k != "diverged_at.npy"})


def extra_field(path):
    rezip(path, {**members(path), "extra.npy": npy(np.zeros(3))})


def without_digest(path):
    np.savez(path, **chunk())
    path.write_bytes(path.with_suffix(".npz").read_bytes())


def object_array(path):
    rezip(path, {**members(path), "loss.npy": npy(np.array([Tripwire()] * 3, dtype=object))})


def a_pickle(path):
    path.write_bytes(pickle.dumps({"loss": Tripwire()}))


def an_npy_file(path):
    path.write_bytes(npy(chunk()["loss"]))


def a_member_that_is_not_npy(path):
    rezip(path, {**members(path), "__digest__": b"raw"})


def empty_file(path):
    path.write_bytes(b"")


CORRUPTIONS = [truncate, random_bytes, flip_a_data_byte, changed_values_with_good_crc, missing_field, extra_field,
               without_digest, object_array, a_pickle, an_npy_file, a_member_that_is_not_npy, empty_file]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_a_damaged_chunk_is_reported_deleted_and_recomputed_never_unpickled(tmp_path, corrupt):
    store = cache.ChunkCache(tmp_path, KEY, label="sine")
    path = store.save(0, chunk())
    corrupt(path)
    with pytest.warns(RuntimeWarning, match=r"cache chunk .*chunk-00000\.npz is unusable .*; recomputing it"):
        assert store.load(0, 3, FIELDS) is None
    assert UNPICKLED == []
    assert not path.exists()
    store.save(0, chunk())
    np.testing.assert_array_equal(load_quietly(store)["loss"], chunk()["loss"])


@pytest.mark.parametrize("rows, fields", [
    (4, FIELDS),
    (3, {"loss": np.float32, "diverged_at": np.int64}),
    (3, {"loss": np.float64}),
    (3, {**FIELDS, "output_spread": np.float64}),
])
def test_a_chunk_of_another_shape_is_not_used(tmp_path, rows, fields):
    store = cache.ChunkCache(tmp_path, KEY, label="sine")
    store.save(0, chunk())
    with pytest.warns(RuntimeWarning, match="unusable"):
        assert store.load(0, rows, fields) is None


def test_a_scalar_field_is_not_used(tmp_path):
    store = cache.ChunkCache(tmp_path, KEY, label="sine")
    store.save(0, {"loss": np.float64(1.0)})
    with pytest.warns(RuntimeWarning, match=r"loss has shape \(\), expected 1 rows"):
        assert store.load(0, 1, {"loss": np.float64}) is None


def test_a_chunk_written_for_another_key_is_not_used(tmp_path):
    mine = cache.ChunkCache(tmp_path, KEY, label="sine")
    other = cache.ChunkCache(tmp_path, {**KEY, "code": "abd"}, label="sine")
    assert mine.folder != other.folder
    shutil.copy(other.save(0, chunk()), mine.path(0))  # a digest collision, or a tampered folder
    with pytest.warns(RuntimeWarning, match="written for another key"):
        assert mine.load(0, 3, FIELDS) is None


def test_key_json_describes_the_key_and_a_mismatch_is_rewritten(tmp_path):
    store = cache.ChunkCache(tmp_path, KEY, label="sine")
    key_file = store.folder / "key.json"
    assert json.loads(key_file.read_text()) == KEY
    store.save(0, chunk())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.ChunkCache(tmp_path, KEY, label="sine")  # reopening the same key is silent
    key_file.write_text('{"problem": "something else"}')
    with pytest.warns(RuntimeWarning, match="key.json held another key; rewriting it"):
        reopened = cache.ChunkCache(tmp_path, KEY, label="sine")
    assert json.loads(key_file.read_text()) == KEY
    np.testing.assert_array_equal(load_quietly(reopened)["loss"], chunk()["loss"])  # chunks carry their own key


def test_a_missing_chunk_is_silent(tmp_path):
    store = cache.ChunkCache(tmp_path, KEY, label="sine")
    assert load_quietly(store, 7) is None


@pytest.mark.parametrize("label", ["", ".hidden", "a/b", None])
def test_bad_labels_are_refused(tmp_path, label):
    with pytest.raises(ValueError, match="label=.* is not allowed"):
        cache.ChunkCache(tmp_path, KEY, label=label)


@pytest.mark.parametrize("bad, message", [
    ({}, "non-empty dict"),
    ({"__digest__": np.zeros(3)}, "identifier not starting with '__'"),
    ({"a/b": np.zeros(3)}, "identifier"),
    ({"loss": np.array([object()] * 3)}, "dtype object is not allowed"),
])
def test_save_refuses_what_load_could_not_read_safely(tmp_path, bad, message):
    store = cache.ChunkCache(tmp_path, KEY, label="sine")
    with pytest.raises(ValueError, match=message):
        store.save(0, bad)
    assert not store.path(0).exists()


@pytest.mark.parametrize("i, rows, fields, message", [
    (-1, 3, FIELDS, "i=-1 is not allowed"),
    (True, 3, FIELDS, "i=True is not allowed"),
    (0, 0, FIELDS, "rows=0 is not allowed"),
    (0, 3, {}, "fields=.* is not allowed"),
    (0, 3, {"loss": "not a dtype"}, "must be NumPy dtypes"),
])
def test_load_refuses_bad_arguments(tmp_path, i, rows, fields, message):
    store = cache.ChunkCache(tmp_path, KEY, label="sine")
    with pytest.raises(ValueError, match=message):
        store.load(i, rows, fields)


def test_the_default_digest_is_of_the_code_this_process_imported_not_of_the_files_now(tmp_path, monkeypatch):
    """A package file edited under a running kernel must not key the old code's results as the new code's."""
    root = package_copy(tmp_path)
    (root / "models.py").write_text((root / "models.py").read_text() + "\n# edited after import\n")
    monkeypatch.setattr(cache, "PACKAGE_ROOT", root)
    assert cache.code_digest() != cache.code_digest(root)
