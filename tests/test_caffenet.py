"""Architecture B: prototxt, Caffe export, cv2.dnn parity, original weights route and training."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from agegender_cli.archs.caffenet import original as caffe_weights
from agegender_cli.archs.caffenet.caffemodel import _field, _key, _varint, export_caffemodel, twin_from_caffemodel
from agegender_cli.archs.caffenet.config import CaffenetTrainConfig
from agegender_cli.archs.caffenet.deploy import NET_NAMES, NUM_CLASSES, blob_from_faces, net_files
from agegender_cli.archs.caffenet.net import (
    ORIGINAL_AGE_CLASSES,
    ORIGINAL_GENDERS,
    PARAM_LAYERS,
    CaffeLRN,
    LeviHassnerNet,
    deploy_prototxt,
    torch_input,
)
from agegender_cli.archs.caffenet.original import resolve_caffe_weights
from agegender_cli.archs.caffenet.predictor import CaffenetPredictor
from agegender_cli.archs.caffenet.train import CHECKPOINT, HISTORY, train_caffenet
from agegender_cli.errors import AgeGenderError
from agegender_cli.labels import AGE_CLASSES, GENDERS

UTKFACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface_crop_part1"
PARITY_TOLERANCE = 1e-4


def _twin(num_classes: int, seed: int) -> LeviHassnerNet:
    """A seeded twin whose fc8 is scaled up so that its probabilities are far from uniform."""
    torch.manual_seed(seed)
    twin = LeviHassnerNet(num_classes).eval()
    with torch.no_grad():
        twin.fc8.weight.mul_(30)
    return twin


def _write_net(folder: Path, task: str, twin: LeviHassnerNet, fp16: bool) -> tuple[Path, Path]:
    prototxt, caffemodel = net_files(folder, task)
    prototxt.write_text(deploy_prototxt(twin.num_classes))
    export_caffemodel(twin, caffemodel, fp16)
    return prototxt, caffemodel


def _synthetic_faces(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(200, 200), (97, 131), (227, 227), (300, 180)]
    return [rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8) for i in range(count)]


def _probs_cv2(prototxt: Path, caffemodel: Path, blob: np.ndarray) -> np.ndarray:
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setInput(blob)
    return net.forward()


def _probs_twin(twin: LeviHassnerNet, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(twin(x), dim=1).numpy()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A caffenet model folder with seeded fp16 age and gender nets."""
    folder = tmp_path_factory.mktemp("caffenet_model")
    for seed, task in enumerate(NET_NAMES):
        _write_net(folder, task, _twin(NUM_CLASSES[task], seed), fp16=True)
    return folder


@pytest.fixture(scope="module")
def utk_faces() -> list[np.ndarray]:
    files = sorted(UTKFACE.glob("*.jpg.chip.jpg"))[::500][:12]
    if not files:
        pytest.skip(f"no UTKFace crops in {UTKFACE}")
    return [cv2.imread(str(f)) for f in files]


# --------------------------------------------------------------------------- architecture


@pytest.mark.parametrize("num_classes", [2, 8])
def test_prototxt_parses_and_twin_shares_its_layer_names(tmp_path: Path, num_classes: int) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(deploy_prototxt(num_classes))
    names = cv2.dnn.readNetFromCaffe(str(path)).getLayerNames()
    twin = LeviHassnerNet(num_classes)
    assert [name for name, _ in twin.named_children()] == [n for n in names if n != "prob"]
    assert tuple(n for n, m in twin.named_children() if hasattr(m, "weight")) == PARAM_LAYERS
    assert twin(torch.zeros(2, 3, 227, 227)).shape == (2, num_classes)


def test_caffe_lrn_equals_torch_local_response_norm() -> None:
    x = torch.randn(2, 96, 9, 9) * 100
    reference = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)(x)
    torch.testing.assert_close(CaffeLRN(96)(x), reference, rtol=1e-6, atol=1e-4)


def test_original_class_orders_map_index_to_index_onto_labels() -> None:
    assert [g.lower() for g in ORIGINAL_GENDERS] == list(GENDERS)
    assert len(ORIGINAL_AGE_CLASSES) == len(AGE_CLASSES)
    assert ORIGINAL_AGE_CLASSES[0] == "(0-2)" and AGE_CLASSES[0] == "0-2"


def test_torch_preprocessing_is_blob_from_images() -> None:
    faces = _synthetic_faces(6) + [np.full((50, 40), 128, np.uint8)]
    expected = cv2.dnn.blobFromImages(
        faces[:-1] + [cv2.cvtColor(faces[-1], cv2.COLOR_GRAY2BGR)],
        1.0,
        (227, 227),
        (78.4263377603, 87.7689143744, 114.895847746),
        swapRB=False,
    )
    np.testing.assert_array_equal(blob_from_faces(faces), expected)
    np.testing.assert_array_equal(torch_input(faces).numpy(), expected)


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("fp16", [False, True])
def test_export_round_trip_through_cv2(tmp_path: Path, fp16: bool) -> None:
    twin = _twin(8, seed=3)
    prototxt, caffemodel = _write_net(tmp_path, "age", twin, fp16)
    n_params = sum(p.numel() for p in twin.parameters())
    assert n_params * (2 if fp16 else 4) < caffemodel.stat().st_size < n_params * (2 if fp16 else 4) + 4096
    back = twin_from_caffemodel(prototxt, caffemodel)
    for (name, original), restored in zip(twin.state_dict().items(), back.state_dict().values(), strict=True):
        expected = original.half().float() if fp16 else original
        assert torch.equal(restored, expected), name
    assert not list(tmp_path.glob(".*.tmp"))


def _write_v1_caffemodel(twin: LeviHassnerNet, path: Path) -> None:
    """The layout of the original Levi-Hassner files: V1 `layers` (NetParameter field 2, enum types)
    whose blobs carry the legacy num/channels/height/width dims (fc weights 1x1xOUTxIN)."""
    v1_types = {torch.nn.Conv2d: 4, torch.nn.Linear: 14}  # CONVOLUTION, INNER_PRODUCT
    net = b""
    for name, module in twin.named_children():
        if type(module) not in v1_types:
            continue
        layer = _field(4, name.encode()) + _key(5, 0) + _varint(v1_types[type(module)])
        for param in (module.weight, module.bias):
            dims = (1,) * (4 - param.dim()) + tuple(param.shape)
            blob = b"".join(_key(number, 0) + _varint(d) for number, d in enumerate(dims, start=1))
            layer += _field(6, blob + _field(5, param.detach().numpy().astype("<f4").tobytes()))
        net += _field(2, layer)
    path.write_bytes(net)


def test_twin_reads_caffemodels_in_the_originals_v1_layout(tmp_path: Path) -> None:
    twin = _twin(2, seed=5)
    prototxt, caffemodel = net_files(tmp_path, "gender")
    prototxt.write_text(deploy_prototxt(2))
    _write_v1_caffemodel(twin, caffemodel)
    back = twin_from_caffemodel(prototxt, caffemodel)
    for (name, original), restored in zip(twin.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(restored, original), name
    faces = _synthetic_faces(3)
    from_cv2 = _probs_cv2(prototxt, caffemodel, blob_from_faces(faces))
    assert np.abs(from_cv2 - _probs_twin(back, torch_input(faces))).max() <= PARITY_TOLERANCE


def test_fp16_export_refuses_weights_beyond_fp16_range(tmp_path: Path) -> None:
    twin = LeviHassnerNet(2)
    with torch.no_grad():
        twin.fc8.weight[0, 0] = 1e6
    with pytest.raises(AgeGenderError, match="fp16"):
        export_caffemodel(twin, tmp_path / "gender_net.caffemodel", fp16=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.integration
@pytest.mark.parametrize("fp16", [False, True])
def test_cv2_and_twin_give_the_same_probabilities(tmp_path: Path, utk_faces: list, fp16: bool) -> None:
    twin = _twin(8, seed=4)
    prototxt, caffemodel = _write_net(tmp_path, "age", twin, fp16)
    if fp16:
        with torch.no_grad():
            for p in twin.parameters():
                p.copy_(p.half().float())
    from_cv2 = _probs_cv2(prototxt, caffemodel, blob_from_faces(utk_faces))
    from_twin = _probs_twin(twin, torch_input(utk_faces))
    assert from_cv2.std() > 0.1  # far from uniform: the comparison means something
    assert np.abs(from_cv2 - from_twin).max() <= PARITY_TOLERANCE


@pytest.mark.integration
def test_predictor_engines_agree(model_dir: Path, utk_faces: list) -> None:
    opencv = CaffenetPredictor(model_dir, engine="opencv", batch_size=5).predict(utk_faces)
    fp32 = CaffenetPredictor(model_dir, engine="torch", precision="fp32", batch_size=7).predict(utk_faces)
    bf16 = CaffenetPredictor(model_dir, engine="torch", precision="bf16").predict(utk_faces)
    assert opencv.gender_prob.shape == (len(utk_faces), 2) and opencv.age_prob.shape == (len(utk_faces), 8)
    np.testing.assert_allclose(opencv.age_prob.sum(1), 1.0, atol=1e-5)
    for probs in ("gender_prob", "age_prob"):
        assert np.abs(getattr(opencv, probs) - getattr(fp32, probs)).max() <= PARITY_TOLERANCE
        assert np.abs(getattr(opencv, probs) - getattr(bf16, probs)).max() <= 0.2


@pytest.mark.parametrize("engine", ["opencv", "torch", "onnx"])
def test_predictor_handles_no_faces_and_rejects_bad_folders(model_dir: Path, tmp_path: Path, engine: str) -> None:
    assert len(CaffenetPredictor(model_dir, engine=engine).predict([])) == 0
    with pytest.raises(AgeGenderError, match="age_net.caffemodel"):
        CaffenetPredictor(tmp_path, engine=engine)
    swapped = tmp_path / "swapped"
    shutil.copytree(model_dir, swapped)
    shutil.copy(model_dir / "gender_net.caffemodel", swapped / "age_net.caffemodel")
    with pytest.raises(AgeGenderError, match="cannot use .*age_net.caffemodel"):
        CaffenetPredictor(swapped, engine=engine)
    shutil.copy(model_dir / "gender_net.prototxt", swapped / "age_net.prototxt")  # a whole 2-class net
    with pytest.raises(AgeGenderError, match="gives 2 classes; the age net must give 8"):
        CaffenetPredictor(swapped, engine=engine)
    with pytest.raises(AgeGenderError, match="engine"):
        CaffenetPredictor(model_dir, engine="tensorrt")


# --------------------------------------------------------------------------- original weights


@pytest.fixture()
def served(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An HTTP server on 127.0.0.1 serving a copy of model_dir; AGEGENDER_HOME in tmp_path."""
    root = tmp_path / "www"
    shutil.copytree(model_dir, root)
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_with_good_hashes_is_cached_and_predicts(served, utk_faces: list) -> None:
    root, url = served
    hashes = {name: _sha256(root / name) for name in caffe_weights.ORIGINAL_SHA256}
    folder = resolve_caffe_weights(None, online=True, timeout=5, url_base=url, sha256=hashes, log=print)
    assert folder == caffe_weights.original_cache_dir()
    assert {name: _sha256(folder / name) for name in hashes} == hashes
    expected = CaffenetPredictor(root).predict(utk_faces[:3])
    np.testing.assert_array_equal(CaffenetPredictor(folder).predict(utk_faces[:3]).age_prob, expected.age_prob)
    # cached now: no network needed
    assert resolve_caffe_weights(None, online=False, timeout=5) == folder


def test_download_with_a_wrong_hash_is_rejected(served) -> None:
    _, url = served
    wrong = dict.fromkeys(caffe_weights.ORIGINAL_SHA256, "0" * 64)
    with pytest.raises(AgeGenderError, match="sha256"):
        resolve_caffe_weights(None, online=True, timeout=5, url_base=url, sha256=wrong, log=print)
    assert not list(caffe_weights.original_cache_dir().iterdir())


@pytest.mark.parametrize("served_as_age", ["garbage", "gender_net.caffemodel"])
def test_download_without_a_known_hash_must_fit_the_net(served, served_as_age: str) -> None:
    root, url = served
    if served_as_age == "garbage":
        (root / "age_net.caffemodel").write_text("<html>not a caffemodel</html>")
    else:
        shutil.copy(root / served_as_age, root / "age_net.caffemodel")
    with pytest.raises(AgeGenderError, match="not the age_net.caffemodel expected"):
        resolve_caffe_weights(None, online=True, timeout=5, url_base=url, log=print)
    assert not (caffe_weights.original_cache_dir() / "age_net.caffemodel").exists()


def test_unreachable_or_offline_names_the_files_and_the_folder(served) -> None:
    _, url = served
    closed = url.rsplit(":", 1)[0] + ":9"  # the discard port: nothing listens there
    for kwargs in ({"online": True, "url_base": closed}, {"online": False}):
        with pytest.raises(AgeGenderError) as error:
            resolve_caffe_weights(None, timeout=2, log=print, **kwargs)
        message = str(error.value)
        assert "age_net.caffemodel" in message and "gender_net.caffemodel" in message
        assert str(caffe_weights.original_cache_dir()) in message and "\n" not in message


def test_user_folder_gets_matching_prototxts(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    folder = tmp_path / "original"
    folder.mkdir()
    shutil.copy(model_dir / "age_net.caffemodel", folder)
    with pytest.raises(AgeGenderError, match="lacks gender_net.caffemodel"):
        resolve_caffe_weights(folder, online=False, timeout=1)
    shutil.copy(model_dir / "gender_net.caffemodel", folder)
    before = sorted(p.name for p in folder.iterdir())
    view = resolve_caffe_weights(folder, online=False, timeout=1)
    assert sorted(p.name for p in folder.iterdir()) == before  # the user's folder is only read
    for task in NET_NAMES:
        prototxt, caffemodel = net_files(view, task)
        assert prototxt.read_text() == deploy_prototxt(NUM_CLASSES[task])
        assert caffemodel.resolve() == net_files(folder, task)[1].resolve()
    assert len(CaffenetPredictor(view).predict(_synthetic_faces(2))) == 2


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class _Face:
    path: Path
    gender: int
    age_class: int


def _face_records(folder: Path, count: int, offset: int) -> list[_Face]:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, face in enumerate(_synthetic_faces(count, seed=offset)):
        path = folder / f"face_{offset + i}.png"
        cv2.imwrite(str(path), face)
        records.append(_Face(path, gender=i % 2, age_class=i % 8))
    return records


def test_training_resumes_and_exports_caffe_models(tmp_path: Path) -> None:
    train, val = _face_records(tmp_path / "img", 6, 0), _face_records(tmp_path / "img", 3, 100)
    cfg = CaffenetTrainConfig(out=tmp_path / "run", epochs=2, batch_size=6, lr=1e-3)
    seen: list[int] = []

    def stop_after_first_epoch(epoch: int, total: int, info: dict) -> None:
        seen.append(epoch)
        assert total == 2 and info["epoch"] == epoch and 0 <= info["val_age_acc"] <= 1
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_caffenet(cfg, train, val, progress=stop_after_first_epoch)
    checkpoint = torch.load(cfg.out / CHECKPOINT, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["config"]["tasks"] == ["gender", "age"]
    assert sorted(p.name for p in cfg.out.iterdir()) == [CHECKPOINT, HISTORY]

    with pytest.raises(AgeGenderError, match="epochs=2"):
        train_caffenet(CaffenetTrainConfig(out=cfg.out, epochs=3, batch_size=6, resume=True), train, val)

    resumed = CaffenetTrainConfig(out=cfg.out, epochs=2, batch_size=6, lr=1e-3, resume=True)
    summary = train_caffenet(resumed, train, val, progress=stop_after_first_epoch, fp16=False)
    assert seen == [1, 2] and summary["epochs_run"] == 2
    history = json.loads((cfg.out / HISTORY).read_text())
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert set(history[1]["train"]) == set(history[1]["val"]) == {"gender", "age"}
    assert set(summary["best"]) == {"gender", "age"}
    faces = [cv2.imread(str(r.path)) for r in val]
    prediction = CaffenetPredictor(cfg.out).predict(faces)
    assert prediction.gender_prob.shape == (3, 2) and np.isfinite(prediction.age_prob).all()


def test_fine_tuning_starts_from_a_model_folder_and_keeps_it_unless_beaten(tmp_path: Path) -> None:
    train, val = _face_records(tmp_path / "img", 6, 0), _face_records(tmp_path / "img", 3, 100)
    first = train_caffenet(CaffenetTrainConfig(out=tmp_path / "a", epochs=1, batch_size=6, lr=1e-3), train, val,
                           fp16=False)
    logged: list[str] = []
    tuned = train_caffenet(CaffenetTrainConfig(out=tmp_path / "b", init=Path(first["out"]), epochs=1, batch_size=6,
                                               lr=1e-12), train, val, log=logged.append, fp16=False)
    assert any("starting from" in line for line in logged)
    faces = [cv2.imread(str(r.path)) for r in val]
    before = CaffenetPredictor(Path(first["out"]), engine="opencv").predict(faces)
    after = CaffenetPredictor(Path(tuned["out"]), engine="opencv").predict(faces)
    assert {info["epoch"] for info in tuned["best"].values()} <= {0, 1}
    np.testing.assert_allclose(after.age_prob, before.age_prob, atol=1e-4)  # lr 1e-12: the same nets
    with pytest.raises(AgeGenderError, match="lacks"):
        train_caffenet(CaffenetTrainConfig(out=tmp_path / "c", init=tmp_path, epochs=1, batch_size=6), train, val)
