"""Read a frozen TensorFlow GraphDef (.pb) without TensorFlow, and map its FaceNet scopes onto torch names."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agegender_cli.cache import RouteFailed
from agegender_cli.protowire import WireFormatError, iter_fields, iter_varints, signed

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
# The one value field TensorFlow reads for each dtype; the others are ignored, as TF does.
_DTYPE_FIELD = {1: 5, 2: 6, 3: 7, 4: 7, 5: 7, 6: 7, 9: 10, 10: 11, 19: 13}
_WIRES = {"f": (5, 2), "d": (1, 2), "v": (0, 2)}  # one value at a time, or a packed run

# Caps that keep a hostile file from asking for more memory than the real graph needs. The VGGFace2
# graph_final.pb (94 MB) holds 318 constants, 23.5 M values in all, none above 4-D; the largest is
# Bottleneck/weights, 1792 x 512 = 917,504 values.
MAX_TENSOR_RANK = 4
MAX_TENSOR_ELEMENTS = 1 << 23  # 9x the largest, so that a 512 x 10,575 CASIA-WebFace Logits layer fits too
MAX_GRAPH_BYTES = 256 << 20  # the file, and again all that is decoded from it: 2.7x the real graph
_OBJECT_COST = 64  # bytes charged for each small Python object decoded (a node, a name, a list item, a dim)


GraphParseError = WireFormatError  # the bytes are not a GraphDef this parser understands


class _Budget:
    """The bytes one graph may still decode into, so that a tiny file cannot expand into gigabytes."""

    def __init__(self) -> None:
        self.left = MAX_GRAPH_BYTES

    def take(self, cost: int) -> None:
        if cost > self.left:
            raise GraphParseError(f"it decodes into more than {MAX_GRAPH_BYTES >> 20} MiB")
        self.left -= cost


@dataclass(frozen=True)
class Node:
    """One NodeDef: name, op type, inputs and decoded attributes."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


def _expect(wire: int, wires: tuple[int, ...], what: str) -> None:
    if wire not in wires:
        raise GraphParseError(f"{what} has wire type {wire}")


def _message(wire: int, value: int | memoryview, what: str) -> memoryview:
    """A length-delimited field: an embedded message, bytes or a packed run."""
    _expect(wire, (2,), what)
    return value


def _number(wire: int, value: int | memoryview, what: str) -> int:
    _expect(wire, (0,), what)
    return value


def _text(wire: int, value: int | memoryview, what: str, budget: _Budget, errors: str = "strict") -> str:
    raw = bytes(_message(wire, value, what))
    budget.take(_OBJECT_COST + len(raw))
    try:
        return raw.decode("utf-8", errors)
    except UnicodeDecodeError:
        raise GraphParseError(f"{what} is not UTF-8") from None


def _repeated(wire: int, value: int | memoryview, kind: str, limit: int) -> np.ndarray:
    """Values of one repeated numeric field, packed (wire 2) or one at a time; refused beyond `limit`."""
    _expect(wire, _WIRES[kind], "a repeated number")
    if wire == 0:
        return np.array([signed(value)], np.int64)
    if kind == "v":
        if len(value) and value[-1] >= 0x80:
            raise GraphParseError("truncated varint")
        count = int(np.count_nonzero(np.frombuffer(value, np.uint8) < 0x80))
    else:
        itemsize = 4 if kind == "f" else 8
        if len(value) % itemsize:
            raise GraphParseError("packed numbers end mid-value")
        count = len(value) // itemsize
    if count > limit:
        raise GraphParseError(f"a run of {count:,} numbers is more than the {limit:,} allowed")
    if kind == "v":
        return np.fromiter(iter_varints(value), np.int64, count=count)
    return np.frombuffer(value, "<f4" if kind == "f" else "<f8")


def parse_shape(buf: memoryview, budget: _Budget | None = None) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2, Dim.size = 1 (-1 for unknown)."""
    budget = budget or _Budget()
    dims = []
    for number, wire, value in iter_fields(buf):
        if number == 2:
            budget.take(_OBJECT_COST)
            dim = _message(wire, value, "a shape dim")
            size = next((_number(w, v, "a dim size") for n, w, v in iter_fields(dim) if n == 1), 0)
            dims.append(signed(size))
    return tuple(dims)


def _element_count(shape: tuple[int, ...]) -> int:
    """How many values a tensor of `shape` holds; an impossible or oversized shape is refused here, unallocated."""
    if len(shape) > MAX_TENSOR_RANK:
        raise GraphParseError(f"tensor shape {shape} has more than {MAX_TENSOR_RANK} dimensions")
    if any(d < 0 for d in shape):
        raise GraphParseError(f"tensor shape {shape} has a negative dimension")
    count = math.prod(shape)
    if count > MAX_TENSOR_ELEMENTS:
        raise GraphParseError(f"tensor shape {shape} holds {count:,} values, above the cap of {MAX_TENSOR_ELEMENTS:,}")
    return count


def _typed(runs: list[np.ndarray], dtype_id: int) -> np.ndarray:
    """The value runs of a tensor as one array (DT_HALF's half_val holds raw 16-bit patterns)."""
    values = np.concatenate(runs) if runs else np.zeros(0, np.int64)
    return values.astype(np.uint16).view(np.float16) if dtype_id == 19 else values


def _fill(values: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Build a tensor from *_val fields; TF repeats the last value to fill the shape (zeros when none)."""
    count = math.prod(shape)
    if values.size > count:
        raise GraphParseError(f"tensor has {values.size} values for shape {shape}")
    out = np.zeros(count, dtype)
    if values.size:
        out[: values.size] = values
        out[values.size :] = values[-1]
    return out.reshape(shape)


def parse_tensor(buf: memoryview, budget: _Budget | None = None) -> np.ndarray:
    """Decode a TensorProto (dtype=1, tensor_shape=2, tensor_content=4, *_val) into numpy."""
    budget = budget or _Budget()
    dtype_id, shape, content, seen = 0, (), None, 0
    runs: dict[int, list[np.ndarray]] = {}
    for number, wire, value in iter_fields(buf):
        if number == 1:
            dtype_id = _number(wire, value, "tensor dtype")
        elif number == 2:
            shape = parse_shape(_message(wire, value, "tensor shape"), budget)
        elif number == 4:
            content = _message(wire, value, "tensor content")
        elif number in _VALUE_FIELDS:
            run = _repeated(wire, value, _VALUE_FIELDS[number], MAX_TENSOR_ELEMENTS - seen)
            seen += run.size
            runs.setdefault(number, []).append(run)
    if dtype_id not in _DTYPES:
        raise GraphParseError(f"unsupported tensor dtype {dtype_id}")
    dtype = _DTYPES[dtype_id]
    count = _element_count(shape)
    budget.take(count * dtype.itemsize)
    if content is None:
        return _fill(_typed(runs.get(_DTYPE_FIELD[dtype_id], []), dtype_id), shape, dtype)
    if len(content) != count * dtype.itemsize:
        raise GraphParseError(f"tensor content has {len(content):,} bytes, shape {shape} of {dtype} needs "
                              f"{count * dtype.itemsize:,}")
    return np.frombuffer(content, dtype=dtype).reshape(shape).copy()


def _parse_list(buf: memoryview, budget: _Budget) -> list:
    """AttrValue.ListValue: s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8."""
    out: list = []
    for number, wire, value in iter_fields(buf):
        if number == 2:
            out.append(_text(wire, value, "a list string", budget, errors="replace"))
        elif number in (3, 4, 5, 6):
            run = _repeated(wire, value, "f" if number == 4 else "v", budget.left // _OBJECT_COST)
            budget.take(run.size * _OBJECT_COST)
            out.extend(run.tolist())
        elif number == 7:
            budget.take(_OBJECT_COST)
            out.append(parse_shape(_message(wire, value, "a list shape"), budget))
        elif number == 8:
            out.append(parse_tensor(_message(wire, value, "a list tensor"), budget))
    return out


def parse_attr(buf: memoryview, budget: _Budget | None = None) -> Any:
    """AttrValue: list=1, s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8 (others: None)."""
    budget = budget or _Budget()
    for number, wire, value in iter_fields(buf):
        if number == 1:
            return _parse_list(_message(wire, value, "an attr list"), budget)
        if number == 2:
            return _text(wire, value, "an attr string", budget, errors="replace")
        if number in (3, 6):
            return signed(_number(wire, value, "an attr int"))
        if number == 4:
            _expect(wire, (5,), "an attr float")
            return float(np.frombuffer(value, dtype="<f4")[0])
        if number == 5:
            return bool(_number(wire, value, "an attr bool"))
        if number == 7:
            return parse_shape(_message(wire, value, "an attr shape"), budget)
        if number == 8:
            return parse_tensor(_message(wire, value, "an attr tensor"), budget)
    return None


def _attr_entry(buf: memoryview, budget: _Budget) -> tuple[str, Any]:
    """One map<string, AttrValue> entry: key=1, value=2."""
    key, attr = "", None
    for number, wire, value in iter_fields(buf):
        if number == 1:
            key = _text(wire, value, "an attr name", budget)
        elif number == 2:
            attr = parse_attr(_message(wire, value, "an attr value"), budget)
    return key, attr


def parse_node(buf: memoryview, budget: _Budget | None = None) -> Node:
    """NodeDef: name=1, op=2, input=3, attr=5 (map entries key=1, value=2)."""
    budget = budget or _Budget()
    budget.take(_OBJECT_COST)
    name = op = ""
    inputs: list[str] = []
    attrs: dict[str, Any] = {}
    for number, wire, value in iter_fields(buf):
        if number == 1:
            name = _text(wire, value, "a node name", budget)
        elif number == 2:
            op = _text(wire, value, "a node op", budget)
        elif number == 3:
            inputs.append(_text(wire, value, "a node input", budget))
        elif number == 5:
            key, attr = _attr_entry(_message(wire, value, "a node attr"), budget)
            attrs[key] = attr
    return Node(name, op, tuple(inputs), attrs)


def parse_graph(data: bytes) -> list[Node]:
    """Every node (GraphDef.node = 1) of a serialized GraphDef, in file order, within one memory budget."""
    budget = _Budget()
    fields = iter_fields(memoryview(data))
    return [parse_node(_message(wire, value, "a graph node"), budget) for number, wire, value in fields if number == 1]


def read_graph(path: Path | str) -> list[Node]:
    """Every node of the frozen GraphDef file at `path`; a file above MAX_GRAPH_BYTES is refused unread."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_GRAPH_BYTES + 1)
    if len(data) > MAX_GRAPH_BYTES:
        raise GraphParseError(f"the file is larger than {MAX_GRAPH_BYTES >> 20} MiB")
    return parse_graph(data)


def constants(nodes: list[Node]) -> dict[str, np.ndarray]:
    """The `value` tensor of every Const node, by node name."""
    return {n.name: n.attrs["value"] for n in nodes if n.op == "Const" and isinstance(n.attrs.get("value"), np.ndarray)}


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


def _float_array(name: str, value: np.ndarray, ndim: int) -> np.ndarray:
    """Graph constant `name` as float32, refused (RouteFailed) unless it is an `ndim`-D float tensor."""
    if value.ndim != ndim or value.dtype.kind != "f":
        raise RouteFailed(f"graph constant {name} is {value.dtype} of shape {value.shape}, not a {ndim}-D float tensor")
    return value.astype(np.float32, copy=False)


def _convert_layer(scope: str, leaf: str, value: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """One `<scope>/<leaf>` constant into its state-dict entries."""
    module = torch_module_for(scope)
    residual = module.endswith(".conv2d")
    name = f"{_ROOT}{scope}/{leaf}"
    if leaf == "weights":
        out[f"{module}.weight" if residual else f"{module}.conv.weight"] = hwio_to_oihw(_float_array(name, value, 4))
    elif leaf == "biases" and residual:
        out[f"{module}.bias"] = _float_array(name, value, 1)
    elif leaf == "Conv2D_bn_offset" and not residual:
        out.update({f"{module}.bn.{k}": v for k, v in _folded_bn(_float_array(name, value, 1)).items()})
    else:
        raise KeyError(f"{scope}/{leaf}")


def _bn_vector(consts: dict[str, np.ndarray], leaf: str, default: np.ndarray | None = None) -> np.ndarray:
    """One Bottleneck/BatchNorm vector (KeyError when it is missing and has no default)."""
    name = _ROOT + "Bottleneck/BatchNorm/" + leaf
    return _float_array(name, consts[name] if default is None else consts.get(name, default), 1)


def _convert_bottleneck(consts: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
    """Bottleneck: MatMul by weights (1792, 512), then FusedBatchNorm(scale=Const, offset=beta, eps 1e-3)."""
    weights = _float_array(_ROOT + "Bottleneck/weights", consts[_ROOT + "Bottleneck/weights"], 2)
    n = weights.shape[1]
    out["last_linear.weight"] = np.ascontiguousarray(weights.T)
    out["last_bn.weight"] = _bn_vector(consts, "Const", np.ones(n, np.float32))
    out["last_bn.bias"] = _bn_vector(consts, "beta", np.zeros(n, np.float32))
    out["last_bn.running_mean"] = _bn_vector(consts, "moving_mean")
    out["last_bn.running_var"] = _bn_vector(consts, "moving_variance")
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
