"""Settings every notebook shares: profile names, device choice, repository-relative paths."""
from __future__ import annotations

import os
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


def resolve_path(path: str | os.PathLike) -> Path:
    """Relative paths mean the repository root, whichever directory the notebook runs from."""
    if not isinstance(path, (str, os.PathLike)):
        raise _checks.refuse("path", path, "path must be a str or os.PathLike")
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def data_root() -> Path:
    """Where real datasets live: $MAMLPAPER_DATA, else data/ in the repository."""
    return resolve_path(os.environ.get("MAMLPAPER_DATA", "data"))
