"""predict --csv: one row per face record, written to a temp file renamed into place at the end."""

from __future__ import annotations

from pathlib import Path

from agegender_cli.csvcells import safe_cell
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import write_failed


class CsvSink:
    """Face rows written as they come to a temp file renamed over the target at the end (or through a device,
    or to stdout for "-")."""

    COLUMNS = ("file", "frame", "time", "face", "x1", "y1", "x2", "y2", "score", "note", "error", "status")
    ARCH_COLUMNS = ("gender", "gender_prob", "p_female", "age", "age_prob", "age_years", "consistent")  # ARCH_name

    def __init__(self, path: Path, archs: tuple[str, ...]) -> None:
        import csv
        import io

        from agegender_cli.fileio import OutputFile

        self.output = OutputFile(path)
        self.text = io.TextIOWrapper(self.output.handle, encoding="utf-8", newline="", write_through=True)
        self.archs = archs
        self.writer = csv.writer(self.text)
        try:
            self._row(self.COLUMNS + tuple(f"{a}_{k}" for a in archs for k in self.ARCH_COLUMNS))
        except AgeGenderError:
            self.output.discard()
            raise

    def _row(self, values) -> None:
        try:
            self.writer.writerow([safe_cell(value) for value in values])
        except OSError as exc:
            raise write_failed(self.output.path, exc) from None

    def write(self, row: dict) -> None:
        box = row.get("box") or ["", "", "", ""]
        values = [row["file"], "" if row.get("frame") is None else row["frame"], row.get("time", ""),
                  "" if row.get("face") is None else row["face"], *box,
                  "" if row.get("score") is None else row["score"], row.get("note", ""), row.get("error", ""),
                  row.get("status", "")]
        for arch in self.archs:
            out = row.get(arch) or {}
            values += [out.get(k, "") for k in self.ARCH_COLUMNS]
        self._row(values)

    def close(self, ok: bool = True) -> None:
        """Put the CSV in place (ok) or remove what was written; a full disk leaves no temp file behind."""
        try:
            self.text.flush()
            self.text.detach()  # the OutputFile owns the binary handle
            if ok:
                self.output.commit()
                return
        except OSError as exc:
            self.output.discard()
            raise write_failed(self.output.path, exc) from None
        self.output.discard()
