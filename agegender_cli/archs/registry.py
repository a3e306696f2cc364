"""The only place that knows the architectures by name: --arch parsing, predictors, trainers, framings, and what
each declares (its training options, weight options and capabilities: archs/entry.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agegender_cli.archs import caffenet, facenet, fused
from agegender_cli.archs.entry import INT8, ONNX, Entry, Knob, WeightOption
from agegender_cli.config import ModelOptions
from agegender_cli.errors import AgeGenderError

if TYPE_CHECKING:  # base imports numpy; `agegender --help` stays light
    from agegender_cli.archs.base import Architecture, Log, Predictor, Trainer

ALL = ("both", "all")  # --arch words meaning every registered architecture
_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    """Add an architecture (a later one with the same name replaces the earlier): an archs/entry.py Entry."""
    if not isinstance(arch, Entry):
        raise TypeError(f"{arch!r}: a registry entry subclasses agegender_cli.archs.entry.Entry")
    _REGISTRY[arch.name] = arch
    return arch


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Architecture:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AgeGenderError(f"unknown architecture '{name}': use {_choices()}") from None


def _choices() -> str:
    return ", ".join(names()) + " or both"


def parse_archs(value: str | Sequence[str]) -> tuple[str, ...]:
    """'both' (or 'all') -> every architecture; a comma-separated list is kept in order."""
    if isinstance(value, str):
        value = value.split(",")
    wanted = tuple(v.strip() for v in value if v.strip())
    if len(wanted) == 1 and wanted[0] in ALL:
        return names()
    unknown = [n for n in wanted if n not in _REGISTRY]
    if unknown or not wanted:
        raise AgeGenderError(f"unknown architecture {', '.join(unknown) or '(none)'}: use {_choices()}")
    return tuple(dict.fromkeys(wanted))


def parse_models(values: Iterable[str], archs: Sequence[str]) -> tuple[tuple[str, Path], ...]:
    """--model ARCH=PATH (repeatable), or a bare PATH when exactly one architecture runs."""
    models: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in _REGISTRY:
            arch = name
        elif len(archs) == 1:
            arch, path = archs[0], value
        else:
            raise AgeGenderError(f"'{value}': with several architectures write ARCH=PATH ({', '.join(archs)})")
        if arch not in archs:
            raise AgeGenderError(f"'{value}': {arch} is not among the architectures run ({', '.join(archs)})")
        if not path:
            raise AgeGenderError(f"'{value}': no path after '='")
        models[arch] = Path(path)
    return tuple(models.items())


def load_predictor(name: str, options: ModelOptions | None = None, log: Log | None = None) -> Predictor:
    """The predictor of architecture `name`: the model given in `options`, else the bundled one."""
    options = options or ModelOptions()
    say = log or (lambda _message: None)
    arch = get(name)
    _check_capabilities(arch, options)
    if arch.parts:  # a composite: its parts first, then it on them
        return arch.compose({part: load_predictor(part, options, say) for part in arch.parts},
                            options.model_for(name), options, say)
    return arch.load_predictor(options.model_for(name), options, say)


def _check_capabilities(arch: Entry, options: ModelOptions) -> None:
    """--precision int8 and --engine onnx only for an architecture that declares them."""
    if options.precision == "int8" and not arch.can(INT8):
        raise AgeGenderError(f"--precision int8: {arch.name} has no int8 model; use auto, fp32 or bf16")
    if options.engine == "onnx" and not arch.can(ONNX):
        raise AgeGenderError(f"--engine onnx: {arch.name} does not run on ONNX Runtime; use auto or torch")


def resolve_weights(name: str, options: ModelOptions, log: Log | None = None) -> ModelOptions:
    """`options` with the weight files `name` would fetch or convert resolved to local files now (the options as
    they are for an architecture without such files), so that they can be shipped to machines offline."""
    return get(name).resolve_weights(options.model_for(name), options, log or (lambda _message: None))


def framing(name: str, detector: str, options: ModelOptions) -> str:
    """How a detected face is cropped for `name`: like the crops its model was trained on."""
    return get(name).framing(detector, options)


def trainer(name: str) -> Trainer:
    return get(name).trainer()


def train_config(name: str, given: Mapping[str, Any]) -> Any:
    """The training config of `name`: its defaults with the `given` values (None: not given) put in.
    A value the architecture has no setting for is refused, naming the option."""
    base = get(name).train_config()
    known = {f.name for f in dataclasses.fields(base)}
    values = {k: v for k, v in given.items() if v is not None}
    foreign = sorted(k for k in values if k not in known)
    if foreign:
        options = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise AgeGenderError(f"{options} does not apply to --arch {name}")
    return dataclasses.replace(base, **values)


def load_predictors(wanted: Sequence[str], options: ModelOptions | None = None, log: Log | None = None
                    ) -> dict[str, Predictor]:
    """The predictors of `wanted`, each model loaded once: a composite architecture (one with `parts`, the fused
    one) whose parts are wanted too is built on them (compose) instead of loading them again."""
    options = options or ModelOptions()
    say = log or (lambda _message: None)
    loaded: dict[str, Predictor] = {}
    for name in sorted(wanted, key=lambda n: bool(composite_parts(n, wanted))):
        parts = composite_parts(name, wanted)
        loaded[name] = (get(name).compose({p: loaded[p] for p in parts}, options.model_for(name), options, say)
                        if parts else load_predictor(name, options, say))
    return {name: loaded[name] for name in wanted}


def composite_parts(name: str, wanted: Sequence[str]) -> tuple[str, ...]:
    """The parts of a composite architecture when every one of them is among `wanted` (else ())."""
    parts = get(name).parts
    return parts if parts and set(parts) <= set(wanted) else ()


def weight_options() -> tuple[WeightOption, ...]:
    """Every registered architecture's weight options, each name once (`--NAME` of the commands and the API)."""
    return _once_each("weight option", [(arch.name, w) for arch in _REGISTRY.values() for w in arch.weight_options])


def knobs() -> tuple[Knob, ...]:
    """Every registered architecture's own training options, each name once (`train --NAME`)."""
    return _once_each("training option", [(arch.name, k) for arch in _REGISTRY.values() for k in arch.knobs])


def _once_each(what: str, declared: Sequence[tuple[str, Any]]) -> tuple:
    """Declarations by name; two architectures may share one only if they declare it alike (one option serves
    both: a different range or help for each could not be offered)."""
    found: dict[str, tuple[str, Any]] = {}
    for arch, item in declared:
        first = found.setdefault(item.name, (arch, item))
        if first[1] != item:
            raise TypeError(f"the {what} {item.name} of {arch} differs from {first[0]}'s: declare it alike or "
                            "name it otherwise")
    return tuple(item for _, item in found.values())


def capable(name: str, capability: str) -> bool:
    return get(name).can(capability)


def resume_files() -> dict[str, str]:
    """The file each architecture's trainer leaves to resume from, by architecture."""
    return {name: arch.resume_file for name, arch in _REGISTRY.items() if arch.resume_file}


register(facenet.ARCH)
register(caffenet.ARCH)
register(fused.ARCH)
