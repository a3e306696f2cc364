"""One record per face as `predict` reports it, built the same way on one machine and on a cluster."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from agegender_cli.archs.base import predict_all
from agegender_cli.faces.detection import Detection, FaceDetector, face_crop
from agegender_cli.faces.inputs import Frame
from agegender_cli.labels import AGE_CLASSES, GENDERS

WHOLE_IMAGE_NOTE = "whole image: a face crop"
Owner = tuple[Frame, int, Detection]  # a face: its frame, its index in the frame, its detection


def detect_and_crop(
    frames: Sequence[Frame], detector: FaceDetector, framings: Mapping[str, str]
) -> tuple[list[list[Detection]], list[Owner], dict[str, list[np.ndarray]]]:
    """The faces of decoded frames: detections per frame, every face in reading order, and its crop for
    each architecture (aligned onto the chips' template, or framed as that architecture's model was trained;
    a whole-image face is the image)."""
    detections = detector.detect([f.image for f in frames])
    owners: list[Owner] = []
    crops: dict[str, list[np.ndarray]] = {arch: [] for arch in framings}
    for frame, found in zip(frames, detections, strict=True):
        for k, det in enumerate(found):
            owners.append((frame, k, det))
            for arch, framing in framings.items():
                crops[arch].append(face_crop(frame.image, det, framing))
    return detections, owners, crops


def frame_records(frames: Sequence[Frame], detector: FaceDetector, framings: Mapping[str, str],
                  predictors: Mapping[str, object]) -> list[list[dict]]:
    """The records of decoded frames, one list per frame in order: a record per face found (left to right), or
    one "no face found" record; every architecture of `predictors` answers for every face in one batch."""
    detections, owners, crops = detect_and_crop(frames, detector, framings)
    outputs = predict_all(predictors, crops) if owners else {}
    position = {id(frame): i for i, frame in enumerate(frames)}
    per_frame: list[list[dict]] = [[] for _ in frames]
    paths = run_paths(predictors) if owners else {}
    for n, (frame, k, det) in enumerate(owners):
        per_frame[position[id(frame)]].append(face_record(frame.source, frame.index, k, det,
                                                          arch_outputs(outputs, n, paths), frame.time))
    for rows, frame, found in zip(per_frame, frames, detections, strict=True):
        if not found:
            rows.append(no_face_record(frame.source, frame.index, frame.time))
    return per_frame


def face_record(source: str, frame_index: int | None, face_index: int, detection: Detection,
                outputs: Mapping[str, dict], time: float | None = None) -> dict:
    """A found face: where it is, how sure the detector was, and each architecture's answer; a face crop taken
    whole by --detector auto says so in "note"."""
    record = {**_where(source, frame_index, time), "status": "face", "face": face_index, "box": list(detection.box),
              "score": round(float(detection.score), 4)}
    if detection.whole:
        record["note"] = WHOLE_IMAGE_NOTE
    return {**record, **outputs}


NO_FACE_STATUS = "no_face"  # a record's "status": "face" (answers follow), "no_face" or "error"


def no_face_record(source: str, frame_index: int | None, time: float | None = None) -> dict:
    """No face found: the frame gets this record and no answer (NO_FACE_STATUS, for JSON and CSV)."""
    return {**_where(source, frame_index, time), "status": NO_FACE_STATUS, "face": None, "box": None, "score": None,
            "note": "no face found"}


def error_record(source: str, frame_index: int | None, error: str) -> dict:
    return {"file": source, "frame": frame_index, "status": "error", "error": error}


def _where(source: str, frame_index: int | None, time: float | None) -> dict:
    """file and frame; and a video frame's time in seconds when its frame rate is known."""
    return {"file": source, "frame": frame_index} | ({} if time is None else {"time": time})


def arch_output(gender_prob: np.ndarray, age_prob: np.ndarray, age_years: float | None = None) -> dict:
    """One architecture's answer for one face: the gender it picks with that gender's probability, the probability
    of female whichever it picks, the age class it picks with its probability, and every age class's; the age in
    years (one decimal) where the model estimates it."""
    g, a = int(gender_prob.argmax()), int(age_prob.argmax())
    out = {"gender": GENDERS[g], "gender_prob": round(float(gender_prob[g]), 4),
           "p_female": round(float(gender_prob[GENDERS.index("female")]), 4), "age": AGE_CLASSES[a],
           "age_prob": round(float(age_prob[a]), 4),
           "age_probs": {name: round(float(p), 4) for name, p in zip(AGE_CLASSES, age_prob, strict=True)}}
    if age_years is not None:
        out["age_years"] = round(float(age_years), 1)
        out["consistent"] = consistent(a, float(age_years))
    return out


def consistent(age_class: int, years: float) -> bool:
    """Whether an age class and a years estimate agree: the years' class (an age between the ranges goes to the
    nearer one) is the class itself or a neighbour."""
    from agegender_cli.labels import age_to_class

    of_years = age_to_class(int(round(min(max(years, 0.0), 100.0))), gaps="nearest")
    return of_years is not None and abs(of_years - age_class) <= 1


def arch_outputs(predictions: Mapping[str, object], n: int, paths: Mapping[str, dict] | None = None
                 ) -> dict[str, dict]:
    """Every architecture's answer for the n-th face of a batch of Predictions, with the engine and precision that
    gave it (`paths`, run_paths of the predictors)."""
    return {arch: arch_output(p.gender_prob[n], p.age_prob[n],  # type: ignore[attr-defined]
                              None if p.age_years is None else p.age_years[n])  # type: ignore[attr-defined]
            | (paths or {}).get(arch, {}) for arch, p in predictions.items()}


def run_paths(predictors: Mapping[str, object]) -> dict[str, dict]:
    """{arch: {"engine": ..., "precision": ...}} as each loaded predictor runs (int8, bf16 or fp32 resolved)."""
    return {arch: {key: value for key in ("engine", "precision") if (value := getattr(p, key, None)) is not None}
            for arch, p in predictors.items()}


class Tally:
    """Faces per gender x age class for each architecture; tallies of parts (shards) add up."""

    def __init__(self, archs: Iterable[str]) -> None:
        self.counts = {arch: np.zeros((len(GENDERS), len(AGE_CLASSES)), int) for arch in archs}

    def add(self, record: Mapping) -> None:
        for arch, counts in self.counts.items():
            if (out := record.get(arch)) is not None:
                counts[GENDERS.index(out["gender"]), AGE_CLASSES.index(out["age"])] += 1

    def merge(self, nested: Mapping[str, Mapping[str, Mapping[str, int]]]) -> None:
        """Add a tally given as to_dict() gave it."""
        for arch, counts in self.counts.items():
            for g, gender in enumerate(GENDERS):
                for a, age in enumerate(AGE_CLASSES):
                    counts[g, a] += int(nested[arch][gender][age])

    def to_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        """{arch: {gender: {age class: faces}}}, as `predict`'s summary reports it."""
        return {arch: {GENDERS[g]: {AGE_CLASSES[a]: int(c[g, a]) for a in range(len(AGE_CLASSES))}
                       for g in range(len(GENDERS))} for arch, c in self.counts.items()}
