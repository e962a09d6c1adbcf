"""The one temp-and-rename writer: a target holds its old content or its new, never a part, never a stray temp."""
import os

import pytest

from mamlpaper import atomic


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_bytes_creates_parents_and_leaves_only_the_target(tmp_path):
    target = tmp_path / "a" / "b" / "data.bin"
    assert atomic.write_bytes(target, b"new") == target
    assert target.read_bytes() == b"new"
    assert listing(target.parent) == ["data.bin"]
    atomic.write_bytes(str(target), bytearray(b"newer"))
    assert target.read_bytes() == b"newer"


def test_temp_is_a_hidden_empty_file_beside_the_target(tmp_path):
    target = tmp_path / "fig.png"
    with atomic.atomic_path(target) as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".fig.png.") and temp.suffix == ".tmp"
        assert temp.exists() and temp.stat().st_size == 0
        assert not target.exists()
        with open(temp, "wb") as handle:  # the savefig way: through a handle
            handle.write(b"png")
    assert target.read_bytes() == b"png"
    assert listing(tmp_path) == ["fig.png"]


def test_a_writer_given_the_path_as_a_string(tmp_path):
    """papermill opens the output path itself."""
    target = tmp_path / "run.ipynb"
    with atomic.atomic_path(target) as temp:
        with open(str(temp), "w") as handle:
            handle.write("{}")
    assert target.read_text() == "{}"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failure_keeps_the_old_target_and_removes_the_temp(tmp_path, error):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(error):
        with atomic.atomic_path(target) as temp:
            temp.write_bytes(b"half")
            raise error()
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["data.bin"]


def test_a_failure_before_any_target_existed_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic.atomic_path(tmp_path / "new.bin") as temp:
            temp.write_bytes(b"half")
            raise ValueError("writer failed")
    assert listing(tmp_path) == []


def test_all_targets_appear_together_or_none_does(tmp_path):
    png, pdf = tmp_path / "fig.png", tmp_path / "fig.pdf"
    png.write_bytes(b"old png")
    pdf.write_bytes(b"old pdf")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_paths([png, pdf]) as (tmp_png, tmp_pdf):
            tmp_png.write_bytes(b"new png")  # rendered
            raise KeyboardInterrupt()  # while rendering the PDF
    assert (png.read_bytes(), pdf.read_bytes()) == (b"old png", b"old pdf")
    assert listing(tmp_path) == ["fig.pdf", "fig.png"]
    with atomic.atomic_paths([png, pdf]) as (tmp_png, tmp_pdf):
        tmp_png.write_bytes(b"new png")
        tmp_pdf.write_bytes(b"new pdf")
        assert (png.read_bytes(), pdf.read_bytes()) == (b"old png", b"old pdf")  # nothing renamed mid-way
    assert (png.read_bytes(), pdf.read_bytes()) == (b"new png", b"new pdf")
    assert listing(tmp_path) == ["fig.pdf", "fig.png"]


def test_a_writer_may_keep_its_failed_output_by_moving_the_temp(tmp_path):
    """The pipeline keeps a failed notebook as <name>.failed.ipynb for the reader."""
    target, failed = tmp_path / "nb.ipynb", tmp_path / "nb.failed.ipynb"
    with pytest.raises(RuntimeError, match="cell 3"):
        with atomic.atomic_path(target) as temp:
            try:
                temp.write_text("executed up to cell 3")
                raise RuntimeError("cell 3 raised")
            except BaseException:
                os.replace(temp, failed)
                raise
    assert failed.read_text() == "executed up to cell 3"
    assert listing(tmp_path) == ["nb.failed.ipynb"]


def test_data_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), replace(a, b))[1])
    with atomic.atomic_paths([tmp_path / "a", tmp_path / "b"]) as temps:
        for temp in temps:
            temp.write_bytes(b"x")
    assert events == ["fsync", "fsync", "replace", "replace"]


def test_an_existing_file_with_the_temp_name_is_never_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: "fixed")
    squatter = tmp_path / ".data.bin.fixed.tmp"
    squatter.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        with atomic.atomic_path(tmp_path / "data.bin"):
            pass
    assert squatter.read_bytes() == b"someone else's"
    assert not (tmp_path / "data.bin").exists()


def test_the_target_gets_the_permissions_of_a_plain_open(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic.write_bytes(tmp_path / "data.bin", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "data.bin").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("targets, message", [
    ([], "at least one"),
    ("fig.png", "sequence of paths"),
    (["a.png", "a.png"], "appear once"),
    (["."], "must name a file"),
])
def test_bad_targets_are_refused_before_anything_is_written(tmp_path, monkeypatch, targets, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        with atomic.atomic_paths(targets):
            pass
    assert listing(tmp_path) == []


def test_write_bytes_refuses_text(tmp_path):
    with pytest.raises(ValueError, match="payload=str is not allowed; pass bytes"):
        atomic.write_bytes(tmp_path / "data.bin", "text")
    assert listing(tmp_path) == []
