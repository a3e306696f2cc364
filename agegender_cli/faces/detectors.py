"""The face detectors by name, one entry each (as archs/registry.py holds the architectures): what each does and
how its faces are framed; the options offer these names, faces/detection.make_detector builds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    summary: str  # shown in --detector's help
    framing: str  # how crop_face frames its faces by default (faces.detection.FRAMINGS)
    searches_photos: str | None  # the detector that looks for a labelled face in a photo (none: not one)


SPECS: dict[str, DetectorSpec] = {spec.name: spec for spec in (
    DetectorSpec("auto", "MTCNN, but an image that already is a face crop is taken whole", "utkface", "mtcnn"),
    DetectorSpec("mtcnn", "MTCNN: faces and their 5 landmarks, aligned onto the chips' template", "utkface", "mtcnn"),
    DetectorSpec("haar", "OpenCV's Haar cascade: boxes only, framed as the chips were measured", "utkface", "haar"),
    DetectorSpec("none", "the images are face crops, each taken whole", "box", None),
)}
NAMES = tuple(SPECS)


def photo_search(name: str) -> tuple[str, bool]:
    """The detector that finds a labelled face in a photo for `name`, and whether auto's face-crop test applies
    (an image where it finds no face may be a crop: faces.locate)."""
    searcher = SPECS[name].searches_photos
    if searcher is None:
        raise ValueError(f"--detector {name} does not search photos")
    return searcher, name == "auto"


def summaries() -> str:
    """'auto (...), mtcnn (...), ...' for a help text."""
    return ", ".join(f"{spec.name} ({spec.summary})" for spec in SPECS.values())
