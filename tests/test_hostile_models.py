"""Hostile and careless model files: one line naming the file, never a traceback, and memory bounded."""

from __future__ import annotations

import contextlib
import copy
import os
import random
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from protobuf_writer import field as _field
from protobuf_writer import varint as _varint
from typer.testing import CliRunner

from agegender_cli import torchfiles
from agegender_cli.archs.caffenet import net as caffe_net
from agegender_cli.archs.caffenet.predictor import CaffenetPredictor
from agegender_cli.archs.facenet import backbone as W
from agegender_cli.archs.facenet import tf_graph
from agegender_cli.archs.facenet.predictor import load_checkpoint
from agegender_cli.cache import RouteFailed
from agegender_cli.cli.app import app
from agegender_cli.errors import AgeGenderError

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "agegender_cli" / "assets"
runner = CliRunner()

# --------------------------------------------------------------------------- protobuf writer


def _tensor(dtype: int = 1, shape: tuple[int, ...] = (), content: bytes | None = None, vals: bytes = b"") -> bytes:
    """A TensorProto: dtype, shape, then tensor_content and/or *_val fields."""
    body = _field(1, dtype, 0) + _field(2, b"".join(_field(2, _field(1, d, 0)) for d in shape))
    return body + (b"" if content is None else _field(4, content)) + vals


def _node(name: bytes, op: bytes, *attrs: bytes) -> bytes:
    return _field(1, _field(1, name) + _field(2, op) + b"".join(attrs))


def _attr(key: bytes, value: bytes) -> bytes:
    return _field(5, _field(1, key) + _field(2, value))


def _const(name: str | bytes, tensor: bytes) -> bytes:
    name = name.encode() if isinstance(name, str) else name
    return _node(name, b"Const", _attr(b"value", _field(8, tensor)))


ONE_FLOAT = _field(5, struct.pack("<f", 1.0), wire=5)  # one float_val: TF repeats it over the whole shape


def _run_capped(setup: str, call: str) -> subprocess.CompletedProcess:
    """Run `call` in a fresh interpreter whose address space may grow only 1 GiB past what `setup` took."""
    code = textwrap.dedent(f"""
        import resource
        {setup}
        size = next(int(line.split()[1]) << 10 for line in open("/proc/self/status") if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), size + (1 << 30)))
        try:
            {call}
        except Exception as exc:
            print("refused:", type(exc).__name__, exc)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmSize from /proc")

# --------------------------------------------------------------------------- .pb graphs

GIANT_TENSORS = {
    "4 GiB from one value": _tensor(shape=(1 << 30,), vals=ONE_FLOAT),
    "4 TiB from one value": _tensor(shape=(1 << 20, 1 << 20), vals=ONE_FLOAT),
    "a product past int64": _tensor(shape=(1 << 32, 1 << 32), vals=ONE_FLOAT),
    "one value past the cap": _tensor(dtype=4, shape=(tf_graph.MAX_TENSOR_ELEMENTS + 1,), vals=_field(7, 7, 0)),
    "5-D": _tensor(shape=(1, 1, 1, 1, 1)),
    "a negative dim": _tensor(shape=(-1, 4), vals=ONE_FLOAT),
}


@pytest.mark.parametrize("tensor", GIANT_TENSORS.values(), ids=GIANT_TENSORS.keys())
def test_giant_or_impossible_shapes_are_refused_before_allocating(tensor: bytes) -> None:
    data = _const("w", tensor)
    tracemalloc.start()
    try:
        with pytest.raises(tf_graph.GraphParseError, match="shape"):
            tf_graph.parse_graph(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data) < 100 and peak < 1 << 20


@needs_proc
def test_giant_graph_constant_stays_within_a_capped_address_space(tmp_path: Path) -> None:
    pb = tmp_path / "evil.pb"
    pb.write_bytes(_const("w", GIANT_TENSORS["4 TiB from one value"]))
    done = _run_capped("from agegender_cli.archs.facenet import tf_graph",
                       f"tf_graph.read_constants({str(pb)!r})")
    assert done.stdout.startswith("refused: WireFormatError") and "above the cap" in done.stdout, done


def test_tensor_values_must_fit_the_declared_shape() -> None:
    four = np.arange(4, dtype="<f4").tobytes()
    misfits = [
        _tensor(shape=(5,), content=four),
        _tensor(shape=(3,), content=four),
        _tensor(shape=(1,), content=four[:3]),
        _tensor(shape=(2,), vals=_field(5, four)),
    ]
    for tensor in misfits:
        with pytest.raises(tf_graph.GraphParseError, match="values|bytes"):
            tf_graph.parse_graph(_const("w", tensor))
    broadcast = tf_graph.constants(tf_graph.parse_graph(_const("w", _tensor(shape=(2, 3), vals=ONE_FLOAT))))
    np.testing.assert_array_equal(broadcast["w"], np.ones((2, 3), np.float32))


MALFORMED = {
    "truncated varint": b"\x0a\xff",
    "an 11-byte varint": b"\x08" + b"\xff" * 10 + b"\x01",
    "a length past the end": b"\x0a\x10abc",
    "a group wire type": b"\x0b\x0c",
    "a node as a number": _field(1, 5, 0),
    "a node name as a huge number": _field(1, _field(1, 1 << 62, 0)),
    "a non-UTF-8 node name": _const(b"\xff\xfe", _tensor(shape=(1,), vals=ONE_FLOAT)),
    "an attr value as a number": _node(b"n", b"Const", _field(5, _field(1, b"value") + _field(2, 7, 0))),
    "a shape as a number": _const("w", _field(1, 1, 0) + _field(2, 3, 0)),
    "floats ending mid-value": _const("w", _tensor(shape=(1,), vals=_field(5, b"\x00\x00\x80"))),
    "ints as fixed32": _const("w", _tensor(dtype=3, shape=(1,), vals=_field(7, b"\x01\x00\x00\x00", wire=5))),
    "a string tensor": _const("w", _tensor(dtype=7, shape=(1,))),
    "a list of numbers as a float": _node(b"n", b"Conv2D", _attr(b"strides", _field(1, _field(3, b"\x01", 5)[:-1]))),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_graphs_are_graph_parse_errors(data: bytes) -> None:
    with pytest.raises(tf_graph.GraphParseError):
        tf_graph.parse_graph(data)


def test_deeply_nested_bytes_do_not_recurse() -> None:
    nested = b""
    for _ in range(3000):  # well past Python's recursion limit
        nested = _field(1, nested)
    graph = _field(2, nested) + _const("w", _tensor(shape=(1,), vals=ONE_FLOAT))  # GraphDef.library is skipped
    assert list(tf_graph.constants(tf_graph.parse_graph(graph))) == ["w"]
    with pytest.raises(tf_graph.GraphParseError):
        tf_graph.parse_graph(_field(1, _field(5, nested)))  # an attr entry that is nested junk


def test_many_small_tensors_and_lists_hit_the_graph_budget(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tf_graph, "MAX_GRAPH_BYTES", 8 << 20)
    node = lambda i: _const(f"w{i}", _tensor(shape=(1 << 20,), vals=ONE_FLOAT))  # noqa: E731  4 MiB each
    assert tf_graph.constants(tf_graph.parse_graph(node(0)))["w0"].nbytes == 4 << 20
    with pytest.raises(tf_graph.GraphParseError, match="more than 8 MiB"):
        tf_graph.parse_graph(b"".join(node(i) for i in range(3)))
    ints = _node(b"n", b"Conv2D", _attr(b"strides", _field(1, _field(3, b"\x01" * 200_000))))
    with pytest.raises(tf_graph.GraphParseError, match="allowed|more than"):
        tf_graph.parse_graph(ints)
    monkeypatch.setattr(tf_graph, "MAX_GRAPH_BYTES", 1 << 10)
    big = tmp_path / "big.pb"
    big.write_bytes(b"\0" * 2048)
    with pytest.raises(tf_graph.GraphParseError, match="larger than"):
        tf_graph.read_graph(big)


def _tiny_graph() -> bytes:
    """A few FaceNet-named constants, enough to reach every branch of graph_to_state_dict."""
    r = "InceptionResnetV1/"
    consts = {
        r + "Conv2d_1a_3x3/weights": np.ones((3, 3, 1, 2), "<f4"),
        r + "Conv2d_1a_3x3/Conv2D_bn_offset": np.ones(2, "<f4"),
        r + "Repeat/block35_1/Conv2d_1x1/biases": np.ones(3, "<f4"),
        r + "Bottleneck/weights": np.ones((3, 4), "<f4"),
        r + "Bottleneck/BatchNorm/moving_mean": np.zeros(4, "<f4"),
        r + "Bottleneck/BatchNorm/moving_variance": np.ones(4, "<f4"),
    }
    return b"".join(_const(k, _tensor(shape=v.shape, content=v.tobytes())) for k, v in consts.items())


def test_fuzzed_graphs_fail_only_as_parse_or_route_errors() -> None:
    base = _tiny_graph() + _node(b"c", b"Conv2D", _attr(b"strides", _field(1, _field(3, b"\x01\x02\x02\x01"))))
    rng = random.Random(0)
    for _ in range(400):
        data = bytearray(base)
        for _ in range(rng.randint(1, 5)):
            pos = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.5:
                data[pos] = rng.randrange(256)
            elif choice < 0.75:
                del data[pos : pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        with contextlib.suppress(tf_graph.GraphParseError, RouteFailed):
            tf_graph.graph_to_state_dict(tf_graph.constants(tf_graph.parse_graph(bytes(data))))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Conv2d_1a_3x3/weights", np.ones((3, 3, 2), np.float32)),
        ("Conv2d_1a_3x3/weights", np.ones((3, 3, 1, 2), np.int32)),
        ("Conv2d_1a_3x3/Conv2D_bn_offset", np.float32(1.0).reshape(())),
        ("Bottleneck/weights", np.ones(4, np.float32)),
        ("Bottleneck/BatchNorm/moving_mean", np.ones((1, 4), np.float32)),
    ],
)
def test_graph_constants_of_the_wrong_kind_are_route_failures(name: str, value: np.ndarray) -> None:
    consts = tf_graph.constants(tf_graph.parse_graph(_tiny_graph()))
    consts["InceptionResnetV1/" + name] = value
    with pytest.raises(RouteFailed, match="not a .-D float tensor"):
        tf_graph.graph_to_state_dict(consts)


# --------------------------------------------------------------------------- torch files


class _Unsafe:
    """Pickles as a call to os.system, which weights_only loading must refuse."""

    def __reduce__(self):
        return (os.system, ("true",))


def _zip_bomb(path: Path, inflated: int) -> None:
    """A torch zip whose one data record is `inflated` bytes of zeros, deflated to almost nothing."""
    torch.save({"w": torch.zeros(4)}, path)
    with zipfile.ZipFile(path) as src:
        records = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w") as out:
        for name, data in records:
            if not name.endswith("data/0"):
                out.writestr(name, data)
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with out.open(info, "w", force_zip64=True) as record:
                for _ in range(inflated >> 20):
                    record.write(bytes(1 << 20))


TORCH_FILES: dict[str, Callable[[Path], None]] = {
    "empty": lambda p: p.write_bytes(b""),
    "random bytes": lambda p: p.write_bytes(random.Random(1).randbytes(3000)),
    "truncated": lambda p: p.write_bytes((ASSETS / "facenet.pt").read_bytes()[:50_000]),
    "an unsafe global": lambda p: torch.save({"w": _Unsafe()}, p),
    "a zip bomb": lambda p: _zip_bomb(p, 4 << 20),
}


@pytest.fixture
def tiny_backbone(monkeypatch, tmp_path: Path) -> dict[str, torch.Tensor]:
    """A two-tensor stand-in for InceptionResnetV1's state dict, the cache in tmp_path, torch files capped at 1 MiB."""
    state = {"conv.weight": torch.zeros(2, 3), "bn.num_batches_tracked": torch.tensor(0)}
    monkeypatch.setattr(W, "_expected_shapes", lambda: {k: tuple(v.shape) for k, v in state.items()})
    monkeypatch.setattr(torchfiles, "MAX_TORCH_FILE_BYTES", 1 << 20)
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    return state


def _one_line_error(call: Callable[[], object], path: Path) -> str:
    with pytest.raises(AgeGenderError) as error:
        call()
    message = str(error.value)
    assert str(path) in message and "\n" not in message, message
    return message


BACKBONE_STATES: dict[str, Callable[[dict], object]] = {
    "missing keys": lambda s: {"conv.weight": s["conv.weight"]},
    "a wrong shape": lambda s: {**s, "conv.weight": torch.zeros(3, 2)},
    "a complex dtype": lambda s: {**s, "conv.weight": torch.zeros(2, 3, dtype=torch.complex64)},
    "a string for a tensor": lambda s: {**s, "conv.weight": "zeros"},
    "nested lists": lambda s: [[1.0, 2.0], [3.0]],
    "lists for a tensor": lambda s: {**s, "conv.weight": [[0.0] * 3] * 2},
    "a key that is not a string": lambda s: {**s, 7: torch.zeros(1)},
}


@pytest.mark.parametrize("make", TORCH_FILES.values(), ids=TORCH_FILES.keys())
def test_broken_backbone_files_are_one_line_errors(tiny_backbone, tmp_path: Path, make) -> None:
    path = tmp_path / "backbone.pt"
    make(path)
    _one_line_error(lambda: W.resolve_backbone("vggface2", path, log=lambda _: None), path)


@pytest.mark.parametrize("change", BACKBONE_STATES.values(), ids=BACKBONE_STATES.keys())
def test_misfit_backbone_state_dicts_are_one_line_errors(tiny_backbone, tmp_path: Path, change) -> None:
    good = tmp_path / "good.pt"
    torch.save(tiny_backbone, good)
    assert W.resolve_backbone("vggface2", good, log=lambda _: None).source == "file"
    path = tmp_path / "backbone.pt"
    torch.save(change(dict(tiny_backbone)), path)
    _one_line_error(lambda: W.resolve_backbone("vggface2", path, log=lambda _: None), path)


def test_zip_bomb_is_refused_before_torch_load_inflates_it(tiny_backbone, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bomb.pt"
    _zip_bomb(path, 4 << 20)
    assert path.stat().st_size < 64 << 10

    def inflate(*args, **kwargs):
        raise AssertionError("torch.load reached")

    monkeypatch.setattr(torch, "load", inflate)
    assert "above the cap" in _one_line_error(lambda: W.resolve_backbone("vggface2", path), path)


def test_giant_and_misfit_pb_backbones_are_one_line_errors(tiny_backbone, tmp_path: Path) -> None:
    evil = tmp_path / "evil.pb"
    evil.write_bytes(_const("w", GIANT_TENSORS["4 TiB from one value"]))
    message = _one_line_error(lambda: W.resolve_backbone("vggface2", evil, log=lambda _: None), evil)
    assert "not a readable TensorFlow graph" in message and "above the cap" in message
    flat = tmp_path / "flat.pb"
    flat.write_bytes(_const("InceptionResnetV1/Conv2d_1a_3x3/weights", _tensor(shape=(2, 2), vals=ONE_FLOAT)))
    assert "4-D float tensor" in _one_line_error(lambda: W.resolve_backbone("vggface2", flat, log=lambda _: None), flat)


def test_a_damaged_verified_backbone_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "vggface2.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    resolved = W.ResolvedBackbone("vggface2", path, W.sha256_file(path), "cache")
    assert "delete it" in _one_line_error(lambda: W.load_backbone(resolved), path)


# --------------------------------------------------------------------------- facenet checkpoints


@pytest.fixture(scope="module")
def bundled_checkpoint() -> dict:
    return torch.load(ASSETS / "facenet.pt", weights_only=True)


def _edit(*keys: str, value: object = None, drop: bool = False) -> Callable[[dict], dict]:
    """A change to the checkpoint: set (or drop) the entry at ckpt[keys[0]][keys[1]]..."""

    def change(ckpt: dict) -> dict:
        *parents, last = keys
        target = ckpt
        for key in parents:
            target = target[key]
        if drop:
            del target[last]
        else:
            target[last] = value
        return ckpt

    return change


CHECKPOINT_EDITS: dict[str, Callable[[dict], object]] = {
    "not a dict": lambda c: [[1, 2], [3]],
    "no state_dict": _edit("state_dict", drop=True),
    "state_dict as nested lists": _edit("state_dict", value=[[1.0, 2.0], [3.0]]),
    "config as a string": _edit("config", value="linear"),
    "a string for a tensor": _edit("state_dict", "age_head.weight", value="zeros"),
    "a wrong shape": _edit("state_dict", "age_head.weight", value=torch.zeros(9, 512)),
    "a complex dtype": _edit("state_dict", "age_head.weight", value=torch.zeros(8, 512, dtype=torch.complex64)),
    "a missing weight": _edit("state_dict", "age_head.bias", drop=True),
    "an extra weight": _edit("state_dict", "zzz", value=torch.zeros(1)),
    "another unfreeze point": _edit("config", "unfreeze", value="repeat_3"),
    "an unknown head": _edit("config", "head", value="conv"),
    "a billion hidden units": _edit("config", "hidden", value=10**9),
    "a nan dropout": _edit("config", "dropout", value=float("nan")),
    "a string image size": _edit("image_size", value="160"),
    "a 100k image size": _edit("image_size", value=100_000),
    "a huge gabor kernel": _edit("preprocess", "gabor_kernel", value=10**6),
    "an even blur kernel": _edit("preprocess", "blur_kernel", value=4),
    "an unknown preprocess setting": _edit("preprocess", "zzz", value=1),
    "a backbone without sha256": _edit("backbone", "sha256", drop=True),
    "a NaN weight": _edit("state_dict", "age_head.weight", value=torch.full((8, 512), float("nan"))),
    "an infinite weight": _edit("state_dict", "gender_head.bias", value=torch.tensor([float("inf"), 0.0])),
    "classes in another order": _edit("classes", "gender", value=["female", "male"]),
}


@pytest.mark.parametrize("make", TORCH_FILES.values(), ids=TORCH_FILES.keys())
def test_unreadable_facenet_checkpoints_are_one_line_errors(tmp_path: Path, make, monkeypatch) -> None:
    monkeypatch.setattr(torchfiles, "MAX_TORCH_FILE_BYTES", 1 << 20)
    path = tmp_path / "model.pt"
    make(path)
    _one_line_error(lambda: load_checkpoint(path), path)


@pytest.mark.parametrize("change", CHECKPOINT_EDITS.values(), ids=CHECKPOINT_EDITS.keys())
def test_hand_edited_facenet_checkpoints_are_one_line_errors(tmp_path: Path, bundled_checkpoint, change) -> None:
    path = tmp_path / "model.pt"
    torch.save(change(copy.deepcopy(bundled_checkpoint)), path)
    _one_line_error(lambda: load_checkpoint(path), path)


def test_the_bundled_checkpoint_passes_the_checks() -> None:
    assert load_checkpoint(ASSETS / "facenet.pt")["config"]["head"] in ("linear", "mlp")


# --------------------------------------------------------------------------- caffe model folders


def _blob(shape: tuple[int, ...] | None = None, legacy: tuple[int, ...] | None = None, floats: int = 0,
          fp16: int | None = None) -> bytes:
    """A BlobProto: a BlobShape or num/channels/height/width, then float data or fp16 raw data."""
    body = b"" if shape is None else _field(7, _field(1, b"".join(_varint(d) for d in shape)))
    body += b"".join(_field(n, d, 0) for n, d in enumerate(legacy or (), start=1))
    body += _field(5, bytes(4 * floats)) if floats else b""
    return body + (b"" if fp16 is None else _field(10, 2, 0) + _field(12, bytes(2 * fp16)))


def _caffemodel(*blobs: bytes, layers: tuple[str, ...] = ("conv1", "conv2", "conv3", "fc6", "fc7", "fc8")) -> bytes:
    """A NetParameter whose first layer holds `blobs` and the others one small valid blob each."""
    out = _field(1, b"CaffeNet")
    for k, name in enumerate(layers):
        held = blobs if k == 0 else (_blob((1,), floats=1),)
        out += _field(100, _field(1, name.encode()) + b"".join(_field(7, b) for b in held))
    return out


CAFFEMODELS = {
    "empty": b"",
    "random bytes": random.Random(2).randbytes(3000),
    "truncated": (ASSETS / "caffenet" / "age_net.caffemodel").read_bytes()[:200_000],
    "a 4 TiB blob": _caffemodel(_blob((1 << 20, 1 << 20, 1, 1))),
    "a 4 GiB blob in num/channels/height/width": _caffemodel(_blob(legacy=(1 << 30, 1, 1, 1))),
    "a negative dim": _caffemodel(_blob((-1, 3), floats=3)),
    "a 5-D blob": _caffemodel(_blob((1, 1, 1, 1, 1), floats=1)),
    "fewer floats than the shape": _caffemodel(_blob((96, 3, 7, 7), floats=10)),
    "more fp16 values than the shape": _caffemodel(_blob((2, 2), fp16=5)),
    "a blob without values": _caffemodel(_blob((2, 2))),
    "no fc8": _caffemodel(_blob((1,), floats=1), layers=("conv1", "conv2", "conv3", "fc6", "fc7")),
}
PROTOTXTS = {
    "garbage text": b"hello world {{",
    "binary": b'name: "x"\x00\xff\xfe\x01',
    "random bytes": random.Random(3).randbytes(500),
    "empty": b"",
    "4 GiB of activations": (ASSETS / "caffenet" / "age_net.prototxt").read_bytes().replace(
        b"kernel_size: 7 stride: 4", b"kernel_size: 7 stride: 4 pad: 3000"),
    "over 1 MiB": b"#" * ((1 << 20) + 1),
}


def _caffe_folder(folder: Path, name: str, data: bytes) -> Path:
    """The bundled caffenet folder (linked, not copied) with `name` replaced by `data`."""
    folder.mkdir()
    for source in (ASSETS / "caffenet").iterdir():
        (folder / source.name).symlink_to(source)
    (folder / name).unlink()
    (folder / name).write_bytes(data)
    return folder / name


@pytest.mark.parametrize("engine", ["opencv", "torch", "onnx"])
@pytest.mark.parametrize("data", CAFFEMODELS.values(), ids=CAFFEMODELS.keys())
def test_broken_caffemodels_are_one_line_errors(tmp_path: Path, data: bytes, engine: str) -> None:
    bad = _caffe_folder(tmp_path / "model", "age_net.caffemodel", data)
    _one_line_error(lambda: CaffenetPredictor(bad.parent, engine=engine), bad)


@pytest.mark.parametrize("engine", ["opencv", "torch", "onnx"])
@pytest.mark.parametrize("data", PROTOTXTS.values(), ids=PROTOTXTS.keys())
def test_broken_prototxts_are_one_line_errors(tmp_path: Path, data: bytes, engine: str, capfd) -> None:
    bad = _caffe_folder(tmp_path / "model", "gender_net.prototxt", data)
    _one_line_error(lambda: CaffenetPredictor(bad.parent, engine=engine), bad)
    assert capfd.readouterr().err == ""  # libprotobuf and OpenCV's own error lines are held back


def test_giant_caffemodel_blobs_never_reach_cv2(tmp_path: Path, monkeypatch) -> None:
    bad = _caffe_folder(tmp_path / "model", "gender_net.caffemodel", CAFFEMODELS["a 4 TiB blob"])

    def read(*args):
        raise AssertionError("cv2.dnn reached")

    monkeypatch.setattr(cv2.dnn, "readNetFromCaffe", read)
    assert "above the cap" in _one_line_error(lambda: CaffenetPredictor(bad.parent), bad)


@needs_proc
def test_giant_caffemodel_stays_within_a_capped_address_space(tmp_path: Path) -> None:
    giant = CAFFEMODELS["a 4 GiB blob in num/channels/height/width"]
    bad = _caffe_folder(tmp_path / "model", "age_net.caffemodel", giant)
    done = _run_capped("from pathlib import Path; from agegender_cli.archs.caffenet.caffemodel import read_cv2_net",
                       f"read_cv2_net(Path({str(bad.with_suffix('.prototxt'))!r}), Path({str(bad)!r}))")
    assert done.stdout.startswith("refused: AgeGenderError") and "above the cap" in done.stdout, done


def test_cv2_errors_hold_back_native_stderr_but_pass_it_on_success(capfd) -> None:
    with caffe_net.cv2_errors(Path("a.prototxt"), Path("a.caffemodel")):
        os.write(2, b"native warning\n")
    assert capfd.readouterr().err == "native warning\n"
    with pytest.raises(AgeGenderError, match="a.caffemodel"), caffe_net.cv2_errors(Path("a.prototxt"),
                                                                                   Path("a.caffemodel")):
        os.write(2, b"native noise\n")
        raise cv2.error("OpenCV(4) x.cpp:1: error: (-2:Unspecified error) boom")
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def face(tmp_path: Path) -> Path:
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return path


def _cli_error(args: list[str], named: Path) -> str:
    """Run the CLI: exit code 1, no traceback, and one error line (the last) naming the file."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:] and str(named) in errors[0], result.stderr
    return errors[0]


def test_cli_reports_broken_facenet_files_in_one_line(face: Path, tmp_path: Path, monkeypatch,
                                                      bundled_checkpoint) -> None:
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"w": _Unsafe()}, unsafe)
    huge = tmp_path / "huge.pt"
    torch.save(CHECKPOINT_EDITS["a billion hidden units"](copy.deepcopy(bundled_checkpoint)), huge)
    for model in (empty, unsafe, huge):
        _cli_error(["predict", face, "--arch", "facenet", "--detector", "none", "--model", f"facenet={model}"], model)
    evil = tmp_path / "evil.pb"
    evil.write_bytes(_const("w", GIANT_TENSORS["4 TiB from one value"]))
    line = _cli_error(["predict", face, "--arch", "facenet", "--detector", "none", "--backbone-weights", evil], evil)
    assert "above the cap" in line


def test_cli_reports_broken_caffe_folders_in_one_line(face: Path, tmp_path: Path) -> None:
    giant = _caffe_folder(tmp_path / "giant", "gender_net.caffemodel", CAFFEMODELS["a 4 TiB blob"])
    garbage = _caffe_folder(tmp_path / "garbage", "gender_net.prototxt", PROTOTXTS["garbage text"])
    for bad in (giant, garbage):
        for engine in ("opencv", "torch", "onnx"):
            _cli_error(["predict", face, "--arch", "caffenet", "--detector", "none", "--engine", engine,
                        "--model", f"caffenet={bad.parent}"], bad)


def test_cli_evaluate_reports_a_broken_model_in_one_line(tmp_path: Path) -> None:
    images = tmp_path / "utk"
    images.mkdir()
    for k in range(2):
        cv2.imwrite(str(images / f"25_{k}_0_2017010100000000{k}.jpg.chip.jpg"), np.zeros((64, 64, 3), np.uint8))
    model = tmp_path / "model.pt"
    model.write_bytes(b"\x80\x02junk")
    _cli_error(["evaluate", "--arch", "facenet", "--images", images, "--model", f"facenet={model}"], model)


@pytest.mark.integration
@pytest.mark.parametrize("case", ["prototxt", "pb", "checkpoint"])
def test_cli_process_prints_one_error_line_and_no_native_noise(face: Path, tmp_path: Path, case: str) -> None:
    if case == "prototxt":
        bad = _caffe_folder(tmp_path / "model", "gender_net.prototxt", PROTOTXTS["garbage text"])
        args = ["--arch", "caffenet", "--engine", "opencv", "--model", f"caffenet={bad.parent}"]
    elif case == "pb":
        bad = tmp_path / "evil.pb"
        bad.write_bytes(_const("w", GIANT_TENSORS["4 GiB from one value"]))
        args = ["--arch", "facenet", "--backbone-weights", str(bad)]
    else:
        bad = tmp_path / "model.pt"
        bad.write_bytes((ASSETS / "facenet.pt").read_bytes()[:10_000])
        args = ["--arch", "facenet", "--model", f"facenet={bad}"]
    env = {**os.environ, "AGEGENDER_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "agegender_cli", "predict", str(face), "--detector", "none", *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout, done.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], done.stderr
    assert str(bad) in lines[-1] and "libprotobuf" not in done.stderr and "[ERROR" not in done.stderr


@pytest.mark.parametrize("engine", ["opencv", "torch", "onnx"])
def test_a_caffemodel_with_nan_weights_is_refused(tmp_path: Path, engine: str) -> None:
    """A net whose weights hold NaN once answered `male nan%`; every engine now refuses it when loading."""
    from agegender_cli.archs.caffenet.caffemodel import export_caffemodel, twin_from_caffemodel

    bundled = ASSETS / "caffenet"
    twin = twin_from_caffemodel(bundled / "gender_net.prototxt", bundled / "gender_net.caffemodel")
    with torch.no_grad():
        twin.fc7.weight[3, 5] = float("nan")
    folder = tmp_path / "model"
    bad = _caffe_folder(folder, "gender_net.caffemodel", b"")
    export_caffemodel(twin, bad, fp16=True)
    with pytest.raises(AgeGenderError, match="fc7 holds weights that are not finite"):
        CaffenetPredictor(folder, engine=engine)
