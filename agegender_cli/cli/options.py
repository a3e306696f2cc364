"""The options several commands share, one definition and one help text each; the values come from config."""

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from agegender_cli.archs import registry
from agegender_cli.config import (
    DETECTORS,
    DEVICES,
    ENGINES,
    EVAL_DETECTORS,
    EVAL_SPLITS,
    MAX_SEED,
    PICK_RULES,
    PLOT_DPI,
    PLOT_FORMATS,
    PRECISIONS,
    TRAIN_PRECISIONS,
    ModelOptions,
)
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.detectors import summaries as detector_summaries
from agegender_cli.formatting import plural

if TYPE_CHECKING:
    from agegender_cli.evaluation.result import Detection, Evaluation


def choice(values: tuple[str, ...]) -> Any:
    """A str type that only takes `values` (Typer shows them and refuses others with exit code 2)."""
    return Literal[values]  # Literal[("a", "b")] is Literal["a", "b"]


FIRST_ARCH = registry.names()[0]  # train's default: the first registered architecture
ARCH_HELP = f"Architectures: {', '.join(registry.names())}, comma-separated, or both."

Archs = Annotated[str, typer.Option("--arch", help=ARCH_HELP)]
OneArch = Annotated[str, typer.Option("--arch", help=f"One architecture: {', '.join(registry.names())}.")]
Models = Annotated[
    list[str] | None,
    typer.Option("--model", metavar="[ARCH=]PATH", help="A trained model, ARCH=PATH (repeatable), or PATH when one "
                                                        "architecture runs. Default: the bundled models."),
]
DeviceName, PrecisionName, TrainPrecisionName = choice(DEVICES), choice(PRECISIONS), choice(TRAIN_PRECISIONS)


def finite(value: float | None) -> float | None:
    """A callback: the value must be a number (click's ranges let nan and inf through)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def positive(value: float | None) -> float | None:
    """A callback: the value must be a finite number above 0."""
    if finite(value) is not None and value <= 0:
        raise typer.BadParameter(f"{value} is not above 0")
    return value




Engine = Annotated[choice(ENGINES), typer.Option(help="auto (onnx on a CPU in fp32, else torch), onnx (ONNX "
                                                      "Runtime), torch (PyTorch) or opencv (caffenet by cv2.dnn).")]
Device = Annotated[DeviceName, typer.Option(help="auto (a CUDA GPU when there is one), cpu or cuda.")]
Precision = Annotated[PrecisionName, typer.Option(
    help="auto (bf16 where the hardware runs it natively; else fp32, or int8 on ONNX Runtime where a model ships "
         "ranges that kept its classes on val), bf16, fp32 or int8 (ONNX Runtime, wherever a model ships ranges).")]
BatchSize = Annotated[int, typer.Option(min=1, max=4096, help="Images per batch.")]
Manifest = Annotated[Path, typer.Option(help="Manifest from `agegender dataset`.")]
Split = Annotated[choice(EVAL_SPLITS), typer.Option(
    help="Split of the manifest, or all: every image it lists (a set of your own; images a model trained on "
         "are then counted and said).")]
Images = Annotated[Path | None, typer.Option(help="A UTKFace-named folder, evaluated whole (instead of a split); "
                                                 "with --labels, the folder the labels' image paths are under.")]
EvalLabels = Annotated[Path | None, typer.Option(
    "--labels", help="A labels file (CSV/TSV with path, age and/or gender columns; FairFace; Adience): every "
                     "image it labels is evaluated (instead of a split), found beside it or under --images.")]
Plots = Annotated[Path | None, typer.Option(help="Folder for ROC, confusion, error and reliability figures.")]
PlotFormatName = choice(PLOT_FORMATS)
PLOT_FORMAT_HELP = f"Figure format: png ({PLOT_DPI} dpi), svg or pdf."
PlotFormat = Annotated[PlotFormatName, typer.Option(help=PLOT_FORMAT_HELP)]
Normalize = Annotated[bool, typer.Option("--normalize", help="Confusion matrices as shares of each true class "
                                                             "(rows sum to 1) instead of counts.")]
Bootstrap = Annotated[int, typer.Option(min=1, max=100_000, help="Bootstrap resamples for the 95% intervals "
                                                                  "(shares of faces take Wilson's interval).")]
Detector = Annotated[choice(DETECTORS), typer.Option(help=f"Face detector: {detector_summaries()}.")]
EvalDetector = Annotated[choice(EVAL_DETECTORS), typer.Option(
    "--detector", help=f"{detector_summaries()}. In photos, the labelled face is the one nearest the label's box, "
                       "else by --pick.")]
PickName = choice(PICK_RULES)
Pick = Annotated[PickName, typer.Option(
    help="Which found face of a photo is the labelled one when its label gives no box: the largest, or the one "
         "nearest the image's centre (LFW).")]
Seed = Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Random seed.")]
Json = Annotated[bool, typer.Option("--json", help="Print only JSON.")]
Threads = Annotated[int | None, typer.Option(min=1, max=1024, metavar="N",
                                             help="CPU threads for torch and OpenCV (default: all cores).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or messages on stderr (errors still "
                                                           "print).")]
NoTable = Annotated[bool, typer.Option("--no-table", help="No table on stdout (off anyway with --json or --csv -).")]


def show_version(value: bool) -> None:
    """The --version callback: print it and exit."""
    if value:
        from agegender_cli import __version__

        typer.echo(f"agegender {__version__}")
        raise typer.Exit()


Version = Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                       help="Show the version and exit.")]


def with_shell_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the global options (--threads, --quiet/-q, --no-table, --version), so that they work after
    the command's name as well as before it; a value given after it wins."""
    from agegender_cli.cli.common import apply_shell_options

    def template(threads: Threads = None, quiet: Quiet = False, no_table: NoTable = False,
                 version: Version = False) -> None: ...

    context = inspect.Parameter("shell_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

    def apply(given: dict[str, Any], _kwargs: dict[str, Any]) -> None:
        root = given[context.name].find_root().params
        threads = given["threads"] if given["threads"] is not None else root.get("threads")
        apply_shell_options(threads, given["quiet"] or bool(root.get("quiet")),
                            not (given["no_table"] or root.get("no_table")))

    return with_added_options(command, [*_parameters(template), context], apply)


def _parameters(template: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(template, eval_str=True).parameters.values())


def with_added_options(command: Callable[..., Any], added: list[inspect.Parameter],
                       gather: Callable[[dict[str, Any], dict[str, Any]], Any], *, before: str | None = None,
                       into: str | None = None) -> Callable[..., Any]:
    """`command` offering the `added` parameters too (options shared by several commands, or declared by the
    architectures), placed before its parameter `before` (after all of them without one). The wrapper takes
    their values out of the call and hands what `gather(values, the command's own values)` makes of them to the
    command as its parameter `into` (with `into` None, `gather` only acts on them)."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != into]
    at = next((i for i, p in enumerate(own) if p.name == before), len(own))

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        gathered = gather({p.name: kwargs.pop(p.name) for p in added}, kwargs)
        return command(**kwargs) if into is None else command(**{into: gathered}, **kwargs)

    set_parameters(wrapper, own[:at] + added + own[at:])
    return wrapper


def set_parameters(wrapper: Callable[..., Any], parameters: list[inspect.Parameter]) -> None:
    """Give `wrapper` these parameters, and the annotations to match (Typer reads both the signature and the type
    hints; the annotations `functools.wraps` copies are the wrapped function's alone)."""
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not p.empty}


def print_detection(detection: "Detection | None") -> None:
    """One line on how many labelled faces the detector found in the photos (evaluate/compare --detector)."""
    if not detection:
        return
    from agegender_cli.cli.common import stdout

    recall = "-" if detection.recall is None else f"{100 * detection.recall:.2f}%"
    whole = f", {plural(detection.taken_whole, 'photo')} taken whole as a face crop" if detection.taken_whole \
        else ""
    missed = len(detection.missed)
    pick = " nearest the centre" if detection.pick == "centre" else ""
    stdout.print(f"detection ({detection.detector}): the labelled face{pick} was found in {detection.found:,} of "
                 f"{plural(detection.photos, 'photo')}, recall {recall}{whole}; "
                 f"{plural(missed, 'other photo')} left out of the metrics (--json: detection.missed)")


def print_skipped(skipped: Mapping[str, int] | None) -> None:
    """One stderr line: how many images were left out of the metrics, and why (--json: skipped)."""
    if not skipped or not any(skipped.values()):
        return
    from agegender_cli.cli.common import stderr
    from agegender_cli.evaluation.coverage import SKIP_WORDS

    reasons = ", ".join(f"{n} {SKIP_WORDS.get(kind, kind)} ({kind})" for kind, n in skipped.items() if n)
    stderr.print(f"skipped {sum(skipped.values())} images: {reasons}", highlight=False, soft_wrap=True)


def print_after_evaluation(result: "Evaluation") -> None:
    """What evaluate and compare say after their tables: the detection line, what was skipped (each unreadable
    file by name), and where the figures and the report went (messages: stderr, silent under -q)."""
    from agegender_cli.cli.common import RichReporter, errors

    print_detection(result.detection)
    print_skipped(result.skipped)
    for failure in result.failed:  # each named, with what to do in its error
        said = failure.error if failure.file in failure.error else f"{failure.file}: {failure.error}"
        errors.print(f"[red]skipped[/] {escape(said)}", highlight=False, soft_wrap=True)
    for figure in result.figures:
        RichReporter().message(f"figure: {figure.path}")
    if result.report:
        RichReporter().message(f"report: {result.report}")
    exit_if_failed(result)


def exit_if_failed(result: "Evaluation") -> None:
    """Exit code 1 when some images could not be read (the results cover the others)."""
    if result.failed:
        raise typer.Exit(1)


def parse_archs(value: str, *, one: bool = False) -> tuple[str, ...]:
    """--arch as a tuple of registered names; a bad or (with one=True) plural value is a usage error."""
    try:
        archs = registry.parse_archs(value)
    except AgeGenderError as exc:
        raise typer.BadParameter(str(exc), param_hint="--arch") from None
    if one and len(archs) != 1:
        raise typer.BadParameter(f"give one architecture: {', '.join(registry.names())}", param_hint="--arch")
    return archs


def weight_parameters(defaults: ModelOptions | None = None) -> list[inspect.Parameter]:
    """One `--NAME PATH` option per weight option the registered architectures declare (archs/entry.py)."""
    defaults = defaults or ModelOptions()
    return [inspect.Parameter(w.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults.weight(w.name),
                              annotation=Annotated[Path | None, typer.Option(w.flag, help=w.help)])
            for w in registry.weight_options()]


def with_model_options(defaults: ModelOptions) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the model options (--model, the architectures' weight options such as --backbone-weights,
    --engine, --device, --precision, --batch-size) with `defaults`; the command receives them as one ModelOptions,
    `--model` checked against its --arch."""

    def template(
        model: Models = None,
        engine: Engine = defaults.engine,
        device: Device = defaults.device,
        precision: Precision = defaults.precision,
        batch_size: BatchSize = defaults.batch_size,
    ) -> None: ...

    model, *rest = _parameters(template)
    weights = weight_parameters(defaults)

    def options(values: dict[str, Any], own: dict[str, Any]) -> ModelOptions:
        given = tuple((p.name, path) for p in weights if (path := values.pop(p.name)) is not None)
        archs = parse_archs(own["arch"])  # a bad --arch is named as such, before --model is read
        try:
            models = registry.parse_models(values.pop("model") or [], archs)
        except AgeGenderError as exc:
            raise typer.BadParameter(str(exc), param_hint="--model") from None
        return ModelOptions(models=models, weights=given, **values)

    return lambda command: with_added_options(command, [model, *weights, *rest], options, before="as_json",
                                              into="options")
