"""Where a result comes from: hashes of model and data files, the bundled models' card, software versions."""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from agegender_cli.config import ASSETS_DIR
from agegender_cli.fileio import display, sha256_file

MODEL_CARD = ASSETS_DIR / "MODEL_CARD.md"


def file_record(path: Path) -> dict:
    """A file as provenance: its path, size and sha256."""
    path = Path(path).resolve()
    size, changed = path.stat().st_size, path.stat().st_mtime_ns
    return {"path": display(path), "bytes": size, "sha256": _sha256(path, size, changed)}


@cache
def _sha256(path: Path, size: int, changed_ns: int) -> str:
    """Hashed once per process while the file stays as it was (a run loads and describes a model more than once)."""
    return sha256_file(path)


def bundled_card(model: Path) -> dict | None:
    """For a bundled model (under agegender_cli/assets): the model card, its training-data paragraph and the
    card's section on this model; None for any other model."""
    model = Path(model).resolve()
    if not model.is_relative_to(ASSETS_DIR) or not MODEL_CARD.is_file():
        return None
    text = MODEL_CARD.read_text(encoding="utf-8")
    name = model.relative_to(ASSETS_DIR).parts[0]
    return {"model_card": file_record(MODEL_CARD), "training_data": _paragraph(text, "Data:"),
            "training": _section(text, f"## {name}")}


def _paragraph(text: str, start: str) -> str | None:
    for block in text.split("\n\n"):
        if block.startswith(start):
            return " ".join(block[len(start):].split())
    return None


def _section(text: str, heading: str) -> str | None:
    """The bullet lines of the section whose heading starts with `heading`, joined into one line."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(heading):
            body = []
            for follow in lines[index + 1:]:
                if follow.startswith(("## ", "|")):
                    break
                body.append(follow.strip())
            return " ".join(" ".join(body).split()) or None
    return None


def records_digest(records: Iterable) -> str:
    """sha256 over the faces used (path, age class, gender, race per line): the same images and labels give
    the same digest, whatever manifest or folder listed them."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(f"{display(r.path)},{r.age_class},{r.gender},{r.race}\n".encode())
    return digest.hexdigest()


def software() -> dict:
    """The versions that decide the numbers: the tool, Python, the numeric libraries, the machine."""
    from importlib.metadata import PackageNotFoundError, version

    from agegender_cli import __version__

    found = {"agegender": __version__, "agegender commit": source_commit(), "python": sys.version.split()[0]}
    for package in ("numpy", "torch", "onnxruntime", "opencv-python", "scikit-learn", "matplotlib",
                    "facenet-pytorch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    found["platform"] = platform.platform()
    found["machine"] = platform.machine()
    from agegender_cli.cpu import this_cpu

    found["cpu"] = this_cpu().label  # the CPU kind decides the engine auto runs, and engines differ in the last digits
    return found


@cache
def source_commit() -> str | None:
    """The git commit of the agegender source that runs, "+ local changes" where its tracked files differ from it;
    None for an installed package (its version says what it is) or where git does not answer within 3 s."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=3, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=3, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head} + local changes" if changed else head


def pinned_command(command_line: str, models: dict, settings: dict[str, str] | None = None) -> str:
    """The command line with the engine and precision that ran pinned (--engine, --precision appended where the
    line left them to auto), and `settings` ({option: value}: the detector, the seed) where the line left them
    to their defaults, so that a rerun on another machine, or after the defaults change, runs the same path.
    On ONNX Runtime `--precision auto` stays: what it gives each model (int8 where the model's shipped ranges
    passed their check) depends only on the model files, whose hashes the provenance records."""
    import shlex

    if not command_line:
        return command_line
    try:
        words = shlex.split(command_line)
    except ValueError:
        return command_line
    engines = {m.get("engine_choice", {}).get("engine") for m in models.values()} - {None}
    precisions = {m.get("engine_choice", {}).get("precision") for m in models.values()} - {None}
    given = {word.split("=", 1)[0] for word in words}
    extra = []
    if "--engine" not in given and len(engines) == 1:
        extra += ["--engine", engines.pop()]
    if "--precision" not in given and len(precisions) == 1:
        extra += ["--precision", precisions.pop()]
    for option, value in (settings or {}).items():
        if option not in given:
            extra += [option, value]
    return " ".join([command_line, *extra]) if extra else command_line
