"""Caffe .caffemodel files written by hand in the protobuf wire format, and read back through cv2.dnn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import nn

from agegender_cli.archs.caffenet.net import PARAM_LAYERS, LeviHassnerNet, cv2_errors, read_cv2_net
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_write

# Field numbers of OpenCV's caffe.proto (opencv-caffe.proto, a superset of BVLC's).
_NET_NAME, _NET_LAYER = 1, 100
_LAYER_NAME, _LAYER_TYPE, _LAYER_BLOBS = 1, 2, 7
_BLOB_DATA, _BLOB_SHAPE, _BLOB_RAW_TYPE, _BLOB_RAW_DATA = 5, 7, 10, 12
_SHAPE_DIM = 1
_TYPE_FLOAT16 = 2  # opencv_caffe.Type, from NVIDIA's Caffe
_VARINT, _LEN = 0, 2
_LAYER_TYPES = {nn.Conv2d: "Convolution", nn.Linear: "InnerProduct"}


def export_caffemodel(model: nn.Module, path: Path, fp16: bool, name: str = "CaffeNet") -> Path:
    """Write the weights of `model`'s conv/linear children as a NetParameter, fp16 or fp32 blobs."""

    def write(handle: BinaryIO) -> None:
        handle.write(_field(_NET_NAME, name.encode()))
        for chunk in _layer_messages(model, fp16):
            handle.write(chunk)

    return atomic_write(Path(path), write)


def _layer_messages(model: nn.Module, fp16: bool) -> Iterator[bytes]:
    for layer_name, module in model.named_children():
        kind = _LAYER_TYPES.get(type(module))
        if kind is None:
            continue
        blobs = [module.weight] + ([module.bias] if module.bias is not None else [])
        body = _field(_LAYER_NAME, layer_name.encode()) + _field(_LAYER_TYPE, kind.encode())
        body += b"".join(_field(_LAYER_BLOBS, _blob(_numpy(p), fp16, layer_name)) for p in blobs)
        yield _field(_NET_LAYER, body)


def _numpy(param: torch.Tensor) -> np.ndarray:
    return param.detach().to("cpu", torch.float32).contiguous().numpy()


def _blob(array: np.ndarray, fp16: bool, layer_name: str) -> bytes:
    shape = b"".join(_varint(d) for d in array.shape)
    message = _field(_BLOB_SHAPE, _field(_SHAPE_DIM, shape))
    if not fp16:
        return message + _field(_BLOB_DATA, array.astype("<f4").tobytes())
    if np.abs(array).max(initial=0.0) > np.finfo(np.float16).max:
        raise AgeGenderError(f"layer {layer_name} has weights beyond the fp16 range: export it as fp32")
    raw = array.astype("<f2").tobytes()
    return message + _key(_BLOB_RAW_TYPE, _VARINT) + _varint(_TYPE_FLOAT16) + _field(_BLOB_RAW_DATA, raw)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes, a packed array or an embedded message."""
    return _key(number, _LEN) + _varint(len(payload)) + payload


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_params(prototxt: Path, caffemodel: Path) -> dict[str, list[np.ndarray]]:
    """The parameter blobs of PARAM_LAYERS as cv2.dnn loads them (fp16 blobs come back as float32)."""
    net = read_cv2_net(prototxt, caffemodel)
    with cv2_errors(prototxt, caffemodel):
        return {name: [net.getParam(name, i) for i in range(2)] for name in PARAM_LAYERS}


def twin_from_caffemodel(prototxt: Path, caffemodel: Path) -> LeviHassnerNet:
    """A LeviHassnerNet holding the weights of a Caffe model (ours or the original Levi-Hassner files)."""
    params = read_params(prototxt, caffemodel)
    twin = LeviHassnerNet(num_classes=params["fc8"][1].size)
    with torch.no_grad():
        for name, (weight, bias) in params.items():
            layer = getattr(twin, name)
            if weight.size != layer.weight.numel() or bias.size != layer.bias.numel():
                raise AgeGenderError(f"{caffemodel}: layer {name} does not fit the Levi-Hassner architecture")
            layer.weight.copy_(torch.from_numpy(weight.reshape(layer.weight.shape)))
            layer.bias.copy_(torch.from_numpy(bias.reshape(-1)))
    return twin.eval()
