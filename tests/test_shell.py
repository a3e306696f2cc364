"""Shell conventions: global options before or after the command, --quiet, --no-table, pipes, exit codes,
completion, plain help, `agegender info`, train's refusal to reuse a run folder."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_jpeg
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.config import ASSETS_DIR

runner = CliRunner()
AGEGENDER = Path(sys.executable).parent / "agegender"
COMMANDS = ("dataset", "preprocess", "train", "predict", "evaluate", "compare", "info")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env},
                          timeout=300)


# --------------------------------------------------------------------------- pipes, CSV/JSON, file modes


def test_json_piped_into_head_exits_0_without_a_traceback(tmp_path):
    for k in range(120):
        write_jpeg(tmp_path / "in" / f"{k:03d}.jpg", seed=k, size=32)
    command = (f"{AGEGENDER} --threads 1 predict {tmp_path / 'in'} --arch caffenet --detector none --batch-size 4 "
               "--json | head -1; exit ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and json.loads(result.stdout)["file"].endswith("000.jpg")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_csv_and_json_agree_and_a_photo_without_a_face_is_a_row_with_its_note(tiny_arch, tmp_path):
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.full((120, 120, 3), 128, np.uint8))  # nothing for a detector to find
    args = ["predict", str(blank), "--arch", "tiny", "--detector", "haar"]
    as_json = runner.invoke(app, [*args, "--json"])
    as_csv = runner.invoke(app, [*args, "--csv", "-"])
    assert as_json.exit_code == as_csv.exit_code == 0, as_json.output + as_csv.output
    (record,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    (row,) = list(csv.DictReader(as_csv.stdout.splitlines()))
    assert record["note"] == row["note"] == "no face found"
    assert record["file"] == row["file"] == str(blank)
    assert record["box"] is None and row["x1"] == "" and row["tiny_gender"] == ""


def test_files_the_commands_write_get_0644_under_umask_022(tiny_arch, tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    previous = os.umask(0o022)
    try:
        result = runner.invoke(app, ["predict", str(image), "--arch", "tiny", "--detector", "none",
                                     "--csv", str(tmp_path / "faces.csv"), "--annotate", str(tmp_path / "shown")])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["preprocess", str(image), "--out", str(tmp_path / "pre")])
        assert result.exit_code == 0, result.output
    finally:
        os.umask(previous)
    written = [tmp_path / "faces.csv", *(tmp_path / "shown").iterdir(), *(tmp_path / "pre").iterdir()]
    assert len(written) == 3
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {oct(0o644)}
    assert stat.S_IMODE((tmp_path / "shown").stat().st_mode) == 0o755


# --------------------------------------------------------------------------- --quiet and --no-table


def quiet_runs(tiny_utkface: Path, labelled: Path, tmp_path: Path) -> dict[str, list[str]]:
    image = str(next(labelled.iterdir()))
    return {
        "dataset": ["dataset", str(tiny_utkface), "--out", str(tmp_path / "data")],
        "preprocess": ["preprocess", image, "--out", str(tmp_path / "pre")],
        "train": ["train", "--arch", "tiny", "--epochs", "2", "--out", str(tmp_path / "run"), "--overwrite"],
        "predict": ["predict", image, "--arch", "tiny", "--detector", "none"],
        "evaluate": ["evaluate", "--arch", "tiny", "--images", str(labelled), "--bootstrap", "20"],
        "compare": ["compare", "--arch", "tiny", "--images", str(labelled), "--bootstrap", "20"],
    }


@pytest.mark.parametrize("command", COMMANDS[:-1])
@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_leaves_stderr_empty_on_every_command(tiny_arch, tiny_utkface, labelled, tmp_path, command, where):
    args = quiet_runs(tiny_utkface, labelled, tmp_path)[command]
    loud = runner.invoke(app, args)
    assert loud.exit_code == 0, loud.output
    assert loud.stderr.strip()  # there is something to silence
    quiet = runner.invoke(app, ["-q", *args] if where == "before" else [*args, "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""
    assert quiet.stdout == loud.stdout


def test_quiet_still_prints_errors(tiny_arch, tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    result = runner.invoke(app, ["predict", str(image), str(tmp_path / "gone.jpg"), "--arch", "tiny",
                                 "--detector", "none", "-q"])
    assert result.exit_code == 1
    assert "gone.jpg: no such file or folder" in result.stderr and "1 unreadable" in result.stderr
    assert "loading" not in result.stderr and "predicting" not in result.stderr
    result = runner.invoke(app, ["-q", "evaluate", "--arch", "tiny", "--images", str(tmp_path / "none")])
    assert result.exit_code == 1 and "error:" in result.stderr


@pytest.mark.parametrize("command", ["dataset", "predict", "evaluate", "compare"])
def test_no_table_and_json_turn_the_table_off(tiny_arch, tiny_utkface, labelled, tmp_path, command):
    args = quiet_runs(tiny_utkface, labelled, tmp_path)[command]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "┃" in table.stdout  # a Rich table's header row
    for variant in ([*args, "--no-table"], ["--no-table", *args]):
        result = runner.invoke(app, variant)
        assert result.exit_code == 0, result.output
        assert "┃" not in result.stdout and "━" not in result.stdout
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    if command == "predict":
        [json.loads(line) for line in result.stdout.splitlines()]
    else:
        json.loads(result.stdout)


def test_predict_csv_to_stdout_prints_no_table(tiny_arch, tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    result = runner.invoke(app, ["predict", str(image), "--arch", "tiny", "--detector", "none", "--csv", "-"])
    assert result.exit_code == 0, result.output
    assert "┃" not in result.stdout and result.stdout.startswith("file,")


# --------------------------------------------------------------------------- global options after the command


@pytest.mark.parametrize("place", ["before", "after"])
def test_threads_works_before_and_after_the_command(tiny_utkface, tmp_path, place):
    command = ["dataset", str(tiny_utkface), "--out", str(tmp_path)]
    args = ["--threads", "1", *command] if place == "before" else [*command, "--threads", "1"]
    code = (
        "from typer.testing import CliRunner\n"
        "from agegender_cli.cli.app import app\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        "assert r.exit_code == 0, r.output\n"
        "import cv2, os, torch\n"
        "print(torch.get_num_threads(), cv2.getNumThreads(), os.environ['OMP_NUM_THREADS'])\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "1"]


def test_threads_after_the_command_reaches_an_already_imported_torch(tiny_arch, tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        image = write_jpeg(tmp_path / "a.jpg")
        result = runner.invoke(app, ["predict", str(image), "--arch", "tiny", "--detector", "none", "--threads", "1"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_version_works_after_the_command_too():
    from agegender_cli import __version__

    for args in (["--version"], ["predict", "--version"], ["info", "--version"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and result.stdout.strip() == f"agegender {__version__}"


# --------------------------------------------------------------------------- missing inputs, exit codes


def test_all_inputs_missing_is_exit_1_at_once_without_importing_torch(tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from agegender_cli.cli.app import app\n"
        f"r = CliRunner().invoke(app, ['predict', {str(tmp_path / 'a.jpg')!r}, {str(tmp_path / 'b*.png')!r}])\n"
        "print(r.exit_code)\n"
        "print(r.stderr, file=sys.stderr)\n"
        "print(sorted(m for m in ('torch', 'facenet_pytorch') if m in sys.modules))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["1", "[]"]
    assert "a.jpg: no such file or folder" in result.stderr
    assert "b*.png: no images or videos match this pattern" in result.stderr
    assert "2 unreadable" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_input_is_said_before_the_models_load(tiny_arch, tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    result = runner.invoke(app, ["predict", str(image), str(tmp_path / "gone.jpg"), "--arch", "tiny",
                                 "--detector", "none", "--json"])
    assert result.exit_code == 1
    said, loading = result.stderr.index("gone.jpg: no such file"), result.stderr.index("loading tiny")
    assert said < loading
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r.get("error") for r in records} == {None, "no such file or folder"}


def test_missing_paths_on_stdin_are_said_as_they_arrive(tiny_arch, tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    result = runner.invoke(app, ["predict", "-", "--arch", "tiny", "--detector", "none", "--csv", "-"],
                           input=f"{tmp_path / 'gone.jpg'}\n{image}\n")
    assert result.exit_code == 1
    assert "gone.jpg: no such file or folder" in result.stderr


# --------------------------------------------------------------------------- completion and help


def test_show_completion_prints_a_bash_script():
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = subprocess.run([str(AGEGENDER), "--show-completion", "bash"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "_AGEGENDER_COMPLETE=complete_bash" in result.stdout and "complete " in result.stdout


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_plain_metavars(command):
    args = ["--help"] if command is None else [command, "--help"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "--help" in text
    for bad in (re.compile(r"<\w[^>]*>"), re.compile(r"list\[", re.I), re.compile(r"\bBOOL(EAN)?\b", re.I)):
        assert not bad.search(text), (bad.pattern, bad.search(text).group())
    if command == "predict":
        assert re.search(r"--min-face\s+INTEGER", text) and re.search(r"--model\s+\[ARCH=\]PATH", text)
        assert "Usage: agegender predict [OPTIONS] INPUTS..." in text
    if command == "dataset":
        assert re.search(r"sources\.\.\.\s+PATH", text) and re.search(r"--gaps\s+\[", text)


# --------------------------------------------------------------------------- agegender info


def test_info_json_lists_versions_runtime_cache_and_weights(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "backbones").mkdir(parents=True)
    (home / "backbones" / "vggface2.pt").write_bytes(b"weights")
    (home / "features").mkdir()
    (home / "features" / "abc.pt").write_bytes(b"features, not weights")
    monkeypatch.setenv("AGEGENDER_HOME", str(home))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    versions = data["versions"]
    assert {"agegender", "python", "torch", "torchvision", "opencv", "facenet-pytorch", "numpy",
            "platform"} <= set(versions)
    assert versions["python"] == sys.version.split()[0] and versions["torch"]
    assert data["device"] in ("cpu", "cuda") and data["device_reason"]
    assert data["precision"] in ("auto", "bf16", "fp32") and data["precision_reason"]
    assert data["torch_precision"].startswith(("bf16", "fp32")) and data["cpu"]
    by_work = data["engine_by_work"]
    assert [c["faces"] for c in by_work] == [1, 300, 4000] and by_work[0]["engine"] == data["engine"]
    assert all(c["engine"] in ("onnx", "torch") and c["reason"] for c in by_work)
    assert data["threads"]["OMP_NUM_THREADS"] == "3" and data["threads"]["torch"] >= 1
    assert data["cache"] == {"path": str(home), "from": "AGEGENDER_HOME", "exists": True}
    cached = [w for w in data["weights"] if w["where"] == "cache"]
    assert [w["name"] for w in cached] == ["backbones/vggface2.pt"]
    assert cached[0]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    bundled = {w["name"]: w for w in data["weights"] if w["where"] == "bundled"}
    assert "facenet.pt" in bundled
    assert bundled["facenet.pt"]["sha256"] == hashlib.sha256((ASSETS_DIR / "facenet.pt").read_bytes()).hexdigest()


def test_info_table(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "nothing-yet"))
    result = runner.invoke(app, ["info"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for word in ("torch", "opencv", "device", "precision", "threads", "not created yet", "facenet.pt", "Weights"):
        assert word in result.stdout
    assert result.stdout.lstrip()[0] not in "{["


# --------------------------------------------------------------------------- train into a used folder, preprocess


def test_train_refuses_a_folder_that_holds_a_run_unless_resume_or_overwrite(tiny_arch, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--arch", "tiny", "--epochs", "1", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert str(out) in line and "--resume" in line and "--overwrite" in line
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    assert runner.invoke(app, [*args, "--resume", "--overwrite"]).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["train", "--arch", "tiny", "--epochs", "1", "--out", str(empty)]).exit_code == 0


def test_resume_continues_only_a_run_of_the_same_architecture(tiny_arch, tmp_path):
    """--resume on another architecture's run, or on a folder with no run, once trained from scratch into it and
    replaced its history and curves (exit 0)."""
    out = tmp_path / "run"
    assert runner.invoke(app, ["train", "--arch", "tiny", "--epochs", "1", "--out", str(out)]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = runner.invoke(app, ["train", "--arch", "caffenet", "--resume", "--out", str(out)])
    assert result.exit_code == 1 and "holds a tiny run, not caffenet" in " ".join(result.stderr.split())
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["train", "--arch", "tiny", "--resume", "--out", str(empty)])
    assert result.exit_code == 1 and "holds no run to continue" in " ".join(result.stderr.split())
    assert not any(empty.iterdir())


def test_preprocess_says_the_folder_it_really_wrote(tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["preprocess", str(image), "--out", str(tmp_path / "link"), *extra])
        assert result.exit_code == 0, result.output
        assert f"1 of 1 image written to {(tmp_path / 'real').resolve()}" in result.stderr
    assert json.loads(result.stdout)["out"] == str((tmp_path / "real").resolve())


def test_the_compare_summary_example_reads_the_json_of_today(tmp_path):
    """examples/compare_to_json_summary.sh failed on its own f-strings and read compare's old top-level keys."""
    faces = tmp_path / "faces"
    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70) * 2):
        write_jpeg(faces / f"{age}_{k % 2}_{k % 5}_2017010{k % 9}12345678{k % 10}.jpg", seed=k, size=64)
    subprocess.run([str(AGEGENDER), "dataset", str(faces), "--out", str(tmp_path / "ds"), "-q"], check=True,
                   timeout=300)
    script = Path(__file__).resolve().parents[1] / "examples" / "compare_to_json_summary.sh"
    env = {**os.environ, "PATH": f"{AGEGENDER.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(script), str(tmp_path / "ds" / "manifest.csv"), "all"], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["facenet", "caffenet", "fused"]
    assert "facenet vs caffenet: gender p=" in done.stdout
