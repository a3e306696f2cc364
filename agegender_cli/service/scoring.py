"""Every model on the labelled faces, and what is computed from its answers: statistics, years, tests."""

from __future__ import annotations

from agegender_cli.config import EvaluateConfig
from agegender_cli.fileio import display
from agegender_cli.progress import Reporter


def run_on_records(predictors: dict, records, batch_size: int, reporter: Reporter, faces=None, hashes=None):
    """Every predictor on every record's image (decoded once); returns predictions, kept indices, failures.
    With `faces` (a FaceFinder), the labelled face is found in each photo first; photos where it is not are
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


def training_overlap(predictors: dict, hashes: list[int], reporter: Reporter) -> dict[str, int]:
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


def years_truth(evaluation: dict):
    """(mask of faces with an age, their ages) among the evaluated faces."""
    import numpy as np

    ages = np.array([-1 if r.age is None else r.age for r in evaluation["records"]])
    return ages >= 0, ages


def add_years(evaluation: dict, cfg: EvaluateConfig) -> None:
    """Into each result of a model that estimates years: MAE, median error, CS@5, per class, race and gender,
    with bootstrap intervals, on every face with an age (gap ages included)."""
    import numpy as np

    from agegender_cli.evaluation.years import years_metrics

    has_age, ages = years_truth(evaluation)
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


def add_statistics(evaluation: dict, cfg: EvaluateConfig) -> None:
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


def pair_tests(evaluation: dict) -> dict:
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
    has_age, ages = years_truth(evaluation)
    years = {arch: p.age_years for arch, p in evaluation["predictions"].items() if p.age_years is not None}
    if has_age.any():
        from agegender_cli.evaluation.years import wilcoxon_signed_rank

        for a, b in itertools.combinations(years, 2):  # the paired test of the years estimates
            errors = [np.abs(years[arch][has_age] - ages[has_age]) for arch in (a, b)]
            test = wilcoxon_signed_rank(*errors)
            test["better"] = {"a": a, "b": b}.get(test["better"])
            tests[f"{a} vs {b}"]["years"] = test
    return tests
