"""Omniglot and MiniImagenet as uint8 arrays with one row per class, read from the files people have.

Both loaders return a ``FewShotSplit``: ``images[c, i]`` is image ``i`` of class ``c``. The
episode sampler turns these into float tasks; nothing here knows about ways or shots.

Omniglot (Lake et al.) is read from the official layout ``<part>/<alphabet>/<character>/*.png``,
either inside ``<part>.zip`` (read in place, never extracted) or from the extracted folder
``<part>/``. The full set is the parts ``images_background`` and ``images_evaluation`` (1623
characters); the small set is the union of ``images_background_small1`` and ``_small2`` (242
distinct characters: Greek and Latin are in both, byte-identical, and are read once). Every
105x105 PNG is converted from 1-bit to 8-bit grey *before* resizing (Pillow would resize a 1-bit
image with nearest-neighbour whatever filter is asked), resized to 28x28 with LANCZOS and
inverted, so a stroke is 255 and the background 0.

The split is by character, never by image, and comes from a seed: the characters, sorted by
``alphabet/character``, are permuted by ``numpy.random.default_rng(seed)``; the first ones are
``train``, then ``val``, then ``test``, in the sizes of ``omniglot_split_sizes`` (Vinyals et al.'s
1028/172/423 on the full set, the same proportions of any other count: 153/26/63 on the small
set). These are Vinyals' sizes, not their published lists of characters; Finn et al. shuffle with
Python's ``random.seed(1)`` and take 1100/100/423.

Rotations by 90, 180 and 270 degrees (counterclockwise) are new classes, in whichever split is
loaded: the default rotates every split, as in Vinyals et al.'s splits and as Finn et al.'s
episodes do (a random multiple of 90 degrees per class, meta-training and meta-testing alike).
Pass ``rotations=(0,)`` for the characters as drawn.

Decoding the full set takes seconds, so the decoded characters (before split and rotation) are
cached in an ``.npz`` keyed by the sources' names, sizes and modification times and by the
decoding settings. The cache sits beside the data when that directory is writable, and is skipped
silently when it is not (a directory without write permission bits counts as read-only even for
root); an explicit ``cache_dir`` is the only way the loaders write outside the data root.

MiniImagenet (Ravi & Larochelle's split: 64/16/20 classes of 600 images, 84x84 RGB) is read from
``mini-imagenet-cache-{train,val,test}.pkl`` (``val`` may be spelt ``validation``), or else from
``images/`` with ``{train,val,test}.csv`` (header ``filename,label``); images of another size are
resized to 84x84 with LANCZOS (the aspect ratio is not kept, as in Ravi & Larochelle's and Finn
et al.'s preprocessing). It is not downloaded.

Files from the internet are not trusted: a pickle is loaded by an unpickler that builds only
dicts, lists, strings, numbers and NumPy arrays (a pickle can otherwise run any code), and a zip
member with an absolute path or ``..`` is refused.
"""
from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
import os
import pickle
import urllib.request
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping

import numpy as np
import PIL
from PIL import Image

from .. import _checks
from ..atomic import atomic_path
from ..runtime import data_root, resolve_path

SPLITS = ("train", "val", "test")
OMNIGLOT_PIXELS = 28
MINIIMAGENET_PIXELS = 84
VINYALS_SPLIT = (1028, 172, 423)
"""Characters in train/val/test of Vinyals et al. (2016) out of Omniglot's 1623."""
OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
OMNIGLOT_ARCHIVES = {
    "images_background.zip": (OMNIGLOT_URL + "images_background.zip", "68d2efa1b9178cc56df9314c21c6e718"),
    "images_evaluation.zip": (OMNIGLOT_URL + "images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811"),
}
"""File name -> (URL, MD5) of the official full set; ``download_omniglot`` takes another table."""
_OMNIGLOT_PARTS = {"full": ("images_background", "images_evaluation"),
                   "small": ("images_background_small1", "images_background_small2")}
_CACHE_FORMAT = 1


class DataMissing(FileNotFoundError):
    """The data is not where the loader looks; the message says which files to put where."""


class DataInvalid(ValueError):
    """The files are there but cannot be used (wrong layout, unreadable, or unsafe to read)."""


class DownloadFailed(OSError):
    """A download did not produce the expected file; nothing that looks valid was left behind."""


@dataclass(frozen=True, eq=False)
class FewShotSplit:
    """The images of one split, grouped by class.

    ``images``: uint8, ``(classes, per_class, 28, 28)`` for Omniglot (stroke 255, background 0),
    ``(classes, per_class, 84, 84, 3)`` RGB channels-last for MiniImagenet.
    ``class_names``: ``alphabet/character/rotNNN`` (Omniglot) or the WordNet id (MiniImagenet).
    ``data_identity``: sha256 over the shape, class names and pixels, for cache keys of results.
    """

    images: np.ndarray
    class_names: tuple[str, ...]
    data_identity: str


def omniglot_split_sizes(n_characters: int) -> tuple[int, int, int]:
    """Characters in (train, val, test): val and test are 172/1623 and 423/1623 of the count,
    rounded to the nearest integer and at least 1; train gets the rest (1623 -> 1028/172/423)."""
    n = _checks.integer("n_characters", n_characters, minimum=3)
    total = sum(VINYALS_SPLIT)
    val, test = (max(1, round(n * share / total)) for share in VINYALS_SPLIT[1:])
    return n - val - test, val, test


def load_omniglot(split: str = "train", *, root=None, subset: str = "auto", seed: int = 0,
                  rotations=(0, 90, 180, 270), download: bool = False, cache: bool = True,
                  cache_dir=None) -> FewShotSplit:
    """One split of Omniglot; classes are characters x rotations, ordered character-major.

    ``root``: the folder holding the archives, default ``data_root()/"omniglot"``.
    ``subset``: ``"full"``, ``"small"``, or ``"auto"`` (full when both its parts are there or
    ``download`` fetches them, else small). ``download``: fetch the full set when it is missing.
    ``cache``: read and write the decoded-array cache; ``cache_dir``: where (default: ``root`` when
    writable, else no cache).
    """
    split = _checks.choice("split", split, SPLITS)
    subset = _checks.choice("subset", subset, ("auto", "full", "small"))
    seed = _checks.integer("seed", seed, minimum=0)
    rotations = _rotations(rotations)
    download, cache = _checks.flag("download", download), _checks.flag("cache", cache)
    root, cache_dir = _folder("root", root, "omniglot"), _folder("cache_dir", cache_dir)
    if download and subset == "small":
        raise _checks.refuse("download", download, "only the full set can be downloaded; "
                                                   "use subset='full' or 'auto', or put the small zips in place")
    subset, sources = _find_omniglot(root, subset, download)
    stamp = _stamp(sources, "omniglot", OMNIGLOT_PIXELS)
    characters, names = _cached(root, cache, cache_dir, f"omniglot_{subset}_{OMNIGLOT_PIXELS}px.npz", stamp,
                                lambda: _decode_omniglot(sources))
    chosen = _split_indices(len(names), seed)[SPLITS.index(split)]
    selected = characters[chosen]
    images = np.stack([np.rot90(selected, k=angle // 90, axes=(-2, -1)) for angle in rotations], axis=1)
    images = images.reshape(-1, *selected.shape[1:])
    class_names = tuple(f"{names[i]}/rot{angle:03d}" for i in chosen for angle in rotations)
    return FewShotSplit(images, class_names, _identity(images, class_names))


def download_omniglot(root=None, *, archives: Mapping[str, tuple[str, str]] | None = None,
                      timeout: float = 60.0) -> tuple[Path, ...]:
    """Fetch the archives missing from ``root`` (default: the official full set into
    ``data_root()/"omniglot"``); each is verified by MD5 under a temporary name before it is
    renamed into place. Returns every archive's path."""
    root = _folder("root", root, "omniglot")
    archives = _archives(OMNIGLOT_ARCHIVES if archives is None else archives)
    timeout = _checks.real("timeout", timeout, above=0.0)
    for name, (url, md5) in archives.items():
        if not (root / name).is_file():
            _fetch(url, md5, root / name, timeout)
    return tuple(root / name for name in archives)


def load_miniimagenet(split: str = "train", *, root=None, cache: bool = True, cache_dir=None) -> FewShotSplit:
    """One split of MiniImagenet, classes sorted by WordNet id, images in file order.

    ``root``: default ``data_root()/"miniimagenet"``. The pickle layout is preferred when both
    are present; ``cache``/``cache_dir`` as in ``load_omniglot``, for the image-folder layout only.
    """
    split = _checks.choice("split", split, SPLITS)
    cache = _checks.flag("cache", cache)
    root, cache_dir = _folder("root", root, "miniimagenet"), _folder("cache_dir", cache_dir)
    spellings = ("val", "validation") if split == "val" else (split,)
    pickles = [p for s in spellings if (p := root / f"mini-imagenet-cache-{s}.pkl").is_file()]
    tables = [p for s in spellings if (p := root / f"{s}.csv").is_file()]
    if pickles:
        images, names = _read_miniimagenet_pickle(pickles[0])
    elif tables and (root / "images").is_dir():
        listing = _read_table(tables[0])
        files = [root / "images" / f for files in listing.values() for f in files]
        images, names = _cached(root, cache, cache_dir, f"miniimagenet_{split}_{MINIIMAGENET_PIXELS}px.npz",
                                _stamp([tables[0], *files], "miniimagenet", MINIIMAGENET_PIXELS),
                                lambda: _decode_table(listing, root / "images", tables[0]))
    else:
        raise DataMissing(f"MiniImagenet split {split!r} is missing under {root}: put mini-imagenet-cache-{split}.pkl "
                          f"there (a dict with image_data, uint8 N x 84 x 84 x 3, and class_dict), or images/ with "
                          f"{split}.csv (header filename,label; Ravi & Larochelle's split); it is not downloaded "
                          f"automatically; set MAMLPAPER_DATA to use another data root")
    return FewShotSplit(images, names, _identity(images, names))


# --- arguments -----------------------------------------------------------------------------------

def _folder(name: str, value, default_child: str | None = None) -> Path | None:
    """A folder argument: None means the default (or no folder), relative paths mean the repository."""
    if value is None:
        return data_root() / default_child if default_child else None
    if not isinstance(value, (str, os.PathLike)):
        raise _checks.refuse(name, value, f"{name} must be a path (str or os.PathLike) or None")
    return resolve_path(value)


def _rotations(value) -> tuple[int, ...]:
    rule = "rotations must be distinct angles from 0, 90, 180, 270 (degrees counterclockwise), at least one"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise _checks.refuse("rotations", value, rule)
    angles = tuple(value)
    valid = all(not isinstance(a, (bool, np.bool_)) and isinstance(a, (int, np.integer)) and a in (0, 90, 180, 270)
                for a in angles)
    if not angles or not valid or len(set(angles)) != len(angles):
        raise _checks.refuse("rotations", value, rule)
    return tuple(int(a) for a in angles)


def _archives(table) -> dict[str, tuple[str, str]]:
    rule = "archives must map file names (*.zip) to (url, md5 hex digest)"
    if not isinstance(table, Mapping) or not table:
        raise _checks.refuse("archives", table, rule)
    for name, entry in table.items():
        ok = (isinstance(name, str) and name.endswith(".zip") and PurePosixPath(name).name == name
              and "\\" not in name and isinstance(entry, tuple) and len(entry) == 2
              and all(isinstance(part, str) for part in entry) and len(entry[1]) == 32)
        if not ok:
            raise _checks.refuse("archives", table, f"{rule}; entry {name!r} is not")
    return dict(table)


# --- Omniglot ------------------------------------------------------------------------------------

def _find_omniglot(root: Path, subset: str, download: bool) -> tuple[str, list[Path]]:
    """The subset actually read and its sources: each part's extracted folder, else its zip."""
    def present(parts):
        found = [root / p if (root / p).is_dir() else root / f"{p}.zip" for p in parts]
        return found if all(p.exists() for p in found) else None

    if subset in ("auto", "full"):
        sources = present(_OMNIGLOT_PARTS["full"])
        if sources is None and download:
            download_omniglot(root)
            sources = present(_OMNIGLOT_PARTS["full"])
        if sources is not None:
            return "full", sources
    sources = None if subset == "full" else present(_OMNIGLOT_PARTS["small"])
    if sources is None:
        full = "images_background.zip and images_evaluation.zip (or the folders they extract to)"
        small = "images_background_small1.zip and images_background_small2.zip"
        wanted = {"full": full, "small": small, "auto": f"{full}, or {small} for the small set"}[subset]
        fetch = "" if subset == "small" else ", or pass download=True to fetch the full set"
        raise DataMissing(f"Omniglot is missing under {root}: put {wanted} there, from {OMNIGLOT_URL}{fetch}; "
                          f"set MAMLPAPER_DATA to use another data root")
    return "small", sources


def _safe_member(name: str, archive: Path) -> PurePosixPath:
    """A zip member's path, refused when it could point outside the archive's folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        raise DataInvalid(f"{archive} holds the member {name!r}, an absolute path or one with '..'; "
                          f"refusing the archive: get it again from {OMNIGLOT_URL}")
    return path


def _omniglot_entries(source: Path, stack: ExitStack) -> tuple[list[tuple[str, str, str]], Callable[[str], bytes]]:
    """(``alphabet/character``, drawer file, member) for every PNG of one part, and a reader of members."""
    if source.is_dir():
        pngs = sorted(p.relative_to(source).as_posix() for p in source.glob("*/*/*.png"))
        return [(m.rsplit("/", 1)[0], m.rsplit("/", 1)[1], m) for m in pngs], lambda m: (source / m).read_bytes()
    try:
        archive = stack.enter_context(zipfile.ZipFile(source))
    except (zipfile.BadZipFile, OSError) as error:
        raise DataInvalid(f"{source} is not a readable zip ({error}); delete it and get it again "
                          f"from {OMNIGLOT_URL}") from None
    entries = []
    for info in archive.infolist():
        path = _safe_member(info.filename, source)
        if len(path.parts) == 4 and path.suffix == ".png" and not info.is_dir():
            entries.append((f"{path.parts[1]}/{path.parts[2]}", path.parts[3], info.filename))
    return entries, archive.read


def _decode_omniglot(sources: list[Path]) -> tuple[np.ndarray, tuple[str, ...]]:
    """All characters, sorted by name, drawers sorted by file name: (characters, drawers, 28, 28)."""
    with ExitStack() as stack:
        readers, files = [], {}
        for index, source in enumerate(sources):
            entries, read = _omniglot_entries(source, stack)
            readers.append(read)
            for character, drawer, member in entries:
                files.setdefault(character, {}).setdefault(drawer, (index, member))
        if not files:
            raise DataInvalid(f"no images in {', '.join(map(str, sources))}: the layout must be "
                              f"<part>/<alphabet>/<character>/*.png as in {OMNIGLOT_URL}")
        names = tuple(sorted(files))
        per_class = _equal_counts({c: len(files[c]) for c in names}, "drawers per character", sources[0].parent)
        images = np.empty((len(names), per_class, OMNIGLOT_PIXELS, OMNIGLOT_PIXELS), np.uint8)
        for c, character in enumerate(names):
            for d, drawer in enumerate(sorted(files[character])):
                index, member = files[character][drawer]
                grey = _decode(readers[index](member), "L", OMNIGLOT_PIXELS, f"{sources[index]}:{member}")
                images[c, d] = 255 - grey
    return images, names


def _split_indices(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Sorted character indices of train, val, test: a seeded permutation cut by ``omniglot_split_sizes``."""
    n_train, n_val, _ = omniglot_split_sizes(n)
    order = np.random.default_rng(seed).permutation(n)
    return tuple(np.sort(part) for part in np.split(order, [n_train, n_train + n_val]))


# --- MiniImagenet --------------------------------------------------------------------------------

def _read_table(table: Path) -> dict[str, list[str]]:
    """label -> file names, in the order of the csv."""
    with open(table, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or [h.strip() for h in rows[0]] != ["filename", "label"]:
        raise DataInvalid(f"{table} must start with the header 'filename,label' (Ravi & Larochelle's csv)")
    listing: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise DataInvalid(f"{table} line {line} must hold filename,label; it holds {row!r}")
        name = PurePosixPath(row[0].strip().replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or not name.parts:
            raise DataInvalid(f"{table} line {line} names {row[0]!r}, outside images/; refusing the table")
        listing.setdefault(row[1].strip(), []).append(name.as_posix())
    if not listing:
        raise DataInvalid(f"{table} lists no images")
    return listing


def _decode_table(listing: dict[str, list[str]], folder: Path, table: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    names = tuple(sorted(listing))
    per_class = _equal_counts({c: len(listing[c]) for c in names}, "images per class", table)
    images = np.empty((len(names), per_class, MINIIMAGENET_PIXELS, MINIIMAGENET_PIXELS, 3), np.uint8)
    for c, label in enumerate(names):
        for i, name in enumerate(listing[label]):
            path = folder / name
            if not path.is_file():
                raise DataMissing(f"{path}, listed in {table}, is missing: put MiniImagenet's images in {folder}")
            images[c, i] = _decode(path.read_bytes(), "RGB", MINIIMAGENET_PIXELS, str(path))
    return images, names


def _read_miniimagenet_pickle(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """(classes, per_class, 84, 84, 3) and the class names from a ``mini-imagenet-cache`` pickle."""
    with open(path, "rb") as handle:
        try:
            data = _SafeUnpickler(handle, path).load()
        except DataInvalid:
            raise
        except Exception as error:  # a corrupt pickle can fail in any of the builders it names
            raise DataInvalid(f"{path} is not a readable pickle ({type(error).__name__}: {error})") from None
    pixels = data.get("image_data") if isinstance(data, dict) else None
    classes = data.get("class_dict") if isinstance(data, dict) else None
    shape = (MINIIMAGENET_PIXELS, MINIIMAGENET_PIXELS, 3)
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 4
            and pixels.shape[1:] == shape and isinstance(classes, dict) and classes
            and all(isinstance(v, (list, tuple, np.ndarray)) for v in classes.values())):
        raise DataInvalid(f"{path} must hold a dict with image_data (uint8, N x 84 x 84 x 3) and a non-empty "
                          f"class_dict (class -> list of image indices)")
    names = tuple(sorted(map(str, classes)))
    lookup = {str(k): v for k, v in classes.items()}
    per_class = _equal_counts({c: len(lookup[c]) for c in names}, "images per class", path)
    try:
        index = np.array([np.asarray(lookup[c]) for c in names]).reshape(len(names), per_class)
        valid = index.dtype.kind in "iu" and index.min() >= 0 and index.max() < len(pixels)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise DataInvalid(f"{path}: class_dict must map each class to indices into image_data (0..{len(pixels) - 1})")
    if np.array_equal(index.ravel(), np.arange(len(pixels))):
        return pixels.reshape(len(names), per_class, *shape), names
    return pixels[index], names


class _SafeUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, strings, numbers and NumPy arrays: a pickle that names any other
    callable (``os.system``, ``eval``, a class) is refused before anything is called."""

    def __init__(self, handle, path: Path):
        super().__init__(handle, encoding="latin1")  # latin1: Python 2 pickles, whose arrays hold byte strings
        self._path = path

    def find_class(self, module: str, name: str):
        found = _PICKLE_GLOBALS.get((module, name))
        if found is None:
            raise DataInvalid(f"{self._path} asks to call {module}.{name}; refusing it: only dicts, lists, strings, "
                              f"numbers and NumPy arrays are loaded from a pickle, because a pickle can run code")
        return found


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, without the codec lookup by name."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({encoding!r}) is not a byte string this loader builds")
    return text.encode("latin1")


def _numpy_pickle_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy < 2
        from numpy.core import multiarray, numeric
    found: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                            ("_codecs", "encode"): _latin1_bytes}
    for package in ("numpy.core", "numpy._core"):  # written by NumPy 1 and 2 respectively
        found[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        found[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        found[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


_PICKLE_GLOBALS = _numpy_pickle_globals()


# --- shared: decode, cache, identity, download ---------------------------------------------------

def _decode(data: bytes, mode: str, pixels: int, where: str) -> np.ndarray:
    """One image as uint8 in ``mode``, resized with LANCZOS when it is not ``pixels`` square."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert(mode)  # before resizing: a 1-bit image would be resized by nearest neighbour
            if image.size != (pixels, pixels):
                image = image.resize((pixels, pixels), Image.LANCZOS)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataInvalid(f"{where} is not a readable image ({error})") from None


def _equal_counts(counts: dict[str, int], what: str, where: Path) -> int:
    """Classes must be equally large to stack; the message names the odd ones."""
    values = sorted(set(counts.values()))
    if len(values) != 1:
        common = max(values, key=list(counts.values()).count)
        odd = [f"{c}: {n}" for c, n in counts.items() if n != common][:3]
        raise DataInvalid(f"{where}: {what} differ ({common} for most, {', '.join(odd)}); the files are incomplete")
    return values[0]


def _stamp(files: list[Path], dataset: str, pixels: int) -> str:
    """Changes when a source file or the decoding changes: names, sizes, modification times, settings."""
    h = hashlib.sha256(json.dumps([_CACHE_FORMAT, dataset, pixels, PIL.__version__]).encode())
    for path in files:
        members = sorted(path.glob("*/*/*.png")) if path.is_dir() else [path]
        for member in members:
            try:
                st = member.stat()
            except FileNotFoundError:
                continue  # a listed image that is missing is reported by the decoder
            h.update(f"{member}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _writable(folder: Path) -> bool:
    """Writable, and not marked read-only by its permission bits (root may write there anyway)."""
    try:
        return bool(folder.stat().st_mode & 0o222) and os.access(folder, os.W_OK)
    except OSError:
        return False


def _cached(root: Path, cache: bool, cache_dir: Path | None, name: str, stamp: str,
            decode: Callable[[], tuple[np.ndarray, tuple[str, ...]]]) -> tuple[np.ndarray, tuple[str, ...]]:
    """``decode()``, or its result from the cache file ``name`` when that was written for ``stamp``.

    A cache that is stale, truncated or foreign is decoded again and replaced. Writing beside the
    data is best effort; writing to an explicit ``cache_dir`` that fails raises.
    """
    if not cache:
        return decode()
    target = (root if cache_dir is None else cache_dir) / name
    try:
        with np.load(target, allow_pickle=False) as stored:
            if str(stored["stamp"]) == stamp:
                images, names = stored["images"], tuple(str(n) for n in stored["class_names"])
                if images.dtype == np.uint8 and len(images) == len(names):
                    return images, names
    except (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError, zipfile.BadZipFile):
        pass  # missing, or unreadable (truncated, foreign): decode and replace it
    images, names = decode()
    if cache_dir is None and not _writable(root):
        return images, names
    try:
        with atomic_path(target) as temp, open(temp, "wb") as handle:
            np.savez(handle, images=images, class_names=np.array(names, dtype=str), stamp=np.array(stamp))
    except OSError:
        if cache_dir is not None:
            raise
    return images, names


def _identity(images: np.ndarray, names: tuple[str, ...]) -> str:
    h = hashlib.sha256(json.dumps([list(images.shape), str(images.dtype), list(names)]).encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()


def _fetch(url: str, md5: str, target: Path, timeout: float) -> None:
    """Download ``url`` to ``target`` through a temporary file that gets the name only once its MD5 matches."""
    digest = hashlib.md5()
    try:
        with atomic_path(target) as temp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(temp, "wb") as out:
                if response.headers.get_content_type() == "text/html":
                    raise DownloadFailed(f"{url} answered with an HTML page, not {target.name}; the address may have "
                                         f"moved: download {target.name} by hand into {target.parent}")
                announced, received = response.headers.get("Content-Length"), 0
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                if announced is not None and announced.isdigit() and received != int(announced):
                    raise DownloadFailed(f"{url} stopped after {received} of {announced} bytes; nothing was kept: "
                                         f"try again, or download {target.name} by hand into {target.parent}")
            if digest.hexdigest() != md5.lower():
                what = ("an MD5 of " + digest.hexdigest() if zipfile.is_zipfile(temp)
                        else f"{temp.stat().st_size} bytes that are not a complete zip (truncated, or a web page)")
                raise DownloadFailed(f"{url} gave {what}, not the expected {target.name} (MD5 {md5}); nothing was "
                                     f"kept: try again, or download it by hand into {target.parent}")
    except DownloadFailed:
        raise
    except (OSError, http.client.HTTPException) as error:
        raise DownloadFailed(f"could not download {url} to {target} ({type(error).__name__}: {error}); nothing "
                             f"was kept: check the connection, or download it by hand into {target.parent}") from None
