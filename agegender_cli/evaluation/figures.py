"""The figures of an evaluation, each with a caption that says what it shows, on how many faces, of which model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agegender_cli.evaluation import plots
from agegender_cli.evaluation.result import Figure, ModelResult, Provenance
from agegender_cli.labels import AGE_CLASSES, GENDERS


def model_label(arch: str, provenance: Provenance | None) -> str:
    """'facenet (facenet.pt, sha256 8a769afb7615)' or 'caffenet (caffenet/, 6 files)': what identifies a model."""
    files = ((provenance.models.get(arch) if provenance else None) or {}).get("files") or []
    if not files:
        return arch
    if len(files) > 1:  # a model folder: its hashes are in the provenance table
        return f"{arch} ({Path(files[0]['path']).parent.name}/, {len(files)} files)"
    return f"{arch} ({Path(files[0]['path']).name}, sha256 {files[0]['sha256'][:12]})"


def evaluation_figures(
    results: Mapping[str, ModelResult], source: str, folder: Path, fmt: str, normalize: bool,
    provenance: Provenance | None
) -> tuple[Figure, ...]:
    """ROC, confusion matrices (all architectures side by side, one colour scale), age-error distribution and
    reliability diagrams, written into `folder` as `fmt`, in report order."""
    n = next(iter(results.values())).n
    models = ", ".join(model_label(arch, provenance) for arch in results)
    faces = f"n = {n:,} faces of {source}"
    resamples = provenance.bootstrap.resamples if provenance else None
    interval = f"95% bootstrap interval ({resamples} resamples)" if resamples else "95% bootstrap interval"
    figures: list[Figure] = []

    def add(path: Path, caption: str) -> None:
        figures.append(Figure(str(path), caption))

    curves = {a: (r.gender.roc.fpr, r.gender.roc.tpr, r.gender.auc, r.ci95.of("gender", "auc") if r.ci95 else None)
              for a, r in results.items() if r.gender.roc}
    if curves:
        add(plots.plot_roc(curves, folder / f"roc_gender.{fmt}", n=n),
            f"Gender ROC curves (female as the positive class) of {models}; {faces}. "
            f"Legend: area under the curve with its {interval}.")
    kind = ("shares of each true class (rows sum to 1)" if normalize else "face counts")
    for task, names in (("gender", GENDERS), ("age", AGE_CLASSES)):
        matrices = {a: getattr(r, task).confusion for a, r in results.items()}
        what = "Gender" if task == "gender" else "Age class"
        title = f"{what} confusion" + (" (row-normalised)" if normalize else "")
        add(plots.plot_confusions(matrices, list(names), title, folder / f"confusion_{task}.{fmt}", normalize),
            f"{what} confusion matrices of {models}; {faces}. Rows: true class with its number of faces; "
            f"columns: predicted class; cells: {kind}; one colour scale for every panel.")
    add(plots.plot_error_distribution({a: r.age.error_hist for a, r in results.items()},
                                      folder / f"age_error_distribution.{fmt}"),
        f"Distribution of the age-class error |predicted - true| (0: right class, 1: a neighbouring class) of "
        f"{models}; {faces}.")
    for task in ("gender", "age"):
        calibrations = {a: getattr(r.calibration, task) for a, r in results.items() if r.calibration}
        if not calibrations:
            continue
        cis = {a: results[a].ci95.of(task, "ece") if results[a].ci95 else None for a in calibrations}
        bins = next(iter(calibrations.values())).n_bins
        what = "Gender" if task == "gender" else "Age class"
        add(plots.plot_reliability(calibrations, folder / f"reliability_{task}.{fmt}",
                                   f"{what}: reliability of the predicted class's probability", cis),
            f"Reliability diagrams of the {what.lower()} task of {models}; {faces}: accuracy against the mean "
            f"probability of the predicted class in {bins} equal-width bins (diagonal: perfect calibration), "
            f"faces per bin below; ECE (expected calibration error) with its {interval}.")
    return tuple(figures)
