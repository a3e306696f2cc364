"""An evaluation's result as frozen dataclasses: one nested shape for evaluate, compare and the Python API, whose
to_json() is result schema 1 (docs/outputs.md documents every field; a test holds the two together)."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA = 1  # bump when a field changes meaning or goes; adding a field keeps it

Interval = tuple[float, float]  # a 95% interval: [low, high]


class FrozenMap(dict):
    """A dict that cannot change after it is built (a frozen result's mappings); it pickles, copies and hashes."""

    def _refuse(self, *_args: Any, **_kwargs: Any) -> None:
        raise TypeError("a result's mapping cannot change")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore

    def __reduce__(self) -> tuple:
        return FrozenMap, (dict(self),)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))


class Typed:
    """to_json() for a frozen dataclass tree, and from_json(): the tree built from its JSON, every key checked."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Any:
        return _build(cls, data, cls.__name__)


def _to_json(value: Any) -> Any:
    if isinstance(value, Typed):
        return value.to_json()
    if isinstance(value, Mapping):
        return {key: _to_json(v) for key, v in value.items()}
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    return value


@functools.cache
def _declared(kind: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """A result class's resolved field types and its fields, worked out once per class, not per object."""
    return typing.get_type_hints(kind), {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]


def _build(kind: Any, data: Any, where: str) -> Any:
    """`data` (parsed JSON or a producer's dict) as `kind`: dataclasses field by field (an unknown or missing key
    is an error naming where), Mapping[str, X] and tuple[X, ...] item by item, X | None, plain values as they are."""
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return _build(options[0], data, where) if len(options) == 1 else data
    if isinstance(kind, type) and issubclass(kind, Typed):
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        hints, fields = _declared(kind)
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{where}: unknown field {', '.join(unknown)} (schema {SCHEMA})")
        values = {}
        for name, f in fields.items():
            if name in data:
                values[name] = _build(hints[name], data[name], f"{where}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing field {name} (schema {SCHEMA})")
        return kind(**values)
    if origin in (Mapping, dict, typing.Mapping):
        _, value_kind = typing.get_args(kind)
        return FrozenMap({k: _build(value_kind, v, f"{where}[{k}]") for k, v in data.items()})
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        return tuple(_build(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True)))
    return data


@dataclass(frozen=True)
class ClassScores(Typed):
    precision: float | None
    recall: float | None
    f1: float | None
    miss_rate: float | None
    fall_out: float | None
    support: int


@dataclass(frozen=True)
class Roc(Typed):
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]


@dataclass(frozen=True)
class GenderMetrics(Typed):
    n: int
    accuracy: float | None
    auc: float | None
    roc: Roc | None
    per_class: Mapping[str, ClassScores]
    confusion: tuple[tuple[int, ...], ...]
    confusion_row_normalised: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class AgeMetrics(Typed):
    n: int
    accuracy: float | None
    one_off: float | None
    macro_f1: float | None
    mean_error: float | None
    std_error: float | None
    error_hist: tuple[int, ...]
    per_class: Mapping[str, ClassScores]
    confusion: tuple[tuple[int, ...], ...]
    confusion_row_normalised: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class CalibrationBin(Typed):
    low: float
    high: float
    n: int
    confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class TaskCalibration(Typed):
    ece: float | None
    mce: float | None
    n_bins: int
    n: int
    bins: tuple[CalibrationBin, ...]


@dataclass(frozen=True)
class Calibration(Typed):
    gender: TaskCalibration
    age: TaskCalibration


@dataclass(frozen=True)
class Intervals(Typed):
    """The 95% interval of each headline metric of each task, by the metric's name (None where undefined)."""

    gender: Mapping[str, Interval | None]
    age: Mapping[str, Interval | None]

    def of(self, task: str, metric: str) -> Interval | None:
        return (self.gender if task == "gender" else self.age).get(metric)


@dataclass(frozen=True)
class Gap(Typed):
    """The largest difference of a metric between two groups: the best group's value minus the worst's."""

    metric: str
    best_group: str | None
    worst_group: str | None
    best: float | None
    worst: float | None
    gap: float | None
    n_best: int | None
    n_worst: int | None
    ci95: Interval | None
    doubt: str | None
    uncertain: bool


@dataclass(frozen=True)
class GroupScores(Typed):
    n: int
    gender_accuracy: float | None
    age_accuracy: float | None
    one_off: float | None
    ci95: Mapping[str, Interval | None]


@dataclass(frozen=True)
class GroupResult(Typed):
    metrics: Mapping[str, GroupScores]  # by group (a race, a gender, an age class)
    largest_gap: Mapping[str, Gap]  # by metric


@dataclass(frozen=True)
class YearsGroup(Typed):
    n: int
    mae: float | None
    cs5: float | None
    ci95: Mapping[str, Interval | None] | None = None


@dataclass(frozen=True)
class YearsMetrics(Typed):
    n: int
    mae: float | None
    median_ae: float | None
    cs5: float | None
    bias: float | None
    ci95: Mapping[str, Interval | None]
    per_age_class: Mapping[str, YearsGroup]
    per_race: Mapping[str, YearsGroup]
    per_gender: Mapping[str, YearsGroup]
    largest_gap: Mapping[str, Gap]  # by grouping (race, gender)


@dataclass(frozen=True)
class ModelResult(Typed):
    """One architecture's metrics on the evaluated faces."""

    arch: str
    model: str
    n: int
    gender: GenderMetrics
    age: AgeMetrics
    calibration: Calibration | None = None
    ci95: Intervals | None = None
    groups: Mapping[str, GroupResult] = dataclasses.field(default_factory=dict)  # by grouping (race, gender, ...)
    years: YearsMetrics | None = None

    def headline(self, task: str, metric: str) -> float | None:
        """A headline number by task and name (tables list them): accuracy, auc, one_off, ..., ece."""
        if metric == "ece":
            return None if self.calibration is None else getattr(self.calibration, task).ece
        return getattr(getattr(self, task), metric)


@dataclass(frozen=True)
class McNemar(Typed):
    b: int  # faces only the first architecture gets right
    c: int  # faces only the second gets right
    statistic: float | None
    p_value: float | None
    method: str


@dataclass(frozen=True)
class Wilcoxon(Typed):
    n: int
    n_nonzero: int
    w_plus: float | None
    w_minus: float | None
    statistic: float | None
    z: float | None
    p_value: float | None
    method: str
    note: str | None
    median_difference: float | None
    better: str | None


@dataclass(frozen=True)
class PairTests(Typed):
    gender: McNemar
    age: McNemar
    years: Wilcoxon | None = None


@dataclass(frozen=True)
class Coverage(Typed):
    seen: int
    scored: int
    counts: Mapping[str, int]
    years_faces: int
    manifest_build: Mapping[str, Any] | None


@dataclass(frozen=True)
class Detection(Typed):
    detector: str
    pick: str
    photos: int
    found: int
    recall: float | None
    taken_whole: int
    missed: tuple[str, ...]


@dataclass(frozen=True)
class Failure(Typed):
    file: str
    error: str


@dataclass(frozen=True)
class LeftOut(Typed):
    file: str
    reason: str


@dataclass(frozen=True)
class DataProvenance(Typed):
    source: str
    split: str | None
    manifest: Mapping[str, Any] | None  # path, bytes, sha256
    labels: Mapping[str, Any] | None
    images_folder: str | None
    listed: int
    used: int
    skipped: tuple[Failure, ...]
    left_out_by_name: tuple[LeftOut, ...]
    images_sha256: str


@dataclass(frozen=True)
class Bootstrap(Typed):
    resamples: int
    level: float
    method: str


@dataclass(frozen=True)
class Provenance(Typed):
    tool: Mapping[str, str]
    command_line: str | None
    rerun_command: str | None
    working_directory: str
    date: str
    software: Mapping[str, str | None]
    models: Mapping[str, Mapping[str, Any]]  # what each model's predictor tells of itself (files, engine, ...)
    data: DataProvenance
    seed: int
    bootstrap: Bootstrap
    calibration_bins: int
    min_group_n: int


@dataclass(frozen=True)
class Figure(Typed):
    path: str
    caption: str


@dataclass(frozen=True)
class Evaluation(Typed):
    """What evaluate and compare return (and print with --json): every architecture's result on the same faces."""

    schema: int
    command: str  # evaluate, compare
    source: str
    results: Mapping[str, ModelResult]  # by architecture, in the order run
    tests: Mapping[str, PairTests]  # by pair, "a vs b"
    coverage: Coverage
    detection: Detection | None
    failed: tuple[Failure, ...]
    skipped: Mapping[str, int]
    training_overlap: Mapping[str, int]
    provenance: Provenance
    figures: tuple[Figure, ...] = ()
    report: str | None = None

    @property
    def plots(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.figures)


@dataclass(frozen=True)
class CountsResult(Typed):
    """One architecture's answers over a predict run: faces per gender and age class."""

    arch: str
    model: str
    n: int  # faces answered
    counts: Mapping[str, Mapping[str, int]]  # gender -> age class -> faces


@dataclass(frozen=True)
class PredictCoverage(Typed):
    files: int  # inputs taken (files, or paths read from stdin)
    frames: int  # images and video frames decoded
    faces: int  # faces answered
    errors: int  # inputs or frames that could not be read


@dataclass(frozen=True)
class PredictSummary(Typed):
    """What `predict --summary --json` prints as its last line (after the face records), in the envelope of an
    Evaluation: schema, command, results by architecture, coverage."""

    schema: int
    command: str  # predict
    results: Mapping[str, CountsResult]
    coverage: PredictCoverage
