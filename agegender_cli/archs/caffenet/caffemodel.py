"""Caffe .caffemodel files written by hand in the protobuf wire format, checked, and read back through cv2.dnn."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import torch
from torch import nn

from agegender_cli.archs.caffenet.deploy import INPUT_SIZE, MAX_CAFFEMODEL_BYTES, MAX_PROTOTXT_BYTES, check_file_size
from agegender_cli.archs.caffenet.net import (
    MAX_ACTIVATION_BYTES,
    PARAM_LAYERS,
    YEARS_LAYERS,
    LeviHassnerNet,
    cv2_errors,
)
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_write
from agegender_cli.protowire import WireFormatError, iter_fields, iter_varints

# Field numbers of OpenCV's caffe.proto (opencv-caffe.proto, a superset of BVLC's).
_NET_NAME, _NET_LAYER = 1, 100
_LAYER_NAME, _LAYER_TYPE, _LAYER_BLOBS = 1, 2, 7
_BLOB_DATA, _BLOB_SHAPE, _BLOB_RAW_TYPE, _BLOB_RAW_DATA = 5, 7, 10, 12
_SHAPE_DIM = 1
_TYPE_FLOAT, _TYPE_FLOAT16 = 1, 2  # opencv_caffe.Type, from NVIDIA's Caffe
_VARINT, _LEN, _FIXED32 = 0, 2, 5
# Read back also: the V1 `layers` = 2 (name = 4, blobs = 6), the V0 `layer` = 1 inside them (name = 1,
# blobs = 50), and BlobProto's deprecated num, channels, height, width = 1..4.
_NET_LAYERS_V1, _V1_NAME, _V1_BLOBS, _V1_V0_LAYER, _V0_NAME, _V0_BLOBS = 2, 4, 6, 1, 1, 50
_BLOB_LEGACY_DIMS = (1, 2, 3, 4)
# cv2.dnn allocates each blob at its declared shape before it counts the values, so a few bytes could ask for
# terabytes. fc6 (512 x 18,816 = 9.6 M values) is the largest blob of the original nets and of ours, whose
# files are 23 MB (fp16) and 44 MB (fp32).
MAX_BLOB_ELEMENTS = 1 << 24
MAX_BLOB_RANK = 4
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


def check_caffemodel(path: Path) -> None:
    """A one-line error unless every blob of the .caffemodel at `path` is one cv2.dnn can read within the caps."""
    path = Path(os.path.realpath(path)) if path.is_symlink() else path  # name the user's file, not a link
    check_file_size(path, MAX_CAFFEMODEL_BYTES)
    try:
        named = _weighted_layers(memoryview(path.read_bytes()))
    except OSError as exc:
        raise AgeGenderError(f"cannot read {path} ({exc.strerror or exc})") from exc
    except WireFormatError as exc:
        raise AgeGenderError(f"{path}: not a readable Caffe model ({exc})") from exc
    missing = [name for name in PARAM_LAYERS if name not in named]
    if missing:
        raise AgeGenderError(f"{path}: no weights for layer {', '.join(missing)}; is it a Levi-Hassner net?")


def _weighted_layers(net: memoryview) -> set[str]:
    """The names of the layers that carry blobs, every blob checked on the way."""
    named = set()
    for name, blobs in _layers(net):
        for blob in blobs:
            _check_blob(blob)
        if blobs:
            named.add(name)
    return named


def _sub(wire: int, value: int | memoryview, what: str) -> memoryview:
    if wire != _LEN:
        raise WireFormatError(f"{what} has wire type {wire}")
    return value


def _layers(net: memoryview) -> Iterator[tuple[str, list[memoryview]]]:
    """(name, blob messages) of every layer of a NetParameter: V2 `layer`, V1 `layers` and V0 inside those."""
    for number, wire, value in iter_fields(net):
        if number == _NET_LAYER:
            yield _layer(_sub(wire, value, "a layer"), _LAYER_NAME, _LAYER_BLOBS)
        elif number == _NET_LAYERS_V1:
            v1 = _sub(wire, value, "a V1 layer")
            yield _layer(v1, _V1_NAME, _V1_BLOBS)
            for inner, inner_wire, v0 in iter_fields(v1):
                if inner == _V1_V0_LAYER:
                    yield _layer(_sub(inner_wire, v0, "a V0 layer"), _V0_NAME, _V0_BLOBS)


def _layer(message: memoryview, name_field: int, blobs_field: int) -> tuple[str, list[memoryview]]:
    name, blobs = "", []
    for number, wire, value in iter_fields(message):
        if number == name_field:
            name = bytes(_sub(wire, value, "a layer name")).decode("utf-8", "replace")
        elif number == blobs_field:
            blobs.append(_sub(wire, value, "a blob"))
    return name, blobs


def _as_int(value: int) -> int:
    """A protobuf int as cv2.dnn ends up holding it: cut to 32 bits, signed."""
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def _blob_shape(legacy: dict[int, int], shape: list[int] | None) -> tuple[int, ...]:
    """num/channels/height/width when any is set, else BlobShape, else a scalar (blobShapeFromProto's rule)."""
    if legacy:
        shape = [legacy.get(number, 0) for number in _BLOB_LEGACY_DIMS]
    dims = tuple(_as_int(d) for d in (shape if shape is not None else [1]))
    if len(dims) > MAX_BLOB_RANK or any(d < 0 for d in dims):
        raise WireFormatError(f"blob shape {dims} is not a shape of at most {MAX_BLOB_RANK} sizes >= 0")
    if math.prod(dims) > MAX_BLOB_ELEMENTS:
        raise WireFormatError(f"blob shape {dims} holds {math.prod(dims):,} values, above the cap of "
                              f"{MAX_BLOB_ELEMENTS:,}")
    return dims


def _shape_dims(message: memoryview) -> list[int]:
    """BlobShape.dim, packed or not, refused past MAX_BLOB_RANK dims before decoding more."""
    dims: list[int] = []
    for number, wire, value in iter_fields(message):
        if number == _SHAPE_DIM and wire == _VARINT:
            dims.append(value)
        elif number == _SHAPE_DIM:
            dims += itertools.islice(iter_varints(_sub(wire, value, "a blob shape")), MAX_BLOB_RANK + 1)
        if len(dims) > MAX_BLOB_RANK:
            raise WireFormatError(f"blob shape has more than {MAX_BLOB_RANK} dims")
    return dims


def _check_blob(blob: memoryview) -> None:
    """A BlobProto as cv2.dnn's blobFromProto reads it: a capped shape, and as many float or fp16/fp32 raw values."""
    legacy: dict[int, int] = {}
    shape, raw, raw_type, floats = None, None, 0, 0
    for number, wire, value in iter_fields(blob):
        if number in _BLOB_LEGACY_DIMS and wire == _VARINT:
            legacy[number] = value
        elif number == _BLOB_SHAPE:
            shape = _shape_dims(_sub(wire, value, "a blob shape"))
        elif number == _BLOB_DATA:
            floats += 1 if wire == _FIXED32 else len(_sub(wire, value, "blob data")) // 4
        elif number == _BLOB_RAW_TYPE and wire == _VARINT:
            raw_type = value
        elif number == _BLOB_RAW_DATA:
            raw = _sub(wire, value, "blob raw data")
    dims = _blob_shape(legacy, shape)
    count = math.prod(dims)
    if floats:
        found = floats
    elif raw is not None and raw_type in (_TYPE_FLOAT, _TYPE_FLOAT16):
        found = len(raw) // (4 if raw_type == _TYPE_FLOAT else 2)
    else:
        raise WireFormatError("a blob holds neither float data nor fp16/fp32 raw data")
    if found != count:
        raise WireFormatError(f"a blob of shape {dims} holds {found:,} values, not {count:,}")


def read_cv2_net(prototxt: Path, caffemodel: Path) -> cv2.dnn.Net:
    """cv2.dnn's net, its files checked first: cv2.dnn allocates what they declare before it checks anything."""
    check_file_size(prototxt, MAX_PROTOTXT_BYTES)
    check_caffemodel(caffemodel)
    with cv2_errors(prototxt, caffemodel):
        net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        _, activations = net.getMemoryConsumption((1, 3, INPUT_SIZE, INPUT_SIZE))
    if activations > MAX_ACTIVATION_BYTES:
        raise AgeGenderError(f"{prototxt}: the net needs {activations >> 20} MiB per face, above the cap of "
                             f"{MAX_ACTIVATION_BYTES >> 20} MiB (the Levi-Hassner nets need 6)")
    with cv2_errors(prototxt, caffemodel):
        broken = [name for name in net.getLayerNames()
                  if any(not np.isfinite(blob).all() for blob in net.getLayer(net.getLayerId(name)).blobs)]
    if broken:
        raise AgeGenderError(f"{caffemodel}: layer {broken[0]} holds weights that are not finite numbers (NaN or "
                             "infinite); retrain the model or restore the file")
    return net


def read_params(prototxt: Path, caffemodel: Path) -> dict[str, list[np.ndarray]]:
    """The parameter blobs of PARAM_LAYERS (and of the years layers, where the net has them) as cv2.dnn loads
    them (fp16 blobs come back as float32)."""
    net = read_cv2_net(prototxt, caffemodel)
    with cv2_errors(prototxt, caffemodel):
        present = set(net.getLayerNames())
        names = PARAM_LAYERS + tuple(name for name in YEARS_LAYERS if name in present)
        return {name: [net.getParam(name, i) for i in range(2)] for name in names}


def twin_from_caffemodel(prototxt: Path, caffemodel: Path) -> LeviHassnerNet:
    """A LeviHassnerNet holding the weights of a Caffe model (ours or the original Levi-Hassner files)."""
    from agegender_cli.archs.years_head import N_BINS

    params = read_params(prototxt, caffemodel)
    fc8_weight, fc8_bias = params["fc8"]
    if fc8_weight.size != fc8_bias.size * 512:  # checked before the size of fc8 is trusted to build it
        raise AgeGenderError(f"{caffemodel}: layer fc8 does not fit the Levi-Hassner architecture")
    hidden = params["fc_years_hidden"][1].size if "fc_years_hidden" in params else None
    if "fc_years" in params and params["fc_years"][1].size != N_BINS:
        raise AgeGenderError(f"{caffemodel}: layer fc_years must give {N_BINS} outputs (0..100 years)")
    twin = LeviHassnerNet(num_classes=fc8_bias.size, years_hidden=hidden, years="fc_years" in params)
    with torch.no_grad():
        for name, (weight, bias) in params.items():
            layer = getattr(twin, name)
            if weight.size != layer.weight.numel() or bias.size != layer.bias.numel():
                raise AgeGenderError(f"{caffemodel}: layer {name} does not fit the Levi-Hassner architecture")
            layer.weight.copy_(torch.from_numpy(weight.reshape(layer.weight.shape)))
            layer.bias.copy_(torch.from_numpy(bias.reshape(-1)))
    return twin.eval()
