"""`agegender predict`: gender and age group of every face in photos, folders, globs and videos."""

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agegender_cli.cli import options as o
from agegender_cli.cli.common import RichReporter, errors, fail_cleanly, show_table, stderr, stdout
from agegender_cli.cli.tables import natural_width
from agegender_cli.config import SHARD_FORMATS, ModelOptions, PredictConfig, RayConfig
from agegender_cli.formatting import pct, plural
from agegender_cli.labels import AGE_CLASSES, GENDERS

D = PredictConfig()
M = D.options
R = RayConfig()


@fail_cleanly
@o.with_model_options(M)
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Images, folders, globs, videos, or - (paths on stdin).")],
    arch: o.Archs = "both",
    detector: o.Detector = D.detector,
    min_face: Annotated[int, typer.Option(min=1, max=100_000, help="Smallest face side in pixels.")] = D.min_face,
    min_score: Annotated[float, typer.Option(min=0.0, max=1.0, callback=o.finite,
                                             help="Smallest detection score.")] = D.min_score,
    every: Annotated[int, typer.Option(min=1, max=1_000_000, help="Video: every Nth frame.")] = D.every,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Decoding threads.")] = D.workers,
    annotate: Annotated[Path | None, typer.Option(
        help="Write annotated copies here: photos as JPEG, each video as one video of its kind.")] = D.annotate,
    csv: Annotated[Path | None, typer.Option(help="Also write one CSV row per face; - for stdout.")] = D.csv,
    summary: Annotated[bool, typer.Option("--summary/--no-summary", help="Counts of gender x age class over all faces "
                                                            "(--json: the last line).")] = D.summary,
    summary_plot: Annotated[Path | None, typer.Option(
        help="Bar chart of the summary, in the format its suffix names (.png, .svg, .pdf).")] = D.summary_plot,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Let --csv and --summary-plot replace a file agegender did not write.")] = D.overwrite,
    plot_format: Annotated[o.PlotFormatName | None, typer.Option(
        help="Format of --summary-plot when its name has no figure suffix (default png).")] = D.plot_format,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object per face (with --ray: the "
                                                         "run's summary).")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="Run on a Ray cluster (pip install 'agegender\\[ray]'): records "
                                                    "as shards under --out.")] = False,
    ray_address: Annotated[str, typer.Option(help="With --ray: local (a Ray started for the run), auto, HOST:PORT "
                                                  "or ray://HOST:PORT.")] = R.address,
    ray_actors: Annotated[int, typer.Option(min=0, max=10_000, help="With --ray: model actors; 0: one per CPU "
                                                                    "of each node, or one per GPU.")] = R.actors,
    resume: Annotated[bool, typer.Option("--resume", help="With --ray: continue the job stopped in --out (its "
                                                          "finished shards are kept).")] = R.resume,
    shard_size: Annotated[int, typer.Option(min=1, max=1_000_000, help="With --ray: photos (or runs of video "
                                                                        "frames) per shard.")] = R.shard_inputs,
    out: Annotated[Path | None, typer.Option(help="With --ray: folder for the shards and _SUCCESS (on several "
                                                  "machines, one they all see).")] = R.out,
    shard_format: Annotated[o.choice(SHARD_FORMATS), typer.Option("--format", help="With --ray: jsonl or "
                                                                                   "parquet shards.")] = R.format,
    options: ModelOptions = M,
) -> None:
    """Detect faces (MTCNN; a face crop is taken whole) and tell each one's gender and age group with one or both
    models."""
    import json

    from agegender_cli import service

    archs = o.parse_archs(arch)
    if ray or out is not None:
        ray_cfg = _ray_config(ray, out, annotate, csv, ray_address, ray_actors, shard_format, resume, shard_size)
        cfg = PredictConfig(inputs=tuple(inputs), archs=archs, detector=detector, min_face=min_face,
                            min_score=min_score, every=every, options=options, summary=summary,
                            summary_plot=summary_plot, overwrite=overwrite)
        return _predict_on_ray(cfg, ray_cfg, as_json)
    for option, given in (("--resume", resume), ("--shard-size", shard_size != R.shard_inputs)):
        if given:
            raise typer.BadParameter(f"{option} is for --ray jobs; add --ray --out DIR", param_hint=option)
    csv_to_stdout = csv is not None and str(csv) == "-"
    if csv_to_stdout and as_json:
        raise typer.BadParameter("--json and --csv - both write to stdout; choose one", param_hint="--csv")
    cfg = PredictConfig(inputs=tuple(inputs), archs=archs, detector=detector, min_face=min_face,
                        min_score=min_score, every=every, workers=workers, options=options, annotate=annotate,
                        csv=csv, summary=summary, summary_plot=_checked_figure(summary_plot, plot_format),
                        plot_format=plot_format, overwrite=overwrite)
    rows: list[dict] = []
    table = show_table(as_json or csv_to_stdout)

    def emit(row: dict) -> None:
        if as_json:
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
        elif table and len(rows) < 10_000:
            rows.append(row)

    result = service.predict(cfg, emit, RichReporter())
    if table:
        stdout.print(faces_table(rows, archs, folders=input_folders(inputs), width=stdout.width))
        if len(rows) >= 10_000:
            stderr.print("table shows the first 10,000 rows; use --json or --csv for all")
    if summary and as_json:  # the last JSON line, after the face records: the summary, result schema 1
        sys.stdout.write(json.dumps(service.predict_summary(cfg, result).to_json()) + "\n")
    elif summary or summary_plot:
        (stderr if as_json or csv_to_stdout else stdout).print(summary_table(result, archs))
    _print_counts(result)


def _print_counts(result: dict) -> None:
    """The closing line; with unreadable inputs it is printed even with --quiet, and the exit code is 1."""
    line = closing_line(result)
    (errors if result["errors"] else stderr).print(line)
    if result["errors"]:
        raise typer.Exit(1)


def closing_line(result: dict) -> str:
    """'1 face in 2 images/frames; 0 unreadable'."""
    return (f"{plural(result['faces'], 'face')} in {plural(result['frames'], 'image/frame', 'images/frames')}; "
            f"{result['errors']:,} unreadable")


def _checked_figure(path: Path | None, plot_format: str | None) -> Path | None:
    """A summary plot whose figure suffix and --plot-format disagree is a usage error."""
    from agegender_cli.config import PLOT_FORMATS

    suffix = path.suffix.lstrip(".").lower() if path is not None else ""
    if suffix in PLOT_FORMATS and plot_format is not None and plot_format != suffix:
        raise typer.BadParameter(f"{path} names a .{suffix} file but --plot-format is {plot_format}",
                                 param_hint="--plot-format")
    return path


def _ray_config(ray: bool, out: Path | None, annotate: Path | None, csv: Path | None, address: str, actors: int,
                shard_format: str, resume: bool, shard_size: int) -> RayConfig:
    """The --ray options, checked together (exit 2 on a combination that does not apply)."""
    if not ray:
        raise typer.BadParameter("--out is where --ray runs write their shards; add --ray (or use --json/--csv)",
                                 param_hint="--out")
    if out is None:
        raise typer.BadParameter("--ray writes its records as shards into a folder: give --out DIR", param_hint="--ray")
    for option, value in (("--annotate", annotate), ("--csv", csv)):
        if value is not None:
            raise typer.BadParameter(f"{option} is not available with --ray; the records are in --out's shards",
                                     param_hint=option)
    return RayConfig(address=address, actors=actors, out=out, format=shard_format, resume=resume,
                     shard_inputs=shard_size)


def _predict_on_ray(cfg: PredictConfig, ray_cfg: RayConfig, as_json: bool) -> None:
    import json

    from agegender_cli import service

    result = service.predict_on_ray(cfg, ray_cfg, RichReporter())
    if as_json:  # the job's summary, as _SUCCESS holds it (its counts: the summary's)
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if cfg.summary or cfg.summary_plot:
        (stderr if as_json else stdout).print(summary_table(result, cfg.archs))
    before = (f"; {plural(result['done_before'], 'input')} of them finished by an earlier run"
              if result.get("done_before") else "")
    stderr.print(f"{plural(result['records'], 'record')} in {plural(len(result['shards']), ray_cfg.format + ' shard')} "
                 f"under {result['out']} (summary: _SUCCESS){before}", highlight=False, soft_wrap=True)
    _print_counts(result)


def input_folders(inputs: list[str]) -> tuple[str, ...]:
    """The folders among the inputs, as the paths under them are written."""
    return tuple(str(Path(spec)) for spec in inputs if spec != "-" and os.path.isdir(spec))


def short_name(file: str, folders: tuple[str, ...]) -> str:
    """A file as the table shows it: its path under the folder given, else its name."""
    for folder in folders:
        prefix = folder.rstrip(os.sep) + os.sep
        if file.startswith(prefix):
            return file[len(prefix):]
    return Path(file).name


def faces_table(rows: list[dict], archs: tuple[str, ...], folders: tuple[str, ...] = (),
                width: int | None = None) -> Table:
    """One row per face; on a terminal narrower than the table the box column goes and long cells fold."""
    table = _faces_table(rows, archs, folders, box=True)
    if width is not None and natural_width(table) > width:
        table = _faces_table(rows, archs, folders, box=False)
    return table


def _faces_table(rows: list[dict], archs: tuple[str, ...], folders: tuple[str, ...], box: bool) -> Table:
    table = Table(title="Faces found, with each model's gender and age class")
    table.add_column("file", overflow="fold")
    table.add_column("face", justify="right", overflow="fold")
    if box:
        table.add_column("box", overflow="fold")
    table.add_column("score", justify="right", overflow="fold")
    for arch in archs:
        table.add_column(f"{arch} gender", justify="right", overflow="fold")
        table.add_column(f"{arch} age", justify="right", overflow="fold")
    for row in rows:
        name = escape(short_name(row["file"], folders)) + _when(row)
        if "error" in row or row.get("box") is None:  # the reason after the name; the other cells stay empty
            table.add_row(name, "", f"[red]{escape(row['error'])}[/]" if "error" in row else "[yellow]no face found[/]")
            continue
        cells = []
        for arch in archs:
            out = row[arch]
            years = f" ({out['age_years']:.1f} y)" if out.get("age_years") is not None else ""
            cells += [f"{out['gender']} {pct(out['gender_prob'], 0)}", f"{out['age']} {pct(out['age_prob'], 0)}{years}"]
        where = [",".join(map(str, row["box"])) + (" (whole image)" if row.get("note") else "")] if box else []
        table.add_row(name, str(row["face"]), *where, pct(row["score"], 0), *cells)
    return table


def _when(row: dict) -> str:
    """' frame 12 (0.48 s)' for a video frame, '' for a photo."""
    if row.get("frame") is None:
        return ""
    return f" frame {row['frame']}" + ("" if row.get("time") is None else f" ({row['time']:.2f} s)")


def summary_table(result: dict, archs: tuple[str, ...]) -> Table:
    table = Table(title="Summary: faces per gender and age class")
    table.add_column("age", overflow="fold")
    for arch in archs:
        for gender in GENDERS:
            table.add_column(f"{arch} {gender}", justify="right", overflow="fold")
    totals = {arch: sum(sum(v.values()) for v in result["counts"][arch].values()) or 1 for arch in archs}
    for age in AGE_CLASSES:
        cells = []
        for arch in archs:
            for gender in GENDERS:
                n = result["counts"][arch][gender][age]
                cells.append(f"{n} ({n / totals[arch]:.0%})")
        table.add_row(age, *cells)
    return table
