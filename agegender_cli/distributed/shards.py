"""Result shards of `predict --ray`: JSON Lines or Parquet files named by their records, written atomically."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from agegender_cli.fileio import atomic_write_bytes
from agegender_cli.labels import AGE_CLASSES

SUCCESS = "_SUCCESS"
EXTENSIONS = {"jsonl": ".jsonl", "parquet": ".parquet"}
SHARD_NAME = re.compile(r"part-[0-9a-f]{16}\.(jsonl|parquet)")
# a temp file of a writer killed half-way: a shard's, the journal's, _SUCCESS's
HALF_WRITTEN = re.compile(r"\.(part-[0-9a-f]{16}\.(jsonl|parquet)|_journal\.jsonl|_SUCCESS)\..+\.tmp")


def shard_name(keys: Iterable[str], fmt: str) -> str:
    """A name that depends only on which records the shard holds: a retried task writes the same file again
    (replacing it whole) instead of a second copy of its records."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8", "backslashreplace")).hexdigest()
    return f"part-{digest[:16]}{EXTENSIONS[fmt]}"


def write_shard(folder: Path, name: str, records: Sequence[dict], fmt: str, archs: Sequence[str]) -> Path:
    """The records as one file, through a temp file renamed into place (never half a shard)."""
    if fmt == "jsonl":
        data = "".join(json.dumps(record) + "\n" for record in records).encode()
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(list(records), schema=parquet_schema(archs)), buffer)
        data = buffer.getvalue()
    return atomic_write_bytes(folder / name, data)


def parquet_schema(archs: Sequence[str]):
    """The fields of `predict --json`, typed; a field a record lacks (an error has no box) is null."""
    import pyarrow as pa

    output = pa.struct([("gender", pa.string()), ("gender_prob", pa.float64()), ("p_female", pa.float64()),
                        ("age", pa.string()), ("age_prob", pa.float64()),
                        ("age_probs", pa.struct([(a, pa.float64()) for a in AGE_CLASSES])),
                        ("age_years", pa.float64())])
    return pa.schema([("file", pa.string()), ("frame", pa.int64()), ("time", pa.float64()), ("face", pa.int64()),
                      ("box", pa.list_(pa.int64())), ("score", pa.float64()), ("note", pa.string()),
                      ("error", pa.string()), *[(arch, output) for arch in archs]])


def read_shards(folder: Path) -> list[dict]:
    """Every record of the shards in `folder` (Parquet's nulls for absent fields dropped, as in JSON Lines)."""
    records: list[dict] = []
    for path in shard_files(folder):
        if path.suffix == ".jsonl":
            records += [json.loads(line) for line in path.read_text().splitlines() if line]
        else:
            import pyarrow.parquet as pq

            for row in pq.read_table(path).to_pylist():
                present = ("file", "frame") + (("error",) if row.get("error") is not None else ("face", "box", "score"))
                record = {k: v for k, v in row.items() if v is not None or k in present}
                for value in record.values():  # a model without a years head has no age_years, as in JSON Lines
                    if isinstance(value, dict) and value.get("age_years", 0) is None:
                        del value["age_years"]
                records.append(record)
    return records


def shard_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if SHARD_NAME.fullmatch(p.name))


def remove_other_shards(folder: Path, keep: Iterable[str]) -> list[str]:
    """Remove every shard not in `keep` (the shards the job's journal names: an earlier, unrelated run's, one
    written by a run stopped before journaling it, a failed attempt's under another name) and the temp files of
    writers killed half-way; returns their names."""
    kept = set(keep)
    removed = [p.name for p in shard_files(folder) if p.name not in kept]
    removed += [p.name for p in folder.iterdir() if HALF_WRITTEN.fullmatch(p.name)]
    for name in removed:
        (folder / name).unlink(missing_ok=True)
    return removed
