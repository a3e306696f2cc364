"""Read a frozen TensorFlow GraphDef (.pb) without TensorFlow, and map its FaceNet scopes onto torch names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agegender_cli.cache import RouteFailed

BN_EPS = 1e-3  # facenet-pytorch's BasicConv2d / last_bn eps, the value the TF graphs were trained with

# TensorFlow DataType enum -> numpy dtype (the ones frozen weights use).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    19: np.dtype("<f2"),  # DT_HALF (half_val holds the raw 16-bit patterns)
}
# TensorProto repeated value fields: float_val=5, double_val=6, int_val=7, int64_val=10,
# bool_val=11, half_val=13; the letter says how a packed run is decoded.
_VALUE_FIELDS = {5: "f", 6: "d", 7: "v", 10: "v", 11: "v", 13: "v"}


class GraphParseError(ValueError):
    """The bytes are not a GraphDef this parser understands."""


@dataclass(frozen=True)
class Node:
    """One NodeDef: name, op type, inputs and decoded attributes."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; return (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise GraphParseError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise GraphParseError("varint too long")


def _signed(value: int) -> int:
    """Reinterpret a 64-bit varint as two's complement (negative int32/int64 values)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for each field of one message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise GraphParseError(f"unsupported wire type {wire}")
        if pos > end:
            raise GraphParseError("truncated field")
        yield number, wire, value


def _packed_varints(buf: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        out.append(_signed(value))
    return out


def _repeated(wire: int, value: int | memoryview, kind: str) -> list:
    """Values of one repeated numeric field, packed (wire 2) or one at a time."""
    if wire == 0:
        return [_signed(value)]
    if wire == 5:
        return np.frombuffer(value, dtype="<f4").tolist()
    if wire == 1:
        return np.frombuffer(value, dtype="<f8").tolist()
    if kind in "fd":
        return np.frombuffer(value, dtype="<f4" if kind == "f" else "<f8").tolist()
    return _packed_varints(value)


def parse_shape(buf: memoryview) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2, Dim.size = 1 (-1 for unknown)."""
    dims = []
    for number, _, value in iter_fields(buf):
        if number == 2:
            size = next((v for n, _, v in iter_fields(value) if n == 1), 0)
            dims.append(_signed(size))
    return tuple(dims)


def _fill(values: list, shape: tuple[int, ...], dtype: np.dtype, dtype_id: int) -> np.ndarray:
    """Build a tensor from *_val fields; TF repeats the last value to fill the shape."""
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.array(values, dtype=np.uint16 if dtype_id == 19 else dtype)
    flat = flat.view(np.float16) if dtype_id == 19 else flat
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size == 0:
        return np.zeros(shape, dtype=dtype)
    if flat.size < count:
        return np.concatenate([flat, np.full(count - flat.size, flat[-1], dtype)]).reshape(shape)
    raise GraphParseError(f"tensor has {flat.size} values for shape {shape}")


def parse_tensor(buf: memoryview) -> np.ndarray:
    """Decode a TensorProto (dtype=1, tensor_shape=2, tensor_content=4, *_val) into numpy."""
    dtype_id, shape, content, values = 0, (), None, []
    for number, wire, value in iter_fields(buf):
        if number == 1:
            dtype_id = value
        elif number == 2:
            shape = parse_shape(value)
        elif number == 4:
            content = value
        elif number in _VALUE_FIELDS:
            values.extend(_repeated(wire, value, _VALUE_FIELDS[number]))
    if dtype_id not in _DTYPES:
        raise GraphParseError(f"unsupported tensor dtype {dtype_id}")
    dtype = _DTYPES[dtype_id]
    if content is not None:
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    return _fill(values, shape, dtype, dtype_id)


def _parse_list(buf: memoryview) -> list:
    """AttrValue.ListValue: s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8."""
    out: list = []
    for number, wire, value in iter_fields(buf):
        if number == 2:
            out.append(bytes(value).decode("utf-8", "replace"))
        elif number in (3, 5, 6):
            out.extend(_repeated(wire, value, "v"))
        elif number == 4:
            out.extend(_repeated(wire, value, "f"))
        elif number == 7:
            out.append(parse_shape(value))
        elif number == 8:
            out.append(parse_tensor(value))
    return out


def parse_attr(buf: memoryview) -> Any:
    """AttrValue: list=1, s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8 (others: None)."""
    for number, wire, value in iter_fields(buf):
        if number == 1:
            return _parse_list(value)
        if number == 2:
            return bytes(value).decode("utf-8", "replace")
        if number in (3, 6):
            return _signed(value)
        if number == 4:
            return float(np.frombuffer(value, dtype="<f4")[0]) if wire == 5 else None
        if number == 5:
            return bool(value)
        if number == 7:
            return parse_shape(value)
        if number == 8:
            return parse_tensor(value)
    return None


def parse_node(buf: memoryview) -> Node:
    """NodeDef: name=1, op=2, input=3, attr=5 (map entries key=1, value=2)."""
    name = op = ""
    inputs: list[str] = []
    attrs: dict[str, Any] = {}
    for number, _, value in iter_fields(buf):
        if number == 1:
            name = bytes(value).decode()
        elif number == 2:
            op = bytes(value).decode()
        elif number == 3:
            inputs.append(bytes(value).decode())
        elif number == 5:
            entry = {n: v for n, _, v in iter_fields(value)}
            attrs[bytes(entry.get(1, b"")).decode()] = parse_attr(entry[2]) if 2 in entry else None
    return Node(name, op, tuple(inputs), attrs)


def parse_graph(data: bytes) -> list[Node]:
    """Every node (GraphDef.node = 1) of a serialized GraphDef, in file order."""
    return [parse_node(value) for number, wire, value in iter_fields(memoryview(data)) if number == 1 and wire == 2]


def read_graph(path: Path | str) -> list[Node]:
    """Every node of the frozen GraphDef file at `path`."""
    return parse_graph(Path(path).read_bytes())


def constants(nodes: list[Node]) -> dict[str, np.ndarray]:
    """The `value` tensor of every Const node, by node name."""
    return {n.name: n.attrs["value"] for n in nodes if n.op == "Const" and "value" in n.attrs}


def read_constants(path: Path | str) -> dict[str, np.ndarray]:
    """Every Const tensor of the frozen GraphDef file at `path`, by node name."""
    return constants(read_graph(path))


# --------------------------------------------------------------------------- TF scopes -> torch names

_STEM = {
    "Conv2d_1a_3x3": "conv2d_1a",
    "Conv2d_2a_3x3": "conv2d_2a",
    "Conv2d_2b_3x3": "conv2d_2b",
    "Conv2d_3b_1x1": "conv2d_3b",
    "Conv2d_4a_3x3": "conv2d_4a",
    "Conv2d_4b_3x3": "conv2d_4b",
}
# TF repeat scope -> (torch Sequential, TF block prefix, block kind, residual scale in facenet-pytorch)
_REPEATS = {
    "Repeat": ("repeat_1", "block35_", "block35", 0.17),
    "Repeat_1": ("repeat_2", "block17_", "block17", 0.10),
    "Repeat_2": ("repeat_3", "block8_", "block8", 0.20),
}
# Block kind -> {TF "Branch_n/Conv..." -> torch submodule}
_BRANCHES = {
    "block35": {
        "Branch_0/Conv2d_1x1": "branch0",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_0b_3x3": "branch1.1",
        "Branch_2/Conv2d_0a_1x1": "branch2.0",
        "Branch_2/Conv2d_0b_3x3": "branch2.1",
        "Branch_2/Conv2d_0c_3x3": "branch2.2",
    },
    "block17": {
        "Branch_0/Conv2d_1x1": "branch0",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_0b_1x7": "branch1.1",
        "Branch_1/Conv2d_0c_7x1": "branch1.2",
    },
    "block8": {
        "Branch_0/Conv2d_1x1": "branch0",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_0b_1x3": "branch1.1",
        "Branch_1/Conv2d_0c_3x1": "branch1.2",
    },
    "mixed_6a": {
        "Branch_0/Conv2d_1a_3x3": "branch0",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_0b_3x3": "branch1.1",
        "Branch_1/Conv2d_1a_3x3": "branch1.2",
    },
    "mixed_7a": {
        "Branch_0/Conv2d_0a_1x1": "branch0.0",
        "Branch_0/Conv2d_1a_3x3": "branch0.1",
        "Branch_1/Conv2d_0a_1x1": "branch1.0",
        "Branch_1/Conv2d_1a_3x3": "branch1.1",
        "Branch_2/Conv2d_0a_1x1": "branch2.0",
        "Branch_2/Conv2d_0b_3x3": "branch2.1",
        "Branch_2/Conv2d_1a_3x3": "branch2.2",
    },
}
_BLOCK_SCALES = {"Block8": ("block8", 1.0)}
_ROOT = "InceptionResnetV1/"


def _block_prefix(scope: str) -> tuple[str, str, float | None, str]:
    """Split a TF scope into (torch block prefix, block kind, residual scale, rest of the scope)."""
    head, _, rest = scope.partition("/")
    if head in _STEM and not rest:
        return _STEM[head], "stem", None, ""
    if head in ("Mixed_6a", "Mixed_7a"):
        return head.lower(), head.lower(), None, rest
    if head in _BLOCK_SCALES:
        torch_name, scale = _BLOCK_SCALES[head]
        return torch_name, "block8", scale, rest
    if head in _REPEATS:
        seq, tf_prefix, kind, scale = _REPEATS[head]
        block, _, rest = rest.partition("/")
        match = re.fullmatch(re.escape(tf_prefix) + r"(\d+)", block)
        if match:
            return f"{seq}.{int(match.group(1)) - 1}", kind, scale, rest
    raise KeyError(scope)


def torch_module_for(scope: str) -> str:
    """The facenet-pytorch module path of a TF conv scope, e.g. "Repeat/block35_2/Branch_1/Conv2d_0a_1x1"
    -> "repeat_1.1.branch1.0"; the residual projection "…/Conv2d_1x1" -> "….conv2d"."""
    prefix, kind, _, rest = _block_prefix(scope)
    if kind == "stem":
        return prefix
    if rest == "Conv2d_1x1" and kind in ("block35", "block17", "block8"):
        return f"{prefix}.conv2d"
    return f"{prefix}.{_BRANCHES[kind][rest]}"


def hwio_to_oihw(weights: np.ndarray) -> np.ndarray:
    """TF conv kernel (height, width, in, out) -> torch (out, in, height, width)."""
    if weights.ndim != 4:
        raise ValueError(f"conv kernel must be 4-D, got shape {weights.shape}")
    return np.ascontiguousarray(weights.transpose(3, 2, 0, 1))


def _folded_bn(offset: np.ndarray) -> dict[str, np.ndarray]:
    """BatchNorm whose eval-mode output is exactly x + offset (the graph folded BN into the conv)."""
    n = offset.shape[0]
    return {
        "weight": np.ones(n, np.float32),
        "bias": offset.astype(np.float32),
        "running_mean": np.zeros(n, np.float32),
        "running_var": np.full(n, 1.0 - BN_EPS, np.float32),
        "num_batches_tracked": np.zeros((), np.int64),
    }


def _convert_layer(scope: str, leaf: str, value: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """One `<scope>/<leaf>` constant into its state-dict entries."""
    module = torch_module_for(scope)
    residual = module.endswith(".conv2d")
    if leaf == "weights":
        out[f"{module}.weight" if residual else f"{module}.conv.weight"] = hwio_to_oihw(value)
    elif leaf == "biases" and residual:
        out[f"{module}.bias"] = value.astype(np.float32)
    elif leaf == "Conv2D_bn_offset" and not residual:
        out.update({f"{module}.bn.{k}": v for k, v in _folded_bn(value).items()})
    else:
        raise KeyError(f"{scope}/{leaf}")


def _convert_bottleneck(consts: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
    """Bottleneck: MatMul by weights (1792, 512), then FusedBatchNorm(scale=Const, offset=beta, eps 1e-3)."""
    bn = _ROOT + "Bottleneck/BatchNorm/"
    weights = consts[_ROOT + "Bottleneck/weights"]
    n = weights.shape[1]
    out["last_linear.weight"] = np.ascontiguousarray(weights.T)
    out["last_bn.weight"] = consts.get(bn + "Const", np.ones(n, np.float32)).astype(np.float32)
    out["last_bn.bias"] = consts.get(bn + "beta", np.zeros(n, np.float32)).astype(np.float32)
    out["last_bn.running_mean"] = consts[bn + "moving_mean"].astype(np.float32)
    out["last_bn.running_var"] = consts[bn + "moving_variance"].astype(np.float32)
    out["last_bn.num_batches_tracked"] = np.zeros((), np.int64)


def _check_scale(name: str, value: np.ndarray) -> None:
    """A block's residual scale (`…/mul/x`) must be the one facenet-pytorch hard-codes."""
    _, _, scale, _ = _block_prefix(name[len(_ROOT) : -len("/mul/x")])
    found = value.reshape(-1)[0] if value.size == 1 else np.nan
    if scale is None or not abs(float(found) - scale) <= 1e-6:
        raise RouteFailed(f"graph residual scale {name}={value.tolist()} differs from facenet-pytorch's {scale}")


def graph_to_state_dict(consts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map a FaceNet frozen graph's Const tensors onto InceptionResnetV1 state-dict arrays."""
    out: dict[str, np.ndarray] = {}
    for name, value in consts.items():
        skip = not name.startswith(_ROOT) or "/Bottleneck/" in name or "/Logits/" in name
        if skip or name.endswith("/concat/axis"):
            continue
        scope, _, leaf = name[len(_ROOT) :].rpartition("/")
        try:
            if name.endswith("/mul/x"):
                _check_scale(name, value)
            else:
                _convert_layer(scope, leaf, value, out)
        except KeyError as exc:
            raise RouteFailed(f"graph constant {name} has no InceptionResnetV1 counterpart") from exc
    try:
        _convert_bottleneck(consts, out)
    except KeyError as exc:
        raise RouteFailed(f"graph lacks the Bottleneck constant {exc}") from exc
    return out
