"""Hostile and careless input, errors: every bad value, row, name or path ends in one clear line and the
documented exit code, never a traceback; SIGTERM cleans up; stdin is streamed; a cut video says so."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jpeg
from typer.testing import CliRunner

from agegender_cli import service
from agegender_cli.cli.app import app
from agegender_cli.config import ModelOptions, PredictConfig
from agegender_cli.data.utkface import MANIFEST_FIELDS, read_manifest
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.inputs import InputStream, iter_frames, read_video

runner = CliRunner()
AGEGENDER = Path(sys.executable).with_name("agegender")


def write_jpeg_bytes_path(raw: bytes, seed: int) -> None:
    """A JPEG at a path given as bytes (cv2.imwrite crashes on names that are not UTF-8)."""
    import cv2

    ok, data = cv2.imencode(".jpg", np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    with open(raw, "wb") as handle:
        handle.write(data.tobytes())


def one_line(result) -> str:
    """The one error line (progress messages aside), and no traceback."""
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args", [
    ["preprocess", "x.jpg", "--out", "o", "--gabor-sigma", "nan"],
    ["preprocess", "x.jpg", "--out", "o", "--gabor-theta", "inf"],
    ["preprocess", "x.jpg", "--out", "o", "--blur-sigma", "nan"],
    ["preprocess", "x.jpg", "--out", "o", "--clahe-clip", "inf"],
    ["preprocess", "x.jpg", "--out", "o", "--gabor-kernel", "100000"],
    ["preprocess", "x.jpg", "--preview", "p.png", "--preview-count", "100000"],
    ["predict", "x.jpg", "--min-score", "nan"],
    ["predict", "x.jpg", "--workers", "100000"],
    ["predict", "x.jpg", "--batch-size", "100000000"],
    ["predict", "x.jpg", "--csv", "-", "--json"],
    ["train", "--lr", "nan"], ["train", "--lr", "inf"], ["train", "--weight-decay", "nan"],
    ["train", "--epochs", "0"], ["train", "--seed", str(2**40)], ["train", "--views", "100000"],
    ["train", "--label-smoothing", "nan"], ["train", "--dropout", "nan"],
    ["dataset", "x", "--duplicate-threshold", "nan"], ["dataset", "x", "--seed", "-1"],
    ["compare", "--bootstrap", "0"], ["compare", "--seed", str(2**64)],
    ["--threads", "0", "predict", "x.jpg"],
])
def test_number_options_out_of_range_are_usage_errors(args, monkeypatch):
    monkeypatch.setattr(service, "predict", lambda *a, **k: pytest.fail("reached the service"))
    monkeypatch.setattr(service, "run_preprocess", lambda *a, **k: pytest.fail("reached the service"))
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


GOOD = {"path": "a.jpg", "age": "25", "gender": "0", "race": "1", "age_class": "4", "split": "test"}


@pytest.mark.parametrize("field, value, says", [
    ("age", "twenty", "age 'twenty'"), ("age", "-3", "age '-3'"), ("age", "999", "age '999'"),
    ("gender", "3", "gender '3'"), ("gender", "x", "gender 'x'"), ("race", "9", "race '9'"),
    ("age_class", "8", "age_class '8'"), ("age_class", "1e3", "age_class '1e3'"),
    ("split", "../x", "split '../x'"), ("path", "", "empty or invalid path"),
    ("age", "٣", "age '٣'"),  # a digit, but not an ASCII one
    ("age_class", "", "neither gender nor age_class"),  # with gender blanked below
])
def test_bad_manifest_fields_are_named_with_their_line(tmp_path, field, value, says):
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerow(GOOD)
        writer.writerow({**GOOD, field: value, **({"gender": ""} if says.startswith("neither") else {})})
    with pytest.raises(AgeGenderError) as error:
        read_manifest(path)
    assert "line 3" in str(error.value) and says in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("content, says", [
    (b"path,age\na.jpg,3\n", "not a manifest"),
    (b"path,age,gender,race,age_class,split\na.jpg,25,0\n", "line 2"),
    (b"path,age,gender,race,age_class,split\na.jpg,25,0,1,4,test,x,y,z\n", "line 2"),
    (b"path,age,gender,race,age_class,split\n\0\0\0binary\xff\xfe", "not"),
    (b"path,age,gender,race,age_class,split\n" + b"a" * 300_000 + b",25,0,1,4,test\n", "CSV"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not"),
    (b"", "not a manifest"),
])
def test_malformed_manifests_are_one_line_errors_through_the_cli(tiny_arch, tmp_path, content, says):
    path = tmp_path / "manifest.csv"
    path.write_bytes(content)
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(path)])
    assert result.exit_code == 1
    line = one_line(result)
    assert str(path) in line and says in line


def test_file_names_that_are_not_utf8_are_escaped_not_fatal(tiny_arch, tmp_path):
    folder = tmp_path / "photos"
    write_jpeg(folder / "a.jpg")
    write_jpeg_bytes_path(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"), seed=3)
    write_jpeg_bytes_path(os.path.join(os.fsencode(folder), b"clip\xe9.avi"), seed=4)
    out = tmp_path / "faces.csv"
    result = runner.invoke(app, ["predict", str(folder), "--arch", "tiny", "--detector", "none", "--json",
                                 "--csv", str(out)])
    assert result.exit_code == 1, result.output  # the video cannot be opened: said, and the batch goes on
    records = {Path(r["file"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == {"a.jpg", "caf\\xe9.jpg", "clip\\xe9.avi"}
    assert "not valid UTF-8" in records["clip\\xe9.avi"]["error"] and "tiny" in records["caf\\xe9.jpg"]
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 3 and any(r["file"].endswith("caf\\xe9.jpg") for r in rows)


def test_dataset_skips_a_name_that_is_not_utf8_and_writes_the_rest(tmp_path):
    folder = tmp_path / "utk"
    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70) * 3):
        write_jpeg(folder / f"{age}_{k % 2}_1_2017010{k % 9}1234567{k % 10}.jpg", seed=k, size=32)
    write_jpeg_bytes_path(os.path.join(os.fsencode(folder), b"25_0_1_2017\xff.jpg"), seed=99)
    result = runner.invoke(app, ["dataset", str(folder), "--out", str(tmp_path / "d"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_usable"] == 24
    assert [s["reason"] for s in summary["skipped"] if "\\xff" in s["file"]] == [
        "the file name is not valid UTF-8; rename the file"]


@pytest.mark.parametrize("option, kind", [("--csv", "folder"), ("--annotate", "file"), ("--summary-plot", "folder")])
def test_output_paths_of_the_wrong_kind_are_one_line_errors(tiny_arch, tmp_path, option, kind):
    image = write_jpeg(tmp_path / "a.jpg")
    target = tmp_path / "target"
    target.mkdir() if kind == "folder" else target.write_text("mine")
    result = runner.invoke(app, ["predict", str(image), "--arch", "tiny", "--detector", "none", option, str(target)])
    assert result.exit_code == 1
    assert str(target) in one_line(result)
    assert kind == "folder" or target.read_text() == "mine"


@pytest.mark.parametrize("args", [
    ["preprocess", "{image}", "--out", "/proc/agegender-out"],
    ["preprocess", "{image}", "--out", "{image}/sub"],
    ["dataset", "{folder}", "--out", "{image}"],
])
def test_unwritable_or_blocked_output_folders_are_one_line_errors(tmp_path, args):
    image = write_jpeg(tmp_path / "25_0_1_20170101000000001.jpg")
    args = [a.format(image=image, folder=tmp_path) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    one_line(result)


def test_preprocess_json_exits_1_when_files_failed(tmp_path):
    good, bad = write_jpeg(tmp_path / "good.jpg"), tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    result = runner.invoke(app, ["preprocess", str(good), str(bad), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["written"] == 1 and data["failed"][0]["file"] == str(bad)


def test_evaluate_exits_1_when_images_failed(tiny_arch, tmp_path):
    folder = tmp_path / "faces"
    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70)):
        write_jpeg(folder / f"{age}_{k % 2}_1_2017010{k}12345678.jpg", seed=k, size=32)
    (folder / "30_0_1_20170101000000009.jpg").write_bytes(b"corrupt")
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--images", str(folder), *extra])
        assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["results"]["tiny"]["n"] == 8


def test_stdin_paths_are_processed_as_they_arrive(tiny_arch, tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    read_end, write_end = os.pipe()
    stdin, feeder = os.fdopen(read_end), os.fdopen(write_end, "w")
    rows: list[dict] = []
    first = threading.Event()

    def emit(row: dict) -> None:
        rows.append(row)
        first.set()

    cfg = PredictConfig(inputs=("-",), archs=("tiny",), detector="none", options=ModelOptions())
    original = sys.stdin
    sys.stdin = stdin
    try:
        worker = threading.Thread(target=service.predict, args=(cfg, emit))
        worker.start()
        feeder.write(f"{image}\n")
        feeder.flush()
        assert first.wait(timeout=30), "no answer before the end of stdin"
        assert rows[0]["file"] == str(image)
        feeder.write(f"{image}\n{tmp_path / 'missing.jpg'}\n")
        feeder.close()
        worker.join(timeout=30)
    finally:
        sys.stdin = original
    assert [r.get("error") for r in rows] == [None, "no such file or folder"]  # the repeat is read once


def test_input_stream_hands_over_items_before_eof(tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    read_end, write_end = os.pipe()
    feeder = os.fdopen(write_end, "w")
    feeder.write(f"{image}\n")
    feeder.flush()
    frames = iter_frames(InputStream(["-"], stdin=os.fdopen(read_end)), workers=1)
    got: list = []
    reader = threading.Thread(target=lambda: got.append(next(frames)))
    reader.start()
    reader.join(timeout=20)
    assert got and got[0].source == str(image) and got[0].image is not None
    feeder.close()


def test_a_truncated_video_says_how_many_frames_it_read(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(30):
        writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    frames = list(read_video(str(path)))
    good = [f for f in frames if f.error is None]
    assert 0 < len(good) < 30
    assert f"read {len(good)} of the 30 frames" in frames[-1].error


@pytest.mark.integration
def test_sigterm_removes_the_partial_csv_and_exits_143(tmp_path):
    out = tmp_path / "faces.csv"
    process = subprocess.Popen([str(AGEGENDER), "predict", "-", "--arch", "caffenet", "--csv", str(out)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".faces.csv.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".faces.csv.*.tmp")), "the temp CSV never appeared"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert not list(tmp_path.iterdir()), "temp files left behind"
    assert b"Traceback" not in err
