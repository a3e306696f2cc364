"""`agegender predict --ray`: the records of local `predict`, computed by Ray Data on a cluster (or a local Ray).

The inputs are streamed into listing files under --out; CPU tasks read them, decode the photos and videos and
find and crop the faces, one row per photo (or per run of a video's frames); a pool of model actors (one per CPU
of each node, or one per GPU) runs the models; CPU tasks write the records as shards, and the driver
journals each finished shard so that `--resume` continues a stopped job.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import predict_all
from agegender_cli.config import Limits, ModelOptions, PredictConfig, RayConfig
from agegender_cli.distributed import shards, weights
from agegender_cli.distributed.cluster import DECODE_CPUS, ActorShape, actor_shape, connect, cpu_nodes, import_ray
from agegender_cli.distributed.journal import Done, Journal
from agegender_cli.distributed.listing import Listing, refuse_input_folder, write_listing
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces import records
from agegender_cli.faces.inputs import InputItem
from agegender_cli.fileio import display
from agegender_cli.progress import SILENT, Reporter

UNITS_PER_BLOCK = 16  # units a decoding task hands on at once
ACTOR_BATCH = 32  # faces an actor answers at once: as fast per face as 64 on ONNX Runtime, and half the wait on
# the last batch while the other actors have finished
STAGES = ("decode_s", "detect_s", "load_s", "infer_s", "write_s")  # seconds the tasks and actors spent, summed


@dataclass(frozen=True)
class FaceSearch:
    """What the CPU tasks need to turn a path into records and crops: all plain values, sent to every task."""

    detector: str
    min_face: int
    min_score: float
    every: int
    framings: tuple[tuple[str, str], ...]  # (architecture, framing)
    limits: Limits  # the driver's, so that every machine applies the same ones
    batch: int  # video frames searched for faces at once: one unit of work (and of --resume)


def predict_on_ray(cfg: PredictConfig, ray_cfg: RayConfig, items: Iterable[InputItem],
                   reporter: Reporter = SILENT) -> dict:
    """Run `predict` on the inputs as a Ray Data job; returns the summary also written to --out/_SUCCESS."""
    from agegender_cli.archs import registry
    from agegender_cli.fileio import atomic_write_text, make_folder
    from agegender_cli.limits import current_limits

    ray = import_ray()
    if ray_cfg.out is None:
        raise AgeGenderError("--ray writes shards: give --out DIR")
    refuse_input_folder(ray_cfg.out, cfg.inputs)
    out = make_folder(ray_cfg.out, "--out").resolve()
    started = time.monotonic()
    options = cfg.options
    for arch in cfg.archs:
        options = registry.resolve_weights(arch, options, reporter.message)
    layout, packed = weights.pack(options)
    search = FaceSearch(cfg.detector, cfg.min_face, cfg.min_score, cfg.every,
                        tuple((arch, registry.framing(arch, cfg.detector, cfg.options)) for arch in cfg.archs),
                        current_limits(), ray_cfg.images_per_task)
    journal = Journal(out)
    done = _earlier_work(journal, _job_settings(cfg, ray_cfg, search, layout), ray_cfg.resume, reporter)
    (out / shards.SUCCESS).unlink(missing_ok=True)  # the folder is not a finished result until the end
    timing = {"weights_s": time.monotonic() - started}
    listed = time.monotonic()
    listing = write_listing(items, out, done, reporter.problem, cfg.inputs, {"--summary-plot": cfg.summary_plot})
    if not listing.files:
        raise AgeGenderError("no input: give image files, folders, globs, videos or - for paths on stdin")
    timing["listing_s"] = time.monotonic() - listed
    new: list[dict] = []
    owned = False
    try:
        if listing.to_do:
            begun = time.monotonic()
            owned = connect(ray, ray_cfg, reporter)
            timing["connect_s"] = time.monotonic() - begun
            nodes = cpu_nodes(ray.nodes())
            actors = actor_shape(ray.cluster_resources(), ray_cfg.actors, nodes, reporter)
            packed_ref = ray.put(packed)
            del packed
            begun = time.monotonic()
            job_epoch = time.time()
            job = (listing, search, options, layout, packed_ref, out, ray_cfg, cfg.archs, actors)
            if _through_ray_client(ray):
                # Ray Data's executor cannot run in a Ray Client driver: a task on the cluster runs it and journals
                reporter.message("Ray Client: the job runs in a task on the cluster (no progress bar)")
                # not retried: a rerun would journal its shards again
                new = ray.get(ray.remote(num_cpus=DECODE_CPUS, max_retries=0)(_run_and_journal).remote(*job))
            else:
                reporter.start("inputs", listing.to_do)
                new = list(_journaled(_job(ray, *job), journal, reporter))
                reporter.finish()
            timing["job_s"] = time.monotonic() - begun
            if new:  # none where every unit listed had been finished (a video shorter than before)
                timing["actor_started_s"] = min(e["timing"]["actor_started"] for e in new) - job_epoch
                timing["actor_ready_s"] = min(e["timing"]["actor_ready"] for e in new) - job_epoch
        else:
            actors = ActorShape(0, 0, 0.0, 0)
            reporter.message(f"every input was finished by an earlier run into {display(out)}")
    finally:
        journal.close()
        if owned:
            ray.shutdown()
    summary = _summary(done.entries + new, cfg.archs, listing)
    removed = shards.remove_other_shards(out, summary["shards"])
    if removed:
        reporter.message(f"removed {len(removed)} shards no finished run of this job holds from {display(out)}")
    _remove_listing(listing)
    timing.update({stage: sum(entry["timing"][stage] for entry in new) for stage in (*STAGES, "batches")})
    summary.update(out=str(out), format=ray_cfg.format, address=ray_cfg.address, actors=actors.count,
                   nodes=len({node for entry in new for node in entry["timing"]["nodes"]}),
                   gpus_per_actor=actors.gpus, actors_per_node=actors.per_node,
                   seconds=round(time.monotonic() - started, 2),
                   timing={k: round(v, 3) for k, v in timing.items()})
    atomic_write_text(out / shards.SUCCESS, json.dumps(summary, indent=2) + "\n")
    return summary


def _job_settings(cfg: PredictConfig, ray_cfg: RayConfig, search: FaceSearch, layout) -> dict:
    """What makes two runs' records differ: a resumed job must be run with the same."""
    from agegender_cli import __version__

    return {"archs": list(cfg.archs), "detector": cfg.detector, "min_face": cfg.min_face,
            "min_score": cfg.min_score, "every": cfg.every, "frames_per_unit": search.batch,
            "format": ray_cfg.format, "weights": layout.digest[:16], "engine": cfg.options.engine,
            "precision": cfg.options.precision, "limits": dataclasses.asdict(search.limits), "version": __version__}


def _earlier_work(journal: Journal, job: dict, resume: bool, reporter: Reporter) -> Done:
    """With --resume, what earlier runs of this job finished; else a fresh journal."""
    if resume and journal.exists():
        done = journal.resume(job)
        reporter.message(f"resuming: {done.inputs:,} inputs finished before, in {len(done.shards):,} shards")
        return done
    if resume:
        reporter.message(f"--resume: no journal in {display(journal.path.parent)}; starting the job")
    journal.start(job)
    return Done()


def _remove_listing(listing: Listing) -> None:
    import shutil

    shutil.rmtree(listing.folder, ignore_errors=True)


def _through_ray_client(ray) -> bool:
    try:
        from ray.util.client import ray as client
    except ImportError:
        return False
    return client.is_connected()


def _journaled(entries, journal: Journal, reporter: Reporter = SILENT) -> Iterator[dict]:
    """Each finished shard journaled as it comes, the inputs it completes counted; its entry without the units."""
    for entry in entries:
        journal.append(entry)
        reporter.advance(sum(1 for _, _, last in entry["units"] if last))
        yield {k: v for k, v in entry.items() if k != "units"}


def _run_and_journal(*job) -> list[dict]:
    """The job run where the cluster is (for a Ray Client driver), journaled there; the journal entries."""
    import ray

    journal = Journal(job[5])
    try:
        return list(_journaled(_job(ray, *job), journal))
    finally:
        journal.close()


def _job(ray, listing: Listing, search: FaceSearch, options: ModelOptions, layout, packed_ref, out: Path,
         ray_cfg: RayConfig, archs: tuple[str, ...], actors: ActorShape):
    """The finished shards, as they are written (the journal entries)."""
    from agegender_cli.archs import registry

    # Faults are Ray's defaults (retry arguments are deprecated in Ray Data): a task whose worker dies is rerun,
    # a model actor that dies is restarted and its batch given to it again.
    context = ray.data.DataContext.get_current()  # our own progress bar and messages instead of Ray Data's
    context.enable_progress_bars = context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    listed = ray.data.read_text(str(listing.folder), file_extensions=["jsonl"], num_cpus=DECODE_CPUS)
    units = listed.map_batches(find_faces, batch_size=ray_cfg.images_per_task, batch_format="numpy",
                               fn_kwargs={"search": search}, num_cpus=actors.cpus)
    scored = units.map_batches(
        ModelActor, batch_size=options.batch_size if actors.gpus else min(options.batch_size, ACTOR_BATCH),
        batch_format="numpy",
        # two batches in flight per actor, not four: the last ones are shared out instead of queueing behind one actor
        compute=ray.data.ActorPoolStrategy(size=actors.count, max_tasks_in_flight_per_actor=2), num_gpus=actors.gpus,
        num_cpus=actors.cpus,
        # the packed weights travel as a reference inside a list: Ray hands the list over without fetching them
        fn_constructor_kwargs={"archs": [registry.get(a) for a in archs], "options": options, "layout": layout,
                               "packed": [packed_ref], "per_node": actors.per_node})
    written = scored.map_batches(
        write_records, batch_size=ray_cfg.shard_inputs, batch_format="numpy",
        fn_kwargs={"out": str(out), "fmt": ray_cfg.format, "archs": archs}, num_cpus=DECODE_CPUS)
    for row in written.iter_rows():
        yield {"shard": str(row["shard"]), "units": json.loads(row["units"]), **json.loads(row["entry"])}


# --------------------------------------------------------------------------- CPU tasks: decode, detect, crop


@lru_cache(maxsize=4)
def _detector(name: str, min_face: int, min_score: float, max_side: int):
    """One detector per worker process (MTCNN loads its nets once, not once per task)."""
    from agegender_cli.faces.detection import make_detector

    return make_detector(name, min_face=min_face, min_score=min_score, max_side=max_side)


def find_faces(batch: Mapping[str, np.ndarray], search: FaceSearch) -> Iterator[dict[str, np.ndarray]]:
    """Listing lines in; one row per unit of work: a photo, a run of `search.batch` frames of a video, or an input
    that could not be read, with its records (models not yet run) and the crops of its faces. Rows are handed on
    a few at a time and after each run of a video's frames: a long video is neither held whole nor lost whole."""
    from agegender_cli.faces.inputs import Frame, read_video

    detector = _detector(search.detector, search.min_face, search.min_score, search.limits.detect_max_side)
    units = _Units(dict(search.framings), detector)
    for line in batch["text"]:
        item = json.loads(str(line))
        path, name, skip = item["path"], item["name"], set(item["skip"])
        units.begin(item["key"], name, skip)
        if item["kind"] == "error":
            units.add(0, [Frame(path, None, None, item["error"])], True)
            continue
        frames = read_video(path, every=search.every) if item["kind"] == "video" else _image(path, search.limits)
        chunk, pending, held = 0, [], None  # held: a full run of frames, until we know whether another follows
        for frame in units.timed(frames):
            pending.append(frame)
            if len(pending) == search.batch:
                if held is not None:
                    units.add(*held, False)
                    yield from units.flush()
                held, pending, chunk = (chunk, pending), [], chunk + 1
        if held is not None:
            units.add(*held, not pending)
        if pending or held is None:
            units.add(chunk, pending, True)
        if len(units) >= UNITS_PER_BLOCK or item["kind"] == "video":
            yield from units.flush()
    yield from units.flush()


def _image(path: str, limits: Limits):
    """A photo as the one frame of its input (read when the frame is taken, so that its decoding is timed)."""
    from agegender_cli.faces.inputs import read_image_frame

    yield read_image_frame(path, limits)


class _Units:
    """The columns find_faces returns, filled a unit at a time."""

    def __init__(self, framings: dict[str, str], detector) -> None:
        self.framings, self.detector = framings, detector
        self.key, self.name, self.skip = "", "", set()
        self.columns_ = {name: [] for name in ("key", "input", "chunk", "last", "records", "frames", "faces")}
        self.crops: dict[str, list[bytes]] = {arch: [] for arch in framings}
        self.decode_s = self.detect_s = 0.0

    def begin(self, key: str, name: str, skip: set[int]) -> None:
        """The next input: its key, its name in the records, the chunks an earlier run finished."""
        self.key, self.name, self.skip = key, name, skip

    def timed(self, frames):
        """The frames, the time spent decoding them added to decode_s."""
        began = time.perf_counter()
        for frame in frames:
            self.decode_s += time.perf_counter() - began
            yield frame
            began = time.perf_counter()
        self.decode_s += time.perf_counter() - began

    def add(self, chunk: int, frames: list, last: bool) -> None:
        """One unit: its frames' records (a face each, or no face, or the frame's error) and its faces' crops."""
        if chunk in self.skip:
            return
        readable = [f for f in frames if f.error is None]
        began = time.perf_counter()
        crops: dict[str, list[np.ndarray]] = {arch: [] for arch in self.framings}
        found_in: dict[int, list] = {}
        if readable:
            detections, _, crops = records.detect_and_crop(readable, self.detector, self.framings)
            found_in = {id(frame): found for frame, found in zip(readable, detections, strict=True)}
        self.detect_s += time.perf_counter() - began
        rows: list[dict] = []
        for frame in frames:
            if frame.error is not None:
                rows.append(records.error_record(self.name, frame.index, frame.error))
                continue
            found = found_in[id(frame)]
            rows += [records.face_record(self.name, frame.index, k, det, {}, frame.time) for k, det in enumerate(found)]
            if not found:
                rows.append(records.no_face_record(self.name, frame.index, frame.time))
        faces = sum(len(found) for found in found_in.values())
        for column, value in (("key", f"{self.key}:{chunk:08d}"), ("input", self.key), ("chunk", chunk),
                              ("last", last), ("records", json.dumps(rows)), ("frames", len(readable)),
                              ("faces", faces)):
            self.columns_[column].append(value)
        for arch in self.framings:
            self.crops[arch].append(_to_bytes(crops[arch]) if faces else b"")

    def __len__(self) -> int:
        return len(self.columns_["key"])

    def flush(self) -> Iterator[dict[str, np.ndarray]]:
        """The units gathered so far, as one block (none when there are none); then start afresh."""
        if len(self):
            yield self.columns()
            for values in (*self.columns_.values(), *self.crops.values()):
                values.clear()
            self.decode_s = self.detect_s = 0.0

    def columns(self) -> dict[str, np.ndarray]:
        kinds = {"key": object, "input": object, "chunk": np.int64, "last": bool, "records": object,
                 "frames": np.int64, "faces": np.int64}
        columns = {name: np.array(values, kinds[name]) for name, values in self.columns_.items()}
        for arch, crops in self.crops.items():
            columns[f"crop_{arch}"] = np.array(crops, object)
        n = len(columns["key"])
        columns["decode_s"] = np.full(n, self.decode_s / max(n, 1))
        columns["detect_s"] = np.full(n, self.detect_s / max(n, 1))
        return columns


def _to_bytes(crops: list[np.ndarray]) -> bytes:
    """A unit's crops for one architecture: one array where they share a shape (the usual case), else one each."""
    buffer = io.BytesIO()
    if len({c.shape for c in crops}) == 1:
        np.save(buffer, np.stack(crops), allow_pickle=False)
    else:
        np.savez(buffer, *crops)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> list[np.ndarray]:
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return list(loaded)
    return [loaded[f"arr_{i}"] for i in range(len(loaded.files))]


# --------------------------------------------------------------------------- model actors


class ModelActor:
    """Loads every architecture once (weights unpacked from the object store on first use on a machine), on
    its node's cores shared among the actors there, and completes the units' records with their answers."""

    def __init__(self, archs: list, options: ModelOptions, layout, packed: list, per_node: int = 1) -> None:
        import ray

        from agegender_cli.archs import registry

        began = time.perf_counter()
        self.started = time.time()
        self.node = ray.get_runtime_context().get_node_id()
        self.threads = _actor_threads(ray, self.node, per_node)
        _use_threads(self.threads)
        for arch in archs:  # an architecture registered only on the driver (a plug-in) is known here too
            if arch.name not in registry.names():
                registry.register(arch)
        local = weights.unpack(layout, lambda: ray.get(packed[0]), options)
        self.predictors = registry.load_predictors([arch.name for arch in archs], local)
        _use_threads(self.threads)  # again: loading may have imported torch
        self.paths = records.run_paths(self.predictors)
        self.load_s = time.perf_counter() - began
        self.ready = time.time()

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        began = time.perf_counter()
        crops: dict[str, list[np.ndarray]] = {arch: [] for arch in self.predictors}
        for arch in self.predictors:
            for data in batch[f"crop_{arch}"]:
                if len(data):
                    crops[arch] += _from_bytes(bytes(data))
        first = next(iter(self.predictors))
        predictions = predict_all(self.predictors, crops) if crops[first] else {}
        completed, n = [], 0
        for unit in batch["records"]:
            rows = json.loads(str(unit))
            for row in rows:
                if row.get("status") == "face":
                    row.update(records.arch_outputs(predictions, n, self.paths))
                    n += 1
            completed.append(json.dumps(rows))
        size = len(batch["key"])
        load_s, self.load_s = self.load_s, 0.0  # told once, with the actor's first batch
        return {**{k: batch[k] for k in ("key", "input", "chunk", "last", "frames", "faces", "decode_s",
                                         "detect_s")},
                "records": np.array(completed, object),
                "load_s": np.full(size, load_s / size), "infer_s": np.full(size, (time.perf_counter() - began) / size),
                "batches": np.full(size, 1 / size), "ready": np.full(size, self.ready),
                "started": np.full(size, self.started), "node": np.array([self.node] * size, object)}


def _use_threads(threads: int) -> None:
    """The model threads for ONNX Runtime, torch and OpenCV (the faces' preprocessing): Ray starts a worker with
    OMP_NUM_THREADS set to the CPUs it reserved, and OpenCV and torch size their pools by it on import."""
    import sys

    if not threads:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _actor_threads(ray, node: str, per_node: int) -> int:
    """The model threads of an actor: its node's CPUs shared among the actors there (0: the engine's default)."""
    try:
        cpus = next(n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == node)
    except (StopIteration, AttributeError, KeyError):
        return 0
    return max(1, int(cpus // max(1, per_node)))


# --------------------------------------------------------------------------- CPU tasks: shards


def write_records(batch: Mapping[str, np.ndarray], out: str, fmt: str, archs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Write one shard of finished units; returns one row: its name, its units and its tallies (the journal's
    entry, summed by the driver)."""
    began = time.perf_counter()
    order = sorted(range(len(batch["key"])), key=lambda i: str(batch["key"][i]))
    keys = [str(batch["key"][i]) for i in order]
    name = shards.shard_name(keys, fmt)
    finished = [record for i in order for record in json.loads(str(batch["records"][i]))]
    shards.write_shard(Path(out), name, finished, fmt, archs)
    tally = records.Tally(archs)
    for record in finished:
        tally.add(record)
    errors = [r for r in finished if "error" in r]
    units = [[str(batch["input"][i]), int(batch["chunk"][i]), bool(batch["last"][i])] for i in order]
    timing = {stage: float(np.sum(batch[stage])) for stage in (*STAGES[:-1], "batches")}
    timing["write_s"] = time.perf_counter() - began
    timing["actor_started"] = float(np.min(batch["started"]))
    timing["actor_ready"] = float(np.min(batch["ready"]))
    timing["nodes"] = sorted({str(node) for node in batch["node"]})
    entry = {"records": len(finished), "faces": int(np.sum(batch["faces"])), "frames": int(np.sum(batch["frames"])),
             "errors": errors, "counts": tally.to_dict(), "timing": timing}
    return {"shard": np.array([name], object), "units": np.array([json.dumps(units)], object),
            "entry": np.array([json.dumps(entry)], object)}


def _summary(entries: list[dict], archs: tuple[str, ...], listing: Listing) -> dict:
    """The local summary's fields (archs, files, frames, faces, errors, counts) summed over the shards of this run
    and of the earlier runs it resumed, with the unreadable files and frames and the shard names."""
    tally = records.Tally(archs)
    unreadable: list[dict] = []
    for entry in entries:
        tally.merge(entry["counts"])
        unreadable += entry["errors"]
    unreadable.sort(key=lambda r: (r["file"], -1 if r["frame"] is None else r["frame"]))
    return {"archs": list(archs), "files": listing.files, "frames": sum(e["frames"] for e in entries),
            "faces": sum(e["faces"] for e in entries), "errors": len(unreadable), "counts": tally.to_dict(),
            "records": sum(e["records"] for e in entries), "shards": sorted(e["shard"] for e in entries),
            "unreadable": unreadable, "done_before": listing.done_before}
