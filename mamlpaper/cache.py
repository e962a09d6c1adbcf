"""A result cache that misses whenever anything that could change the result changed.

A cache key is a JSON-able dict the caller composes from the functions below: ``code_digest()``
(every source file of the package), ``versions()`` (Python, torch, NumPy), ``model_identity``
(architecture, code of user-defined layers, parameter and buffer values), ``callable_identity``
(a criterion's code and every value it reaches, or an explicit token), ``tensor_digest`` (data)
and plain settings. Names from torch, NumPy, this package and the standard library stand for
their code only because the key holds ``versions()`` and ``code_digest()``; a key without them
is not safe. Other installed packages are named with their version; user code (a notebook,
a script, a file beside it) is hashed by content.

Identities err toward missing: an object known only by a repr that holds its address misses
on every run (pass a ``cache_token`` then), never hits stale. The package's code enters the key
as this process imported it (a file edited under a running kernel is not the code that runs);
what is not seen is a module re-imported with ``importlib.reload``: restart the kernel instead.

``ChunkCache`` stores the chunks of one key. Every chunk embeds a digest of the key and of its
arrays; a chunk that is truncated, foreign, tampered or unreadable is reported, deleted and
recomputed, and nothing is ever unpickled.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import io
import json
import os
import pickle
import platform
import sys
import sysconfig
import tokenize
import types
import warnings
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ._checks import describe, integer
from .atomic import write_bytes

PACKAGE_ROOT = Path(__file__).resolve().parent
_KEYED_ROOTS = frozenset({"torch", "numpy", "mamlpaper"})
"""Packages whose code the key holds by ``versions()`` or ``code_digest()``: identified by name."""
_STDLIB_DIRS = tuple({Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})[k])
                      .resolve() for k in ("stdlib", "platstdlib")})
_CLASS_NOISE = frozenset({"__dict__", "__weakref__", "__doc__", "__module__"})
_DIGEST_FIELD = "__digest__"


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _digest_of_sources(root: Path) -> str:
    h = hashlib.sha256()
    for relative, path in sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.py") if p.is_file()):
        data = path.read_bytes()
        h.update(f"{relative}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


_IMPORTED_PACKAGE = _digest_of_sources(PACKAGE_ROOT)
"""The package's sources as they were when this process imported it: the code that runs."""


def code_digest(root: str | os.PathLike | None = None) -> str:
    """sha256 over every ``*.py`` under ``root`` (recursively), with its relative path.

    Editing, adding, removing or renaming any module of the package misses the cache, so no
    hand-kept list of "modules a result depends on" can fall behind. Without ``root``: the
    package's sources as this process imported them, not as they are on disk now, so a file
    edited under a running kernel cannot file the old code's results under the new code's key.
    """
    if root is None:
        return _IMPORTED_PACKAGE
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not allowed; it must be an existing directory")
    return _digest_of_sources(root)


def versions() -> dict:
    """The interpreter and libraries whose code the key names rather than hashes."""
    return {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": np.__version__}


def _array_parts(value) -> tuple[str, list[int], bytes]:
    """dtype, shape and the raw bytes in the array's own dtype (no float64 round trip)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().resolve_conj().resolve_neg().contiguous()
        return str(t.dtype), list(t.shape), t.reshape(-1).view(torch.uint8).numpy().tobytes()
    a = np.ascontiguousarray(value)
    return a.dtype.str, list(a.shape), a.tobytes()


def tensor_digest(values: Iterable) -> str:
    """sha256 of tensors or arrays in order: dtype, shape and bytes of each (e.g. a data identity)."""
    if isinstance(values, (torch.Tensor, np.ndarray)):
        values = [values]
    h = hashlib.sha256()
    for i, value in enumerate(values):
        if not isinstance(value, (torch.Tensor, np.ndarray)):
            raise ValueError(f"values[{i}]={type(value).__name__} is not allowed; pass tensors or NumPy arrays")
        dtype, shape, data = _array_parts(value)
        h.update(json.dumps([dtype, shape]).encode() + b"\0")
        h.update(data)
    return h.hexdigest()


def _resolve(module_name: str, path: str):
    obj = sys.modules.get(module_name)
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return obj


def _root_version(root: str) -> str:
    version = getattr(sys.modules.get(root), "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(root)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)


def _provenance(module_name: str) -> str | None:
    """How the key holds a module's code: "" (versions() or code_digest()), "@<version>" for an
    installed package, None for user code (a notebook, a script, a local file: hashed by content).

    By location, not by name, so a user's file that shadows a standard module is still hashed.
    """
    root = module_name.partition(".")[0]
    if root in _KEYED_ROOTS:
        return ""
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not file:
        return "" if module_name in sys.builtin_module_names else None
    path = Path(file).resolve()
    if {"site-packages", "dist-packages"} & set(path.parts):
        return f"@{_root_version(root)}"
    return "" if any(path.is_relative_to(d) for d in _STDLIB_DIRS) else None


def _versioned_name(obj) -> str | None:
    """``module.qualname`` for a module-level object of keyed or installed code; None for user code."""
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str):
        return None
    for path in (getattr(obj, "__qualname__", None), getattr(obj, "__name__", None)):
        if isinstance(path, str) and "<" not in path and _resolve(module_name, path) is obj:
            provenance = _provenance(module_name)
            return None if provenance is None else f"{module_name}.{path}{provenance}"
    return None


def _source(fn) -> str | None:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError, IndexError, SyntaxError, tokenize.TokenError):
        return None


def _const(value) -> str:
    """A constant's repr that does not depend on the hash seed (frozenset order does)."""
    if isinstance(value, frozenset):
        return "frozenset(" + ",".join(sorted(map(_const, value))) + ")"
    if isinstance(value, tuple):
        return "(" + ",".join(map(_const, value)) + ")"
    return repr(value)


def _bytecode(code: types.CodeType) -> str:
    """The compiled code itself: what runs, even when the source on disk changed or is absent."""
    h = hashlib.sha256()

    def add(c: types.CodeType) -> None:
        for part in (c.co_code, c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars, c.co_argcount,
                     c.co_posonlyargcount, c.co_kwonlyargcount, c.co_flags, getattr(c, "co_exceptiontable", b"")):
            h.update(repr(part).encode() + b"\0")
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                add(const)
            else:
                h.update(_const(const).encode() + b"\0")

    add(code)
    return h.hexdigest()


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _function(fn: types.FunctionType, seen: dict) -> dict:
    """Source, bytecode, defaults, closure cells and the globals the code names."""
    cells = {}
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            contents = cell.cell_contents
        except ValueError:  # a cell not yet assigned
            cells[name] = "<empty cell>"
            continue
        cells[name] = _identity(contents, seen)
    reached = sorted(n for n in _global_names(fn.__code__) if n in fn.__globals__)
    return {
        "function": fn.__qualname__, "source": _source(fn), "bytecode": _bytecode(fn.__code__),
        "defaults": _identity(fn.__defaults__, seen), "kwdefaults": _identity(fn.__kwdefaults__, seen),
        "closure": cells, "globals": {n: _identity(fn.__globals__[n], seen) for n in reached},
    }


def _is_python_code(member) -> bool:
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    return isinstance(member, (types.FunctionType, property))


def _class(cls: type, seen: dict) -> dict:
    """A class no attribute path reaches: by its members (methods by content, constants) and bases.

    Only a C type of keyed or installed code is known by name: a class with Python methods is
    hashed whatever module it claims (``exec`` without ``__name__`` claims ``builtins``).
    """
    name = f"{cls.__module__}.{cls.__qualname__}"
    bases = [_identity(b, seen) for b in cls.__bases__]
    provenance = _provenance(cls.__module__)
    if provenance is not None and not any(map(_is_python_code, vars(cls).values())):
        return {"class": name + provenance, "bases": bases}
    members = {k: _identity(v, seen) for k, v in sorted(vars(cls).items()) if k not in _CLASS_NOISE}
    return {"class": name, "bases": bases, "members": members}


def _module(module: types.ModuleType) -> dict:
    """A module the code names: by name if the key holds it, else by its file (a helper module beside a notebook)."""
    provenance = _provenance(module.__name__)
    file = getattr(module, "__file__", None)
    if provenance is not None or not file or not Path(file).is_file():
        return {"module": module.__name__ + (provenance or "")}
    return {"module": module.__name__, "sha256": _sha256(Path(file).read_bytes())}


class _Unidentifiable(ValueError):
    """A callable known by nothing but its address; the public functions say whose it is."""

    def __init__(self, value):
        super().__init__(describe(value))
        self.value = value


def _object(value, seen: dict) -> dict:
    """Class code plus state: attributes walked like any value, else the pickle, else the repr.

    A callable left with its repr (which names an address) raises: it would miss on every run.
    """
    kind = _identity(type(value), seen)
    if hasattr(value, "__dict__"):
        return {"object": kind, "state": _identity(vars(value), seen)}
    try:
        return {"object": kind, "pickle": _sha256(pickle.dumps(value, protocol=4))}
    except Exception:  # anything pickle refuses (locks, C handles) is left to its repr
        if callable(value):
            raise _Unidentifiable(value) from None
        return {"object": kind, "repr": repr(value)}


def _identity(value, seen: dict):
    """A JSON-able description of ``value`` that changes whenever its behaviour or content can.

    ``seen`` maps id → object for everything entered, so cycles end and no id is reused mid-walk.
    """
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return repr(value)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        dtype, shape, _ = _array_parts(value)
        return {"array": dtype, "shape": shape, "sha256": tensor_digest([value])}
    if isinstance(value, (np.generic, torch.dtype, torch.device)):
        return repr(value)
    name = _versioned_name(value)
    if name is not None:
        return {"name": name}
    if id(value) in seen:
        return {"seen": getattr(value, "__qualname__", type(value).__qualname__)}
    seen[id(value)] = value
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_identity(v, seen) for v in value]]
    if isinstance(value, (set, frozenset)):
        return [type(value).__name__, sorted(json.dumps(_identity(v, seen), sort_keys=True) for v in value)]
    if isinstance(value, dict):
        items = [(json.dumps(_identity(k, seen), sort_keys=True), _identity(v, seen)) for k, v in value.items()]
        return ["dict", sorted(items, key=lambda kv: kv[0])]
    if isinstance(value, types.ModuleType):
        return _module(value)
    if isinstance(value, type):
        return _class(value, seen)
    if isinstance(value, nn.Module):
        return _model(value, seen)
    if isinstance(value, functools.partial):
        return {"partial": _identity(value.func, seen), "args": _identity(value.args, seen),
                "keywords": _identity(value.keywords, seen)}
    if isinstance(value, types.MethodType):
        return {"method": _identity(value.__func__, seen), "self": _identity(value.__self__, seen)}
    if isinstance(value, types.FunctionType):
        return _function(value, seen)
    if isinstance(value, (staticmethod, classmethod)):
        return {type(value).__name__: _identity(value.__func__, seen)}
    if isinstance(value, property):
        return {"property": [_identity(f, seen) for f in (value.fget, value.fset, value.fdel)]}
    return _object(value, seen)


def _tensor_entry(name: str, tensor: torch.Tensor) -> dict:
    dtype, shape, _ = _array_parts(tensor)
    return {"name": name, "shape": shape, "dtype": dtype, "sha256": tensor_digest([tensor])}


def _model(model: nn.Module, seen: dict) -> dict:
    modules = {}
    for name, m in model.named_modules(remove_duplicate=False):
        modules[name] = {
            "class": _identity(type(m), seen),
            "attributes": {k: _identity(v, seen) for k, v in sorted(vars(m).items()) if not k.startswith("_")},
            "hooks": [_identity(h, seen) for hooks in (m._forward_pre_hooks, m._forward_hooks) for h in hooks.values()],
        }
    parameters = list(model.named_parameters(remove_duplicate=False))
    first, shared = {}, {}
    for name, p in parameters:
        if id(p) in first:
            shared[name] = first[id(p)]
        else:
            first[id(p)] = name
    return {
        "repr": repr(model), "modules": modules, "shared": shared,
        "parameters": [_tensor_entry(n, p) for n, p in parameters],
        "buffers": [_tensor_entry(n, b) for n, b in model.named_buffers(remove_duplicate=False)],
    }


def model_identity(model: nn.Module) -> dict:
    """Architecture and values of a model, JSON-able, for a cache key.

    repr (layer types and sizes: ReLU→Tanh with equal values misses), every submodule's class
    (the code of user-defined layers, by content) and public attributes, forward hooks, which
    parameters are tied, and each parameter's and buffer's name, shape, dtype and sha256 of its
    bytes in its own dtype.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} is not allowed; pass a torch.nn.Module")
    try:
        return _model(model, {id(model): model})
    except _Unidentifiable as exc:
        raise ValueError(f"model={type(model).__name__} is not allowed in a cache key; it holds {exc}, which has no "
                         "source, importable name or pickle, so the cache cannot tell it from another") from None


def callable_identity(fn, cache_token: str | None = None, *, name: str = "criterion") -> str:
    """One string that changes whenever ``fn`` can compute something else.

    ``token:<cache_token>`` when a token is given: the caller vouches for the function.
    ``name:<module.qualname>`` for a module-level function of torch, NumPy, this package, the
    standard library (their versions and code are in the key) or an installed package (with its
    version). Otherwise ``content:<sha256>`` over its source (also for lambdas typed in a
    notebook), bytecode, defaults, closure cells and the module globals its code names, walked
    recursively (tensors by digest). A callable with none of these raises ValueError; ``name``
    is what its message calls ``fn``.
    """
    if cache_token is not None:
        if not isinstance(cache_token, str) or not cache_token.strip():
            raise ValueError(f"cache_token={cache_token!r} is not allowed; pass a non-empty string or None")
        return f"token:{cache_token}"
    if not callable(fn):
        raise ValueError(f"{name}={type(fn).__name__} is not allowed; it must be callable")
    versioned = _versioned_name(fn)
    if versioned is not None:
        return f"name:{versioned}"
    try:
        identity = _identity(fn, {})
    except _Unidentifiable as exc:
        held = "it" if exc.value is fn else f"it reaches {exc}, which"
        raise ValueError(f"{name}={describe(fn)} is not allowed without cache_token; {held} has no source, importable "
                         "name or pickle, so the cache cannot tell it from another; pass cache_token='...' to the "
                         "problem") from None
    return "content:" + _sha256(json.dumps(identity, sort_keys=True))


def _json_default(value):
    """Arrays by digest (str() of a large array elides its middle, so two could print alike); else str()."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        dtype, shape, _ = _array_parts(value)
        return f"{dtype}{shape} sha256:{tensor_digest([value])}"
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _key_text(key: Mapping, **layout) -> str:
    if not isinstance(key, Mapping):
        raise ValueError(f"key={type(key).__name__} is not allowed; pass a dict")
    try:
        return json.dumps(dict(key), sort_keys=True, default=_json_default, ensure_ascii=False, **layout)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"key is not allowed; it must be JSON-serialisable with string keys ({exc})") from None


def key_digest(key: Mapping) -> str:
    """The first 20 hex digits of the sha256 of the key's canonical JSON: a folder name."""
    return _sha256(_key_text(key, separators=(",", ":")))[:20]


def _check_name(name: str, value) -> str:
    if not isinstance(value, str) or not value.isidentifier() or value.startswith("__"):
        raise ValueError(f"{name}={value!r} is not allowed; use a Python identifier not starting with '__'")
    return value


class ChunkCache:
    """The chunks of one key, in ``<root>/<label>-<key_digest(key)>/chunk-NNNNN.npz``.

    ``key.json`` beside the chunks is for the reader; trust rests on each chunk, which embeds
    the sha256 of the full key and of its arrays. A ``key.json`` that differs (a tampered
    folder, or an 80-bit digest collision) is rewritten with a warning, and chunks of the other
    key fail their digest and are recomputed, so a mismatch can cost time but never a result.
    """

    def __init__(self, root: str | os.PathLike, key: Mapping, *, label: str):
        if not isinstance(label, str) or not label or label.startswith(".") or {os.sep, "/", "\\"} & set(label):
            raise ValueError(f"label={label!r} is not allowed; use a non-empty name without path separators "
                             "or a leading dot")
        self._key_sha = _sha256(_key_text(key, separators=(",", ":")))
        self.folder = Path(root) / f"{label}-{self._key_sha[:20]}"
        readable = _key_text(key, indent=1) + "\n"
        path = self.folder / "key.json"
        try:
            existing = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            existing = None
        except (OSError, UnicodeDecodeError):
            existing = ""
        if existing != readable:
            if existing is not None:
                warnings.warn(f"{path} held another key; rewriting it (each chunk is checked against its own key)",
                              RuntimeWarning, stacklevel=2)
            write_bytes(path, readable.encode("utf-8"))

    def path(self, i: int) -> Path:
        """Where chunk ``i`` lives."""
        i = integer("i", i, minimum=0)
        return self.folder / f"chunk-{i:05d}.npz"

    def _digest(self, arrays: Mapping[str, np.ndarray]) -> str:
        h = hashlib.sha256(self._key_sha.encode())
        for name in sorted(arrays):
            dtype, shape, data = _array_parts(arrays[name])
            h.update(json.dumps([name, dtype, shape]).encode() + b"\0")
            h.update(data)
        return h.hexdigest()

    def save(self, i: int, chunk: Mapping[str, np.ndarray]) -> Path:
        """Write chunk ``i`` atomically, with the digest that ``load`` checks; returns its path."""
        path = self.path(i)
        if not isinstance(chunk, Mapping) or not chunk:
            raise ValueError(f"chunk={type(chunk).__name__} is not allowed; pass a non-empty dict of arrays")
        arrays = {}
        for name, value in chunk.items():
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise ValueError(f"chunk[{name!r}] of dtype object is not allowed; it could only be read by unpickling")
            arrays[_check_name("chunk field", name)] = array
        arrays[_DIGEST_FIELD] = np.array(self._digest(arrays))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        return write_bytes(path, buffer.getvalue())

    def load(self, i: int, rows: int, fields: Mapping[str, np.dtype | type | str]) -> dict[str, np.ndarray] | None:
        """Chunk ``i`` if it is there and intact, else None (a damaged file is reported and deleted).

        Intact: a zip of ``.npy`` members readable without pickle, exactly ``fields`` (name →
        dtype) plus the digest, each with ``rows`` entries on its leading axis, and a digest that
        matches this key and these bytes.
        """
        path = self.path(i)
        rows = integer("rows", rows, minimum=1)
        if not isinstance(fields, Mapping) or not fields:
            raise ValueError(f"fields={fields!r} is not allowed; pass a non-empty dict of name -> dtype")
        try:
            expected = {_check_name("fields key", k): np.dtype(v) for k, v in fields.items()}
        except TypeError:
            raise ValueError(f"fields={fields!r} is not allowed; its values must be NumPy dtypes") from None
        try:
            data = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except Exception as exc:  # whatever a damaged file makes the reader raise, the answer is: recompute
            return self._reject(path, f"{type(exc).__name__}: {exc}")
        if not isinstance(data, np.lib.npyio.NpzFile):
            return self._reject(path, "not an .npz archive")
        try:
            with data:
                arrays = {name: data[name] for name in data.files}
        except Exception as exc:  # bad CRC, truncated member, object array refused without pickle, ...
            return self._reject(path, f"{type(exc).__name__}: {exc}")
        problem = self._problem(arrays, rows, expected)
        return arrays if problem is None else self._reject(path, problem)

    def _problem(self, arrays: dict, rows: int, expected: dict) -> str | None:
        if not all(isinstance(a, np.ndarray) for a in arrays.values()):
            return "a member is not an .npy array"
        digest = arrays.pop(_DIGEST_FIELD, None)
        if digest is None or digest.shape != () or digest.dtype.kind != "U":
            return "no content digest"
        if set(arrays) != set(expected):
            return f"fields {sorted(arrays)}, expected {sorted(expected)}"
        for name, dtype in expected.items():
            if arrays[name].dtype != dtype:
                return f"{name} has dtype {arrays[name].dtype}, expected {dtype}"
            if arrays[name].ndim == 0 or len(arrays[name]) != rows:
                return f"{name} has shape {arrays[name].shape}, expected {rows} rows"
        if str(digest) != self._digest(arrays):
            return "content digest does not match (damaged, or written for another key)"
        return None

    @staticmethod
    def _reject(path: Path, reason: str) -> None:
        warnings.warn(f"cache chunk {path} is unusable ({reason}); recomputing it", RuntimeWarning, stacklevel=3)
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return None
