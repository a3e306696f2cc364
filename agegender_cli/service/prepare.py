"""`agegender dataset` and `agegender preprocess`: the manifest, and processed copies of images."""

from __future__ import annotations

from pathlib import Path

from agegender_cli.config import DatasetConfig, PreprocessConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display
from agegender_cli.ownership import foreign, marked, refuse_foreign, with_mark
from agegender_cli.progress import SILENT, Reporter
from agegender_cli.service.guards import refuse_overwriting_inputs, renamed_outputs


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
    from agegender_cli.fileio import OutputNames, atomic_write_bytes, check_output_file, make_folder

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
    result["renamed"] = renamed_outputs(names, reporter)
    return result
