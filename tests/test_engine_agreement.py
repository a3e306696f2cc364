"""The faster caffenet engine (PyTorch twin, bf16) agrees with cv2.dnn on the test split."""

from __future__ import annotations

import numpy as np
import pytest

from agegender_cli.config import DatasetConfig
from agegender_cli.data import build_dataset, read_manifest
from agegender_cli.predictors import BUNDLED_CAFFENET, load_predictor


@pytest.mark.integration
def test_torch_engine_gives_the_same_classes_as_cv2_dnn_on_the_test_split(shared_utkface, tmp_path):
    from agegender_cli.service import read_image

    summary = build_dataset(DatasetConfig(source=shared_utkface, out=tmp_path))
    records = read_manifest(tmp_path / "manifest.csv", "test")
    assert len(records) == summary["splits"]["test"]["n"] > 1000
    faces = [read_image(r.path) for r in records]
    reference = load_predictor("caffenet", caffenet_model=BUNDLED_CAFFENET, engine="opencv").predict(faces)
    fast = load_predictor("caffenet", caffenet_model=BUNDLED_CAFFENET, engine="torch", precision="bf16").predict(faces)
    same_gender = np.mean(reference.gender_prob.argmax(1) == fast.gender_prob.argmax(1))
    same_age = np.mean(reference.age_prob.argmax(1) == fast.age_prob.argmax(1))
    assert same_gender >= 0.995 and same_age >= 0.995, (same_gender, same_age)
