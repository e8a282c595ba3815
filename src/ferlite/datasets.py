"""Reading face datasets into numpy arrays, and caching decoded FER+ faces (no TensorFlow).

Three dataset layouts are read (:func:`dataset_layout` tells which one a path is):

* Microsoft's FER+ folder layout: a split folder with ``label.csv`` (no header:
  ``image name, face box, 10 vote counts``) beside its PNGs (:func:`read_ferplus_folder`);
* a generic CSV dataset: ``image,<class 1>,<class 2>,...`` with votes or probabilities (:func:`read_csv_dataset`);
* a folder with one sub-folder of images per class, ``DIR/<class>/*.jpg`` (:func:`list_class_folders`,
  :func:`read_class_folders`): one hard label per image.

Microsoft's raw pair ``fer2013.csv`` (``emotion, pixels, Usage``) + ``fer2013new.csv``
(``Usage, Image name, 10 votes``) is turned into the FER+ folder layout, one folder per split,
by :func:`prepare_ferplus`.

Decoded faces are cached as ``.npz`` keyed by a digest of ``label.csv`` and of every
image's name, size and modification time, so the 28.5k-face train split loads in
about a second after the first read, and the cache is rebuilt when the data changes.

Every face is turned into the model's input size (and, for CSV datasets, colour) by
:func:`ferlite.images.face_to_input`, as the recogniser turns faces. The ``tf.data`` training pipeline that
feeds these arrays to Keras is :mod:`ferlite.training.pipeline`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferlite._atomic import write_npz
from ferlite.images import IMAGE_SUFFIXES, face_to_input
from ferlite.labels import FERPLUS_CLASSES, Targets, votes_to_targets
from ferlite.weights import cache_dir

__all__ = [
    "FaceSet",
    "DataError",
    "read_ferplus_folder",
    "read_csv_dataset",
    "read_csv_classes",
    "LAYOUTS",
    "dataset_layout",
    "ClassFolders",
    "parse_class_map",
    "list_class_folders",
    "read_class_folders",
    "require_faces",
    "read_dataset",
    "prepare_ferplus",
    "cache_dir",
]

SPLIT_FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}


class DataError(ValueError):
    """Bad input data: names the file, the line and what was expected."""


@dataclass
class FaceSet:
    """Faces of one split, decoded.

    Attributes:
        images: ``(N, H, W)`` uint8 gray faces, or ``(N, H, W, 3)`` RGB for RGB CSV datasets.
        votes: ``(N, K)`` float32 votes (or probabilities) per class; for FER+ folders the
            ten FER+ columns.
        names: the image file names.
        root: the folder they came from.
        skipped: ``(file, line, reason)`` for each row left out with ``skip_bad``.
        classes: the ``K`` column names (FER+'s ten for FER+ folders); for a folder-per-class dataset the
            classes that have a folder, and ``votes`` one-hot rows.
        layout: which of :data:`LAYOUTS` the faces were read from.
        no_face: photos of a folder-per-class dataset in which no face was found (read with a face ``crop``).
    """

    images: np.ndarray
    votes: np.ndarray
    names: list[str]
    root: Path
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    classes: tuple[str, ...] = FERPLUS_CLASSES
    layout: str = "ferplus"
    no_face: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def is_ferplus(self) -> bool:
        """Whether the votes are FER+'s ten columns (so the FER+ protocols apply)."""
        return self.classes == FERPLUS_CLASSES

    def targets(self, mode: str = "seed9", num_classes: int | None = None) -> tuple[np.ndarray, Targets]:
        """Faces kept by ``mode`` and their targets: ``(images[keep], Targets)``.

        For a generic (non-FER+) dataset every row is normalised to sum 1 (``mode`` must be ``seed9``,
        the plain vote distribution).
        """
        if not self.is_ferplus:
            if mode != "seed9":
                raise ValueError(f"target mode {mode!r} needs FER+ votes; a dataset with classes {self.classes} "
                                 "is trained on its normalised votes (target mode seed9)")
            sums = self.votes.sum(axis=1, keepdims=True)
            keep = sums[:, 0] > 0
            return self.images[keep], Targets((self.votes[keep] / sums[keep]).astype(np.float32), keep,
                                              self.classes, "distribution")
        t = votes_to_targets(self.votes, mode, num_classes)
        return self.images[t.keep], t


def _cache_key(label_file: Path, image_names: list[str], size: int) -> str:
    h = hashlib.sha256()
    h.update(f"v2:{size}".encode())  # v2: faces resized by face_to_input (bilinear when enlarging)
    h.update(label_file.read_bytes())
    folder = label_file.parent
    for name in image_names:
        try:
            st = (folder / name).stat()
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{name}:missing".encode())
    return h.hexdigest()[:24]


def _csv_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    """The rows of a text CSV file (the first ``limit`` only, if given); DataError naming it if it is not one."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            return [row for _, row in zip(range(limit), reader)] if limit else list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: expected a text CSV file, got unreadable content ({exc})") from None


def _parse_label_rows(label_file: Path) -> list[tuple[int, list[str]]]:
    return [(i, row) for i, row in enumerate(_csv_rows(label_file), start=1) if row and any(c.strip() for c in row)]


def _csv_classes(path: Path, header: list[str] | None) -> tuple[str, ...]:
    """The class columns of a generic dataset CSV's header row ``image,<class 1>,<class 2>,...``."""
    if not header or header[0].strip() != "image" or len(header) < 3:
        raise DataError(f"{path}, line 1: expected a header 'image,<class 1>,<class 2>,...' with at least two "
                        f"classes, got {header if header is not None else 'an empty file'}")
    classes = tuple(c.strip() for c in header[1:])
    if len(set(classes)) != len(classes) or not all(classes):
        raise DataError(f"{path}, line 1: class names must be unique and non-empty, got {list(classes)}")
    return classes


def read_csv_classes(csv_file: str | os.PathLike) -> tuple[str, ...]:
    """The class columns of a generic dataset CSV (its header row only: no image is read).

    Raises:
        FileNotFoundError: the CSV is missing.
        DataError: not a text CSV, or a bad header.
    """
    path = Path(csv_file)
    if not path.is_file():
        raise FileNotFoundError(f"dataset CSV not found: {path}")
    return _csv_classes(path, next(iter(_csv_rows(path, limit=1)), None))


def require_faces(faces: FaceSet, source: str | os.PathLike, purpose: str) -> None:
    """Raise :class:`DataError` naming the label file when ``faces`` (read from ``source``) holds no face,
    e.g. a ``label.csv`` without rows, or one whose every row was skipped as bad; ``purpose``: e.g. "score".
    For a folder-per-class dataset it names the folder, the unreadable images and the photos without a face."""
    if len(faces):
        return
    if faces.layout == "folders":
        raise DataError(f"{source}: no face to {purpose}: of its {len(faces.skipped) + len(faces.no_face)} images, "
                        f"{len(faces.skipped)} are unreadable (skipped) and {len(faces.no_face)} show no face the "
                        "detector finds; expected at least one readable image of a face")
    label_file = Path(source) if str(source).lower().endswith(".csv") else Path(source) / "label.csv"
    why = f"{len(faces.skipped)} bad rows skipped" if faces.skipped else "it has no data rows"
    raise DataError(f"{label_file}: no readable face to {purpose} ({why}); expected at least one row naming a "
                    "readable image")


def _read_image(path: Path, mode: str = "gray") -> np.ndarray:
    """The image of a dataset row (:func:`ferlite.images.read_image`); FileNotFoundError / ValueError saying
    why not, for the caller to prefix with the file's name."""
    from ferlite.images import ImageError, read_image

    if not path.is_file():
        raise FileNotFoundError("file not found")
    try:
        return read_image(path, mode=mode)
    except ImageError as exc:
        raise ValueError(f"not a readable image: {exc.reason()}") from None


def read_ferplus_folder(folder: str | os.PathLike, *, skip_bad: bool = False, size: int = 48,
                        use_cache: bool = True) -> FaceSet:
    """Read a FER+ split folder (``label.csv`` + PNGs).

    Args:
        folder: the split folder, e.g. ``FER2013Valid``.
        skip_bad: leave out unreadable images and malformed rows (they are counted in
            ``FaceSet.skipped``) instead of stopping with :class:`DataError`.
        size: faces are resized to ``size x size`` (:func:`ferlite.images.face_to_input`) if they are not already.
        use_cache: read and write the decoded-array cache under :func:`cache_dir`.

    Raises:
        FileNotFoundError: the folder or its ``label.csv`` is missing.
        DataError: a malformed row or unreadable image (naming file and line), unless ``skip_bad``.
    """
    root = Path(folder)
    label_file = root / "label.csv"
    if not root.is_dir():
        raise FileNotFoundError(f"FER+ split folder not found: {root}")
    if not label_file.is_file():
        raise FileNotFoundError(
            f"no label.csv in {root}: expected Microsoft's FER+ layout (label.csv + PNG faces); "
            "a raw fer2013.csv + fer2013new.csv pair goes through `ferlite prepare` first"
        )
    rows = _parse_label_rows(label_file)
    names = [row[0].strip() for _, row in rows]
    cache_file = cache_dir() / "datasets" / f"{root.name}-{_cache_key(label_file, names, size)}-{int(skip_bad)}.npz"
    if use_cache and cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as z:
            skipped = [(str(f), int(n), str(r)) for f, n, r in zip(z["skip_file"], z["skip_line"], z["skip_reason"])]
            return FaceSet(z["images"], z["votes"], list(z["names"]), root, skipped)

    images, votes, kept_names, skipped = [], [], [], []
    for line, row in rows:
        name = row[0].strip()
        try:
            if len(row) != 12:
                raise DataError(f"expected 12 columns (name, face box, 10 votes), got {len(row)}")
            try:
                counts = [float(c) for c in row[2:]]
            except ValueError:
                raise DataError(f"vote counts must be numbers, got {row[2:]}") from None
            if any(c < 0 or not np.isfinite(c) for c in counts):
                raise DataError(f"vote counts must be finite and non-negative, got {counts}")
            try:
                img = face_to_input(_read_image(root / name), size, 1)[..., 0]
            except (FileNotFoundError, ValueError) as exc:
                raise DataError(f"image {root / name}: {exc}") from None
        except DataError as exc:
            msg = f"{label_file}, line {line}: {exc}"
            if not skip_bad:
                raise DataError(msg + " (use --skip-bad / skip_bad=True to skip such rows)") from None
            skipped.append((str(label_file), line, str(exc)))
            continue
        images.append(img)
        votes.append(counts)
        kept_names.append(name)
    if skipped:
        warnings.warn(f"{len(skipped)} bad row(s) skipped in {label_file}", stacklevel=2)
    faces = FaceSet(
        np.stack(images) if images else np.zeros((0, size, size), np.uint8),
        np.asarray(votes, dtype=np.float32).reshape(-1, len(FERPLUS_CLASSES)),
        kept_names,
        root,
        skipped,
    )
    if use_cache:
        write_npz(
            cache_file,
            images=faces.images,
            votes=faces.votes,
            names=np.asarray(kept_names, dtype=str),
            skip_file=np.asarray([s[0] for s in skipped], dtype=str),
            skip_line=np.asarray([s[1] for s in skipped], dtype=np.int64),
            skip_reason=np.asarray([s[2] for s in skipped], dtype=str),
        )
    return faces


def read_csv_dataset(csv_file: str | os.PathLike, *, skip_bad: bool = False, size: int = 48,
                     channels: int = 1) -> FaceSet:
    """Read the generic CSV format: an ``image`` column (paths relative to the CSV) and one column per class.

    Class columns hold vote counts or probabilities (one-hot rows are a special case); any names, any
    number (at least 2). Images of any size and colour are converted to ``size x size`` gray
    (``channels=1``, OpenCV's luma) or RGB (``channels=3``) by :func:`ferlite.images.face_to_input`.

    Raises:
        FileNotFoundError: the CSV is missing.
        DataError: a bad header, or a bad row (missing or unreadable image, non-numeric, negative or
            all-zero votes), naming file and line; with ``skip_bad`` bad rows are counted instead.
    """
    path = Path(csv_file)
    if not path.is_file():
        raise FileNotFoundError(f"dataset CSV not found: {path}")
    rows = _csv_rows(path)
    classes = _csv_classes(path, rows[0] if rows else None)
    images, votes, names, skipped = [], [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        try:
            if len(row) != len(classes) + 1:
                raise DataError(f"expected {len(classes) + 1} columns, got {len(row)}")
            try:
                values = [float(c) for c in row[1:]]
            except ValueError:
                raise DataError(f"class values must be numbers, got {row[1:]}") from None
            if any(v < 0 or not np.isfinite(v) for v in values) or sum(values) <= 0:
                raise DataError(f"class values must be non-negative and not all zero, got {values}")
            img_path = path.parent / row[0].strip()
            try:
                img = _read_image(img_path, "gray" if channels == 1 else "rgb")
            except (FileNotFoundError, ValueError) as exc:
                raise DataError(f"image {img_path}: {exc}") from None
        except DataError as exc:
            if not skip_bad:
                raise DataError(f"{path}, line {line}: {exc} (use --skip-bad / skip_bad=True to skip such rows)") \
                    from None
            skipped.append((str(path), line, str(exc)))
            continue
        face = face_to_input(img, size, channels)
        images.append(face[..., 0] if channels == 1 else face)
        votes.append(values)
        names.append(row[0].strip())
    if skipped:
        warnings.warn(f"{len(skipped)} bad row(s) skipped in {path}", stacklevel=2)
    shape = (0, size, size) if channels == 1 else (0, size, size, 3)
    return FaceSet(np.stack(images) if images else np.zeros(shape, np.uint8),
                   np.asarray(votes, dtype=np.float32).reshape(-1, len(classes)), names, path.parent, skipped, classes,
                   "csv")


LAYOUTS: dict[str, str] = {
    "ferplus": "a FER+ split folder (label.csv + PNG faces)",
    "csv": "a CSV dataset file (.csv: image,<class 1>,<class 2>,...)",
    "folders": "a folder with one sub-folder of images per class (DIR/<class>/*.jpg, *.png, ...)",
}
_EXPECTED_LAYOUT = "expected " + "; or ".join(LAYOUTS.values())


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _some(names: list[str], k: int = 4) -> str:
    """The first ``k`` of ``names``, sorted, then ``...`` if there are more."""
    names = sorted(names)
    return ", ".join(names[:k]) + (", ..." if len(names) > k else "")


def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` at any depth (by file name ending; hidden files and folders left out),
    sorted by path."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _contents(folder: Path) -> str:
    """What a folder that is no dataset holds, in words, for an error message."""
    entries = [p for p in folder.iterdir() if _visible(p)]
    files = [p.name for p in entries if p.is_file()]
    images = [n for n in files if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    dirs = [p.name for p in entries if p.is_dir()]
    parts = ([f"{len(images)} image file(s) not in class sub-folders ({_some(images)})"] if images else []) + \
            ([f"{len(files) - len(images)} other file(s)"] if len(files) > len(images) else []) + \
            ([f"{len(dirs)} sub-folder(s) without an image ({_some(dirs)})"] if dirs else [])
    return ", ".join(parts) or "nothing"


def dataset_layout(source: str | os.PathLike) -> str:
    """Which of :data:`LAYOUTS` ``source`` is, from its name and folder listings only (no file is read):
    ``"csv"`` for a path ending in ``.csv``, ``"ferplus"`` for a folder with a ``label.csv``, ``"folders"``
    for a folder whose sub-folders hold image files.

    Raises:
        FileNotFoundError: ``source`` does not exist, or is a folder of none of the layouts (the message says
            what it holds and lists the layouts).
        DataError: ``source`` is a file that is not a ``.csv``.
    """
    path = Path(source)
    if path.is_dir():
        if (path / "label.csv").is_file():
            return "ferplus"
        subs = sorted(p for p in path.iterdir() if p.is_dir() and _visible(p))
        splits = [p.name for p in subs if (p / "label.csv").is_file()]
        if splits:
            raise FileNotFoundError(f"no label.csv in {path}, but its sub-folder(s) {_some(splits)} are FER+ split "
                                    f"folders: pass one of them, e.g. {path / splits[0]}")
        if any(_image_files(p) for p in subs):
            return "folders"
        raise FileNotFoundError(f"no label.csv in {path}, and no sub-folder of it holds an image: it holds "
                                f"{_contents(path)}; {_EXPECTED_LAYOUT}")
    if path.suffix.lower() == ".csv":
        return "csv"  # read_csv_classes / read_csv_dataset say so when it is missing
    if path.is_file():
        raise DataError(f"{path} is a file but not a .csv, so no dataset: {_EXPECTED_LAYOUT}")
    raise FileNotFoundError(f"dataset not found: {path} ({_EXPECTED_LAYOUT})")


def parse_class_map(text: str) -> dict[str, str]:
    """``"happy=happiness,angry=anger"`` -> ``{"happy": "happiness", "angry": "anger"}`` (folder name -> class).

    Raises:
        ValueError: an item that is not ``FOLDER=CLASS`` with both names non-empty, or a folder named twice.
    """
    out: dict[str, str] = {}
    for item in text.split(","):
        folder, sep, cls = (part.strip() for part in item.partition("="))
        if not (sep and folder and cls):
            raise ValueError(f"class map {text!r}: expected FOLDER=CLASS pairs separated by commas, e.g. "
                             f"happy=happiness,angry=anger; got the item {item.strip()!r}")
        if folder in out:
            raise ValueError(f"class map {text!r}: folder {folder!r} is mapped twice ({out[folder]!r} and {cls!r}); "
                             "expected each folder once")
        out[folder] = cls
    return out


@dataclass(frozen=True)
class ClassFolders:
    """A folder-per-class dataset, listed (no image read yet).

    Attributes:
        root: the dataset folder.
        classes: the classes that have a folder, in the order of the model's classes.
        folders: the sub-folder of each of ``classes`` (another name where a class map renamed it).
        files: every image file, class by class in ``classes`` order, sorted by path within a class.
        labels: ``(N,)`` index into ``classes`` of each file's class.
    """

    root: Path
    classes: tuple[str, ...]
    folders: tuple[str, ...]
    files: list[Path]
    labels: np.ndarray


def _suggest(name: str, classes: tuple[str, ...]) -> str | None:
    """The class a folder name most likely means ('happy' -> 'happiness'), or None: only for an error message."""
    import difflib

    lower = {c.lower(): c for c in classes}
    if name.lower() in lower:
        return lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.5)
    return lower[close[0]] if close else None


def list_class_folders(folder: str | os.PathLike, classes: Sequence[str],
                       class_map: Mapping[str, str] | None = None) -> ClassFolders:
    """List a folder-per-class dataset, ``folder/<class>/...``: each sub-folder's name must be one of the model's
    ``classes`` exactly, or be renamed to one by ``class_map`` (folder name -> class); no name is guessed.

    A class folder's images are its files ending in one of :data:`ferlite.images.IMAGE_SUFFIXES` (any case),
    at any depth; other files, and hidden files and folders (``.name``), are left out.

    Raises:
        FileNotFoundError: ``folder`` is of no dataset layout (see :func:`dataset_layout`).
        DataError: ``folder`` is of another layout; sub-folder names that are not classes (the message lists
            them and the model's classes, and suggests a class map); a ``class_map`` naming a folder that is not
            there or a class that is not the model's; two folders for one class; a class folder without images;
            images outside the class folders.
        TypeError: ``class_map`` is not a mapping of strings to strings.
    """
    root, classes, class_map = Path(folder), tuple(classes), dict(class_map or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in class_map.items()):
        raise TypeError(f"class_map must map folder names to class names (str -> str), got {class_map!r}")
    layout = dataset_layout(root)
    if layout != "folders":
        raise DataError(f"{root} is {LAYOUTS[layout]}, not {LAYOUTS['folders']}")
    subs = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and _visible(p)}
    model = f"the model's classes: {', '.join(classes)}"
    missing = sorted(set(class_map) - set(subs))
    if missing:
        raise DataError(f"class map: {root} has no sub-folder {', '.join(map(repr, missing))} (its sub-folders: "
                        f"{_some(list(subs), 20)}); expected a FOLDER=CLASS pair for each folder to rename")
    foreign = {k: v for k, v in class_map.items() if v not in classes}
    if foreign:
        raise DataError(f"class map: {', '.join(f'{k}={v}' for k, v in foreign.items())} maps to no class of the "
                        f"model ({model})")
    unknown = [name for name in subs if class_map.get(name, name) not in classes]
    if unknown:
        guesses = {name: _suggest(name, classes) for name in unknown}
        pairs = ",".join(f"{name}={cls}" for name, cls in guesses.items() if cls)
        hint = (f"; did you mean {', '.join(f'{n!r} -> {c!r}' for n, c in guesses.items() if c)}? e.g. "
                f"--class-map {pairs}" if pairs else "")
        raise DataError(f"{root}: sub-folder name(s) {', '.join(map(repr, unknown))} are not classes of the model "
                        f"({model}); expected one sub-folder per class, named as the class or renamed to it by "
                        f"--class-map / class_map{hint}")
    by_class: dict[str, list[str]] = {}
    for name in subs:
        by_class.setdefault(class_map.get(name, name), []).append(name)
    shared = {c: names for c, names in by_class.items() if len(names) > 1}
    if shared:
        raise DataError(f"{root}: " + "; ".join(f"sub-folders {', '.join(map(repr, n))} are all class {c!r}"
                                                for c, n in shared.items()) +
                        " (expected one sub-folder per class: put a class's images in one folder)")
    loose = [p.name for p in root.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        raise DataError(f"{root} holds {len(loose)} image file(s) outside its class sub-folders ({_some(loose)}); "
                        "expected every image in the sub-folder of its class")
    ordered = tuple(c for c in classes if c in by_class)
    files = {c: _image_files(subs[by_class[c][0]]) for c in ordered}
    empty = [str(subs[by_class[c][0]]) for c in ordered if not files[c]]
    if empty:
        raise DataError(f"class folder(s) {', '.join(empty)} hold no image file; expected files ending in "
                        f"{' '.join(IMAGE_SUFFIXES)} (remove a class folder that has no image)")
    return ClassFolders(root, ordered, tuple(by_class[c][0] for c in ordered), [p for c in ordered for p in files[c]],
                        np.repeat(np.arange(len(ordered)), [len(files[c]) for c in ordered]))


def read_class_folders(folder: str | os.PathLike, classes: Sequence[str], *,
                       class_map: Mapping[str, str] | None = None, skip_bad: bool = False, size: int = 48,
                       crop: Callable[[np.ndarray], np.ndarray | None] | None = None) -> FaceSet:
    """Read a folder-per-class dataset (:func:`list_class_folders`) as a :class:`FaceSet` of layout ``"folders"``:
    ``classes`` are the classes with a folder, ``votes`` one-hot rows, ``names`` paths relative to ``folder``.

    Args:
        classes: the model's classes, which the folder names must be (or be mapped to by ``class_map``).
        skip_bad: leave out unreadable images (listed in ``FaceSet.skipped`` with line 0) instead of stopping.
        size: without ``crop``, images are face crops: read gray (:func:`ferlite.images.read_image`) and
            resized to ``size x size`` by :func:`ferlite.images.face_to_input`, as FER+ faces are.
        crop: a function from a whole photo (RGB ``HxWx3`` uint8) to the face to keep, or None when it finds
            none (the photo is listed in ``FaceSet.no_face``): e.g. detection and cropping.

    Raises:
        DataError: see :func:`list_class_folders`; an unreadable image, naming it, unless ``skip_bad``.
    """
    listing = list_class_folders(folder, classes, class_map)
    images, labels, names, skipped, no_face = [], [], [], [], []
    for path, label in zip(listing.files, listing.labels, strict=True):
        try:
            img = _read_image(path, "gray" if crop is None else "rgb")
        except (FileNotFoundError, ValueError) as exc:
            if not skip_bad:
                raise DataError(f"image {path}: {exc} (use --skip-bad / skip_bad=True to skip such images)") from None
            skipped.append((str(path), 0, str(exc)))
            continue
        face = face_to_input(img, size, 1)[..., 0] if crop is None else crop(img)
        if face is None:
            no_face.append(str(path))
            continue
        images.append(face)
        labels.append(label)
        names.append(path.relative_to(listing.root).as_posix())
    if skipped:
        warnings.warn(f"{len(skipped)} unreadable image(s) skipped in {listing.root}", stacklevel=2)
    votes = np.eye(len(listing.classes), dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
    return FaceSet(np.stack(images) if images else np.zeros((0, size, size), np.uint8), votes, names, listing.root,
                   skipped, listing.classes, "folders", no_face)


def read_dataset(source: str | os.PathLike, *, skip_bad: bool = False, size: int = 48, channels: int = 1) -> FaceSet:
    """A FER+ split folder or a generic CSV file (by whether ``source`` is a ``.csv`` file); a folder-per-class
    dataset, which needs the model's classes, is read by :func:`read_class_folders`."""
    if str(source).lower().endswith(".csv"):
        return read_csv_dataset(source, skip_bad=skip_bad, size=size, channels=channels)
    return read_ferplus_folder(source, skip_bad=skip_bad, size=size)


def prepare_ferplus(fer2013_csv: str | os.PathLike, ferplus_csv: str | os.PathLike, output_dir: str | os.PathLike,
                    *, skip_bad: bool = False) -> dict[str, int]:
    """Write the FER+ folder layout from the raw ``fer2013.csv`` + ``fer2013new.csv`` pair.

    Rows are matched by position, as Microsoft's ``generate_training_data.py`` does;
    ``Usage`` must agree. Each split folder (``FER2013Train``, ``FER2013Valid``,
    ``FER2013Test``) gets 48x48 PNGs and a ``label.csv``. Faces whose FER+ row has no
    image name (FER+ removed them) are skipped, as in Microsoft's script. Each split is
    written to a temporary folder and moved into place only when complete.

    Returns:
        The number of faces written per split folder.
    """
    import cv2

    fer_path, new_path, out = Path(fer2013_csv), Path(ferplus_csv), Path(output_dir)
    for p in (fer_path, new_path):
        if not p.is_file():
            raise FileNotFoundError(f"not found: {p}")
    fer_rows, new_rows = _csv_rows(fer_path), _csv_rows(new_path)
    if not fer_rows or [c.strip() for c in fer_rows[0][:3]] != ["emotion", "pixels", "Usage"]:
        raise DataError(f"{fer_path}, line 1: expected the header 'emotion,pixels,Usage', got {fer_rows[:1]}")
    if not new_rows or [c.strip() for c in new_rows[0][:2]] != ["Usage", "Image name"]:
        raise DataError(f"{new_path}, line 1: expected a header starting 'Usage,Image name', got {new_rows[:1]}")
    if len(fer_rows) != len(new_rows):
        raise DataError(
            f"{fer_path} has {len(fer_rows) - 1} rows but {new_path} has {len(new_rows) - 1}: "
            "the two files must describe the same faces in the same order"
        )
    per_split: dict[str, list[tuple[str, np.ndarray, list[str]]]] = {k: [] for k in SPLIT_FOLDERS.values()}
    for line, (fer, new) in enumerate(zip(fer_rows[1:], new_rows[1:]), start=2):
        try:
            if len(fer) < 3 or len(new) != 12:
                raise DataError(f"expected 3 columns in {fer_path.name} and 12 in {new_path.name}")
            usage = fer[2].strip()
            if usage != new[0].strip():
                raise DataError(f"Usage differs between the files: {usage!r} vs {new[0].strip()!r}")
            if usage not in SPLIT_FOLDERS:
                raise DataError(f"unknown Usage {usage!r}; expected one of {', '.join(SPLIT_FOLDERS)}")
            name = new[1].strip()
            if not name:
                continue  # FER+ dropped this face
            pixels = np.array(fer[1].split(), dtype=np.float64)
            if pixels.size != 48 * 48 or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
                raise DataError(f"pixels must be 2304 values in 0..255, got {pixels.size} values")
            votes = [str(int(float(v))) for v in new[2:]]
        except (DataError, ValueError) as exc:
            msg = f"{fer_path.name}/{new_path.name}, line {line}: {exc}"
            if not skip_bad:
                raise DataError(msg) from None
            warnings.warn(msg, stacklevel=2)
            continue
        per_split[SPLIT_FOLDERS[usage]].append((name, pixels.astype(np.uint8).reshape(48, 48), votes))

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, faces in per_split.items():
        if not faces:
            continue
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{split}-"))
        try:
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            for name, img, votes in faces:
                if not cv2.imwrite(str(tmp / name), img):
                    raise OSError(f"could not write {tmp / name}")
                writer.writerow([name, "(0, 0, 48, 48)", *votes])
            (tmp / "label.csv").write_text(buf.getvalue())
            final = out / split
            if final.exists():
                import shutil

                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        written[split] = len(faces)
    return written
