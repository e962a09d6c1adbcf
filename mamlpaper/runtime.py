"""Settings every notebook shares: profile names, device choice, repository-relative paths."""
from __future__ import annotations

import os
from pathlib import Path

import torch

PROFILES = ("smoke", "default", "paper")
REPO_ROOT = Path(__file__).resolve().parent.parent


def check_profile(name: str) -> str:
    """Fail early on a misspelt profile instead of silently running the wrong scale."""
    if name not in PROFILES:
        raise ValueError(f"profile={name!r} is not allowed; choose one of {', '.join(PROFILES)}")
    return name


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' means the GPU when there is one, so notebooks run unchanged on both."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r} is not a torch device; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
    return device


def resolve_path(path: str | os.PathLike) -> Path:
    """Relative paths mean the repository root, whichever directory the notebook runs from."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def data_root() -> Path:
    """Where real datasets live: $MAMLPAPER_DATA, else data/ in the repository."""
    return resolve_path(os.environ.get("MAMLPAPER_DATA", "data"))
