"""Read FER2013 (Kaggle CSV or image folders) into uint8 arrays, one per split."""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from train.const import IMAGE_SIZE_PX, LABELS, SPLITS

logger = logging.getLogger(__name__)


class DatasetError(Exception):
    """The data set is missing or malformed; the message says where and what to do."""


@dataclass(frozen=True)
class Split:
    """The faces of one split: ``images`` uint8 (N, 48, 48), ``labels`` int (N,).

    ``names`` key the FER+ votes: a face's path under the image-folder root (``train/angry/Training_1.jpg``,
    as in votes.csv), or for a face read from fer2013.csv its row, ``row_name(n)`` (``row 1`` is the first
    row after the header; fer2013new.csv has one row per fer2013.csv row, in the same order).
    """

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    """FER2013 by split, with the SHA-256 of its pixels and labels for the model card.

    ``row_usages`` is the Usage of every row of a ``fer2013.csv``, in file order (what FER+'s fer2013new.csv
    is checked against); empty for the image folders.
    """

    splits: dict[str, Split]
    sha256: str
    row_usages: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Split:
        return self.splits[name]


def load(path: Path) -> Dataset:
    """Load FER2013 from a Kaggle ``fer2013.csv`` or from the image-folder layout."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(
            f"{path}: no such file or folder; pass --data with fer2013.csv or its image folders"
        )
    rows = _read_csv(path) if path.is_file() else _read_folders(path)
    splits = {}
    for name in SPLITS:
        picked = [row for row in rows if row[0] == name]
        if not picked:
            raise DatasetError(f"{path}: no faces in split {name}; expected {', '.join(SPLITS)}")
        splits[name] = Split(
            np.stack([row[2] for row in picked]),
            np.asarray([row[1] for row in picked], np.int64),
            tuple(row[3] for row in picked),
        )
    _check_classes(path, splits)
    digest = hashlib.sha256()
    for name in SPLITS:
        digest.update(splits[name].images.tobytes())
        digest.update(splits[name].labels.tobytes())
    logger.info("loaded %s: %s", path, ", ".join(f"{n} {len(s.labels)}" for n, s in splits.items()))
    usages = tuple(row[0] for row in rows) if path.is_file() else ()
    return Dataset(splits, digest.hexdigest(), usages)


def _check_classes(path: Path, splits: dict[str, Split]) -> None:
    """Refuse a data set with a class that has no Training faces (the model would have an output it never
    learns, and every score of it would mean nothing); warn (one line) where a test split lacks a class, whose
    recall the report then cannot measure."""
    for name, split in splits.items():
        counts = np.bincount(split.labels, minlength=len(LABELS))
        absent = [LABELS[i] for i in np.flatnonzero(counts == 0)]
        if not absent:
            continue
        if name == "Training":
            raise DatasetError(
                f"{path}: no Training faces of {', '.join(absent)}; every class of {', '.join(LABELS)} needs "
                "Training faces: restore them (train/<class>/ or the CSV's rows) or pass the full FER2013"
            )
        logger.warning(
            "%s: %s has no faces of %s; their recall is not measured", path, name, ", ".join(absent)
        )


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # read from the FER2013 folders and from --extra-data alike
Row = tuple[str, int, np.ndarray, str]  # split, label index, 48x48 uint8 face, name (Split.names)


def row_name(number: int) -> str:
    """The name of the face in row ``number`` of fer2013.csv (1 = the first after the header): the key by
    which fer2013new.csv's votes, one row per fer2013.csv row, reach it."""
    return f"row {number}"


CSV_FIX = "pass --data with Kaggle's fer2013.csv (columns emotion,pixels,Usage) or its image folders"


def read_csv_rows(
    path: Path, columns: tuple[str, ...], what: str, fix: str, error: type[Exception]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line number, {column: field})`` for each row of the UTF-8 CSV at ``path``, the header first
    checked for ``columns`` (others may follow). A byte-order mark (Excel, Notepad) is skipped; blank lines
    are too. The one reader of fer2013.csv and of both votes files (votes.csv, fer2013new.csv), so all
    answer a bad file alike.

    Raises ``error`` with one line naming the file (and the line), the problem and ``fix``: the file missing
    or unreadable (``what`` names it: "votes file"), not UTF-8 text, a header without ``columns``, a row with
    more or fewer fields than the header, or a quote that is never closed.
    """
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; {fix}") from None
    except OSError as err:
        raise error(f"{path}: {what} is not readable ({err.strerror}); {fix}") from None
    start = 1  # the line the record being read starts on
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, [])
            missing = [c for c in columns if c not in header]
            if missing:
                raise error(
                    f"{path}: expected columns {','.join(columns)}; missing {','.join(missing)}; {fix}"
                )
            start = reader.line_num + 1
            for fields in reader:
                if fields and len(fields) != len(header):  # DictReader would fill in None or drop the rest
                    raise error(
                        f"{path}:{start}: the row has {len(fields)} fields, expected {len(header)} "
                        f"({','.join(header)}); fix the row"
                    )
                if fields:
                    yield start, dict(zip(header, fields, strict=True))
                start = reader.line_num + 1
        except UnicodeDecodeError as err:
            byte = err.object[err.start : err.start + 1].hex()
            raise error(
                f"{path}: not a UTF-8 text file (byte 0x{byte} at offset {err.start}); {fix}"
            ) from None
        except csv.Error as err:
            if "field limit" in str(err):
                raise error(
                    f'{path}:{start}: a quote (") opened on this line is never closed ({err}); fix the row'
                ) from None
            raise error(f"{path}:{start}: not a CSV file ({err}); {fix}") from None


def _read_csv(path: Path) -> list[Row]:
    rows: list[Row] = []
    for line, row in read_csv_rows(path, ("emotion", "pixels", "Usage"), "data file", CSV_FIX, DatasetError):
        try:
            label = int(row["emotion"])
            pixels = np.asarray(row["pixels"].split(), np.uint8)
        except ValueError as err:
            raise DatasetError(f"{path}:{line}: unreadable emotion or pixels ({err})") from None
        if not 0 <= label < len(LABELS):
            raise DatasetError(f"{path}:{line}: expected emotion 0-{len(LABELS) - 1}, got {label}")
        if pixels.size != IMAGE_SIZE_PX * IMAGE_SIZE_PX:
            raise DatasetError(
                f"{path}:{line}: expected {IMAGE_SIZE_PX * IMAGE_SIZE_PX} pixels, got {pixels.size}"
            )
        if row["Usage"] not in SPLITS:
            raise DatasetError(f"{path}:{line}: expected Usage in {SPLITS}, got {row['Usage']!r}")
        name = row_name(len(rows) + 1)
        rows.append((row["Usage"], label, pixels.reshape(IMAGE_SIZE_PX, IMAGE_SIZE_PX), name))
    return rows


def _read_folders(root: Path) -> list[Row]:
    rows: list[Row] = []
    for sub in ("train", "test"):
        if not (root / sub).is_dir():
            raise DatasetError(
                f"{root}: no {sub}/ folder; expected train/<class>/*.jpg and test/<class>/*.jpg"
            )
    files = (f for f in root.glob("*/*/*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    for file in sorted(files):
        label_name = file.parent.name
        if label_name not in LABELS:
            raise DatasetError(f"{file}: unknown class folder {label_name!r}; expected one of {LABELS}")
        split = file.name.split("_", 1)[0]
        if split not in SPLITS:
            raise DatasetError(f"{file}: name must start with one of {SPLITS}")
        image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DatasetError(f"{file}: not a readable image")
        if image.shape != (IMAGE_SIZE_PX, IMAGE_SIZE_PX):
            image = cv2.resize(image, (IMAGE_SIZE_PX, IMAGE_SIZE_PX), interpolation=cv2.INTER_AREA)
        rows.append((split, LABELS.index(label_name), image, file.relative_to(root).as_posix()))
    return rows


def load_extra(root: Path) -> Split:
    """Extra training faces from an image folder: ``root/<class>/*.{jpg,jpeg,png}`` or FER2013's
    ``root/train/<class>/...`` (what the daemon's feedback writes). Any size; read grey, resized to 48x48.

    Raises DatasetError with one line for a missing folder, a folder of an unknown class, an unreadable
    image or a folder with no faces.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: no such folder; pass --extra-data with a folder of <class>/ image folders"
        )
    base = root / "train" if (root / "train").is_dir() else root
    rows: list[Row] = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if folder.name not in LABELS:
            raise DatasetError(f"{folder}: unknown class folder {folder.name!r}; expected one of {LABELS}")
        for file in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
            image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise DatasetError(f"{file}: not a readable image")
            if image.shape != (IMAGE_SIZE_PX, IMAGE_SIZE_PX):
                interpolation = cv2.INTER_AREA if image.shape[0] > IMAGE_SIZE_PX else cv2.INTER_LINEAR
                image = cv2.resize(image, (IMAGE_SIZE_PX, IMAGE_SIZE_PX), interpolation=interpolation)
            rows.append(("Extra", LABELS.index(folder.name), image, file.relative_to(root).as_posix()))
    if not rows:
        raise DatasetError(
            f"{root}: no faces; expected {', '.join(IMAGE_SUFFIXES)} images in <class>/ folders"
        )
    logger.info("loaded extra faces %s: %d", root, len(rows))
    return Split(
        np.stack([row[2] for row in rows]),
        np.asarray([row[1] for row in rows], np.int64),
        tuple(row[3] for row in rows),
    )


def check_extra(data: Dataset, extras: list[tuple[Path, Split]]) -> None:
    """Refuse extra faces (each ``(root, load_extra(root))``) identical in pixels to FER2013 faces, renamed
    copies too. FER2013's faces are hashed once, however many folders are checked.

    A PublicTest or PrivateTest face trained on turns the report into a test of memory; a Training face adds
    nothing but its weight, counted twice (the FER2013 root as --extra-data adds all of them). Neither belongs
    in --extra-data, which is for faces FER2013 lacks. FER2013 itself holds a few faces in both Training and
    a test split: a copy of one of those counts as a Training copy, since training sees it anyway.

    Raises DatasetError naming the first folder with copies, how many, and one of them.
    """
    if not extras:
        return
    training = {_pixel_hash(face) for face in data["Training"].images}
    tests = {_pixel_hash(face) for split in ("PublicTest", "PrivateTest") for face in data[split].images}
    for root, extra in extras:
        hashes = [_pixel_hash(face) for face in extra.images]
        if any(h in tests and h not in training for h in hashes):
            copies, which = [h in tests for h in hashes], "PublicTest/PrivateTest"
            why = "test faces trained on make the report meaningless"
        else:
            copies, which = [h in training for h in hashes], "Training"
            why = "--extra-data is for faces FER2013 lacks, not FER2013's own"
        if any(copies):
            example = root / extra.names[copies.index(True)]
            raise DatasetError(
                f"{root}: {sum(copies)} of {len(hashes)} faces are identical in pixels to FER2013 {which} "
                f"faces (e.g. {example}); {why}: remove them or pass another --extra-data"
            )


def _pixel_hash(face: np.ndarray) -> bytes:
    return hashlib.blake2b(face.tobytes(), digest_size=16).digest()


def merge_splits(splits: list[Split]) -> Split:
    """One split of all the faces of ``splits``, in order."""
    return Split(
        np.concatenate([s.images for s in splits]),
        np.concatenate([s.labels for s in splits]),
        tuple(name for s in splits for name in s.names),
    )
