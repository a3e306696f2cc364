"""The fused answer's training defaults (`agegender train --arch fused`: weights fitted on val)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agegender_cli.config import DEFAULT_MANIFEST, DEFAULT_RUNS_DIR

PARTS = ("facenet", "caffenet")  # the architectures whose answers `fused` combines, in the weights' order


@dataclass(frozen=True)
class FusedTrainConfig:
    """`agegender train --arch fused`: the weights that combine facenet's and caffenet's answers, fitted on val."""

    manifest: Path = DEFAULT_MANIFEST
    out: Path = DEFAULT_RUNS_DIR / "fused"
    detector: str = "none"  # how the val faces are framed (none: crops; auto, mtcnn, haar: found in photos)
    pick: str = "largest"  # which found face of a photo is its labelled one (PICK_RULES)
    resume: bool = False  # nothing to resume: the fit takes seconds once the parts have answered
