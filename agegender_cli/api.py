"""The Python API: `AgeGender` loads the models once and answers for image files, arrays and PIL images."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from agegender_cli.config import (
    DETECTORS,
    DEVICES,
    ENGINES,
    EVAL_DETECTORS,
    MAX_SEED,
    PRECISIONS,
    EvaluateConfig,
    ModelOptions,
    PredictConfig,
)
from agegender_cli.errors import AgeGenderError

if TYPE_CHECKING:  # numpy and PIL are imported when an image arrives, not with the package
    import numpy as np
    from PIL.Image import Image as PILImage

    from agegender_cli.evaluation.result import Evaluation
    from agegender_cli.faces.inputs import Frame
    from agegender_cli.service import FaceModels

    ImageInput = str | os.PathLike[str] | np.ndarray | PILImage

Channels = Literal["bgr", "rgb"]
CHANNELS = ("bgr", "rgb")
P = PredictConfig()
E = EvaluateConfig()

__all__ = ["AgeGender", "AgeGenderError", "draw"]


class AgeGender:
    """Gender and age group of every face, with the bundled (or given) models loaded once and kept.

    `arch`: "both" (every architecture), "facenet", "caffenet", or a comma-separated list; `detector`: one of
    config.DETECTORS (the default of `agegender predict`); `device`, `precision`, `engine`: as the command line's
    options (`engine` picks how the caffenet nets run); `models`: {arch: model file or folder}, or one path when
    one architecture runs; None: the bundled models; keywords named by the architectures' weight options (such as
    `backbone_weights`, `caffe_weights`: registry.weight_options()): the weights to run with, as the command line's
    `--backbone-weights`. The models load on first use (or on `load()`) and stay loaded. Every failure raises
    AgeGenderError with the command line's one-line message.
    """

    def __init__(
        self,
        arch: str | Sequence[str] = "both",
        detector: str = P.detector,
        device: str = "auto",
        precision: str = "auto",
        engine: str = "auto",
        models: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
        *,
        min_face: int = P.min_face,
        min_score: float = P.min_score,
        batch_size: int = P.options.batch_size,
        **weights: str | os.PathLike[str] | None,
    ) -> None:
        from agegender_cli.archs import registry

        for name, value, allowed in (("detector", detector, DETECTORS), ("device", device, DEVICES),
                                     ("precision", precision, PRECISIONS), ("engine", engine, ENGINES)):
            _check_choice(name, value, allowed)
        # arguments are checked here, before any model loads, and always as AgeGenderError
        _check_number("min_face", min_face, integer=True)
        _check_number("min_score", min_score)
        _check_number("batch_size", batch_size, integer=True)
        if not (isinstance(arch, str) or (isinstance(arch, Sequence) and arch
                                          and all(isinstance(a, str) for a in arch))):
            raise AgeGenderError(f"arch {arch!r}: give \"both\", an architecture name, or a list of names")
        declared = [w.name for w in registry.weight_options()]
        for name, value in weights.items():
            if name not in declared:
                raise AgeGenderError(f"AgeGender() got an unknown argument {name!r}; the architectures' weights are "
                                     f"{', '.join(declared)}")
            if value is not None and not isinstance(value, str | os.PathLike):
                raise AgeGenderError(f"{name} {value!r}: give a file path or None")
        if min_face < 1 or not 0.0 <= min_score <= 1.0 or batch_size < 1:
            raise AgeGenderError(f"min_face {min_face}, min_score {min_score}, batch_size {batch_size}: "
                                 "min_face and batch_size are at least 1, min_score lies in 0..1")
        archs = registry.parse_archs(arch)
        if models is None:
            given: list[str] = []
        elif isinstance(models, Mapping):
            given = [f"{name}={path}" for name, path in models.items()]
        else:
            given = [str(models)]
        options = ModelOptions(
            models=registry.parse_models(given, archs), engine=engine, precision=precision, device=device,
            batch_size=batch_size,
            weights=tuple((name, Path(value)) for name, value in weights.items() if value is not None))
        self.config = PredictConfig(archs=archs, detector=detector, min_face=min_face, min_score=min_score,
                                    options=options)
        self._models: FaceModels | None = None
        self.loads = 0  # how often the models were loaded: once for the object's life

    @property
    def archs(self) -> tuple[str, ...]:
        """The architectures that answer, in the order of each record's fields."""
        return self.config.archs

    def __repr__(self) -> str:
        o = self.config.options
        return (f"AgeGender(arch={','.join(self.archs)!r}, detector={self.config.detector!r}, device={o.device!r}, "
                f"precision={o.precision!r}, engine={o.engine!r}, models={dict(o.models) or None!r})")

    def load(self) -> AgeGender:
        """Load the detector and the models now (else on the first call that needs them); returns self."""
        self._loaded()
        return self

    def _loaded(self) -> FaceModels:
        if self._models is None:
            from agegender_cli.service import FaceModels

            self._models = FaceModels(self.config)
            self.loads += 1
        return self._models

    @overload
    def predict(self, images: list[ImageInput] | tuple[ImageInput, ...], *,
                channels: Channels = "bgr") -> list[list[dict]]: ...

    @overload
    def predict(self, images: ImageInput, *, channels: Channels = "bgr") -> list[dict]: ...

    def predict(self, images: Any, *, channels: Channels = "bgr") -> list[dict] | list[list[dict]]:
        """The records of every face of one image, or of each image of a list (one list per image, in order).

        An image is a file path (str or Path), a numpy uint8 array (height x width x 3 in `channels` order, "bgr"
        as cv2.imread gives it or "rgb"; also gray height x width, or 4 channels whose alpha is dropped), or a
        PIL image (its EXIF rotation applied, as for a file). A record is a dict with the fields of a
        `agegender predict --json` line: `file` is the path as given, None for an array or a PIL image; an
        image without a face gives one record with `face` None and `note` "no face found". In a list, a file
        that cannot be read (missing, a folder, not an image) gives one record with `status` "error" and its
        `error`, as on the command line, and the other images are answered; one image alone raises instead.
        Folders, globs and videos: `predict_files`."""
        _check_choice("channels", channels, CHANNELS)
        many = isinstance(images, list | tuple)
        items = list(images) if many else [images]
        results = list(self._answered(_frame(item, channels, keep_going=many) for item in items))
        return results if many else results[0]

    def predict_files(self, *inputs: str | os.PathLike[str], every: int = 1) -> Iterator[dict]:
        """The records of image files, folders (walked as `agegender predict` walks them), globs and videos (one
        frame in `every`), one at a time and in order, as `agegender predict --json` prints them; each file
        is read once however often it is named. An input that cannot be read gives one record with `status`
        "error" and its `error`, and the others go on. The models load with the first readable frame."""
        from agegender_cli.faces.inputs import InputStream, iter_frames

        _check_number("every", every, integer=True)
        if every < 1:
            raise AgeGenderError(f"every {every}: give 1 or more (1: every frame of a video)")
        if not inputs:
            raise AgeGenderError("no input: give image files, folders, globs or videos")
        for spec in inputs:
            if not isinstance(spec, str | os.PathLike):
                raise AgeGenderError(f"input {spec!r}: give a path, a folder or a glob")
            if os.fspath(spec) == "-":
                raise AgeGenderError('input "-": paths on stdin are the command line\'s; give the paths')
        for rows in self._answered(iter_frames(InputStream([os.fspath(spec) for spec in inputs]), every=every)):
            yield from rows

    def _answered(self, frames: Iterable[Frame]) -> Iterator[list[dict]]:
        """Each frame's records, in order; the frames are answered a batch at a time as they are decoded."""
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.config.options.batch_size:
                yield from self._records(batch)
                batch = []
        if batch:
            yield from self._records(batch)

    def _records(self, frames: Sequence[Frame]) -> list[list[dict]]:
        """One list of records per frame; a frame that could not be read is one error record."""
        from agegender_cli.faces.records import error_record
        from agegender_cli.fileio import display

        readable = [frame for frame in frames if frame.error is None]
        answered = iter(self._loaded().records(readable) if readable else [])
        return [next(answered) if frame.error is None else
                [error_record(display(frame.source) if frame.source else frame.source, frame.index, frame.error)]
                for frame in frames]

    def evaluate(
        self,
        manifest: str | os.PathLike[str] = E.manifest,
        split: str = E.split,
        images: str | os.PathLike[str] | None = None,
        *,
        detector: str = E.detector,
        bootstrap: int = E.bootstrap,
        seed: int = E.seed,
        plots: str | os.PathLike[str] | None = None,
    ) -> Evaluation:
        """What `agegender evaluate` finds, with the loaded models: an Evaluation (frozen dataclasses: fields such as
        `.results["facenet"].gender.accuracy`; `.to_json()` is the dict `evaluate --json` prints, result schema 1,
        docs/outputs.md). `images`: a folder of UTKFace-named images instead of the manifest's split; `detector`:
        one of config.EVAL_DETECTORS ("none": the images are face crops)."""
        from agegender_cli import service

        cfg = self._evaluate_config(manifest, split, images, detector, bootstrap, seed, plots, None, "evaluate")
        return service.evaluate(cfg, predictors=self._loaded().predictors)

    def compare(
        self,
        manifest: str | os.PathLike[str] = E.manifest,
        split: str = E.split,
        images: str | os.PathLike[str] | None = None,
        *,
        detector: str = E.detector,
        bootstrap: int = E.bootstrap,
        seed: int = E.seed,
        plots: str | os.PathLike[str] | None = None,
        report: str | os.PathLike[str] | None = None,
    ) -> Evaluation:
        """What `agegender compare` finds, with the loaded models: the Evaluation `evaluate` returns, the paired
        tests between the architectures in `.tests`, and with `report` a Markdown (.md) or HTML (.html) report
        written (`.report`)."""
        from agegender_cli import service

        cfg = self._evaluate_config(manifest, split, images, detector, bootstrap, seed, plots, report, "compare")
        return service.compare(cfg, predictors=self._loaded().predictors)

    def _evaluate_config(self, manifest, split, images, detector, bootstrap, seed, plots, report,
                         method: str) -> EvaluateConfig:
        from agegender_cli.config import EVAL_SPLITS

        _check_choice("detector", detector, EVAL_DETECTORS)
        _check_choice("split", split, EVAL_SPLITS)
        for name, value, optional in (("manifest", manifest, False), ("images", images, True), ("plots", plots, True),
                                      ("report", report, True)):
            if not (isinstance(value, str | os.PathLike) or (optional and value is None)):
                raise AgeGenderError(f"{name} {value!r}: give a path" + (" or None" if optional else ""))
        _check_number("bootstrap", bootstrap, integer=True)
        _check_number("seed", seed, integer=True)
        if not 0 <= seed <= MAX_SEED:
            raise AgeGenderError(f"seed {seed}: give 0 to {MAX_SEED}")
        if not 1 <= bootstrap <= 100_000:
            raise AgeGenderError(f"bootstrap {bootstrap}: give 1 to 100000 resamples")
        call = f"{self!r}.{method}(manifest={str(manifest)!r}, split={split!r}, images={images!r}, " \
               f"detector={detector!r}, bootstrap={bootstrap}, seed={seed})"
        return EvaluateConfig(archs=self.archs, manifest=Path(manifest), split=split, images=_path_or_none(images),
                              options=self.config.options, detector=detector, min_face=self.config.min_face,
                              min_score=self.config.min_score, bootstrap=bootstrap, seed=seed,
                              plots=_path_or_none(plots), report=_path_or_none(report), command_line=call)


def draw(image: ImageInput, records: Sequence[dict], *, channels: Channels = "bgr") -> np.ndarray:
    """A copy of the image with each face's box and its answers (a line per architecture) drawn on it, as
    `agegender predict --annotate` draws them: `records` are `AgeGender.predict`'s (or `predict --json`'s) for
    this image. The image is a path, a PIL image or a uint8 array in `channels` order; the copy comes back in
    `channels` order (write a "bgr" one with cv2.imwrite)."""
    from agegender_cli.faces.annotate import draw_records

    _check_choice("channels", channels, CHANNELS)
    if isinstance(records, dict) or not all(isinstance(r, dict) for r in records):
        raise AgeGenderError("records: give the list of record dicts predict returned for this image")
    frame = _frame(image, channels)
    try:
        drawn = draw_records(frame.image, records)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise AgeGenderError(f"records: a face record lacks a usable field ({type(exc).__name__}: {exc}); give "
                             "the records predict returned for this image") from None
    return drawn[:, :, ::-1].copy() if channels == "rgb" else drawn


def _check_number(name: str, value: object, *, integer: bool = False) -> None:
    """An int (or, unless `integer`, a float) and finite: a string or None is a one-line AgeGenderError."""
    kinds = (int,) if integer else (int, float)
    finite = not isinstance(value, float) or math.isfinite(value)
    if isinstance(value, bool) or not isinstance(value, kinds) or not finite:
        raise AgeGenderError(f"{name} {value!r}: give {'an integer' if integer else 'a number'}")


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise AgeGenderError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")


def _path_or_none(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _frame(item: object, channels: Channels, keep_going: bool = False) -> Frame:
    """One input as a decoded BGR frame (no file written); a bad input raises AgeGenderError, or with
    `keep_going` a file that cannot be read is a frame with its error."""
    import numpy as np
    from PIL import Image, ImageOps

    from agegender_cli.faces.inputs import Frame, read_image
    from agegender_cli.fileio import display

    if isinstance(item, str | os.PathLike):
        path = Path(item)
        error = None
        if path.is_dir():
            error = "a folder; give its image files (predict_files reads folders)"
        elif not path.exists():
            error = "no such file or folder"
        if error is None:
            image, error = read_image(str(item))
        if error is None:
            return Frame(display(str(item)), None, image)
        if keep_going:
            return Frame(display(str(item)), None, None, error)
        raise AgeGenderError(f"{display(path)}: {error}")
    if isinstance(item, Image.Image):
        try:
            rgb = np.asarray(ImageOps.exif_transpose(item).convert("RGB"))
        except (ValueError, OSError) as exc:  # a closed or truncated image
            raise AgeGenderError(f"cannot read the PIL image ({exc}); give an open, readable image") from None
        return Frame(None, None, _bgr(rgb, "rgb"))  # type: ignore[arg-type]
    if isinstance(item, np.ndarray):
        return Frame(None, None, _bgr(item, channels))  # type: ignore[arg-type]
    raise AgeGenderError(f"cannot read an image from a {type(item).__name__}: give a path, a numpy uint8 array "
                         "or a PIL image")


def _bgr(array: np.ndarray, channels: Channels) -> np.ndarray:
    """A uint8 array as the contiguous BGR image the models take (gray widened, alpha dropped), size-checked."""
    import numpy as np

    from agegender_cli.faces.inputs import too_many_pixels

    if array.dtype != np.uint8:
        raise AgeGenderError(f"image array of dtype {array.dtype}: give uint8 pixels (0-255)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise AgeGenderError(f"image array of shape {array.shape}: give height x width x 3 "
                             f"({channels.upper()}), height x width x 4, or height x width (gray)")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise AgeGenderError(f"image array of shape {array.shape}: the image is empty")
    if (too_large := too_many_pixels(width, height)) is not None:
        raise AgeGenderError(f"image array: {too_large}")
    array = array[:, :, :3]
    return np.ascontiguousarray(array[:, :, ::-1] if channels == "rgb" else array)
