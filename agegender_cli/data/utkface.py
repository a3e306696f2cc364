"""UTKFace sources: name parsing, archive extraction, stratified split and the manifest."""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from agegender_cli.config import SPLITS, DatasetConfig
from agegender_cli.csvcells import plain_cell, safe_cell
from agegender_cli.data.archives import extract_archive, prune_extractions
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.inputs import IMAGE_EXTENSIONS
from agegender_cli.fileio import atomic_write_bytes, display, make_folder
from agegender_cli.labels import AGE_CLASSES, GENDERS, RACES, age_to_class, race_name

MAX_AGE = 130
MANIFEST_FIELDS = ("path", "age", "gender", "race", "age_class", "split")
EXTRA_FIELDS = ("source", "group", "box")  # optional when reading (older manifests lack them)
# age_gender_race_datetime..., the race field is missing in a few UTKFace names
_NAME = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>\d+)_(?:(?P<race>\d)_)?(?P<date>\d{8,})")


@dataclass(frozen=True)
class Record:
    """One usable image of the manifest. A dataset labelled by a file may lack a task's label (None): that
    image is scored on the other task only; an age given as a range has age_class but no age in years."""

    path: Path
    age: int | None
    gender: int | None
    race: int | str | None  # UTKFace's 0-4 (labels.RACES), or a dataset's own group name
    age_class: int | None
    split: str = ""
    source: str = ""  # the `dataset` argument the file came from
    group: str = ""  # duplicate group (copies of one photo share it and one split); empty for a unique photo
    box: tuple[int, int, int, int] | None = None  # the labelled face in a whole photo: x1, y1, x2, y2

    @property
    def race_name(self) -> str:
        return race_name(self.race)


@dataclass(frozen=True)
class Skipped:
    """A file left out of the manifest, with the reason and its kind (one of SKIP_KINDS, for counting)."""

    file: str
    reason: str
    kind: str = "other"


# Why an image of a UTKFace folder is left out, as `evaluate --images` counts them.
SKIP_KINDS = ("gap_age", "bad_name", "not_image", "unreadable", "no_face", "listed_twice", "other")


@dataclass(frozen=True)
class ParsedName:
    age: int
    gender: int
    race: int | None


def parse_name(name: str) -> ParsedName | str:
    """Parse a UTKFace file name; returns the reason as a string when it cannot be used."""
    match = _NAME.match(name)
    if not match:
        return "malformed name: expected age_gender_race_datetime.jpg"
    age, gender = int(match["age"]), int(match["gender"])
    race = int(match["race"]) if match["race"] is not None else None
    if gender not in (0, 1):
        return f"gender {gender} is not 0 (male) or 1 (female)"
    if age > MAX_AGE:
        return f"age {age} is not plausible"
    if race is not None and race > 4:
        return f"race {race} is not 0-4"
    return ParsedName(age, gender, race)


def label_record(path: Path, gaps: str) -> Record | Skipped:
    """Turn one file into a Record, or say why it is skipped (the name only; no decoding)."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return Skipped(display(path), f"not an image (extension '{display(path.suffix) or 'none'}')", "not_image")
    if display(path) != str(path):
        return Skipped(display(path), "the file name is not valid UTF-8; rename the file", "bad_name")
    parsed = parse_name(path.name)
    if isinstance(parsed, str):
        return Skipped(str(path), parsed, "bad_name")
    age_class = age_to_class(parsed.age, "drop" if gaps == "keep" else gaps)
    if age_class is None and gaps != "keep":
        return Skipped(str(path), f"age {parsed.age} lies between the age classes (--gaps drop)", "gap_age")
    return Record(path, parsed.age, parsed.gender, parsed.race, age_class)


def list_files(folder: Path) -> list[Path]:
    """Every regular file under `folder`, sorted for reproducibility."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def stratified_split(
    records: Sequence[Record], fractions: tuple[float, float, float], seed: int,
    fixed: Mapping[str, str] | None = None,
) -> list[Record]:
    """Assign train/val/test within each age class x gender stratum, reproducibly. Records that share a
    duplicate group move together: the group is one unit, in the stratum of its first member. A unit with a
    member in `fixed` (real path -> split, from an earlier manifest) keeps that split: train if any member
    was trained on, else test, else val; the other units are split by `fractions`."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise AgeGenderError(f"split fractions {fractions} must be non-negative and sum to 1")
    rng = np.random.default_rng(seed)
    units: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: str(r.path)):
        units.setdefault(record.group or f"\0{record.path}", []).append(record)
    out: list[Record] = []
    strata: dict[tuple[int, int], list[list[Record]]] = {}
    for members in units.values():
        earlier = {fixed.get(os.path.realpath(r.path)) for r in members} if fixed else set()
        kept = next((split for split in ("train", "test", "val") if split in earlier), None)
        if kept is not None:
            out += [replace(r, split=kept) for r in members]
        else:
            first = members[0]  # an unknown label is its own stratum (-1), so keys stay comparable
            key = (_stratum_of_age(first), _known(first.gender))
            strata.setdefault(key, []).append(members)
    for key in sorted(strata):
        stratum = sorted(strata[key], key=lambda unit: str(unit[0].path))
        order = rng.permutation(len(stratum))
        n_test = int(round(fractions[2] * len(stratum)))
        n_val = int(round(fractions[1] * len(stratum)))
        for rank, index in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            out += [replace(r, split=split) for r in stratum[index]]
    return sorted(out, key=lambda r: str(r.path))


def _known(label: int | None) -> int:
    return -1 if label is None else label


GAP_STRATUM = 1000  # after every class stratum: adding gap ages (--gaps keep) leaves the class faces' split as it was


def _stratum_of_age(record: Record) -> int:
    """The age class; ages between the classes form one stratum sorted last; an unknown age is -1."""
    if record.age_class is None and record.age is not None:
        return GAP_STRATUM
    return _known(record.age_class)


def stored_path(path: Path, base: Path) -> str:
    """How the manifest in `base` names `path`: relative when the image lies under `base` (the manifest
    moves with its data), else absolute; symlinks are never resolved."""
    absolute, folder = Path(os.path.abspath(path)), Path(os.path.abspath(base))
    try:
        return absolute.relative_to(folder).as_posix()
    except ValueError:
        return str(absolute)


def manifest_bytes(records: Iterable[Record], base: Path) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS + EXTRA_FIELDS)
    for r in records:
        race = "" if r.race is None else r.race
        source = stored_path(Path(r.source), base) if r.source else ""
        box = "" if r.box is None else " ".join(map(str, r.box))
        writer.writerow([safe_cell(stored_path(r.path, base)), _blank(r.age), _blank(r.gender), safe_cell(race),
                         _blank(r.age_class), r.split, safe_cell(source), safe_cell(r.group), box])
    return buffer.getvalue().encode()


def _blank(value: int | None) -> int | str:
    return "" if value is None else value


def write_manifest(records: Sequence[Record], path: Path) -> None:
    atomic_write_bytes(path, manifest_bytes(records, path.parent))


def _refuse_foreign_manifest(path: Path) -> None:
    """--out may hold a manifest this tool wrote (it is rebuilt), never another file named manifest.csv."""
    from agegender_cli.ownership import begins_with, foreign

    if foreign(path, lambda p: begins_with(p, ",".join(MANIFEST_FIELDS).encode())):
        raise AgeGenderError(f"--out {display(path.parent)}: its manifest.csv is not one agegender wrote; choose "
                             "another --out (the file stays as it is)")


BUILD_RECORD = "dataset.json"  # beside manifest.csv: how it was built and what the build left out, by kind
_BUILD_MARK = "agegender dataset"


def write_build_record(manifest: Path, gaps: str, seed: int, usable: int, skipped: Sequence[Skipped]) -> None:
    """What `agegender dataset` left out of the manifest itself (by SKIP_KINDS), so that an evaluation on it can
    say what it never saw (the gap ages under --gaps drop are in no split); tied to the manifest by its sha256."""
    import json

    from agegender_cli.fileio import atomic_write_text, sha256_file

    left_out = Counter(s.kind for s in skipped)
    record = {"written_by": _BUILD_MARK, "manifest": manifest.name, "manifest_sha256": sha256_file(manifest),
              "gaps": gaps, "seed": seed, "usable": usable, "left_out": {kind: left_out[kind] for kind in SKIP_KINDS}}
    atomic_write_text(manifest.parent / BUILD_RECORD, json.dumps(record, indent=1) + "\n")


def _refuse_foreign_build_record(path: Path) -> None:
    """--out may hold a build record this tool wrote (it is rewritten), never another file of its name."""
    if path.exists() and _read_build_record(path) is None:
        raise AgeGenderError(f"--out {display(path.parent)}: its {BUILD_RECORD} is not one agegender wrote; choose "
                             "another --out (the file stays as it is)")


def read_build_record(manifest: Path) -> dict | None:
    """What the build of this very manifest left out: {"gaps": its rule, KIND: count, ...}; None where the record
    beside it is missing, not agegender's, or of another manifest (one rewritten or replaced since)."""
    from agegender_cli.fileio import sha256_file

    record = _read_build_record(Path(manifest).parent / BUILD_RECORD)
    try:
        if record is None or record.get("manifest_sha256") != sha256_file(Path(manifest)):
            return None
    except OSError:
        return None
    return {"gaps": str(record.get("gaps")), **{str(k): n for k, n in record["left_out"].items()}}


def _read_build_record(path: Path) -> dict | None:
    import json

    try:
        if path.stat().st_size > 1 << 20:  # a few hundred bytes when agegender wrote it
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("written_by") != _BUILD_MARK:
        return None
    left_out = record.get("left_out")
    if not isinstance(left_out, dict) or not all(isinstance(n, int) and n >= 0 for n in left_out.values()):
        return None
    return record


def read_manifest(path: Path, split: str | None = None, *, both_labels: bool = False) -> list[Record]:
    """Records of a manifest written by `agegender dataset`, optionally one split (and, with `both_labels`,
    only images that have a gender and an age class); every field is checked (the file may come from anyone),
    a bad row is a one-line error naming its line."""
    if not path.is_file():
        raise AgeGenderError(f"{path}: no manifest here; run `agegender dataset SOURCE --out {path.parent}`")
    if split is not None and split not in SPLITS:
        raise AgeGenderError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    records = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or set(MANIFEST_FIELDS) - set(reader.fieldnames):
                raise AgeGenderError(f"{path}: not a manifest (columns {', '.join(MANIFEST_FIELDS)} expected)")
            for row in reader:
                try:
                    record = _manifest_record(row, path.parent)
                except ValueError as exc:
                    raise AgeGenderError(f"{path}, line {reader.line_num}: {exc}; fix the row or run "
                                         "`agegender dataset` again") from None
                if (split is None or record.split == split) and not (
                        both_labels and (record.gender is None or record.age_class is None)):
                    records.append(record)
    except UnicodeDecodeError as exc:
        raise AgeGenderError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); not a manifest") from None
    except csv.Error as exc:
        raise AgeGenderError(f"{path}: not a readable CSV manifest ({exc})") from None
    return records


def _manifest_record(row: dict, base: Path) -> Record:
    """One manifest row as a Record; ValueError says which field is wrong."""
    if None in row or any(row.get(field) is None for field in MANIFEST_FIELDS):
        given = sum(value is not None for key, value in row.items() if key is not None) + len(row.get(None) or [])
        raise ValueError(f"{given} fields where the header names {len(row) - (None in row)}")
    path = plain_cell(row["path"])
    if not path or "\0" in path:
        raise ValueError("empty or invalid path")
    age = _whole_number(row, "age", 0, MAX_AGE) if row["age"] else None
    gender = _whole_number(row, "gender", 0, len(GENDERS) - 1) if row["gender"] else None
    age_class = _whole_number(row, "age_class", 0, len(AGE_CLASSES) - 1) if row["age_class"] else None
    if gender is None and age_class is None:
        raise ValueError("neither gender nor age_class is given")
    if row["split"] not in SPLITS:
        raise ValueError(f"split {_shown(row['split'])} is not one of {', '.join(SPLITS)}")
    return Record(base / path, age, gender, _race(plain_cell(row["race"])), age_class, row["split"],
                  plain_cell(row.get("source") or ""), plain_cell(row.get("group") or ""), _box(row.get("box") or ""))


def _race(text: str) -> int | str | None:
    """UTKFace's race number, or a dataset's own group name (printable, at most 64 characters)."""
    if not text:
        return None
    if text.isascii() and text.isdigit():
        if int(text) >= len(RACES):
            raise ValueError(f"race {_shown(text)} is not a number from 0 to {len(RACES) - 1} or a group name")
        return int(text)
    if len(text) > 64 or not text.isprintable():
        raise ValueError(f"race {_shown(text)} is not a group name of at most 64 printable characters")
    return text


def _box(text: str) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    parts = text.split()
    if len(parts) != 4 or not all(p.lstrip("-").isdigit() and len(p) <= 6 for p in parts):
        raise ValueError(f"box {_shown(text)} is not four whole numbers x1 y1 x2 y2")
    x1, y1, x2, y2 = map(int, parts)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box {_shown(text)} is empty (x2 <= x1 or y2 <= y1)")
    return x1, y1, x2, y2


def _whole_number(row: dict, field: str, low: int, high: int) -> int:
    text = row[field].strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 4) or not low <= int(text) <= high:
        raise ValueError(f"{field} {_shown(row[field])} is not a whole number from {low} to {high}")
    return int(text)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def records_from_folder(folder: Path, gaps: str = "drop") -> tuple[list[Record], list[Skipped]]:
    """Label every file of a UTKFace folder by its name (no split, no decoding)."""
    records, skipped = [], []
    for path in list_files(folder):
        item = label_record(Path(os.path.abspath(path)), gaps)
        (records if isinstance(item, Record) else skipped).append(item)
    return records, skipped


def counts_table(records: Sequence[Record]) -> dict:
    """Counts per split x age class and per split x gender."""
    table: dict[str, dict] = {}
    for split in SPLITS:
        members = [r for r in records if r.split == split]
        ages = Counter(r.age_class for r in members)
        genders = Counter(r.gender for r in members)
        table[split] = {
            "n": len(members),
            "age": {name: ages.get(i, 0) for i, name in enumerate(AGE_CLASSES)},
            "gender": {name: genders.get(i, 0) for i, name in enumerate(GENDERS)},
        }
        if ages.get(None) or genders.get(None):
            table[split]["unlabelled"] = {"age": ages.get(None, 0), "gender": genders.get(None, 0)}
    return table


def extraction_targets(sources: Sequence[Path], out: Path) -> list[Path]:
    """Where each source would be extracted if it is an archive: out/images for one source, else
    out/images/N-NAME; with several archives, what an earlier run left there and this one will not replace is
    removed first."""
    if len(sources) == 1:
        return [out / "images"]
    targets = [out / "images" / f"{number}-{source.name}" for number, source in enumerate(sources)]
    if any(source.is_file() for source in sources):
        prune_extractions(out / "images", [t for s, t in zip(sources, targets, strict=True) if s.is_file()])
    return targets


def _source_records(sources: Sequence[Path], out: Path, gaps: str, progress: Callable[[str], None]
                    ) -> tuple[list[Record], list[Skipped]]:
    """Every file of every source (an archive is extracted under `out`), labelled by its name; a file
    reached twice (overlapping sources) counts once."""
    records: list[Record] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    targets = extraction_targets(sources, out)
    for source, target in zip(sources, targets, strict=True):
        if not source.exists():
            raise AgeGenderError(f"{source}: no such file or folder; give a UTKFace folder, .tar.gz or .zip")
        folder = extract_archive(source, target) if source.is_file() else source
        progress(f"scanning {folder}")
        found, left_out = records_from_folder(folder, gaps)
        for record in found:
            real = os.path.realpath(record.path)
            if real in seen:
                skipped.append(Skipped(str(record.path), "listed twice: the same file is in an earlier source"))
                continue
            seen.add(real)
            records.append(replace(record, source=str(source)))
        skipped += left_out
    return records, skipped


def _labelled_records(cfg: DatasetConfig, say: Callable[[str], None]
                      ) -> tuple[list[Record], list[Skipped], dict[str, str], dict]:
    """Records from label files (their images found beside them or under the sources, archives extracted),
    what was skipped, the dataset's own split of each image (real path -> split) and a labels summary."""
    from agegender_cli.data.labelled import labels_summary, read_label_files

    roots = []
    for source, target in zip(cfg.sources, extraction_targets(cfg.sources, cfg.out), strict=True):
        if not source.exists():
            raise AgeGenderError(f"{source}: no such file or folder; give the folder (or archive) of the images")
        roots.append(extract_archive(source, target) if source.is_file() else source)
    say(f"reading labels from {', '.join(map(str, cfg.labels))}")
    rows, report = read_label_files(cfg.labels, roots, fmt=cfg.label_format, columns=dict(cfg.columns),
                                    gaps=cfg.gaps)
    records, skipped, preset, seen = [], [Skipped(f, why) for f, why in report.skipped], {}, set()
    for row in rows:
        real = os.path.realpath(row.path)
        if real in seen:
            skipped.append(Skipped(display(row.path), "labelled twice: the first label is kept"))
            continue
        if display(row.path) != str(row.path):
            skipped.append(Skipped(display(row.path), "the file name is not valid UTF-8; rename the file"))
            continue
        seen.add(real)
        records.append(Record(row.path, row.age, row.gender, row.race, row.age_class, "", _label_source(row, cfg),
                              row.group, row.box))
        if row.split is not None:
            preset[real] = row.split
    return records, skipped, preset, labels_summary(rows, report)


def _label_source(row, cfg: DatasetConfig) -> str:
    """The label file a row came from is not kept per row; the image's source folder is."""
    for source in cfg.sources:
        if str(row.path).startswith(os.path.abspath(source) + os.sep):
            return str(source)
    return ""


def build_dataset(cfg: DatasetConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Scan (or extract) UTKFace sources, group copies of one photo, split and write manifest.csv."""
    from agegender_cli.data.duplicates import groups_of, scan_images

    say = progress or (lambda _message: None)
    make_folder(cfg.out, "--out")
    _refuse_foreign_manifest(cfg.out / "manifest.csv")
    _refuse_foreign_build_record(cfg.out / BUILD_RECORD)
    preset: dict[str, str] = {}
    label_info = None
    if cfg.labels:
        records, skipped, preset, label_info = _labelled_records(cfg, say)
    else:
        records, skipped = _source_records(cfg.sources, cfg.out, cfg.gaps, say)
    if records and (cfg.check_images or cfg.duplicates != "ignore"):
        say(f"decoding {len(records)} images" + (" to check them" if cfg.check_images else ""))
        readable, signatures = scan_images([r.path for r in records])
        if cfg.check_images:
            skipped += [Skipped(str(r.path), "cannot decode: not an image or corrupt file")
                        for r, ok in zip(records, readable, strict=True) if not ok]
            records = [r for r, ok in zip(records, readable, strict=True) if ok]
            signatures = signatures[readable]
    if not records:
        reasons = Counter(s.reason.split(":")[0] for s in skipped).most_common(2)
        why = "; ".join(f"{n} x {reason}" for reason, n in reasons) or "the source is empty"
        names = ", ".join(map(str, cfg.sources))
        raise AgeGenderError(f"{names}: no usable UTKFace image ({why}); names must be age_gender_race_datetime.jpg")
    groups: list[list[int]] = []
    if cfg.duplicates != "ignore":
        say(f"looking for copies among {len(records)} images")
        groups = groups_of(signatures, cfg.duplicate_threshold)
    records, skipped, duplicates = _apply_duplicates(records, skipped, groups, cfg)
    fixed = None
    fractions = cfg.fractions
    if cfg.keep_splits_from is not None:
        fixed = {os.path.realpath(r.path): r.split for r in read_manifest(cfg.keep_splits_from)}
        say(f"{len(fixed)} images keep their split from {cfg.keep_splits_from}")
    if cfg.split_from_source:
        if not preset:
            raise AgeGenderError("--split-from-source: the label files give no split (a 'split' column, FairFace's "
                                 "train/val files or Adience's folds); leave it out for a stratified split")
        fixed = {**preset, **(fixed or {})}
        given = set(preset.values())
        # the splits the dataset does not give are carved from the rest by the usual fractions
        fractions = tuple(0.0 if split in given else f for split, f in zip(SPLITS, cfg.fractions, strict=True))
        fractions = tuple(f / sum(fractions) for f in fractions) if sum(fractions) else (1.0, 0.0, 0.0)
        say(f"{len(preset)} images keep the dataset's own split ({', '.join(sorted(given))})")
    records = stratified_split(records, fractions, cfg.seed, fixed)
    manifest = cfg.out / "manifest.csv"
    write_manifest(records, manifest)
    write_build_record(manifest, cfg.gaps, cfg.seed, len(records), skipped)
    if duplicates["list"]:
        split_of = {r.path: r.split for r in records}
        for group in duplicates["list"]:
            group["split"] = sorted({split_of[Path(f)] for f in group["files"] if Path(f) in split_of})
    skipped.sort(key=lambda s: s.file)
    return {
        "sources": [str(s) for s in cfg.sources],
        "manifest": str(manifest),
        "gaps": cfg.gaps,
        "gap_rule": None if cfg.gaps == "drop" else cfg.gaps,
        "seed": cfg.seed,
        "kept_splits_from": None if cfg.keep_splits_from is None else str(cfg.keep_splits_from),
        "n_files": len(records) + len(skipped),
        "n_usable": len(records),
        "n_skipped": len(skipped),
        "per_source": dict(sorted(Counter(r.source for r in records).items())),
        **({"labels": label_info} if label_info is not None else {}),
        "duplicates": duplicates,
        "splits": counts_table(records),
        "skipped": [{"file": s.file, "reason": s.reason} for s in skipped],
    }


def _apply_duplicates(records: list[Record], skipped: list[Skipped], groups: list[list[int]], cfg: DatasetConfig
                      ) -> tuple[list[Record], list[Skipped], dict]:
    """Tag each group's members (group) or keep its first member only (drop); the groups as a summary."""
    listed, conflicting = [], 0
    labelled = list(records)
    dropped: set[int] = set()
    for number, members in enumerate(groups, start=1):
        name = f"g{number:05d}"
        labels = {(records[i].age_class, records[i].gender) for i in members}
        conflicting += len(labels) > 1
        listed.append({"group": name, "files": [str(records[i].path) for i in members],
                       "labels": [[records[i].age, records[i].gender] for i in members],
                       "conflicting_labels": len(labels) > 1})
        # a copy of a photo of a labelled person joins the person's other photos too: their groups become one
        joined = {labelled[i].group for i in members} - {""}
        together = set(members) | ({i for i, r in enumerate(labelled) if r.group in joined} if joined else set())
        for i in together:
            labelled[i] = replace(labelled[i], group=name)
        if cfg.duplicates == "drop":
            dropped.update(members[1:])
            skipped += [Skipped(str(records[i].path), f"copy of {records[members[0]].path} (--duplicates drop)")
                        for i in members[1:]]
    kept = [r for i, r in enumerate(labelled) if i not in dropped]
    summary = {"policy": cfg.duplicates, "threshold": cfg.duplicate_threshold, "groups": len(groups),
               "images": sum(map(len, groups)), "conflicting_labels": conflicting, "dropped": len(dropped),
               "list": listed}
    return kept, skipped, summary
