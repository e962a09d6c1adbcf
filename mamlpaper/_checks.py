"""Argument checks shared by every public function: one rule, one message, before any work.

A bad argument is refused with a ``ValueError`` whose one line names the parameter, the value
seen and what is allowed: ``name=value is not allowed; <rule>``. NumPy and torch scalars pass
wherever Python numbers do; ``bool`` never counts as a number, and a string never as a rate.
"""
from __future__ import annotations

import numbers
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn


def describe(value) -> str:
    """A value as one short line for a message: arrays by dtype and shape."""
    if isinstance(value, Tensor) and value.ndim > 0:
        text = f"{str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    elif isinstance(value, np.ndarray) and value.ndim > 0:
        text = f"{value.dtype} array of shape {value.shape}"
    else:
        text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def refuse(name: str, value, rule: str, *, shown: str | None = None) -> ValueError:
    """The one-line error every check raises; ``shown`` replaces the value's repr (e.g. a model's type)."""
    return ValueError(f"{name}={describe(value) if shown is None else shown} is not allowed; {rule}")


def _range_text(minimum, maximum) -> str:
    if maximum is None:
        return f">= {minimum}" if minimum is not None else ""
    return f"in [{minimum}, {maximum}]" if minimum is not None else f"<= {maximum}"


def integer(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Any ``numbers.Integral`` (NumPy ints included) in range; ``bool`` and ``2.0`` are refused."""
    rule = f"{name} must be an integer {_range_text(minimum, maximum)}".rstrip()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise refuse(name, value, rule)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise refuse(name, value, rule)
    return int(value)


def _scalar(name: str, value, rule: str) -> float:
    """A real scalar: Python or NumPy number, 0-d array or 0-d real tensor."""
    if isinstance(value, Tensor):
        if value.ndim != 0 or value.dtype == torch.bool or value.is_complex():
            raise refuse(name, value, rule)
        return float(value)
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise refuse(name, value, rule)
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise refuse(name, value, rule)
    return float(value)


def real(name: str, value, *, above: float | None = None, at_least: float | None = None,
         allow_inf: bool = False) -> float:
    """A real number, finite unless ``allow_inf``, and > ``above`` or >= ``at_least``."""
    bound = f" > {above:g}" if above is not None else f" >= {at_least:g}" if at_least is not None else ""
    rule = f"{name} must be a {'' if allow_inf else 'finite '}real number{bound}" + (" or inf" if allow_inf else "")
    v = _scalar(name, value, rule)
    if v != v or (not allow_inf and abs(v) == float("inf")):
        raise refuse(name, value, rule)
    if (above is not None and not v > above) or (at_least is not None and not v >= at_least):
        raise refuse(name, value, rule)
    return v


def rate(name: str, value, *, allow_zero: bool = False) -> float:
    """A learning rate: finite and > 0 (or >= 0 where 0 means plain gradient descent)."""
    return real(name, value, at_least=0.0) if allow_zero else real(name, value, above=0.0)


def choice(name: str, value, allowed: Iterable[str]) -> str:
    """One of a fixed set of names."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise refuse(name, value, f"choose one of {', '.join(allowed)}")
    return value


def flag(name: str, value) -> bool:
    """True or False, not a truthy stand-in."""
    if not isinstance(value, (bool, np.bool_)):
        raise refuse(name, value, f"{name} must be True or False")
    return bool(value)


def real_array(name: str, values, *, finite: bool = True) -> np.ndarray:
    """Real numbers of any shape (finite unless told), as float64; strings, booleans, objects are refused."""
    rule = f"{name} must be {'finite ' if finite else ''}real numbers"
    if isinstance(values, (str, bytes, Mapping, set, frozenset)) or values is None:
        raise refuse(name, values, rule)
    if isinstance(values, Tensor):
        if values.dtype == torch.bool or values.is_complex():
            raise refuse(name, values, rule)
        values = values.detach().cpu().to(torch.float64).numpy()
    if not isinstance(values, np.ndarray) or values.dtype.kind == "O":
        try:
            objects = np.array(values, dtype=object)
        except (TypeError, ValueError):
            raise refuse(name, values, rule) from None
        if not all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in objects.flat):
            raise refuse(name, values, rule)
        values = objects
    if values.dtype.kind not in "iufO":
        raise refuse(name, values, rule)
    array = values.astype(np.float64)
    if array.size == 0:
        raise refuse(name, values, f"{name} must hold at least one value")
    if finite and not np.all(np.isfinite(array)):
        raise refuse(name, values, f"{rule}; it contains {float(array[~np.isfinite(array)].flat[0])}")
    return array


def grid(name: str, values, *, allow_zero: bool = False, increasing: bool = False) -> np.ndarray:
    """A non-empty 1-D grid of rates without duplicates (strictly increasing if asked), as float64."""
    array = real_array(name, values)
    if array.ndim != 1:
        raise refuse(name, values, f"{name} must be a 1-D sequence (it has shape {array.shape})")
    bad = array < 0 if allow_zero else array <= 0
    if bad.any():
        raise refuse(name, values, f"every entry must be {'>= 0' if allow_zero else '> 0'}; "
                                   f"{name}[{int(np.flatnonzero(bad)[0])}] is {float(array[bad][0]):g}")
    unique, counts = np.unique(array, return_counts=True)
    if (counts > 1).any():
        raise refuse(name, values, f"entries must be distinct; {float(unique[counts > 1][0]):g} repeats")
    if increasing and (np.diff(array) <= 0).any():
        i = int(np.flatnonzero(np.diff(array) <= 0)[0])
        raise refuse(name, values, f"{name} must be strictly increasing; {name}[{i}:{i + 2}] = {array[i:i + 2].tolist()}")
    return array


def device(value="auto") -> torch.device:
    """'auto' (the GPU when there is one), 'cpu', 'cuda[:N]' or a torch.device; CUDA only if present."""
    rule = "use 'auto', 'cpu' or 'cuda[:N]'"
    if isinstance(value, str) and value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(value, (str, torch.device)):
        raise refuse("device", value, rule)
    try:
        resolved = torch.device(value)
    except (RuntimeError, ValueError):
        raise refuse("device", value, rule) from None
    if resolved.type not in ("cpu", "cuda"):
        raise refuse("device", value, rule)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise refuse("device", value, "CUDA is not available here; use 'auto' or 'cpu'")
    return resolved


def dtype(value, allowed: Mapping[str, torch.dtype]) -> torch.dtype:
    """A floating dtype given by name or as a torch.dtype."""
    if isinstance(value, str) and value in allowed:
        return allowed[value]
    if isinstance(value, torch.dtype) and value in allowed.values():
        return value
    raise refuse("dtype", value, f"choose one of {', '.join(allowed)}")


def seeds(value) -> tuple[int, ...]:
    """Seeds of a batch of runs: a count n means 0…n-1; a list must hold distinct integers ≥ 0
    (a repeated seed is the same run twice)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return tuple(range(integer("seeds", value, minimum=1)))
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) == 0:
        raise refuse("seeds", value, "seeds must be a count >= 1 or a non-empty list of integers >= 0")
    values = tuple(integer("seeds entry", v, minimum=0) for v in value)
    if len(set(values)) != len(values):
        raise refuse("seeds", value, "seeds must be distinct (a repeated seed is the same run twice)")
    return values


def text(name: str, value) -> str:
    """A label or title: a str, not something that merely prints as one."""
    if not isinstance(value, str):
        raise refuse(name, value, f"{name} must be a str")
    return value


def function(name: str, value):
    """Something to call (a loss, a sampler, a criterion)."""
    if not callable(value):
        raise refuse(name, value, f"{name} must be callable")
    return value


def generator(value) -> torch.Generator:
    """Every random draw comes from an explicit generator, so the same seed gives the same numbers."""
    if not isinstance(value, torch.Generator):
        raise refuse("generator", value, "pass a torch.Generator, e.g. torch.Generator().manual_seed(0)",
                     shown=type(value).__name__)
    return value


def parameter_kinds(tensors: Iterable) -> set:
    """The distinct (dtype, device) of a collection of tensors, or type names for non-tensors."""
    return {(t.dtype, t.device) if isinstance(t, Tensor) else type(t).__name__ for t in tensors}


def module(value, name: str = "model") -> nn.Module:
    """An ``nn.Module`` with parameters, all of one floating dtype and device."""
    if not isinstance(value, nn.Module):
        raise refuse(name, value, f"{name} must be a torch.nn.Module", shown=type(value).__name__)
    kinds = parameter_kinds(value.parameters())
    if not kinds:
        raise refuse(name, value, f"{name} has no parameters; MAML needs something to adapt", shown=type(value).__name__)
    if len(kinds) != 1 or not next(iter(kinds))[0].is_floating_point:
        raise refuse(name, value, f"{name}'s parameters must share one floating dtype and device; "
                                  f"they hold {sorted(map(str, kinds))}", shown=type(value).__name__)
    return value


def params(value, name: str = "params") -> dict:
    """A non-empty dict of tensors of one floating dtype and device: θ as a pytree."""
    if not isinstance(value, dict) or not value:
        raise refuse(name, value, f"{name} must be a non-empty dict of tensors, e.g. maml.parameters_of(model)",
                     shown="{}" if isinstance(value, dict) else type(value).__name__)
    kinds = parameter_kinds(value.values())
    if len(kinds) != 1 or not all(isinstance(k, tuple) and k[0].is_floating_point for k in kinds):
        raise refuse(name, value, f"{name} must hold tensors of one floating dtype and device; "
                                  f"they hold {sorted(map(str, kinds))}", shown=f"dict of {len(value)}")
    return value
