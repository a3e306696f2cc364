"""facenet's int8 ranges file: where a checkpoint keeps it, and reading it back, checked against the checkpoint and
backbone it was made for (int8.py calibrates it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agegender_cli.onnx_int8 import checked_ranges, read_ranges_file
from agegender_cli.onnx_models import file_digest

RANGES_SUFFIX = ".int8_ranges.json"
FORMAT = 1
# Kept in fp32, chosen on val (2,003 faces, ranges from 512 train faces): the whole trunk in int8 lost 0.93 points of
# age and changed 5% of the age classes; most of that comes from the stem's early convolutions (2a, 2b: the stem
# alone in int8 lost 0.8) and block8, which feeds the embedding. Without them: gender +0.00, age -0.08, 1.5x faster.
FP32_MODULES = ("conv2d_2a", "conv2d_2b", "maxpool_3a", "block8")


def ranges_path(checkpoint: Path) -> Path:
    """Where a checkpoint keeps its int8 ranges: facenet.pt -> facenet.int8_ranges.json."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + RANGES_SUFFIX)


def module_scopes(modules: Sequence[str], unfreeze: str) -> list[str]:
    """The ONNX node-name prefixes of the backbone modules in the exported graph, where the checkpoint's unfreeze
    point splits the backbone into the frozen trunk and the tail's blocks."""
    from agegender_cli.archs.facenet.model import TRUNK_ORDER

    cut = TRUNK_ORDER.index("avgpool_1a" if unfreeze == "last_linear" else unfreeze)
    scopes = []
    for name in modules:
        index = TRUNK_ORDER.index(name)
        scopes.append(f"/trunk/frozen/frozen.{index}/" if index < cut else f"/tail/blocks/blocks.{index - cut}/")
    return scopes


def read_ranges(checkpoint: Path, backbone_sha256: str, auto: bool = False
                ) -> tuple[tuple[dict[str, list[float]], list[str]] | None, str]:
    """((ranges, fp32 scopes), why int8) when the checkpoint's ranges file was made for it and the backbone that
    runs (and, for --precision auto, its val check passed auto's bar), else (None, why not)."""
    path = ranges_path(checkpoint)

    def fit(doc: dict) -> tuple[tuple | None, str | None]:
        if doc["checkpoint_sha256"] != file_digest(Path(checkpoint)):
            return None, f"{path.name} was calibrated for another checkpoint"
        if doc["backbone_sha256"] != backbone_sha256:
            return None, f"{path.name} was calibrated with another backbone file"
        if not isinstance(doc["fp32_scopes"], list) or not all(isinstance(s, str) for s in doc["fp32_scopes"]):
            raise TypeError("fp32_scopes is not a list of node-name prefixes")
        return (checked_ranges(doc["ranges"]), list(doc["fp32_scopes"])), None

    return read_ranges_file(path, FORMAT, "the checkpoint", auto, fit)
