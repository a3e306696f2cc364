"""The onnx engine: the same probabilities as PyTorch, exports cached and checked, no torch on a warm start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image

from agegender_cli import onnx_models, runtime
from agegender_cli.archs.caffenet.predictor import CaffenetPredictor
from agegender_cli.archs.registry import load_predictor
from agegender_cli.config import ASSETS_DIR, ModelOptions
from agegender_cli.errors import AgeGenderError

REPO = Path(__file__).resolve().parents[1]


def _faces(n: int) -> list[np.ndarray]:
    return [make_image(seed, 200) for seed in range(n)]


@pytest.mark.integration
@pytest.mark.parametrize("arch", ["facenet", "caffenet"])
def test_onnx_gives_pytorchs_fp32_probabilities_and_years(arch: str) -> None:
    faces = _faces(12)
    onnx = load_predictor(arch, ModelOptions(engine="onnx", precision="fp32", batch_size=5)).predict(faces)
    torch = load_predictor(arch, ModelOptions(engine="torch", precision="fp32")).predict(faces)
    assert np.abs(onnx.gender_prob - torch.gender_prob).max() < 1e-4
    assert np.abs(onnx.age_prob - torch.age_prob).max() < 1e-4
    assert onnx.age_years is not None and np.abs(onnx.age_years - torch.age_years).max() <= 0.15


@pytest.mark.integration
def test_a_warm_start_on_the_cpu_never_imports_torch() -> None:
    for arch in ("facenet", "caffenet"):
        load_predictor(arch, ModelOptions(engine="onnx"))  # exported into the cache now, if it was not yet
    code = ("import sys\n"
            "from agegender_cli.runtime import maybe_cuda\n"
            "if maybe_cuda():\n"
            "    print('a GPU may be here: auto then picks PyTorch')\n"
            "    sys.exit(0)\n"
            "from agegender_cli.archs.registry import load_predictor\n"
            "from agegender_cli.config import ModelOptions\n"
            "import numpy as np\n"
            "for arch in ('facenet', 'caffenet'):\n"
            "    p = load_predictor(arch, ModelOptions())  # auto, a first answer: measured fastest on ONNX Runtime\n"
            "    assert 'ONNX Runtime' in p.description, p.description\n"
            "    assert len(p.predict([np.zeros((200, 200, 3), np.uint8)])) == 1\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_changed_cached_export_is_exported_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    folder = ASSETS_DIR / "caffenet"
    faces = _faces(3)
    first = CaffenetPredictor(folder, engine="onnx")
    expected = first.predict(faces)
    cached = sorted((tmp_path / "home" / "onnx" / "caffenet").glob("*.onnx"))
    assert len(cached) == 2 and all(p.with_suffix(".json").is_file() for p in cached)
    cached[0].write_bytes(b"\x00" * 1000)  # damaged in place
    logged: list[str] = []
    again = CaffenetPredictor(folder, engine="onnx", log=logged.append)
    assert any("does not match its recorded sha256" in line for line in logged), logged
    assert np.abs(again.predict(faces).age_prob - expected.age_prob).max() == 0
    assert cached[0].stat().st_size > 1_000_000


def test_the_digest_memo_notices_a_changed_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    path = tmp_path / "model.bin"
    path.write_bytes(b"one")
    first = onnx_models.file_digest(path)
    assert onnx_models.file_digest(path) == first
    path.write_bytes(b"two")
    assert onnx_models.file_digest(path) != first


def test_the_digest_memo_forgets_deleted_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    gone, kept, new = (tmp_path / name for name in ("gone.bin", "kept.bin", "new.bin"))
    for path in (gone, kept, new):
        path.write_bytes(path.name.encode())
    onnx_models.file_digest(gone)
    onnx_models.file_digest(kept)
    gone.unlink()
    onnx_models.file_digest(new)
    index = json.loads((onnx_models.onnx_folder("") / "digests.json").read_text())
    assert sorted(Path(name).name for name in index) == ["kept.bin", "new.bin"]


@pytest.mark.parametrize(("engine", "device", "precision", "cuda", "ort", "workload", "expected"), [
    ("auto", "auto", "auto", False, True, None, "onnx"),  # a first answer: torch's import would cost seconds
    ("auto", "auto", "auto", False, True, 5000, "torch"),  # AMX bf16 measured 3x ONNX Runtime's fp32 speed
    ("auto", "cpu", "fp32", False, True, 5000, "onnx"),  # fp32 asked for: ONNX Runtime measured faster
    ("auto", "cpu", "bf16", False, True, None, "torch"),  # bf16 asked for: only PyTorch runs it
    ("auto", "cpu", "auto", False, False, None, "torch"),  # onnxruntime missing
    ("auto", "cuda", "auto", True, True, None, "torch"),
    ("opencv", "auto", "auto", False, True, None, "opencv"),
    ("torch", "cpu", "auto", False, True, None, "torch"),
])
def test_auto_picks_the_engine_measured_fastest_for_the_work(monkeypatch, engine, device, precision, cuda, ort,
                                                             workload, expected) -> None:
    from engine_figures import fake_calibration

    monkeypatch.setenv("AGEGENDER_CPU_FEATURES", "amx")
    monkeypatch.setattr(runtime, "device_name", lambda name: "cuda" if cuda and name != "cpu" else "cpu")
    monkeypatch.setattr(onnx_models, "onnx_runtime_available", lambda: ort)
    monkeypatch.setattr("agegender_cli.engine_choice.calibration", lambda log=None: fake_calibration("amx"))
    monkeypatch.setattr("agegender_cli.engine_choice.torch_loaded", lambda: False)  # as in a fresh process
    assert runtime.pick_engine(engine, device, precision, workload) == expected


@pytest.mark.parametrize(("device", "precision", "cuda", "ort", "message"), [
    ("cuda", "auto", True, True, "runs on the CPU"),
    ("cpu", "bf16", False, True, "runs in fp32"),
    ("cpu", "auto", False, False, "needs onnxruntime"),
])
def test_engine_onnx_refuses_what_it_cannot_do(monkeypatch, device, precision, cuda, ort, message) -> None:
    monkeypatch.setattr(runtime, "device_name", lambda name: "cuda" if cuda and name != "cpu" else "cpu")
    monkeypatch.setattr(onnx_models, "onnx_runtime_available", lambda: ort)
    with pytest.raises(AgeGenderError, match=message):
        runtime.pick_engine("onnx", device, precision)


def test_device_auto_is_the_cpu_without_importing_torch_where_no_gpu_can_be() -> None:
    code = ("import sys\nfrom agegender_cli.runtime import device_name, maybe_cuda\n"
            "print(device_name('auto'), maybe_cuda(), 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    name, maybe, imported = done.stdout.split()
    assert done.returncode == 0
    if maybe == "False":
        assert (name, imported) == ("cpu", "False")


def test_device_cuda_without_a_gpu_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(runtime, "maybe_cuda", lambda: False)
    assert runtime.device_name("auto") == "cpu" and runtime.device_name("cpu") == "cpu"
    with pytest.raises(AgeGenderError, match="--device"):
        runtime.device_name("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(AgeGenderError, match="no CUDA GPU is visible"):
            runtime.device_name("cuda")


@pytest.mark.parametrize(("engine", "expected"), [("auto", "onnx"), ("opencv", "onnx"), ("onnx", "onnx"),
                                                  ("torch", "torch")])
def test_the_engine_option_reaches_mtcnn(monkeypatch, engine: str, expected: str) -> None:
    from agegender_cli.faces import detection

    monkeypatch.setattr(runtime, "maybe_cuda", lambda: False)
    detector = detection.make_detector("mtcnn", device="auto", engine=engine)
    assert detector.inner.engine == expected


def test_an_unknown_engine_is_not_taken_for_auto_by_mtcnn() -> None:
    from agegender_cli.faces import detection

    with pytest.raises(AgeGenderError, match="unknown MTCNN engine 'tensorrt'"):
        detection.make_detector("mtcnn", engine="tensorrt")


def test_exports_from_two_threads_take_turns(tmp_path: Path) -> None:
    """torch.onnx.export keeps global state: the models and MTCNN export side by side on a first run."""
    import threading

    import torch

    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def export(name: str) -> None:
        barrier.wait()
        try:
            for k in range(4):
                module = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3))
                onnx_models.export_module(module, (torch.zeros(1, 3, 64, 64),), tmp_path / f"{name}{k}.onnx",
                                          ["x"], ["y"])
        except BaseException as exc:  # noqa: BLE001 - any failure of either thread fails the test
            failures.append(exc)

    threads = [threading.Thread(target=export, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(list(tmp_path.glob("*.onnx"))) == 8


@pytest.mark.integration
def test_a_first_run_exports_the_model_and_mtcnn_side_by_side(tmp_path: Path, monkeypatch) -> None:
    """On an empty cache the caffenet nets (a loading thread) and MTCNN (the main thread) export at once."""
    from typer.testing import CliRunner

    from agegender_cli.cli.app import app

    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["predict", str(REPO / "examples" / "grace_hopper.jpg"), "--arch", "caffenet",
                                      "--engine", "onnx", "--json"])
    assert result.exit_code == 0, result.output
    kinds = {p.name for p in (tmp_path / "home" / "onnx").iterdir()}
    assert {"caffenet", "mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"} <= kinds


def test_exports_unused_for_a_month_go_when_another_of_their_kind_is_made(tmp_path: Path, monkeypatch) -> None:
    import os
    import time

    from agegender_cli.config import ONNX_STALE_DAYS
    from agegender_cli.onnx_models import cached_export, onnx_folder

    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    made: list[str] = []

    def export(key: str):
        def write(out: Path) -> dict:
            made.append(key)
            out.write_bytes(key.encode() * 1000)
            return {"key": key}
        return write

    old, recent, loaded = (cached_export("kind", key, export(key), print)[0] for key in ("old", "recent", "loaded"))
    other_kind = cached_export("other", "old", export("other"), print)[0]
    crashed = onnx_folder("kind") / ".new-v1.onnx.99.tmp"
    crashed.write_bytes(b"half")
    month = time.time() - (ONNX_STALE_DAYS + 1) * 86400
    for path in (old, loaded, other_kind):
        os.utime(path.with_suffix(".json"), (month, month))
    os.utime(crashed, (month, month))
    os.utime(recent.with_suffix(".json"), (time.time() - 86400,) * 2)

    assert cached_export("kind", "loaded", export("loaded"), print)[1] == {"key": "loaded"}  # from the cache ...
    assert made.count("loaded") == 1 and loaded.with_suffix(".json").stat().st_mtime > month + 86400  # ... marked
    new = cached_export("kind", "new", export("new"), print)[0]
    assert new.is_file() and recent.is_file() and loaded.is_file() and other_kind.is_file()
    assert not old.exists() and not old.with_suffix(".json").exists() and not crashed.exists()
