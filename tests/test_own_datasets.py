"""Bring your own data: label files (CSV/TSV, FairFace, Adience) beside UTKFace names, gender- or age-only
datasets, and evaluation on whole photos with the labelled face found by a detector."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_UTKFACE, write_jpeg
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.data.labelled import age_class_of, label_format, parse_age, parse_gender
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.detection import Detection, pick_face
from agegender_cli.labels import AGE_CLASSES

runner = CliRunner()


@pytest.mark.parametrize("text, parsed", [
    ("25", (25, 25)), ("25-32", (25, 32)), ("(25, 32)", (25, 32)), (" (8, 12) ", (8, 12)), ("60+", (60, 130)),
    ("more than 70", (70, 130)), ("None", None), ("", None), ("u", None),
])
def test_ages_are_years_or_ranges(text, parsed):
    assert parse_age(text) == parsed


@pytest.mark.parametrize("text", ["old", "32-25", "999", "2x"])
def test_bad_ages_give_a_reason(text):
    assert isinstance(parse_age(text), str)


@pytest.mark.parametrize("low, high, gaps, expected", [
    (25, 32, "drop", "25-32"), (27, 32, "drop", "25-32"), (0, 2, "drop", "0-2"), (60, 130, "drop", "60+"),
    (70, 130, "drop", "60+"), (35, 35, "drop", None), (35, 35, "nearest", "38-43"), (20, 29, "drop", None),
    (8, 23, "drop", None), (33, 37, "nearest", None), (23, 24, "nearest", "25-32"),
])
def test_a_range_maps_to_the_class_that_holds_all_of_it(low, high, gaps, expected):
    mapped = age_class_of(low, high, gaps)
    if expected is None:
        assert isinstance(mapped, str) and ("spans" in mapped or "between" in mapped)
    else:
        assert AGE_CLASSES[mapped] == expected


@pytest.mark.parametrize("text, gender", [("0", 0), ("M", 0), ("male", 0), ("Female", 1), ("f", 1), ("1", 1),
                                          ("u", None), ("", None)])
def test_genders_in_words_or_numbers(text, gender):
    assert parse_gender(text) == gender


def test_formats_are_recognised_by_file_name():
    assert label_format(Path("fairface_label_train.csv"), "auto") == "fairface"
    assert label_format(Path("fold_3_data.txt"), "auto") == "adience"
    assert label_format(Path("mine.tsv"), "auto") == "csv"
    assert label_format(Path("fold_3_data.txt"), "csv") == "csv"


def faces(n: int, seed: int = 0, size: int = 48) -> list[np.ndarray]:
    """n face images: UTKFace crops from ../shared when it is there (shrunk), else random pictures."""
    import cv2

    rng = np.random.default_rng(seed)
    crops = sorted(SHARED_UTKFACE.glob("*.jpg"))[:400] if SHARED_UTKFACE.is_dir() else []
    if not crops:
        return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    chosen = rng.choice(len(crops), n, replace=False)
    return [cv2.resize(cv2.imread(str(crops[i])), (size, size), interpolation=cv2.INTER_AREA) for i in chosen]


def save(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def chips_in_photos(folder: Path, chips: list[Path], height: int, width: int, shade: tuple[int, int]
                    ) -> list[tuple[str, str, str]]:
    """Each UTKFace chip pasted in the middle of a plain photo (grey shade[0] + shade[1] * i), saved as
    folder/i.jpg; (path from folder's parent, age, gender) of each, read from the chip's name."""
    import cv2

    rows = []
    for i, chip in enumerate(chips):
        photo = np.full((height, width, 3), shade[0] + shade[1] * i, np.uint8)
        top, left = (height - 200) // 2, (width - 200) // 2
        photo[top:top + 200, left:left + 200] = cv2.imread(str(chip))
        save(folder / f"{i}.jpg", photo)
        age, gender = chip.name.split("_")[:2]
        rows.append((f"{folder.name}/{i}.jpg", age, gender))
    return rows


def run_dataset(*args: str) -> dict:
    result = runner.invoke(app, ["dataset", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_users_tsv_with_renamed_columns(tmp_path):
    for i, image in enumerate(faces(24)):
        save(tmp_path / "imgs" / f"{i}.png", image)
    lines = ["file\tyears\tsex\tgroup"]
    for i in range(24):
        age = ("4", "(25, 32)", "60+", "35")[i % 4]
        lines.append(f"imgs/{i}.png\t{age}\t{('m', 'female', 'u')[i % 3]}\tg{i % 2}")
    lines += ["imgs/missing.png\t25\tm\tg0", "imgs/0.png\t25\tm\tg0", "imgs/1.png\tnope\tu\tg0"]
    (tmp_path / "labels.tsv").write_text("\n".join(lines) + "\n")
    summary = run_dataset(str(tmp_path / "imgs"), "--labels", str(tmp_path / "labels.tsv"), "--out",
                          str(tmp_path / "ds"), "--columns", "path=file,age=years",
                          "--columns", "gender=sex,race=group",
                          "--duplicates", "ignore")
    records = {r.path.name: r for r in read_manifest(tmp_path / "ds" / "manifest.csv")}
    assert len(records) == 24 - 2  # two images have neither a usable age class nor a gender ("35", "u")
    assert records["0.png"].age == 4 and AGE_CLASSES[records["0.png"].age_class] == "4-6"
    assert records["0.png"].gender == 0 and records["0.png"].race == "g0"
    assert records["1.png"].age is None and AGE_CLASSES[records["1.png"].age_class] == "25-32"
    assert records["2.png"].gender is None and AGE_CLASSES[records["2.png"].age_class] == "60+"
    assert records["3.png"].age_class is None and records["3.png"].gender == 0  # 35 lies in a gap: gender only
    reasons = [s["reason"] for s in summary["skipped"]]
    assert any("missing.png" in r and "not found" in r for r in reasons)
    assert summary["labels"]["labels_left_out"]["age: age 35 lies between the age classes"] == 6
    assert "labelled twice: the first label is kept" in reasons


def write_fairface(root: Path) -> None:
    """FairFace's published layout: train/N.jpg, val/N.jpg and fairface_label_{train,val}.csv."""
    bins = ["0-2", "3-9", "20-29", "60-69", "more than 70", "10-19"]
    for which, count in (("train", 30), ("val", 12)):
        rows = [["file", "age", "gender", "race", "service_test"]]
        for i, image in enumerate(faces(count, seed=len(which))):
            save(root / which / f"{i + 1}.jpg", image)
            rows.append([f"{which}/{i + 1}.jpg", bins[i % len(bins)], ("Male", "Female")[i % 2], "East Asian",
                         "True"])
        with (root / f"fairface_label_{which}.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)


def test_fairface_keeps_its_val_as_test_and_maps_only_the_bins_that_fit(tmp_path):
    write_fairface(tmp_path / "fairface")
    summary = run_dataset(str(tmp_path / "fairface"), "--labels", str(tmp_path / "fairface/fairface_label_train.csv"),
                          "--labels", str(tmp_path / "fairface/fairface_label_val.csv"), "--split-from-source",
                          "--out", str(tmp_path / "ds"), "--duplicates", "ignore")
    records = read_manifest(tmp_path / "ds" / "manifest.csv")
    assert len(records) == 42 and all(r.gender is not None for r in records)
    assert {r.split for r in records if "/val/" in str(r.path)} == {"test"}
    assert {r.split for r in records if "/train/" in str(r.path)} == {"train", "val"}
    classes = {AGE_CLASSES[r.age_class] for r in records if r.age_class is not None}
    assert classes == {"0-2", "60+"}
    assert summary["labels"]["with_age_class"] == sum(r.age_class is not None for r in records)
    assert any("spans" in reason for reason in summary["labels"]["labels_left_out"])
    assert {r.race for r in records} == {"East Asian"}


ADIENCE_HEADER = ("user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\t"
                  "fiducial_score")


def write_adience(root: Path) -> None:
    """Adience's layout: fold_N_data.txt (tab-separated) and aligned/<user>/landmark_aligned_face.<id>.<image>;
    fold 4's faces are whole photos under faces/<user>/<image> with the face's box in the fold file."""
    ages = ["(0, 2)", "(25, 32)", "(8, 23)", "35", "(60, 100)", "None"]
    for fold in range(5):
        lines = [ADIENCE_HEADER]
        for i, image in enumerate(faces(6, seed=10 + fold)):
            user, name = f"user{fold}", f"{i}.jpg"
            if fold == 4:
                scene = np.full((300, 400, 3), 90, np.uint8)
                scene[50:98, 100:148] = image
                save(root / "faces" / user / name, scene)
            else:
                save(root / "aligned" / user / f"landmark_aligned_face.{i + 1}.{name}", image)
            lines.append(f"{user}\t{name}\t{i + 1}\t{ages[i]}\t{'mfu'[i % 3]}\t100\t50\t48\t48\t0\t0\t50")
        (root / f"fold_{fold}_data.txt").write_text("\n".join(lines) + "\n")


def test_adience_folds_become_splits_and_whole_photos_keep_their_box(tmp_path):
    write_adience(tmp_path / "adience")
    folds = [str(tmp_path / "adience" / f"fold_{k}_data.txt") for k in range(5)]
    summary = run_dataset(str(tmp_path / "adience"), *[a for f in folds for a in ("--labels", f)],
                          "--split-from-source", "--out", str(tmp_path / "ds"), "--duplicates", "ignore")
    records = read_manifest(tmp_path / "ds" / "manifest.csv")
    by_split = {split: [r for r in records if r.split == split] for split in ("train", "val", "test")}
    assert {r.path.parent.name for r in by_split["test"]} == {"user4"}
    assert {r.path.parent.name for r in by_split["val"]} == {"user3"}
    assert {r.path.parent.name for r in by_split["train"]} == {"user0", "user1", "user2"}
    assert all(r.box == (100, 50, 148, 98) for r in by_split["test"])
    assert all(r.box is None for r in by_split["train"])
    # (8, 23) spans two classes and "35" is in a gap: gender only; i=5 has neither ("None", "f"... kept: gender f)
    assert summary["labels"]["with_age_class"] == 5 * 3


def test_pick_face_prefers_the_labelled_box_then_the_largest():
    small, big = Detection((10, 10, 30, 30), 0.99), Detection((100, 100, 200, 200), 0.99)
    assert pick_face((400, 400, 3), [small, big]) == ((100, 100, 200, 200), False)
    assert pick_face((400, 400, 3), [small, big], (12, 12, 31, 29)) == ((10, 10, 30, 30), False)
    assert pick_face((400, 400, 3), [small], (300, 300, 350, 350)) is None
    assert pick_face((400, 400, 3), []) is None


def test_auto_takes_face_crops_whole_and_finds_faces_in_photos():
    assert pick_face((200, 200, 3), [Detection((20, 10, 180, 210), 0.99)], auto=True) == ((0, 0, 200, 200), True)
    assert pick_face((200, 200, 3), [], auto=True) is None  # no face found: detection.crop_faces decides
    assert pick_face((1000, 1500, 3), [], auto=True) is None
    assert pick_face((1000, 1500, 3), [Detection((100, 100, 200, 200), 0.99)], auto=True) == (
        (100, 100, 200, 200), False)


def test_a_gender_only_dataset_scores_gender_only(tiny_arch, tmp_path):
    for i, image in enumerate(faces(12)):
        save(tmp_path / "imgs" / f"{i}.png", image)
    (tmp_path / "labels.csv").write_text("path,gender\n" + "".join(f"imgs/{i}.png,{i % 2}\n" for i in range(12)))
    run_dataset(str(tmp_path / "imgs"), "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "ds"),
                "--duplicates", "ignore")
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(tmp_path / "ds/manifest.csv"),
                                 "--split", "train", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["results"]["tiny"]
    assert data["gender"]["n"] == data["n"] > 0 and data["age"]["n"] == 0 and data["age"]["accuracy"] is None
    assert data["ci95"]["gender"]["accuracy"] is not None and data["ci95"]["age"]["accuracy"] is None
    assert data["calibration"]["age"]["ece"] is None and data["calibration"]["gender"]["n"] == data["n"]
    result = runner.invoke(app, ["compare", "--arch", "tiny,tiny", "--manifest", str(tmp_path / "ds/manifest.csv"),
                                 "--split", "train", "--bootstrap", "50", "--report", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output


@pytest.mark.integration
def test_whole_photos_from_a_labels_csv_evaluate_with_detection_recall(tiny_arch, tmp_path, shared_utkface):
    """UTKFace crops pasted into scenes (one photo has no face): both tiny models, MTCNN, recall reported."""
    import cv2

    crops = sorted(shared_utkface.glob("*.jpg"))[:10]
    rng = np.random.default_rng(0)
    rows = ["path,age,gender,x1,y1,x2,y2,split"]
    for i, crop in enumerate(crops):
        scene = np.full((420, 560, 3), rng.integers(40, 200, 3), np.uint8)
        x, y = int(rng.integers(0, 360)), int(rng.integers(0, 220))
        scene[y:y + 200, x:x + 200] = cv2.imread(str(crop))
        save(tmp_path / "photos" / f"{i}.jpg", scene)
        age, gender = crop.name.split("_")[:2]
        rows.append(f"photos/{i}.jpg,{age},{gender},{x},{y},{x + 200},{y + 200},test")
    save(tmp_path / "photos" / "empty.jpg", np.full((420, 560, 3), 128, np.uint8))
    rows.append("photos/empty.jpg,30,1,10,10,210,210,test")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    summary = run_dataset(str(tmp_path / "photos"), "--labels", str(tmp_path / "labels.csv"), "--gaps", "nearest",
                          "--out", str(tmp_path / "ds"), "--duplicates", "ignore", "--split-from-source")
    manifest = tmp_path / "ds" / "manifest.csv"
    records = read_manifest(manifest)
    assert summary["n_usable"] == 11 and {r.split for r in records} == {"test"}
    assert all(r.box is not None for r in records)
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(manifest), "--detector", "mtcnn",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    detection = data["detection"]
    assert detection["photos"] == 11 and detection["found"] == data["results"]["tiny"]["n"] == 10
    assert detection["recall"] == pytest.approx(10 / 11) and detection["missed"][0].endswith("empty.jpg")

    result = runner.invoke(app, ["evaluate", "--arch", "tiny,tiny", "--manifest", str(manifest), "--detector", "auto"])
    assert result.exit_code == 0, result.output
    assert "recall" in result.stdout


def test_evaluate_runs_several_architectures(tiny_arch, tmp_path):
    folder = tmp_path / "faces"
    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70)):
        write_jpeg(folder / f"{age}_{k % 2}_1_2017010{k}12345678.jpg", seed=k, size=32)
    from tiny_arch import Tiny

    from agegender_cli.archs import registry

    registry.register(Tiny("tiny2", bias=0.3))
    try:
        result = runner.invoke(app, ["evaluate", "--arch", "tiny,tiny2", "--images", str(folder), "--json"])
    finally:
        registry.unregister("tiny2")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["results"]) == {"tiny", "tiny2"} and data["results"]["tiny"]["n"] == 8


@pytest.mark.integration
def test_a_labels_file_evaluates_in_one_command(tiny_arch, tmp_path, shared_utkface):
    """`compare --labels FILE --detector auto`: every labelled photo, found-rate, gender per age class; the labels
    file is an input the report may not replace."""
    crops = sorted(shared_utkface.glob("*.jpg"))[:8]
    rows = ["path,age,gender"]
    for name, age, gender in chips_in_photos(tmp_path / "photos", crops, 400, 500, (60, 10)):
        rows.append(f"{name},{age},{('male', 'female')[int(gender)]}")
    save(tmp_path / "photos" / "empty.jpg", np.full((400, 500, 3), 128, np.uint8))
    rows += ["photos/empty.jpg,30,female", "photos/missing.jpg,30,male"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["compare", "--arch", "tiny,tiny", "--labels", str(tmp_path / "labels.csv"),
                                 "--detector", "auto", "--pick", "centre", "--bootstrap", "50", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["detection"]["photos"] == 9 and data["detection"]["found"] == 8
    assert data["detection"]["pick"] == "centre"
    assert data["provenance"]["data"]["labels"]["path"].endswith("labels.csv")
    assert "age class" in data["results"]["tiny"]["groups"]
    refused = runner.invoke(app, ["compare", "--arch", "tiny", "--labels", str(tmp_path / "labels.csv"),
                                  "--report", str(tmp_path / "labels.csv")])
    assert refused.exit_code != 0 and "labels.csv" in refused.output


@pytest.mark.parametrize("where", ["/dev/zero", "folder", "missing.csv"])
def test_a_labels_path_that_is_not_a_file_says_what_it_is(tmp_path, where):
    (tmp_path / "folder").mkdir()
    target = where if where.startswith("/") else str(tmp_path / where)
    result = runner.invoke(app, ["dataset", str(tmp_path), "--labels", target, "--out", str(tmp_path / "ds")])
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    expected = "no such file" if where == "missing.csv" else "not a regular file"
    assert expected in said and "give the labels CSV/TSV file" in said


def test_a_quote_left_open_in_a_labels_file_is_named(tmp_path):
    """An unterminated quote swallows the rest of the file into one path (once: "File name too long")."""
    save(tmp_path / "imgs" / "a.png", faces(1)[0])
    rows = "".join(f"imgs/x{i}.png,male\n" for i in range(400))
    (tmp_path / "labels.csv").write_text('path,gender\n"imgs/a.png,male\n' + rows)
    result = runner.invoke(app, ["dataset", str(tmp_path / "imgs"), "--labels", str(tmp_path / "labels.csv"),
                                 "--out", str(tmp_path / "ds")])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "a quote left open in the label file?" in said and "too long" not in said


def test_figure_paths_are_messages_that_quiet_silences(tiny_arch, tmp_path):
    """`report:` and `figure:` lines went to stdout, among the results, even under -q."""
    folder = tmp_path / "faces"
    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70)):
        write_jpeg(folder / f"{age}_{k % 2}_1_2017010{k}12345678.jpg", seed=k, size=32)
    base = ["evaluate", "--arch", "tiny", "--images", str(folder), "--bootstrap", "20"]
    said = runner.invoke(app, [*base, "--plots", str(tmp_path / "figures")])
    assert said.exit_code == 0, said.output
    assert "figure:" in said.stderr and "figure:" not in said.stdout
    quiet = runner.invoke(app, [*base, "--plots", str(tmp_path / "figures2"), "--quiet"])
    assert quiet.exit_code == 0 and "figure:" not in quiet.stdout + quiet.stderr
    assert list((tmp_path / "figures2").iterdir())


def test_gaps_keep_on_a_labels_file_keeps_years_without_a_class(tmp_path):
    """`dataset --labels ... --gaps keep` gave ages between the classes the nearest class, as --gaps nearest does."""
    rows = ["path,age,gender"]
    for k, age in enumerate((3, 30, 35, 60)):
        write_jpeg(tmp_path / "imgs" / f"a{age}.jpg", seed=k)
        rows.append(f"a{age}.jpg,{age},{k % 2}")
    (tmp_path / "imgs" / "labels.csv").write_text("\n".join(rows) + "\n")

    def manifest(gaps: str) -> dict[str, tuple[str, str]]:
        out = tmp_path / gaps
        run_dataset(str(tmp_path / "imgs"), "--labels", str(tmp_path / "imgs" / "labels.csv"), "--gaps", gaps,
                    "--out", str(out), "--duplicates", "ignore")
        lines = (out / "manifest.csv").read_text().splitlines()[1:]
        return {Path(line.split(",")[0]).name: tuple(line.split(",")[i] for i in (1, 4)) for line in lines}

    assert manifest("keep") == {"a3.jpg": ("3", ""), "a30.jpg": ("30", "4"), "a35.jpg": ("35", ""),
                                "a60.jpg": ("60", "7")}
    assert manifest("nearest")["a3.jpg"] == ("3", "1") and manifest("nearest")["a35.jpg"] == ("35", "5")
    assert manifest("drop")["a35.jpg"] == ("", "")


def test_split_all_evaluates_every_image_of_a_manifest(tiny_arch, tmp_path):
    """A user could not evaluate every image of their own set: splits were only train, val or test."""
    rows = ["path,age,gender,race,age_class,split"]
    for k, split in enumerate(("train", "val", "test", "test", "val", "train")):
        write_jpeg(tmp_path / f"{k}.jpg", seed=k, size=32)
        rows.append(f"{tmp_path / f'{k}.jpg'},30,{k % 2},0,4,{split}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    counts = {}
    for split in ("test", "all"):
        result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(tmp_path / "manifest.csv"),
                                     "--split", split, "--bootstrap", "20", "--json"])
        assert result.exit_code == 0, result.output
        counts[split] = json.loads(result.stdout)["results"]["tiny"]["n"]
    assert counts == {"test": 2, "all": 6}
