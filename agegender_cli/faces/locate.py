"""The labelled face of each photo as evaluation and training find it: detect, pick, or take a face crop whole."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agegender_cli.faces.detection import Box, Detection, FaceDetector, crop_faces, pick_face


def locate_faces(detector: FaceDetector, images: Sequence[np.ndarray], boxes: Sequence[Box | None], *,
                 auto: bool, pick: str = "largest") -> list[Detection | None]:
    """One Detection per image (its landmarks kept; `whole` for a face crop taken whole), None where the labelled
    face was not found. `auto`: with no face found and no labelled box, a padded copy decides whether the image is
    a face crop (crop_faces). `pick`: pick_face's rule for a photo without a labelled box."""
    found = detector.detect(images)
    retry = [i for i, faces in enumerate(found) if auto and not faces and boxes[i] is None]
    cropped = dict(zip(retry, crop_faces(detector, [images[i] for i in retry]), strict=True))
    located: list[Detection | None] = []
    for n, (image, faces, box) in enumerate(zip(images, found, boxes, strict=True)):
        picked = pick_face(image.shape, faces, box, auto=auto, pick=pick)
        if picked is None and cropped.get(n) is not None:
            picked = (0, 0, image.shape[1], image.shape[0]), True
        if picked is None:
            located.append(None)
            continue
        face_box, whole = picked
        face = None if whole else next((d for d in faces if d.box == face_box), None)
        located.append(face or Detection(face_box, 1.0, whole=whole))
    return located
