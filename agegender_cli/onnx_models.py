"""Models exported once to ONNX into the cache (checked against their sha256 on load) and run by ONNX Runtime."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agegender_cli.cache import Log, cache_dir
from agegender_cli.config import ONNX_STALE_DAYS
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_write_text, sha256_file

if TYPE_CHECKING:
    import onnxruntime

# torch.onnx.export keeps its state in globals: two exports at once (the models and MTCNN load side by side on a
# first run) fail inside torch, so exports take turns
_EXPORT_LOCK = threading.Lock()
EXPORT_VERSION = 1  # bump when an exporter changes what it writes: older cached files are then re-exported
OPSET = 17


def onnx_runtime_available() -> bool:
    """Whether onnxruntime is installed (found without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_folder(kind: str) -> Path:
    return cache_dir() / "onnx" / kind


def cached_export(kind: str, key: str, export: Callable[[Path], dict[str, Any]], log: Log) -> tuple[Path, dict]:
    """The ONNX file of `kind` for `key` (a hash of everything it was made from) and the metadata its exporter
    returned. Taken from the cache when its sha256 matches the manifest beside it; otherwise `export(path)`
    writes it (to a temp file, renamed into place) and the manifest records its hash."""
    path = onnx_folder(kind) / f"{key}-v{EXPORT_VERSION}.onnx"
    manifest = path.with_suffix(".json")
    record = _verified(path, manifest, log)
    if record is not None:
        _mark_used(manifest)
        return path, record["meta"]
    log(f"exporting {kind} to ONNX, once (cached in {path.parent})")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        meta = export(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    record = {"kind": kind, "key": key, "export_version": EXPORT_VERSION, "sha256": file_digest(path),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "meta": meta}
    atomic_write_text(manifest, json.dumps(record, indent=2) + "\n")
    prune_stale(kind, path, log)
    return path, meta


def _mark_used(manifest: Path) -> None:
    """The manifest's time is the export's last use (the .onnx file keeps its own, which its remembered digest
    is stamped with)."""
    with contextlib.suppress(OSError):  # a read-only cache: nothing is pruned from it either
        os.utime(manifest)


def prune_stale(kind: str, keep: Path, log: Log, now: float | None = None) -> int:
    """Delete the exports of `kind` unused for ONNX_STALE_DAYS (with their manifests), and the temp files of exports
    interrupted that long ago; `keep` stays. The bytes freed."""
    cutoff = (time.time() if now is None else now) - ONNX_STALE_DAYS * 86400
    folder, freed = onnx_folder(kind), 0
    for candidate in [*folder.glob("*.onnx"), *folder.glob(".*.tmp")]:
        if candidate == keep:
            continue
        manifest = candidate.with_suffix(".json")
        try:
            last_used = (manifest if manifest.is_file() else candidate).stat().st_mtime
            if last_used >= cutoff:
                continue
            size = candidate.stat().st_size
            candidate.unlink()
            manifest.unlink(missing_ok=True)
        except OSError:
            continue
        freed += size
    if freed:
        log(f"ONNX cache: removed {kind} exports unused for {ONNX_STALE_DAYS} days ({freed / 1e6:.0f} MB)")
    return freed


def _verified(path: Path, manifest: Path, log: Log) -> dict | None:
    if not path.is_file() or not manifest.is_file():
        return None
    try:
        record = json.loads(manifest.read_text())
        recorded, meta = record["sha256"], record["meta"]
    except (ValueError, KeyError, TypeError, OSError):
        log(f"ONNX cache: unreadable manifest {manifest}; exporting again")
        return None
    if not isinstance(meta, dict) or file_digest(path) != recorded:
        log(f"ONNX cache: {path} does not match its recorded sha256; exporting again")
        return None
    return record


def file_digest(path: Path) -> str:
    """The sha256 of a file, remembered in the cache under its path, size, inode and change time: a start-up would
    otherwise hash the 230 MB of models it loads (0.3-0.5 s on 2 cores) although they have not changed."""
    path = Path(path)
    stat = path.stat()
    stamp = [stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns]
    index_path = onnx_folder("") / "digests.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if not isinstance(index, dict):
        index = {}
    name = os.path.abspath(path)
    entry = index.get(name)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = sha256_file(path)
    # entries of deleted files (pruned exports, removed checkpoints) go when the memo is written anyway
    index = {key: value for key, value in index.items() if os.path.exists(key)}
    index[name] = {"stamp": stamp, "sha256": digest}
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(index_path, json.dumps(index, indent=1) + "\n")
    except (OSError, AgeGenderError):  # a read-only cache still works, hashing each time
        pass
    return digest


def threads() -> int:
    """Intra-op threads: --threads (OMP_NUM_THREADS), else 0 (ONNX Runtime's default: one per physical core)."""
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


def session(path: Path) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session over `path`, all graph optimisations on, --threads respected."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads()
    options.inter_op_num_threads = 1
    # no busy-waiting between runs: several sessions (MTCNN's three, the models) share 2 cores, and the first answer
    # came 0.4 s sooner without it (measured: 1.1 against 1.5 s to the last prediction); batches lose <= 8%
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for broken files
        raise AgeGenderError(f"{path}: ONNX Runtime cannot load it ({exc}); delete it to export it again") from exc


def export_module(module: Any, example: Any, path: Path, inputs: list[str], outputs: list[str],
                  more_axes: dict[str, dict[int, str]] | None = None) -> None:
    """torch.onnx.export of `module` (eval mode) with a dynamic batch axis on every input and output, plus
    `more_axes` (name -> {axis: label}), e.g. the height and width of a fully convolutional net."""
    import warnings

    import torch

    more_axes = more_axes or {}
    axes = {name: {0: "batch", **more_axes.get(name, {})} for name in [*inputs, *outputs]}
    with _EXPORT_LOCK, torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is the one that needs no onnxscript; its deprecation notes are not the user's
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
