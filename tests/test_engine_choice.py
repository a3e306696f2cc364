"""--engine auto on a CPU: the engine measured fastest here for the work, on each kind of CPU (AGEGENDER_CPU_FEATURES
stands in for the machine: .ci/run runs this file as an AVX2, an AVX512-BF16 and an AMX CPU)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from engine_figures import FIGURES, fake_calibration

from agegender_cli import engine_choice, runtime
from agegender_cli.cpu import CPU_ENV, CPU_PRESETS, Cpu, override_flags, this_cpu
from agegender_cli.engine_choice import choose

REPO = Path(__file__).resolve().parents[1]

KINDS = tuple(CPU_PRESETS)


@pytest.mark.parametrize("kind", KINDS)
def test_a_preset_makes_the_project_see_that_kind_of_cpu(monkeypatch, kind) -> None:
    monkeypatch.setenv(CPU_ENV, kind)
    cpu = this_cpu()
    assert cpu.kind == kind and cpu.override == kind and f"{CPU_ENV}={kind}" in cpu.label
    assert runtime.bf16_support("cpu")[0] is (kind != "avx2")


def test_a_flag_list_overrides_and_unset_reads_the_real_cpu(monkeypatch) -> None:
    assert override_flags("avx2, fma") == {"avx2", "fma"}
    assert Cpu("x", frozenset({"avx512_bf16", "avx2"})).kind == "avx512-bf16"
    assert Cpu("x", frozenset()).kind == "other"
    monkeypatch.delenv(CPU_ENV, raising=False)
    assert this_cpu().override is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_first_answer_runs_on_onnx_runtime_on_every_kind(kind) -> None:
    """One photo: PyTorch's import (seconds) outweighs any per-face gain on every CPU measured."""
    choice = choose(fake_calibration(kind), "auto", 1, native_bf16=kind != "avx2", onnx=True, torch_loaded=False)
    assert (choice.engine, choice.precision) == ("onnx", "auto"), choice.reason
    assert choice.estimated_s["onnx/auto"] == min(choice.estimated_s.values())


@pytest.mark.parametrize(("kind", "faces", "expected"), [
    ("amx", 300, "onnx/auto"),  # whole commands here: ONNX Runtime 3.9 s, torch bf16 4.9 s
    ("amx", 5000, "torch/bf16"),  # AMX's bf16 3x faster a face: worth torch's import
    ("avx512-bf16", 300, "onnx/auto"), ("avx512-bf16", 5000, "onnx/auto"),  # bf16 native but no faster
    ("avx2", 300, "onnx/auto"), ("avx2", 5000, "onnx/auto"),  # bf16 emulated: never a candidate
])
def test_bulk_work_takes_pytorch_only_where_it_is_measured_faster(kind, faces, expected) -> None:
    choice = choose(fake_calibration(kind), "auto", faces, native_bf16=kind != "avx2", onnx=True,
                    torch_loaded=False)
    assert f"{choice.engine}/{choice.precision}" == expected, choice.reason
    assert ("torch/bf16" in choice.estimated_s) is (kind != "avx2")


def test_fp32_asked_compares_fp32_paths_and_no_calibration_means_onnx_runtime() -> None:
    choice = choose(fake_calibration("amx"), "fp32", 5000, native_bf16=True, onnx=True, torch_loaded=False)
    assert set(choice.estimated_s) == {"onnx/fp32", "torch/fp32"} and choice.engine == "onnx"
    assert choose(None, "auto", 5000, native_bf16=True, onnx=True, torch_loaded=False).engine == "onnx"
    assert choose(None, "auto", 5000, native_bf16=True, onnx=False, torch_loaded=False).engine == "torch"


def test_torch_already_imported_costs_nothing_more() -> None:
    cold = choose(fake_calibration("amx"), "auto", 300, native_bf16=True, onnx=True, torch_loaded=False)
    warm = choose(fake_calibration("amx"), "auto", 300, native_bf16=True, onnx=True, torch_loaded=True)
    assert warm.estimated_s["torch/bf16"] < cold.estimated_s["torch/bf16"] - 1.5
    assert warm.engine == "torch"


def test_the_proxy_scales_to_the_real_models_multiply_adds() -> None:
    import torch
    from facenet_pytorch import InceptionResnetV1

    from agegender_cli.archs.caffenet.net import LeviHassnerNet
    from agegender_cli.engine_calibration import MODEL_MACS, multiply_adds

    caffe = torch.rand(1, 3, 227, 227)
    nets = multiply_adds(LeviHassnerNet(8).eval(), (caffe,)) + multiply_adds(LeviHassnerNet(2).eval(), (caffe,))
    assert MODEL_MACS["caffenet"] == nets
    assert MODEL_MACS["facenet"] == multiply_adds(InceptionResnetV1().eval(), (torch.rand(1, 3, 160, 160),))


@pytest.mark.integration
def test_the_calibration_is_measured_once_kept_under_the_cpu_and_used_by_auto(tmp_path, monkeypatch) -> None:
    """A real calibration on this machine, as whatever CPU AGEGENDER_CPU_FEATURES says (CI: each of the three)."""
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path))
    monkeypatch.delenv(engine_choice.CALIBRATION_DIR_ENV)
    engine_choice.forget()
    said: list[str] = []
    measured = engine_choice.calibration(log=said.append)
    assert measured is not None, said
    assert any("measuring this CPU's engines once" in line for line in said)
    assert ("torch/bf16" in measured.per_face_s) is runtime.bf16_support("cpu")[0]
    assert {"onnx/fp32", "onnx/auto", "torch/fp32"} <= set(measured.per_face_s)
    kept = json.loads(Path(measured.path).read_text())
    assert kept["cpu_override"] == (os.environ.get(CPU_ENV) or None) and kept["versions"]["torch"]
    assert measured.path.startswith(str(tmp_path / "engine"))
    engine_choice.forget()
    again: list[str] = []
    assert engine_choice.calibration(log=again.append) == measured and not again  # read back, not measured
    native = runtime.bf16_support("cpu")[0]
    first = choose(measured, "auto", 1, native_bf16=native, onnx=True, torch_loaded=False)
    assert first.engine == "onnx", first.reason  # torch's import alone outweighs one face anywhere
    bulk = choose(measured, "auto", 20_000, native_bf16=native, onnx=True, torch_loaded=False)
    cheapest = min(bulk.estimated_s, key=bulk.estimated_s.__getitem__)
    assert f"{bulk.engine}/{bulk.precision}" == cheapest or bulk.engine == "onnx"


def test_a_calibration_that_hangs_or_fails_falls_back_to_onnx_runtime(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path))
    monkeypatch.delenv(engine_choice.CALIBRATION_DIR_ENV)
    monkeypatch.setattr(engine_choice, "CALIBRATION_TIMEOUT_S", 0.05)
    engine_choice.forget()
    said: list[str] = []
    assert engine_choice.calibration(log=said.append) is None
    assert any("no answer in" in line and "ONNX Runtime" in line for line in said), said
    assert not list(tmp_path.rglob("calibration-*.json"))
    engine_choice.forget()
    broken = engine_choice.calibration_file()
    broken.parent.mkdir(parents=True)
    broken.write_text(json.dumps({"per_face_s": {"onnx/fp32": float("nan")}}))
    assert engine_choice._read(broken) is None  # measured again rather than trusted
    engine_choice.forget()


def test_the_figures_of_each_kind_are_complete() -> None:
    for kind, (per_face, first_call, _, _) in FIGURES.items():
        assert set(per_face) == set(first_call) and ("torch/bf16" in per_face) is (kind != "avx2")


def test_the_rerun_line_pins_the_engine_and_precision_that_ran() -> None:
    from agegender_cli.provenance import pinned_command

    onnx = {"engine_choice": {"engine": "onnx", "precision": "auto"}}
    torch_bf16 = {"engine_choice": {"engine": "torch", "precision": "bf16"}}
    assert pinned_command("agegender compare --split test", {"facenet": onnx, "caffenet": onnx}) == \
        "agegender compare --split test --engine onnx --precision auto"
    assert pinned_command("agegender evaluate --arch facenet", {"facenet": torch_bf16}) == \
        "agegender evaluate --arch facenet --engine torch --precision bf16"
    given = "agegender evaluate --arch caffenet --engine=opencv --precision fp32"
    assert pinned_command(given, {"caffenet": {"engine_choice": {"engine": "opencv", "precision": "fp32"}}}) == given
    assert pinned_command("", {"facenet": onnx}) == ""
    settings = {"--detector": "auto", "--seed": "0"}
    assert pinned_command("agegender compare --seed=3", {"facenet": onnx}, settings) == \
        "agegender compare --seed=3 --engine onnx --precision auto --detector auto"


def test_each_predict_record_names_the_engine_and_precision_that_answered() -> None:
    from agegender_cli.api import AgeGender
    from agegender_cli.faces.inputs import load_image

    chip = load_image(REPO / "examples" / "grace_hopper.jpg")
    (faces,) = AgeGender(arch="caffenet", engine="onnx", precision="fp32").predict([chip])
    assert faces and all(f["caffenet"]["engine"] == "onnx" and f["caffenet"]["precision"] == "fp32" for f in faces)


@pytest.mark.parametrize(("kind", "engine", "precision", "measured"), [
    ("amx", "auto", "auto", True), ("avx2", "auto", "fp32", True),  # --engine auto compares engines
    ("amx", "torch", "auto", True), ("amx", "opencv", "auto", True),  # PyTorch's precision auto, bf16 native
    ("avx2", "torch", "auto", False),  # no native bf16: fp32 without measuring
    ("amx", "auto", "bf16", False), ("amx", "auto", "int8", False), ("amx", "onnx", "auto", False),
])
def test_the_calibration_runs_first_only_where_auto_consults_it(monkeypatch, kind, engine, precision, measured):
    said: list = []
    monkeypatch.setenv(CPU_ENV, kind)
    monkeypatch.setattr(engine_choice, "calibration", lambda log=None: said.append(log))
    runtime.calibrate_first(engine, "cpu", precision, print)
    assert said == ([print] if measured else [])
