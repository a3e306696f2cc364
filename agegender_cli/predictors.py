"""One place that turns an architecture name and options into a Predictor (bundled by default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agegender_cli.errors import AgeGenderError
from agegender_cli.predictor import Predictor

ASSETS = Path(__file__).resolve().parent / "assets"
BUNDLED_FACENET = ASSETS / "facenet.pt"
BUNDLED_CAFFENET = ASSETS / "caffenet"
ARCHS = ("facenet", "caffenet")
ORIGINAL = "original"


def parse_archs(value: str | tuple[str, ...]) -> tuple[str, ...]:
    """'both' -> every architecture; a comma-separated list is kept in order."""
    names = value if isinstance(value, tuple) else tuple(v.strip() for v in value.split(",") if v.strip())
    if names in (("both",), ("all",)):
        return ARCHS
    unknown = [n for n in names if n not in ARCHS]
    if unknown or not names:
        raise AgeGenderError(f"unknown architecture {', '.join(unknown) or '(none)'}: use facenet, caffenet or both")
    return names


def load_predictor(
    arch: str, *, facenet_model: Path | None = None, caffenet_model: Path | None = None,
    caffe_weights: Path | None = None, engine: str = "opencv", precision: str = "bf16", device: str = "auto",
    batch_size: int = 64, backbone_weights: Path | None = None, log: Callable[[str], None] | None = None,
) -> Predictor:
    """The predictor of `arch`, from the given files or the bundled model."""
    if arch == "facenet":
        from agegender_cli.facenet_predictor import FacenetPredictor

        path = facenet_model or BUNDLED_FACENET
        return FacenetPredictor(path, backbone_weights=backbone_weights, device=device, precision=precision,
                                batch_size=batch_size, log=log)
    if arch == "caffenet":
        from agegender_cli.caffenet import CaffenetPredictor

        if caffe_weights is not None:
            from agegender_cli.caffe_weights import resolve_caffe_weights

            # "original": the cached (or, online, downloaded) original Levi-Hassner files
            wanted = None if str(caffe_weights) == ORIGINAL and not caffe_weights.exists() else caffe_weights
            folder = resolve_caffe_weights(wanted, log=log or (lambda _: None))
        else:
            folder = caffenet_model or BUNDLED_CAFFENET
        # auto: the PyTorch twin, which tests prove agrees with cv2.dnn (the reference engine) on >= 99.5%
        return CaffenetPredictor(folder, engine="torch" if engine == "auto" else engine, precision=precision,
                                 batch_size=batch_size)
    raise AgeGenderError(f"unknown architecture '{arch}': use facenet, caffenet or both")


def framing_for(arch: str, detector: str, caffe_weights: Path | None) -> str:
    """How a detected face is cropped for `arch`: like the crops the model was trained on."""
    if detector == "none":
        return "box"
    if arch == "caffenet" and caffe_weights is not None:
        return "opencv20"  # the original nets came with the OpenCV demo's 20 px padding
    return "utkface"
