"""The Levi & Hassner (2015) age_net/gender_net: deploy prototxt, PyTorch twin, input blobs, cv2.dnn loading."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from agegender_cli.archs.caffenet.deploy import (
    INPUT_SIZE,
    MEAN_BGR,
    YEARS_OUTPUT,
    resize_faces,
)
from agegender_cli.errors import AgeGenderError

PARAM_LAYERS = ("conv1", "conv2", "conv3", "fc6", "fc7", "fc8")
# An age_net may also estimate age in years: fc7 -> [fc_years_hidden -> relu] -> fc_years -> years_prob,
# a distribution over 0..100 years whose expectation is the estimate.
YEARS_LAYERS = ("fc_years_hidden", "fc_years")
# What a model folder may ask of memory before cv2.dnn is let at it: the deploy prototxts are 2 KB, and
# cv2.dnn reckons 6 MiB of activations per 227 x 227 face for the Levi-Hassner nets.
MAX_ACTIVATION_BYTES = 64 << 20

# The original nets' output orders. They map index-to-index onto labels.GENDERS ("male", "female")
# and labels.AGE_CLASSES: (8-12) is read as 8-13 and (60-100) as 60+, the report's classes.
ORIGINAL_GENDERS = ("Male", "Female")
ORIGINAL_AGE_CLASSES = ("(0-2)", "(4-6)", "(8-12)", "(15-20)", "(25-32)", "(38-43)", "(48-53)", "(60-100)")

_POOL = "pooling_param { pool: MAX kernel_size: 3 stride: 2 }"
_LRN = "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }"


def deploy_prototxt(num_classes: int, name: str = "CaffeNet", years_hidden: int | None = None,
                    years: bool = False) -> str:
    """The deploy net definition (V2 `layer` syntax) whose layer names the twin shares."""
    conv = "Convolution"
    layers = [
        _layer("conv1", conv, "data", "conv1", "convolution_param { num_output: 96 kernel_size: 7 stride: 4 }"),
        _layer("relu1", "ReLU", "conv1", "conv1"),
        _layer("pool1", "Pooling", "conv1", "pool1", _POOL),
        _layer("norm1", "LRN", "pool1", "norm1", _LRN),
        _layer("conv2", conv, "norm1", "conv2", "convolution_param { num_output: 256 pad: 2 kernel_size: 5 }"),
        _layer("relu2", "ReLU", "conv2", "conv2"),
        _layer("pool2", "Pooling", "conv2", "pool2", _POOL),
        _layer("norm2", "LRN", "pool2", "norm2", _LRN),
        _layer("conv3", conv, "norm2", "conv3", "convolution_param { num_output: 384 pad: 1 kernel_size: 3 }"),
        _layer("relu3", "ReLU", "conv3", "conv3"),
        _layer("pool5", "Pooling", "conv3", "pool5", _POOL),
        _layer("fc6", "InnerProduct", "pool5", "fc6", "inner_product_param { num_output: 512 }"),
        _layer("relu6", "ReLU", "fc6", "fc6"),
        _layer("drop6", "Dropout", "fc6", "fc6", "dropout_param { dropout_ratio: 0.5 }"),
        _layer("fc7", "InnerProduct", "fc6", "fc7", "inner_product_param { num_output: 512 }"),
        _layer("relu7", "ReLU", "fc7", "fc7"),
        _layer("drop7", "Dropout", "fc7", "fc7", "dropout_param { dropout_ratio: 0.5 }"),
        _layer("fc8", "InnerProduct", "fc7", "fc8", f"inner_product_param {{ num_output: {num_classes} }}"),
        _layer("prob", "Softmax", "fc8", "prob"),
    ]
    if years:
        layers += _years_layers(years_hidden)
    header = f'name: "{name}"\ninput: "data"\ninput_shape {{ dim: 1 dim: 3 dim: {INPUT_SIZE} dim: {INPUT_SIZE} }}\n'
    return header + "".join(layers)


def _years_layers(hidden: int | None) -> list[str]:
    from agegender_cli.archs.years_head import N_BINS

    bottom, layers = "fc7", []
    if hidden:
        layers += [_layer("fc_years_hidden", "InnerProduct", "fc7", "fc_years_hidden",
                          f"inner_product_param {{ num_output: {hidden} }}"),
                   _layer("relu_years", "ReLU", "fc_years_hidden", "fc_years_hidden")]
        bottom = "fc_years_hidden"
    return layers + [_layer("fc_years", "InnerProduct", bottom, "fc_years",
                            f"inner_product_param {{ num_output: {N_BINS} }}"),
                     _layer(YEARS_OUTPUT, "Softmax", "fc_years", YEARS_OUTPUT)]


def _layer(name: str, kind: str, bottom: str, top: str, params: str = "") -> str:
    body = f'  name: "{name}"\n  type: "{kind}"\n  bottom: "{bottom}"\n  top: "{top}"\n'
    return "layer {\n" + body + (f"  {params}\n" if params else "") + "}\n"


class CaffeLRN(nn.Module):
    """Caffe's LRN across channels, local_size 5, alpha 1e-4, beta 0.75: the values of
    nn.LocalResponseNorm(5, 1e-4, 0.75, k=1), computed in float32 even under bf16 autocast."""

    def __init__(self, channels: int, size: int = 5, alpha: float = 1e-4, beta: float = 0.75) -> None:
        super().__init__()
        offsets = torch.arange(channels)[:, None] - torch.arange(channels)[None, :]
        # The window sum over channels as one (C, C) matmul: about twice as fast as
        # nn.LocalResponseNorm's avg_pool3d on CPU, forward and backward.
        band = (offsets.abs() <= size // 2).float() * (alpha / size)
        self.register_buffer("band", band, persistent=False)
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            window = (x.square().permute(0, 2, 3, 1) @ self.band).permute(0, 3, 1, 2)
            return x / (window + 1.0).pow(self.beta)


class LeviHassnerNet(nn.Module):
    """PyTorch twin of the deploy prototxt: same layers, same names; forward returns the fc8 logits."""

    def __init__(self, num_classes: int, years_hidden: int | None = None, years: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 7, stride=4)
        self.relu1 = nn.ReLU(inplace=True)
        # Caffe pooling rounds the output size up.
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.norm1 = CaffeLRN(96)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2)
        self.relu2 = nn.ReLU(inplace=True)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.norm2 = CaffeLRN(256)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.relu3 = nn.ReLU(inplace=True)
        self.pool5 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fc6 = nn.Linear(384 * 7 * 7, 512)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout(0.5)
        self.fc7 = nn.Linear(512, 512)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout(0.5)
        self.fc8 = nn.Linear(512, num_classes)
        self.years_hidden = years_hidden if years else None
        self.has_years = years
        if years:
            from agegender_cli.archs.years_head import N_BINS

            if years_hidden:
                self.fc_years_hidden = nn.Linear(512, years_hidden)
            self.fc_years = nn.Linear(years_hidden or 512, N_BINS)

    @property
    def num_classes(self) -> int:
        return self.fc8.out_features

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """pool5's activations, flattened: what fc6 reads."""
        x = self.norm1(self.pool1(self.relu1(self.conv1(x))))
        x = self.norm2(self.pool2(self.relu2(self.conv2(x))))
        return torch.flatten(self.pool5(self.relu3(self.conv3(x))), 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """fc7's activations: what fc8 and the years layers read."""
        x = self.drop6(self.relu6(self.fc6(self.conv_features(x))))
        return self.drop7(self.relu7(self.fc7(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc8(self.features(x))

    def years_logits(self, features: torch.Tensor) -> torch.Tensor:
        if self.years_hidden:
            features = torch.relu(self.fc_years_hidden(features))
        return self.fc_years(features)


def mean_subtract(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 BGR -> float32 minus the mean, in blobFromImages' float32 arithmetic."""
    mean = torch.tensor(MEAN_BGR, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return images.float() - mean


def torch_input(faces: Sequence[np.ndarray]) -> torch.Tensor:
    """The same values as blob_from_faces, computed with cv2.resize + torch."""
    return mean_subtract(torch.from_numpy(resize_faces(faces)).permute(0, 3, 1, 2))


@contextmanager
def cv2_errors(prototxt: Path, caffemodel: Path) -> Iterator[None]:
    """cv2.error as a one-line AgeGenderError naming the files (cv2 finds misfit weights only on use).

    What OpenCV and libprotobuf print on the way is held back: shown if all goes well, dropped for the error line.
    """
    noise: list[str] = []
    try:
        with _native_stderr(noise):
            yield
    except cv2.error as exc:
        raise _cv2_failure(prototxt, caffemodel, exc, noise) from exc
    if noise:
        print("\n".join(noise), file=sys.stderr)


def _cv2_failure(prototxt: Path, caffemodel: Path, exc: cv2.error, noise: list[str]) -> AgeGenderError:
    syntax = [line.rpartition("NetParameter: ")[2] for line in noise if "Error parsing text-format" in line]
    if syntax:
        return AgeGenderError(f"{prototxt}: not a Caffe prototxt (line:column {syntax[0]})")
    reason = (str(exc).strip().splitlines() or ["unknown error"])[-1].rpartition("error: ")[2]
    return AgeGenderError(f"cv2.dnn cannot use {caffemodel} with {prototxt}: {reason}")


@contextmanager
def _native_stderr(lines: list[str]) -> Iterator[None]:
    """Hold back what C++ code writes to fd 2 and append it to `lines`."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to hold back
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += sink.read(1 << 16).decode("utf-8", "replace").splitlines()
