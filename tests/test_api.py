"""The Python API (`from agegender_cli import AgeGender`): inputs, loading once, errors, the documented example
(docs/api.md) and record schema against the command line's `--json`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_image, write_jpeg
from PIL import Image
from typer.testing import CliRunner

from agegender_cli import AgeGender, AgeGenderError
from agegender_cli.cli.app import app

REPO = Path(__file__).resolve().parents[1]
GRACE = REPO / "examples" / "grace_hopper.jpg"
runner = CliRunner()


def _cli_records(*args: str) -> list[dict]:
    result = runner.invoke(app, ["predict", *args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _in_memory(records: list[dict]) -> list[dict]:
    return [{**r, "file": None} for r in records]


# --------------------------------------------------------------------------- fast: the tiny architecture


def test_path_arrays_pil_and_lists_give_the_command_lines_records(tiny_arch, tmp_path):
    path = str(write_jpeg(tmp_path / "face.jpg", seed=3, size=96))
    cli = _cli_records(path, "--arch", "tiny", "--detector", "none")
    model = AgeGender(arch="tiny", detector="none")
    bgr = cv2.imread(path)
    assert model.predict(path) == cli and model.predict(Path(path)) == cli
    assert model.predict(bgr) == _in_memory(cli)
    assert model.predict(np.ascontiguousarray(bgr[:, :, ::-1]), channels="rgb") == _in_memory(cli)
    assert model.predict(Image.fromarray(bgr[:, :, ::-1])) == _in_memory(cli)
    assert model.predict([path, bgr]) == [cli, _in_memory(cli)]
    assert model.predict(()) == []


def test_models_load_once_across_predict_evaluate_and_compare(tiny_arch, tiny_utkface):
    model = AgeGender(arch="tiny", detector="none")
    assert tiny_arch.loaded == [] and model.loads == 0  # nothing loads before it is needed
    for seed in range(3):
        model.predict(make_image(seed, 64))
    model.predict([make_image(4, 64), make_image(5, 64)])
    model.evaluate(images=tiny_utkface, bootstrap=10)
    model.compare(images=tiny_utkface, bootstrap=10)
    assert len(tiny_arch.loaded) == 1 and model.loads == 1


def test_evaluate_gives_what_evaluate_json_prints(tiny_arch, tiny_utkface):
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--images", str(tiny_utkface), "--bootstrap", "10",
                                 "--json"])
    cli = json.loads(result.stdout)
    evaluation = AgeGender(arch="tiny", detector="none").evaluate(images=tiny_utkface, bootstrap=10)
    assert evaluation.results["tiny"].n == cli["results"]["tiny"]["n"] and evaluation.schema == cli["schema"] == 1
    ours = evaluation.to_json()
    assert set(ours) == set(cli)
    volatile = {"date", "command_line", "rerun_command", "working_directory"}
    assert {k: v for k, v in ours["provenance"].items() if k not in volatile} == \
        {k: v for k, v in cli["provenance"].items() if k not in volatile}
    assert {k: v for k, v in ours.items() if k != "provenance"} == {k: v for k, v in cli.items() if k != "provenance"}


def test_arrays_are_not_written_to_disk(tiny_arch, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    model = AgeGender(arch="tiny", detector="none")
    (face,) = model.predict(make_image(1, 80))
    assert face["box"] == [0, 0, 80, 80] and face["file"] is None
    assert list(scratch.iterdir()) == []


def test_gray_and_alpha_arrays_are_taken_as_bgr(tiny_arch):
    model = AgeGender(arch="tiny", detector="none")
    bgr = make_image(2, 64)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert model.predict(gray) == model.predict(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    assert model.predict(gray[:, :, None]) == model.predict(gray)
    assert model.predict(np.dstack([bgr, np.zeros_like(gray)])) == model.predict(bgr)


@pytest.mark.parametrize(("given", "message"), [
    (np.zeros((8, 8, 3), np.float32), "image array of dtype float32: give uint8 pixels (0-255)"),
    (np.zeros((8, 8, 2), np.uint8), "image array of shape (8, 8, 2): give height x width x 3 (BGR)"),
    (np.zeros((0, 8, 3), np.uint8), "image array of shape (0, 8, 3): the image is empty"),
    (42, "cannot read an image from a int: give a path, a numpy uint8 array or a PIL image"),
])
def test_bad_inputs_raise_one_line_errors(tiny_arch, given, message):
    model = AgeGender(arch="tiny", detector="none")
    with pytest.raises(AgeGenderError) as caught:
        model.predict([make_image(0, 32), given])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_in_a_list_a_file_that_cannot_be_read_is_one_error_record_and_the_others_are_answered(tiny_arch, tmp_path):
    good = write_jpeg(tmp_path / "good.jpg", seed=1, size=48)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    missing, broken = str(tmp_path / "missing.jpg"), str(tmp_path / "broken.jpg")
    model = AgeGender(arch="tiny", detector="none")
    answers = model.predict([str(good), missing, broken, tmp_path, make_image(2, 40)])
    cli = _cli_records(str(good), missing, broken, "--arch", "tiny", "--detector", "none")
    by_file = {r["file"]: r for r in cli}
    assert answers[0] == [by_file[str(good)]] and answers[4][0]["status"] == "face"
    assert answers[1] == [by_file[missing]] and answers[2] == [by_file[broken]]  # the command line's records
    assert answers[3] == [{"file": str(tmp_path), "frame": None, "status": "error",
                           "error": "a folder; give its image files (predict_files reads folders)"}]
    with pytest.raises(AgeGenderError, match=re.escape(f"{missing}: no such file or folder")):
        model.predict(missing)  # alone: nothing else to lose


def test_predict_files_reads_folders_globs_and_videos_as_the_command_line_does(tiny_arch, tmp_path):
    from test_inputs import write_video

    photos = tmp_path / "photos"
    for k in range(3):
        write_jpeg(photos / f"sub{k % 2}" / f"p{k}.jpg", seed=k, size=40 + k)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    clip = write_video(tmp_path / "clip.avi", 5)
    inputs = [str(photos), str(tmp_path / "photos" / "sub*" / "*.jpg"), str(clip), str(tmp_path / "none*.png")]
    model = AgeGender(arch="tiny", detector="none", batch_size=2)
    records = list(model.predict_files(*inputs, every=2))
    cli = _cli_records(*inputs, "--arch", "tiny", "--detector", "none", "--every", "2")
    # the same records; the command line prints an error as soon as it meets it, the API keeps the inputs' order
    assert sorted(records, key=json.dumps) == sorted(cli, key=json.dumps)
    assert [r for r in records if r["status"] != "error"] == [r for r in cli if r["status"] != "error"]
    assert records[0]["file"].endswith("broken.jpg") and records[-1]["file"].endswith("none*.png")
    assert [r["frame"] for r in records if r["file"] == str(clip)] == [0, 2, 4]
    assert sum(r["status"] == "error" for r in records) == 2  # the broken file, the glob matching nothing
    with pytest.raises(AgeGenderError, match="paths on stdin are the command line's"):
        next(model.predict_files("-"))
    with pytest.raises(AgeGenderError, match="every 0: give 1 or more"):
        next(model.predict_files(str(photos), every=0))


def test_draw_puts_each_face_and_its_answers_on_a_copy_in_the_order_given(tiny_arch, tmp_path):
    from agegender_cli.api import draw

    image = np.full((120, 160, 3), 255, np.uint8)
    image[30:90, 40:100] = (40, 80, 160)
    records = [{"file": None, "frame": None, "status": "face", "face": 0, "box": [40, 30, 100, 90], "score": 1.0,
                "tiny": {"gender": "female", "gender_prob": 0.8, "age": "25-32"}},
               {"file": None, "frame": None, "status": "no_face", "face": None, "note": "no face found"}]
    drawn = draw(image, records)
    assert drawn.shape == image.shape and (image == 255).sum() > 0 and np.array_equal(image[0, 0], [255, 255, 255])
    changed = np.any(drawn != image, axis=2)
    assert changed[30, 40:100].any() and changed[90, 40:100].any()  # the box's edges
    assert changed.sum() > 4 * 60 * 2  # more than the box: its label too
    rgb = draw(image[:, :, ::-1].copy(), records, channels="rgb")
    assert np.array_equal(rgb[:, :, ::-1], drawn)  # the copy comes back in the order given
    assert np.array_equal(draw(image, records[1:]), image)  # no face: nothing drawn
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), image)
    assert np.array_equal(draw(path, records), drawn)
    with pytest.raises(AgeGenderError, match="records: give the list of record dicts"):
        draw(image, records[0])
    with pytest.raises(AgeGenderError, match="records: a face record lacks a usable field"):
        draw(image, [{**records[0], "box": [40, 30]}])


def test_bad_files_raise_the_command_lines_message(tiny_arch, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    model = AgeGender(arch="tiny", detector="none")
    (cli,) = _cli_records(str(tmp_path / "broken.jpg"), "--arch", "tiny", "--detector", "none")
    for bad, error in ((tmp_path / "broken.jpg", cli["error"]), (tmp_path, "a folder; give its image files")):
        with pytest.raises(AgeGenderError, match=re.escape(f"{bad}: {error}")):
            model.predict(bad)


def test_too_many_pixels_in_an_array_is_refused(tiny_arch, monkeypatch):
    monkeypatch.setenv("AGEGENDER_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(AgeGenderError, match=r"image array: image is 40 x 30 = 0 MP, above the 0 MP limit"):
        AgeGender(arch="tiny", detector="none").predict(np.zeros((30, 40, 3), np.uint8))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"detector": "yolo"}, "unknown detector 'yolo': choose one of auto, mtcnn, haar, none"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"engine": "tensorrt"}, "unknown engine 'tensorrt'"),
    ({"arch": "resnet"}, "unknown architecture resnet"),
    ({"models": {"caffenet": "x"}}, "'caffenet=x': caffenet is not among the architectures run (tiny)"),
    ({"min_score": 2.0}, "min_face 20, min_score 2.0, batch_size 64"),
    ({"arch": None}, "arch None: give"),
    ({"batch_size": "a"}, "batch_size 'a': give an integer"),
    ({"min_face": "10"}, "min_face '10': give an integer"),
    ({"min_score": float("nan")}, "min_score nan: give a number"),
    ({"detector": None}, "unknown detector None"),
    ({"backbone_weights": 5}, "backbone_weights 5: give a file path"),
])
def test_bad_settings_raise_before_anything_loads(tiny_arch, kwargs, message):
    with pytest.raises(AgeGenderError, match=re.escape(message)):
        AgeGender(**{"arch": "tiny", **kwargs})
    assert tiny_arch.loaded == []


def test_bad_call_options_raise(tiny_arch):
    model = AgeGender(arch="tiny", detector="none")
    with pytest.raises(AgeGenderError, match="unknown channels 'bgra'"):
        model.predict(make_image(0, 32), channels="bgra")  # type: ignore[arg-type]
    with pytest.raises(AgeGenderError, match="unknown split 'dev'"):
        model.evaluate(split="dev")
    with pytest.raises(AgeGenderError, match="manifest None: give a path"):
        model.evaluate(manifest=None)  # type: ignore[arg-type]
    with pytest.raises(AgeGenderError, match="seed -5: give 0 to"):
        model.compare(seed=-5)
    with pytest.raises(AgeGenderError, match="bootstrap '9': give an integer"):
        model.evaluate(bootstrap="9")  # type: ignore[arg-type]
    assert tiny_arch.loaded == []


def test_a_closed_pil_image_is_a_one_line_error(tiny_arch):
    from PIL import Image

    image = Image.fromarray(make_image(0, 32))
    image.close()
    with pytest.raises(AgeGenderError, match="cannot read the PIL image"):
        AgeGender(arch="tiny", detector="none").predict(image)


def test_the_package_exports_the_api_without_importing_numpy_torch_or_cv2():
    code = ("import sys, agegender_cli\n"
            "heavy = [m for m in ('numpy', 'torch', 'cv2') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert agegender_cli.AgeGender.__name__ == 'AgeGender'\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _schema_fields() -> set[str]:
    """The JSON field names of docs/outputs.md's record table (first column), ARCH standing for each architecture."""
    text = (REPO / "docs" / "outputs.md").read_text()
    table = text.split("# The face records", 1)[1].split("\n\n| field |", 1)[1].split("\n\n", 1)[0]
    return {re.match(r"\| `([^`]+)`", line).group(1) for line in table.splitlines()[2:]}  # type: ignore[union-attr]


def _keys(record: dict, archs: tuple[str, ...]) -> set[str]:
    keys = set()
    for key, value in record.items():
        if key in archs:
            keys |= {f"ARCH.{sub}" for sub in value}
        else:
            keys.add(key)
    return keys


def test_the_docs_document_every_field_and_csv_column(tiny_arch, tmp_path):
    face = str(write_jpeg(tmp_path / "face.jpg", seed=1, size=96))
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((64, 64, 3), 128, np.uint8))
    records = _cli_records(face, str(tmp_path / "missing.jpg"), "--arch", "tiny", "--detector", "none")
    records += _cli_records(str(grey), "--arch", "tiny", "--detector", "haar")
    assert {"face", "note", "error", "status"} <= {k for r in records for k in r}  # a face, none, an error
    assert {r["status"] for r in records} == {"face", "no_face", "error"}
    documented = _schema_fields()
    found = set().union(*(_keys(r, ("tiny",)) for r in records))
    assert found | {"time"} == documented  # `time` is a video frame's (tests/test_video_annotate.py)
    out = next(r["tiny"] for r in records if "tiny" in r)
    assert out["p_female"] == pytest.approx(out["gender_prob"] if out["gender"] == "female" else 1 - out["gender_prob"],
                                            abs=1e-4)
    out = tmp_path / "faces.csv"
    runner.invoke(app, ["predict", face, "--arch", "tiny", "--detector", "none", "--csv", str(out)])
    header = out.read_text().splitlines()[0].split(",")
    readme = (REPO / "docs" / "outputs.md").read_text().split("# The face records", 1)[1]
    for column in header:
        assert f"`{column.replace('tiny_', 'ARCH_')}`" in readme, column


# --------------------------------------------------------------------------- the bundled models


@pytest.fixture(scope="module")
def model() -> AgeGender:
    # the engine pinned: under auto this process (torch imported) and a fresh command may pick different engines
    return AgeGender(engine="onnx").load()


@pytest.mark.integration
def test_real_models_give_the_command_lines_records_for_every_kind_of_input(model):
    cli = _cli_records(str(GRACE), "--arch", "both", "--engine", "onnx")
    assert len(cli) == 1 and cli[0]["face"] == 0
    bgr = cv2.imread(str(GRACE))
    assert model.predict(str(GRACE)) == cli
    assert model.predict(bgr) == _in_memory(cli)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    assert model.predict(rgb, channels="rgb") == _in_memory(cli)
    assert model.predict(Image.fromarray(rgb)) == _in_memory(cli)
    assert model.predict([str(GRACE), bgr, Image.fromarray(rgb)]) == [cli, _in_memory(cli), _in_memory(cli)]
    assert model.predict(rgb) != _in_memory(cli)  # RGB read as BGR: the models see other colours
    (opened,) = model.predict(Image.open(GRACE))  # PIL's JPEG decoder may differ from OpenCV's by a pixel level
    assert np.allclose(opened["box"], cli[0]["box"], atol=2)
    for arch in ("facenet", "caffenet"):
        assert opened[arch]["age"] == cli[0][arch]["age"]
        assert abs(opened[arch]["p_female"] - cli[0][arch]["p_female"]) < 0.05
    assert _keys(cli[0], model.archs) <= _schema_fields()
    assert model.loads == 1


@pytest.mark.integration
def test_the_documented_python_example_runs(monkeypatch, capsys, tmp_path):
    text = (REPO / "docs" / "api.md").read_text()
    code = text.split("# Use from Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)  # the example writes annotated.jpg where it runs
    scope: dict = {}
    exec(compile(code, "docs/api.md", "exec"), scope)  # noqa: S102 - the documentation's own example
    assert len(scope["faces"]) == 1 and scope["bgr"] == _in_memory(scope["faces"])
    assert [len(faces) for faces in scope["both"]] == [1, 1]
    printed = capsys.readouterr().out
    assert "no/such.jpg: no such file or folder" in printed
    assert "examples/grace_hopper.jpg None face" in printed and "clip.mp4 None error" in printed
    assert cv2.imread("annotated.jpg").shape == cv2.imread(str(GRACE)).shape
