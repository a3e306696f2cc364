"""int8 on ONNX Runtime: stored ranges give ORT's own calibrated model; each architecture reads them only for its own
model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image

from agegender_cli.archs.caffenet.int8 import RANGES_FILE, read_ranges
from agegender_cli.config import ASSETS_DIR
from agegender_cli.errors import AgeGenderError
from agegender_cli.onnx_int8 import Int8Unavailable, activation_ranges, calibrated_tensors, quantize

BUNDLED = ASSETS_DIR / "caffenet"


def _tiny_conv_net(path: Path) -> None:
    import torch
    from torch import nn

    from agegender_cli.onnx_models import export_module

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 3 * 3, 5))
    export_module(net, (torch.zeros(2, 3, 28, 28),), path, ["x"], ["y"])


def _batches(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    generator = np.random.default_rng(seed)
    return [{"x": generator.normal(0, 50, (4, 3, 28, 28)).astype(np.float32)} for _ in range(n)]


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_stored_ranges_give_the_model_onnx_runtime_calibrates_itself(tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from agegender_cli.onnx_int8 import OP_TYPES, quantized_nodes

    fp32 = tmp_path / "net.onnx"
    _tiny_conv_net(fp32)
    ranges = activation_ranges(fp32, _batches(3))
    quantize(fp32, json.loads(json.dumps(ranges)), tmp_path / "stored.onnx")  # through JSON, as shipped

    import onnx

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(_batches(3))

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    nodes = [n.name for n in quantized_nodes(onnx.load(str(fp32)))]
    quantize_static(str(fp32), str(tmp_path / "calibrated.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(OP_TYPES), nodes_to_quantize=nodes, per_channel=True,
                    reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    x = _batches(1, seed=1)[0]["x"]
    stored, calibrated, exact = (_run(tmp_path / name, x) for name in ("stored.onnx", "calibrated.onnx", "net.onnx"))
    np.testing.assert_array_equal(stored, calibrated)
    assert not np.array_equal(stored, exact)  # it is quantised ...
    assert np.abs(stored - exact).max() < 0.05 * np.abs(exact).max()  # ... and close


def test_the_first_convolution_stays_fp32_and_the_others_need_every_range(tmp_path: Path) -> None:
    import onnx

    fp32 = tmp_path / "net.onnx"
    _tiny_conv_net(fp32)
    names = calibrated_tensors(onnx.load(str(fp32)))
    assert "x" not in names and len(names) >= 4
    ranges = activation_ranges(fp32, _batches(1))
    del ranges[names[-1]]
    with pytest.raises(Int8Unavailable, match="1 of the"):
        quantize(fp32, ranges, tmp_path / "int8.onnx")
    assert not (tmp_path / "int8.onnx").exists()


def _folder_like_bundled(tmp_path: Path, doc: dict | str | None) -> Path:
    folder = tmp_path / "caffenet"
    folder.mkdir()
    for path in BUNDLED.glob("*_net.*"):
        (folder / path.name).symlink_to(path)
    if doc is not None:
        (folder / RANGES_FILE).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return folder


def test_the_bundled_nets_carry_ranges_checked_on_val() -> None:
    ranges, reason = read_ranges(BUNDLED)
    assert ranges is not None and set(ranges) == {"age", "gender"}, reason
    assert "train faces" in reason
    check = json.loads((BUNDLED / RANGES_FILE).read_text())["val_check"]
    assert min(check["points"].values()) >= -0.3 and min(check["same_class"].values()) >= 0.99


@pytest.mark.parametrize("change, why", [
    (None, "no int8_ranges.json"),
    ("{not json", "unreadable"),
    ("caffemodel", "another gender_net.caffemodel"),
    ("range", "unreadable"),
    ("settings", "another quantisation"),
])
def test_ranges_that_do_not_fit_the_nets_are_not_used(tmp_path: Path, change, why: str) -> None:
    doc = json.loads((BUNDLED / RANGES_FILE).read_text())
    if change == "caffemodel":
        doc["nets"]["gender"]["caffemodel_sha256"] = "0" * 64
    elif change == "range":
        first = next(iter(doc["nets"]["age"]["ranges"]))
        doc["nets"]["age"]["ranges"][first] = [1.0, float("nan")]
    elif change == "settings":
        doc["settings"]["reduce_range"] = False
    folder = _folder_like_bundled(tmp_path, doc if change not in (None, "{not json") else change)
    ranges, reason = read_ranges(folder)
    assert ranges is None and why in reason


@pytest.mark.integration
def test_auto_runs_calibrated_nets_in_int8_and_says_why_it_does_not(tmp_path: Path) -> None:
    from agegender_cli.archs.caffenet.predictor import CaffenetPredictor

    faces = [make_image(seed, 200) for seed in range(3)]
    int8 = CaffenetPredictor(BUNDLED, engine="onnx", precision="auto")
    assert int8.precision == "int8"
    assert "int8 (auto: ranges calibrated on 1024 train faces in int8_ranges.json)" in int8.description
    assert int8.provenance()["precision"] == "int8"
    assert RANGES_FILE in {Path(f["path"]).name for f in int8.provenance()["files"]}
    forced = CaffenetPredictor(BUNDLED, engine="onnx", precision="fp32")
    assert forced.precision == "fp32" and "ONNX Runtime, fp32)" in forced.description
    doc = json.loads((BUNDLED / RANGES_FILE).read_text())
    doc["nets"]["age"]["caffemodel_sha256"] = "0" * 64
    other = CaffenetPredictor(_folder_like_bundled(tmp_path, doc), engine="onnx", precision="auto")
    assert other.precision == "fp32" and "fp32 (auto: int8_ranges.json was calibrated for another" in other.description
    same = np.mean(int8.predict(faces).age_prob.argmax(1) == forced.predict(faces).age_prob.argmax(1))
    assert np.allclose(other.predict(faces).age_prob, forced.predict(faces).age_prob) and same >= 2 / 3


def test_nodes_under_an_fp32_scope_stay_fp32(tmp_path: Path) -> None:
    import onnx

    from agegender_cli.onnx_int8 import quantized_nodes

    fp32 = tmp_path / "net.onnx"
    _tiny_conv_net(fp32)
    model = onnx.load(str(fp32))
    every = quantized_nodes(model)
    scopes = ["/6/", "/7/"]  # the last convolution and its ReLU (modules 6 and 7 of the Sequential)
    kept = quantized_nodes(model, scopes)
    assert [n.name for n in kept] == [n.name for n in every if not n.name.startswith(("/6/", "/7/"))]
    assert len(kept) == len(every) - 2
    ranges = activation_ranges(fp32, _batches(2), scopes)
    assert set(ranges) == set(calibrated_tensors(model, scopes)) < set(calibrated_tensors(model))
    quantize(fp32, ranges, tmp_path / "int8.onnx", scopes)
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    ops = [n.op_type for n in graph.node]
    first_conv, *_, last_conv = [n for n in graph.node if n.op_type == "Conv"]
    assert "6.weight" in last_conv.input and "0.weight" in first_conv.input  # fp32 weights, as exported
    assert "3.weight" not in {i for n in graph.node if n.op_type == "Conv" for i in n.input}  # int8 ones
    assert ops.count("QuantizeLinear") > 0
    x = _batches(1, seed=1)[0]["x"]
    exact = _run(fp32, x)
    assert np.abs(_run(tmp_path / "int8.onnx", x) - exact).max() < 0.05 * np.abs(exact).max()


def test_facenet_scopes_follow_the_unfreeze_point() -> None:
    from agegender_cli.archs.facenet.int8 import FP32_MODULES, module_scopes

    assert module_scopes(FP32_MODULES, "last_linear") == [
        "/trunk/frozen/frozen.1/", "/trunk/frozen/frozen.2/", "/trunk/frozen/frozen.3/", "/trunk/frozen/frozen.12/"]
    assert module_scopes(("conv2d_2a", "block8", "repeat_3"), "repeat_3") == [
        "/trunk/frozen/frozen.1/", "/tail/blocks/blocks.1/", "/tail/blocks/blocks.0/"]


FACENET = ASSETS_DIR / "facenet.pt"


def _facenet_doc() -> dict:
    from agegender_cli.archs.facenet.int8 import ranges_path

    return json.loads(ranges_path(FACENET).read_text())


def test_the_bundled_facenet_carries_ranges_checked_on_val() -> None:
    from agegender_cli.archs.facenet.int8 import read_ranges

    doc = _facenet_doc()
    found, reason = read_ranges(FACENET, doc["backbone_sha256"])
    assert found is not None, reason
    ranges, scopes = found
    assert len(ranges) > 100 and "/trunk/frozen/frozen.12/" in scopes and "train faces" in reason
    check = doc["val_check"]
    assert min(check["points"].values()) >= -0.3 and check["faces"] >= 2000


@pytest.mark.parametrize("change, why", [
    (None, "no facenet.int8_ranges.json"),
    ("{not json", "unreadable"),
    ("checkpoint", "another checkpoint"),
    ("backbone", "another backbone"),
    ("range", "unreadable"),
    ("settings", "another quantisation"),
    ("scopes", "not a list of node-name prefixes"),
])
def test_facenet_ranges_that_do_not_fit_are_not_used(tmp_path: Path, change, why: str) -> None:
    from agegender_cli.archs.facenet.int8 import ranges_path, read_ranges

    doc = _facenet_doc()
    backbone = doc["backbone_sha256"]
    checkpoint = tmp_path / "facenet.pt"
    checkpoint.symlink_to(FACENET)
    if change == "checkpoint":
        doc["checkpoint_sha256"] = "0" * 64
    elif change == "backbone":
        backbone = "1" * 64
    elif change == "range":
        doc["ranges"][next(iter(doc["ranges"]))] = [2.0, 1.0]
    elif change == "settings":
        doc["settings"]["per_channel"] = False
    elif change == "scopes":
        doc["fp32_scopes"] = "/trunk/"
    if change is not None:
        ranges_path(checkpoint).write_text(change if change == "{not json" else json.dumps(doc))
    found, reason = read_ranges(checkpoint, backbone)
    assert found is None and why in reason


@pytest.mark.integration
def test_facenet_runs_in_int8_when_asked_and_auto_keeps_fp32(tmp_path: Path) -> None:
    from agegender_cli.archs.facenet.int8 import ranges_path
    from agegender_cli.archs.facenet.onnx_predictor import FacenetOnnxPredictor

    faces = [make_image(seed, 200) for seed in range(4)]
    int8 = FacenetOnnxPredictor(FACENET, precision="int8")
    assert int8.precision == "int8" and "ONNX Runtime, int8 (ranges calibrated on" in int8.description
    provenance = int8.provenance()
    assert provenance["precision"] == "int8" and len(provenance["onnx_files"]) == 2
    assert ranges_path(FACENET).name in {Path(f["path"]).name for f in provenance["files"]}
    auto = FacenetOnnxPredictor(FACENET, precision="auto")  # its age class moved on 2-3% of the val faces
    same_age = json.loads(ranges_path(FACENET).read_text())["val_check"]["same_class"]["age"]
    assert same_age < 0.99
    assert auto.precision == "fp32" and f"fp32 (auto: int8 gave fp32's age class for {100 * same_age:.2f}%" \
        in auto.description
    forced = FacenetOnnxPredictor(FACENET, precision="fp32")
    assert forced.precision == "fp32" and forced.description.endswith("ONNX Runtime, fp32")
    quantised, exact = int8.predict(faces), forced.predict(faces)
    assert not np.array_equal(quantised.age_prob, exact.age_prob)
    assert np.abs(quantised.gender_prob - exact.gender_prob).max() < 0.2
    assert np.abs(quantised.age_years - exact.age_years).max() < 3
    with pytest.raises(AgeGenderError, match="fp32 or int8"):
        FacenetOnnxPredictor(FACENET, precision="bf16")
    bare = tmp_path / "facenet.pt"
    bare.symlink_to(FACENET)
    with pytest.raises(AgeGenderError, match="--precision int8: no facenet.int8_ranges.json beside the checkpoint"):
        FacenetOnnxPredictor(bare, precision="int8")


@pytest.mark.parametrize("same, refused", [
    ({"gender": 0.999, "age": 0.994}, None),
    ({"gender": 0.9975, "age": 0.98}, "age class for 98.00%"),
    (None, "holds no val check"),
])
def test_auto_takes_int8_only_where_val_kept_the_classes(same, refused) -> None:
    from agegender_cli.onnx_int8 import auto_refusal

    doc = {"val_check": {"same_class": same}} if same else {}
    reason = auto_refusal(doc, "x.json")
    assert reason is None if refused is None else refused in reason


def test_int8_asked_for_without_ranges_is_an_error_and_auto_says_why_not() -> None:
    from agegender_cli.onnx_int8 import settle

    assert settle("auto", None, "no x.json") == (None, "fp32 (auto: no x.json)")
    assert settle("int8", {"t": [0, 1]}, "ranges in x.json") == ({"t": [0, 1]}, "int8 (ranges in x.json)")
    with pytest.raises(AgeGenderError, match="--precision int8: no x.json; calibrate"):
        settle("int8", None, "no x.json")


@pytest.mark.parametrize("engine, device, message", [
    ("torch", "cpu", "--precision int8 runs on ONNX Runtime on the CPU"),
    ("opencv", "cpu", "--precision int8 runs on ONNX Runtime on the CPU"),
])
def test_int8_runs_only_on_onnx_runtime(engine: str, device: str, message: str) -> None:
    from agegender_cli.runtime import pick_engine

    assert pick_engine("auto", "cpu", "int8") == "onnx" and pick_engine("onnx", "cpu", "int8") == "onnx"
    with pytest.raises(AgeGenderError, match=message):
        pick_engine(engine, device, "int8")


def test_int8_that_cannot_be_made_falls_back_to_fp32_under_auto_only() -> None:
    from agegender_cli.onnx_int8 import fp32_instead

    said: list[str] = []
    error = Int8Unavailable("3 of the 9 calibrated activations have no stored range")
    assert fp32_instead("auto", error, said.append, "facenet") == f"fp32 (auto: {error})"
    assert said == [f"facenet: int8 unavailable, running in fp32: {error}"]
    with pytest.raises(Int8Unavailable, match="3 of the 9"):
        fp32_instead("int8", error, said.append, "facenet")
