"""A new architecture is one registry entry: a tiny one defined here runs through every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_arch import Tiny
from typer.testing import CliRunner

from agegender_cli import service
from agegender_cli.archs import registry
from agegender_cli.cli.app import app
from agegender_cli.config import ModelOptions

runner = CliRunner()


@pytest.fixture
def tiny():
    archs = (registry.register(Tiny("tiny")), registry.register(Tiny("tiny2", bias=0.2)))
    yield archs
    for arch in archs:
        registry.unregister(arch.name)


def test_evaluate_compare_and_predict_run_a_registered_architecture(tiny, labelled):
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--images", str(labelled), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["results"]["tiny"]
    assert data["arch"] == "tiny" and data["n"] == 16 and data["model"] == "tiny model None"

    result = runner.invoke(app, ["compare", "--arch", "tiny,tiny2", "--images", str(labelled), "--json",
                                 "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["tests"]) == {"tiny vs tiny2"}
    assert data["results"]["tiny"]["n"] == data["results"]["tiny2"]["n"] == 16

    result = runner.invoke(app, ["predict", str(labelled), "--detector", "none", "--arch", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 16 and all(row["tiny"]["gender"] in ("male", "female") for row in rows)


def test_model_option_reaches_the_architecture(tiny, labelled, tmp_path):
    model = tmp_path / "weights.bin"
    result = runner.invoke(app, ["compare", "--arch", "tiny,tiny2", "--images", str(labelled), "--json",
                                 "--model", f"tiny2={model}", "--precision", "fp32", "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    (first,), (second,) = tiny[0].loaded, tiny[1].loaded
    assert first[0] is None and second[0] == model
    # workload: the 16 faces to score, for auto's engine choice
    assert second[1] == ModelOptions(models=(("tiny2", model),), precision="fp32", workload=16)
    assert runner.invoke(app, ["compare", "--arch", "tiny,tiny2", "--model", str(model)]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--arch", "tiny", "--model", f"tiny2={model}"]).exit_code == 2


def test_train_runs_the_registered_trainer_and_refuses_foreign_options(tiny, tmp_path):
    result = runner.invoke(app, ["train", "--arch", "tiny", "--epochs", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "best epoch gender 2, age 1" in result.stdout and str(tmp_path / "run" / "model.txt") in result.stdout
    result = runner.invoke(app, ["train", "--arch", "tiny", "--unfreeze", "block8"])
    assert result.exit_code == 2 and "--unfreeze does not apply to --arch tiny" in result.output


def test_registry_parses_names_and_refuses_unknown_ones(tiny):
    assert registry.parse_archs("both")[-2:] == ("tiny", "tiny2")
    assert registry.parse_archs("tiny2, tiny") == ("tiny2", "tiny")
    with pytest.raises(Exception, match="unknown architecture resnet"):
        registry.parse_archs("resnet")
    assert registry.parse_models(["x.pt"], ("tiny",)) == (("tiny", Path("x.pt")),)


@pytest.mark.parametrize("args", [
    ["train", "--unfreeze", "block9"], ["train", "--head", "huge"], ["train", "--views", "0"],
    ["train", "--batch-size", "0"], ["train", "--lr", "0"], ["train", "--lr", "-1"], ["train", "--seed", "-1"],
    ["train", "--epochs", "0"], ["train", "--dropout", "2"], ["train", "--precision", "fp8"],
    ["train", "--precision", "int8"],
    ["train", "--device", "tpu"], ["train", "--arch", "both"], ["train", "--arch", "caffenet", "--views", "4"],
    ["compare", "--bootstrap", "0"], ["compare", "--split", "dev"], ["compare", "--engine", "tensorrt"],
    ["evaluate", "--batch-size", "0"], ["evaluate", "--arch", "vgg"], ["evaluate", "--detector", "dlib"],
    ["predict", "x.jpg", "--min-face", "0"],
    ["predict", "x.jpg", "--min-score", "1.5"], ["predict", "x.jpg", "--workers", "0"],
    ["preprocess", "x.jpg", "--out", "o", "--clahe-tile", "0"], ["preprocess", "x.jpg", "--out", "o",
                                                                 "--gabor-sigma", "0"],
    ["preprocess", "--manifest", "m.csv", "--split", "dev", "--out", "o"], ["dataset", "x", "--seed", "-2"],
])
def test_bad_values_are_usage_errors_before_any_work(args, monkeypatch):
    def must_not_run(*_args, **_kwargs):
        raise AssertionError("a bad value reached the service layer")

    for name in ("train", "evaluate", "compare", "predict", "run_preprocess", "make_dataset"):
        monkeypatch.setattr(service, name, must_not_run)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output


def test_train_builds_the_config_from_the_architecture_defaults(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(service, "train", lambda arch, cfg, reporter, **_: seen.update(arch=arch, cfg=cfg) or {
        "best_epoch": {"gender": 1, "age": 1}, "epochs_run": 1, "checkpoint": "x"})
    result = runner.invoke(app, ["train", "--arch", "caffenet", "--epochs", "7", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert seen["arch"] == "caffenet" and type(cfg).__name__ == "CaffenetTrainConfig"
    assert (cfg.epochs, cfg.out, cfg.lr) == (7, tmp_path, type(cfg)().lr)
    assert "best epoch gender 1, age 1" in result.stdout


def test_an_unknown_arch_is_named_as_the_arch_option():
    """`--arch resnet` said "Invalid value for --model"."""
    from typer.testing import CliRunner

    from agegender_cli.cli.app import app

    for command in (["predict", "x.jpg"], ["evaluate"], ["compare"]):
        result = CliRunner().invoke(app, [*command, "--arch", "resnet"])
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and "--arch" in said and "--model" not in said and "resnet" in said


LAUNCHER = """
import sys
sys.path.insert(0, {tests!r})
from tiny_arch import Tiny
from agegender_cli.archs import registry
registry.register(Tiny())  # the one registry line that adds an architecture
from agegender_cli.cli.app import main
sys.argv[0] = "agegender"
main()
"""


def test_a_new_architecture_is_one_folder_and_one_registry_line_and_every_command_runs_it(labelled, tmp_path):
    """tests/tiny_arch/ is a folder like archs/facenet/: its entry declares its training config, a training option
    and a weights option of its own; registered by one line, every command runs it and offers its options."""
    import subprocess
    import sys

    launcher = tmp_path / "agegender_with_tiny.py"
    launcher.write_text(LAUNCHER.format(tests=str(Path(__file__).parent)))

    def agegender(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, str(launcher), *args], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done

    weights = tmp_path / "tiny.bin"
    weights.write_bytes(bytes([255]))  # biases every face to female
    manifest = tmp_path / "ds" / "manifest.csv"
    agegender("dataset", str(labelled), "--out", str(manifest.parent), "--json")
    agegender("preprocess", "--manifest", str(manifest), "--split", "train", "--out", str(tmp_path / "pre"), "--json")
    trained = json.loads(agegender("train", "--arch", "tiny", "--manifest", str(manifest), "--out",
                                   str(tmp_path / "run"), "--epochs", "2", "--brightness-bins", "5", "--json").stdout)
    assert Path(trained["checkpoint"]).read_text() == "tiny 5" and trained["epochs_run"] == 2
    rows = [json.loads(line) for line in agegender("predict", str(labelled), "--arch", "tiny", "--detector", "none",
                                                   "--tiny-weights", str(weights), "--json").stdout.splitlines()]
    assert len(rows) == 16 and {row["tiny"]["gender"] for row in rows} == {"female"}
    evaluated = json.loads(agegender("evaluate", "--arch", "tiny", "--manifest", str(manifest), "--split", "all",
                                     "--model", trained["checkpoint"], "--bootstrap", "20", "--json").stdout)
    assert evaluated["results"]["tiny"]["n"] == 16
    compared = json.loads(agegender("compare", "--arch", "tiny", "--manifest", str(manifest), "--split", "all",
                                    "--bootstrap", "20", "--json").stdout)
    assert compared["results"]["tiny"]["n"] == 16
    declared = json.loads(agegender("info", "--json").stdout)["architectures"]["tiny"]
    assert declared["weight_options"] == ["--tiny-weights"] and declared["train_options"] == ["--brightness-bins"]
    assert "--tiny-weights" in agegender("predict", "--help").stdout
    # what is not its own is refused in its name: facenet's training options and weights
    refused = subprocess.run([sys.executable, str(launcher), "train", "--arch", "tiny", "--unfreeze", "block8"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert refused.returncode == 2 and "--unfreeze does not apply to --arch tiny" in " ".join(refused.stderr.split())


def test_two_architectures_may_share_an_option_only_declared_alike(tiny):
    from dataclasses import replace

    from agegender_cli.archs.entry import Knob

    own = registry.get("tiny").knobs[0]
    assert [k.name for k in registry.knobs()].count(own.name) == 1  # tiny and tiny2 declare it alike: one option
    other = Tiny("tiny3")
    other.knobs = (replace(own, high=8),)
    registry.register(other)
    try:
        with pytest.raises(TypeError, match="brightness_bins of tiny3 differs from tiny's"):
            registry.knobs()
    finally:
        registry.unregister("tiny3")
    assert isinstance(registry.knobs()[-1], Knob)


def test_int8_and_onnx_are_refused_for_an_architecture_without_them(tiny):
    from agegender_cli.errors import AgeGenderError

    for options, said in ((ModelOptions(precision="int8"), "tiny has no int8 model"),
                          (ModelOptions(engine="onnx"), "tiny does not run on ONNX Runtime")):
        with pytest.raises(AgeGenderError, match=said):
            registry.load_predictor("tiny", options)
