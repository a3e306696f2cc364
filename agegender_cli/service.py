"""The operations behind every command: build a config, call one of these, render the result."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from agegender_cli.config import (
    DEFAULT_RUNS_DIR,
    TRAIN_PRECISIONS,
    DatasetConfig,
    EvaluateConfig,
    ModelOptions,
    PredictConfig,
    PreprocessConfig,
    RayConfig,
    YearsTrainConfig,
)
from agegender_cli.csvcells import safe_cell
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display, write_failed
from agegender_cli.ownership import foreign, marked, predictions_csv, refuse_foreign, with_mark
from agegender_cli.progress import SILENT, Reporter


def make_dataset(cfg: DatasetConfig, reporter: Reporter = SILENT) -> dict:
    """`agegender dataset`: scan UTKFace sources, group copies, split them, write manifest.csv."""
    from agegender_cli.data.utkface import build_dataset
    from agegender_cli.labels import GAP_RULE

    summary = build_dataset(cfg, progress=reporter.message)
    rules = {"nearest": GAP_RULE, "keep": "ages between the classes are kept without an age class (years only)"}
    summary["gap_rule"] = rules.get(cfg.gaps, "ages between the classes are dropped")
    return summary


def _preprocess_sources(
    inputs: list[Path], manifest: Path | None, split: str | None
) -> list[tuple[Path, Path]]:
    """(image, name relative to the output folder) for every image to process."""
    from agegender_cli.data.utkface import read_manifest
    from agegender_cli.faces.inputs import IMAGE_EXTENSIONS

    pairs: list[tuple[Path, Path]] = []
    if manifest is not None:
        for record in read_manifest(manifest, split):
            pairs.append((record.path, Path(record.split) / record.path.name))
    for item in inputs:
        if item.is_dir():
            pairs += [(p, p.relative_to(item)) for p in sorted(item.rglob("*"))
                      if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        elif item.is_file():
            pairs.append((item, Path(item.name)))
        else:
            raise AgeGenderError(f"{item}: no such file or folder")
    if not pairs:
        raise AgeGenderError("nothing to preprocess: give images, folders, or --manifest with --split")
    return pairs


def run_preprocess(
    cfg: PreprocessConfig,
    inputs: list[Path],
    out: Path | None,
    *,
    manifest: Path | None = None,
    split: str | None = None,
    preview: Path | None = None,
    preview_count: int = 4,
    reporter: Reporter = SILENT,
) -> dict:
    """`agegender preprocess`: write processed images under `out` and/or a preview figure; an output never
    replaces an input (a clashing name gets a numbered suffix, listed in "renamed")."""
    import cv2

    from agegender_cli.data.preprocessing import config_key, preprocess, stages
    from agegender_cli.faces.inputs import load_image
    from agegender_cli.fileio import OutputNames, atomic_write_bytes, check_output_file, display, make_folder

    pairs = _preprocess_sources(inputs, manifest, split)
    sources = [src for src, _ in pairs] + ([manifest] if manifest else [])
    refuse_overwriting_inputs({"--preview": preview}, sources)
    check_output_file(preview, "--preview")
    refuse_foreign(preview, "--preview", marked, overwrite=False)
    result: dict = {"settings": config_key(cfg), "n_images": len(pairs), "written": 0, "failed": [], "renamed": []}
    if preview is not None:
        from agegender_cli.data.preview import save_stage_figure

        rows = [(src.name, stages(load_image(src), cfg)) for src, _ in pairs[:preview_count]]
        result["preview"] = str(save_stage_figure(rows, preview))
    if out is None:
        return result
    result["out"] = str(make_folder(out, "--out").resolve())  # the folder really written, links followed
    names = OutputNames(out, sources, keep=foreign)
    for source, relative in reporter.track(pairs, "preprocessing", len(pairs)):
        try:
            image = preprocess(load_image(source), cfg)
        except AgeGenderError as exc:
            result["failed"].append({"file": display(source), "error": str(exc)})
            continue
        ok, encoded = cv2.imencode(".png", image)
        atomic_write_bytes(names.path_for(relative.with_suffix(".png")), with_mark(encoded.tobytes(), ".png"))
        result["written"] += 1
    result["renamed"] = _renamed(names, reporter)
    return result


def _renamed(names, reporter: Reporter) -> list[dict]:
    """The outputs OutputNames gave another name, each said on the way: the JSON's `renamed`."""
    for wanted, given in names.renamed:
        reporter.message(f"{given}: renamed, {wanted} would have replaced an input, an earlier output or a file "
                         "agegender did not write")
    return [{"from": wanted, "to": given} for wanted, given in names.renamed]


def refuse_overwriting_inputs(outputs: dict[str, Path | str | None], inputs) -> None:
    """A one-line error when an output option names one of the inputs (it would be replaced)."""
    from agegender_cli.fileio import display, same_file

    for option, target in outputs.items():
        if target is None or str(target) == "-":
            continue
        for source in inputs:
            if same_file(target, source):
                raise AgeGenderError(f"{option} {display(target)} is one of the inputs; writing it would replace "
                                     "that file: choose another name")


def _evaluation_records(cfg: EvaluateConfig):
    """The labelled images to evaluate on, and the files of an --images folder left out by their names."""
    from agegender_cli.data.utkface import read_manifest, records_from_folder

    skipped = []
    if cfg.labels is not None:
        records, skipped = _labelled_images(cfg.labels, cfg.images)
    elif cfg.images is not None:
        if not cfg.images.is_dir():
            raise AgeGenderError(f"{cfg.images}: not a folder; give a folder of UTKFace-named images")
        records, skipped = records_from_folder(cfg.images)
    else:
        records = read_manifest(cfg.manifest, None if cfg.split == "all" else cfg.split)
    records, twice = _once_each(records)
    skipped += twice
    if not records:
        where = cfg.labels or cfg.images or f"{cfg.manifest} split '{cfg.split}'"
        raise AgeGenderError(f"{where}: no labelled images to evaluate on")
    return records, skipped


def _once_each(records: list) -> tuple[list, list]:
    """Each image once: a row naming an image listed before (the same file, through any path) is left out with
    its reason, so that no face counts twice."""
    import os

    from agegender_cli.data.utkface import Skipped

    seen: set[str] = set()
    kept, twice = [], []
    for record in records:
        real = os.path.realpath(record.path)
        if real in seen:
            twice.append(Skipped(display(record.path), "listed again: the image is counted once", "listed_twice"))
        else:
            seen.add(real)
            kept.append(record)
    return kept, twice


def _labelled_images(labels: Path, images: Path | None):
    """Every image a labels file labels (found beside it or under `images`), and the rows left out, with reasons."""
    from agegender_cli.data.labelled import read_label_files
    from agegender_cli.data.utkface import Record, Skipped

    if images is not None and not images.is_dir():
        raise AgeGenderError(f"--images {images}: not a folder; give the folder the labels' image paths are under")
    rows, report = read_label_files([labels], [images] if images is not None else [])
    records = [Record(row.path, row.age, row.gender, row.race, row.age_class, "all", str(labels.parent), row.group,
                      row.box) for row in rows]
    return records, [Skipped(file, reason) for file, reason in report.skipped]


def _skipped_counts(named: list, failed: list, faces) -> dict[str, int]:
    """Images left out of an evaluation, by why: each of data.utkface.SKIP_KINDS (0 where none)."""
    from collections import Counter

    from agegender_cli.data.utkface import SKIP_KINDS

    counts = Counter(s.kind for s in named)
    counts["unreadable"] += len(failed)
    counts["no_face"] += len(faces.missed) if faces is not None else 0
    return {kind: counts[kind] for kind in SKIP_KINDS}


def _training_overlap(predictors: dict, hashes: list[int], reporter: Reporter) -> dict[str, int]:
    """Per architecture whose model keeps training-set fingerprints: how many evaluated images it trained on;
    a warning on stderr for each that did."""
    from agegender_cli.data.fingerprints import count_overlap, read_fingerprints

    overlap = {}
    for arch, predictor in predictors.items():
        model = getattr(predictor, "model_path", None)
        fingerprints = None if model is None else read_fingerprints(model)
        if fingerprints is None:
            continue
        overlap[arch] = count_overlap(hashes, fingerprints)
        if overlap[arch]:
            reporter.message(f"warning: {overlap[arch]} of {len(hashes)} images were in the training set of the "
                             f"{arch} model ({display(model)}); its scores on them are optimistic")
    return overlap


def _start_loading(archs: tuple[str, ...], options: ModelOptions, reporter: Reporter) -> dict[str, Future]:
    """Every architecture asked for (bundled models unless files are given), loading side by side in threads: the
    engines parse and optimise their graphs outside the GIL, while the caller goes on (decoding, finding faces)."""
    from agegender_cli import stopping
    from agegender_cli.archs.registry import composite_parts, load_predictor

    if archs:
        from agegender_cli.runtime import calibrate_first
        from agegender_cli.system_errors import address_space_warning

        if warning := address_space_warning():
            reporter.message(warning)

        calibrate_first(options.engine, options.device, options.precision, reporter.message)
    futures: dict[str, Future] = {}
    for arch in sorted(archs, key=lambda name: bool(composite_parts(name, archs))):  # parts first
        reporter.message(f"loading {arch}")
        if parts := composite_parts(arch, archs):  # built on its parts' predictors: each model loads once
            futures[arch] = stopping.background(_compose, arch, {p: futures[p] for p in parts}, options,
                                                reporter.message, name=f"load-{arch}")
        else:
            futures[arch] = stopping.background(load_predictor, arch, options, log=reporter.message,
                                                name=f"load-{arch}")
    return {arch: futures[arch] for arch in archs}


def _compose(arch: str, parts: dict[str, Future], options: ModelOptions, log) -> Any:
    from agegender_cli.archs.registry import get

    loaded = {name: future.result() for name, future in parts.items()}
    return get(arch).compose(loaded, options.model_for(arch), options, log)


def _load_predictors(archs: tuple[str, ...], options: ModelOptions, reporter: Reporter) -> dict:
    """Every architecture asked for, loaded once, side by side."""
    return dict(_Loaded(_start_loading(archs, options, reporter)))


class _Loaded(Mapping):
    """Predictors still loading: the first lookup waits for all of them (and raises what a load raised)."""

    def __init__(self, futures: dict[str, Future]) -> None:
        self._futures = futures
        self._done: dict | None = None

    def _resolved(self) -> dict:
        if self._done is None:
            from agegender_cli import stopping

            self._done = {arch: stopping.result(future) for arch, future in self._futures.items()}
        return self._done

    def __getitem__(self, arch: str) -> Any:
        return self._resolved()[arch]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._futures)


class FaceModels:
    """The detector and every architecture's predictor of a PredictConfig, loaded once; decoded frames in, one
    list of `predict` records per frame out. `agegender predict` and the Python API (api.AgeGender) share it.
    The predictors load in the background while the first frames are decoded and searched for faces."""

    def __init__(self, cfg: PredictConfig, reporter: Reporter = SILENT) -> None:
        from agegender_cli.archs.registry import framing
        from agegender_cli.faces.detection import make_detector

        self.predictors = _Loaded(_start_loading(cfg.archs, cfg.options, reporter))
        self.framings = {arch: framing(arch, cfg.detector, cfg.options) for arch in cfg.archs}
        self.detector = make_detector(cfg.detector, min_face=cfg.min_face, min_score=cfg.min_score,
                                      device=cfg.options.device, engine=cfg.options.engine, log=reporter.message)

    def records(self, frames) -> list[list[dict]]:
        """The records of decoded frames (faces.inputs.Frame), one list per frame, as `predict --json` has them."""
        from agegender_cli.faces.records import frame_records

        records = frame_records(frames, self.detector, self.framings, self.predictors)
        dict(self.predictors)  # a model that failed to load fails the run even where no face needed it
        return records


def run_on_records(predictors: dict, records, batch_size: int, reporter: Reporter, faces=None, hashes=None):
    """Every predictor on every record's image (decoded once); returns predictions, kept indices, failures.
    With `faces` (a _FaceFinder), the labelled face is found in each photo first; photos where it is not are
    left out and listed by the finder. With a list `hashes`, each decoded image's pixel hash is appended to it."""
    from agegender_cli.archs.base import Prediction, predict_all
    from agegender_cli.faces.batches import iter_image_batches

    parts: dict[str, list] = {arch: [] for arch in predictors}
    kept: list[int] = []
    failed: list[dict] = []
    reporter.start("evaluating " + " + ".join(predictors), len(records))
    for batch in iter_image_batches([r.path for r in records], batch_size):
        indices, inputs = batch.indices, {arch: batch.images for arch in predictors}
        if hashes is not None:
            from agegender_cli.data.fingerprints import image_hash

            hashes += [image_hash(image) for image in batch.images]
        if faces is not None and batch.images:
            indices, inputs = faces.crops(batch.indices, batch.images, [records[i] for i in batch.indices])
        if indices:
            for arch, answer in predict_all(predictors, inputs).items():
                parts[arch].append(answer)
        kept += indices
        failed += [{"file": display(records[i].path), "error": error} for i, error in batch.failed]
        reporter.advance(len(batch.indices) + len(batch.failed))
    reporter.finish()
    return {arch: Prediction.concat(p) for arch, p in parts.items()}, kept, failed


class _FaceFinder:
    """Finds the labelled face in whole photos and crops it as each architecture was trained; counts misses."""

    def __init__(self, cfg: EvaluateConfig) -> None:
        from agegender_cli.archs.registry import framing
        from agegender_cli.faces.detection import make_detector
        from agegender_cli.faces.detectors import photo_search

        name, self.auto = photo_search(cfg.detector)
        self.pick = cfg.pick
        self.detector = make_detector(name, min_face=cfg.min_face, min_score=cfg.min_score, device=cfg.options.device,
                                      engine=cfg.options.engine)
        self.framing = {arch: framing(arch, name, cfg.options) for arch in cfg.archs}
        self.whole_framing = {arch: framing(arch, "none", cfg.options) for arch in cfg.archs}
        self.photos = self.found = self.taken_whole = 0
        self.missed: list[str] = []

    def crops(self, indices: list[int], images: list, records: list) -> tuple[list[int], dict[str, list]]:
        from agegender_cli.faces.detection import face_crop
        from agegender_cli.faces.locate import locate_faces

        kept, crops = [], {arch: [] for arch in self.framing}
        located = locate_faces(self.detector, images, [r.box for r in records], auto=self.auto,
                               pick=self.pick)
        for index, image, record, face in zip(indices, images, records, located, strict=True):
            self.photos += 1
            if face is None:
                self.missed.append(display(record.path))
                continue
            self.found += 1
            self.taken_whole += face.whole
            kept.append(index)
            # the detection itself (its landmarks align the face), or the whole image as a face crop
            for arch in crops:
                crops[arch].append(face_crop(image, face, (self.whole_framing if face.whole else self.framing)[arch]))
        return kept, crops

    def summary(self) -> dict:
        return {"detector": "auto" if self.auto else self.detector.name, "pick": self.pick, "photos": self.photos,
                "found": self.found,
                "recall": self.found / self.photos if self.photos else None, "taken_whole": self.taken_whole,
                "missed": self.missed}


def evaluate_models(cfg: EvaluateConfig, reporter: Reporter = SILENT, predictors: dict | None = None) -> dict:
    """`agegender evaluate` / the core of `compare`: metrics of each architecture on the same images (`predictors`:
    models already loaded, by architecture; the others are loaded)."""
    import numpy as np

    from agegender_cli.evaluation.metrics import evaluate_predictions
    from agegender_cli.fileio import check_output_file

    check_output_file(cfg.report, "--report")
    records, named = _evaluation_records(cfg)
    own_set = cfg.images or cfg.labels
    inputs = [r.path for r in records] + ([cfg.labels] if cfg.labels else [] if cfg.images else [cfg.manifest])
    refuse_overwriting_inputs({"--report": cfg.report}, inputs)
    from agegender_cli.evaluation.report import written_by_us

    refuse_foreign(cfg.report, "--report", written_by_us, overwrite=cfg.overwrite,
                   why="is not a report agegender wrote")
    given = predictors or {}
    options = replace(cfg.options, workload=len(records))  # auto's engine is the fastest for this many faces
    loaded = _load_predictors(tuple(a for a in cfg.archs if a not in given), options, reporter)
    predictors = {arch: given[arch] if arch in given else loaded[arch] for arch in cfg.archs}
    faces = _FaceFinder(cfg) if cfg.detector != "none" else None
    hashes: list[int] = []
    predictions, kept, failed = run_on_records(predictors, records, cfg.options.batch_size, reporter, faces, hashes)
    if not kept:
        raise AgeGenderError("none of the images could be read" if faces is None or not faces.photos
                             else f"no labelled face was found in the {faces.photos} photos")
    used = [records[i] for i in kept]
    # a dataset labelled by a file may lack one task's label: each task is scored on the images that have it;
    # a face whose age lies between the classes (--gaps keep) is scored in years only, as the report drops it
    gender_true = np.array([-1 if r.gender is None or _gap_age(r) else r.gender for r in used])
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
                  "skipped": _skipped_counts(named, failed, faces),
                  "left_out": [{"file": display(Path(s.file)), "reason": s.reason} for s in named],
                  "training_overlap": _training_overlap(predictors, hashes, reporter)}
    if faces is not None:
        evaluation["detection"] = faces.summary()
    _add_statistics(evaluation, cfg)
    _add_years(evaluation, cfg)
    return evaluation


def _gap_age(record) -> bool:
    """An age in years that lies between the 8 classes."""
    return record.age is not None and record.age_class is None


def _years_truth(evaluation: dict):
    """(mask of faces with an age, their ages) among the evaluated faces."""
    import numpy as np

    ages = np.array([-1 if r.age is None else r.age for r in evaluation["records"]])
    return ages >= 0, ages


def _add_years(evaluation: dict, cfg: EvaluateConfig) -> None:
    """Into each result of a model that estimates years: MAE, median error, CS@5, per class, race and gender,
    with bootstrap intervals, on every face with an age (gap ages included)."""
    import numpy as np

    from agegender_cli.evaluation.years import years_metrics

    has_age, ages = _years_truth(evaluation)
    if not has_age.any():
        return
    records = [r for r, keep in zip(evaluation["records"], has_age, strict=True) if keep]
    age_class = np.array([-1 if r.age_class is None else r.age_class for r in records])
    race = np.array([r.race_name for r in records])
    gender = np.array([-1 if r.gender is None else r.gender for r in records])
    for arch, prediction in evaluation["predictions"].items():
        if prediction.age_years is not None:
            evaluation["results"][arch]["years"] = years_metrics(
                ages[has_age], prediction.age_years[has_age], age_class=age_class, race=race, gender=gender,
                bootstrap=cfg.bootstrap, seed=cfg.seed, min_group_n=cfg.min_group_n)


def _add_statistics(evaluation: dict, cfg: EvaluateConfig) -> None:
    """Into each result: calibration (ECE and reliability bins per task), 95% intervals of every headline
    metric, per-race, per-gender and per-age-class accuracy with intervals and the largest gaps (seeded: reruns
    agree)."""
    import numpy as np

    from agegender_cli.evaluation.calibration import calibration
    from agegender_cli.evaluation.intervals import model_intervals
    from agegender_cli.labels import AGE_CLASSES, GENDERS

    gender_true, age_true = evaluation["truth"]
    records = evaluation["records"]
    has_gender, has_age = gender_true >= 0, age_true >= 0  # a task's unlabelled faces (-1) are not scored
    groups = {"race": np.array([r.race_name for r in records]),
              "gender": np.array([GENDERS[r.gender] if r.gender is not None else "unknown" for r in records]),
              # gender per age class: children's gender is near chance for every model (docs/wild.md)
              "age class": np.array([AGE_CLASSES[r.age_class] if r.age_class is not None else "unknown"
                                     for r in records])}
    for arch, prediction in evaluation["predictions"].items():
        result = evaluation["results"][arch]
        result["calibration"] = {
            "gender": calibration(gender_true[has_gender], prediction.gender_prob[has_gender], cfg.calibration_bins),
            "age": calibration(age_true[has_age], prediction.age_prob[has_age], cfg.calibration_bins)}
        result.update(model_intervals(gender_true, prediction.gender_prob, age_true, prediction.age_prob, groups,
                                      n_resamples=cfg.bootstrap, seed=cfg.seed, n_bins=cfg.calibration_bins,
                                      min_group_n=cfg.min_group_n))


def _mcnemar(evaluation: dict) -> dict:
    """McNemar's test of every pair of architectures on the same faces, per task; Wilcoxon's signed-rank test
    on the absolute errors in years where both estimate years."""
    import itertools

    import numpy as np

    from agegender_cli.evaluation.stats import mcnemar

    gender_true, age_true = evaluation["truth"]
    has_gender, has_age = gender_true >= 0, age_true >= 0
    correct = {arch: {"gender": (p.gender_prob.argmax(1) == gender_true)[has_gender],
                      "age": (p.age_prob.argmax(1) == age_true)[has_age]}
               for arch, p in evaluation["predictions"].items()}
    tests = {f"{a} vs {b}": {task: mcnemar(correct[a][task], correct[b][task]) for task in ("gender", "age")}
             for a, b in itertools.combinations(correct, 2)}
    has_age, ages = _years_truth(evaluation)
    years = {arch: p.age_years for arch, p in evaluation["predictions"].items() if p.age_years is not None}
    if has_age.any():
        from agegender_cli.evaluation.years import wilcoxon_signed_rank

        for a, b in itertools.combinations(years, 2):  # the paired test of the years estimates
            errors = [np.abs(years[arch][has_age] - ages[has_age]) for arch in (a, b)]
            test = wilcoxon_signed_rank(*errors)
            test["better"] = {"a": a, "b": b}.get(test["better"])
            tests[f"{a} vs {b}"]["years"] = test
    return tests


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


def save_evaluation_plots(evaluation: dict, folder: Path, plot_format: str = "png", normalize: bool = False,
                          provenance: dict | None = None) -> list[dict]:
    """The figures of every evaluated architecture (ROC, confusion, error distribution, reliability), each
    with a caption that says what it shows, on how many faces, and of which models."""
    from agegender_cli.evaluation.figures import evaluation_figures
    from agegender_cli.fileio import make_folder

    make_folder(folder, "--plots")
    return evaluation_figures(evaluation, folder, plot_format, normalize, provenance)


def evaluate(cfg: EvaluateConfig, reporter: Reporter = SILENT, predictors: dict | None = None) -> dict:
    """`agegender evaluate`: the metrics of one architecture (the JSON schema of the report's tables), or of
    several under "results" (`predictors`: models already loaded, as evaluate_models takes them)."""
    evaluation = evaluate_models(cfg, reporter, predictors)
    provenance = run_provenance(evaluation, cfg)
    one = len(cfg.archs) == 1
    result = dict(evaluation["results"][cfg.archs[0]]) if one else {"results": evaluation["results"]}
    result.update(source=evaluation["source"], failed=evaluation["failed"], skipped=evaluation["skipped"],
                  training_overlap=evaluation["training_overlap"], provenance=provenance)
    if "detection" in evaluation:
        result["detection"] = evaluation["detection"]
    if cfg.plots is not None:
        from agegender_cli.ownership import replacing

        with replacing(cfg.overwrite):
            figures = save_evaluation_plots(evaluation, cfg.plots, cfg.plot_format, cfg.normalize, provenance)
        result["plots"] = [f["path"] for f in figures]
        result["figures"] = figures
    return result


def train(arch: str, cfg, reporter: Reporter = SILENT, *, overwrite: bool = False) -> dict:
    """`agegender train`: one architecture's trainer on a manifest's train split, chosen on val; the training
    images' fingerprints are stored beside the model (evaluate warns when it is scored on them). A run folder
    that already holds files is refused unless the run resumes it or `overwrite` is set."""
    from agegender_cli.archs.registry import trainer
    from agegender_cli.data.fingerprints import hash_images, write_fingerprints
    from agegender_cli.data.utkface import read_manifest

    if getattr(cfg, "precision", "auto") not in TRAIN_PRECISIONS:
        raise AgeGenderError(f"training runs in {', '.join(TRAIN_PRECISIONS)}, not {cfg.precision} (int8 is for "
                             "running a trained model)")
    _refuse_used_folder(Path(cfg.out), cfg.resume or overwrite)
    _mark_run(Path(cfg.out), arch, resume=bool(getattr(cfg, "resume", False)))
    if hasattr(cfg, "precision") and hasattr(cfg, "device"):  # PyTorch's --precision auto may consult it
        from agegender_cli.runtime import calibrate_first

        calibrate_first("torch", cfg.device, cfg.precision, reporter.message)
    result = trainer(arch)(cfg, reporter).to_dict()
    if not Path(cfg.manifest).is_file():  # a trainer that did not read it (the tests' tiny one)
        return result
    paths = [record.path for record in read_manifest(cfg.manifest, "train")]
    reporter.start("fingerprinting the training images", len(paths))
    hashes = hash_images(paths, reporter.advance)
    reporter.finish()
    result["train_fingerprints"] = str(write_fingerprints(hashes, Path(result["checkpoint"])))
    return result


RUN_MARK = "run.json"  # which architecture a run folder trains: --resume continues only that one
# the file each trainer leaves to resume from, for run folders older than RUN_MARK
RESUME_FILES = {"facenet": "progress.pt", "caffenet": "checkpoint.pt"}


def _mark_run(out: Path, arch: str, *, resume: bool) -> None:
    """A fresh run writes RUN_MARK; --resume is refused on a folder with no run, or with another architecture's."""
    import json

    from agegender_cli.fileio import atomic_write_text

    mark = out / RUN_MARK
    if resume:
        try:
            found = json.loads(mark.read_text()).get("arch") if mark.is_file() else None
        except (OSError, ValueError, AttributeError):
            found = None
        found = found or next((name for name, file in RESUME_FILES.items() if (out / file).is_file()), None)
        if found is None:
            raise AgeGenderError(f"--resume: {display(out)} holds no run to continue; train without --resume")
        if found != arch:
            raise AgeGenderError(f"--resume: {display(out)} holds a {found} run, not {arch}; continue it with "
                                 f"--arch {found}, or choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(mark, json.dumps({"arch": arch}) + "\n")


def _refuse_used_folder(out: Path, allowed: bool) -> None:
    """A run folder that already holds files is only written into with --resume or --overwrite."""
    if not allowed and out.is_dir() and any(out.iterdir()):
        raise AgeGenderError(f"{display(out)} already holds a training run: pass --resume to continue it or "
                             "--overwrite to train anew in it (or choose another --out)")


def train_years(cfg: YearsTrainConfig, reporter: Reporter = SILENT, *, overwrite: bool = False) -> dict:
    """`agegender train --years`: features of every train/val face with an age (gap ages too) from a trained
    model, a years head chosen on val MAE, the model saved again with that head (class outputs unchanged)."""
    import time

    from agegender_cli.archs.years_head import choose_years_head
    from agegender_cli.data.utkface import read_manifest

    started = time.monotonic()
    out = cfg.out or DEFAULT_RUNS_DIR / f"{cfg.arch}-years"
    _refuse_used_folder(Path(out), overwrite)
    options = ModelOptions(models=((cfg.arch, cfg.init),) if cfg.init else (), engine="torch", precision="fp32",
                           batch_size=cfg.batch_size)
    predictor = _load_predictors((cfg.arch,), options, reporter)[cfg.arch]
    if not hasattr(predictor, "years_features"):
        raise AgeGenderError(f"{cfg.arch} models cannot learn age in years")
    data, train_hashes = {}, []
    for split in ("train", "val"):
        records = [r for r in read_manifest(cfg.manifest, split) if r.age is not None]
        frames = None
        if cfg.detector != "none" and records:
            from agegender_cli.data.chips import framed_records

            records, frames = framed_records(records, cfg.detector, what=f"{split} images with an age",
                                             pick=cfg.pick, reporter=reporter)
        if not records:
            raise AgeGenderError(f"{cfg.manifest}: no {split} image with an age; years need ages in the manifest")
        data[split] = _years_features(predictor, records, cfg, reporter, split,
                                      train_hashes if split == "train" else None, frames)
    reporter.message(f"fitting years heads on {len(data['train'][1])} train faces, chosen on {len(data['val'][1])} "
                     "val faces")
    fit, tried = choose_years_head(*data["train"], *data["val"], seed=cfg.seed)
    info = {"manifest": str(cfg.manifest), "train_faces": len(data["train"][1]), "val_faces": len(data["val"][1]),
            "val_mae": round(fit.val_mae, 4), "epoch": fit.epoch, "chosen": fit.settings, "tried": tried,
            "history": fit.history}
    saved = predictor.with_years(fit.head, info, out)
    fingerprints = _extend_fingerprints(getattr(predictor, "model_path", None), train_hashes, saved)
    return {"arch": cfg.arch, "checkpoint": str(saved), "train_fingerprints": str(fingerprints),
            "seconds": round(time.monotonic() - started, 1), **info}


def _extend_fingerprints(model: Path | None, hashes: list[int], saved: Path) -> Path:
    """The extended model's training set: the images its starting model learned from, and the new head's."""
    import numpy as np

    from agegender_cli.data.fingerprints import read_fingerprints, write_fingerprints

    earlier = None if model is None else read_fingerprints(model)
    new = np.array(hashes, np.uint64)
    return write_fingerprints(new if earlier is None else np.concatenate([earlier, new]), saved)


def _years_features(predictor, records, cfg: YearsTrainConfig, reporter: Reporter, split: str,
                    hashes: list[int] | None = None, frames=None):
    """(features, ages) of the records that decode, from the model's years_features; with `hashes`, the
    images' training-set fingerprints are collected on the way (no second decoding); with `frames` (chip
    matrices, data.chips), each face is cut out of its photo as `predict` frames it."""
    import numpy as np

    from agegender_cli.data.fingerprints import image_hash
    from agegender_cli.faces.align import warp_chip
    from agegender_cli.faces.batches import iter_image_batches

    features, ages = [], []
    reporter.start(f"{split} features", len(records))
    for batch in iter_image_batches([r.path for r in records], cfg.batch_size, cfg.workers):
        if batch.images:
            faces = (batch.images if frames is None
                     else [warp_chip(image, frames[i]) for image, i in zip(batch.images, batch.indices, strict=True)])
            features.append(predictor.years_features(faces))
            ages += [records[i].age for i in batch.indices]
            if hashes is not None:
                hashes += [image_hash(image) for image in batch.images]
        reporter.advance(len(batch.indices) + len(batch.failed))
    reporter.finish()
    return np.concatenate(features).astype(np.float32), np.asarray(ages, np.float32)


def compare(cfg: EvaluateConfig, reporter: Reporter = SILENT, predictors: dict | None = None) -> dict:
    """`agegender compare`: every architecture on the same images, the report's tables side by side; with
    --report a Markdown (or, for .html, a self-contained HTML) report with provenance and figures
    (`predictors`: models already loaded, as evaluate_models takes them)."""
    import tempfile

    from agegender_cli.config import HTML_SUFFIXES

    evaluation = evaluate_models(cfg, reporter, predictors)
    result: dict = {arch: metrics for arch, metrics in evaluation["results"].items()}
    result["mcnemar"] = _mcnemar(evaluation)
    result["source"] = evaluation["source"]
    result["failed"] = evaluation["failed"]
    result["skipped"] = evaluation["skipped"]
    result["training_overlap"] = evaluation["training_overlap"]
    if "detection" in evaluation:
        result["detection"] = evaluation["detection"]
    result["provenance"] = run_provenance(evaluation, cfg)
    html = cfg.report is not None and cfg.report.suffix.lower() in HTML_SUFFIXES
    with tempfile.TemporaryDirectory(prefix="agegender-figures-") as scratch:
        plots_dir = cfg.plots
        if plots_dir is None and cfg.report is not None:
            # HTML carries its figures inline; Markdown links them from a folder beside the report
            plots_dir = Path(scratch) if html else cfg.report.parent / f"{cfg.report.stem}_figures"
        figures: list[dict] = []
        if plots_dir is not None:
            from agegender_cli.ownership import replacing

            with replacing(cfg.overwrite):
                figures = save_evaluation_plots(evaluation, plots_dir, cfg.plot_format, cfg.normalize,
                                                result["provenance"])
            if not (html and cfg.plots is None):
                result["plots"] = [f["path"] for f in figures]
                result["figures"] = figures
        if cfg.report is not None:
            from agegender_cli.evaluation.report import markdown_report, report_blocks
            from agegender_cli.evaluation.report_html import html_report
            from agegender_cli.fileio import atomic_write_text

            blocks = report_blocks({a: result[a] for a in evaluation["results"]}, result["mcnemar"],
                                   result["provenance"], figures, cfg.normalize)
            text = html_report(blocks) if html else markdown_report(blocks, cfg.report.parent)
            atomic_write_text(cfg.report, text)
            result["report"] = str(cfg.report)
    return result


class _CsvSink:
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

    csv_sink = _CsvSink(cfg.csv, cfg.archs) if cfg.csv else None

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
        summary["renamed"] = _renamed(names, reporter)
    if cfg.summary_plot is not None:
        summary["summary_plot"] = _summary_plot(cfg, tally.counts)
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
        summary["summary_plot"] = _summary_plot(cfg, tally.counts)
    return summary


def _summary_plot(cfg: PredictConfig, counts: dict) -> str:
    """--summary-plot: one panel per architecture, titled by its model, side by side."""
    from agegender_cli.config import PLOT_FORMATS
    from agegender_cli.evaluation.plots import plot_summary_panels

    suffix = cfg.summary_plot.suffix.lstrip(".").lower()
    fmt = suffix if suffix in PLOT_FORMATS else cfg.plot_format or PLOT_FORMATS[0]
    panels = {model_title(arch, cfg.options.model_for(arch)): counts[arch] for arch in cfg.archs}
    from agegender_cli.ownership import replacing

    with replacing(cfg.overwrite):
        return str(plot_summary_panels(panels, cfg.summary_plot, fmt=fmt))


def model_title(arch: str, model: Path | None) -> str:
    """'facenet: bundled model' or 'caffenet: my_caffe/': which model a figure panel shows."""
    if model is None:
        return f"{arch}: bundled model"
    return f"{arch}: {model.name}" + ("/" if model.is_dir() else "")


def info() -> dict:
    """`agegender info`: versions, the device and precision a run would use and why, threads, cache, weights."""
    from agegender_cli.environment import describe

    return describe()
