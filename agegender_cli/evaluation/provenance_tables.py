"""The provenance of a run as table models: the run, each model's files and training, the software."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from agegender_cli.evaluation.result import Failure, Provenance
from agegender_cli.evaluation.tables import TableModel

SKIPPED_SHOWN = 50  # the report lists this many skipped images by name; the JSON lists them all


def rerun_line(provenance: Provenance) -> str:
    command = (provenance.rerun_command or provenance.command_line
               or "(not recorded: the run did not come from the command line)")
    return f"Rerun: `cd {provenance.working_directory} && {command}`"


REFERENCES = (
    ("UTKFace", "Z. Zhang, Y. Song, H. Qi. Age Progression/Regression by Conditional Adversarial Autoencoder. "
                "CVPR 2017. Data: susanqq.github.io/UTKFace (non-commercial research licence)."),
    ("Levi-Hassner nets (caffenet)", "G. Levi, T. Hassner. Age and Gender Classification using Convolutional "
                                     "Neural Networks. CVPR Workshops (AMFG) 2015."),
    ("FaceNet (facenet)", "F. Schroff, D. Kalenichenko, J. Philbin. FaceNet: A Unified Embedding for Face "
                          "Recognition and Clustering. CVPR 2015."),
    ("VGGFace2 (facenet's backbone weights)", "Q. Cao, L. Shen, W. Xie, O. M. Parkhi, A. Zisserman. VGGFace2: A "
                                              "Dataset for Recognising Faces across Pose and Age. FG 2018."),
    ("MTCNN (face detection)", "K. Zhang, Z. Zhang, Z. Li, Y. Qiao. Joint Face Detection and Alignment Using "
                               "Multitask Cascaded Convolutional Networks. IEEE Signal Processing Letters 23(10), "
                               "2016."),
    ("The protocol", "T. Federici, L. Fornetti. Comparison Between Two Biometric Architectures for Gender and "
                     "Age Classification. Student report, Biometric Systems, Sapienza University of Rome: the "
                     "8 age classes, the 70/10/20 split and the metrics this report follows."),
    ("Software", "facenet-pytorch (T. Esler, github.com/timesler/facenet-pytorch), OpenCV, ONNX Runtime, "
                 "PyTorch; versions under Provenance: software."),
)


# How this project's protocol differs from the student report's (the References' "The protocol"); shown in every
# report so that a reader comparing the numbers knows what changed
DEVIATIONS = (
    ("Images", "UTKFace, one random 70/10/20 split (scikit-learn's train_test_split)",
     "`agegender dataset`: both UTKFace folders, a stratified 70/10/20 split by gender and age class in which every "
     "copy of one photo stays in one split (the copies found by their pixels), so that no test face was seen in "
     "training under another name"),
    ("Ages between the classes", "dropped (3, 7, 14, 21-24, 33-37, 44-47, 54-59)",
     "dropped by default (`--gaps drop`); `--gaps keep` scores them in years, `--gaps nearest` moves them to the "
     "nearer class; the coverage table above says which the manifest used and how many it left out"),
    ("facenet", "InceptionResnetV1 (VGGFace2) with gender and age heads, trained on grayscale + blur + CLAHE + "
     "Gabor images, lr 1e-4, early stopping (patience 5)",
     "the same trunk and heads; the bundled model trains on colour crops (`--preprocess none`: the report's "
     "preprocessing, `--preprocess paper`, gave val gender 0.773 against 0.917), on cached augmented views "
     "of a frozen trunk, with an age-in-years head beside the classes"),
    ("caffenet", "the original Levi-Hassner caffemodels (trained on Adience) run by OpenCV's dnn module",
     "the same two nets (227x227 BGR, the same mean), run by OpenCV's dnn module from .prototxt + .caffemodel; "
     "the bundled weights are trained by this project on UTKFace's train split (the original files are not "
     "reachable), with facenet as a teacher"),
    ("Statistics", "point values",
     "every headline number with its 95% interval, McNemar's test of each pair, calibration (ECE), accuracy per "
     "race, gender and age group with the largest gap, age in years (MAE, CS@5); the age F1 is the macro mean"),
)


def deviations_table() -> TableModel:
    """What a reader must know before comparing these numbers with the student report's."""
    return TableModel("Protocol: deviations from the student report", ("", "the report", "here"), DEVIATIONS)


def provenance_tables(provenance: Provenance) -> list[TableModel]:
    return [run_table(provenance), models_table(provenance.models), software_table(provenance.software),
            references_table()]


def references_table() -> TableModel:
    """What to cite with these numbers: the data, the two architectures, the weights, the detector, the protocol."""
    return TableModel("References", ("", "reference"), REFERENCES)


def run_table(p: Provenance) -> TableModel:
    data = p.data
    manifest = data.manifest
    reasons = Counter(_reason(s.error) for s in data.skipped)
    rows = [
        ("Tool", f"{p.tool['name']} {p.tool['version']}"),
        ("Command line", f"`{p.command_line}`" if p.command_line else "-"),
        ("Working directory", f"`{p.working_directory}`"),
        ("Date (UTC)", p.date),
        ("Images", f"`{data.images_folder}` (a folder)" if data.images_folder else f"split {data.split}"),
        ("Manifest", f"`{manifest['path']}`, sha256 `{manifest['sha256']}`" if manifest else "-"),
        ("Images used", f"{data.used:,} of {data.listed:,} listed"),
        ("Images skipped", f"{len(data.skipped):,}" + (": " + "; ".join(f"{n} {r}" for r, n in reasons.items())
                                                       if reasons else "")),
        ("Images and labels used, sha256", f"`{data.images_sha256}`"),
        ("Seed", str(p.seed)),
        ("Bootstrap", f"{p.bootstrap.resamples} resamples, {p.bootstrap.level:.0%} {p.bootstrap.method}"),
        ("Calibration", f"ECE over {p.calibration_bins} equal-width bins of the predicted class's probability"),
        ("Group gaps", f"uncertain when the interval includes 0 or the smaller group has fewer than "
                       f"{p.min_group_n} faces"),
    ]
    return TableModel("Provenance: run", ("", "value"), tuple(rows))


def _reason(error: str) -> str:
    """A skipped image's error without its file name, so that like reasons count together."""
    return error.split(": ", 1)[-1] if ": " in error else error


def models_table(models: Mapping[str, Mapping]) -> TableModel:
    """What each model's predictor tells of itself (free-form: Predictor.provenance())."""
    archs = list(models)
    fields = (("Model", lambda m: m.get("description")),
              ("Files (sha256)", _files),
              ("Engine", lambda m: m.get("engine")),
              ("Precision", lambda m: m.get("precision")),
              ("Device", lambda m: m.get("device")),
              ("Engine choice", lambda m: (m.get("engine_choice") or {}).get("reason")),
              ("Backbone", _backbone),
              ("Trained", _trained),
              ("Training (model card)", lambda m: m.get("training")),
              ("Training data (model card)", lambda m: m.get("training_data")),
              ("Model card", lambda m: _file(m["model_card"]) if m.get("model_card") else None))
    rows = []
    for label, value in fields:
        cells = [value(models[a]) for a in archs]
        if any(cells):
            rows.append((label, *(str(c) if c else "-" for c in cells)))
    return TableModel("Provenance: models", ("", *archs), tuple(rows))


def _file(record: dict) -> str:
    return f"`{record['path']}` ({record['bytes']:,} bytes, sha256 `{record['sha256']}`)"


def _files(model: dict) -> str | None:
    return "; ".join(_file(f) for f in model.get("files", [])) or None


def _backbone(model: dict) -> str | None:
    b = model.get("backbone")
    if not b:
        return None
    same = "the one trained on" if b["sha256"] == b["trained_sha256"] else f"trained on `{b['trained_sha256']}`"
    return f"{b['name']}, sha256 `{b['sha256']}` ({same}), from {b['source']}: `{Path(b['path']).name}`"


def _trained(model: dict) -> str | None:
    t = model.get("trained")
    if not t:
        return None
    val = ", ".join(f"{k} {v:.4f}" for k, v in (t.get("val") or {}).items() if isinstance(v, float))
    return f"manifest `{t.get('manifest')}`, best epoch {t.get('epoch')} by val {t.get('select')}, seed " \
           f"{t.get('seed')}" + (f"; val {val}" if val else "")


def software_table(software: Mapping[str, str | None]) -> TableModel:
    return TableModel("Provenance: software", ("", "version"),
                      tuple((name, str(version or "-")) for name, version in software.items()))


def skipped_table(skipped: Sequence[Failure]) -> TableModel:
    rows = tuple((f"`{s.file}`", s.error) for s in skipped[:SKIPPED_SHOWN])
    more = len(skipped) - SKIPPED_SHOWN
    note = f"... and {more:,} more (all of them in `--json`: provenance.data.skipped)" if more > 0 else ""
    return TableModel("Images skipped", ("image", "reason"), rows, note=note)
