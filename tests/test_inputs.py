"""Input expansion (files, folders, globs, stdin, videos) and the frame decoding pipeline."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from agegender_cli.errors import AgeGenderError
from agegender_cli.faces import inputs
from agegender_cli.faces.annotate import write_image_atomic
from agegender_cli.faces.inputs import DECODE_ERROR, Frame, InputItem, expand_inputs, iter_frames


def write_image(path: Path, value: int = 100, shape=(24, 32, 3)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def write_video(path: Path, n_frames: int, size=(64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), i * 20, np.uint8))
    writer.release()
    return path


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "photos/b.jpg")
    write_image(tmp_path / "photos/a.png")
    write_image(tmp_path / "photos/sub/c.JPG")
    write_image(tmp_path / "photos/.hidden/d.jpg")
    write_image(tmp_path / "photos/._e.jpg")
    (tmp_path / "photos/notes.txt").write_text("not a photo")
    (tmp_path / "empty").mkdir()
    return tmp_path


def paths(items: list[InputItem]) -> list[str]:
    return [item.path for item in items]


def test_folder_is_expanded_recursively_sorted_media_only(tree):
    items = expand_inputs(["photos"])
    assert paths(items) == ["photos/a.png", "photos/b.jpg", "photos/sub/c.JPG"]
    assert {item.kind for item in items} == {"image"}


def test_globs_match_files_and_recurse_with_double_star(tree):
    assert paths(expand_inputs(["photos/*.jpg"])) == ["photos/b.jpg"]
    assert paths(expand_inputs(["photos/**/*.[jJ]*"])) == ["photos/b.jpg", "photos/sub/c.JPG"]
    (missing,) = expand_inputs(["photos/*.gif"])
    assert missing.kind == "error" and "match" in missing.error


def test_stdin_lists_paths(tree):
    stdin = io.StringIO("photos/b.jpg\r\n\nphotos/sub\nnope.jpg\n")
    items = expand_inputs(["-"], stdin=stdin)
    assert paths(items) == ["photos/b.jpg", "photos/sub/c.JPG", "nope.jpg"]
    assert items[-1].kind == "error"


def test_missing_and_empty_inputs_are_items_with_errors(tree):
    missing, empty = expand_inputs(["nope.jpg", "empty"])
    assert missing == InputItem("nope.jpg", "error", "no such file or folder")
    assert empty.kind == "error" and "no images" in empty.error


def test_duplicates_are_dropped_and_explicit_files_kept(tree):
    items = expand_inputs(["photos/b.jpg", "photos", "photos/notes.txt"])
    assert paths(items) == ["photos/b.jpg", "photos/a.png", "photos/sub/c.JPG", "photos/notes.txt"]


def test_video_extensions_make_video_items(tree):
    write_video(tree / "clip.avi", 3)
    (tree / "film.MP4").write_bytes(b"")
    assert [item.kind for item in expand_inputs(["clip.avi", "film.MP4"])] == ["video", "video"]


def test_frames_of_images_with_errors_in_between(tree):
    (tree / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    (tree / "blank.jpg").write_bytes(b"")
    items = expand_inputs(["photos/a.png", "corrupt.jpg", "blank.jpg", "nope.jpg", "photos/notes.txt", "photos/b.jpg"])
    frames = list(iter_frames(items, workers=2))
    assert [f.source for f in frames] == paths(items)
    assert [f.error for f in frames] == [None, DECODE_ERROR, DECODE_ERROR, "no such file or folder", DECODE_ERROR, None]
    assert frames[0].image.shape == (24, 32, 3) and frames[0].index is None
    assert all(f.image is None for f in frames if f.error)


def test_grayscale_and_rgba_become_bgr(tmp_path):
    write_image(tmp_path / "gray.png", 7, shape=(5, 6))
    write_image(tmp_path / "rgba.png", 9, shape=(5, 6, 4))
    frames = list(iter_frames(expand_inputs([str(tmp_path)]), workers=1))
    assert [f.image.shape for f in frames] == [(5, 6, 3), (5, 6, 3)]
    assert frames[0].image.dtype == np.uint8 and int(frames[0].image[0, 0, 0]) == 7


def test_video_yields_every_nth_frame(tmp_path):
    video = write_video(tmp_path / "clip.avi", 10)
    frames = list(iter_frames(expand_inputs([str(video)]), every=3))
    assert [f.index for f in frames] == [0, 3, 6, 9]
    assert [round(float(f.image.mean()) / 20) for f in frames] == [0, 3, 6, 9]
    assert all(f.source == str(video) and f.error is None for f in frames)


def test_unreadable_video_yields_one_error_frame_and_goes_on(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(np.random.default_rng(1).bytes(5000))
    image = write_image(tmp_path / "z.jpg")
    frames = list(iter_frames(expand_inputs([str(tmp_path / "broken.mp4"), str(image)])))
    assert len(frames) == 2 and frames[0].error.startswith("cannot") and frames[0].image is None
    assert frames[1].error is None


def test_order_is_kept_when_later_files_decode_faster(tmp_path, monkeypatch):
    for i in range(12):
        write_image(tmp_path / f"{i:02d}.png", i)
    read = inputs.read_image_frame

    def slow_first(path: str) -> Frame:
        time.sleep(0.05 if path.endswith(("00.png", "03.png")) else 0)
        return read(path)

    monkeypatch.setattr(inputs, "read_image_frame", slow_first)
    frames = list(iter_frames(expand_inputs([str(tmp_path)]), workers=4))
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(12))


def test_decoding_runs_ahead_but_stays_bounded(tmp_path, monkeypatch):
    images = [str(write_image(tmp_path / f"{i:03d}.png")) for i in range(50)]
    decoded = []
    monkeypatch.setattr(inputs, "read_image_frame", lambda path: decoded.append(path) or Frame(path, None, None))
    frames = iter_frames([InputItem(p, "image") for p in images], workers=2, ahead=3)
    next(frames)
    time.sleep(0.3)
    assert len(decoded) == 3  # the frame in hand and two more decoded ahead, no further
    frames.close()


def test_a_long_video_is_read_through_a_bounded_queue_and_stops_on_close(monkeypatch):
    produced = []

    def endless(path: str, *, every: int):
        for i in range(100_000):
            produced.append(i)
            yield Frame(path, i * every, None)

    monkeypatch.setattr(inputs, "read_video", endless)
    frames = iter_frames([InputItem("v.mp4", "video")], every=2)
    assert next(frames).index == 0
    time.sleep(0.3)
    assert len(produced) <= inputs.VIDEO_QUEUE + 2
    started = time.monotonic()
    frames.close()
    assert time.monotonic() - started < 2
    assert not any(t.name.startswith("decode") for t in threading.enumerate())


def test_every_must_be_positive():
    with pytest.raises(ValueError):
        next(iter_frames([InputItem("a.jpg", "image")], every=0))


def test_non_ascii_paths_write_atomically_and_read_back(tmp_path):
    target = tmp_path / "фото é" / "лицо.jpg"
    write_image_atomic(target, np.full((20, 30, 3), 200, np.uint8))
    write_image_atomic(target, np.full((20, 30, 3), 40, np.uint8))  # replaces the first one
    (frame,) = iter_frames(expand_inputs([str(target.parent)]))
    assert frame.error is None and abs(float(frame.image.mean()) - 40) < 3
    assert [p.name for p in target.parent.iterdir()] == ["лицо.jpg"]  # no temp file left behind


def test_write_image_atomic_refuses_an_unknown_extension(tmp_path):
    with pytest.raises(AgeGenderError, match="extension"):
        write_image_atomic(tmp_path / "out.xyz", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
