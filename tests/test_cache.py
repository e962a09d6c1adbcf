"""The sweep cache misses on every change that could change a result, and never reads a damaged chunk."""
import copy
import functools
import io
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import textwrap
import threading
import types
import warnings
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mamlpaper import cache


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


def test_a_changed_plain_attribute_misses():
    assert cache.model_identity(Scaled(scale=1.0)) != cache.model_identity(Scaled(scale=2.0))


def test_a_changed_buffer_misses():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    before = cache.model_identity(model)
    model[1].running_mean += 1
    assert cache.model_identity(model) != before
    model[1].running_mean -= 1
    assert cache.model_identity(model) == before


def layer_class(body):
    """A user-defined layer whose forward is ``body``; same name, same repr, same (no) parameters."""
    namespace = {"torch": torch, "nn": nn}
    exec(textwrap.dedent(f"""
        class Act(nn.Module):
            def forward(self, x):
                return {body}
    """), namespace)
    return namespace["Act"]


def test_a_changed_forward_of_a_user_layer_misses():
    relu, tanh = layer_class("torch.relu(x)"), layer_class("torch.tanh(x)")
    a = nn.Sequential(nn.Linear(1, 2), relu())
    b = copy.deepcopy(a)
    b[1] = tanh()
    assert repr(a) == repr(b)
    assert cache.model_identity(a) != cache.model_identity(b)
    assert cache.model_identity(a) == cache.model_identity(nn.Sequential(copy.deepcopy(a[0]), relu()))


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


# ---------------------------------------------------------------- callable_identity

def scaled_mse(scale):
    return lambda p, y: scale * ((p - y) ** 2).mean()


def with_default(scale):
    def criterion(p, y, weight=scale):
        return weight * ((p - y) ** 2).mean()
    return criterion


def test_lambdas_with_different_bodies_differ():
    a = lambda p, y: ((p - y) ** 2).mean()  # noqa: E731
    b = lambda p, y: (p - y).abs().mean()  # noqa: E731
    assert cache.callable_identity(a) != cache.callable_identity(b)


def test_the_same_function_has_one_identity():
    assert cache.callable_identity(scaled_mse) == cache.callable_identity(scaled_mse)
    assert cache.callable_identity(scaled_mse(2.0)) == cache.callable_identity(scaled_mse(2.0))
    assert cache.callable_identity(scaled_mse(2.0)).startswith("content:")


def test_a_changed_closure_value_misses():
    assert cache.callable_identity(scaled_mse(1.0)) != cache.callable_identity(scaled_mse(2.0))
    assert cache.callable_identity(scaled_mse(torch.ones(3))) != cache.callable_identity(scaled_mse(torch.zeros(3)))


def test_a_changed_default_argument_misses():
    assert cache.callable_identity(with_default(1.0)) != cache.callable_identity(with_default(2.0))


def test_a_changed_module_global_misses():
    """A notebook criterion that reads a constant typed in another cell."""
    def criterion(p, y):
        return SCALE * ((p - y) ** 2).mean()  # noqa: F821

    def variant(scale):
        return types.FunctionType(criterion.__code__, {"SCALE": scale, "__builtins__": __builtins__})

    assert cache.callable_identity(variant(1.0)) == cache.callable_identity(variant(1.0))
    assert cache.callable_identity(variant(1.0)) != cache.callable_identity(variant(2.0))


def test_a_function_without_source_is_known_by_its_bytecode():
    """A lambda typed at a plain REPL has no source; its compiled code still tells it apart."""
    a = eval(compile("lambda p, y: (p - y) ** 2", "<stdin>", "eval"))
    b = eval(compile("lambda p, y: (p - y) ** 4", "<stdin>", "eval"))
    assert cache.callable_identity(a) != cache.callable_identity(b)


def test_partials_differ_by_their_arguments():
    mean, total = functools.partial(F.mse_loss, reduction="mean"), functools.partial(F.mse_loss, reduction="sum")
    assert cache.callable_identity(mean) != cache.callable_identity(total)


def test_library_functions_are_known_by_name():
    """Their code is in the key through versions() and code_digest()."""
    from mamlpaper.maml import mse

    assert cache.callable_identity(F.mse_loss) == "name:torch.nn.functional.mse_loss"
    assert cache.callable_identity(torch.tanh) == "name:torch.tanh"
    assert cache.callable_identity(mse) == "name:mamlpaper.maml.mse"


def test_a_loss_module_is_known_by_its_configuration():
    assert cache.callable_identity(nn.MSELoss()) == cache.callable_identity(nn.MSELoss())
    assert cache.callable_identity(nn.MSELoss()) != cache.callable_identity(nn.MSELoss(reduction="sum"))


def test_cache_token_replaces_the_content():
    assert cache.callable_identity(scaled_mse(1.0), cache_token="mse-v2") == "token:mse-v2"
    assert cache.callable_identity(threading.Lock().acquire, cache_token="lock") == "token:lock"
    with pytest.raises(ValueError, match="cache_token='' is not allowed"):
        cache.callable_identity(scaled_mse(1.0), cache_token="")


def test_an_unidentifiable_callable_asks_for_a_cache_token():
    with pytest.raises(ValueError, match=r"criterion=<built-in method acquire.* pass cache_token='...' to the problem"):
        cache.callable_identity(threading.Lock().acquire)
    acquire = threading.Lock().acquire
    with pytest.raises(ValueError, match="it reaches <built-in method acquire"):
        cache.callable_identity(lambda p, y: acquire() and p)


def test_a_non_callable_is_refused():
    with pytest.raises(ValueError, match="criterion=int is not allowed; it must be callable"):
        cache.callable_identity(3)
    with pytest.raises(ValueError, match="sample_tasks=int is not allowed"):
        cache.callable_identity(3, name="sample_tasks")


class Weighted:
    """A callable object: known by its class's code and its state."""

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, p, y):
        return self.weight * ((p - y) ** 2).mean()


def test_a_callable_object_is_known_by_its_code_and_state():
    assert cache.callable_identity(Weighted(1.0)) == cache.callable_identity(Weighted(1.0))
    assert cache.callable_identity(Weighted(1.0)) != cache.callable_identity(Weighted(2.0))
    assert cache.callable_identity(Weighted(torch.ones(2))) != cache.callable_identity(Weighted(torch.ones(3)))


def test_identity_does_not_depend_on_the_hash_seed(tmp_path):
    """Set literals compile to frozensets whose order follows PYTHONHASHSEED; the key must not."""
    (tmp_path / "user_losses.py").write_text(textwrap.dedent("""
        NAMES = {"alpha", "beta", "gamma", "delta"}
        def criterion(p, y, kind="mse"):
            if kind in {"mse", "l2", "square", "quadratic"} and NAMES:
                return ((p - y) ** 2).mean()
            return (p - y).abs().mean()
    """))
    script = "import user_losses; from mamlpaper import cache; print(cache.callable_identity(user_losses.criterion))"
    outputs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
        outputs.add(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    assert len(outputs) == 1 and next(iter(outputs)).startswith("content:")


# ---------------------------------------------------------------- code_digest, versions, key_digest

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


def test_key_digest_is_canonical_and_sees_every_array_element():
    assert cache.key_digest({"a": 1, "b": [1.5, "x"]}) == cache.key_digest({"b": [1.5, "x"], "a": 1})
    assert cache.key_digest({"a": 1}) != cache.key_digest({"a": 2})
    big = np.zeros(10_000)
    changed = big.copy()
    changed[5_000] = 1  # str() of both prints the same elided text
    assert str(big) == str(changed)
    assert cache.key_digest({"data": big}) != cache.key_digest({"data": changed})
    single, double = torch.zeros(3, dtype=torch.float32), torch.zeros(3, dtype=torch.float64)
    assert cache.key_digest({"data": single}) != cache.key_digest({"data": double})


def test_key_digest_refuses_what_json_cannot_order():
    with pytest.raises(ValueError, match="key=list is not allowed"):
        cache.key_digest([1])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        cache.key_digest({"spec": {1: "a", "b": 2}})


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
    assert store.folder == tmp_path / f"sine-second-sgd-{cache.key_digest(KEY)}"
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
