"""Settings every notebook shares: profile names, device choice, where sweeps run, repository-relative paths."""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import torch

from . import _checks

PROFILES = ("smoke", "default", "paper")
REPO_ROOT = Path(__file__).resolve().parent.parent


def check_profile(name: str) -> str:
    """Fail early on a misspelt profile instead of silently running the wrong scale."""
    return _checks.choice("profile", name, PROFILES)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' means the GPU when there is one, so notebooks run unchanged on both."""
    return _checks.device(name)


def use_threads(threads, profile: str) -> int:
    """Set torch's CPU threads for a notebook: ``threads`` when positive, else the profile's (0 = torch's
    default; one for ``smoke``, whose tensors are tiny and which runs beside other processes in the test
    suite, where one thread is several times faster than two competing for the cores). Returns the count."""
    profile = check_profile(profile)
    threads = _checks.integer("threads", threads, minimum=0) or (1 if profile == "smoke" else 0)
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


EXECUTORS = ('"" (this process), "processes:N" (a pool of N local processes), or a Dask scheduler address '
             '(tcp://host:8786)')
"""The forms of :func:`executor`'s one string, which a papermill parameter and ``make`` can carry."""


@contextlib.contextmanager
def executor(address: str = ""):
    """The executor a notebook's sweeps hand their chunks to (``run_sweep(executor=...)``), named by
    one string, and shut down on exit: None for "", a pool of spawned processes for "processes:N",
    a Dask client's executor for a scheduler address (``make figures DASK_SCHEDULER=tcp://...``)."""
    if not isinstance(address, str):
        raise _checks.refuse("executor", address, f"executor must be a string: {EXECUTORS}", shown=type(address).__name__)
    if address == "":
        yield None
    elif re.fullmatch(r"processes:[1-9][0-9]*", address):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(int(address.split(":")[1]), mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
    elif re.fullmatch(r"(tcp|tls|ucx)://[^\s/]+", address):
        try:
            import distributed
        except ImportError:
            raise ValueError(f"executor={address!r} needs Dask: pip install 'dask[distributed]'") from None
        with distributed.Client(address) as client:
            yield client.get_executor()
    else:
        raise _checks.refuse("executor", address, f"executor must be one of: {EXECUTORS}")


def notebook_executor(address: str = ""):
    """:func:`executor` for a notebook, whose sweeps span many cells: open until the kernel exits."""
    import atexit

    scope = contextlib.ExitStack()
    opened = scope.enter_context(executor(address))
    atexit.register(scope.close)
    return opened


def resolve_path(path: str | os.PathLike) -> Path:
    """Relative paths mean the repository root, whichever directory the notebook runs from."""
    if not isinstance(path, (str, os.PathLike)):
        raise _checks.refuse("path", path, "path must be a str or os.PathLike")
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def data_root() -> Path:
    """Where real datasets live: $MAMLPAPER_DATA, else data/ in the repository."""
    return resolve_path(os.environ.get("MAMLPAPER_DATA", "data"))


def plain(value, *, strict: bool = False, name: str = "value"):
    """``value`` as plain JSON: NumPy and pandas scalars become Python ones, tuples and arrays lists,
    and a number that is not finite (a censored bound, an undetermined ratio) or missing becomes None.

    ``strict``: refuse instead what JSON would not give back as it was — a number that is not
    finite, a missing value, a key that is not a string — for labels that must read back exactly;
    the error names the entry (``name``, ``name[1]``, ``name.key``).
    """
    import math
    import numbers

    import numpy as np
    import pandas as pd

    rule = f"{name} must be a plain JSON value: str, int, finite float, bool, None, or lists and str-keyed dicts of them"
    if isinstance(value, dict):
        if strict and not all(isinstance(k, str) for k in value):
            raise _checks.refuse(name, value, rule)
        return {str(k): plain(v, strict=strict, name=f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v, strict=strict, name=f"{name}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    missing = value is pd.NA or value is pd.NaT
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return float(value)
    if (missing or isinstance(value, numbers.Real)) and not strict:
        return None
    raise _checks.refuse(name, value, rule, shown=None if missing or isinstance(value, numbers.Real)
                         else type(value).__name__)


def write_results(name: str, results: dict, directory: str | os.PathLike) -> Path:
    """Write ``<directory>/<name>.json`` atomically: the numbers a notebook reports, which the
    README quotes (a test compares them), beside the figures they belong to."""
    import json

    from .atomic import write_bytes

    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise _checks.refuse("name", name, "name must be a bare file stem such as '02_linear_regression'")
    if not isinstance(results, dict):
        raise _checks.refuse("results", results, "results must be a dict", shown=type(results).__name__)
    try:
        text = json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise _checks.refuse("results", results, f"results must be JSON without NaN or inf ({error})",
                             shown="dict") from None
    return write_bytes(resolve_path(directory) / f"{name}.json", (text + "\n").encode())
