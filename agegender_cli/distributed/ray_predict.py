"""`agegender predict --ray`: the records of local `predict`, computed by Ray Data on a cluster (or a local Ray).

Inputs become a dataset of paths; CPU tasks decode them and find and crop the faces; a pool of actors (one GPU
each where the cluster has them) runs the models; CPU tasks write the records as shards under --out.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import predict_all
from agegender_cli.config import Limits, ModelOptions, PredictConfig, RayConfig
from agegender_cli.distributed import shards, weights
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces import records
from agegender_cli.faces.inputs import InputItem
from agegender_cli.fileio import display
from agegender_cli.progress import SILENT, Reporter

INSTALL_HINT = "--ray needs Ray: pip install 'agegender[ray]'"


@dataclass(frozen=True)
class FaceSearch:
    """What the CPU tasks need to turn a path into records and crops: all plain values, sent to every task."""

    detector: str
    min_face: int
    min_score: float
    every: int
    framings: tuple[tuple[str, str], ...]  # (architecture, framing)
    limits: Limits  # the driver's, so that every machine applies the same ones
    batch: int  # video frames searched for faces at once


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise AgeGenderError(INSTALL_HINT) from None
    return ray


def predict_on_ray(cfg: PredictConfig, ray_cfg: RayConfig, items: Sequence[InputItem],
                   reporter: Reporter = SILENT) -> dict:
    """Run `predict` on the expanded inputs as a Ray Data job; returns the summary also written to
    --out/_SUCCESS."""
    from agegender_cli.archs import registry
    from agegender_cli.fileio import atomic_write_text, make_folder
    from agegender_cli.limits import current_limits

    ray = import_ray()
    if ray_cfg.out is None:
        raise AgeGenderError("--ray writes shards: give --out DIR")
    _apart_from_inputs(ray_cfg.out, cfg.inputs, items)
    out = make_folder(ray_cfg.out, "--out").resolve()
    (out / shards.SUCCESS).unlink(missing_ok=True)  # the folder is not a finished result until the end
    options = cfg.options
    for arch in cfg.archs:
        options = registry.resolve_weights(arch, options, reporter.message)
    layout, packed = weights.pack(options)
    search = FaceSearch(cfg.detector, cfg.min_face, cfg.min_score, cfg.every,
                        tuple((arch, registry.framing(arch, cfg.detector, cfg.options)) for arch in cfg.archs),
                        current_limits(), ray_cfg.images_per_task)
    started = time.monotonic()
    owned = connect(ray, ray_cfg, reporter)
    try:
        actors = actor_shape(ray.cluster_resources(), ray_cfg.actors, reporter)
        packed_ref = ray.put(packed)
        del packed
        parts = _job(ray, items, search, options, layout, packed_ref, out, ray_cfg, cfg.archs, actors)
    finally:
        if owned:
            ray.shutdown()
    summary = _summary(parts, cfg.archs, len(items))
    removed = shards.remove_other_shards(out, summary["shards"])
    if removed:
        reporter.message(f"removed {len(removed)} shards of an earlier run from {display(out)}")
    summary.update(out=str(out), format=ray_cfg.format, address=ray_cfg.address, actors=actors.count,
                   gpus_per_actor=actors.gpus, seconds=round(time.monotonic() - started, 2))
    atomic_write_text(out / shards.SUCCESS, json.dumps(summary, indent=2) + "\n")
    return summary


def _apart_from_inputs(out: Path, inputs: Sequence[str], items: Sequence[InputItem]) -> None:
    """--out holds the job's shards (and loses shards it did not keep): never an input, nor a folder that holds
    input images itself."""
    target = Path(os.path.realpath(out))
    named = [Path(os.path.realpath(p)) for p in inputs if p != "-"] + [
        Path(os.path.realpath(item.path)).parent for item in items]
    if target in named:
        raise AgeGenderError(f"--out {display(out)}: is an input or holds input images; the shards go to a folder "
                             "of their own: give another --out")


def connect(ray, ray_cfg: RayConfig, reporter: Reporter) -> bool:
    """Join the cluster at the address, or start a local Ray; whether this run started it (and so stops it).
    A Ray already initialised in this process (a notebook, a test) is used as it is."""
    if ray.is_initialized():
        return False
    if ray_cfg.address == "local":
        reporter.message("starting a local Ray")
        ray.init(address="local", num_cpus=ray_cfg.local_cpus, include_dashboard=False, logging_level="WARNING")
        return True
    reachable(ray_cfg.address)
    reporter.message(f"joining the Ray cluster at {ray_cfg.address}")
    try:
        _bounded(lambda: ray.init(address=ray_cfg.address, logging_level="WARNING"), ray_cfg.address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AgeGenderError(f"--ray-address {ray_cfg.address}: cannot join a Ray cluster there ({reason})") from None
    return True


def _bounded(join, address: str) -> None:
    """ray.init within the ray_join_s limit, answering Ctrl-C and SIGTERM: it runs in a daemon thread that an
    address where something other than Ray listens keeps retrying for ever (so exit does not wait for it)."""
    from agegender_cli import stopping
    from agegender_cli.limits import current_limits, raise_hint

    limit = current_limits().ray_join_s
    try:
        stopping.result(stopping.background(join, name="ray-join", wait_at_exit=False), timeout=limit)
    except TimeoutError:
        raise AgeGenderError(f"--ray-address {address}: something answers there, but no Ray cluster joined within "
                             f"{limit:g} s (ray_join_s; {raise_hint('ray_join_s')}); give the address `ray start "
                             "--head` printed") from None


CONNECT_TIMEOUT_S = 3.0  # a head that does not accept a connection in this long is not there


def reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A one-line error, at once, where nothing accepts a connection at HOST:PORT (ray:// too): ray.init itself
    retries such an address without end. `auto` is left to Ray (it reads RAY_ADDRESS and its own records)."""
    import socket

    if address == "auto":
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AgeGenderError(f"--ray-address {address}: not HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = f"no answer in {timeout:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or exc)
        raise AgeGenderError(f"--ray-address {address}: no Ray cluster answers there ({reason}); start one with "
                             "`ray start --head` and give the address it prints, or use --ray-address local"
                             ) from None


@dataclass(frozen=True)
class ActorShape:
    """How many model actors run, and what each one holds."""

    count: int
    gpus: int  # 1 where the cluster has GPUs, else 0
    cpus: float  # never so many that no CPU is left for the decoding tasks (the pool would wait on them forever)


MIN_ACTOR_CPUS = 0.5  # a model actor with less would wait on the others; more than the cluster holds never start
ACTOR_MEMORY = 1 << 30  # both models in one actor (ONNX Runtime, fp32): about 0.7 GiB resident, rounded up


def actor_shape(resources: Mapping[str, float], wanted: int, reporter: Reporter = SILENT) -> ActorShape:
    """One GPU per actor where the cluster has GPUs (no more actors than GPUs); at most one CPU each, and at least
    one CPU of the cluster left to decoding, detection and writing; no more actors than the cluster's CPUs
    (MIN_ACTOR_CPUS each) and memory (ACTOR_MEMORY each) can hold, so that every actor starts."""
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    count = wanted
    if gpus and wanted > gpus:
        reporter.message(f"the cluster has {gpus} GPUs: {gpus} model actors instead of {wanted}")
        count = gpus
    room = {"CPUs": int(max(cpus - 1, 0.0) / MIN_ACTOR_CPUS)}
    if resources.get("memory"):
        room["GiB of memory"] = int(resources["memory"] / ACTOR_MEMORY)
    for what, fits in room.items():
        if count > max(1, fits):
            held = cpus if what == "CPUs" else resources["memory"] / (1 << 30)
            reporter.message(f"the cluster has {held:g} {what}: {max(1, fits)} model actors instead of {count}")
            count = max(1, fits)
    return ActorShape(count, 1 if gpus else 0, min(1.0, max(cpus - 1, 0.0) / count) or 0.1)


def _job(ray, items, search: FaceSearch, options: ModelOptions, layout, packed_ref, out: Path, ray_cfg: RayConfig,
         archs: tuple[str, ...], actors: ActorShape) -> list[dict]:
    from agegender_cli.archs import registry

    rows = [{"order": i, "path": os.fsencode(os.path.abspath(item.path)), "name": display(item.path),
             "kind": item.kind, "error": item.error or ""} for i, item in enumerate(items)]
    # Faults are Ray's defaults (retry arguments are deprecated in Ray Data): a task whose worker dies is rerun,
    # a model actor that dies is restarted and its batch given to it again.
    faces = ray.data.from_items(rows).map_batches(
        find_faces, batch_size=ray_cfg.images_per_task, batch_format="numpy", fn_kwargs={"search": search},
        num_cpus=1)
    scored = faces.map_batches(
        ModelActor, batch_size=options.batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors.count), num_gpus=actors.gpus, num_cpus=actors.cpus,
        # the packed weights travel as a reference inside a list: Ray hands the list over without fetching them
        fn_constructor_kwargs={"archs": [registry.get(a) for a in archs], "options": options, "layout": layout,
                               "packed": [packed_ref]})
    written = scored.map_batches(
        write_records, batch_size=ray_cfg.shard_rows, batch_format="numpy",
        fn_kwargs={"out": str(out), "fmt": ray_cfg.format, "archs": archs}, num_cpus=1)
    return written.take_all()


# --------------------------------------------------------------------------- CPU tasks: decode, detect, crop


@lru_cache(maxsize=4)
def _detector(name: str, min_face: int, min_score: float, max_side: int):
    """One detector per worker process (MTCNN loads its nets once, not once per task)."""
    from agegender_cli.faces.detection import make_detector

    return make_detector(name, min_face=min_face, min_score=min_score, max_side=max_side)


def find_faces(batch: Mapping[str, np.ndarray], search: FaceSearch) -> dict[str, np.ndarray]:
    """Paths in; one row per face found (with its crop for each architecture), per frame without a face, and
    per file or frame that could not be read (the records local predict prints, models not yet run)."""
    from agegender_cli.faces.inputs import Frame, read_image, read_video

    detector = _detector(search.detector, search.min_face, search.min_score, search.limits.detect_max_side)
    framings = dict(search.framings)
    out = _Rows(framings)
    for order, raw, name, kind, error in zip(batch["order"], batch["path"], batch["name"], batch["kind"],
                                             batch["error"], strict=True):
        path = os.fsdecode(bytes(raw))  # absolute: a worker's current folder is not the driver's
        name = str(name)  # the path as given, as local predict reports it
        if kind == "error":
            out.add_error(int(order), name, Frame(path, None, None, str(error)))
            continue
        if kind == "video":
            frames = read_video(path, every=search.every)
        else:
            image, problem = read_image(path, search.limits)
            frames = iter([Frame(path, None, image, problem)])
        pending: list[Frame] = []
        for frame in frames:
            if frame.error is not None:
                out.add_error(int(order), name, frame)
                continue
            pending.append(frame)
            if len(pending) >= search.batch:  # a video's frames are searched a batch at a time: bounded memory
                out.add_frames(int(order), name, pending, detector)
                pending = []
        if pending:
            out.add_frames(int(order), name, pending, detector)
    return out.columns()


class _Rows:
    """The columns find_faces returns, filled frame by frame."""

    def __init__(self, framings: dict[str, str]) -> None:
        self.framings = framings
        self.order: list[int] = []
        self.keys: list[str] = []
        self.records: list[str] = []
        self.new_frame: list[bool] = []
        self.crops: dict[str, list[bytes]] = {arch: [] for arch in framings}

    def _add(self, order: int, record: dict, new_frame: bool, crops: dict[str, bytes] | None = None) -> None:
        self.order.append(order)
        self.keys.append(record_key(order, record))
        self.records.append(json.dumps(record))
        self.new_frame.append(new_frame)
        for arch in self.framings:
            self.crops[arch].append(b"" if crops is None else crops[arch])

    def add_error(self, order: int, name: str, frame) -> None:
        self._add(order, records.error_record(name, frame.index, frame.error), False)

    def add_frames(self, order: int, name: str, frames: list, detector) -> None:
        detections, owners, crops = records.detect_and_crop(frames, detector, self.framings)
        for n, (frame, k, det) in enumerate(owners):
            record = records.face_record(name, frame.index, k, det, {}, frame.time)
            self._add(order, record, k == 0, {arch: _to_bytes(crops[arch][n]) for arch in self.framings})
        for frame, found in zip(frames, detections, strict=True):
            if not found:
                self._add(order, records.no_face_record(name, frame.index, frame.time), True)

    def columns(self) -> dict[str, np.ndarray]:
        columns = {"order": np.array(self.order, np.int64), "key": np.array(self.keys, object),
                   "record": np.array(self.records, object), "new_frame": np.array(self.new_frame, bool)}
        for arch, crops in self.crops.items():
            columns[f"crop_{arch}"] = np.array(crops, object)
        return columns


def record_key(order: int, record: Mapping) -> str:
    """(input, frame, face) of a record: unique within a run, and the same for a retried task's copy."""
    frame, face = record.get("frame"), record.get("face")
    kind = "e" if "error" in record else "f"
    return f"{order:012d}:{-1 if frame is None else frame:012d}:{-1 if face is None else face:06d}:{kind}"


def _to_bytes(crop: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, crop, allow_pickle=False)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


# --------------------------------------------------------------------------- model actors


class ModelActor:
    """Loads every architecture once (weights unpacked from the object store on first use on a machine) and
    completes the face rows with their answers."""

    def __init__(self, archs: list, options: ModelOptions, layout, packed: list) -> None:
        import ray

        from agegender_cli.archs import registry

        for arch in archs:  # an architecture registered only on the driver (a plug-in) is known here too
            if arch.name not in registry.names():
                registry.register(arch)
        local = weights.unpack(layout, lambda: ray.get(packed[0]), options)
        self.predictors = registry.load_predictors([arch.name for arch in archs], local)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        first = next(iter(self.predictors))
        with_face = [i for i, crop in enumerate(batch[f"crop_{first}"]) if len(crop)]
        predictions = predict_all(self.predictors, {arch: [_from_bytes(batch[f"crop_{arch}"][i]) for i in with_face]
                                                    for arch in self.predictors}) if with_face else {}
        completed = list(batch["record"])
        for n, i in enumerate(with_face):
            record = json.loads(completed[i])
            record.update(records.arch_outputs(predictions, n, records.run_paths(self.predictors)))
            completed[i] = json.dumps(record)
        return {"order": batch["order"], "key": batch["key"], "record": np.array(completed, object),
                "new_frame": batch["new_frame"]}


# --------------------------------------------------------------------------- CPU tasks: shards


def write_records(batch: Mapping[str, np.ndarray], out: str, fmt: str, archs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Write one shard of finished records; returns one row: its name and its tallies (summed by the driver)."""
    rows = sorted(zip(batch["key"], batch["record"], batch["new_frame"], strict=True))
    name = shards.shard_name((key for key, _, _ in rows), fmt)
    finished = [json.loads(record) for _, record, _ in rows]
    shards.write_shard(Path(out), name, finished, fmt, archs)
    tally = records.Tally(archs)
    for record in finished:
        tally.add(record)
    errors = [r for r in finished if "error" in r]
    return {"shard": np.array([name], object), "records": np.array([len(finished)]),
            "faces": np.array([sum(r.get("face") is not None for r in finished)]),
            "frames": np.array([sum(bool(new) for _, _, new in rows)]),
            "errors": np.array([json.dumps(errors)], object), "counts": np.array([json.dumps(tally.to_dict())], object)}


def _summary(parts: list[dict], archs: tuple[str, ...], files: int) -> dict:
    """The local summary's fields (archs, files, frames, faces, errors, counts) summed over the shards, with the
    unreadable files and frames and the shard names."""
    tally = records.Tally(archs)
    unreadable: list[dict] = []
    for part in parts:
        tally.merge(json.loads(part["counts"]))
        unreadable += json.loads(part["errors"])
    unreadable.sort(key=lambda r: (r["file"], -1 if r["frame"] is None else r["frame"]))
    return {"archs": list(archs), "files": files, "frames": sum(int(p["frames"]) for p in parts),
            "faces": sum(int(p["faces"]) for p in parts), "errors": len(unreadable), "counts": tally.to_dict(),
            "records": sum(int(p["records"]) for p in parts), "shards": sorted(p["shard"] for p in parts),
            "unreadable": unreadable}
