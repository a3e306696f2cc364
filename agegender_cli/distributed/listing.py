"""The inputs of a `predict --ray` job, streamed into listing files under --out that the cluster reads: the
driver never holds the whole list (a 64-bit hash a path to drop duplicates, about 80 MiB a million in a Python
set, and a few thousand paths at a time)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agegender_cli.distributed.journal import Done, input_key
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.inputs import InputItem
from agegender_cli.fileio import atomic_write_text, display

LISTING = "_inputs"
PATHS_PER_FILE = 5_000
LISTING_FILE = re.compile(r"(\.)?part-[0-9]{8}\.jsonl(\..+\.tmp)?")  # ours, and a temp file of a killed writer


@dataclass(frozen=True)
class Listing:
    """What was listed: every input once, those left to do, those finished by earlier runs."""

    folder: Path
    files: int
    to_do: int
    done_before: int
    missing: int


def write_listing(items: Iterable[InputItem], out: Path, done: Done, problem: Callable[[str], None],
                  inputs: Sequence[str] = (), outputs: dict[str, Path | None] | None = None) -> Listing:
    """One JSON line per input left to do ({path, key, name, kind, error, skip}) in files of PATHS_PER_FILE lines;
    refuses --out inside an input folder, and an output file (`outputs`: option -> path) that is an input."""
    refuse_input_folder(out, inputs)
    folder = out / LISTING
    if folder.is_dir() and any(not LISTING_FILE.fullmatch(p.name) for p in folder.iterdir()):
        raise AgeGenderError(f"--out {display(out)}: its {LISTING} folder holds files agegender did not write; "
                             "move them, or give another --out")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    out_real = os.path.realpath(out)
    written_to = {os.path.realpath(p): option for option, p in (outputs or {}).items() if p is not None}
    seen: set[int] = set()
    lines: list[str] = []
    files = to_do = done_before = missing = written = 0
    for item in items:
        real = os.path.realpath(item.path)
        if item.kind != "error":
            if os.path.dirname(real) == out_real:  # a photo named on stdin or by a glob: found only now
                shutil.rmtree(folder, ignore_errors=True)
                _refuse(out)
            if real in written_to:
                raise AgeGenderError(f"{written_to[real]} {display(item.path)} is one of the inputs; it would be "
                                     "replaced: name another file")
        key = input_key(real)  # the same whether the file is missing in this run or not
        if (hashed := int(key, 16)) in seen:
            continue
        seen.add(hashed)
        files += 1
        if item.kind == "error":
            missing += 1
            problem(f"{display(item.path)}: {item.error}")
        skip = done.skip(key)
        if skip is None:
            done_before += 1
            continue
        to_do += 1
        path = item.path if item.kind == "error" else os.path.abspath(item.path)
        lines.append(json.dumps({"path": path, "key": key, "name": display(item.path), "kind": item.kind,
                                 "error": item.error or "", "skip": skip}))
        if len(lines) == PATHS_PER_FILE:
            atomic_write_text(folder / f"part-{written:08d}.jsonl", "\n".join(lines) + "\n")
            written, lines = written + 1, []
    if lines:
        atomic_write_text(folder / f"part-{written:08d}.jsonl", "\n".join(lines) + "\n")
    return Listing(folder, files, to_do, done_before, missing)


def refuse_input_folder(out: Path, inputs: Sequence[str]) -> None:
    """--out holds the job's shards (and loses shards it did not keep): never an input, nor a folder that holds
    an input named on the command line (checked before anything is written; photos named on stdin or matched by
    a glob are checked as they are listed)."""
    out_real = os.path.realpath(out)
    for spec in inputs:
        if spec != "-" and out_real in (real := os.path.realpath(spec), os.path.dirname(real)):
            _refuse(out)


def _refuse(out: Path) -> None:
    raise AgeGenderError(f"--out {display(out)}: is an input or holds input images; the shards go to a folder "
                         "of their own: give another --out")
