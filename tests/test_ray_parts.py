"""The parts of `predict --ray` that need no cluster: shards, shipped weights, actor shapes, the journal and the
streamed listing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from agegender_cli.config import ModelOptions
from agegender_cli.distributed import shards, weights
from agegender_cli.distributed.cluster import ActorShape, Node, actor_shape, import_ray
from agegender_cli.errors import AgeGenderError
from agegender_cli.labels import AGE_CLASSES

pytest.importorskip("pyarrow")
FACE = {"file": "a/x.jpg", "frame": None, "face": 0, "box": [1, 2, 30, 40], "score": 0.9987,
        "tiny": {"gender": "female", "gender_prob": 0.75, "p_female": 0.75, "age": "25-32", "age_prob": 0.5,
                 "age_probs": {age: (0.5 if age == "25-32" else 0.5 / 7) for age in AGE_CLASSES}}}
NO_FACE = {"file": "b.png", "frame": 30, "face": None, "box": None, "score": None, "note": "no face found"}
VIDEO_FACE = {"file": "clip.mp4", "frame": 12, "time": 0.48,
              **{k: v for k, v in FACE.items() if k not in ("file", "frame")}}
ERROR = {"file": "bad\\xff.jpg", "frame": None, "error": "cannot decode image: not an image or corrupt file"}


def test_a_shard_is_named_by_its_records_whatever_their_order():
    keys = ["000000000001:-00000000001:000000:f", "000000000000:000000000030:-00001:f"]
    assert shards.shard_name(keys, "jsonl") == shards.shard_name(reversed(keys), "jsonl")
    assert shards.shard_name(keys[:1], "jsonl") != shards.shard_name(keys, "jsonl")
    assert shards.SHARD_NAME.fullmatch(shards.shard_name(keys, "parquet"))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_shards_read_back_as_the_records_written(tmp_path, fmt):
    shards.write_shard(tmp_path, shards.shard_name(["k"], fmt), [FACE, VIDEO_FACE, NO_FACE, ERROR], fmt, ("tiny",))
    assert shards.read_shards(tmp_path) == [FACE, VIDEO_FACE, NO_FACE, ERROR]  # a video frame keeps its time
    assert [p.name for p in tmp_path.iterdir()] == [shards.shard_name(["k"], fmt)]  # no temp file left


def test_only_shards_not_kept_are_removed(tmp_path):
    ours, stale = shards.shard_name(["a"], "jsonl"), shards.shard_name(["b"], "parquet")
    half, journal, success = f".{ours}.k3j4h5.tmp", "._journal.jsonl.a1b2c3.tmp", f".{shards.SUCCESS}.x9y8.tmp"
    for name in (ours, stale, half, journal, success, "part-notahash.jsonl", "photo.jpg", shards.SUCCESS):
        (tmp_path / name).write_text("x")
    assert sorted(shards.remove_other_shards(tmp_path, [ours])) == sorted([stale, half, journal, success])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ours, "part-notahash.jsonl", "photo.jpg",
                                                                 shards.SUCCESS])


def test_the_journal_tells_whole_inputs_and_half_done_videos_and_drops_unfinished_shards(tmp_path):
    from agegender_cli.distributed.journal import Done, Journal

    job = {"archs": ["tiny"], "detector": "none"}
    journal = Journal(tmp_path)
    journal.start(job)
    for shard, units in (("part-a.jsonl", [["photo", 0, True], ["clip", 0, False]]),
                         ("part-b.jsonl", [["clip", 1, False]]), ("part-gone.jsonl", [["lost", 0, True]])):
        (tmp_path / shard).write_text("{}\n")
        journal.append({"shard": shard, "units": units, "records": 1})
    journal.close()
    (tmp_path / "part-gone.jsonl").unlink()  # a shard deleted since: its inputs are to be done again
    with open(journal.path, "a") as f:
        f.write('{"shard": "part-c.jsonl", "units": [["cl')  # a writer stopped half way through a line
    done = Journal(tmp_path).resume(job)
    assert done.skip("photo") is None and done.skip("clip") == [0, 1] and done.skip("lost") == []
    assert done.shards == ["part-a.jsonl", "part-b.jsonl"] and done.inputs == 1
    assert [e["shard"] for e in done.entries] == done.shards and "units" not in done.entries[0]
    assert Journal(tmp_path).resume(job).shards == done.shards  # the rewritten journal reads the same
    with pytest.raises(AgeGenderError, match="other settings .*detector 'none' -> 'mtcnn'"):
        Journal(tmp_path).resume({**job, "detector": "mtcnn"})
    finished = Done()
    finished.add([["clip", 2, True], ["clip", 0, False], ["clip", 1, False]])
    assert finished.skip("clip") is None and finished.inputs == 1


def test_the_listing_is_streamed_once_each_and_skips_what_is_done(tmp_path, monkeypatch):
    import json
    import os

    from agegender_cli.distributed import listing as listing_module
    from agegender_cli.distributed.journal import Done, input_key
    from agegender_cli.faces.inputs import walk_inputs

    photos = tmp_path / "photos"
    for name in ("a.jpg", "b.png", "sub/c.jpg", ".hidden/d.jpg", "notes.txt"):
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        (photos / name).write_bytes(b"x")
    monkeypatch.setattr(listing_module, "PATHS_PER_FILE", 2)
    done = Done()
    done.add([[input_key(os.path.realpath(photos / "b.png")), 0, True]])
    problems: list[str] = []
    specs = [str(photos), str(photos / "a.jpg"), str(tmp_path / "missing.jpg")]
    out = tmp_path / "out"
    out.mkdir()
    listed = listing_module.write_listing(walk_inputs(specs), out, done, problems.append, specs)
    assert (listed.files, listed.to_do, listed.done_before, listed.missing) == (4, 3, 1, 1)
    lines = [json.loads(line) for f in sorted(listed.folder.iterdir()) for line in f.read_text().splitlines()]
    assert len(list(listed.folder.iterdir())) == 2  # two paths a file
    assert [Path(x["path"]).name for x in lines] == ["a.jpg", "c.jpg", "missing.jpg"]
    assert [x["kind"] for x in lines] == ["image", "image", "error"] and problems[0].endswith("no such file or folder")
    with pytest.raises(AgeGenderError, match="is an input or holds input images"):
        listing_module.write_listing(walk_inputs([str(photos)]), photos, Done(), problems.append, [str(photos)])
    with pytest.raises(AgeGenderError, match="--summary-plot .*a.jpg is one of the inputs"):
        listing_module.write_listing(walk_inputs([str(photos)]), out, Done(), problems.append, [str(photos)],
                                     {"--summary-plot": photos / "a.jpg"})


def test_weights_are_unpacked_once_per_machine_and_the_options_point_at_them(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    backbone = tmp_path / "given" / "vggface2.pt"
    backbone.parent.mkdir()
    backbone.write_bytes(b"backbone bytes")
    model = tmp_path / "given" / "caffe_model"
    (model / "sub").mkdir(parents=True)
    (model / "age_net.caffemodel").write_bytes(b"age")
    (model / "sub" / "note.txt").write_bytes(b"nested")
    options = ModelOptions(models=(("caffenet", model),), weights=(("backbone_weights", backbone),), batch_size=8)
    layout, packed = weights.pack(options)
    fetched = []

    def fetch():
        fetched.append(1)
        return packed

    local = weights.unpack(layout, fetch, options)
    again = weights.unpack(layout, fetch, options)
    assert local == again and fetched == [1]  # the second actor on the machine finds the copy
    shipped_backbone = local.weight("backbone_weights")
    assert shipped_backbone.read_bytes() == b"backbone bytes" and shipped_backbone.name == "vggface2.pt"
    shipped = local.model_for("caffenet")
    assert (shipped / "age_net.caffemodel").read_bytes() == b"age" and (shipped / "sub" / "note.txt").is_file()
    assert shipped.is_relative_to(tmp_path / "home") and local.batch_size == 8 and local.weight("caffe_weights") is None
    nothing, _ = weights.pack(ModelOptions())
    assert weights.unpack(nothing, fetch, ModelOptions()) == ModelOptions() and fetched == [1]


def test_actor_shape_takes_one_actor_per_cpu_of_each_node_or_one_per_gpu():
    two_nodes = [Node(2.0, 8 * 2**30), Node(4.0, 8 * 2**30)]
    assert actor_shape({"CPU": 6.0}, 0, two_nodes) == ActorShape(6, 0, 0.95, 3)
    assert actor_shape({"CPU": 2.0}, 0) == ActorShape(2, 0, 0.95, 2)
    assert actor_shape({"CPU": 16.0}, 2, [Node(16.0, 0)]) == ActorShape(2, 0, 0.95, 2)
    assert actor_shape({"CPU": 32.0, "GPU": 2.0}, 0, [Node(16, 0), Node(16, 0)]) == ActorShape(2, 1, 0.95, 1)
    assert actor_shape({"CPU": 32.0, "GPU": 2.0}, 4) == ActorShape(2, 1, 0.95, 2)
    assert actor_shape({"CPU": 8.0}, 0, [Node(8.0, 3 * 2**30)]).count == 3  # memory for three


def test_actor_shape_never_asks_for_more_actors_than_the_cluster_holds():
    """--ray-actors 10000 on 2 CPUs waited forever for actors that could never start."""
    heard: list[str] = []
    from agegender_cli.progress import Reporter

    class Heard(Reporter):
        def message(self, text: str) -> None:
            heard.append(text)

    assert actor_shape({"CPU": 2.0}, 10_000, reporter=Heard()).count == 2
    assert heard == ["the cluster has 2 CPUs: 2 model actors instead of 10000"]
    assert actor_shape({"CPU": 64.0, "memory": 3 * 2**30}, 40).count == 3  # memory for three
    assert actor_shape({"CPU": 1.0}, 8).count == 1  # always one


def test_an_address_where_nothing_listens_is_refused_at_once():
    """ray.init retried 127.0.0.1:1 without end (and through another address)."""
    import socket
    import time

    from agegender_cli.distributed.cluster import reachable
    from agegender_cli.errors import AgeGenderError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(AgeGenderError, match="no Ray cluster answers there"):
        reachable(f"127.0.0.1:{port}")
    with pytest.raises(AgeGenderError, match="no Ray cluster answers there"):
        reachable(f"ray://127.0.0.1:{port}")
    with pytest.raises(AgeGenderError, match="not HOST:PORT"):
        reachable("127.0.0.1")
    assert time.monotonic() - started < 2
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        reachable(f"127.0.0.1:{listening.getsockname()[1]}")  # something answers: Ray takes it from there


def test_without_ray_the_run_stops_with_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(AgeGenderError, match=r"pip install 'agegender\[ray\]'"):
        import_ray()


def test_joining_a_cluster_that_never_answers_ends_at_its_limit(monkeypatch):
    """ray.init retries an address where something other than Ray listens for ever."""
    import threading
    import time

    from agegender_cli.distributed.cluster import _bounded
    from agegender_cli.errors import AgeGenderError

    monkeypatch.setenv("AGEGENDER_RAY_JOIN_S", "0.5")
    never = threading.Event()
    started = time.monotonic()
    with pytest.raises(AgeGenderError, match="no Ray cluster joined within 0.5 s"):
        _bounded(lambda: never.wait(60), "127.0.0.1:6379")
    assert time.monotonic() - started < 2
    never.set()
    with pytest.raises(ConnectionError):  # what ray.init raises reaches connect(), which words it
        _bounded(lambda: (_ for _ in ()).throw(ConnectionError("refused")), "127.0.0.1:6379")


def _video(path: Path, frames: int) -> Path:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for k in range(frames):
        writer.write(np.full((48, 64, 3), 8 * k % 256, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("frames", [5, 8, 12])
def test_a_video_is_cut_in_runs_of_frames_the_last_marked_once_and_a_resume_skips_the_finished(tmp_path, frames):
    """A video in units of `batch` frames, handed on as each is done; a resumed job decodes it again but detects
    and answers only the runs it had not finished, so every frame has exactly one record in the end."""
    import json

    from agegender_cli.distributed.journal import input_key
    from agegender_cli.distributed.ray_predict import FaceSearch, find_faces
    from agegender_cli.limits import current_limits

    clip = str(_video(tmp_path / "clip.avi", frames))
    search = FaceSearch("none", 20, 0.9, 1, (("facenet", "utkface"),), current_limits(), 4)

    def units(skip: list[int]) -> list[tuple[int, bool, list]]:
        line = json.dumps({"path": clip, "key": input_key(clip), "name": "clip.avi", "kind": "video", "error": "",
                           "skip": skip})
        return [(unit.chunk, unit.last, [r["frame"] for r in unit.records])
                for block in find_faces([line], search) for unit in block.units]

    whole = units([])
    runs = -(-frames // 4)
    assert [(c, last) for c, last, _ in whole] == [(c, c == runs - 1) for c in range(runs)]
    assert [f for _, _, seen in whole for f in seen] == list(range(frames))
    resumed = units([0])  # the first run was journaled before the stop
    assert [c for c, _, _ in resumed] == list(range(1, runs))
    assert sorted(f for _, _, seen in whole[:1] + resumed for f in seen) == list(range(frames))


def test_a_listing_folder_or_journal_agegender_did_not_write_is_refused(tmp_path):
    from agegender_cli.distributed.journal import Done, Journal
    from agegender_cli.distributed.listing import write_listing

    (tmp_path / "_inputs").mkdir()
    (tmp_path / "_inputs" / "mine.txt").write_text("keep me")
    with pytest.raises(AgeGenderError, match="_inputs folder holds files agegender did not write"):
        write_listing(iter(()), tmp_path, Done(), print)
    assert (tmp_path / "_inputs" / "mine.txt").read_text() == "keep me"
    (tmp_path / "_journal.jsonl").write_text("my notes\n")
    with pytest.raises(AgeGenderError, match="_journal.jsonl there is not agegender's"):
        Journal(tmp_path).start({"archs": ["tiny"]})
    assert (tmp_path / "_journal.jsonl").read_text() == "my notes\n"


def test_the_last_calls_are_short_so_that_no_actor_is_left_alone_at_work():
    from agegender_cli.distributed.ray_predict import _chunks

    lines = [str(n) for n in range(100)]
    chunks = list(_chunks(iter(lines), 16, 100 - 64))
    assert [line for chunk in chunks for line in chunk] == lines
    assert [len(c) for c in chunks[:2]] == [16, 16] and max(len(c) for c in chunks[2:]) <= 5
    assert [len(c) for c in _chunks(iter(lines), 16, 200)] == [16] * 6 + [4]


def test_a_local_ray_that_cannot_start_for_a_missing_token_file_says_so_in_one_line(tmp_path):
    """RAY_AUTH_TOKEN_PATH left naming a file since removed (a stopped cluster's) stopped the run as an internal
    error."""
    import subprocess

    listing = tmp_path / "paths.txt"
    listing.write_text("")
    env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "gone-token"), "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-m", "agegender_cli", "predict", str(tmp_path / "photo.jpg"), "--ray",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot start a local Ray: RAY_AUTH_TOKEN_PATH is set but file cannot be opened")
    assert "Traceback" not in done.stderr


def test_a_job_stopped_for_waiting_on_ray_resumes_with_a_longer_wait(tmp_path):
    """The stall error says to raise AGEGENDER_RAY_STALL_S and rerun with --resume: the journal must take it."""
    import dataclasses

    from agegender_cli.config import Limits, PredictConfig, RayConfig
    from agegender_cli.distributed.ray_predict import FaceSearch, _job_settings

    def settings(limits: Limits) -> dict:
        search = FaceSearch("none", 20, 0.9, 1, (("facenet", "utkface"),), limits, 16)
        return _job_settings(PredictConfig(), RayConfig(), search, type("Layout", (), {"digest": "0" * 64})())

    limits = Limits()
    assert settings(limits) == settings(dataclasses.replace(limits, ray_stall_s=7200, ray_join_s=5))
    assert settings(limits) != settings(dataclasses.replace(limits, detect_max_side=1000))
