"""`agegender train`: train one architecture on a manifest's train split, chosen on val."""

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from agegender_cli.archs import registry
from agegender_cli.archs.entry import Knob
from agegender_cli.cli import options as o
from agegender_cli.cli.common import RichReporter, fail_cleanly, print_json, stdout
from agegender_cli.config import AUGMENTATIONS, DEFAULT_MANIFEST, EVAL_DETECTORS, YearsTrainConfig
from agegender_cli.errors import AgeGenderError

TrainDetector, Augment = o.choice(EVAL_DETECTORS), o.choice(AUGMENTATIONS)


def _default(field: str) -> str:
    """' (default ...)' from the training configs of the architectures that have `field`."""
    values = {}
    for name in registry.names():
        config = registry.get(name).train_config()
        if hasattr(config, field):
            values[name] = getattr(config, field)
    if len(set(map(str, values.values()))) == 1:
        return f" (default {next(iter(values.values()))})"
    return " (default " + ", ".join(f"{k} {v}" for k, v in values.items()) + ")"


def _option(help_text: str, field: str, **kwargs: Any) -> Any:
    return typer.Option(help=help_text + _default(field), show_default=False, **kwargs)


def _knob_parameter(knob: Knob) -> inspect.Parameter:
    """`--NAME` for an architecture's own training option; None (not given) leaves its config's default."""
    kwargs: dict[str, Any] = {}
    kind: Any = o.choice(knob.choices) if knob.choices else knob.kind
    if knob.kind in (int, float):
        kwargs.update({k: v for k, v in (("min", knob.low), ("max", knob.high)) if v is not None})
    if knob.kind is float:
        kwargs["callback"] = o.positive if knob.positive else o.finite
    option = _option(knob.help, knob.name, **kwargs)
    return inspect.Parameter(knob.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                             annotation=Annotated[kind | None, option])


def with_architecture_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `train` every registered architecture's own training options, and the weight options a trainer takes
    (archs/entry.py), before its --years; the command receives their values as `own` (None: not given)."""
    trained = {f.name for name in registry.names() for f in dataclasses.fields(registry.get(name).train_config)}
    declared = [_knob_parameter(k) for k in registry.knobs()] + [p for p in o.weight_parameters() if p.name in trained]
    return o.with_added_options(command, declared, lambda values, _own: values, before="years", into="own")


@fail_cleanly
@with_architecture_options
def train(
    arch: o.OneArch = o.FIRST_ARCH,
    manifest: o.Manifest = DEFAULT_MANIFEST,
    out: Annotated[Path | None, _option("Run folder.", "out")] = None,
    epochs: Annotated[int | None, _option("Most epochs.", "epochs", min=1, max=10_000)] = None,
    batch_size: Annotated[int | None, _option("Batch size.", "batch_size", min=1, max=4096)] = None,
    lr: Annotated[float | None, _option("Learning rate.", "lr", min=0.0, callback=o.positive)] = None,
    weight_decay: Annotated[float | None, _option("Weight decay.", "weight_decay", min=0.0, callback=o.finite)] = None,
    device: Annotated[o.DeviceName | None, _option("auto, cpu or cuda.", "device")] = None,
    precision: Annotated[o.TrainPrecisionName | None, _option("auto, bf16 or fp32.", "precision")] = None,
    seed: Annotated[int | None, _option("Random seed.", "seed", min=0, max=o.MAX_SEED)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in the same folder.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Train anew in an --out that already holds a run "
                                                                "(its files are replaced).")] = False,
    init: Annotated[Path | None, typer.Option(help="Start from this trained model folder (fine-tuning).")] = None,
    plot_format: Annotated[o.PlotFormatName | None, _option("Training curves' format: png, svg or pdf.",
                                                            "plot_format")] = None,
    detector: Annotated[TrainDetector | None, _option(
        "How faces are framed: none (the images are face crops), or auto, mtcnn, haar: found in photos and "
        "aligned as predict does (cached; images without a face are left out).", "detector")] = None,
    pick: Annotated[o.PickName | None, _option(
        "With --detector: which found face of a photo is the labelled one, the largest or the one nearest the "
        "centre (LFW).", "pick")] = None,
    augment: Annotated[Augment | None, _option(
        "geometric (flip, turn, crop) or wild (also the detector's jitter, blur, low resolution, JPEG, colour, "
        "grayscale).", "augment")] = None,
    years: Annotated[bool, typer.Option("--years", help="Add an age-in-years head to the model given by --init "
                                                        "(default: the bundled one), trained on every train face "
                                                        "with an age, gap ages included; its class outputs stay "
                                                        "as they are.")] = False,
    as_json: o.Json = False,
    own: dict[str, Any] | None = None,
) -> None:
    """Train an architecture on the train split; best-val checkpoint, curves, resumable."""
    from agegender_cli import service

    (name,) = o.parse_archs(arch, one=True)
    if resume and overwrite:
        raise typer.BadParameter("--resume continues the run in --out, --overwrite replaces it: choose one",
                                 param_hint="--overwrite")
    if pick is not None and detector in (None, "none"):
        raise typer.BadParameter("--pick chooses among the faces a detector finds: give --detector auto, mtcnn or "
                                 "haar too", param_hint="--pick")
    if years:
        return _train_years(name, manifest, init, out, batch_size, seed, overwrite, as_json, detector, pick)
    given = dict(manifest=manifest, out=out, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                 device=device, precision=precision, seed=seed, resume=resume or None, init=init,
                 plot_format=plot_format, detector=detector, pick=pick, augment=augment, **(own or {}))
    try:
        cfg = registry.train_config(name, given)
    except AgeGenderError as exc:
        raise typer.BadParameter(str(exc)) from None
    result = service.train(name, cfg, RichReporter(), overwrite=overwrite)
    if as_json:
        print_json(result)
        return
    best = ", ".join(f"{task} {epoch}" for task, epoch in result["best_epoch"].items())
    stdout.print(f"[bold]{name}[/] trained: {result['epochs_run']} epochs, best epoch {best}")
    for key in ("checkpoint", "curves", "history"):
        if result.get(key):
            stdout.print(f"{key}: {result[key]}")
    if result.get("val"):
        stdout.print("val: " + ", ".join(f"{k} {v:.4f}" for k, v in result["val"].items() if isinstance(v, float)))


def _train_years(name: str, manifest: Path, init: Path | None, out: Path | None, batch_size: int | None,
                 seed: int | None, overwrite: bool, as_json: bool, detector: str | None = None,
                 pick: str | None = None) -> None:
    from agegender_cli import service

    defaults = YearsTrainConfig()
    cfg = YearsTrainConfig(arch=name, manifest=manifest, init=init, out=out,
                           batch_size=batch_size or defaults.batch_size, seed=defaults.seed if seed is None else seed,
                           detector=detector or defaults.detector, pick=pick or defaults.pick)
    result = service.train_years(cfg, RichReporter(), overwrite=overwrite)
    if as_json:
        print_json(result)
        return
    chosen = result["chosen"]
    stdout.print(f"[bold]{name}[/] years head ({chosen['kind']}, sigma {chosen['sigma']}): val MAE "
                 f"{result['val_mae']:.2f} years on {result['val_faces']} faces, trained on {result['train_faces']}")
    stdout.print(f"model: {result['checkpoint']}")
