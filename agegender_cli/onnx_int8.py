"""Static int8 quantisation of an ONNX model from stored activation ranges: calibrated once by the maintainer,
applied on a user's machine without any calibration data."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agegender_cli.errors import AgeGenderError

# Convolutions are where the time goes (83-98% of it in ONNX Runtime's profile); ReLU and max-pooling join them, so
# that a convolution's output is quantised over its ReLU's range (caffenet's age class then matched fp32 on 99.4% of
# the val faces, against 97.8% with convolutions alone). LRN, the fully connected layers and the heads stay fp32.
# Weights per output channel on 7 bits (reduce_range): on CPUs without VNNI, u8 x s8 products saturate int16 sums
# at 8 bits, which moved age_net's class on 7% of the faces.
OP_TYPES = ("Conv", "Relu", "MaxPool")
SETTINGS = {"method": "minmax", "op_types": list(OP_TYPES), "input_convolutions": "fp32", "per_channel": True,
            "reduce_range": True, "activations": "uint8", "weights": "int8"}


MAX_RANGES_BYTES = 1 << 20  # a few kB per net; anything larger is not ours
# --precision auto takes int8 only where it gave fp32's class for this share of the val faces in each task: on
# facenet, whose age class moved on 2% of the val faces, val said -0.07 points and test -0.39.
AUTO_SAME_CLASS = 0.99


class Int8Unavailable(AgeGenderError):
    """The stored ranges do not fit this model (or this onnxruntime cannot quantise it): run it in fp32."""


def quantized_nodes(model, fp32_scopes: Sequence[str] = ()) -> list:
    """The nodes run in int8: the quantised op types, except those reading the model's input, which stay fp32
    (caffenet's first convolution is 6% of its work, and 8 bits over the input's range would round the pixels),
    and those named under one of `fp32_scopes` (the exporter names a node after its module: '/trunk/frozen/...')."""
    inputs = {i.name for i in model.graph.input}
    return [n for n in model.graph.node if n.op_type in OP_TYPES and not inputs & set(n.input)
            and not any(n.name.startswith(scope) for scope in fp32_scopes)]


def calibrated_tensors(model, fp32_scopes: Sequence[str] = ()) -> list[str]:
    """The activations int8 needs a range for: every non-constant input and output of the quantised nodes."""
    constants = {t.name for t in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    names: list[str] = []
    for node in quantized_nodes(model, fp32_scopes):
        names += [t for t in (*node.input, *node.output) if t and t not in constants and t not in names]
    return names


def activation_ranges(onnx_path: Path, batches: Iterable[dict[str, np.ndarray]], fp32_scopes: Sequence[str] = ()
                      ) -> dict[str, list[float]]:
    """[min, max] of every tensor of `calibrated_tensors` over the batches (the model's float32 inputs by name)."""
    import onnx
    import onnxruntime

    model = onnx.load(str(onnx_path))
    names = calibrated_tensors(model, fp32_scopes)
    outputs = {o.name for o in model.graph.output}
    inputs = {i.name for i in model.graph.input}
    for name in names:
        if name not in outputs and name not in inputs:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # every intermediate must exist as computed, not fused away
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    fetch = [n for n in names if n not in inputs]
    lowest = {n: np.inf for n in names}
    highest = {n: -np.inf for n in names}
    seen = 0
    for feed in batches:
        seen += 1
        values = dict(zip(fetch, session.run(fetch, feed), strict=True))
        values.update({n: feed[n] for n in names if n in inputs})
        for name, value in values.items():
            lowest[name] = min(lowest[name], float(np.min(value)))
            highest[name] = max(highest[name], float(np.max(value)))
    if not seen:
        raise AgeGenderError("int8 calibration needs at least one batch of faces")
    return {n: [lowest[n], highest[n]] for n in names}


def quantize(onnx_path: Path, ranges: dict[str, list[float]], out: Path, fp32_scopes: Sequence[str] = ()) -> None:
    """Write the int8 (QDQ) model of `onnx_path` to `out`, its activations quantised over `ranges`.
    Raises Int8Unavailable when a needed range is missing (the ranges were made for another graph)."""
    import onnx

    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path))
    needed = calibrated_tensors(model, fp32_scopes)
    missing = [name for name in needed if name not in ranges]
    if missing:
        raise Int8Unavailable(f"{len(missing)} of the {len(needed)} calibrated activations have no stored range "
                              f"(first: {missing[0]}): the ranges were made for another export")
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError as exc:
        raise Int8Unavailable(f"this onnxruntime has no quantisation tools ({exc})") from exc

    nodes = [node.name for node in quantized_nodes(model, fp32_scopes)]
    if not nodes or not all(nodes):
        raise Int8Unavailable(f"{onnx_path.name} has no named convolution to quantise")
    first = model.graph.input[0]
    shape = [d.dim_value or 1 for d in first.type.tensor_type.shape.dim]

    class OneBlankBatch(CalibrationDataReader):
        """quantize_static wants a reader; every range it would measure is overridden by the stored one."""

        def __init__(self) -> None:
            self.batches = iter([{first.name: np.zeros(shape, np.float32)}])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    overrides = {name: [{"rmin": np.float32(ranges[name][0]), "rmax": np.float32(ranges[name][1])}] for name in needed}
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process the model is not the user's business
    try:
        quantize_static(model, str(out), OneBlankBatch(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(OP_TYPES), nodes_to_quantize=nodes,
                        per_channel=SETTINGS["per_channel"], reduce_range=SETTINGS["reduce_range"],
                        activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, extra_options={"TensorQuantOverrides": overrides})
    except Exception as exc:  # onnxruntime's quantiser raises many types; fp32 is always there to fall back to
        raise Int8Unavailable(f"onnxruntime could not quantise {onnx_path.name} ({type(exc).__name__}: {exc})") from exc
    finally:
        logging.getLogger().setLevel(quiet)


def int8_model(kind: str, fp32_path: Path, ranges: dict[str, list[float]], log: Callable[[str], None],
               fp32_scopes: Sequence[str] = ()) -> Path:
    """The int8 model quantised from the fp32 export at `fp32_path` over `ranges`, cached under `kind` (made once);
    Int8Unavailable where the ranges do not fit it."""
    from agegender_cli.onnx_models import cached_export

    made_from = [fp32_path.name, ranges, SETTINGS] + ([list(fp32_scopes)] if fp32_scopes else [])
    key = hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()[:32]

    def make(out: Path) -> dict:
        quantize(fp32_path, ranges, out, fp32_scopes)
        return {"from": fp32_path.name, "int8": SETTINGS, "fp32_scopes": list(fp32_scopes)}

    return cached_export(kind, key, make, log)[0]


def read_ranges_file(path: Path, fmt: int, beside: str, auto: bool, fit: Callable[[dict], tuple[Any, str | None]]
                     ) -> tuple[Any, str]:
    """(what `fit` takes from the ranges file at `path`, why int8), or (None, why not): no such file, not one of ours
    (size, format, settings, malformed: `fit` may raise ValueError, KeyError or TypeError), made for another model
    (`fit` returns (None, why)), or for --precision auto, a val check short of auto's bar."""
    if not path.is_file():
        return None, f"no {path.name} beside {beside}"
    try:
        if path.stat().st_size > MAX_RANGES_BYTES:
            raise ValueError("too large")
        doc = json.loads(path.read_text())
        if doc.get("format") != fmt or doc.get("settings") != SETTINGS:
            raise ValueError(f"made for another quantisation (format {doc.get('format')})")
        found, misfit = fit(doc)
        refusal = misfit or (auto_refusal(doc, path.name) if auto else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__}: {exc}); delete it or calibrate again"
    if refusal:
        return None, refusal
    return found, f"ranges calibrated on {doc.get('faces', '?')} train faces in {path.name}"


def checked_ranges(entries: dict) -> dict[str, list[float]]:
    """{tensor: [min, max]} with every range finite and ordered; ValueError otherwise."""
    found = {}
    for name, value in entries.items():
        low, high = (float(v) for v in value)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"bad range {value!r} for {name}")
        found[str(name)] = [low, high]
    return found


def auto_refusal(doc: dict, file_name: str) -> str | None:
    """Why --precision auto keeps fp32 although the ranges fit (None: it takes int8): the val check stored with
    the ranges must show fp32's class for AUTO_SAME_CLASS of the faces in every task."""
    same = (doc.get("val_check") or {}).get("same_class") or {}
    if not same:
        return f"{file_name} holds no val check; --precision int8 runs it unchecked"
    task = min(same, key=lambda name: float(same[name]))
    if float(same[task]) < AUTO_SAME_CLASS:
        return (f"int8 gave fp32's {task} class for {100 * float(same[task]):.2f}% of the val faces (auto wants "
                f"{100 * AUTO_SAME_CLASS:.0f}%); --precision int8 runs it")
    return None


def settle(precision: str, found, reason: str):
    """(ranges or None, 'int8 (why)' or 'fp32 (auto: why not)') for --precision auto or int8; int8 asked for and
    not available is an error naming why."""
    if found is None and precision == "int8":
        raise AgeGenderError(f"--precision int8: {reason}; calibrate the model with scripts/int8_calibrate.py, or "
                             "use --precision auto or fp32")
    return found, f"{'int8' if found is not None else 'fp32'} ({'auto: ' if precision == 'auto' else ''}{reason})"


def fp32_instead(precision: str, error: Int8Unavailable, log: Callable[[str], None], model: str) -> str:
    """What a model says when its int8 cannot be made (this onnxruntime, an export the ranges do not fit): fp32
    under auto, logged; an error where --precision int8 asked for it."""
    if precision == "int8":
        raise error
    log(f"{model}: int8 unavailable, running in fp32: {error}")
    return f"fp32 (auto: {error})"
