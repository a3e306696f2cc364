"""The base of every registry entry: what an architecture declares (training config, options, capabilities), with
the defaults of one that declares nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agegender_cli.archs.base import Log
    from agegender_cli.config import ModelOptions

# optional capabilities an architecture may declare (Architecture.capabilities)
YEARS = "years"  # its models can learn age in years (`train --years`): predictors with years_features/with_years
INT8 = "int8"  # it runs in int8 (`--precision int8`)
ONNX = "onnx"  # it exports itself to ONNX and runs on ONNX Runtime (`--engine onnx`)
CAPABILITIES = (YEARS, INT8, ONNX)


@dataclass(frozen=True)
class WeightOption:
    """A file or folder of weights an architecture can be given to run with (`--NAME` in predict, evaluate and
    compare, and in train where its training config has a field of that name; a keyword of the Python API), kept
    in ModelOptions.weights under `name`."""

    name: str  # a Python identifier: backbone_weights -> --backbone-weights
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Knob:
    """A training setting of an architecture that `agegender train` offers as `--NAME`: a field of its training
    config (whose default is the config's), its type and the values it takes."""

    name: str  # the training config's field
    help: str
    kind: type = str  # str, int, float, bool or Path
    choices: tuple[str, ...] = ()  # a str knob's values
    low: float | None = None  # a number's smallest value
    high: float | None = None  # a number's largest value
    positive: bool = False  # a number that must be above `low`

    def __post_init__(self) -> None:
        if self.kind not in (str, int, float, bool, Path):
            raise TypeError(f"knob {self.name}: kind {self.kind} is not str, int, float, bool or Path")


class Entry:
    """A registry entry's declarations and their defaults; an architecture subclasses it and sets `name`,
    `summary`, `train_config` and what it has of the rest, and gives load_predictor (or, a composite, compose),
    framing and trainer (archs/base.py's Architecture)."""

    name: str
    summary: str  # one line, shown in help and tables
    train_config: type  # the frozen dataclass of its training defaults, in its own folder
    knobs: tuple[Knob, ...] = ()  # its own training options (`train --NAME`), beyond those every trainer takes
    weight_options: tuple[WeightOption, ...] = ()  # weights it can be given to run (`--NAME`)
    capabilities: frozenset[str] = frozenset()  # of CAPABILITIES
    parts: tuple[str, ...] = ()  # a composite's architectures (fused); () for a model of its own
    resume_file: str | None = None  # the file its trainer leaves in a run folder to resume from

    def resolve_weights(self, model: Path | None, options: ModelOptions, log: Log) -> ModelOptions:
        """`options` with every weight file this architecture would download, convert or look up in a cache
        resolved to a local file now (`predict --ray` ships those files to the workers); as given by default."""
        return options

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def __repr__(self) -> str:
        return f"<architecture {self.name}>"


def declared(entry: Any) -> dict[str, Any]:
    """What an entry declares, for `agegender info` and the docs."""
    return {"summary": entry.summary, "capabilities": sorted(entry.capabilities), "parts": list(entry.parts),
            "weight_options": [w.flag for w in entry.weight_options],
            "train_options": ["--" + k.name.replace("_", "-") for k in entry.knobs]}
