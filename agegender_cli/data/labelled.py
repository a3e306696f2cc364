"""Labels from a file beside the images: a user's CSV/TSV, FairFace's label CSVs, Adience's fold files."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display
from agegender_cli.labels import AGE_CLASSES, GENDERS, age_to_class

LABEL_FIELDS = ("path", "age", "gender", "race", "split", "group")
DEFAULT_COLUMNS = {"path": "path", "age": "age", "gender": "gender", "race": "race", "split": "split"}
# photos of one person (or one group the user names) stay in one split; the first of these headers present is used
GROUP_HEADERS = ("group", "person", "identity", "subject")
MAX_LABEL_AGE = 130
MAX_PATH_FIELD = 1024  # longer than any real path: the sign of a label file whose quote was left open
GENDER_WORDS = {"0": 0, "m": 0, "male": 0, "man": 0, "1": 1, "f": 1, "female": 1, "woman": 1}
UNKNOWN_WORDS = {"", "u", "unknown", "none", "nan", "n/a", "na", "?", "-"}
# Adience's five folds: the last is the test set, the one before it validation, as in cross-validation round 5.
ADIENCE_CROPS = ("landmark_aligned_face", "coarse_tilt_aligned_face")  # aligned/ and faces/ file prefixes
ADIENCE_FOLD_SPLIT = {0: "train", 1: "train", 2: "train", 3: "val", 4: "test"}
# FairFace publishes train and val only: its val becomes the test split; val is carved out of its train.
FAIRFACE_FILE_SPLIT = {"train": None, "val": "test"}
_RANGE = re.compile(r"^\(?\s*(\d{1,3})\s*(?:-|,|to)\s*(\d{1,3})\s*\)?$")
_OPEN_RANGE = re.compile(r"^(?:more than|over|above|>)\s*(\d{1,3})$|^(\d{1,3})\s*\+$")
_FOLD = re.compile(r"fold_(\d+)_data", re.IGNORECASE)


@dataclass(frozen=True)
class LabelRow:
    """One labelled image as read from a label file, before it becomes a manifest record."""

    path: Path
    age: int | None
    gender: int | None
    race: str | None
    age_class: int | None
    split: str | None = None  # the dataset's own split (--split-from-source), if it has one
    box: tuple[int, int, int, int] | None = None
    group: str = ""  # the person (or other unit) whose photos share one split; empty: the photo alone


@dataclass
class LabelReport:
    """What reading the label files gave up: whole images (with reasons) and single labels (counted)."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    dropped_labels: Counter = field(default_factory=Counter)


def parse_columns(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`--columns path=file,age=age_years` into (field, header) pairs; unknown fields are a usage error."""
    pairs = []
    for item in (part.strip() for text in items for part in text.split(",")):
        if not item:
            continue
        name, sep, header = item.partition("=")
        if not sep or name.strip() not in LABEL_FIELDS or not header.strip():
            raise AgeGenderError(f"--columns {item!r}: give FIELD=HEADER with FIELD one of {', '.join(LABEL_FIELDS)}")
        pairs.append((name.strip(), header.strip()))
    return tuple(pairs)


def label_format(path: Path, given: str) -> str:
    """The layout of a label file: as given, or recognised by its name (fairface_label_*.csv, fold_N_data.txt)."""
    if given != "auto":
        return given
    name = path.name.lower()
    if name.startswith("fairface_label_"):
        return "fairface"
    if _FOLD.search(name):
        return "adience"
    return "csv"


def parse_age(text: str) -> tuple[int, int] | None | str:
    """Years "25" as (25, 25), a range "25-32", "(25, 32)", "60+", "more than 70" as (low, high); None when
    unknown; a reason (str) when it is neither."""
    value = text.strip().lower()
    if value in UNKNOWN_WORDS:
        return None
    if value.isascii() and value.isdigit() and len(value) <= 3:
        age = int(value)
        return (age, age) if age <= MAX_LABEL_AGE else f"age {text!r} is not plausible"
    if match := _RANGE.match(value):
        low, high = int(match[1]), int(match[2])
        return (low, high) if low <= high <= MAX_LABEL_AGE else f"age range {text!r} is not low-high"
    if match := _OPEN_RANGE.match(value):
        return int(match[1] or match[2]), MAX_LABEL_AGE
    return f"age {text!r} is neither years nor a range like 25-32"


def age_class_of(low: int, high: int, gaps: str) -> int | str:
    """The class every age of low..high falls in (by the --gaps rule), or why there is none.

    Rule: with --gaps drop, the range must lie inside one class (Adience's (25, 32) is 25-32; FairFace's
    20-29 spans 15-20 and 25-32 and has no class); with --gaps nearest, every age of it must go to one class
    under the nearest-edge rule; with --gaps keep, as with drop (an age between the classes keeps its years
    but gets no class: _labels). A single age is a range of one year."""
    rule = "drop" if gaps == "keep" else gaps
    classes = {age_to_class(age, rule) for age in range(low, high + 1)}
    if len(classes) == 1 and None not in classes:
        return classes.pop()
    label = f"{low}" if low == high else f"{low}-{high}"
    known = sorted(c for c in classes if c is not None)
    if not known:
        return f"age {label} lies between the age classes"
    names = " and ".join(AGE_CLASSES[c] for c in known) + (" and a gap" if None in classes else "")
    return f"age {label} spans {names}"


def parse_gender(text: str) -> int | None | str:
    value = text.strip().lower()
    if value in UNKNOWN_WORDS:
        return None
    if value in GENDER_WORDS:
        return GENDER_WORDS[value]
    return f"gender {text!r} is not 0/1, m/f or male/female"


def read_label_files(
    files: Sequence[Path], roots: Sequence[Path], *, fmt: str = "auto",
    columns: Mapping[str, str] | None = None, gaps: str = "drop",
) -> tuple[list[LabelRow], LabelReport]:
    """Every labelled image of the label files, its path resolved beside the label file or under `roots`."""
    rows: list[LabelRow] = []
    report = LabelReport()
    for file in files:
        if not file.is_file():
            why = "no such file" if not file.exists() else "not a regular file (a folder, device, pipe or socket)"
            raise AgeGenderError(f"--labels {display(file)}: {why}; give the labels CSV/TSV file")
        readers: dict[str, Callable[[Path, dict[str, str]], Iterator[_Entry]]] = {
            "csv": _csv_rows, "fairface": _fairface_rows, "adience": _adience_rows}
        entries = readers[label_format(file, fmt)](file, dict(columns or {}))
        for item in _resolve(entries, [file.parent, *roots], gaps, report):
            if isinstance(item, LabelRow):
                rows.append(item)
            else:
                report.skipped.append(item)
    return rows, report


def _table(file: Path, delimiter: str | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV/TSV with a header; the delimiter sniffed when not given."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(64 * 1024)
            handle.seek(0)
            if delimiter is None:
                try:
                    delimiter = csv.Sniffer().sniff(sample, delimiters=",\t;").delimiter
                except csv.Error:
                    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
            reader = csv.DictReader(handle, delimiter=delimiter)
            for row in reader:
                yield reader.line_num, {(k or "").strip(): (v or "").strip() for k, v in row.items()
                                        if not isinstance(v, list)}
    except UnicodeDecodeError as exc:
        raise AgeGenderError(f"{display(file)}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise AgeGenderError(f"{display(file)}: not a readable label table ({exc})") from None


def _header(file: Path) -> list[str]:
    for _line, row in _table(file):
        return list(row)
    raise AgeGenderError(f"{display(file)}: no labelled rows")


def _find(name: str, roots: Sequence[Path]) -> Path | None:
    candidate = Path(name)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for root in roots:
        if (root / candidate).is_file():
            return Path(os.path.abspath(root / candidate))
    return None


def _labels(
    where: str, age_text: str, gender_text: str, gaps: str, report: LabelReport
) -> tuple[int | None, int | None, int | None] | str:
    """(age in years, gender, age class) of one row; labels that cannot be used are counted and left None;
    the reason when neither task keeps a label."""
    age = age_class = None
    parsed = parse_age(age_text)
    if isinstance(parsed, str):
        report.dropped_labels[f"age: {parsed}"] += 1
    elif parsed is not None:
        mapped = age_class_of(*parsed, gaps)
        if isinstance(mapped, str) and gaps == "keep" and parsed[0] == parsed[1] and "between" in mapped:
            age = parsed[0]  # --gaps keep: an exact age between the classes counts for years only
        elif isinstance(mapped, str):
            report.dropped_labels[f"age: {mapped}"] += 1
        else:
            age_class = mapped
            age = parsed[0] if parsed[0] == parsed[1] else None
    gender = parse_gender(gender_text)
    if isinstance(gender, str):
        report.dropped_labels[f"gender: {gender}"] += 1
        gender = None
    if gender is None and age_class is None:
        return f"{where}: no usable label (age {age_text!r}, gender {gender_text!r})"
    return age, gender, age_class


@dataclass(frozen=True)
class _Entry:
    """One row of a label file in the reader's words: where it is, the image's possible names (each with the
    face's box in it, if any) and the label texts."""

    where: str
    names: tuple[tuple[str, tuple[int, int, int, int] | None], ...]
    age: str
    gender: str
    race: str | None = None
    split: str | None = None
    group: str = ""


def _resolve(entries: Iterator[_Entry], roots: Sequence[Path], gaps: str, report: LabelReport
             ) -> Iterator[LabelRow | tuple[str, str]]:
    """The label rows of any format: the image found under `roots`, the labels parsed; else why not."""
    for entry in entries:
        odd = next((name for name, _ in entry.names if "\n" in name or len(name) > MAX_PATH_FIELD), None)
        if odd is not None:  # a quote left open swallows the following lines into one field
            yield entry.where, (f"a quote left open in the label file? (the path field {odd[:30]!r}... spans "
                                f"lines or runs past {MAX_PATH_FIELD} characters; close the quote)")
            continue
        found = next(((path, box) for name, box in entry.names if (path := _find(name, roots)) is not None), None)
        if found is None:
            yield entry.where, f"image {entry.names[0][0]!r} not found beside the label file or in the sources"
            continue
        path, box = found
        labels = _labels(entry.where, entry.age, entry.gender, gaps, report)
        if isinstance(labels, str):
            yield str(path), labels
        elif entry.split is not None and entry.split not in ("train", "val", "test"):
            yield str(path), f"{entry.where}: split {entry.split!r} is not train, val or test"
        else:
            yield LabelRow(path, labels[0], labels[1], entry.race, labels[2], entry.split, box, entry.group)


def _csv_rows(file: Path, columns: dict[str, str]) -> Iterator[_Entry]:
    names = {**DEFAULT_COLUMNS, **columns}
    header = _header(file)
    if names["path"] not in header or (names["age"] not in header and names["gender"] not in header):
        raise AgeGenderError(f"{display(file)}: needs a '{names['path']}' column and an '{names['age']}' or "
                             f"'{names['gender']}' one (has {', '.join(header[:8])}); name them with --columns")
    box_columns = next((c for c in (("x1", "y1", "x2", "y2"), ("x", "y", "w", "h")) if set(c) <= set(header)), None)
    group = names.get("group") or next((h for h in GROUP_HEADERS if h in header), None)
    for line, row in _table(file):
        yield _Entry(f"{display(file)}, line {line}", ((row.get(names["path"], ""), _box(row, box_columns)),),
                     row.get(names["age"], ""), row.get(names["gender"], ""), row.get(names["race"]) or None,
                     row.get(names["split"]) or None, _group_name(row.get(group, "") if group else ""))


def _group_name(text: str) -> str:
    """A label file's person or group, kept apart from `dataset`'s duplicate groups (g00001...)."""
    text = text.strip()[:128]
    return f"person:{text}" if text and text.isprintable() else ""


def _box(row: dict[str, str], names: tuple[str, ...] | None) -> tuple[int, int, int, int] | None:
    if names is None:
        return None
    try:
        a, b, c, d = (int(float(row[n])) for n in names)
    except (KeyError, ValueError):
        return None
    box = (a, b, c, d) if names[2] == "x2" else (a, b, a + c, b + d)
    return box if box[2] > box[0] and box[3] > box[1] else None


def _fairface_rows(file: Path, columns: dict[str, str]) -> Iterator[_Entry]:
    """fairface_label_{train,val}.csv: file, age (bins 0-2 ... 'more than 70'), gender (Male/Female), race."""
    split = FAIRFACE_FILE_SPLIT["val" if "val" in file.stem.lower() else "train"]
    for line, row in _table(file, ","):
        yield _Entry(f"{display(file)}, line {line}", ((row.get("file", ""), None),), row.get("age", ""),
                     row.get("gender", ""), row.get("race") or None, split)


def _adience_rows(file: Path, columns: dict[str, str]) -> Iterator[_Entry]:
    """fold_N_data.txt: user_id, original_image, face_id, age ('(25, 32)' or years), gender (m/f/u), x, y, dx,
    dy. The aligned face crops are used when present, else the whole photo with the face's box."""
    fold = int(match[1]) if (match := _FOLD.search(file.name)) else None
    for line, row in _table(file, "\t"):
        user, image, face = row.get("user_id", ""), row.get("original_image", ""), row.get("face_id", "")
        crops = [(f"{top}{user}/{kind}.{face}.{image}", None) for kind in ADIENCE_CROPS
                 for top in ("aligned/", "faces/", "")]
        box = _box(row, ("x", "y", "dx", "dy"))
        photos = [(f"faces/{user}/{image}", box), (f"{user}/{image}", box)]
        yield _Entry(f"{display(file)}, line {line}", tuple(crops + photos), row.get("age", ""),
                     row.get("gender", ""), None, None if fold is None else ADIENCE_FOLD_SPLIT.get(fold))


def labels_summary(rows: Sequence[LabelRow], report: LabelReport) -> dict:
    """Counts for the dataset summary: tasks labelled, labels left out with reasons."""
    return {
        "images": len(rows),
        "with_gender": sum(r.gender is not None for r in rows),
        "with_age_class": sum(r.age_class is not None for r in rows),
        "groups": len({r.group for r in rows if r.group}),
        "gender_counts": {GENDERS[g]: n for g, n in sorted(Counter(r.gender for r in rows if r.gender is not None
                                                                    ).items())},
        "labels_left_out": dict(report.dropped_labels.most_common()),
    }
