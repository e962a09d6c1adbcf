"""Write files so that a reader sees the old content or the new, never half of one.

Every writer (cache chunks, figures, executed notebooks) renders into a hidden temporary file
beside its target and renames it into place only when the writer returned. A failure, or a
KeyboardInterrupt, deletes the temporary file and leaves the target as it was. The temporary
file lives in the target's directory because a rename is atomic only within one file system.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


def _targets(targets: Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(targets, (str, bytes, os.PathLike)):
        raise ValueError(f"targets={targets!r} is not allowed; pass a sequence of paths (atomic_path takes one)")
    paths = [Path(t) for t in targets]
    if not paths:
        raise ValueError("targets=[] is not allowed; pass at least one path")
    seen = set()
    for path in paths:
        if not path.name or path.is_dir():
            raise ValueError(f"target={str(path)!r} is not allowed; it must name a file, not a directory")
        absolute = os.path.abspath(path)
        if absolute in seen:
            raise ValueError(f"target={str(path)!r} is not allowed; each target may appear once")
        seen.add(absolute)
    return paths


def _create_temp(target: Path) -> Path:
    """A new empty file (O_EXCL: never someone else's) with the permissions a plain open would give."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return temp


def _fsync(path: Path) -> None:
    """Flush the written bytes to disk before the rename, so a power cut cannot expose an empty file.

    Best effort: a file system that refuses fsync still gets an atomic rename.
    """
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_paths(targets: Iterable[str | os.PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for files that must appear together (a figure's PNG and PDF).

    Yields one temporary path per target, in order. When the block ends normally, all are
    renamed onto their targets; when it raises, none is, and every temporary file is deleted.
    The renames themselves run one after another: an interrupt between two of them can leave
    the first target new and the second old, but never a partial file.

    A writer that wants to keep a failed output (an executed notebook, for reading the error)
    moves its temporary file away itself before re-raising; a missing temporary is not an error.
    """
    paths = _targets(targets)
    temps: list[Path] = []
    try:
        for target in paths:
            temps.append(_create_temp(target))
        yield list(temps)
        for temp in temps:
            _fsync(temp)
        for temp, target in zip(temps, paths):
            os.replace(temp, target)
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path that replaces ``target`` when the block ends normally.

    Write to it by name (``papermill.execute_notebook(..., str(tmp))``) or through a handle
    (``with open(tmp, "wb") as fh: fig.savefig(fh)``). Parent directories are created.
    """
    with atomic_paths([target]) as (temp,):
        yield temp


def write_bytes(target: str | os.PathLike, payload: bytes) -> Path:
    """Replace ``target`` by ``payload`` atomically; returns the target's path."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"payload={type(payload).__name__} is not allowed; pass bytes")
    with atomic_path(target) as temp:
        temp.write_bytes(payload)
    return Path(target)
