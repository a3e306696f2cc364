"""The faster caffenet engines (ONNX Runtime; the PyTorch twin in the precision auto picks here) agree with cv2.dnn."""

from __future__ import annotations

import numpy as np
import pytest

from agegender_cli.archs.registry import load_predictor
from agegender_cli.config import DatasetConfig, ModelOptions
from agegender_cli.data.utkface import build_dataset, read_manifest


@pytest.mark.integration
def test_fast_engines_give_the_same_classes_as_cv2_dnn_on_the_test_split(shared_utkface, tmp_path):
    from agegender_cli.faces.inputs import load_image

    summary = build_dataset(DatasetConfig(sources=(shared_utkface,), out=tmp_path))
    records = read_manifest(tmp_path / "manifest.csv", "test")
    assert len(records) == summary["splits"]["test"]["n"] > 1000
    faces = [load_image(r.path) for r in records]
    reference = load_predictor("caffenet", ModelOptions(engine="opencv")).predict(faces)
    for engine in ("torch", "onnx"):
        fast = load_predictor("caffenet", ModelOptions(engine=engine, precision="auto")).predict(faces)
        same_gender = np.mean(reference.gender_prob.argmax(1) == fast.gender_prob.argmax(1))
        same_age = np.mean(reference.age_prob.argmax(1) == fast.age_prob.argmax(1))
        assert same_gender >= 0.995 and same_age >= 0.995, (engine, same_gender, same_age)
