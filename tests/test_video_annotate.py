"""`predict VIDEO --annotate DIR`: an annotated video of the same kind at the sampled rate; records carry
the frame's time; the progress bar counts frames."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.config import ModelOptions, PredictConfig
from agegender_cli.faces.inputs import expand_inputs, expected_frames
from agegender_cli.progress import Reporter

runner = CliRunner()
FACE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def make_video(path: Path, frames: int = 20, fps: float = 10.0, codec: str = "mp4v") -> Path:
    """A face pasted on a grey canvas, moving right by 4 pixels a frame."""
    face = cv2.resize(cv2.imread(str(FACE)), (96, 96))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (240, 160))
    for k in range(frames):
        canvas = np.full((160, 240, 3), 127, np.uint8)
        canvas[32:128, 20 + 4 * k: 116 + 4 * k] = face
        writer.write(canvas)
    writer.release()
    return path


def video_facts(path: Path) -> tuple[int, float, str]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    count = 0
    while capture.grab():
        count += 1
    fps = capture.get(cv2.CAP_PROP_FPS)
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
    capture.release()
    return count, fps, "".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4))


# FFmpeg reads MPEG-4 part 2 back as FMP4 whichever tag wrote it
@pytest.mark.parametrize("suffix, codec, read_as", [(".mp4", "mp4v", {"mp4v", "fmp4"}), (".avi", "MJPG", {"mjpg"})])
def test_annotated_video_of_the_same_kind_at_the_sampled_rate(tiny_arch, tmp_path, suffix, codec, read_as):
    video = make_video(tmp_path / f"clip{suffix}", codec=codec)
    out, table = tmp_path / "annotated", tmp_path / "faces.csv"
    result = runner.invoke(app, ["predict", str(video), "--arch", "tiny", "--detector", "none", "--every", "2",
                                 "--annotate", str(out), "--csv", str(table), "--json"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == [f"clip{suffix}"]  # one video, no per-frame images, no temp file
    count, fps, fourcc = video_facts(out / f"clip{suffix}")
    assert count == 10 and fps == pytest.approx(5.0) and fourcc.lower() in read_as
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(0, 20, 2))
    assert [r["time"] for r in records] == [round(k / 10, 3) for k in range(0, 20, 2)]
    assert list(records[0])[:3] == ["file", "frame", "time"]
    rows = list(csv.DictReader(table.open()))
    assert [float(r["time"]) for r in rows] == [r["time"] for r in records]
    assert "10 faces in 10 images/frames" in result.stderr


def test_photos_keep_annotated_images_and_have_no_time(tiny_arch, tmp_path):
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 90, np.uint8))
    result = runner.invoke(app, ["predict", str(image), "--arch", "tiny", "--detector", "none", "--json",
                                 "--annotate", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert "time" not in record and record["frame"] is None
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo.jpg"]


class Totals(Reporter):
    def __init__(self) -> None:
        self.totals: list[int | None] = []
        self.steps = 0

    def start(self, description: str, total: int | None = None) -> None:
        self.totals.append(total)

    def advance(self, steps: int = 1, **fields: object) -> None:
        self.steps += steps


def test_progress_counts_frames(tiny_arch, tmp_path):
    from agegender_cli import service

    video = make_video(tmp_path / "clip.avi", frames=20, codec="MJPG")
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 90, np.uint8))
    assert expected_frames(expand_inputs([str(video), str(image)]), every=3) == 7 + 1
    reporter = Totals()
    service.predict(PredictConfig(inputs=(str(video), str(image)), archs=("tiny",), detector="none", every=3),
                    lambda row: None, reporter)
    assert reporter.totals[-1] == 8 and reporter.steps == 8


def test_a_failed_run_leaves_no_half_video(tiny_arch, tmp_path):
    from agegender_cli import service

    video = make_video(tmp_path / "clip.mp4")
    out = tmp_path / "annotated"
    seen = []

    def emit(row: dict) -> None:
        seen.append(row)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        service.predict(PredictConfig(inputs=(str(video),), archs=("tiny",), detector="none", annotate=out, every=1,
                                      options=ModelOptions(batch_size=2)), emit)
    assert list(out.iterdir()) == []
