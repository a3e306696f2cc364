"""Tiny architectures whose predictor dies, raises, hangs or cannot load: the Ray job's fault tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import Prediction
from tiny_arch import Tiny
from tiny_arch.predictor import TinyPredictor


class DyingPredictor(TinyPredictor):
    """The tiny predictor whose process dies (os._exit) on its first batch after `marker` appears, once."""

    def __init__(self, marker: Path) -> None:
        super().__init__(None, 0.0)
        self.marker = marker

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        try:
            self.marker.unlink()  # whoever removes the marker dies; the others go on
        except FileNotFoundError:
            return super().predict(faces)
        os._exit(1)


class DyingOnce(Tiny):
    """A tiny architecture whose predictor kills its process once (a crashed Ray actor, for fault tests)."""

    def __init__(self, marker: Path, name: str = "dying") -> None:
        super().__init__(name)
        self.marker = marker

    def load_predictor(self, model, options, log):
        return DyingPredictor(self.marker)


class MisbehavingPredictor(TinyPredictor):
    """The tiny predictor that raises, kills its process or hangs on every batch (`how`)."""

    def __init__(self, how: str) -> None:
        super().__init__(None, 0.0)
        self.how = how

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        if self.how == "raise":
            raise ValueError("the tiny model refuses these faces")
        if self.how == "die":
            os._exit(1)
        import time

        time.sleep(600)
        return super().predict(faces)


class Misbehaving(Tiny):
    """A tiny architecture whose predictor raises, dies or hangs, or that cannot load (the Ray job's fault
    tests)."""

    def __init__(self, how: str, name: str = "misbehaving") -> None:
        super().__init__(name)
        self.how = how

    def load_predictor(self, model, options, log):
        if self.how == "load":
            from agegender_cli.errors import AgeGenderError

            raise AgeGenderError("the tiny model cannot load here")
        return MisbehavingPredictor(self.how)


class DyingForGood(Tiny):
    """A tiny architecture whose predictor kills its process once, after which that actor cannot load again: an
    actor that Ray cannot start again (as on a lost node), for fault tests."""

    def __init__(self, marker: Path, name: str = "dying") -> None:
        super().__init__(name)
        self.marker = marker

    def load_predictor(self, model, options, log):
        dead = self.marker.with_suffix(".dead")
        if dead.exists() and dead.read_text() == _actor_id():
            from agegender_cli.errors import AgeGenderError

            raise AgeGenderError("this actor cannot start again")
        return _DyingForGoodPredictor(self.marker)


def _actor_id() -> str:
    import ray

    return ray.get_runtime_context().get_actor_id() or ""


class _DyingForGoodPredictor(DyingPredictor):
    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        try:
            self.marker.unlink()  # whoever removes the marker dies, and cannot start again
        except FileNotFoundError:
            return TinyPredictor.predict(self, faces)
        self.marker.with_suffix(".dead").write_text(_actor_id())
        os._exit(1)
