"""The models of a run, loaded once and side by side while the caller goes on; `agegender info`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from typing import Any

from agegender_cli.config import ModelOptions, PredictConfig
from agegender_cli.progress import SILENT, Reporter


def start_loading(archs: tuple[str, ...], options: ModelOptions, reporter: Reporter) -> dict[str, Future]:
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


def load_predictors(archs: tuple[str, ...], options: ModelOptions, reporter: Reporter) -> dict:
    """Every architecture asked for, loaded once, side by side."""
    return dict(Loaded(start_loading(archs, options, reporter)))


class Loaded(Mapping):
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

        self.predictors = Loaded(start_loading(cfg.archs, cfg.options, reporter))
        self.framings = {arch: framing(arch, cfg.detector, cfg.options) for arch in cfg.archs}
        self.detector = make_detector(cfg.detector, min_face=cfg.min_face, min_score=cfg.min_score,
                                      device=cfg.options.device, engine=cfg.options.engine, log=reporter.message)

    def records(self, frames) -> list[list[dict]]:
        """The records of decoded frames (faces.inputs.Frame), one list per frame, as `predict --json` has them."""
        from agegender_cli.faces.records import frame_records

        records = frame_records(frames, self.detector, self.framings, self.predictors)
        dict(self.predictors)  # a model that failed to load fails the run even where no face needed it
        return records


def info() -> dict:
    """`agegender info`: versions, the device and precision a run would use and why, threads, cache, weights, and
    what each architecture declares (its options and capabilities)."""
    from agegender_cli.archs import registry
    from agegender_cli.archs.entry import declared
    from agegender_cli.environment import describe

    return {**describe(), "architectures": {name: declared(registry.get(name)) for name in registry.names()}}
