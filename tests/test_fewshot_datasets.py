"""Few-shot data readers: each layout read the same way, splits by character from a seed, a cache
that is never stale and never written where it may not be, downloads that leave nothing half
valid, and files from the internet that cannot run code or write outside the data root.

Synthetic datasets are built in the exact layouts; the real Omniglot subset is used when the
shared data is there (read, never written).
"""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mamlpaper import runtime
from mamlpaper.fewshot import datasets
from mamlpaper.fewshot.datasets import DataInvalid, DataMissing, DownloadFailed

SMALL = ("images_background_small1", "images_background_small2")
FULL = ("images_background", "images_evaluation")


# --- builders of synthetic data in the real layouts ----------------------------------------------

def glyph(character: int, drawer: int) -> bytes:
    """A 105x105 1-bit PNG as Omniglot has them: black strokes on white. A block fills the top-left
    corner (to see inversion and rotation); a bar whose place depends on character and drawer
    tells the images apart."""
    image = Image.new("1", (105, 105), 1)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 34, 34], fill=0)
    draw.rectangle([40 + 4 * character, 50 + 3 * drawer, 44 + 4 * character, 100], fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def omniglot_files(part: str, characters, drawers: int = 3) -> dict[str, bytes]:
    """Member name -> PNG bytes for ``characters`` = [(alphabet, character_number, glyph_id)]."""
    return {f"{part}/{alphabet}/character{number:02d}/{glyph_id:04d}_{d + 1:02d}.png": glyph(glyph_id, d)
            for alphabet, number, glyph_id in characters for d in range(drawers)}


def write_zip(path: Path, members: dict[str, bytes], *, directories: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        if directories:  # the official zips list their folders too
            for folder in sorted({name.rsplit("/", 1)[0] + "/" for name in members}):
                archive.writestr(folder, b"")
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def small_subsets(root: Path, drawers: int = 3) -> Path:
    """Two subset zips sharing the character Greek/character01 (as the real ones share Greek and Latin)."""
    root.mkdir(parents=True, exist_ok=True)
    first = [("Greek", 1, 0), ("Greek", 2, 1), ("Korean", 1, 2), ("Korean", 2, 3)]
    second = [("Greek", 1, 0), ("Tagalog", 1, 4), ("Tagalog", 2, 5), ("Tagalog", 3, 6)]
    for part, characters in zip(SMALL, (first, second)):
        write_zip(root / f"{part}.zip", omniglot_files(part, characters, drawers))
    return root


def full_set_archives(drawers: int = 2) -> dict[str, bytes]:
    """Tiny stand-ins for images_background.zip and images_evaluation.zip, as bytes."""
    out = {}
    for k, part in enumerate(FULL):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            characters = [(f"Alphabet{k}", c, 3 * k + c) for c in range(1, 4)]
            for name, data in omniglot_files(part, characters, drawers).items():
                archive.writestr(name, data)
        out[f"{part}.zip"] = buffer.getvalue()
    return out


def rgb(seed: int, size=(84, 84)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def miniimagenet_csv(root: Path, split: str = "train", per_class: int = 3, odd_size=None) -> Path:
    """images/ + <split>.csv; the first image gets ``odd_size`` (width, height) when given."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = ["filename,label"]
    for c, label in enumerate(["n02", "n01"]):  # not sorted: the loader sorts classes
        for i in range(per_class):
            name = f"{label}{i:08d}.jpg"
            size = odd_size if (odd_size and c == 0 and i == 0) else (84, 84)
            rgb(10 * c + i, size).save(root / "images" / name, format="JPEG", quality=95)
            lines.append(f"{name},{label}")
    (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def miniimagenet_pickle(path: Path, images: np.ndarray, names, *, protocol: int = 4, shuffle: bool = False):
    """The mini-imagenet-cache layout: image_data (N, 84, 84, 3) and class_dict class -> indices."""
    flat = images.reshape(-1, *images.shape[2:])
    order = np.random.default_rng(0).permutation(len(flat)) if shuffle else np.arange(len(flat))
    per = images.shape[1]
    inverse = np.argsort(order)  # flat[i] is stored at position inverse[i]
    class_dict = {name: [int(inverse[c * per + i]) for i in range(per)] for c, name in enumerate(names)}
    path.write_bytes(pickle.dumps({"image_data": flat[order], "class_dict": class_dict}, protocol=protocol))
    return path


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# --- Omniglot: layout, pixels, split, rotations ---------------------------------------------------

def test_omniglot_zip_layout_decodes_to_inverted_28px(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    split = datasets.load_omniglot("train", root=root, rotations=(0,), cache=False)
    assert split.images.dtype == np.uint8 and split.images.shape[1:] == (3, 28, 28)
    assert all(name.endswith("/rot000") for name in split.class_names)
    image = split.images[0, 0]
    assert image[2, 2] == 255 and image[0, 27] == 0  # the top-left block is a stroke, white paper is 0
    assert 0 < np.mean((image > 0) & (image < 255)) < 0.2  # LANCZOS gives grey edges: not nearest-neighbour


def test_small_subsets_are_read_as_their_union(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    names = set()
    for split in datasets.SPLITS:
        loaded = datasets.load_omniglot(split, root=root, rotations=(0,), cache=False)
        names |= {n.rsplit("/", 1)[0] for n in loaded.class_names}
    assert names == {"Greek/character01", "Greek/character02", "Korean/character01", "Korean/character02",
                     "Tagalog/character01", "Tagalog/character02", "Tagalog/character03"}


def test_extracted_folders_read_like_the_zips(tmp_path):
    zipped = small_subsets(tmp_path / "zipped")
    folders = tmp_path / "folders"
    for part in SMALL:
        with zipfile.ZipFile(zipped / f"{part}.zip") as archive:
            archive.extractall(folders)
    for split in datasets.SPLITS:
        a = datasets.load_omniglot(split, root=zipped, cache=False)
        b = datasets.load_omniglot(split, root=folders, cache=False)
        assert a.class_names == b.class_names and np.array_equal(a.images, b.images)
        assert a.data_identity == b.data_identity


def test_split_sizes_are_vinyals_and_their_proportions():
    assert datasets.omniglot_split_sizes(1623) == datasets.VINYALS_SPLIT == (1028, 172, 423)
    assert datasets.omniglot_split_sizes(242) == (153, 26, 63)
    assert datasets.omniglot_split_sizes(3) == (1, 1, 1)


def test_split_is_by_character_seeded_and_disjoint(tmp_path):
    root = small_subsets(tmp_path / "omniglot")

    def characters(split, seed):
        loaded = datasets.load_omniglot(split, root=root, seed=seed, cache=False)
        return [n.rsplit("/", 1)[0] for n in loaded.class_names[::4]]

    parts = {split: characters(split, 0) for split in datasets.SPLITS}
    assert [len(p) for p in parts.values()] == list(datasets.omniglot_split_sizes(7))
    assert sorted(sum(parts.values(), [])) == sorted(set(sum(parts.values(), [])))  # disjoint, all 7
    assert parts == {split: characters(split, 0) for split in datasets.SPLITS}  # same seed, same split
    assert any(parts != {split: characters(split, seed) for split in datasets.SPLITS} for seed in range(1, 6))


def test_rotations_are_new_classes_counterclockwise(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    plain = datasets.load_omniglot("train", root=root, rotations=(0,), cache=False)
    rotated = datasets.load_omniglot("train", root=root, cache=False)
    assert len(rotated.class_names) == 4 * len(plain.class_names)
    assert rotated.class_names[:4] == tuple(f"{plain.class_names[0][:-7]}/rot{a:03d}" for a in (0, 90, 180, 270))
    for k in range(4):
        assert np.array_equal(rotated.images[k], np.rot90(plain.images[0], k, axes=(-2, -1)))
    corners = [rotated.images[k, 0] for k in range(4)]  # the top-left block goes round counterclockwise
    assert corners[0][2, 2] == corners[1][25, 2] == corners[2][25, 25] == corners[3][2, 25] == 255
    some = datasets.load_omniglot("train", root=root, rotations=(180,), cache=False)
    assert np.array_equal(some.images, rotated.images[2::4]) and some.data_identity != plain.data_identity


def test_characters_with_missing_drawers_are_reported(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    members = omniglot_files(SMALL[1], [("Tagalog", 1, 4), ("Tagalog", 2, 5)])
    del members[next(iter(members))]
    write_zip(root / f"{SMALL[1]}.zip", members)
    with pytest.raises(DataInvalid, match="drawers per character differ.*Tagalog/character01: 2"):
        datasets.load_omniglot(root=root, cache=False)


def test_a_file_that_is_not_a_zip_is_reported(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    (root / f"{SMALL[0]}.zip").write_bytes(b"<html>not a zip</html>")
    with pytest.raises(DataInvalid, match="is not a readable zip"):
        datasets.load_omniglot(root=root, cache=False)


@pytest.mark.parametrize("member", ["images_background_small1/../../escaped.png", "/etc/escaped.png",
                                    "images_background_small1/A/..\\..\\escaped.png", "C:/escaped.png"])
def test_zip_members_outside_the_archive_are_refused(tmp_path, member):
    root = small_subsets(tmp_path / "omniglot")
    members = omniglot_files(SMALL[0], [("Greek", 1, 0)])
    members[member] = glyph(9, 0)
    write_zip(root / f"{SMALL[0]}.zip", members, directories=False)
    with zipfile.ZipFile(root / f"{SMALL[0]}.zip") as archive:
        assert member in archive.namelist()  # the crafted name really is in the archive
    before = listing(tmp_path)
    with pytest.raises(DataInvalid, match="absolute path or one with '..'"):
        datasets.load_omniglot(root=root)
    assert listing(tmp_path) == before


# --- the decoded-array cache --------------------------------------------------------------------

def test_cache_is_written_beside_the_data_and_read_back(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    first = datasets.load_omniglot("val", root=root)
    assert sorted(p.name for p in root.iterdir()) == sorted([f"{p}.zip" for p in SMALL] + ["omniglot_small_28px.npz"])
    cache_file = root / "omniglot_small_28px.npz"
    stamp = cache_file.stat().st_mtime_ns
    second = datasets.load_omniglot("val", root=root)
    assert cache_file.stat().st_mtime_ns == stamp  # a hit: not rewritten
    assert second.class_names == first.class_names and np.array_equal(second.images, first.images)
    assert second.data_identity == first.data_identity


def test_cache_misses_when_a_source_changes_and_replaces_a_corrupt_one(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    before = datasets.load_omniglot("train", root=root, rotations=(0,))
    cache_file = root / "omniglot_small_28px.npz"
    write_zip(root / f"{SMALL[1]}.zip", omniglot_files(SMALL[1], [("Tagalog", 1, 4), ("Tagalog", 9, 8)]))
    changed = datasets.load_omniglot("train", root=root, rotations=(0,), seed=0)
    all_names = {n for s in datasets.SPLITS for n in datasets.load_omniglot(s, root=root, rotations=(0,)).class_names}
    assert "Tagalog/character09/rot000" in all_names and "Tagalog/character03/rot000" not in all_names
    assert changed.data_identity != before.data_identity
    cache_file.write_bytes(cache_file.read_bytes()[:200])  # truncated
    again = datasets.load_omniglot("train", root=root, rotations=(0,))
    assert np.array_equal(again.images, changed.images)
    with np.load(cache_file, allow_pickle=False) as stored:  # replaced by a whole one
        assert stored["images"].shape[1:] == (3, 28, 28)


def test_read_only_data_root_is_not_written_and_does_not_fail(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    before = listing(root)
    root.chmod(0o555)  # the permission bits say read-only; the loader honours them even as root
    try:
        loaded = datasets.load_omniglot("test", root=root)
        assert listing(root) == before
        explicit = datasets.load_omniglot("test", root=root, cache_dir=tmp_path / "cache")
    finally:
        root.chmod(0o755)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["omniglot_small_28px.npz"]
    assert explicit.data_identity == loaded.data_identity


def test_cache_false_neither_reads_nor_writes(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    (root / "omniglot_small_28px.npz").write_bytes(b"not even a zip")
    before = listing(root)
    datasets.load_omniglot(root=root, cache=False)
    assert listing(root) == before


# --- missing data ---------------------------------------------------------------------------------

@pytest.mark.parametrize("subset, says", [("auto", "download=True"), ("full", "images_evaluation.zip"),
                                          ("small", "images_background_small2.zip")])
def test_missing_omniglot_says_what_to_put_where(tmp_path, subset, says):
    with pytest.raises(DataMissing) as caught:
        datasets.load_omniglot(root=tmp_path, subset=subset)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path) in message and says in message
    assert isinstance(caught.value, FileNotFoundError)


def test_the_default_root_is_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLPAPER_DATA", str(tmp_path))
    small_subsets(tmp_path / "omniglot")
    assert datasets.load_omniglot(cache=False).images.shape[1:] == (3, 28, 28)
    with pytest.raises(DataMissing, match=str(tmp_path / "miniimagenet")):
        datasets.load_miniimagenet()


def test_auto_prefers_the_full_set_and_falls_back_to_the_small_one(tmp_path):
    root = small_subsets(tmp_path / "omniglot")
    small = datasets.load_omniglot("train", root=root, rotations=(0,), cache=False)
    for name, data in full_set_archives().items():
        (root / name).write_bytes(data)
    full = datasets.load_omniglot("train", root=root, rotations=(0,), cache=False)
    assert all(n.startswith("Alphabet") for n in full.class_names) and full.images.shape[1] == 2
    again = datasets.load_omniglot("train", root=root, subset="small", rotations=(0,), cache=False)
    assert again.data_identity == small.data_identity


# --- download -----------------------------------------------------------------------------------

@pytest.fixture
def server():
    """A local HTTP server: ``routes[path] = (status, headers, body)``; the body may be cut short."""
    routes: dict[str, tuple[int, dict, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, headers, body = routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"not found"))
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield routes, f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


ZIP = {"Content-Type": "application/zip"}


def test_download_verifies_and_renames_into_place(tmp_path, server):
    routes, base = server
    data = full_set_archives()["images_background.zip"]
    routes["/bg.zip"] = (200, ZIP, data)
    table = {"images_background.zip": (base + "/bg.zip", md5(data))}
    paths = datasets.download_omniglot(tmp_path, archives=table, timeout=5)
    assert paths == (tmp_path / "images_background.zip",) and paths[0].read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["images_background.zip"]
    routes.clear()  # present archives are not fetched again
    datasets.download_omniglot(tmp_path, archives=table, timeout=5)


def truncated(data: bytes):
    """Content-Length of the whole, half the bytes, then the connection closes."""
    return 200, {**ZIP, "Content-Length": str(len(data))}, data[: len(data) // 2]


@pytest.mark.parametrize("case, says", [
    ("wrong_checksum", "gave an MD5 of"),
    ("html", "answered with an HTML page"),
    ("html_as_zip", "not a complete zip"),
    ("truncated", "stopped after"),
    ("truncated_unannounced", "not a complete zip"),
    ("not_found", "HTTP Error 404"),
    ("refused", "Connection refused"),
])
def test_download_failures_raise_one_error_and_leave_nothing(tmp_path, server, case, says):
    routes, base = server
    data = full_set_archives()["images_background.zip"]
    page = b"<!DOCTYPE html><html><body>moved</body></html>"
    routes.update({
        "/wrong_checksum": (200, ZIP, full_set_archives(drawers=1)["images_background.zip"]),
        "/html": (200, {"Content-Type": "text/html; charset=utf-8"}, page),
        "/html_as_zip": (200, ZIP, page),
        "/truncated": truncated(data),
        "/truncated_unannounced": (200, ZIP, data[: len(data) // 2]),
    })
    url = base + "/" + case
    if case == "refused":
        with socket.socket() as probe:  # a port that nothing listens on
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/x.zip"
    target = tmp_path / "omniglot"
    with pytest.raises(DownloadFailed) as caught:
        datasets.download_omniglot(target, archives={"images_background.zip": (url, md5(data))}, timeout=5)
    message = str(caught.value)
    assert says in message and "\n" not in message and url in message
    assert not target.exists() or list(target.iterdir()) == []


def test_load_with_download_fetches_the_full_set(tmp_path, server, monkeypatch):
    routes, base = server
    table = {}
    for name, data in full_set_archives().items():
        routes["/" + name] = (200, ZIP, data)
        table[name] = (base + "/" + name, md5(data))
    monkeypatch.setattr(datasets, "OMNIGLOT_ARCHIVES", table)
    root = tmp_path / "omniglot"
    loaded = [datasets.load_omniglot(s, root=root, download=True, rotations=(0,)) for s in datasets.SPLITS]
    assert sorted(sum((list(s.class_names) for s in loaded), [])) == sorted(
        f"Alphabet{k}/character{c:02d}/rot000" for k in range(2) for c in range(1, 4))
    assert {p.name for p in root.iterdir()} == set(table) | {"omniglot_full_28px.npz"}


# --- MiniImagenet ----------------------------------------------------------------------------------

def test_miniimagenet_csv_layout(tmp_path):
    root = miniimagenet_csv(tmp_path / "miniimagenet", "val", odd_size=(120, 90))
    loaded = datasets.load_miniimagenet("val", root=root, cache=False)
    assert loaded.class_names == ("n01", "n02")
    assert loaded.images.shape == (2, 3, 84, 84, 3) and loaded.images.dtype == np.uint8
    expected = np.asarray(Image.open(root / "images" / "n0100000001.jpg").convert("RGB"))
    assert np.array_equal(loaded.images[0, 1], expected)  # 84x84 files are taken as they are
    odd = Image.open(root / "images" / "n0200000000.jpg").convert("RGB").resize((84, 84), Image.LANCZOS)
    assert np.array_equal(loaded.images[1, 0], np.asarray(odd))  # others resized with LANCZOS


def test_miniimagenet_csv_layout_is_cached_and_refreshed(tmp_path):
    root = miniimagenet_csv(tmp_path / "miniimagenet")
    first = datasets.load_miniimagenet(root=root)
    assert (root / "miniimagenet_train_84px.npz").is_file()
    assert datasets.load_miniimagenet(root=root).data_identity == first.data_identity
    rgb(99).save(root / "images" / "n0100000000.jpg", format="JPEG")
    os.utime(root / "images" / "n0100000000.jpg", ns=(1, 1))  # a different mtime even on coarse clocks
    assert datasets.load_miniimagenet(root=root).data_identity != first.data_identity


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("spelling", ["val", "validation"])
def test_miniimagenet_pickle_layout_matches_the_csv_layout(tmp_path, protocol, spelling):
    from_csv = datasets.load_miniimagenet("val", root=miniimagenet_csv(tmp_path / "csv", "val"), cache=False)
    root = tmp_path / "pkl"
    root.mkdir()
    miniimagenet_pickle(root / f"mini-imagenet-cache-{spelling}.pkl", from_csv.images, from_csv.class_names,
                        protocol=protocol, shuffle=protocol == 4)
    from_pickle = datasets.load_miniimagenet("val", root=root)
    assert from_pickle.class_names == from_csv.class_names
    assert np.array_equal(from_pickle.images, from_csv.images)
    assert from_pickle.data_identity == from_csv.data_identity
    assert [p.name for p in root.iterdir()] == [f"mini-imagenet-cache-{spelling}.pkl"]  # nothing cached


def test_missing_miniimagenet_names_both_layouts(tmp_path):
    with pytest.raises(DataMissing) as caught:
        datasets.load_miniimagenet("test", root=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "mini-imagenet-cache-test.pkl" in message and "test.csv" in message
    root = miniimagenet_csv(tmp_path / "mi", "test")
    (root / "images" / "n0100000002.jpg").unlink()
    with pytest.raises(DataMissing, match="n0100000002.jpg, listed in .*test.csv, is missing"):
        datasets.load_miniimagenet("test", root=root)


@pytest.mark.parametrize("table, says", [
    ("name,class\na.jpg,n01\n", "header 'filename,label'"),
    ("filename,label\n../../etc/passwd,n01\n", "outside images/"),
    ("filename,label\na.jpg\n", "line 2 must hold filename,label"),
])
def test_malformed_csv_is_refused(tmp_path, table, says):
    (tmp_path / "images").mkdir()
    (tmp_path / "train.csv").write_text(table)
    with pytest.raises(DataInvalid, match=says):
        datasets.load_miniimagenet(root=tmp_path)


class RunsCode:
    """A pickle payload that calls ``function(argument)`` when unpickled."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


@pytest.mark.parametrize("function, argument, named", [
    (os.system, "touch {marker}", "system"),
    (exec, "open({marker!r}, 'w').close()", "builtins.exec"),
    (Path.touch, None, "pathlib"),
])
def test_pickle_that_would_run_code_is_refused(tmp_path, function, argument, named):
    marker = tmp_path / "code_ran"
    payload = RunsCode(function, marker if argument is None else argument.format(marker=str(marker)))
    data = {"image_data": payload, "class_dict": {"n01": [0]}}
    (tmp_path / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(DataInvalid) as caught:
        datasets.load_miniimagenet(root=tmp_path)
    message = str(caught.value)
    assert named in message and "because a pickle can run code" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("data, says", [
    ({"image_data": np.zeros((2, 84, 84, 3), np.float32), "class_dict": {"n01": [0, 1]}}, "must hold a dict"),
    ({"image_data": np.zeros((2, 84, 84, 3), np.uint8), "class_dict": {"n01": [0, 2]}}, "indices into image_data"),
    ({"image_data": np.zeros((3, 84, 84, 3), np.uint8), "class_dict": {"n01": [0, 1], "n02": [2]}},
     "images per class differ"),
    ({"image_data": np.zeros((1, 84, 84, 3), np.uint8), "class_dict": {"n01": 0}}, "must hold a dict"),
    ([1, 2, 3], "must hold a dict"),
])
def test_pickle_with_the_wrong_content_is_refused(tmp_path, data, says):
    (tmp_path / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(DataInvalid, match=says):
        datasets.load_miniimagenet(root=tmp_path)


def test_truncated_pickle_is_refused(tmp_path):
    data = pickle.dumps({"image_data": np.zeros((1, 84, 84, 3), np.uint8), "class_dict": {"n01": [0]}})
    (tmp_path / "mini-imagenet-cache-train.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataInvalid, match="is not a readable pickle"):
        datasets.load_miniimagenet(root=tmp_path)


# --- bad arguments ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, call", [
    ("split", lambda r: datasets.load_omniglot("training", root=r)),
    ("subset", lambda r: datasets.load_omniglot(root=r, subset="tiny")),
    ("seed", lambda r: datasets.load_omniglot(root=r, seed=-1)),
    ("seed", lambda r: datasets.load_omniglot(root=r, seed=1.0)),
    ("rotations", lambda r: datasets.load_omniglot(root=r, rotations=(0, 45))),
    ("rotations", lambda r: datasets.load_omniglot(root=r, rotations=())),
    ("rotations", lambda r: datasets.load_omniglot(root=r, rotations=(90, 90))),
    ("rotations", lambda r: datasets.load_omniglot(root=r, rotations=90)),
    ("rotations", lambda r: datasets.load_omniglot(root=r, rotations=(90.0,))),
    ("download", lambda r: datasets.load_omniglot(root=r, download="yes")),
    ("download", lambda r: datasets.load_omniglot(root=r, subset="small", download=True)),
    ("cache", lambda r: datasets.load_omniglot(root=r, cache=1)),
    ("root", lambda r: datasets.load_omniglot(root=3)),
    ("cache_dir", lambda r: datasets.load_omniglot(root=r, cache_dir=3)),
    ("split", lambda r: datasets.load_miniimagenet("validation", root=r)),
    ("cache", lambda r: datasets.load_miniimagenet(root=r, cache="no")),
    ("archives", lambda r: datasets.download_omniglot(r, archives={"../x.zip": ("http://127.0.0.1/", "0" * 32)})),
    ("archives", lambda r: datasets.download_omniglot(r, archives={"x.zip": "http://127.0.0.1/"})),
    ("timeout", lambda r: datasets.download_omniglot(r, archives={"x.zip": ("u", "0" * 32)}, timeout=0)),
    ("n_characters", lambda r: datasets.omniglot_split_sizes(2)),
])
def test_bad_arguments_are_refused_in_one_line(tmp_path, name, call):
    with pytest.raises(ValueError) as caught:
        call(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{name}=") and "is not allowed" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


# --- the real Omniglot subset ------------------------------------------------------------------------

def real_omniglot() -> Path:
    shared = runtime.REPO_ROOT.parent / "shared" / "data"
    root = (runtime.data_root() if "MAMLPAPER_DATA" in os.environ else shared) / "omniglot"
    if not all((root / f"{part}.zip").is_file() for part in SMALL):
        pytest.skip(f"the real Omniglot subset is not in {root} (set MAMLPAPER_DATA to a folder holding omniglot/"
                    f"images_background_small1.zip and images_background_small2.zip)")
    return root


def test_real_small_subset(tmp_path):
    root = real_omniglot()
    before = listing(root)
    loaded = {s: datasets.load_omniglot(s, root=root, subset="small", cache_dir=tmp_path) for s in datasets.SPLITS}
    assert listing(root) == before  # the shared data is read, never written
    assert {s: v.images.shape for s, v in loaded.items()} == {
        "train": (612, 20, 28, 28), "val": (104, 20, 28, 28), "test": (252, 20, 28, 28)}
    characters = [{n.rsplit("/", 1)[0] for n in v.class_names} for v in loaded.values()]
    assert [len(c) for c in characters] == [153, 26, 63] and len(set.union(*characters)) == 242
    image = loaded["train"].images[0, 0]
    assert image[0, 0] == 0 and 0.02 < np.mean(image > 127) < 0.4  # strokes are bright on black
    uncached = datasets.load_omniglot("val", root=root, subset="small", cache=False)
    assert uncached.data_identity == loaded["val"].data_identity
