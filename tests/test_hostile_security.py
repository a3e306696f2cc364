"""Hostile and careless input, security: nothing is written outside the file or folder the user named, and
no output replaces an input, a device or what a link points to."""

from __future__ import annotations

import csv
import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jpeg
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import OutputNames, atomic_write_text

runner = CliRunner()


def tree_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_manifest(path: Path, rows: list[dict]) -> Path:
    fields = ("path", "age", "gender", "race", "age_class", "split")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("split", ["../../escaped", "/tmp/agegender-escaped", "train/../../x", "..", ""])
def test_manifest_split_cannot_choose_where_preprocess_writes(tmp_path, split):
    image = write_jpeg(tmp_path / "data" / "25_0_1_20170101000000001.jpg")
    manifest = write_manifest(tmp_path / "data" / "manifest.csv", [
        {"path": image.name, "age": 25, "gender": 0, "race": 1, "age_class": 4, "split": "train"},
        {"path": image.name, "age": 25, "gender": 0, "race": 1, "age_class": 4, "split": split},
    ])
    out = tmp_path / "work" / "out"
    before = tree_snapshot(tmp_path)
    result = runner.invoke(app, ["preprocess", "--manifest", str(manifest), "--out", str(out)])
    assert result.exit_code == 1
    assert "line 3" in result.stderr and "split" in result.stderr and "Traceback" not in result.output
    assert tree_snapshot(tmp_path) == before  # nothing written anywhere, inside --out or outside
    assert not Path("/tmp/agegender-escaped").exists()


def test_manifest_paths_are_read_anywhere_but_outputs_stay_under_out(tmp_path):
    elsewhere = write_jpeg(tmp_path / "elsewhere" / "deep" / "25_0_1_20170101000000001.jpg")
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", [
        {"path": str(elsewhere), "age": 25, "gender": 0, "race": 1, "age_class": 4, "split": "test"},
        {"path": "../elsewhere/deep/25_0_1_20170101000000001.jpg", "age": 25, "gender": 0, "race": 1,
         "age_class": 4, "split": "test"},
    ])
    out = tmp_path / "out"
    result = runner.invoke(app, ["preprocess", "--manifest", str(manifest), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    # one image named twice: both rows are written, the second under a suffix, and it is said
    assert written == ["test/25_0_1_20170101000000001-2.png", "test/25_0_1_20170101000000001.png"]
    assert len(json.loads(result.stdout)["renamed"]) == 1


def test_output_file_writes_through_devices_fifos_and_links_to_them(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    link_to_fifo = tmp_path / "link-to-pipe"
    link_to_fifo.symlink_to(fifo)
    atomic_write_text(link_to_fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link_to_fifo.is_symlink()

    atomic_write_text("/dev/null", "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_output_file_keeps_a_link_to_a_regular_file_and_replaces_its_target(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


@pytest.mark.parametrize("kind", ["folder", "dangling link"])
def test_output_file_refuses_a_folder_or_dangling_link_in_one_line(tmp_path, kind):
    path = tmp_path / "out.csv"
    if kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(AgeGenderError) as error:
        atomic_write_text(path, "x")
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "nowhere").exists()


def test_output_files_get_the_users_umask_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_csv_dash_is_stdout_and_csv_dev_null_stays_a_device(tiny_arch, tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    result = runner.invoke(app, ["predict", str(image), "--arch", "tiny", "--detector", "none", "--csv", "-"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert len(rows) == 1 and rows[0]["file"] == str(image) and rows[0]["tiny_gender"] in ("male", "female")
    assert not Path("-").exists()

    result = runner.invoke(app, ["predict", str(image), "--arch", "tiny", "--detector", "none",
                                 "--csv", "/dev/null", "--summary-plot", "/dev/null"])
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_annotating_into_the_input_folder_keeps_every_input(tiny_arch, tmp_path):
    folder = tmp_path / "photos"
    for name in ("x.jpg", "sub/x.jpg"):
        write_jpeg(folder / name, seed=len(name))
    write_jpeg(folder / "x.png", seed=7)
    before = tree_snapshot(folder)
    result = runner.invoke(app, ["predict", str(folder), "--arch", "tiny", "--detector", "none",
                                 "--annotate", str(folder)])
    assert result.exit_code == 0, result.output
    after = tree_snapshot(folder)
    assert all(after[name] == data for name, data in before.items())  # inputs untouched
    new = sorted(set(after) - set(before))
    assert new == ["sub/x-2.jpg", "x-2.jpg", "x-3.jpg"]  # mirrored, suffixed, and said
    assert "renamed" in result.stderr


def test_two_inputs_with_one_name_get_two_outputs(tmp_path):
    a = write_jpeg(tmp_path / "a" / "x.jpg", seed=1)
    b = write_jpeg(tmp_path / "b" / "x.jpg", seed=2)
    out = tmp_path / "out"
    result = runner.invoke(app, ["preprocess", str(a), str(b), str(tmp_path / "a" / "x.jpg"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["x-2.png", "x-3.png", "x.png"]


def test_preprocess_into_the_inputs_own_folder_does_not_replace_it(tmp_path):
    import cv2

    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((32, 32, 3), 90, np.uint8))
    original = image.read_bytes()
    result = runner.invoke(app, ["preprocess", str(image), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert image.read_bytes() == original and (tmp_path / "x-2.png").is_file()


@pytest.mark.parametrize("option", ["--csv", "--summary-plot"])
def test_an_output_option_naming_an_input_is_refused(tiny_arch, tmp_path, option):
    image = write_jpeg(tmp_path / "a.jpg")
    original = image.read_bytes()
    result = runner.invoke(app, ["predict", str(image), "--arch", "tiny", "--detector", "none", option, str(image)])
    assert result.exit_code == 1 and "is one of the inputs" in result.stderr
    assert image.read_bytes() == original


def test_report_naming_the_manifest_is_refused(tiny_arch, tmp_path):
    image = write_jpeg(tmp_path / "25_0_1_20170101000000001.jpg")
    manifest = write_manifest(tmp_path / "manifest.csv", [
        {"path": image.name, "age": 25, "gender": 0, "race": 1, "age_class": 4, "split": "test"}])
    original = manifest.read_bytes()
    result = runner.invoke(app, ["compare", "--arch", "tiny", "--manifest", str(manifest), "--report", str(manifest)])
    assert result.exit_code == 1 and "is one of the inputs" in result.stderr
    assert manifest.read_bytes() == original


def test_caffe_weights_folder_is_only_read(tmp_path, monkeypatch):
    from agegender_cli.archs.caffenet import original

    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    user = tmp_path / "weights"
    user.mkdir()
    for name in ("age_net.caffemodel", "gender_net.caffemodel"):
        (user / name).write_bytes(b"weights")
    (user / "age_net.prototxt").write_text("the user's own prototxt")
    before = tree_snapshot(user)
    folder = original.resolve_caffe_weights(user, online=False)
    assert tree_snapshot(user) == before
    assert folder.is_relative_to(tmp_path / "home")
    assert (folder / "age_net.caffemodel").resolve() == (user / "age_net.caffemodel").resolve()
    assert "input: data" in (folder / "age_net.prototxt").read_text() or (folder / "age_net.prototxt").is_file()


def test_output_names_never_land_on_inputs_or_each_other(tmp_path):
    inputs = [tmp_path / "x.jpg", tmp_path / "x-2.jpg"]
    names = OutputNames(tmp_path, inputs)
    assert names.path_for(Path("x.jpg")) == tmp_path / "x-3.jpg"
    assert names.path_for(Path("x.jpg")) == tmp_path / "x-4.jpg"
    assert names.path_for(Path("y.jpg")) == tmp_path / "y.jpg"
    assert len(names.renamed) == 2


def test_formula_names_are_quoted_in_csv_outputs_and_read_back_as_they_were(tiny_arch, tmp_path, monkeypatch):
    """OWASP's CSV injection: a file named like a formula is text in manifest.csv and in predict's CSV."""
    from agegender_cli.data.utkface import Record, read_manifest
    from agegender_cli.data.utkface import write_manifest as write_records

    names = ["=cmd|' calc'!A0.jpg", "+1.jpg", "-2.jpg", "@sum.jpg", "'quoted.jpg", "plain.jpg"]
    for name in names:
        write_jpeg(tmp_path / name)
    records = [Record(tmp_path / name, 30, 1, "=HYPERLINK(x)", 4, "train", "", "@group") for name in names]
    write_records(records, tmp_path / "manifest.csv")
    rows = list(csv.DictReader((tmp_path / "manifest.csv").read_text().splitlines()))
    assert [row["path"] for row in rows] == ["'" + n for n in names[:5]] + ["plain.jpg"]
    assert all(row["race"] == "'=HYPERLINK(x)" and row["group"] == "'@group" for row in rows)
    back = read_manifest(tmp_path / "manifest.csv")
    assert [r.path for r in back] == [tmp_path / n for n in names]
    assert {r.race for r in back} == {"=HYPERLINK(x)"} and {r.group for r in back} == {"@group"}

    monkeypatch.chdir(tmp_path)  # the file column names the input as given: here a formula
    result = runner.invoke(app, ["predict", names[0], "--arch", "tiny", "--detector", "none", "--csv", "-"])
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(result.stdout.splitlines())
    assert row["file"] == "'" + names[0] and row["status"] == "face"


def test_outputs_replace_only_files_agegender_wrote(tiny_arch, tmp_path):
    """--csv, --summary-plot and --annotate replaced a user's own files of the same name (issue 31)."""
    image = write_jpeg(tmp_path / "in" / "a.jpg")
    mine_csv, mine_plot = tmp_path / "mine.csv", tmp_path / "mine.png"
    mine_csv.write_text("my,data\n")
    mine_plot.write_bytes(b"my figure")
    base = ["predict", str(image), "--arch", "tiny", "--detector", "none"]
    for option, target in (("--csv", mine_csv), ("--summary-plot", mine_plot)):
        refused = runner.invoke(app, [*base, option, str(target)])
        assert refused.exit_code == 1 and "agegender did not write it" in refused.output
    assert mine_csv.read_text() == "my,data\n" and mine_plot.read_bytes() == b"my figure"
    ours_csv, ours_plot = tmp_path / "ours.csv", tmp_path / "ours.svg"
    for _ in range(2):  # a rerun replaces what the first run wrote
        again = runner.invoke(app, [*base, "--csv", str(ours_csv), "--summary-plot", str(ours_plot)])
        assert again.exit_code == 0, again.output
    forced = runner.invoke(app, [*base, "--csv", str(mine_csv), "--overwrite"])
    assert forced.exit_code == 0 and mine_csv.read_text().startswith("file,frame,time,face,")

    annotated = tmp_path / "annotated"
    annotated.mkdir()
    (annotated / "a.jpg").write_bytes(b"my own a.jpg")
    for _ in range(2):
        result = runner.invoke(app, [*base, "--annotate", str(annotated)])
        assert result.exit_code == 0, result.output
    assert (annotated / "a.jpg").read_bytes() == b"my own a.jpg"
    assert sorted(p.name for p in annotated.iterdir()) == ["a-2.jpg", "a.jpg"]  # the rerun replaced its own a-2


def test_preprocess_keeps_a_png_it_did_not_write(tmp_path):
    image = write_jpeg(tmp_path / "in" / "face.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "face.png").write_bytes(b"my own png")
    for _ in range(2):
        result = runner.invoke(app, ["preprocess", str(image), "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert (out / "face.png").read_bytes() == b"my own png"
    assert sorted(p.name for p in out.iterdir()) == ["face-2.png", "face.png"]
    preview = tmp_path / "preview.png"
    preview.write_bytes(b"my own preview")
    refused = runner.invoke(app, ["preprocess", str(image), "--preview", str(preview)])
    assert refused.exit_code == 1 and preview.read_bytes() == b"my own preview"


def test_marks_make_encoded_images_recognisable_and_still_decodable(tmp_path):
    import cv2

    from agegender_cli.ownership import marked, with_mark

    picture = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    for suffix in (".jpg", ".png"):
        data = with_mark(cv2.imencode(suffix, picture)[1].tobytes(), suffix)
        (tmp_path / f"x{suffix}").write_bytes(data)
        assert marked(tmp_path / f"x{suffix}")
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == picture.shape
    assert (cv2.imread(str(tmp_path / "x.png")) == picture).all()  # lossless stays lossless
    (tmp_path / "plain.png").write_bytes(cv2.imencode(".png", picture)[1].tobytes())
    assert not marked(tmp_path / "plain.png")


def test_dataset_keeps_a_manifest_csv_it_did_not_write(tmp_path, shared_utkface):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "manifest.csv").write_text("name,score\nalice,3\n")
    refused = runner.invoke(app, ["dataset", str(shared_utkface), "--out", str(out)])
    assert refused.exit_code == 1 and "not one agegender wrote" in refused.output
    assert (out / "manifest.csv").read_text() == "name,score\nalice,3\n"
