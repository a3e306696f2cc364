"""The labelled images an evaluation runs on, each once, and the labelled face found in each photo."""

from __future__ import annotations

from pathlib import Path

from agegender_cli.config import EvaluateConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display


def evaluation_records(cfg: EvaluateConfig):
    """The labelled images to evaluate on, and the files of an --images folder left out by their names."""
    from agegender_cli.data.utkface import read_manifest, records_from_folder

    skipped = []
    if cfg.labels is not None:
        records, skipped = _labelled_images(cfg.labels, cfg.images)
    elif cfg.images is not None:
        if not cfg.images.is_dir():
            raise AgeGenderError(f"{cfg.images}: not a folder; give a folder of UTKFace-named images")
        records, skipped = records_from_folder(cfg.images)
    else:
        records = read_manifest(cfg.manifest, None if cfg.split == "all" else cfg.split)
    records, twice = _once_each(records)
    skipped += twice
    if not records:
        where = cfg.labels or cfg.images or f"{cfg.manifest} split '{cfg.split}'"
        raise AgeGenderError(f"{where}: no labelled images to evaluate on")
    return records, skipped


def _once_each(records: list) -> tuple[list, list]:
    """Each image once: a row naming an image listed before (the same file, through any path) is left out with
    its reason, so that no face counts twice."""
    import os

    from agegender_cli.data.utkface import Skipped

    seen: set[str] = set()
    kept, twice = [], []
    for record in records:
        real = os.path.realpath(record.path)
        if real in seen:
            twice.append(Skipped(display(record.path), "listed again: the image is counted once", "listed_twice"))
        else:
            seen.add(real)
            kept.append(record)
    return kept, twice


def _labelled_images(labels: Path, images: Path | None):
    """Every image a labels file labels (found beside it or under `images`), and the rows left out, with reasons."""
    from agegender_cli.data.labelled import read_label_files
    from agegender_cli.data.utkface import Record, Skipped

    if images is not None and not images.is_dir():
        raise AgeGenderError(f"--images {images}: not a folder; give the folder the labels' image paths are under")
    rows, report = read_label_files([labels], [images] if images is not None else [])
    records = [Record(row.path, row.age, row.gender, row.race, row.age_class, "all", str(labels.parent), row.group,
                      row.box) for row in rows]
    return records, [Skipped(file, reason) for file, reason in report.skipped]


def skipped_counts(named: list, failed: list, faces) -> dict[str, int]:
    """Images left out of an evaluation, by why: each of data.utkface.SKIP_KINDS (0 where none)."""
    from collections import Counter

    from agegender_cli.data.utkface import SKIP_KINDS

    counts = Counter(s.kind for s in named)
    counts["unreadable"] += len(failed)
    counts["no_face"] += len(faces.missed) if faces is not None else 0
    return {kind: counts[kind] for kind in SKIP_KINDS}


class FaceFinder:
    """Finds the labelled face in whole photos and crops it as each architecture was trained; counts misses."""

    def __init__(self, cfg: EvaluateConfig) -> None:
        from agegender_cli.archs.registry import framing
        from agegender_cli.faces.detection import make_detector
        from agegender_cli.faces.detectors import photo_search

        name, self.auto = photo_search(cfg.detector)
        self.pick = cfg.pick
        self.detector = make_detector(name, min_face=cfg.min_face, min_score=cfg.min_score, device=cfg.options.device,
                                      engine=cfg.options.engine)
        self.framing = {arch: framing(arch, name, cfg.options) for arch in cfg.archs}
        self.whole_framing = {arch: framing(arch, "none", cfg.options) for arch in cfg.archs}
        self.photos = self.found = self.taken_whole = 0
        self.missed: list[str] = []

    def crops(self, indices: list[int], images: list, records: list) -> tuple[list[int], dict[str, list]]:
        from agegender_cli.faces.detection import face_crop
        from agegender_cli.faces.locate import locate_faces

        kept, crops = [], {arch: [] for arch in self.framing}
        located = locate_faces(self.detector, images, [r.box for r in records], auto=self.auto,
                               pick=self.pick)
        for index, image, record, face in zip(indices, images, records, located, strict=True):
            self.photos += 1
            if face is None:
                self.missed.append(display(record.path))
                continue
            self.found += 1
            self.taken_whole += face.whole
            kept.append(index)
            # the detection itself (its landmarks align the face), or the whole image as a face crop
            for arch in crops:
                crops[arch].append(face_crop(image, face, (self.whole_framing if face.whole else self.framing)[arch]))
        return kept, crops

    def summary(self) -> dict:
        return {"detector": "auto" if self.auto else self.detector.name, "pick": self.pick, "photos": self.photos,
                "found": self.found,
                "recall": self.found / self.photos if self.photos else None, "taken_whole": self.taken_whole,
                "missed": self.missed}
