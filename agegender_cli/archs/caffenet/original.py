"""The original Levi-Hassner age_net/gender_net weights: from a user folder, the cache or a download."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from agegender_cli.archs.caffenet.caffemodel import read_params
from agegender_cli.archs.caffenet.deploy import NET_NAMES, NUM_CLASSES, net_files
from agegender_cli.archs.caffenet.net import deploy_prototxt
from agegender_cli.cache import Log, RouteFailed, cache_dir, download, print_to_stderr
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_write_text

# A GitHub mirror of the files the authors published (Levi & Hassner, AMFG 2015), served raw.
ORIGINAL_URL_BASE = "https://raw.githubusercontent.com/smahesh29/Gender-and-Age-Detection/master"
# No sha256 of these files is published by the authors or the mirrors; where None, a download is
# accepted only when cv2.dnn loads it into the Levi-Hassner architecture.
ORIGINAL_SHA256: dict[str, str | None] = {"age_net.caffemodel": None, "gender_net.caffemodel": None}


def original_cache_dir() -> Path:
    """Where downloaded original weights (and the prototxts written for them) live."""
    return cache_dir() / "levi-hassner"


def resolve_caffe_weights(
    folder: Path | None,
    *,
    online: bool = True,
    timeout: float = 10.0,
    url_base: str | None = None,
    sha256: Mapping[str, str | None] | None = None,
    log: Log = print_to_stderr,
) -> Path:
    """A model folder for CaffenetPredictor holding the original nets: `folder` if given, else the cache,
    filled by a download when `online` (sha256 checked where known, `sha256` overrides ORIGINAL_SHA256)."""
    if folder is not None:
        return _user_folder_view(Path(folder).expanduser())
    target = original_cache_dir()
    missing = [task for task in NET_NAMES if not net_files(target, task)[1].is_file()]
    if missing and not online:
        raise AgeGenderError(_missing_message(target, "they are not cached and the tool is offline"))
    expected = ORIGINAL_SHA256 if sha256 is None else sha256
    base = (url_base or ORIGINAL_URL_BASE).rstrip("/")
    for task in missing:
        name = net_files(target, task)[1].name
        _fetch(f"{base}/{name}", task, target, expected.get(name), timeout, log)
    return _prepare_folder(target, _missing_message)


def _prepare_folder(folder: Path, message: Callable[[Path, str], str]) -> Path:
    """Check the two .caffemodel files are there and write the deploy prototxts beside them."""
    missing = [name for name in ORIGINAL_SHA256 if not (folder / name).is_file()]
    if missing:
        raise AgeGenderError(message(folder, f"{folder} lacks {' and '.join(missing)}"))
    for task in NET_NAMES:
        _write_prototxt(net_files(folder, task)[0], NUM_CLASSES[task])
    return folder


def _user_folder_view(folder: Path) -> Path:
    """A model folder in the cache for the user's weights: the deploy prototxts written there, links to the
    user's .caffemodel files beside them; the user's folder is only read."""
    missing = [name for name in ORIGINAL_SHA256 if not (folder / name).is_file()]
    if missing:
        raise AgeGenderError(_user_folder_message(folder, f"{folder} lacks {' and '.join(missing)}"))
    real = os.path.realpath(folder)
    view = original_cache_dir() / "user" / hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    try:
        view.mkdir(parents=True, exist_ok=True)
        for task in NET_NAMES:
            link = net_files(view, task)[1]
            target = Path(real) / link.name
            if not (link.is_symlink() and os.readlink(link) == str(target)):
                tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target)
                os.replace(tmp, link)
    except OSError as exc:
        raise AgeGenderError(f"cannot write the cache folder {view} ({exc.strerror or exc}); set "
                             "AGEGENDER_HOME to a writable folder") from exc
    return _prepare_folder(view, _user_folder_message)


def _write_prototxt(path: Path, num_classes: int) -> None:
    text = deploy_prototxt(num_classes)
    if path.is_file() and path.read_text() == text:
        return
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise AgeGenderError(
            f"cannot write {path} ({exc.strerror or exc}): set AGEGENDER_HOME to a writable folder"
        ) from exc


def _fetch(url: str, task: str, target: Path, expected: str | None, timeout: float, log: Log) -> None:
    """Download one task's caffemodel into `target` atomically; reject a wrong sha256, or without one a
    file that does not fit the net."""
    target.mkdir(parents=True, exist_ok=True)
    log(f"caffenet: downloading the original {NET_NAMES[task]} from {url}")
    with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as tmp:
        prototxt, caffemodel = net_files(Path(tmp), task)
        try:
            digest = download(url, caffemodel, timeout)
        except RouteFailed as exc:
            raise AgeGenderError(_missing_message(target, f"cannot download {url}: {exc}")) from exc
        if expected is not None and digest != expected:
            raise AgeGenderError(_missing_message(target, f"{url} has sha256 {digest}, expected {expected}"))
        if expected is None:
            prototxt.write_text(deploy_prototxt(NUM_CLASSES[task]))
            try:
                read_params(prototxt, caffemodel)
            except AgeGenderError as exc:
                reason = f"{url} is not the {caffemodel.name} expected ({exc})"
                raise AgeGenderError(_missing_message(target, reason)) from exc
        os.replace(caffemodel, target / caffemodel.name)


def _missing_message(target: Path, reason: str) -> str:
    return (
        f"no original Levi-Hassner weights ({reason}): put age_net.caffemodel and gender_net.caffemodel"
        f" from {ORIGINAL_URL_BASE}/ in {target}, or pass a folder holding them with --caffe-weights"
    )


def _user_folder_message(folder: Path, reason: str) -> str:
    return (
        f"--caffe-weights: {reason}; it must hold the original age_net.caffemodel and gender_net.caffemodel"
        f" (from {ORIGINAL_URL_BASE}/)"
    )
