"""Every image an evaluation saw, counted once by what happened to it: scored on which tasks, or left out and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from agegender_cli.evaluation.result import Coverage
from agegender_cli.evaluation.table_model import TableModel

# outcomes in reading order; left_out:KIND follows data.utkface.SKIP_KINDS
SCORED = {
    "gender_and_age": "scored: gender and age class (and years, where a model estimates them)",
    "gender_only": "scored: gender only (no age in its label)",
    "age_only": "scored: age class and years only (no gender in its label)",
    "years_only": "scored: years only (an age between the classes, kept by --gaps keep)",
}
# why an image was left out, by data.utkface.SKIP_KINDS: the stderr line of evaluate and compare and this table
SKIP_WORDS = {"gap_age": "age between the classes", "bad_name": "not a UTKFace name", "not_image": "not an image",
              "unreadable": "unreadable", "no_face": "labelled face not found", "listed_twice": "listed twice",
              "other": "other"}


def manifest_gap_note(gap_ages: int, manifest: str = "the manifest") -> str:
    """What a --gaps drop manifest never held: said on stderr and in the report's coverage."""
    return (f"{gap_ages:,} images with an age between the classes were left out of {manifest} when it was built "
            "(`agegender dataset --gaps drop`, the report's protocol): they are in no split and in no metric, years "
            "included; build it with `--gaps keep` to score them in years")


def gap_age(record: Any) -> bool:
    """An age in years that lies between the 8 classes (kept by --gaps keep: scored in years only, as the report
    drops these faces whole)."""
    return record.age is not None and record.age_class is None


def scored_outcome(record: Any) -> str:
    """How a used face is scored: which of its labels reach the metrics."""
    if gap_age(record):
        return "years_only"
    if record.age_class is None:
        return "gender_only"
    return "age_only" if record.gender is None else "gender_and_age"


def coverage(used: Sequence[Any], left_out: Mapping[str, int], manifest: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
    """The counts: `used` (the records scored), `left_out` (by SKIP_KIND), and what the manifest's own build left
    out (its gap ages under --gaps drop: never in any split)."""
    scored = Counter(scored_outcome(r) for r in used)
    counts = {**{kind: scored[kind] for kind in SCORED if scored[kind]},
              **{f"left_out:{kind}": n for kind, n in left_out.items() if n}}
    return {"seen": sum(counts.values()), "scored": len(used), "counts": counts,
            "years_faces": sum(r.age is not None for r in used), "manifest_build": dict(manifest) if manifest else None}


def describe(outcome: str) -> str:
    if outcome.startswith("left_out:"):
        kind = outcome.split(":", 1)[1]
        return f"left out: {SKIP_WORDS.get(kind, kind)}"
    return SCORED.get(outcome, outcome)


def coverage_table(cover: Coverage, training_overlap: Mapping[str, int]) -> TableModel:
    """The report's "Data and coverage": one row per outcome summing to the images seen, then the notes: the years'
    set, the faces each model trained on, what the manifest's build left out."""
    seen = cover.seen or 1
    rows = [(describe(outcome), f"{n:,}", f"{100 * n / seen:.1f}%") for outcome, n in cover.counts.items()]
    rows.append(("every image seen", f"{cover.seen:,}", "100%"))
    notes = [f"Years are scored on the {cover.years_faces:,} scored faces with an age."]
    for arch, n in training_overlap.items():
        if n:
            notes.append(f"{n:,} of the scored faces were in the training set of the {arch} model: its scores on "
                         "them are optimistic.")
    build = cover.manifest_build or {}
    if build.get("gaps") == "drop" and build.get("gap_age"):
        notes.append(f"Not counted above: {manifest_gap_note(build['gap_age'])}.")
    return TableModel("Data and coverage: every image counted once, by what happened to it",
                      ("outcome", "images", "share"), tuple(rows), note=" ".join(notes))
