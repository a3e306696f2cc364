"""The operations behind every command: build a config, call one of these, render the result."""

from __future__ import annotations

from pathlib import Path

from agegender_cli.config import DatasetConfig, PreprocessConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.progress import SILENT, Reporter


def make_dataset(cfg: DatasetConfig, reporter: Reporter = SILENT) -> dict:
    """`agegender dataset`: scan a UTKFace source, split it, write manifest.csv."""
    from agegender_cli.data import build_dataset
    from agegender_cli.labels import GAP_RULE

    summary = build_dataset(cfg, progress=reporter.message)
    summary["gap_rule"] = GAP_RULE if cfg.gaps == "nearest" else "ages between the classes are dropped"
    return summary


def read_image(path: Path):
    """Decode an image file as BGR uint8, or raise a one-line error naming it."""
    import cv2
    import numpy as np

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise AgeGenderError(f"{path}: cannot read ({exc.strerror})") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise AgeGenderError(f"{path}: cannot decode: not an image or corrupt file")
    return image


def _preprocess_sources(
    inputs: list[Path], manifest: Path | None, split: str | None
) -> list[tuple[Path, Path]]:
    """(image, name relative to the output folder) for every image to process."""
    from agegender_cli.data import IMAGE_EXTENSIONS, read_manifest

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
    """`agegender preprocess`: write processed images under `out` and/or a preview figure."""
    import cv2

    from agegender_cli.fileio import atomic_write_bytes
    from agegender_cli.preprocessing import config_key, preprocess, stages

    pairs = _preprocess_sources(inputs, manifest, split)
    result: dict = {"settings": config_key(cfg), "n_images": len(pairs), "written": 0, "failed": []}
    if preview is not None:
        from agegender_cli.preview import save_stage_figure

        rows = [(src.name, stages(read_image(src), cfg)) for src, _ in pairs[:preview_count]]
        result["preview"] = str(save_stage_figure(rows, preview))
    if out is None:
        return result
    result["out"] = str(out)
    for source, relative in reporter.track(pairs, "preprocessing", len(pairs)):
        try:
            image = preprocess(read_image(source), cfg)
        except AgeGenderError as exc:
            result["failed"].append({"file": str(source), "error": str(exc)})
            continue
        ok, encoded = cv2.imencode(".png", image)
        atomic_write_bytes(out / relative.with_suffix(".png"), encoded.tobytes())
        result["written"] += 1
    return result
