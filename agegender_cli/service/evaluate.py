"""`agegender evaluate` and `agegender compare`: metrics, provenance, figures and the report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from agegender_cli.config import EvaluateConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.evaluation.coverage import gap_age
from agegender_cli.evaluation.result import (
    SCHEMA,
    Coverage,
    Detection,
    Evaluation,
    Failure,
    Figure,
    FrozenMap,
    ModelResult,
    PairTests,
    Provenance,
)
from agegender_cli.fileio import display
from agegender_cli.ownership import refuse_foreign
from agegender_cli.progress import SILENT, Reporter
from agegender_cli.service.guards import refuse_overwriting_inputs
from agegender_cli.service.labelled import FaceFinder, evaluation_records, skipped_counts
from agegender_cli.service.loading import load_predictors
from agegender_cli.service.scoring import (
    add_statistics,
    add_years,
    pair_tests,
    run_on_records,
    training_overlap,
)


def evaluate_models(cfg: EvaluateConfig, reporter: Reporter = SILENT, predictors: dict | None = None) -> dict:
    """`agegender evaluate` / the core of `compare`: metrics of each architecture on the same images (`predictors`:
    models already loaded, by architecture; the others are loaded)."""
    import numpy as np

    from agegender_cli.evaluation.metrics import evaluate_predictions
    from agegender_cli.fileio import check_output_file

    check_output_file(cfg.report, "--report")
    records, named = evaluation_records(cfg)
    own_set = cfg.images or cfg.labels
    inputs = [r.path for r in records] + ([cfg.labels] if cfg.labels else [] if cfg.images else [cfg.manifest])
    refuse_overwriting_inputs({"--report": cfg.report}, inputs)
    from agegender_cli.evaluation.report import written_by_us

    refuse_foreign(cfg.report, "--report", written_by_us, overwrite=cfg.overwrite,
                   why="is not a report agegender wrote")
    given = predictors or {}
    options = replace(cfg.options, workload=len(records))  # auto's engine is the fastest for this many faces
    loaded = load_predictors(tuple(a for a in cfg.archs if a not in given), options, reporter)
    predictors = {arch: given[arch] if arch in given else loaded[arch] for arch in cfg.archs}
    faces = FaceFinder(cfg) if cfg.detector != "none" else None
    hashes: list[int] = []
    predictions, kept, failed = run_on_records(predictors, records, cfg.options.batch_size, reporter, faces, hashes)
    if not kept:
        raise AgeGenderError("none of the images could be read" if faces is None or not faces.photos
                             else f"no labelled face was found in the {faces.photos} photos")
    used = [records[i] for i in kept]
    # a dataset labelled by a file may lack one task's label: each task is scored on the images that have it;
    # a face whose age lies between the classes (--gaps keep) is scored in years only, as the report drops it
    gender_true = np.array([-1 if r.gender is None or gap_age(r) else r.gender for r in used])
    age_true = np.array([-1 if r.age_class is None else r.age_class for r in used])
    has_gender, has_age = gender_true >= 0, age_true >= 0
    results = {}
    for arch, prediction in predictions.items():
        metrics = evaluate_predictions(gender_true[has_gender], prediction.gender_prob[has_gender],
                                       age_true[has_age], prediction.age_prob[has_age])
        results[arch] = {"arch": arch, "model": predictors[arch].description, **metrics}
    source = str(cfg.labels or cfg.images) if own_set else f"{cfg.manifest}:{cfg.split}"
    evaluation = {"source": source, "results": results, "failed": failed, "records": used, "listed": len(records),
                  "predictions": predictions, "truth": (gender_true, age_true), "predictors": predictors,
                  "skipped": skipped_counts(named, failed, faces),
                  "left_out": [{"file": display(Path(s.file)), "reason": s.reason} for s in named],
                  "training_overlap": training_overlap(predictors, hashes, reporter)}
    if faces is not None:
        evaluation["detection"] = faces.summary()
    evaluation["coverage"] = _coverage(cfg, used, evaluation, reporter)
    add_statistics(evaluation, cfg)
    add_years(evaluation, cfg)
    return evaluation


def _coverage(cfg: EvaluateConfig, used: list, evaluation: dict, reporter: Reporter) -> dict:
    """Every image seen, counted once by what happened to it; on a manifest, what its build left out too (said
    on stderr where the years metrics miss faces with an age: --gaps drop's)."""
    from agegender_cli.data.utkface import read_build_record
    from agegender_cli.evaluation.coverage import coverage, manifest_gap_note

    build = None if cfg.images or cfg.labels else read_build_record(cfg.manifest)
    if build and build["gaps"] == "drop" and build.get("gap_age"):
        reporter.message("note: " + manifest_gap_note(build["gap_age"], display(cfg.manifest)))
    build = {"gaps": build["gaps"], "gap_age": build.get("gap_age", 0)} if build else None
    return coverage(used, evaluation["skipped"], build)


def run_provenance(evaluation: dict, cfg: EvaluateConfig) -> dict:
    """Everything needed to cite and rerun an evaluation: tool and software versions, the command line, the
    date, every model's files and hashes, engine, precision and device, the data's hashes, the images used
    and skipped (with reasons), the seed and the bootstrap settings."""
    import datetime
    import os

    from agegender_cli import __version__
    from agegender_cli.fileio import display
    from agegender_cli.provenance import file_record, pinned_command, records_digest, software

    models = {}
    for arch, predictor in evaluation["predictors"].items():
        described = getattr(predictor, "provenance", None)
        models[arch] = {"description": predictor.description, **(described() if described else {})}
        choice = getattr(predictor, "engine_choice", None)
        if choice is not None:
            models[arch]["engine_choice"] = choice.to_dict()
    own_set = cfg.images or cfg.labels
    data = {"source": evaluation["source"], "split": None if own_set else cfg.split,
            "manifest": None if own_set else file_record(cfg.manifest),
            "labels": file_record(cfg.labels) if cfg.labels else None,
            "images_folder": display(cfg.images.resolve()) if cfg.images else None,
            "listed": evaluation["listed"], "used": len(evaluation["records"]), "skipped": evaluation["failed"],
            "left_out_by_name": evaluation["left_out"],
            "images_sha256": records_digest(evaluation["records"])}
    return {"tool": {"name": "agegender", "version": __version__}, "command_line": cfg.command_line,
            "rerun_command": pinned_command(cfg.command_line, models,
                                            {"--detector": cfg.detector, "--seed": str(cfg.seed)}),
            "working_directory": display(os.getcwd()),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "software": software(), "models": models, "data": data, "seed": cfg.seed,
            "bootstrap": {"resamples": cfg.bootstrap, "level": 0.95, "method": "percentile, paired resamples of "
                          "the faces, the same for every metric and architecture; shares of faces (accuracy, "
                          "one-off, per group) take Wilson's score interval instead"},
            "calibration_bins": cfg.calibration_bins, "min_group_n": cfg.min_group_n}


def save_evaluation_plots(results: Mapping[str, ModelResult], source: str, folder: Path, plot_format: str = "png",
                          normalize: bool = False, provenance: Provenance | None = None) -> tuple[Figure, ...]:
    """The figures of every evaluated architecture (ROC, confusion, error distribution, reliability), each
    with a caption that says what it shows, on how many faces, and of which models."""
    from agegender_cli.evaluation.figures import evaluation_figures
    from agegender_cli.fileio import make_folder

    make_folder(folder, "--plots")
    return evaluation_figures(results, source, folder, plot_format, normalize, provenance)


def evaluate(cfg: EvaluateConfig, reporter: Reporter = SILENT, predictors: dict | None = None) -> Evaluation:
    """`agegender evaluate`: the metrics of every architecture asked for on the same images, with their
    provenance, and with --plots the figures (`predictors`: models already loaded, as evaluate_models takes
    them)."""
    return _evaluation(cfg, reporter, predictors, "evaluate")


def compare(cfg: EvaluateConfig, reporter: Reporter = SILENT, predictors: dict | None = None) -> Evaluation:
    """`agegender compare`: what evaluate gives, the report's tables side by side; with --report a Markdown (or,
    for .html, a self-contained HTML) report with provenance and figures."""
    return _evaluation(cfg, reporter, predictors, "compare")


def _evaluation(cfg: EvaluateConfig, reporter: Reporter, predictors: dict | None, command: str) -> Evaluation:
    """Every architecture scored on the same images, the paired tests between them, the provenance; the figures
    (--plots, or beside a Markdown --report, or inline in an HTML one) and the report."""
    import tempfile

    from agegender_cli.config import HTML_SUFFIXES

    evaluation = evaluate_models(cfg, reporter, predictors)
    provenance = Provenance.from_json(run_provenance(evaluation, cfg))
    results = {arch: ModelResult.from_json(metrics) for arch, metrics in evaluation["results"].items()}
    tests = {pair: PairTests.from_json(found) for pair, found in pair_tests(evaluation).items()}
    coverage = Coverage.from_json(evaluation["coverage"])
    report = None
    html = cfg.report is not None and cfg.report.suffix.lower() in HTML_SUFFIXES
    with tempfile.TemporaryDirectory(prefix="agegender-figures-") as scratch:
        plots_dir = cfg.plots
        if plots_dir is None and cfg.report is not None:
            # HTML carries its figures inline; Markdown links them from a folder beside the report
            plots_dir = Path(scratch) if html else cfg.report.parent / f"{cfg.report.stem}_figures"
        figures: tuple[Figure, ...] = ()
        if plots_dir is not None:
            from agegender_cli.ownership import replacing

            with replacing(cfg.overwrite):
                figures = save_evaluation_plots(results, evaluation["source"], plots_dir, cfg.plot_format,
                                                cfg.normalize, provenance)
        if cfg.report is not None:
            from agegender_cli.evaluation.report import markdown_report, report_blocks
            from agegender_cli.evaluation.report_html import html_report
            from agegender_cli.fileio import atomic_write_text

            blocks = report_blocks(results, tests, provenance, figures, coverage, evaluation["training_overlap"],
                                   cfg.normalize)
            atomic_write_text(cfg.report, html_report(blocks) if html else markdown_report(blocks, cfg.report.parent))
            report = str(cfg.report)
    if html and cfg.plots is None:  # an HTML report's figures went inline, from a folder now gone
        figures = ()
    detection = evaluation.get("detection")
    return Evaluation(
        schema=SCHEMA, command=command, source=evaluation["source"], results=results, tests=tests, coverage=coverage,
        detection=None if detection is None else Detection.from_json(detection),
        failed=tuple(Failure.from_json(f) for f in evaluation["failed"]), skipped=FrozenMap(evaluation["skipped"]),
        training_overlap=FrozenMap(evaluation["training_overlap"]), provenance=provenance, figures=figures,
        report=report)
