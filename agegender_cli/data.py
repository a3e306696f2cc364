"""UTKFace sources: name parsing, archive extraction, stratified split and the manifest."""

from __future__ import annotations

import csv
import io
import re
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agegender_cli.config import DatasetConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_write_bytes
from agegender_cli.labels import AGE_CLASSES, GENDERS, age_to_class

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SPLITS = ("train", "val", "test")
MANIFEST_FIELDS = ("path", "age", "gender", "race", "age_class", "split")
# age_gender_race_datetime..., the race field is missing in a few UTKFace names
_NAME = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>\d+)_(?:(?P<race>\d)_)?(?P<date>\d{8,})")


@dataclass(frozen=True)
class Record:
    """One usable image of the manifest."""

    path: Path
    age: int
    gender: int
    race: int | None
    age_class: int
    split: str = ""


@dataclass(frozen=True)
class Skipped:
    """A file left out of the manifest, with the reason."""

    file: str
    reason: str


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
    if age > 130:
        return f"age {age} is not plausible"
    if race is not None and race > 4:
        return f"race {race} is not 0-4"
    return ParsedName(age, gender, race)


def label_record(path: Path, gaps: str) -> Record | Skipped:
    """Turn one file into a Record, or say why it is skipped (the name only; no decoding)."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return Skipped(str(path), f"not an image (extension '{path.suffix or 'none'}')")
    parsed = parse_name(path.name)
    if isinstance(parsed, str):
        return Skipped(str(path), parsed)
    age_class = age_to_class(parsed.age, gaps)
    if age_class is None:
        return Skipped(str(path), f"age {parsed.age} lies between the age classes (--gaps drop)")
    return Record(path, parsed.age, parsed.gender, parsed.race, age_class)


def _is_within(root: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract a .tar.gz/.tgz/.tar/.zip safely: no member may escape `target`, no links."""
    target.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    if name.endswith(".zip"):
        _extract_zip(archive, target)
    elif name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        _extract_tar(archive, target)
    else:
        raise AgeGenderError(f"{archive}: unsupported archive; give a folder, .tar.gz or .zip")
    return target


def _check_member(archive: Path, target: Path, member: str) -> Path:
    destination = target / member
    if Path(member).is_absolute() or not _is_within(target, destination):
        raise AgeGenderError(f"{archive}: member '{member}' would escape the target folder; refusing it")
    return destination


def _extract_zip(archive: Path, target: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                destination = _check_member(archive, target, info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise AgeGenderError(f"{archive}: member '{info.filename}' is a link; refusing it")
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(destination, zf.read(info))
    except zipfile.BadZipFile as exc:
        raise AgeGenderError(f"{archive}: not a readable zip archive ({exc})") from exc


def _extract_tar(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                destination = _check_member(archive, target, member.name)
                if member.issym() or member.islnk():
                    raise AgeGenderError(f"{archive}: member '{member.name}' is a link; refusing it")
                if member.isdir():
                    destination.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    handle = tf.extractfile(member)
                    atomic_write_bytes(destination, handle.read() if handle else b"")
    except tarfile.TarError as exc:
        raise AgeGenderError(f"{archive}: not a readable tar archive ({exc})") from exc


def list_files(folder: Path) -> list[Path]:
    """Every regular file under `folder`, sorted for reproducibility."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _readable(path: Path) -> bool:
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        return False
    return cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None


def find_unreadable(paths: Sequence[Path], workers: int = 4) -> set[Path]:
    """Paths that do not decode as images."""
    with ThreadPoolExecutor(workers) as pool:
        flags = list(pool.map(_readable, paths, chunksize=64))
    return {p for p, ok in zip(paths, flags, strict=True) if not ok}


def stratified_split(
    records: Sequence[Record], fractions: tuple[float, float, float], seed: int
) -> list[Record]:
    """Assign train/val/test within each age class x gender stratum, reproducibly."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise AgeGenderError(f"split fractions {fractions} must be non-negative and sum to 1")
    rng = np.random.default_rng(seed)
    strata: dict[tuple[int, int], list[Record]] = {}
    for record in sorted(records, key=lambda r: str(r.path)):
        strata.setdefault((record.age_class, record.gender), []).append(record)
    out: list[Record] = []
    for key in sorted(strata):
        members = strata[key]
        order = rng.permutation(len(members))
        n_test = int(round(fractions[2] * len(members)))
        n_val = int(round(fractions[1] * len(members)))
        for rank, index in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            r = members[index]
            out.append(Record(r.path, r.age, r.gender, r.race, r.age_class, split))
    return sorted(out, key=lambda r: str(r.path))


def manifest_bytes(records: Iterable[Record]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    for r in records:
        race = "" if r.race is None else r.race
        writer.writerow([str(r.path), r.age, r.gender, race, r.age_class, r.split])
    return buffer.getvalue().encode()


def write_manifest(records: Sequence[Record], path: Path) -> None:
    atomic_write_bytes(path, manifest_bytes(records))


def read_manifest(path: Path, split: str | None = None) -> list[Record]:
    """Records of a manifest written by `agegender dataset`, optionally one split."""
    if not path.is_file():
        raise AgeGenderError(f"{path}: no manifest here; run `agegender dataset SOURCE --out {path.parent}`")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or set(MANIFEST_FIELDS) - set(reader.fieldnames):
            raise AgeGenderError(f"{path}: not a manifest (columns {', '.join(MANIFEST_FIELDS)} expected)")
        records = [
            Record(
                Path(row["path"]),
                int(row["age"]),
                int(row["gender"]),
                int(row["race"]) if row["race"] else None,
                int(row["age_class"]),
                row["split"],
            )
            for row in reader
        ]
    if split is not None:
        if split not in SPLITS:
            raise AgeGenderError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        records = [r for r in records if r.split == split]
    return records


def records_from_folder(folder: Path, gaps: str = "drop") -> tuple[list[Record], list[Skipped]]:
    """Label every file of a UTKFace folder by its name (no split, no decoding)."""
    records, skipped = [], []
    for path in list_files(folder):
        item = label_record(path.resolve(), gaps)
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
    return table


def build_dataset(cfg: DatasetConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Scan (or extract) a UTKFace source, split it and write manifest.csv; returns the summary."""
    source = cfg.source
    if cfg.gaps not in ("drop", "nearest"):
        raise AgeGenderError(f"--gaps must be 'drop' or 'nearest', not '{cfg.gaps}'")
    if not source.exists():
        raise AgeGenderError(f"{source}: no such file or folder; give a UTKFace folder, .tar.gz or .zip")
    folder = extract_archive(source, cfg.out / "images") if source.is_file() else source
    if progress:
        progress(f"scanning {folder}")
    records, skipped = records_from_folder(folder, cfg.gaps)
    if cfg.check_images and records:
        if progress:
            progress(f"decoding {len(records)} images to check them")
        bad = find_unreadable([r.path for r in records])
        skipped += [Skipped(str(r.path), "cannot decode: not an image or corrupt file") for r in records
                    if r.path in bad]
        records = [r for r in records if r.path not in bad]
    if not records:
        reasons = Counter(s.reason.split(":")[0] for s in skipped).most_common(2)
        why = "; ".join(f"{n} x {reason}" for reason, n in reasons) or "the source is empty"
        raise AgeGenderError(f"{source}: no usable UTKFace image ({why}); names must be age_gender_race_datetime.jpg")
    records = stratified_split(records, cfg.fractions, cfg.seed)
    manifest = cfg.out / "manifest.csv"
    write_manifest(records, manifest)
    skipped.sort(key=lambda s: s.file)
    return {
        "source": str(source),
        "manifest": str(manifest),
        "gaps": cfg.gaps,
        "gap_rule": None if cfg.gaps == "drop" else "nearest",
        "seed": cfg.seed,
        "n_files": len(records) + len(skipped),
        "n_usable": len(records),
        "n_skipped": len(skipped),
        "splits": counts_table(records),
        "skipped": [{"file": s.file, "reason": s.reason} for s in skipped],
    }
