"""The sweep cache: a key that misses on any change that could change a result, chunks never read damaged.

The key (``sweep._cache_key``) holds the package's code (``code_digest``), library versions,
the model (``model_identity``), the data and run settings, and the criterion and readout by
``callable_name``: an importable name plus what stands for its code, or the problem's
``cache_token``; code with neither is refused, never hashed by guesswork. Every chunk embeds a
digest of the key and its arrays: a damaged or foreign one is reported, deleted and recomputed,
and nothing is ever unpickled.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from . import _checks
from ._checks import integer
from .atomic import write_bytes

PACKAGE_ROOT = Path(__file__).resolve().parent
_PLAIN = (bool, int, float, str, type(None))
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
    """sha256 over every ``*.py`` under ``root`` with its relative path: any edit to the package
    misses, with no hand-kept list of the modules a result depends on. Without ``root``: the
    sources this process imported: results of code edited under a running kernel key as what ran."""
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


_distributions = functools.cache(importlib.metadata.packages_distributions)


def _code_of(module_name: str) -> str | None:
    """What stands for a module's code: nothing in this package or the standard library (the key
    holds ``code_digest`` and ``versions``), an installed distribution's version, else the
    sha256 of its file (a script, a helper beside a notebook); None without a file."""
    root = module_name.partition(".")[0]
    if root == __package__ or root in sys.stdlib_module_names:
        return ""
    if distributions := _distributions().get(root):
        return "@" + importlib.metadata.version(distributions[0])
    file = getattr(sys.modules.get(module_name), "__file__", None)
    return f" sha256:{_sha256(Path(file).read_bytes())}" if file and Path(file).is_file() else None


def callable_name(fn, parameter: str, cache_token: str | None = None) -> str:
    """``module.qualname`` of a module-level function or class, verified to import back to ``fn``,
    plus what stands for its code; else ``token:<cache_token>``, the caller vouching for it.

    A lambda, closure, local function, bound method or notebook cell has no such name: without a
    token it is refused before any run rather than keyed by a guess that could hit a stale result.
    """
    _checks.function(parameter, fn)
    module_name = getattr(fn, "__module__", None)
    for path in (getattr(fn, "__qualname__", None), getattr(fn, "__name__", None)):
        obj = sys.modules.get(module_name) if isinstance(module_name, str) and isinstance(path, str) else None
        for part in path.split(".") if obj is not None else ():
            obj = getattr(obj, part, None)
        if obj is fn and (code := _code_of(module_name)) is not None:
            return f"{module_name}.{path}{code}"
    if cache_token is not None:
        return f"token:{cache_token}"
    raise _checks.refuse(parameter, fn, "the sweep cache names it by module.qualname: pass a module-level "
                                        "function or class, or set MetaProblem.cache_token")


def model_identity(model: nn.Module, cache_token: str | None = None) -> dict:
    """Layer classes (by ``callable_name``) and plain attributes (sizes, training mode), repr, the
    name, dtype and shape of each parameter and buffer (tied ones once), and the digest of their
    values (θ0): ReLU→Tanh with equal values misses, and so does one ulp."""
    _checks.module(model)
    layers = {name: [callable_name(type(m), "model layer", cache_token),
                     {k: v for k, v in vars(m).items() if not k.startswith("_") and isinstance(v, _PLAIN)}]
              for name, m in model.named_modules()}
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return {"layers": layers, "repr": repr(model), "tensors": [[n, str(t.dtype), list(t.shape)] for n, t in tensors],
            "theta0": tensor_digest([t for _, t in tensors])}


def _json_default(value):
    """Arrays by digest (str() of a large one elides its middle); NumPy scalars as numbers; else str()."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return "sha256:" + tensor_digest(value)
    return value.item() if isinstance(value, np.generic) else str(value)


def _key_text(key: Mapping, **layout) -> str:
    if not isinstance(key, Mapping):
        raise ValueError(f"key={type(key).__name__} is not allowed; pass a dict")
    try:
        return json.dumps(dict(key), sort_keys=True, default=_json_default, ensure_ascii=False, **layout)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"key is not allowed; it must be JSON-serialisable with string keys ({exc})") from None


def _check_name(name: str, value) -> str:
    if not isinstance(value, str) or not value.isidentifier() or value.startswith("__"):
        raise ValueError(f"{name}={value!r} is not allowed; use a Python identifier not starting with '__'")
    return value


class ChunkCache:
    """The chunks of one key, in ``<root>/<label>-<sha256 of the key, 20 digits>/chunk-NNNNN.npz``.

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
        """Chunk ``i`` if intact: pickle-free ``.npy`` members, exactly ``fields`` (name → dtype) with
        ``rows`` entries each, and a digest of this key and these bytes. Else None (a damaged file
        is reported and deleted)."""
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
