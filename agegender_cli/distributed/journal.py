"""The journal of a `predict --ray` job: which shards are finished and which inputs they hold, so that a stopped
job can be resumed (`--resume`) without losing or doubling a record."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_write_text, display

JOURNAL = "_journal.jsonl"
Unit = tuple[str, int, bool]  # (input's key, chunk of its frames, whether the input's last chunk)


def input_key(path: str) -> str:
    """16 hex digits naming an input by its absolute path: the same in every run, small enough for millions."""
    return hashlib.blake2b(os.fsencode(path), digest_size=8).hexdigest()


@dataclass
class Done:
    """What earlier runs into the same --out finished: inputs whole, and the chunks of videos left half way."""

    whole: set[str] = field(default_factory=set)
    chunks: dict[str, set[int]] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)  # a video's last chunk, where a finished shard holds it
    shards: list[str] = field(default_factory=list)
    entries: list[dict] = field(default_factory=list)  # their tallies, for the summary (one per shard)

    def add(self, units) -> None:
        for key, chunk, last in units:
            self.chunks.setdefault(key, set()).add(int(chunk))
            if last:
                self.last[key] = int(chunk)
        for key in [k for k, last in self.last.items() if len(self.chunks[k]) == last + 1]:
            self.whole.add(key)
            del self.chunks[key], self.last[key]

    def skip(self, key: str) -> list[int] | None:
        """None: the input is finished; else the chunks of it already done (empty for a new input)."""
        if key in self.whole:
            return None
        return sorted(self.chunks.get(key, ()))

    @property
    def inputs(self) -> int:
        return len(self.whole)


class Journal:
    """`--out/_journal.jsonl`: a header naming the job's settings, then one line per finished shard, appended
    and synced once the shard is in place. A shard no line names was not finished (its run stopped between
    the two): it is not counted, and the run that completes the job removes it; a half-written last line is
    ignored."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / JOURNAL
        self._file = None

    def start(self, job: Mapping) -> None:
        """A new journal for a job starting over (replacing an earlier one whole; never a file of another kind)."""
        from agegender_cli.ownership import begins_with

        if self.path.exists() and not begins_with(self.path, b'{"job":'):
            raise AgeGenderError(f"--out {display(self.path.parent)}: {JOURNAL} there is not agegender's; move it, "
                                 "or give another --out")
        atomic_write_text(self.path, json.dumps({"job": dict(job)}) + "\n")

    def resume(self, job: Mapping) -> Done:
        """What the journal says is finished, its shards checked to be there; refuses a journal written by a job
        with other settings. The journal is rewritten without the lines of shards that are gone, of a shard named
        twice, or half-written, before this run appends to it."""
        done = Done()
        lines = self._lines()
        first = next(lines, None)
        if first is None or "job" not in first[1]:
            raise AgeGenderError(f"--resume: {display(self.path)} is not a journal of agegender predict --ray; run "
                                 "without --resume to start over")
        header = first[1]
        changed = [f"{k} {header['job'].get(k)!r} -> {v!r}" for k, v in job.items() if header["job"].get(k) != v]
        if changed:
            raise AgeGenderError(f"--resume: --out {display(self.path.parent)} holds a job run with other settings "
                                 f"({'; '.join(changed)}); give the same options, or run without --resume to "
                                 "start over")
        kept = [first[0]]
        for raw, entry in lines:
            if entry["shard"] not in done.shards and (self.path.parent / entry["shard"]).is_file():
                done.add(entry["units"])
                done.shards.append(entry["shard"])
                done.entries.append({k: v for k, v in entry.items() if k != "units"})
                kept.append(raw)
        atomic_write_text(self.path, "".join(kept))
        return done

    def _lines(self) -> Iterator[tuple[str, dict]]:
        """Each whole line with what it says, up to a half-written one (the last of a writer stopped half way)."""
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    return
                try:
                    yield line, json.loads(line)
                except ValueError:
                    return

    def exists(self) -> bool:
        return self.path.is_file()

    def append(self, entry: Mapping) -> None:
        """One finished shard, on disk before the next is taken."""
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the job
        self._file.write(json.dumps(dict(entry)) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
