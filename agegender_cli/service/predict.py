"""`agegender predict`: faces found and answered in photos, videos and streams, locally or on Ray."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from agegender_cli.config import PredictConfig, RayConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display
from agegender_cli.ownership import foreign, marked, predictions_csv, refuse_foreign
from agegender_cli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from agegender_cli.evaluation.result import PredictSummary
from agegender_cli.service.guards import refuse_overwriting_inputs, renamed_outputs
from agegender_cli.service.loading import FaceModels
from agegender_cli.service.predict_csv import CsvSink


def _annotate(frame, relative: str, faces: list[dict], archs: tuple[str, ...], names, videos) -> None:
    """A photo's annotated copy as an image; a video's annotated frames into one video of the same kind."""
    from agegender_cli.faces.annotate import draw_records, write_image_atomic

    name = Path(relative or Path(frame.source).name)
    image = draw_records(frame.image, faces, archs)
    if frame.index is None:
        write_image_atomic(names.path_for(name.with_name(f"{name.stem}.jpg")), image)
    else:
        videos.write(frame.source, lambda: names.path_for(name), frame.fps, image)


def _say_missing(items, reporter: Reporter) -> None:
    """Inputs that cannot be read (missing, empty glob or folder), said at once, before any model loads; their
    records still come in input order."""
    for item in items:
        if item.kind == "error":
            reporter.problem(f"{display(item.path)}: {item.error}")


def predict(cfg: PredictConfig, emit, reporter: Reporter = SILENT) -> dict:
    """`agegender predict`: detect faces, run every architecture, stream one record per face to `emit`.
    Paths on stdin are taken as they arrive; no output replaces an input."""
    from agegender_cli.faces import records
    from agegender_cli.faces.annotate import AnnotatedVideos
    from agegender_cli.faces.inputs import InputStream, expected_frames, iter_frames
    from agegender_cli.fileio import OutputNames, check_output_file, display, make_folder

    stream = InputStream(cfg.inputs)
    outputs = {"--csv": cfg.csv, "--summary-plot": cfg.summary_plot}
    for option, target in outputs.items():
        check_output_file(target, option)
    known = stream.known()
    if not stream.streamed and not known:
        raise AgeGenderError("no input: give image files, folders, globs, videos or - for paths on stdin")
    usable = [item.path for item in known if item.kind != "error"]
    _say_missing(known, reporter)
    refuse_overwriting_inputs(outputs, usable)
    refuse_foreign(cfg.csv, "--csv", predictions_csv, overwrite=cfg.overwrite)
    refuse_foreign(cfg.summary_plot, "--summary-plot", marked, overwrite=cfg.overwrite)
    names = videos = None
    if cfg.annotate is not None:
        names = OutputNames(make_folder(cfg.annotate, "--annotate"), usable, keep=foreign)
        videos = AnnotatedVideos(cfg.every)
    frames_expected = None if stream.streamed else expected_frames(known, cfg.every)
    # nothing to read (every input missing): no model is loaded, the run ends with the inputs' errors; auto's engine
    # is the fastest for the frames expected (a stream: for a first answer)
    models = (FaceModels(replace(cfg, options=replace(cfg.options, workload=frames_expected)), reporter)
              if stream.streamed or usable else None)
    tally = records.Tally(cfg.archs)
    stats = {"files": 0, "frames": 0, "faces": 0, "errors": 0}
    relatives: dict[str, str] = {}

    def consumed():
        """The items as predict takes them: streamed paths are checked against the outputs one by one."""
        for item in stream:
            if stream.streamed:
                _say_missing([item], reporter)
            if item.kind != "error":
                if stream.streamed:
                    refuse_overwriting_inputs(outputs, [item.path])
                    if names is not None:
                        names.protect(item.path)
                relatives[item.path] = item.relative
            stats["files"] += 1
            yield item

    csv_sink = CsvSink(cfg.csv, cfg.archs) if cfg.csv else None

    def send(row: dict) -> None:
        row["file"] = display(row["file"])
        emit(row)
        if csv_sink:
            csv_sink.write(row)

    def flush(frames: list) -> None:
        for frame, rows in zip(frames, models.records(frames), strict=True):
            faces = [row for row in rows if row["face"] is not None]
            for row in rows:
                tally.add(row)
                send(row)
            stats["faces"] += len(faces)
            if names is not None:
                _annotate(frame, relatives.get(frame.source, ""), faces, cfg.archs, names, videos)

    ok = False
    try:
        pending: list = []
        reporter.start("frames", frames_expected)
        for frame in iter_frames(consumed(), every=cfg.every, workers=cfg.workers, ready=stream.ready):
            reporter.advance(1)
            if frame.error is not None:
                stats["errors"] += 1
                send(records.error_record(frame.source, frame.index, frame.error))
                continue
            stats["frames"] += 1
            pending.append(frame)
            # A full batch, or a stream waiting on its producer: answer what has arrived.
            if len(pending) >= cfg.options.batch_size or not stream.ready():
                flush(pending)
                pending = []
        if pending:
            flush(pending)
        reporter.finish()
        ok = True
    finally:
        if csv_sink:
            csv_sink.close(ok)
        if videos is not None:
            videos.close(ok)
    if stats["files"] == 0:
        raise AgeGenderError("no input: no paths arrived on stdin")
    summary = {"archs": list(cfg.archs), **stats, "counts": tally.to_dict()}
    if videos is not None and videos.written:
        summary["annotated_videos"] = [display(p) for p in videos.written]
    if names is not None:
        summary["renamed"] = renamed_outputs(names, reporter)
    if cfg.summary_plot is not None:
        summary["summary_plot"] = summary_plot(cfg, tally.counts)
    if cfg.csv:
        summary["csv"] = str(cfg.csv)
    return summary


def predict_on_ray(cfg: PredictConfig, ray_cfg: RayConfig, reporter: Reporter = SILENT) -> dict:
    """`agegender predict --ray`: the records of `predict` as shards under ray_cfg.out, computed on a Ray cluster
    (a local Ray by default); returns the summary it also writes to ray_cfg.out/_SUCCESS. The inputs are streamed
    (millions of paths on stdin, in folders or globs are never held whole)."""
    from agegender_cli.distributed.cluster import import_ray
    from agegender_cli.distributed.ray_predict import predict_on_ray
    from agegender_cli.faces.inputs import walk_inputs
    from agegender_cli.fileio import check_output_file

    import_ray()  # before any other work: without Ray, the one line that says how to install it
    check_output_file(cfg.summary_plot, "--summary-plot")
    refuse_overwriting_inputs({"--summary-plot": cfg.summary_plot}, [p for p in cfg.inputs if p != "-"])
    refuse_foreign(cfg.summary_plot, "--summary-plot", marked, overwrite=cfg.overwrite)
    summary = predict_on_ray(cfg, ray_cfg, walk_inputs(cfg.inputs), reporter)
    if cfg.summary_plot is not None:
        from agegender_cli.faces.records import Tally

        tally = Tally(cfg.archs)
        tally.merge(summary["counts"])
        summary["summary_plot"] = summary_plot(cfg, tally.counts)
    return summary


def summary_plot(cfg: PredictConfig, counts: dict) -> str:
    """--summary-plot: one panel per architecture, titled by its model, side by side."""
    from agegender_cli.config import PLOT_FORMATS
    from agegender_cli.evaluation.plots import plot_summary_panels

    suffix = cfg.summary_plot.suffix.lstrip(".").lower()
    fmt = suffix if suffix in PLOT_FORMATS else cfg.plot_format or PLOT_FORMATS[0]
    panels = {model_title(arch, cfg.options.model_for(arch)): counts[arch] for arch in cfg.archs}
    from agegender_cli.ownership import replacing

    with replacing(cfg.overwrite):
        return str(plot_summary_panels(panels, cfg.summary_plot, fmt=fmt))


def predict_summary(cfg: PredictConfig, summary: dict) -> PredictSummary:
    """A predict run's summary (counts per gender and age class, what was read) as result schema 1."""
    from agegender_cli.evaluation.result import SCHEMA, CountsResult, PredictCoverage, PredictSummary

    results = {arch: CountsResult(arch, model_title(arch, cfg.options.model_for(arch)),
                                  sum(sum(ages.values()) for ages in summary["counts"][arch].values()),
                                  summary["counts"][arch]) for arch in cfg.archs}
    coverage = PredictCoverage(summary["files"], summary["frames"], summary["faces"], summary["errors"])
    return PredictSummary(SCHEMA, "predict", results, coverage)


def model_title(arch: str, model: Path | None) -> str:
    """'facenet: bundled model' or 'caffenet: my_caffe/': which model a figure panel shows."""
    if model is None:
        return f"{arch}: bundled model"
    return f"{arch}: {model.name}" + ("/" if model.is_dir() else "")
