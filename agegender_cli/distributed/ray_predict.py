"""`agegender predict --ray`: the records of local `predict`, computed on a Ray cluster (or a local Ray).

The inputs are streamed into listing files under --out; the driver reads them back and hands their lines out,
a few at a time, to a pool of model actors (one per CPU of each node, or one per GPU), which decode the photos
and videos, find and crop the faces and run the models; the driver writes the answered units as shards and
journals each one so that `--resume` continues a stopped job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import predict_all
from agegender_cli.config import Limits, ModelOptions, PredictConfig, RayConfig
from agegender_cli.distributed import shards, weights
from agegender_cli.distributed.cluster import DRIVER_TASK_CPUS, ActorShape, actor_shape, connect, cpu_nodes, import_ray
from agegender_cli.distributed.journal import Done, Journal
from agegender_cli.distributed.listing import Listing, refuse_input_folder, write_listing
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces import records
from agegender_cli.faces.inputs import InputItem
from agegender_cli.fileio import display
from agegender_cli.limits import raise_hint
from agegender_cli.progress import SILENT, Reporter

UNITS_PER_BLOCK = 16  # units an actor answers and hands on at once
ACTOR_BATCH = 32  # most faces a CPU actor answers at once: ONNX Runtime is as fast per face from 16 on
IN_FLIGHT = 2  # calls queued on each actor
MAX_TRIES = 3  # calls of the same inputs lost to faults before the job stops
STAGES = ("decode_s", "detect_s", "load_s", "infer_s", "write_s")  # seconds the tasks and actors spent, summed


@dataclass(frozen=True)
class FaceSearch:
    """What a model actor needs to turn a listing line into records and crops: plain values, sent to each."""

    detector: str
    min_face: int
    min_score: float
    every: int
    framings: tuple[tuple[str, str], ...]  # (architecture, framing)
    limits: Limits  # the driver's, so that every machine applies the same ones
    batch: int  # video frames searched for faces at once: one unit of work (and of --resume)


def predict_on_ray(cfg: PredictConfig, ray_cfg: RayConfig, items: Iterable[InputItem],
                   reporter: Reporter = SILENT) -> dict:
    """Run `predict` on the inputs on a Ray cluster; returns the summary also written to --out/_SUCCESS."""
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
    actors = ActorShape(0, 0, 0.0, 0)
    owned = False
    # Ray prints what its processes report (a worker that died) on stdout, which holds the results: not here
    with contextlib.redirect_stdout(sys.stderr):
        try:
            if listing.to_do:
                begun = time.monotonic()
                owned = connect(ray, ray_cfg, reporter)
                timing["connect_s"] = time.monotonic() - begun
                actors = actor_shape(ray.cluster_resources(), ray_cfg.actors, cpu_nodes(ray.nodes()), reporter)
                job = (listing, search, options, layout, ray.put(packed), out, ray_cfg, cfg.archs, actors)
                del packed
                new = _run_job(ray, job, journal, reporter, timing)
            else:
                reporter.message(f"every input was finished by an earlier run into {display(out)}")
        finally:
            journal.close()
            if owned:
                begun = time.monotonic()
                ray.shutdown()
                timing["ray_stop_s"] = time.monotonic() - begun
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


def _run_job(ray, job: tuple, journal: Journal, reporter: Reporter, timing: dict) -> list[dict]:
    """The job's journal entries, its times added to `timing`."""
    begun = time.monotonic()
    job_epoch = time.time()
    if _through_ray_client(ray):
        # the driver loop runs where the cluster is (the listing, shards and journal are read and written there)
        reporter.message("Ray Client: the job runs in a task on the cluster (no progress bar)")
        # not retried: a rerun would journal its shards again
        try:
            new = ray.get(ray.remote(num_cpus=DRIVER_TASK_CPUS, max_retries=0)(_run_and_journal).remote(*job))
        except ray.exceptions.RayTaskError as error:  # the job's own one-line error, raised on the cluster
            raise _one_line_error(error) from error
    else:
        reporter.start("inputs", job[0].to_do)
        new = list(_journaled(_job(ray, *job, progress=reporter.advance), journal))
        reporter.finish()
    timing["job_s"] = time.monotonic() - begun
    if new:  # none where every unit listed had been finished (a video shorter than before)
        timing["actor_started_s"] = min(e["timing"]["actor_started"] for e in new) - job_epoch
        timing["actor_ready_s"] = min(e["timing"]["actor_ready"] for e in new) - job_epoch
    return new


def _job_settings(cfg: PredictConfig, ray_cfg: RayConfig, search: FaceSearch, layout) -> dict:
    """What makes two runs' records differ: a resumed job must be run with the same."""
    from agegender_cli import __version__

    return {"archs": list(cfg.archs), "detector": cfg.detector, "min_face": cfg.min_face,
            "min_score": cfg.min_score, "every": cfg.every, "frames_per_unit": search.batch,
            "format": ray_cfg.format, "weights": layout.digest[:16], "engine": cfg.options.engine,
            "precision": cfg.options.precision, "version": __version__,
            # the limits that change records; how long to wait on Ray does not (a stalled job resumes with more)
            "limits": {k: v for k, v in dataclasses.asdict(search.limits).items() if not k.startswith("ray_")}}


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


def _journaled(entries, journal: Journal) -> Iterator[dict]:
    """Each finished shard journaled as it comes; its entry without the units."""
    for entry in entries:
        journal.append(entry)
        yield {k: v for k, v in entry.items() if k != "units"}


def _run_and_journal(*job) -> list[dict]:
    """The job run where the cluster is (for a Ray Client driver), journaled there; the journal entries."""
    import ray

    journal = Journal(job[5])
    try:
        return list(_journaled(_job(ray, *job), journal))
    finally:
        journal.close()


def _ignore(_: int) -> None:
    pass


def _job(ray, listing: Listing, search: FaceSearch, options: ModelOptions, layout, packed_ref, out: Path,
         ray_cfg: RayConfig, archs: tuple[str, ...], actors: ActorShape, progress: Callable[[int], None] = _ignore):
    """The finished shards, as they are written (the journal entries). The driver hands the listing's lines out
    to the model actors a few at a time (each actor finds the faces of its lines on its own CPU and answers them:
    no crop crosses the object store), and writes the answered units into shards."""
    from agegender_cli.archs import registry

    block = options.batch_size if actors.gpus else min(options.batch_size, ACTOR_BATCH)
    # a GPU actor decodes its next lines on a second thread while the GPU answers the last ones; an actor whose
    # process dies is started again (the calls it held are given again, see _Pool)
    actor = ray.remote(ModelActor).options(num_cpus=actors.cpus, num_gpus=actors.gpus, max_restarts=-1,
                                           max_concurrency=2 if actors.gpus else 1)
    # the packed weights travel as a reference inside a list: Ray hands the list over without fetching them
    arguments = ([registry.get(a) for a in archs], options, layout, [packed_ref], actors.per_node, search, block)
    started = [actor.remote(*arguments) for _ in range(actors.count)]
    try:
        size = min(ray_cfg.images_per_task, block)
        lines = _chunks(_listed_lines(listing), size, listing.to_do - 2 * IN_FLIGHT * actors.count * size)
        answered: list[dict] = []
        for units in _Pool(ray, started, search.limits.ray_stall_s).run(lines):
            progress(sum(1 for unit in units if unit["last"]))
            answered += units
            while len(answered) >= ray_cfg.shard_inputs:
                yield write_records(answered[:ray_cfg.shard_inputs], out, ray_cfg.format, archs)
                del answered[:ray_cfg.shard_inputs]
        if answered:
            yield write_records(answered, out, ray_cfg.format, archs)
    finally:
        for model_actor in started:  # their CPUs (or GPUs) go back to the cluster now, not when the driver exits
            ray.kill(model_actor)


def _listed_lines(listing: Listing) -> Iterator[str]:
    for part in sorted(listing.folder.glob("part-*.jsonl")):
        with open(part, encoding="utf-8") as lines:
            yield from (line.rstrip("\n") for line in lines if line.strip())


def _chunks(lines: Iterable[str], size: int, until: int) -> Iterator[list[str]]:
    """The lines `size` at a time, and a quarter of that after the first `until`: the last calls are short, so
    that no actor is left alone at work while the others have finished."""
    chunk: list[str] = []
    for n, line in enumerate(lines):
        chunk.append(line)
        if len(chunk) >= (size if n < until else max(1, size // 4)):
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class _Call:
    """Listing lines given to an actor, and the units it has answered of them so far."""

    actor: object
    lines: list[str]
    tries: int = 1
    answered: list[tuple[str, int, bool]] = dataclasses.field(default_factory=list)  # (input, chunk, last)

    def rest(self) -> list[str]:
        """The lines again, without the units answered before a fault: what a retry has left to do."""
        left = []
        for line in self.lines:
            item = json.loads(line)
            units = [(chunk, last) for key, chunk, last in self.answered if key == item["key"]]
            if any(last for _, last in units):
                continue
            item["skip"] = sorted(set(item["skip"]) | {chunk for chunk, _ in units})
            left.append(json.dumps(item))
        return left


class _Pool:
    """The model actors, IN_FLIGHT calls queued on each (an actor never waits for the driver, and the last lines
    are shared out). A call lost to a fault (a killed worker, a lost node) is given again, less what it had
    answered, up to MAX_TRIES times; the actor that lost it gets no more calls until it answers again (Ray
    restarts it, on another node where its own was lost, or never where no node has room: the others go on)."""

    def __init__(self, ray, actors: list, stall_s: float) -> None:
        self.ray, self.stall_s = ray, stall_s
        self.free = [a for a in actors for _ in range(IN_FLIGHT)]
        self.live = {id(a) for a in actors}  # not dead for good (a restarting actor is live)
        self.running: dict = {}  # ObjectRefGenerator -> _Call
        self.parked: dict[int, list] = {}  # an actor that lost a call -> its slots, until its ping answers
        self.pings: dict = {}  # ObjectRef -> actor
        self.ping_tries: dict[int, int] = {}
        self.redo: list[_Call] = []
        self.ahead: list[list[str]] = []  # a chunk taken from the listing and not yet given

    def run(self, chunks: Iterator[list[str]]) -> Iterator[list[dict]]:
        """The answered units, a block at a time, as the actors hand them back."""
        ray = self.ray
        while True:
            while self.free and (call := self._next_call(chunks)) is not None:
                call.actor = self.free.pop()
                self.running[call.actor.run.remote(call.lines)] = call
            if not self.running:
                if not self.redo and self._next_chunk(chunks) is None:
                    return  # done, whether or not an actor that lost a call has come back
                if not self.pings:
                    raise AgeGenderError("no model actor is left to run the job; the shards written so far are "
                                         "kept: rerun with --resume")
            ready, _ = ray.wait([*self.running, *self.pings], num_returns=1, timeout=self.stall_s)
            if not ready:
                raise AgeGenderError(f"no model actor answered for {self.stall_s:g} s (ray_stall_s; "
                                     f"{raise_hint('ray_stall_s')}); the shards written so far are kept: rerun "
                                     "with --resume")
            for waited in ready:
                if waited in self.pings:
                    self._pinged(waited)
                    continue
                call = self.running[waited]
                try:
                    units = ray.get(next(waited))
                except StopIteration:
                    del self.running[waited]
                    self._release(call.actor)
                    continue
                except ray.exceptions.RayError as error:
                    del self.running[waited]
                    self._lost(call, error)
                    continue
                call.answered += [(u["input"], u["chunk"], u["last"]) for u in units]
                yield units

    def _next_chunk(self, chunks: Iterator[list[str]]) -> list[str] | None:
        if not self.ahead and (chunk := next(chunks, None)) is not None:
            self.ahead.append(chunk)
        return self.ahead[0] if self.ahead else None

    def _next_call(self, chunks: Iterator[list[str]]) -> _Call | None:
        if self.redo:
            return self.redo.pop()
        if self._next_chunk(chunks) is None:
            return None
        return _Call(None, self.ahead.pop())

    def _lost(self, call: _Call, error: Exception) -> None:
        exceptions = self.ray.exceptions
        if isinstance(error, exceptions.RayTaskError):  # our code raised: another try would too
            raise _one_line_error(error) from error
        died = isinstance(error, exceptions.ActorDiedError)  # for good (its start failed): it never ran the call
        if died:
            self._drop(call.actor)
            if not self.live:
                raise AgeGenderError(f"every model actor died ({_last_line(error)}); the shards written so far are "
                                     "kept: rerun with --resume") from error
        elif call.tries >= MAX_TRIES:
            raise AgeGenderError(f"model actors were lost {MAX_TRIES} times on the same inputs (the first: "
                                 f"{json.loads(call.lines[0])['name']}; Ray: {type(error).__name__}, in its log); the "
                                 "shards written so far are kept: rerun with --resume") from error
        else:
            self._park(call.actor)
        if rest := call.rest():
            self.redo.append(_Call(None, rest, call.tries if died else call.tries + 1))

    def _park(self, actor) -> None:
        """The slot of a call the actor lost waits until the actor answers a ping (restarted)."""
        if id(actor) not in self.parked:
            self.parked[id(actor)] = []
            self.pings[actor.ping.remote()] = actor
        self.parked[id(actor)].append(actor)

    def _pinged(self, ping) -> None:
        actor = self.pings.pop(ping)
        try:
            self.ray.get(ping)
        except self.ray.exceptions.RayError as error:
            tries = self.ping_tries.get(id(actor), 0) + 1
            if isinstance(error, self.ray.exceptions.ActorDiedError) or tries >= MAX_TRIES:
                self._drop(actor)  # the others go on; with none left the job ends, saying so
            else:
                self.ping_tries[id(actor)] = tries
                self.pings[actor.ping.remote()] = actor
            return
        self.ping_tries.pop(id(actor), None)
        self.free += self.parked.pop(id(actor), [])

    def _drop(self, actor) -> None:
        self.live.discard(id(actor))
        self.free = [a for a in self.free if id(a) in self.live]
        self.parked.pop(id(actor), None)

    def _release(self, actor) -> None:
        if id(actor) in self.live:
            if id(actor) in self.parked:
                self.parked[id(actor)].append(actor)
            else:
                self.free.append(actor)


def _one_line_error(error: BaseException) -> AgeGenderError:
    """A RayTaskError (an error raised on the cluster, its remote traceback in its text) as one line."""
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, AgeGenderError):
        return AgeGenderError(_last_line(cause))
    return AgeGenderError(f"a model actor failed: {type(cause).__name__}: {_last_line(cause)}")


def _last_line(error: BaseException) -> str:
    """Ray's errors carry the remote traceback: its last line says what happened (without our error's name)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1].removeprefix(f"{AgeGenderError.__module__}.AgeGenderError: ") if lines else type(error).__name__


# --------------------------------------------------------------------------- in each actor: decode, detect, crop


@lru_cache(maxsize=8)
def _detector(name: str, min_face: int, min_score: float, max_side: int, thread: int):
    """One detector per thread of a worker (MTCNN loads its nets once, not once per call; OpenCV's cascade keeps
    the image it searches in its own state, so a GPU actor's two threads must not share one)."""
    from agegender_cli.faces.detection import make_detector

    return make_detector(name, min_face=min_face, min_score=min_score, max_side=max_side)


@dataclass
class Unit:
    """One unit of work: a photo, a run of `FaceSearch.batch` frames of a video, or an input that could not be
    read; its records (the models' answers still to add) and the crops of its faces, for each architecture."""

    key: str  # the input's key and the chunk: what a shard's name is made of
    input: str
    chunk: int
    last: bool  # the input's last unit: once it is journaled, the input is finished
    records: list[dict]
    frames: int
    faces: int
    crops: dict[str, list[np.ndarray]]


@dataclass
class Block:
    """Units handed on at once, and the seconds spent decoding them and finding their faces."""

    units: list[Unit]
    decode_s: float
    detect_s: float


def find_faces(lines: Iterable[str], search: FaceSearch, block: int = UNITS_PER_BLOCK) -> Iterator[Block]:
    """Listing lines in; their units out, `block` at a time and after each run of a video's frames: a long video
    is neither held whole nor lost whole."""
    from agegender_cli.faces.inputs import Frame, read_video

    detector = _detector(search.detector, search.min_face, search.min_score, search.limits.detect_max_side,
                         threading.get_ident())
    units = _Units(dict(search.framings), detector)
    for line in lines:
        item = json.loads(line)
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
        if len(units.units) >= block or item["kind"] == "video":
            yield from units.flush()
    yield from units.flush()


def _image(path: str, limits: Limits):
    """A photo as the one frame of its input (read when the frame is taken, so that its decoding is timed)."""
    from agegender_cli.faces.inputs import read_image_frame

    yield read_image_frame(path, limits)


class _Units:
    """The units find_faces hands on, gathered one at a time."""

    def __init__(self, framings: dict[str, str], detector) -> None:
        self.framings, self.detector = framings, detector
        self.key, self.name, self.skip = "", "", set()
        self.units: list[Unit] = []
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
        self.units.append(Unit(f"{self.key}:{chunk:08d}", self.key, chunk, last, rows, len(readable), faces,
                               {arch: list(crops[arch]) if faces else [] for arch in self.framings}))

    def flush(self) -> Iterator[Block]:
        """The units gathered so far, as one block (none when there are none); then start afresh."""
        if self.units:
            yield Block(self.units, self.decode_s, self.detect_s)
            self.units, self.decode_s, self.detect_s = [], 0.0, 0.0


# --------------------------------------------------------------------------- model actors


class ModelActor:
    """Loads every architecture once (weights unpacked from the object store on first use on a machine), on
    its node's cores shared among the actors there; finds the faces of the listing lines it is given and hands
    back their units, answered, a block at a time."""

    def __init__(self, archs: list, options: ModelOptions, layout, packed: list, per_node: int, search: FaceSearch,
                 block: int) -> None:
        import ray

        from agegender_cli.archs import registry

        began = time.perf_counter()
        self.started = time.time()
        self.search, self.block = search, block
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
        self.answering = threading.Lock()
        self.load_s = time.perf_counter() - began
        self.ready = time.time()

    def ping(self) -> bool:
        """Answers once the actor is up (again)."""
        return True

    def run(self, lines: list[str]) -> Iterator[list[dict]]:
        """The units of the lines, answered: plain values for the driver, a block at a time."""
        for block in find_faces(lines, self.search, self.block):
            yield self._answer(block)

    def _answer(self, block: Block) -> list[dict]:
        began = time.perf_counter()
        crops = {arch: [crop for unit in block.units for crop in unit.crops.get(arch, [])]
                 for arch in self.predictors}
        first = next(iter(self.predictors))
        with self.answering:  # a GPU actor's two calls decode at once, and take turns on the models
            predictions = predict_all(self.predictors, crops) if crops[first] else {}
            load_s, self.load_s = self.load_s, 0.0  # told once, with the actor's first block
        n = 0
        for unit in block.units:
            for row in unit.records:
                if row.get("status") == "face":
                    row.update(records.arch_outputs(predictions, n, self.paths))
                    n += 1
        size = len(block.units)
        shares = {"decode_s": block.decode_s / size, "detect_s": block.detect_s / size, "load_s": load_s / size,
                  "infer_s": (time.perf_counter() - began) / size, "batches": 1 / size}
        return [{"key": u.key, "input": u.input, "chunk": u.chunk, "last": u.last, "records": u.records,
                 "frames": u.frames, "faces": u.faces, **shares, "started": self.started, "ready": self.ready,
                 "node": self.node} for u in block.units]


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


# --------------------------------------------------------------------------- on the driver: shards


def write_records(units: list[dict], out: Path, fmt: str, archs: tuple[str, ...]) -> dict:
    """Write one shard of answered units; returns its journal entry: its name, its units and its tallies."""
    began = time.perf_counter()
    units = sorted(units, key=lambda unit: unit["key"])
    name = shards.shard_name([unit["key"] for unit in units], fmt)
    finished = [record for unit in units for record in unit["records"]]
    shards.write_shard(out, name, finished, fmt, archs)
    tally = records.Tally(archs)
    for record in finished:
        tally.add(record)
    timing = {stage: sum(unit[stage] for unit in units) for stage in (*STAGES[:-1], "batches")}
    timing["write_s"] = time.perf_counter() - began
    timing["actor_started"] = min(unit["started"] for unit in units)
    timing["actor_ready"] = min(unit["ready"] for unit in units)
    timing["nodes"] = sorted({unit["node"] for unit in units})
    return {"shard": name, "units": [[unit["input"], unit["chunk"], unit["last"]] for unit in units],
            "records": len(finished), "faces": sum(unit["faces"] for unit in units),
            "frames": sum(unit["frames"] for unit in units), "errors": [r for r in finished if "error" in r],
            "counts": tally.to_dict(), "timing": timing}


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
